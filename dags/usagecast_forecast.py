"""Forecast usage and cost from the champion model; fill the reporting tables.

Runs whenever the ingest DAG announces fresh, validated usage (`usagecast_usage`)
or the training DAG registers a model (`usagecast_model`), and by hand. The as-of
date comes from the `as_of` param, else from the asset event (the day after the
last validated day), so a rerun of a run rewrites the same rows. Series shards
forecast in parallel mapped tasks; `publish` writes every reporting table of that
as-of date in one transaction, replacing what an earlier run of it wrote.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, task

from pipelines.orchestration import (
    DAY_PARAM,
    MODEL_ASSET,
    REPORTS_ASSET,
    USAGE_ASSET,
    default_task_args,
)

USAGE = Asset(name=USAGE_ASSET[0], uri=USAGE_ASSET[1])
MODEL = Asset(name=MODEL_ASSET[0], uri=MODEL_ASSET[1])
REPORTS = Asset(name=REPORTS_ASSET[0], uri=REPORTS_ASSET[1])


@dag(
    dag_id="usagecast_forecast",
    schedule=USAGE | MODEL,
    start_date=dt.datetime(2010, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(),
    tags=["usagecast", "forecast", "cost"],
    params={
        "as_of": Param(
            None,
            **DAY_PARAM,
            description="Forecast from this UTC day (YYYY-MM-DD) on, with history before "
            "it. Empty: the day after the last validated day that triggered the run, else "
            "the day after the lake's last day.",
        ),
        "series_filter": Param(
            None,
            type=["null", "string"],
            minLength=1,
            description="Only series whose id matches this; empty for all series.",
        ),
        "horizon_days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=120,
            description="Days of daily forecasts. Empty: through the end of next month in "
            "the business time zone, which is also the shortest the cost estimate accepts.",
        ),
        "horizon_hours": Param(
            48,
            type="integer",
            minimum=1,
            maximum=48,
            description="Hours of hourly (capacity) forecasts from the as-of date.",
        ),
        "shard_count": Param(
            4,
            type="integer",
            minimum=1,
            maximum=256,
            description="How many shards the series are split into; one mapped task each.",
        ),
    },
    doc_md=__doc__,
)
def usagecast_forecast() -> None:
    @task
    def plan(params=None, triggering_asset_events=None) -> dict:
        """Fix the as-of date, the champion version and the series shards."""
        from pipelines.forecast import plan_forecast
        from pipelines.orchestration import event_extras, resolve_as_of, step
        from pipelines.settings import load_settings

        as_of = resolve_as_of(params["as_of"], event_extras(triggering_asset_events))
        with step("plan_forecast"):
            return plan_forecast(
                load_settings(progress=False),
                as_of=dt.date.fromisoformat(as_of) if as_of else None,
                series_filter=params["series_filter"] or None,
                shard_count=params["shard_count"],
                horizon_days=params["horizon_days"],
                horizon_hours=params["horizon_hours"],
            )

    @task
    def shards(forecast_plan: dict) -> list[int]:
        from pipelines.orchestration import shard_indexes

        return shard_indexes(forecast_plan)

    @task
    def forecast_series_shard(forecast_plan: dict, shard_index: int) -> str:
        """Daily and hourly quantile forecasts of one shard, written beside the plan."""
        from pipelines.forecast import forecast_shard
        from pipelines.orchestration import step
        from pipelines.settings import load_settings

        with step(f"forecast_shard[{shard_index}]"):
            return forecast_shard(load_settings(progress=False), forecast_plan, shard_index)

    @task(outlets=[REPORTS])
    def publish(forecast_plan: dict, shard_outputs: list[str], outlet_events=None) -> dict:
        """Cost, budgets and capacity from the forecasts; all reporting tables at once."""
        from pipelines.forecast import publish_forecast
        from pipelines.orchestration import step
        from pipelines.settings import load_settings

        with step("publish_forecast"):
            published = publish_forecast(
                load_settings(progress=False), forecast_plan, list(shard_outputs)
            )
        outlet_events[REPORTS].extra = {"as_of": forecast_plan.get("as_of")}
        return published

    forecast_plan = plan()
    shard_outputs = forecast_series_shard.partial(forecast_plan=forecast_plan).expand(
        shard_index=shards(forecast_plan)
    )
    publish(forecast_plan, shard_outputs)


usagecast_forecast_dag = usagecast_forecast()
