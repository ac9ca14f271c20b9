"""The forecast step end to end with a test-only champion (a 7-day mean), by hand.

The lake is synthetic (labelled): series ``openai/gpt-4.1/crm`` makes ``d`` calls in
every hour of June ``d`` (1,000 input and 100 output tokens each); series
``acme/secret/ops`` makes 4 calls an hour on a model with no price.
"""

from __future__ import annotations

import datetime as dt
import json

import mlflow
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from pipelines.errors import UsagecastError
from pipelines.forecast import run_forecast
from pipelines.lake import write_partition
from pipelines.schema import USAGE_DAILY_SCHEMA, USAGE_HOURLY_SCHEMA

PRICED = "openai/gpt-4.1/crm"
UNPRICED = "acme/secret/ops"
LAST_DAY = 14


class WeekMeanForecaster(mlflow.pyfunc.PythonModel):
    """Test-only model honouring the champion contract: p50 = mean of the last 7 days."""

    def predict(self, context, model_input, params=None):
        as_of = pd.Timestamp(params["as_of"])
        history = model_input[model_input["ds"] < as_of].copy()
        history["day"] = history["ds"].dt.floor("D")
        daily = history.groupby(["series_id", "target", "day"], as_index=False)["y"].sum()
        rows = []
        for (series_id, target), unit in daily.groupby(["series_id", "target"]):
            level = unit.sort_values("day")["y"].tail(7).mean()
            for step in range(int(params["horizon_days"])):
                rows.append(("day", series_id, target, as_of + pd.Timedelta(days=step), level))
        hourly = history[history["resolution"] == "hour"]
        for (series_id, target), unit in hourly.groupby(["series_id", "target"]):
            last_day = unit.sort_values("ds")["y"].tail(24).to_numpy()
            for step in range(int(params["horizon_hours"])):
                rows.append(
                    (
                        "hour",
                        series_id,
                        target,
                        as_of + pd.Timedelta(hours=step),
                        last_day[step % 24],
                    )
                )
        frame = pd.DataFrame(rows, columns=["resolution", "series_id", "target", "ds", "p50"])
        return frame.assign(
            p10=frame["p50"] * 0.5,
            p90=frame["p50"] * 2.0,
            model_version="test",
            history_days=7,
            low_history=False,
        )


def write_lake(settings):
    """Synthetic lake for June 2025, days 1..14 (see the module docstring)."""
    for day_number in range(1, LAST_DAY + 1):
        day = dt.date(2025, 6, day_number)
        hours = pd.date_range(f"2025-06-{day_number:02d}", periods=24, freq="h", tz="UTC")
        hourly = pd.concat(
            [
                pd.DataFrame(
                    {
                        "series_id": PRICED,
                        "provider": "openai",
                        "model": "gpt-4.1",
                        "team": "crm",
                        "hour": hours,
                        "requests": day_number,
                        "errors": 0,
                        "input_tokens": 1000 * day_number,
                        "output_tokens": 100 * day_number,
                        "cached_input_tokens": 0,
                        "cache_write_tokens": 0,
                        "calls_without_usage": 0,
                    }
                ),
                pd.DataFrame(
                    {
                        "series_id": UNPRICED,
                        "provider": "acme",
                        "model": "secret",
                        "team": "ops",
                        "hour": hours,
                        "requests": 4,
                        "errors": 0,
                        "input_tokens": 2000,
                        "output_tokens": 200,
                        "cached_input_tokens": 0,
                        "cache_write_tokens": 0,
                        "calls_without_usage": 0,
                    }
                ),
            ],
            ignore_index=True,
        )
        daily = pd.DataFrame(
            [
                {
                    "series_id": PRICED,
                    "provider": "openai",
                    "model": "gpt-4.1",
                    "team": "crm",
                    "day": day,
                    "resolution": "hour",
                    "requests": 24 * day_number,
                    "errors": 0,
                    "input_tokens": 24_000 * day_number,
                    "output_tokens": 2_400 * day_number,
                    "cached_input_tokens": 0,
                    "cache_write_tokens": 0,
                    "calls_without_usage": 0,
                },
                {
                    "series_id": UNPRICED,
                    "provider": "acme",
                    "model": "secret",
                    "team": "ops",
                    "day": day,
                    "resolution": "hour",
                    "requests": 96,
                    "errors": 0,
                    "input_tokens": 48_000,
                    "output_tokens": 4_800,
                    "cached_input_tokens": 0,
                    "cache_write_tokens": 0,
                    "calls_without_usage": 0,
                },
            ]
        )
        write_partition(
            settings.lake_dir,
            "usage_hourly",
            day,
            pa.Table.from_pandas(hourly, schema=USAGE_HOURLY_SCHEMA, preserve_index=False),
        )
        write_partition(
            settings.lake_dir,
            "usage_daily",
            day,
            pa.Table.from_pandas(daily, schema=USAGE_DAILY_SCHEMA, preserve_index=False),
        )


