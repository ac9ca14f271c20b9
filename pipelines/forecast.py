"""``usagecast forecast``: the champion's quantile forecasts, the monthly cost, the SQL tables.

Three steps, so Airflow can fan the middle one out:

1. :func:`plan_forecast` fixes the as-of date, the champion's version, the
   horizon (through the end of next month in the business time zone, plus the
   next 48 hours) and splits the series into shards;
2. :func:`forecast_shard` predicts one shard from the lake's history before the
   as-of date (so a past as-of date reproduces what would have been forecast then)
   and writes a Parquet file beside the plan;
3. :func:`publish_forecast` prices actuals and forecasts, builds the monthly
   estimates, what-if and budget figures, scores earlier forecasts, and replaces
   every reporting row of the as-of date in one transaction.

The model always comes from the MLflow registry (alias ``champion``), never a file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import UsagecastError

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.settings import Settings

logger = logging.getLogger(__name__)

HORIZON_HOURS = 48
PREDICTION_COLUMNS = ("series_id", "resolution", "target", "ds", "p10", "p50", "p90")


def _series_table(settings: Settings, as_of: dt.date, series_filter: str | None) -> pd.DataFrame:
    """Every series with usage before ``as_of``: its grain values and first/last day."""
    from pipelines.lake import read_usage_daily

    daily = read_usage_daily(
        settings.lake_dir, None, as_of, columns=["series_id", "provider", "model", "team", "day"]
    ).to_pandas()
    if series_filter:
        daily = daily[daily["series_id"].str.contains(series_filter, regex=False)]
    if daily.empty:
        return daily.assign(first_day=[], last_day=[])
    daily = daily.sort_values("day")
    grouped = daily.groupby("series_id", sort=True)
    series = grouped[["provider", "model", "team"]].last()
    series["first_day"] = grouped["day"].min()
    series["last_day"] = grouped["day"].max()
    return series.reset_index()


def default_as_of(settings: Settings) -> dt.date:
    """The day after the lake's last day of usage: forecast from the data we have."""
    from pipelines.lake import partition_days

    days = partition_days(settings.lake_dir, "usage_daily")
    if not days:
        raise UsagecastError(
            f"the lake at {settings.lake_dir} has no usage yet: run `usagecast ingest` first"
        )
    return days[-1] + dt.timedelta(days=1)


def plan_forecast(
    settings: Settings,
    as_of: dt.date | None = None,
    series_filter: str | None = None,
    shard_count: int = 4,
    horizon_days: int | None = None,
    horizon_hours: int = HORIZON_HOURS,
) -> dict:
    """Fix what one forecast run does; the returned dict is JSON-serialisable.

    The daily horizon runs at least through the end of next month in the business time
    zone, which the monthly cost estimate needs; ``horizon_days`` may only lengthen it.
    The hourly horizon is at most 48 hours, the longest the hourly models are trained for.
    """
    from pipelines.cost import forecast_horizon_days
    from pipelines.registry import month_interval_of, require_champion_version

    as_of = as_of or default_as_of(settings)
    month_days = forecast_horizon_days(as_of, settings.business_tz)
    if horizon_days is not None and horizon_days < month_days:
        raise UsagecastError(
            f"horizon of {horizon_days} days ends before next month does: as of {as_of} the "
            f"cost estimate needs at least {month_days} days"
        )
    if not 1 <= horizon_hours <= HORIZON_HOURS:
        raise UsagecastError(
            f"hourly horizon of {horizon_hours} hours: choose 1 to {HORIZON_HOURS}"
        )
    series = _series_table(settings, as_of, series_filter)
    if series.empty:
        raise UsagecastError(
            f"no usage before {as_of} in the lake"
            + (f" for series matching {series_filter!r}" if series_filter else "")
            + ": ingest data or choose a later --as-of"
        )
    # Only the version is fixed here; each shard loads the model itself.
    champion = require_champion_version(settings)
    model_version = str(champion.version)

    shard_count = max(1, min(shard_count, len(series)))
    shards: list[list[str]] = [[] for _ in range(shard_count)]
    for position, series_id in enumerate(series["series_id"]):
        shards[position % shard_count].append(series_id)

    run_id = f"{as_of:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    run_dir = settings.data_dir / "runs" / "forecast" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = {
        "run_id": run_id,
        "as_of": as_of.isoformat(),
        "series_filter": series_filter,
        "model_version": model_version,
        "month_interval": month_interval_of(champion),
        "registered_model": settings.registered_model,
        "business_tz": settings.business_tz,
        "horizon_days": horizon_days or month_days,
        "horizon_hours": horizon_hours,
        "data_start": series["first_day"].min().isoformat(),
        "data_end": as_of.isoformat(),
        "series_count": len(series),
        "shards": shards,
        "run_dir": str(run_dir),
        "started_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
    }
    (run_dir / "plan.json").write_text(json.dumps(plan, indent=2))
    logger.info(
        "forecast %s: as of %s, champion version %s, %d series in %d shards, %d days ahead",
        run_id,
        as_of,
        model_version,
        len(series),
        shard_count,
        plan["horizon_days"],
    )
    return plan


