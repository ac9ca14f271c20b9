"""Monthly cost estimates: actual cost to date plus the forecast cost of the rest, with p10/p90.

Everything is turned into *cost intervals* first: a row per series and UTC hour
of actual usage (or UTC day, for series known only by daily buckets) and a row
per series and forecast UTC day, each with its cost at p10, p50 and p90 (actual
rows have all three equal). A month in the business time zone is the half-open
UTC interval ``[first local midnight, next month's first local midnight)``; each
interval contributes the share of its duration that lies inside the month
(usage is taken as even within an hour or a forecast day), so a call at 23:30 on
the last local day of a month belongs to that month whatever the offset.

Quantiles do not add. The p10/p90 of a sum of days are built from each day's
distance between p50 and p10 (and p90) under an *equicorrelation* assumption:
``spread = sqrt((1 - rho) * sum(d_i^2) + rho * (sum d_i)^2)``, where ``rho = 0``
treats daily errors as independent (too narrow when the level is off for weeks)
and ``rho = 1`` as moving together (the sum of the quantiles, too wide). The
same rule combines series into teams and the total. A model trained by
``usagecast train`` carries its own ``rho`` (and a spread factor, above 1 when even
``rho = 1`` covers too little), learned from its CV k-day sums
(``models.ensemble.learn_month_interval``); ``USAGECAST_MONTH_ERROR_CORRELATION`` is
the fallback for models without one. ``bench/cost`` measures how often the actual
month falls inside the interval. Known limit: the rule is learned on sums of at most
35 CV days and applied as is to next month (up to 62 days ahead) and, through the
correlation, to the sum of series into teams and the total, which no CV measures.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pipelines.errors import InputError
from pipelines.prices import PriceTable, price_usage, unpriced_models

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

TOKEN_COLUMNS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")
QUANTILES = ("p10", "p50", "p90")
CACHE_WRITE_SHARE_DAYS = 28
"""Cache-write tokens are not forecast: the forecast input carries the share seen lately."""

INTERVAL_COLUMNS = (
    "series_id",
    "provider",
    "model",
    "team",
    "kind",
    "start",
    "hours",
    "day",
    *TOKEN_COLUMNS,
    "cost_p10",
    "cost_p50",
    "cost_p90",
    "priced",
)


@dataclass(frozen=True)
class Month:
    """A month in the business time zone and its half-open UTC window (naive UTC)."""

    first_day: dt.date
    index: int
    start_utc: dt.datetime
    end_utc: dt.datetime

    @property
    def label(self) -> str:
        return self.first_day.strftime("%Y-%m")


def _next_month(first_day: dt.date) -> dt.date:
    return dt.date(first_day.year + first_day.month // 12, first_day.month % 12 + 1, 1)


def local_midnight_utc(day: dt.date, business_tz: str) -> dt.datetime:
    """The UTC instant (naive) of ``day`` 00:00 in the business time zone."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(business_tz))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def business_months(as_of: dt.date, business_tz: str, count: int = 2) -> list[Month]:
    """The month that holds ``as_of`` (a date in the business zone) and the ``count - 1`` after."""
    months = []
    first_day = as_of.replace(day=1)
    for index in range(count):
        following = _next_month(first_day)
        months.append(
            Month(
                first_day=first_day,
                index=index,
                start_utc=local_midnight_utc(first_day, business_tz),
                end_utc=local_midnight_utc(following, business_tz),
            )
        )
        first_day = following
    return months


def forecast_horizon_days(as_of: dt.date, business_tz: str) -> int:
    """Whole UTC days from ``as_of`` 00:00 UTC needed to cover the end of next month."""
    last = business_months(as_of, business_tz)[-1].end_utc
    start = dt.datetime.combine(as_of, dt.time())
    return max(1, math.ceil((last - start).total_seconds() / 86400))


