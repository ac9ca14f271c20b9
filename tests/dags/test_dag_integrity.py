"""Every DAG parses cleanly, cheaply and without touching a database, and declares how it
retries, who it is for, and how its steps connect.

The DAG folder is parsed in a fresh interpreter (the way the DAG processor does) so that
the modules it imports and the queries it runs are its own, not the test session's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from pipelines.settings import REPO_ROOT

DAGS_DIR = REPO_ROOT / "dags"
EXPECTED_DAGS = {"usagecast_ingest", "usagecast_train", "usagecast_forecast"}
HEAVY_MODULES = (
    "pandas", "pyarrow", "mlflow", "lightgbm", "prophet", "great_expectations", "sklearn",
    "duckdb", "pipelines.ingest", "pipelines.train", "pipelines.forecast", "pipelines.validate",
)

PROBE = r"""
import json, sys, time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

statements = []
event.listen(sa.engine.Engine, "before_cursor_execute",
             lambda conn, cursor, statement, *args: statements.append(statement))

import airflow.sdk
from airflow.sdk import BaseHook, Variable

def refuse(*args, **kwargs):
    raise RuntimeError("a DAG file used a connection or a variable while being parsed")

BaseHook.get_connection = refuse
Variable.get = refuse

modules_before = set(sys.modules)
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator

dags_dir = Path(sys.argv[1])
timings = {}
dags = {}
errors = {}
for path in sorted(dags_dir.glob("*.py")):
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(path))
    timings[path.name] = time.perf_counter() - started
    errors.update(bag.import_errors)
    dags.update(bag.dags)

heavy = sorted(set(sys.modules) - modules_before)
report = {"errors": errors, "timings": timings, "statements": statements,
          "new_modules": heavy, "dags": {}}
for dag_id, dag in dags.items():
    report["dags"][dag_id] = {
        "tags": sorted(dag.tags),
        "catchup": dag.catchup,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "timetable": type(dag.timetable).__name__,
        "has_doc": bool(dag.doc_md),
        "max_active_runs": dag.max_active_runs,
        "params": {name: dag.params.get_param(name).description for name in dag.params},
        "tasks": {
            task.task_id: {
                "retries": task.retries,
                "backoff": float(task.retry_exponential_backoff or 0),
                "has_failure_callback": bool(task.on_failure_callback),
                "mapped": isinstance(task, MappedOperator),
                "outlets": [getattr(outlet, "name", None) for outlet in task.outlets],
                "upstream": sorted(task.upstream_task_ids),
                "trigger_rule": getattr(task.trigger_rule, "value", str(task.trigger_rule)),
                "max_active_tis_per_dag": task.max_active_tis_per_dag,
            }
            for task in dag.tasks
        },
    }
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What parsing the DAG folder did, from a fresh interpreter with its own Airflow home."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
    }
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(DAGS_DIR)],
        env=env, capture_output=True, text=True, check=False, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_dag_imports_without_errors(parsed: dict) -> None:
    assert parsed["errors"] == {}
    assert set(parsed["dags"]) == EXPECTED_DAGS


def test_parsing_runs_no_database_query_and_opens_no_connection(parsed: dict) -> None:
    assert parsed["statements"] == []


def test_parsing_imports_no_heavy_library_or_pipeline_step(parsed: dict) -> None:
    loaded = [
        name for name in parsed["new_modules"]
        if any(name == heavy or name.startswith(heavy + ".") for heavy in HEAVY_MODULES)
    ]
    assert loaded == []