def _load_planned_model(settings: Settings, plan: dict):
    """The champion, checked to be the version the plan fixed."""
    from pipelines.registry import load_champion

    model, version = load_champion(settings)
    if version != plan["model_version"]:
        raise UsagecastError(
            f"the champion moved from version {plan['model_version']} to {version} during "
            f"forecast run {plan['run_id']}: run the forecast again"
        )
    return model


def tidy_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Quantiles in order and nothing negative, whatever the model returned (logged)."""
    import numpy as np

    missing = [column for column in PREDICTION_COLUMNS if column not in predictions.columns]
    if missing:
        raise UsagecastError(f"the champion's predictions lack columns {missing}")
    tidy = predictions.copy()
    quantiles = tidy[["p10", "p50", "p90"]].astype("float64").to_numpy()
    repaired = (quantiles < 0).any(axis=1) | (np.diff(quantiles, axis=1) < 0).any(axis=1)
    if repaired.any():
        logger.warning(
            "%d forecast rows had negative or crossing quantiles; clipped at 0 and sorted",
            int(repaired.sum()),
        )
    quantiles = np.sort(np.clip(quantiles, 0.0, None), axis=1)
    tidy["p10"], tidy["p50"], tidy["p90"] = quantiles[:, 0], quantiles[:, 1], quantiles[:, 2]
    tidy["ds"] = tidy["ds"].astype("datetime64[us]")
    return tidy


def forecast_shard(settings: Settings, plan: dict, shard_index: int) -> str:
    """Predict one shard's series; returns the path of the Parquet file written."""
    import pandas as pd

    from features.history import history_from_lake

    as_of = dt.date.fromisoformat(plan["as_of"])
    shard = set(plan["shards"][shard_index])
    output = Path(plan["run_dir"]) / f"shard-{shard_index:03d}.parquet"
    history = history_from_lake(settings, as_of, plan.get("series_filter"))
    history = history[history["series_id"].isin(shard)]

    if history.empty:
        logger.warning("shard %d has no history before %s; nothing to forecast", shard_index, as_of)
        predictions = pd.DataFrame({column: [] for column in PREDICTION_COLUMNS})
    else:
        model = _load_planned_model(settings, plan)
        predictions = model.predict(
            history,
            params={
                "as_of": plan["as_of"],
                "horizon_days": int(plan["horizon_days"]),
                "horizon_hours": int(plan["horizon_hours"]),
            },
        )
        predictions = tidy_predictions(predictions)
    predictions = predictions.assign(model_version=plan["model_version"])

    temporary = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    predictions.to_parquet(temporary, index=False)
    os.replace(temporary, output)
    logger.info(
        "shard %d: %d series, %d forecast rows -> %s",
        shard_index,
        len(shard),
        len(predictions),
        output,
    )
    return str(output)