def combine_spread(deviations: pd.Series | list[float], correlation: float) -> float:
    """Spread of a sum from the spreads of its parts under equicorrelation ``correlation``."""
    import numpy as np

    from models.ensemble import equicorrelated_spread

    values = np.asarray(deviations, dtype="float64")
    if values.size == 0:
        return 0.0
    return float(equicorrelated_spread(values.sum(), np.sum(values**2), correlation))


@dataclass(frozen=True)
class MonthRule:
    """How the daily p10/p90 distances of one series add up over a month."""

    correlation: float
    spread_factor: float = 1.0
    source: str = "setting"


def month_rule(learned: dict | None, fallback_correlation: float) -> MonthRule:
    """The model's learned month interval when it has one, else the setting's correlation."""
    if not learned:
        logger.info(
            "the model carries no learned month interval: using the setting's correlation %.2f",
            fallback_correlation,
        )
        return MonthRule(fallback_correlation)
    return MonthRule(
        float(learned["correlation"]), float(learned.get("spread_factor", 1.0)), "model CV"
    )


def prob_over(budget: float, p10: float, p50: float, p90: float) -> float:
    """P(total > budget) for a two-piece normal with these three quantiles."""
    z90 = NormalDist().inv_cdf(0.9)
    scale = (p90 - p50) / z90 if budget >= p50 else (p50 - p10) / z90
    if scale <= 0:
        return 1.0 if p50 > budget else 0.0
    return 1.0 - NormalDist().cdf((budget - p50) / scale)


def actual_intervals(hourly: pd.DataFrame, daily: pd.DataFrame, prices: PriceTable) -> pd.DataFrame:
    """Cost intervals of actual usage: hourly rows, plus days known only by daily buckets.

    ``hourly`` is ``usage_hourly`` (column ``hour``, UTC); ``daily`` is ``usage_daily``.
    Each interval is priced at the rates in effect on its UTC day.
    """
    import pandas as pd

    parts = []
    if len(hourly):
        frame = hourly.copy()
        frame["start"] = pd.to_datetime(frame["hour"], utc=True).dt.tz_localize(None)
        frame["hours"] = 1.0
        parts.append(frame)
    daily_only = daily[daily["resolution"] == "day"] if len(daily) else daily
    if len(daily_only):
        frame = daily_only.copy()
        frame["start"] = pd.to_datetime(frame["day"])
        frame["hours"] = 24.0
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=list(INTERVAL_COLUMNS))
    frame = pd.concat(parts, ignore_index=True)
    frame["day"] = frame["start"].dt.date
    frame["kind"] = "actual"
    priced = price_usage(frame, prices)
    for quantile in QUANTILES:
        priced[f"cost_{quantile}"] = priced["cost"]
    return priced[list(INTERVAL_COLUMNS)]


def cache_write_shares(hourly: pd.DataFrame, daily: pd.DataFrame, as_of: dt.date) -> dict:
    """Per series, cache-write tokens as a share of input tokens over the recent window."""
    import pandas as pd

    since = as_of - dt.timedelta(days=CACHE_WRITE_SHARE_DAYS)
    recent = daily[(pd.to_datetime(daily["day"]).dt.date >= since)] if len(daily) else daily
    if not len(recent) and len(hourly):
        recent = hourly
    if not len(recent):
        return {}
    sums = recent.groupby("series_id")[["input_tokens", "cache_write_tokens"]].sum()
    shares = sums["cache_write_tokens"] / sums["input_tokens"].where(sums["input_tokens"] > 0)
    return shares.fillna(0.0).clip(0.0, 1.0).to_dict()


