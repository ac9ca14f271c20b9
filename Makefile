# Two entry points for a fresh machine: `make demo` (set up, run the whole chain under
# Airflow on the embedded default) and `make test` (set up, start services, run the tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint services

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

services:
	bash scripts/start_services.sh

demo: setup
	bash scripts/demo.sh

test: setup services
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