def register_champion(settings):
    """Log the test model to the settings' MLflow store and make it the champion."""
    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.resolved_tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment(
        settings.experiment, artifact_location=settings.mlflow_artifact_root.as_uri()
    )
    example = pd.DataFrame(
        {
            "series_id": ["s"],
            "resolution": ["day"],
            "ds": [pd.Timestamp("2025-06-01")],
            "target": ["requests"],
            "y": [1.0],
        }
    )
    params = {"as_of": "2025-06-02", "horizon_days": 1, "horizon_hours": 0}
    signature = mlflow.models.infer_signature(
        example, WeekMeanForecaster().predict(None, example, params), params
    )
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=WeekMeanForecaster(),
            signature=signature,
            registered_model_name=settings.registered_model,
        )
    client.set_registered_model_alias(
        settings.registered_model, "champion", info.registered_model_version
    )


@pytest.fixture
def forecast_settings(settings, monkeypatch):
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which would leak between tests.
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", f"sqlite:///{(settings.mlflow_dir / 'mlflow.db').resolve()}"
    )
    write_lake(settings)
    register_champion(settings)
    return settings


def table(settings, name, order):
    engine = sa.create_engine(settings.resolved_report_db_url)
    try:
        with engine.connect() as connection:
            return pd.read_sql(sa.text(f"SELECT * FROM {name} ORDER BY {order}"), connection)
    finally:
        engine.dispose()


def test_forecast_writes_hand_computed_rows_and_the_june_cost(forecast_settings):
    result = run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15))

    daily = table(forecast_settings, "forecast_daily", "series_id, target, day")
    requests = daily[(daily["series_id"] == PRICED) & (daily["target"] == "requests")]
    # June 15 through July 31: 47 days; the mean of days 8..14 is 11 calls x 24 hours.
    assert len(requests) == 47
    assert requests["p50"].unique().tolist() == [264.0]
    hourly = table(forecast_settings, "forecast_hourly", "series_id, target, hour")
    assert len(hourly) == 2 * 48 * 4 and set(hourly["series_id"]) == {PRICED, UNPRICED}

    cost = table(forecast_settings, "cost_estimate_monthly", "level, name, month")
    june = cost[(cost["month_index"] == 0)].set_index("name")
    # Actual: sum over days 1..14 of d x (24,000 x $2 + 2,400 x $8) / 1M = 105 x 0.0672.
    assert june.loc[PRICED, "actual_cost_to_date"] == pytest.approx(7.056)
    # Rest: 16 days x (264,000 x $2 + 26,400 x $8) / 1M = 16 x 0.7392.
    assert june.loc[PRICED, "forecast_rest_p50"] == pytest.approx(11.8272)
    # This champion learned no month interval: the setting's correlation 0.75 adds the
    # 16 daily distances ($0.3696 below, $0.7392 above) to sqrt(0.25*16 + 0.75*256) = 14.
    assert june.loc[PRICED, "forecast_rest_p10"] == pytest.approx(11.8272 - 14 * 0.3696)
    assert june.loc[PRICED, "forecast_rest_p90"] == pytest.approx(11.8272 + 14 * 0.7392)
    assert pd.isna(june.loc[UNPRICED, "estimate_p50"])
    assert june.loc["all", "estimate_p50"] == pytest.approx(18.8832)
    assert june.loc["all", "unpriced_models"] == "acme/secret"
    assert result["unpriced_models"] == ["acme/secret"]
    assert result["month_estimate_p50"] == pytest.approx(18.8832)

    usage = table(forecast_settings, "usage_daily", "series_id, day")
    assert len(usage) == 2 * LAST_DAY
    assert usage[usage["series_id"] == UNPRICED]["cost"].isna().all()


