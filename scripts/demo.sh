#!/usr/bin/env bash
# The README's main job: on a fresh clone (after `make setup`), write a SYNTHETIC sample log,
# run ingest -> train -> forecast under Airflow (`airflow dags test`, SQLite metadata, MLflow on
# a SQLite file, the embedded reporting database), then print the forecast and the month's cost.
#
#   scripts/demo.sh                      # everything under ./var/demo
#   USAGECAST_DATA_DIR=/tmp/x scripts/demo.sh
#   DEMO_DAYS=56 scripts/demo.sh         # a longer sample (default 35 days)
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${VENV_BIN:-$REPO/.venv/bin}"
export USAGECAST_DATA_DIR="${USAGECAST_DATA_DIR:-$REPO/var/demo}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$USAGECAST_DATA_DIR/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export USAGECAST_PROGRESS=false
DEMO_DAYS="${DEMO_DAYS:-35}"
LAST_DAY="${DEMO_LAST_DAY:-$(date -u -d yesterday +%F)}"
FIRST_DAY="$(date -u -d "$LAST_DAY - $((DEMO_DAYS - 1)) days" +%F)"
AS_OF="$(date -u -d "$LAST_DAY + 1 day" +%F)"
LANDING="$USAGECAST_DATA_DIR/landing"
LOGS="$USAGECAST_DATA_DIR/demo-logs"
mkdir -p "$LANDING" "$LOGS" "$AIRFLOW_HOME"

say() { printf '\n== %s\n' "$*"; }

# Airflow prints a lot; keep each step's output in a file and show its tail only on failure.
run_logged() {
  local name="$1"
  shift
  local started=$SECONDS
  if "$@" >"$LOGS/$name.log" 2>&1; then
    printf '   %-22s ok (%ss, log: %s)\n' "$name" "$((SECONDS - started))" "$LOGS/$name.log"
  else
    printf '   %-22s FAILED after %ss; last lines of %s:\n' \
      "$name" "$((SECONDS - started))" "$LOGS/$name.log" >&2
    tail -n 40 "$LOGS/$name.log" >&2
    exit 1
  fi
}

say "SYNTHETIC sample log ($DEMO_DAYS days, $FIRST_DAY to $LAST_DAY): made-up traffic, not real data"
"$BIN/python" "$REPO/examples/make_sample_log.py" "$LANDING" --days "$DEMO_DAYS" --last-day "$LAST_DAY"

say "Airflow metadata database (SQLite in $AIRFLOW_HOME)"
run_logged db-migrate "$BIN/airflow" db migrate

say "The chain under Airflow (airflow dags test), as of $AS_OF"
run_logged usagecast_ingest "$BIN/airflow" dags test usagecast_ingest "$AS_OF" \
  -c "{\"first_day\": \"$FIRST_DAY\", \"last_day\": \"$LAST_DAY\"}"
run_logged usagecast_train "$BIN/airflow" dags test usagecast_train "$AS_OF" \
  -c "{\"as_of\": \"$AS_OF\"}"
run_logged usagecast_forecast "$BIN/airflow" dags test usagecast_forecast "$AS_OF" \
  -c "{\"as_of\": \"$AS_OF\"}"

say "Forecast and monthly cost estimate (from the SYNTHETIC sample)"
"$BIN/python" - "$AS_OF" <<'PY'
import datetime as dt
import sys

from pipelines.reporting import render_summary
from pipelines.settings import load_settings

sys.stdout.write(render_summary(load_settings(), dt.date.fromisoformat(sys.argv[1])) + "\n")
PY

cat <<TXT

Everything is under $USAGECAST_DATA_DIR. To look around (Airflow on :8080, MLflow on :5000):
  export PATH=$BIN:\$PATH USAGECAST_DATA_DIR=$USAGECAST_DATA_DIR AIRFLOW_HOME=$AIRFLOW_HOME
  export AIRFLOW__CORE__DAGS_FOLDER=$REPO/dags AIRFLOW__CORE__LOAD_EXAMPLES=False
  airflow standalone
  mlflow ui --backend-store-uri sqlite:///$USAGECAST_DATA_DIR/mlflow/mlflow.db --port 5000
See docs/running.md for your own logs and the real replay log.
TXT