def forecast_intervals(
    forecast_daily: pd.DataFrame,
    series: pd.DataFrame,
    shares: dict,
    prices: PriceTable,
) -> pd.DataFrame:
    """Cost intervals of the daily forecast, priced at each quantile.

    ``forecast_daily`` is the model's long output (daily rows); ``series`` maps
    ``series_id`` to ``provider, model, team``. The targets of one quantile are
    priced together (tokens of a busy day are all high together), cached tokens
    are capped at input tokens and cache writes are the series' recent share of input.
    """
    import pandas as pd

    if not len(forecast_daily):
        return pd.DataFrame(columns=list(INTERVAL_COLUMNS))
    wide = forecast_daily.pivot_table(
        index=["series_id", "ds"], columns="target", values=list(QUANTILES), aggfunc="first"
    )
    base = wide.index.to_frame(index=False)
    base = base.merge(series[["series_id", "provider", "model", "team"]], on="series_id")
    base["start"] = pd.to_datetime(base["ds"])
    base["hours"] = 24.0
    base["day"] = base["start"].dt.date
    base["kind"] = "forecast"
    share = base["series_id"].map(shares).fillna(0.0).to_numpy()

    priced_by_quantile = {}
    for quantile in QUANTILES:
        quantities = base.copy()
        for target in ("input_tokens", "cached_input_tokens", "output_tokens"):
            column = (quantile, target)
            quantities[target] = wide[column].to_numpy() if column in wide.columns else 0.0
        quantities["cached_input_tokens"] = quantities[["cached_input_tokens", "input_tokens"]].min(
            axis=1
        )
        quantities["cache_write_tokens"] = (
            (quantities["input_tokens"] - quantities["cached_input_tokens"]) * share
        ).clip(lower=0.0)
        priced_by_quantile[quantile] = price_usage(quantities, prices)

    result = priced_by_quantile["p50"].copy()
    costs = pd.concat(
        [priced_by_quantile[quantile]["cost"].rename(quantile) for quantile in QUANTILES], axis=1
    )
    result["cost_p10"] = costs.min(axis=1, skipna=False)
    result["cost_p50"] = costs["p50"]
    result["cost_p90"] = costs.max(axis=1, skipna=False)
    return result[list(INTERVAL_COLUMNS)]


def overlap_share(intervals: pd.DataFrame, start: dt.datetime, end: dt.datetime) -> pd.Series:
    """The share of each interval's duration inside ``[start, end)`` (naive UTC)."""
    import pandas as pd

    interval_start = pd.to_datetime(intervals["start"])
    interval_end = interval_start + pd.to_timedelta(intervals["hours"], unit="h")
    inside_start = interval_start.where(interval_start > start, pd.Timestamp(start))
    inside_end = interval_end.where(interval_end < end, pd.Timestamp(end))
    inside = (inside_end - inside_start).dt.total_seconds().clip(lower=0.0)
    return inside / (intervals["hours"].astype("float64") * 3600.0)


def _month_rows(intervals: pd.DataFrame, month: Month) -> pd.DataFrame:
    """Per series: actual cost, forecast cost quantiles and token totals inside one month."""
    share = overlap_share(intervals, month.start_utc, month.end_utc)
    inside = intervals.assign(share=share)[share > 0].copy()
    inside["priced"] = inside["priced"].astype(bool)
    for column in ("cost_p10", "cost_p50", "cost_p90", *TOKEN_COLUMNS):
        inside[column] = inside[column].astype("float64") * inside["share"]
    inside["low"] = inside["cost_p50"] - inside["cost_p10"]
    inside["high"] = inside["cost_p90"] - inside["cost_p50"]
    return inside


