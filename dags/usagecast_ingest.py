"""Ingest one day of gateway logs from the landing folder, validate it, announce fresh usage.

Every day at 00:00 UTC this DAG reads the landing files of the day that just ended
(its data interval), stores them in the Parquet lake, and runs the data-quality
suites on the published partitions. When they pass, it updates the
`usagecast_usage` asset, which starts the forecast DAG.

- **Backfill** past days with `airflow backfill create --dag-id usagecast_ingest
  --from-date 2024-03-01 --to-date 2024-03-07`; each run reads only its own day.
- **Load a range by hand**: trigger with `first_day` and `last_day` set.
- **Reruns** store nothing twice: files already ingested are skipped.
- A data-quality failure fails `validate_usage` at once (no retry) and nothing
  downstream runs; fix the file, then clear the task.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, dag, task

from pipelines.orchestration import DAY_PARAM, USAGE_ASSET, default_task_args

USAGE = Asset(name=USAGE_ASSET[0], uri=USAGE_ASSET[1])


@dag(
    dag_id="usagecast_ingest",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    # Early so that old logs can be backfilled; catchup is off, so nothing past runs by itself.
    start_date=dt.datetime(2010, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(),
    tags=["usagecast", "ingest"],
    params={
        "first_day": Param(
            None,
            description="Manual runs only: first UTC day (YYYY-MM-DD) of a range to load "
            "instead of the run's data interval. Set last_day too.",
            **DAY_PARAM,
        ),
        "last_day": Param(
            None,
            description="Manual runs only: last UTC day (YYYY-MM-DD, included) of the range.",
            **DAY_PARAM,
        ),
    },
    doc_md=__doc__,
)
def usagecast_ingest() -> None:
    # One lake writer and one Great Expectations run at a time, across scheduled, manual and
    # backfill runs alike (a backfill does not honour the DAG's max_active_runs).
    @task(max_active_tis_per_dag=1)
    def ingest_landing_files(
        data_interval_start=None, data_interval_end=None, params=None
    ) -> dict:
        """Store the interval's landing files in the lake; skip the run if none landed."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pipelines.orchestration import ingest_interval, run_ingest, step
        from pipelines.settings import load_settings

        with step("ingest"):
            start, end = ingest_interval(params, data_interval_start, data_interval_end)
            result = run_ingest(load_settings(progress=False), start, end)
        if not result["files"]:
            raise AirflowSkipException(f"no landing files for [{start}, {end})")
        result["interval"] = [start.isoformat(), end.isoformat()]
        return result

    @task(outlets=[USAGE], max_active_tis_per_dag=1)
    def validate_usage(ingested: dict, outlet_events=None) -> dict:
        """Run the data-quality suites on the interval's published partitions."""
        from pipelines.orchestration import interval_days, run_validation, step
        from pipelines.settings import load_settings

        start, end = (dt.datetime.fromisoformat(value) for value in ingested["interval"])
        with step("validate"):
            report = run_validation(
                load_settings(progress=False), interval_days(start, end), now=end
            )
        outlet_events[USAGE].extra = {"as_of": report["as_of"], "days": report["days"]}
        return report

    validate_usage(ingest_landing_files())


usagecast_ingest_dag = usagecast_ingest()
