"""Retrain the forecasters every week, or now: cross-validate, register, maybe promote.

The plan fixes the training window and the data hash, and splits the series into
shards. Per-series models (Prophet with its cross-validation) train one shard per
mapped task, so more Celery workers finish a large retrain sooner; the global
LightGBM models train beside them. `register` combines everything into one MLflow
run and registry version, and moves the `champion` alias only if the new version
beats the current champion by the promotion margin (or `force_promotion` is set).
A new champion updates the `usagecast_model` asset, which refreshes the forecast.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, TriggerRule, dag, task

from pipelines.orchestration import DAY_PARAM, MODEL_ASSET, default_task_args

MODEL = Asset(name=MODEL_ASSET[0], uri=MODEL_ASSET[1])


@dag(
    dag_id="usagecast_train",
    schedule=CronDataIntervalTimetable("0 2 * * 1", timezone="UTC"),
    start_date=dt.datetime(2010, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(),
    tags=["usagecast", "train"],
    params={
        "as_of": Param(
            None,
            **DAY_PARAM,
            description="Train on history before this UTC day (YYYY-MM-DD). Empty: the end "
            "of the run's data interval for a scheduled run, else the day after the lake's "
            "last day.",
        ),
        "models": Param(
            ["lightgbm", "prophet"],
            type="array",
            items={"type": "string", "enum": ["lightgbm", "prophet"]},
            minItems=1,
            uniqueItems=True,
            description="Model families to cross-validate and ensemble.",
        ),
        "series_filter": Param(
            None,
            type=["null", "string"],
            minLength=1,
            description="Only series whose id matches this (e.g. openai/gpt-4.1/crm); "
            "empty for all series.",
        ),
        "force_promotion": Param(
            False,
            type="boolean",
            description="Make the new version the champion even if it does not beat the "
            "current one by the promotion margin.",
        ),
        "shard_count": Param(
            4,
            type="integer",
            minimum=1,
            maximum=256,
            description="How many shards the per-series models are split into; one mapped "
            "task per shard. Raise it with the number of workers.",
        ),
    },
    doc_md=__doc__,
)
def usagecast_train() -> None:
    @task
    def plan(params=None, data_interval_end=None, dag_run=None) -> dict:
        """Fix the data window, its hash, the shards and the run folder for every task."""
        from pipelines.orchestration import is_timed_run, resolve_as_of, step
        from pipelines.settings import load_settings
        from pipelines.train import plan_training

        as_of = resolve_as_of(
            params["as_of"], interval_end=data_interval_end if is_timed_run(dag_run) else None
        )
        with step("plan_training"):
            return plan_training(
                load_settings(progress=False),
                as_of=dt.date.fromisoformat(as_of) if as_of else None,
                series_filter=params["series_filter"] or None,
                models=tuple(params["models"]),
                shard_count=params["shard_count"],
            )

    @task
    def shards(training_plan: dict) -> list[int]:
        from pipelines.orchestration import shard_indexes

        return shard_indexes(training_plan)

    @task
    def train_series_shard(training_plan: dict, shard_index: int) -> str:
        """Per-series models and their cross-validation for one shard."""
        from pipelines.orchestration import step
        from pipelines.settings import load_settings
        from pipelines.train import train_shard

        with step(f"train_shard[{shard_index}]"):
            return train_shard(load_settings(progress=False), training_plan, shard_index)

    @task
    def train_global_models(training_plan: dict) -> str:
        """The global LightGBM models across all series, with their cross-validation."""
        from pipelines.orchestration import step
        from pipelines.settings import load_settings
        from pipelines.train import train_global

        with step("train_global"):
            return train_global(load_settings(progress=False), training_plan)

    @task(outlets=[MODEL], trigger_rule=TriggerRule.NONE_FAILED)
    def register(
        training_plan: dict,
        shard_outputs: list[str] | None,
        global_output: str,
        params=None,
        outlet_events=None,
    ) -> dict:
        """Ensemble weights, the MLflow parent run, a registry version, the alias decision."""
        from pipelines.orchestration import step
        from pipelines.settings import load_settings
        from pipelines.train import register_training

        with step("register"):
            decision = register_training(
                load_settings(progress=False),
                training_plan,
                list(shard_outputs or []),
                global_output,
                force_promotion=params["force_promotion"],
            )
        outlet_events[MODEL].extra = {
            "version": str(decision.get("version")),
            "alias": decision.get("alias"),
        }
        return decision

    training_plan = plan()
    shard_outputs = train_series_shard.partial(training_plan=training_plan).expand(
        shard_index=shards(training_plan)
    )
    register(training_plan, shard_outputs, train_global_models(training_plan))


usagecast_train_dag = usagecast_train()