def monthly_estimates(
    intervals: pd.DataFrame,
    months: list[Month],
    correlation: float,
    budgets: pd.DataFrame | None = None,
    currency: str = "USD",
    spread_factor: float = 1.0,
) -> pd.DataFrame:
    """Cost per month at the levels ``series``, ``team`` and ``total``.

    Returns one row per level, name and month: ``actual_cost_to_date``, the
    forecast rest and the estimate at p10/p50/p90, ``unpriced_models`` (names
    whose cost is missing from the figures), and, for teams with a budget,
    ``budget`` and ``prob_over_budget``. ``spread_factor`` scales each series'
    summed spread over the days (see :class:`MonthRule`); series are then combined
    into teams and the total with ``correlation``.
    """
    import numpy as np
    import pandas as pd

    rows = []
    for month in months:
        inside = _month_rows(intervals, month)
        per_series = []
        for series_id, group in inside.groupby("series_id", sort=True):
            first = group.iloc[0]
            actual = group[group["kind"] == "actual"]
            forecast = group[group["kind"] == "forecast"]
            unpriced = sorted(
                {
                    f"{p}/{m}"
                    for p, m in group.loc[~group["priced"], ["provider", "model"]].itertuples(
                        index=False
                    )
                }
            )
            per_series.append(
                {
                    "series_id": series_id,
                    "team": first["team"],
                    "actual": float(actual["cost_p50"].sum()) if not unpriced else np.nan,
                    "rest_p50": float(forecast["cost_p50"].sum()) if not unpriced else np.nan,
                    "low": spread_factor * combine_spread(forecast["low"], correlation),
                    "high": spread_factor * combine_spread(forecast["high"], correlation),
                    "unpriced": unpriced,
                }
            )
        frame = pd.DataFrame(
            per_series,
            columns=["series_id", "team", "actual", "rest_p50", "low", "high", "unpriced"],
        )
        for level, key in (("series", "series_id"), ("team", "team"), ("total", None)):
            groups = frame.groupby(key, sort=True) if key else [("all", frame)]
            for name, group in groups:
                rows.append(_estimate_row(level, name, group, month, correlation, currency))

    estimates = pd.DataFrame(rows)
    estimates["budget"] = np.nan
    estimates["prob_over_budget"] = np.nan
    if budgets is not None and len(budgets) and len(estimates):
        _apply_budgets(estimates, budgets)
    return estimates


def _estimate_row(
    level: str, name: str, group: pd.DataFrame, month: Month, correlation: float, currency: str
) -> dict:
    priced = group[group["unpriced"].map(len) == 0]
    unpriced = sorted({model for models in group["unpriced"] for model in models})
    if level == "series" and unpriced:
        actual = rest_p50 = rest_p10 = rest_p90 = None
    else:
        actual = float(priced["actual"].sum())
        rest_p50 = float(priced["rest_p50"].sum())
        low = priced["low"] if level == "series" else [combine_spread(priced["low"], correlation)]
        high = (
            priced["high"] if level == "series" else [combine_spread(priced["high"], correlation)]
        )
        rest_p10 = max(rest_p50 - float(sum(low)), 0.0)
        rest_p90 = rest_p50 + float(sum(high))
    return {
        "level": level,
        "name": str(name),
        "series_id": str(name) if level == "series" else None,
        "team": str(group["team"].iloc[0]) if level != "total" and len(group) else None,
        "month": month.first_day,
        "month_index": month.index,
        "month_start_utc": month.start_utc,
        "month_end_utc": month.end_utc,
        "actual_cost_to_date": actual,
        "forecast_rest_p10": rest_p10,
        "forecast_rest_p50": rest_p50,
        "forecast_rest_p90": rest_p90,
        "estimate_p10": None if actual is None else actual + rest_p10,
        "estimate_p50": None if actual is None else actual + rest_p50,
        "estimate_p90": None if actual is None else actual + rest_p90,
        "currency": currency,
        "unpriced_models": ",".join(unpriced),
    }


