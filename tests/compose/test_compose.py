"""The scale-out stack in docker-compose.yaml is read, not run (no Docker engine here): its
services, the settings every Airflow service shares, and the mounts that let tasks of one run
land on different workers must agree with each other and with usagecast's own settings."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from pipelines.settings import REPO_ROOT, load_settings

COMPOSE_FILE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
POSTGRES_INIT = REPO_ROOT / "docker" / "postgres-init.sql"

AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
MOUNT = re.compile(r"(?P<source>\$\{[^}]*\}|[^:]+):(?P<target>[^:]+)(?::(?:ro|rw))?")
"""``source:target[:mode]``, where the source may be a ``${VAR:-default}`` substitution."""

LONG_RUNNING_AIRFLOW = sorted(AIRFLOW_COMMANDS)
ALL_AIRFLOW = [*LONG_RUNNING_AIRFLOW, "airflow-init"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> source (named volume or host path) of a service's mounts."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target = MOUNT.fullmatch(entry).group("source", "target")
        mounts[target] = source
    return mounts


def test_the_stack_has_every_airflow_component_and_its_backing_services(services: dict) -> None:
    assert set(services) == {*ALL_AIRFLOW, "postgres", "redis", "mlflow"}
    for name, command in AIRFLOW_COMMANDS.items():
        assert services[name]["command"] == command, name


def test_every_airflow_service_shares_one_image_and_the_same_settings(
    compose: dict, services: dict
) -> None:
    common = compose["x-airflow-common"]["environment"]

    for name in ALL_AIRFLOW:
        service = services[name]
        assert service["image"] == "usagecast-airflow:latest", name
        assert service["build"]["dockerfile"] == "docker/Dockerfile", name
        for key, value in common.items():
            assert service["environment"][key] == value, (name, key)
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert urlsplit(common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert urlsplit(common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname == (
        "airflow-apiserver"
    )


def test_every_airflow_variable_names_a_real_airflow_option(compose: dict) -> None:
    from airflow.configuration import retrieve_configuration_description

    known = {
        section: set(options["options"])
        for section, options in retrieve_configuration_description().items()
    }
    unknown = []
    for variable in compose["x-airflow-common"]["environment"]:
        if not variable.startswith("AIRFLOW__"):
            continue
        section, option = variable[len("AIRFLOW__"):].lower().split("__", 1)
        if option not in known.get(section, set()):
            unknown.append(variable)
    assert unknown == []


def test_the_usagecast_variables_build_settings_for_postgres_and_the_mlflow_server(
    compose: dict,
) -> None:
    environment = compose["x-airflow-common"]["environment"]
    read_by_settings = set(
        re.findall(r'get\("([A-Z_]+)"\)', (REPO_ROOT / "pipelines" / "settings.py").read_text())
    )

    usagecast_keys = {
        key.removeprefix("USAGECAST_") for key in environment if key.startswith("USAGECAST_")
    }
    settings = load_settings(env={key: str(value) for key, value in environment.items()})

    assert usagecast_keys <= read_by_settings
    assert urlsplit(settings.resolved_report_db_url).hostname == "postgres"
    assert settings.resolved_report_db_url.startswith("postgresql+psycopg2://")
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
    assert settings.progress is False


def test_workers_share_the_lake_landing_and_mlflow_artifacts_at_the_same_paths(
    compose: dict, services: dict
) -> None:
    settings = load_settings(
        env={k: str(v) for k, v in compose["x-airflow-common"]["environment"].items()}
    )
    artifacts_path = str(settings.data_dir / "mlflow" / "artifacts")

    for name in ALL_AIRFLOW:
        mounts = _mounts(services[name])
        assert mounts[str(settings.data_dir)] == "usagecast-data", name
        assert mounts[artifacts_path] == "mlflow-artifacts", name
        assert mounts[str(settings.resolved_landing_dir)] == "${USAGECAST_LANDING:-./landing}"
        assert mounts["/opt/usagecast/dags"] == "./dags", name
    assert _mounts(services["mlflow"])[artifacts_path] == "mlflow-artifacts"
    assert {"usagecast-data", "mlflow-artifacts", "postgres-data"} <= set(compose["volumes"])


def test_mlflow_keeps_runs_in_postgres_and_artifacts_on_the_shared_volume(services: dict) -> None:
    mlflow = services["mlflow"]
    flags = dict(
        argument.split("=", 1) for argument in mlflow["command"] if argument.startswith("--")
        and "=" in argument
    )

    assert mlflow["command"][:2] == ["mlflow", "server"]
    assert urlsplit(flags["--backend-store-uri"]).hostname == "postgres"
    assert flags["--backend-store-uri"].startswith("postgresql")
    assert _mounts(mlflow)[flags["--artifacts-destination"]] == "mlflow-artifacts"
    assert "--serve-artifacts" in mlflow["command"]
    assert mlflow["ports"] == ["5000:5000"]


def test_postgres_creates_every_database_the_stack_connects_to(
    compose: dict, services: dict
) -> None:
    created = set(re.findall(r"CREATE DATABASE (\w+)", POSTGRES_INIT.read_text()))
    environment = compose["x-airflow-common"]["environment"]
    urls = [
        environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        environment["USAGECAST_REPORT_DB_URL"],
        next(arg.split("=", 1)[1] for arg in services["mlflow"]["command"]
             if arg.startswith("--backend-store-uri=")),
    ]

    assert {urlsplit(url).path.lstrip("/") for url in urls} == created == {
        "airflow", "mlflow", "usagecast"
    }
    assert _mounts(services["postgres"])["/docker-entrypoint-initdb.d/10-usagecast.sql"] == (
        "./docker/postgres-init.sql"
    )


def test_services_wait_for_healthy_dependencies(services: dict) -> None:
    for name in LONG_RUNNING_AIRFLOW:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert "healthcheck" in services[name], name
    for name in ("postgres", "redis", "mlflow"):
        assert "healthcheck" in services[name], name


def test_the_image_is_the_pinned_airflow_with_the_project_installed() -> None:
    dockerfile = DOCKERFILE.read_text()
    pinned = re.search(
        r"^apache-airflow==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.MULTILINE
    )[1]

    assert re.search(rf"^FROM apache/airflow:{re.escape(pinned)}-python3\.11$", dockerfile,
                     re.MULTILINE)
    assert "-r requirements.txt" in dockerfile
    assert "pip install --no-cache-dir --no-deps -e /opt/usagecast" in dockerfile
    copied = re.findall(r"^COPY --chown=\S+ (\S+) /opt/usagecast/\S*$", dockerfile, re.MULTILINE)
    assert {"pipelines", "features", "models", "config", "expectations", "dags"} <= set(copied)
    for source in copied:
        assert (REPO_ROOT / source).exists(), source


def test_the_compose_file_is_valid_yaml_without_tabs() -> None:
    text = Path(COMPOSE_FILE).read_text()

    assert "\t" not in text
    assert yaml.safe_load(text)["x-airflow-common"]["user"] == "${AIRFLOW_UID:-50000}:0"