def test_parse_time_of_each_dag_file_is_reported(
    parsed: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    timings = parsed["timings"]
    lines = [f"parse time {name}: {seconds * 1000:.0f} ms" for name, seconds in sorted(
        timings.items())]
    lines.append(f"parse time of all {len(timings)} DAG files: "
                 f"{sum(timings.values()) * 1000:.0f} ms")
    with capsys.disabled():
        sys.stdout.write("\n" + "\n".join(lines) + "\n")
    assert set(timings) == {f"{dag_id}.py" for dag_id in EXPECTED_DAGS}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_declares_tags_retries_backoff_and_a_failure_callback(
    parsed: dict, dag_id: str
) -> None:
    dag = parsed["dags"][dag_id]

    assert "usagecast" in dag["tags"] and len(dag["tags"]) >= 2
    assert dag["catchup"] is False
    assert dag["has_doc"]
    assert dag["max_active_runs"] == 1
    assert dt.datetime.fromisoformat(dag["start_date"]).utcoffset() == dt.timedelta(0)
    for task_id, task in dag["tasks"].items():
        assert task["retries"] >= 2, task_id
        assert task["backoff"] > 1, task_id
        assert task["has_failure_callback"], task_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_every_param_says_what_it_does(parsed: dict, dag_id: str) -> None:
    params = parsed["dags"][dag_id]["params"]

    assert params
    assert all(description and len(description) > 20 for description in params.values())


def test_ingest_runs_on_real_daily_intervals_and_announces_validated_usage(parsed: dict) -> None:
    ingest = parsed["dags"]["usagecast_ingest"]

    assert ingest["timetable"] == "CronDataIntervalTimetable"
    assert ingest["tasks"]["validate_usage"]["upstream"] == ["ingest_landing_files"]
    assert ingest["tasks"]["validate_usage"]["outlets"] == ["usagecast_usage"]
    assert ingest["tasks"]["ingest_landing_files"]["outlets"] == []
    for task_id in ("ingest_landing_files", "validate_usage"):
        assert ingest["tasks"][task_id]["max_active_tis_per_dag"] == 1, task_id


def test_training_fans_out_over_shards_and_registers_after_both_branches(parsed: dict) -> None:
    tasks = parsed["dags"]["usagecast_train"]["tasks"]

    assert parsed["dags"]["usagecast_train"]["timetable"] == "CronDataIntervalTimetable"
    assert tasks["train_series_shard"]["mapped"]
    assert not tasks["train_global_models"]["mapped"]
    assert tasks["register"]["upstream"] == [
        "plan", "train_global_models", "train_series_shard"
    ]
    assert tasks["register"]["trigger_rule"] == "none_failed"
    assert tasks["register"]["outlets"] == ["usagecast_model"]


def test_forecast_is_scheduled_on_fresh_usage_and_fans_out(parsed: dict) -> None:
    forecast = parsed["dags"]["usagecast_forecast"]

    assert forecast["timetable"] == "AssetTriggeredTimetable"
    assert forecast["tasks"]["forecast_series_shard"]["mapped"]
    assert forecast["tasks"]["publish"]["upstream"] == ["forecast_series_shard", "plan"]
    assert forecast["tasks"]["publish"]["outlets"] == ["usagecast_reports"]


def test_a_cron_data_interval_covers_a_whole_day() -> None:
    from airflow.sdk import CronDataIntervalTimetable
    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(CronDataIntervalTimetable("0 0 * * *", timezone="UTC"))
    run_after = dt.datetime(2024, 3, 6, 0, 30, tzinfo=dt.UTC)

    interval = timetable.infer_manual_data_interval(run_after=run_after)

    assert (interval.start, interval.end) == (
        dt.datetime(2024, 3, 5, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 6, tzinfo=dt.UTC),
    )


def _run_params(dag_file: str, conf: dict):
    """The params of a run of one DAG triggered with ``conf``, as Airflow merges them."""
    import copy
    import importlib.util

    from airflow.sdk import DAG

    spec = importlib.util.spec_from_file_location(f"dag_under_test_{dag_file[:-3]}",
                                                  DAGS_DIR / dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = next(value for value in vars(module).values() if isinstance(value, DAG))
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params


@pytest.mark.parametrize(
    ("dag_file", "bad_conf"),
    [
        ("usagecast_train.py", {"as_of": "2024-13-01"}),
        ("usagecast_train.py", {"as_of": "yesterday"}),
        ("usagecast_train.py", {"models": ["xgboost"]}),
        ("usagecast_train.py", {"models": []}),
        ("usagecast_train.py", {"shard_count": 0}),
        ("usagecast_train.py", {"force_promotion": "yes"}),
        ("usagecast_forecast.py", {"series_filter": ""}),
        ("usagecast_forecast.py", {"as_of": "2024-02-30"}),
        ("usagecast_ingest.py", {"first_day": "03/05/2024"}),
    ],
)
def test_params_refuse_bad_values_before_a_run_starts(dag_file: str, bad_conf: dict) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        _run_params(dag_file, bad_conf).validate()


def test_params_accept_a_sensible_manual_run() -> None:
    params = _run_params(
        "usagecast_train.py",
        {"as_of": "2024-03-04", "models": ["prophet"], "series_filter": "openai/gpt-4.1/crm",
         "force_promotion": True, "shard_count": 8},
    )

    assert params.validate() == {
        "as_of": "2024-03-04", "models": ["prophet"], "series_filter": "openai/gpt-4.1/crm",
        "force_promotion": True, "shard_count": 8,
    }
