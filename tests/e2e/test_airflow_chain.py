"""The whole chain under Airflow, the way the README runs it: `airflow dags test` of the
ingest, training and forecast DAGs on SQLite metadata, MLflow on a SQLite file and the
embedded reporting database, fed a three-week slice of the real replay log (two series:
CVS and PFE, real per-5-minute call counts with real Azure token sizes).

Then the backfill check: the three daily ingest runs a backfill of the next days creates
(one per data interval), the forecast their asset events start, then the same runs again;
the lake and every reporting table must hold the same rows after the rerun as before it.
(`airflow backfill create` itself needs a running scheduler and API server; `dags test`
runs the same DAG runs in-process.)
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import REPO_ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

AIRFLOW = Path(sys.executable).with_name("airflow")
SERIES = ("CVS", "PFE")
SERIES_IDS = {"anthropic/claude-opus-4/cvs", "deepseek/deepseek-v3.2/pfe"}
CHAIN_FIRST_DAY = dt.date(2015, 3, 1)
CHAIN_LAST_DAY = dt.date(2015, 3, 21)
CHAIN_AS_OF = CHAIN_LAST_DAY + dt.timedelta(days=1)
BACKFILL_DAYS = [CHAIN_AS_OF + dt.timedelta(days=offset) for offset in range(3)]
RUN_SPECIFIC_COLUMNS = {"run_id", "started_at", "finished_at", "duration_seconds",
                        "created_at", "published_at"}


class Chain:
    """An Airflow home, a data folder and a landing folder of the test's own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "var"
        self.landing = self.data_dir / "landing"
        self.env = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "USAGECAST_", "MLFLOW_"))
        }
        self.env.update(
            AIRFLOW_HOME=str(root / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(REPO_ROOT / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            USAGECAST_DATA_DIR=str(self.data_dir),
            USAGECAST_PROGRESS="false",
            # Two CV folds, as in the demo: the DAGs' wiring is the same, the retrain shorter.
            USAGECAST_CV_FOLDS="2",
        )

    def airflow(self, *arguments: str, timeout: int = 1800) -> str:
        completed = subprocess.run(
            [str(AIRFLOW), *arguments], env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, f"airflow {' '.join(arguments)}:\n{output[-6000:]}"
        return output

    def dags_test(self, dag_id: str, logical_date: dt.date, conf: dict | None = None) -> str:
        import json

        arguments = ["dags", "test", dag_id, logical_date.isoformat()]
        if conf:
            arguments += ["-c", json.dumps(conf)]
        return self.airflow(*arguments)

    def reporting_rows(self) -> dict[str, list[tuple]]:
        """Every reporting table's rows, without the columns that name a particular run."""
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{self.data_dir / 'reports.sqlite'}")
        rows = {}
        with engine.connect() as connection:
            for table in sa.inspect(engine).get_table_names():
                columns = [
                    column["name"] for column in sa.inspect(engine).get_columns(table)
                    if column["name"] not in RUN_SPECIFIC_COLUMNS
                ]
                query = sa.text(f'SELECT {", ".join(columns)} FROM "{table}"')
                rows[table] = sorted(
                    (tuple(row) for row in connection.execute(query)), key=repr
                )
        engine.dispose()
        return rows

    def asset_events(self) -> list[tuple[str, dict]]:
        """(asset name, extra) of every asset event in Airflow's metadata, oldest first."""
        import json
        import sqlite3

        with sqlite3.connect(self.root / "airflow" / "airflow.db") as connection:
            rows = connection.execute(
                "SELECT asset.name, asset_event.extra FROM asset_event "
                "JOIN asset ON asset.id = asset_event.asset_id ORDER BY asset_event.id"
            ).fetchall()
        return [(name, json.loads(extra or "{}")) for name, extra in rows]

    def lake_rows(self, days: list[dt.date]) -> dict[str, list[dict]]:
        from pipelines import lake

        rows = {}
        for table in ("calls", "usage_hourly", "usage_daily"):
            for day in days:
                partition = lake.read_partition(self.data_dir / "lake", table, day)
                rows[f"{table}/{day}"] = (
                    sorted(partition.to_pylist(), key=repr) if partition is not None else None
                )
        return rows


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path) -> Chain:
    """A migrated Airflow home and the replay log of two series in the landing folder."""
    replay_tool = real_data_dir.parent.parent / "tools" / "replay_calls.py"
    root = tmp_path_factory.mktemp("airflow_chain")
    replay = root / "replay"
    subprocess.run(
        [sys.executable, str(replay_tool), str(replay), "--series", *SERIES],
        check=True, capture_output=True,
    )
    chain = Chain(root)
    chain.landing.mkdir(parents=True)
    last_day = BACKFILL_DAYS[-1]
    for offset in range((last_day - CHAIN_FIRST_DAY).days + 1):
        day = CHAIN_FIRST_DAY + dt.timedelta(days=offset)
        shutil.copy(replay / f"calls-{day.isoformat()}.csv", chain.landing)
    chain.airflow("db", "migrate")
    return chain


def test_the_whole_chain_under_airflow_fills_the_reporting_tables(chain: Chain) -> None:
    ingest_log = chain.dags_test(
        "usagecast_ingest", CHAIN_AS_OF,
        {"first_day": CHAIN_FIRST_DAY.isoformat(), "last_day": CHAIN_LAST_DAY.isoformat()},
    )
    train_log = chain.dags_test(
        "usagecast_train", CHAIN_AS_OF, {"as_of": CHAIN_AS_OF.isoformat(), "shard_count": 2}
    )
    forecast_log = chain.dags_test(
        "usagecast_forecast", CHAIN_AS_OF, {"as_of": CHAIN_AS_OF.isoformat(), "shard_count": 2}
    )

    assert "21 files read" in ingest_log
    assert "state=success" in ingest_log and "state=success" in train_log
    assert "train_series_shard" in train_log and "map_index=1" in train_log
    assert "state=success" in forecast_log and "map_index=1" in forecast_log

    events = chain.asset_events()
    assert [name for name, _ in events] == [
        "usagecast_usage", "usagecast_model", "usagecast_reports"
    ]
    assert events[0][1]["as_of"] == CHAIN_AS_OF.isoformat()
    assert events[1][1]["alias"] == "champion"

    rows = chain.reporting_rows()
    as_of = CHAIN_AS_OF.isoformat()
    forecast_daily = [row for row in rows["forecast_daily"] if str(row[0]) == as_of]
    assert {row[1] for row in forecast_daily} == SERIES_IDS
    assert rows["forecast_hourly"], "no hourly capacity forecast"
    assert rows["cost_estimate_monthly"], "no monthly cost estimate"
    actual_days = {str(row[1]) for row in rows["usage_daily"]}
    assert CHAIN_LAST_DAY.isoformat() in actual_days


def test_a_backfill_of_three_days_then_a_rerun_leaves_the_same_rows(chain: Chain) -> None:
    as_of = BACKFILL_DAYS[-1] + dt.timedelta(days=1)

    def backfill() -> None:
        for day in BACKFILL_DAYS:
            ingest_log = chain.dags_test("usagecast_ingest", day + dt.timedelta(days=1))
            assert f"data_interval_start={day.isoformat()} 00:00:00+00:00" in ingest_log
        chain.dags_test("usagecast_forecast", as_of, {"as_of": as_of.isoformat()})

    backfill()
    usage_events = [extra for name, extra in chain.asset_events() if name == "usagecast_usage"]
    assert [event["as_of"] for event in usage_events[-3:]] == [
        (day + dt.timedelta(days=1)).isoformat() for day in BACKFILL_DAYS
    ]
    lake_first = chain.lake_rows(BACKFILL_DAYS)
    reporting_first = chain.reporting_rows()
    backfill()
    lake_second = chain.lake_rows(BACKFILL_DAYS)
    reporting_second = chain.reporting_rows()

    assert all(lake_first[f"calls/{day}"] for day in BACKFILL_DAYS)
    assert {str(row[0]) for row in reporting_first["forecast_daily"]} == {
        CHAIN_AS_OF.isoformat(), as_of.isoformat()
    }
    assert lake_second == lake_first
    for table, rows in reporting_first.items():
        assert len(reporting_second[table]) == len(rows), table
        assert reporting_second[table] == rows, table