def test_the_month_interval_the_champion_learned_in_cv_sets_the_cost_interval(
    forecast_settings,
):
    client = mlflow.MlflowClient()
    learned = {"correlation": 1.0, "spread_factor": 1.5, "cv_coverage": 0.8}
    client.set_model_version_tag(
        forecast_settings.registered_model, "1", "month_interval", json.dumps(learned)
    )
    run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15))

    cost = table(forecast_settings, "cost_estimate_monthly", "level, name, month")
    june = cost[(cost["month_index"] == 0)].set_index("name")
    # Fully correlated days times 1.5: 1.5 x 16 x $0.3696 below, 1.5 x 16 x $0.7392 above.
    assert june.loc[PRICED, "forecast_rest_p10"] == pytest.approx(11.8272 - 8.8704)
    assert june.loc[PRICED, "forecast_rest_p90"] == pytest.approx(11.8272 + 17.7408)


def test_horizons_lengthen_the_daily_forecast_and_shorten_the_hourly_one(forecast_settings):
    with pytest.raises(UsagecastError, match="needs at least 47 days"):
        run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15), horizon_days=30)

    run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15), horizon_days=60, horizon_hours=6)

    daily = table(forecast_settings, "forecast_daily", "series_id, target, day")
    hourly = table(forecast_settings, "forecast_hourly", "series_id, target, hour")
    assert len(daily[(daily["series_id"] == PRICED) & (daily["target"] == "requests")]) == 60
    assert len(hourly) == 2 * 6 * 4
    cost = table(forecast_settings, "cost_estimate_monthly", "level, name, month")
    june = cost[(cost["month_index"] == 0)].set_index("name")
    assert june.loc["all", "estimate_p50"] == pytest.approx(18.8832)


def test_a_past_as_of_uses_only_earlier_data_and_is_scored_later(forecast_settings):
    run_forecast(forecast_settings, as_of=dt.date(2025, 6, 10))
    run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15))

    daily = table(forecast_settings, "forecast_daily", "as_of_date, series_id, target, day")
    past = daily[
        (daily["as_of_date"].astype(str) == "2025-06-10")
        & (daily["series_id"] == PRICED)
        & (daily["target"] == "requests")
    ]
    # Days 3..9 average 6 calls an hour: 144 a day, nothing from June 10 on leaks in.
    assert past["p50"].unique().tolist() == [144.0]

    accuracy = table(forecast_settings, "forecast_accuracy", "as_of_date, series_id, target, day")
    scored = accuracy[(accuracy["series_id"] == PRICED) & (accuracy["target"] == "requests")]
    assert scored["day"].astype(str).tolist() == [f"2025-06-{d}" for d in range(10, 15)]
    assert scored["actual"].tolist() == [24.0 * d for d in range(10, 15)]
    assert scored["abs_error"].tolist() == [24.0 * d - 144.0 for d in range(10, 15)]
    assert scored["inside_interval"].astype(bool).tolist() == [True, True, True, False, False]
    assert scored["horizon_days"].tolist() == [1, 2, 3, 4, 5]


@pytest.mark.slow
@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_three_forecast_runs_of_one_as_of_leave_the_same_rows(forecast_settings, database, request):
    if database == "postgres":
        forecast_settings = forecast_settings.replace(
            report_db_url=request.getfixturevalue("postgres_url")
        )
        engine = sa.create_engine(forecast_settings.report_db_url)
        with engine.begin() as connection:
            for view in ("latest_forecast_daily", "latest_cost_estimate"):
                connection.execute(sa.text(f"DROP VIEW IF EXISTS {view}"))
        from pipelines.reporting import metadata

        metadata.drop_all(engine)
        engine.dispose()

    def rows():
        return {
            name: table(forecast_settings, name, order).drop(
                columns=["run_id", "started_at", "finished_at"], errors="ignore"
            )
            for name, order in (
                ("forecast_daily", "series_id, target, day"),
                ("forecast_hourly", "series_id, target, hour"),
                ("cost_estimate_monthly", "level, name, month"),
                ("usage_daily", "series_id, day"),
                ("pipeline_runs", "as_of_date"),
            )
        }

    run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15))
    first = rows()
    run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15))
    run_forecast(forecast_settings, as_of=dt.date(2025, 6, 15))
    again = rows()

    for name, frame in first.items():
        pd.testing.assert_frame_equal(frame, again[name], check_like=True)
    assert len(first["forecast_daily"]) == 2 * 4 * 47
    assert len(first["pipeline_runs"]) == 1