def load_budgets(path: Path | None) -> pd.DataFrame | None:
    """Team budgets: ``team, month, budget``; a blank month means every month."""
    import pandas as pd

    if path is None:
        return None
    try:
        budgets = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as error:
        raise InputError(f"cannot read the budgets file {path}: {error}") from None
    missing = {"team", "month", "budget"} - set(budgets.columns)
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    checked = []
    for line, row in enumerate(budgets.itertuples(index=False), start=2):
        month = row.month.strip()
        if month:
            try:
                month_day = dt.date.fromisoformat(f"{month}-01")
            except ValueError:
                raise InputError(
                    f"{path}:{line}: field 'month'={month!r} is not YYYY-MM (or blank)"
                ) from None
        else:
            month_day = None
        try:
            amount = float(row.budget)
        except ValueError:
            raise InputError(
                f"{path}:{line}: field 'budget'={row.budget!r} is not a number"
            ) from None
        if not math.isfinite(amount) or amount < 0:
            raise InputError(f"{path}:{line}: field 'budget'={row.budget!r} must be >= 0")
        checked.append({"team": row.team.strip(), "month": month_day, "budget": amount})
    return pd.DataFrame(checked, columns=["team", "month", "budget"])


def _apply_budgets(estimates: pd.DataFrame, budgets: pd.DataFrame) -> None:
    for position, row in estimates[estimates["level"] == "team"].iterrows():
        for_team = budgets[budgets["team"] == row["team"]]
        specific = for_team[for_team["month"] == row["month"]]
        chosen = specific if len(specific) else for_team[for_team["month"].isna()]
        if not len(chosen) or row["estimate_p50"] is None or math.isnan(row["estimate_p50"]):
            continue
        budget = float(chosen["budget"].iloc[-1])
        estimates.loc[position, "budget"] = budget
        estimates.loc[position, "prob_over_budget"] = prob_over(
            budget, row["estimate_p10"], row["estimate_p50"], row["estimate_p90"]
        )


def whatif_estimates(
    intervals: pd.DataFrame, months: list[Month], alternatives: tuple[str, ...], prices: PriceTable
) -> pd.DataFrame:
    """Each series' month (actual usage + p50 forecast usage) priced on alternative models.

    ``alternatives`` are ``provider/model`` names. A name missing from the price
    table gives a row with a null cost, so it shows as unpriced.
    """
    import pandas as pd

    columns = [
        "series_id",
        "team",
        "month",
        "month_index",
        "current_model",
        "alternative_model",
        "current_cost",
        "alternative_cost",
        "difference",
    ]
    if not alternatives or not len(intervals):
        return pd.DataFrame(columns=columns)
    rows = []
    for month in months:
        inside = _month_rows(intervals, month)
        for alternative in alternatives:
            provider, _, model = alternative.partition("/")
            if not model:
                raise InputError(
                    f"what-if model {alternative!r} must be written provider/model, "
                    "e.g. openai/gpt-4.1-mini"
                )
            repriced = price_usage(inside, prices, provider=provider, model=model)
            for series_id, group in repriced.groupby("series_id", sort=True):
                current = inside.loc[group.index]
                current_cost = float(current["cost_p50"].sum()) if current["priced"].all() else None
                alternative_cost = float(group["cost"].sum()) if group["priced"].all() else None
                rows.append(
                    {
                        "series_id": series_id,
                        "team": current["team"].iloc[0],
                        "month": month.first_day,
                        "month_index": month.index,
                        "current_model": f"{current['provider'].iloc[0]}/"
                        f"{current['model'].iloc[0]}",
                        "alternative_model": alternative,
                        "current_cost": current_cost,
                        "alternative_cost": alternative_cost,
                        "difference": None
                        if current_cost is None or alternative_cost is None
                        else alternative_cost - current_cost,
                    }
                )
    if rows and any(row["alternative_cost"] is None for row in rows):
        missing = sorted(
            {row["alternative_model"] for row in rows if row["alternative_cost"] is None}
        )
        logger.warning("what-if models not in the price table (left unpriced): %s", missing)
    return pd.DataFrame(rows, columns=columns)


__all__ = [
    "Month",
    "MonthRule",
    "actual_intervals",
    "business_months",
    "cache_write_shares",
    "combine_spread",
    "forecast_horizon_days",
    "forecast_intervals",
    "load_budgets",
    "month_rule",
    "monthly_estimates",
    "overlap_share",
    "prob_over",
    "unpriced_models",
    "whatif_estimates",
]