def _actual_usage(settings: Settings, as_of: dt.date, series_ids: set[str]):
    """Hourly and daily actuals before ``as_of`` for the planned series."""
    from pipelines.lake import read_usage_daily, read_usage_hourly

    daily = read_usage_daily(settings.lake_dir, None, as_of).to_pandas()
    daily = daily[daily["series_id"].isin(series_ids)].reset_index(drop=True)
    hourly_start = as_of.replace(day=1) - dt.timedelta(days=1)
    hourly = read_usage_hourly(settings.lake_dir, hourly_start, as_of).to_pandas()
    hourly = hourly[hourly["series_id"].isin(series_ids)].reset_index(drop=True)
    return hourly, daily


def publish_forecast(settings: Settings, plan: dict, shard_outputs: list[str]) -> dict:
    """Price, estimate and write every reporting table for the plan's as-of date at once."""
    import pandas as pd

    from pipelines import cost, reporting
    from pipelines.prices import load_prices, price_usage, unpriced_models

    as_of = dt.date.fromisoformat(plan["as_of"])
    series_ids = {series_id for shard in plan["shards"] for series_id in shard}
    predictions = (
        pd.concat([pd.read_parquet(path) for path in shard_outputs], ignore_index=True)
        if shard_outputs
        else pd.DataFrame({column: [] for column in PREDICTION_COLUMNS})
    )
    series = _series_table(settings, as_of, plan.get("series_filter"))
    series = series[series["series_id"].isin(series_ids)]
    prices = load_prices(settings.prices_file)
    hourly, daily = _actual_usage(settings, as_of, series_ids)

    priced_daily = price_usage(daily, prices)
    months = cost.business_months(as_of, settings.business_tz)
    month_start_day = months[0].start_utc.date() - dt.timedelta(days=1)
    recent_daily = daily[pd.to_datetime(daily["day"]).dt.date >= month_start_day]
    forecast_daily = predictions[predictions["resolution"] == "day"]
    intervals = pd.concat(
        [
            cost.actual_intervals(hourly, recent_daily, prices),
            cost.forecast_intervals(
                forecast_daily, series, cost.cache_write_shares(hourly, daily, as_of), prices
            ),
        ],
        ignore_index=True,
    )
    rule = cost.month_rule(plan.get("month_interval"), settings.month_error_correlation)
    logger.info(
        "month intervals: correlation %.2f, spread factor %.2f (%s)",
        rule.correlation, rule.spread_factor, rule.source,
    )
    estimates = cost.monthly_estimates(
        intervals,
        months,
        correlation=rule.correlation,
        budgets=cost.load_budgets(settings.budgets_file),
        currency=prices.currency,
        spread_factor=rule.spread_factor,
    )
    whatif = cost.whatif_estimates(intervals, months, settings.whatif_models, prices)

    run = {"as_of_date": as_of, "run_id": plan["run_id"], "model_version": plan["model_version"]}
    grain = series[["series_id", "provider", "model", "team"]]
    frames = {
        "usage_daily": priced_daily.assign(currency=prices.currency, **run),
        "forecast_daily": forecast_daily.rename(columns={"ds": "day"})
        .merge(grain, on="series_id")
        .assign(**run),
        "forecast_hourly": predictions[predictions["resolution"] == "hour"]
        .rename(columns={"ds": "hour"})
        .merge(grain, on="series_id")
        .assign(**run),
        "cost_estimate_monthly": estimates.assign(business_tz=settings.business_tz, **run),
        "cost_whatif_monthly": whatif.assign(currency=prices.currency, **run),
    }
    unpriced = sorted(
        set(unpriced_models(priced_daily))
        | {name for names in estimates["unpriced_models"] for name in names.split(",") if name}
    )
    if unpriced:
        logger.warning(
            "models not in %s are left out of every cost figure: %s; add their prices",
            settings.prices_file,
            ", ".join(unpriced),
        )
    frames["pipeline_runs"] = pd.DataFrame(
        [
            {
                **run,
                "step": "forecast",
                "data_start": dt.date.fromisoformat(plan["data_start"]),
                "data_end": as_of,
                "series_count": len(series_ids),
                "forecast_daily_rows": len(frames["forecast_daily"]),
                "forecast_hourly_rows": len(frames["forecast_hourly"]),
                "cost_rows": len(estimates),
                "unpriced_models": ",".join(unpriced),
                "started_at": dt.datetime.fromisoformat(plan["started_at"]),
                "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            }
        ]
    )

    engine = reporting.create_engine(settings)
    try:
        written = reporting.publish(
            engine,
            as_of,
            frames,
            actual_window=(dt.date.fromisoformat(plan["data_start"]), as_of),
            series_ids=series_ids if plan.get("series_filter") else None,
            accuracy_actuals=daily,
        )
    finally:
        engine.dispose()

    total = estimates[(estimates["level"] == "total") & (estimates["month_index"] == 0)]
    return {
        "run_id": plan["run_id"],
        "as_of": plan["as_of"],
        "model_version": plan["model_version"],
        "series": len(series_ids),
        "rows": written,
        "month": months[0].label,
        "month_estimate_p50": None if total.empty else float(total["estimate_p50"].iloc[0]),
        "month_estimate_p10": None if total.empty else float(total["estimate_p10"].iloc[0]),
        "month_estimate_p90": None if total.empty else float(total["estimate_p90"].iloc[0]),
        "currency": prices.currency,
        "unpriced_models": unpriced,
    }


def run_forecast(
    settings: Settings,
    as_of: dt.date | None = None,
    series_filter: str | None = None,
    horizon_days: int | None = None,
    horizon_hours: int = HORIZON_HOURS,
) -> dict:
    """Plan, forecast every shard in turn and publish: what ``usagecast forecast`` does."""
    plan = plan_forecast(
        settings,
        as_of=as_of,
        series_filter=series_filter,
        shard_count=1,
        horizon_days=horizon_days,
        horizon_hours=horizon_hours,
    )
    outputs = [forecast_shard(settings, plan, index) for index in range(len(plan["shards"]))]
    return publish_forecast(settings, plan, outputs)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        help="forecast from this date (YYYY-MM-DD) using data before it only; "
        "default: the day after the lake's last day",
    )
    parser.add_argument("--series", help="only series whose id contains this text")
    parser.add_argument(
        "--horizon-days",
        type=int,
        help="daily forecast length; default and minimum: through the end of next month",
    )
    parser.add_argument(
        "--horizon-hours",
        type=int,
        default=HORIZON_HOURS,
        help=f"hourly capacity forecast length, 1 to {HORIZON_HOURS} (default)",
    )


def run(args: argparse.Namespace, settings: Settings) -> str:
    result = run_forecast(
        settings,
        as_of=args.as_of,
        series_filter=args.series,
        horizon_days=args.horizon_days,
        horizon_hours=args.horizon_hours,
    )
    estimate = result["month_estimate_p50"]
    cost_text = (
        f"{result['month']} estimate {estimate:,.2f} {result['currency']} "
        f"(p10 {result['month_estimate_p10']:,.2f}, p90 {result['month_estimate_p90']:,.2f})"
        if estimate is not None
        else "no cost estimate"
    )
    unpriced = (
        f"; unpriced: {', '.join(result['unpriced_models'])}" if result["unpriced_models"] else ""
    )
    return (
        f"forecast as of {result['as_of']} with model version {result['model_version']}: "
        f"{result['series']} series, {result['rows'].get('forecast_daily', 0)} daily and "
        f"{result['rows'].get('forecast_hourly', 0)} hourly rows; {cost_text}{unpriced}"
    )
