"""Rolling-origin cross-validation: the folds, the actuals, and the score table.

Hourly folds forecast 48 hours from origins 168 hours apart, the last fold ending
at the end of the history. Daily folds forecast 35 days (7 when the history is too
short for three 35-day folds plus two months of training) from midnight origins one
horizon apart; there are up to ``DAILY_FOLD_FACTOR`` times as many daily folds as
hourly ones, as many as leave two weeks of training, because models on daily totals
are cheap to refit and three folds give a unit only three values per horizon step to
learn its ensemble weights from. A history of over a year also gets daily folds at the
as-of date one and two years back (``year_ago_origins``), so that the weights are scored on
the time of year about to be forecast, holidays included. Every model of a fold is trained
on data before the fold's origin only: the callers pass ``history[ds < origin]`` views through
``unit_series``.

A history too short for any such daily fold (under three weeks) gets short folds
instead (``short_daily_origins``): one full season of training is enough, and a fold
may be scored on fewer days than its horizon. They are used only then, because a
fold's training should be about as long as the real origin's: with three weeks or
more the two-week folds exist and say more.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.history import unit_series
from features.lagged import spec_for
from models import metrics
from models.forecaster import HORIZON_BUCKETS, bucket_of

logger = logging.getLogger(__name__)

HOURLY_HORIZON = 48
HOURLY_STEP = 168
MIN_TRAIN = {"hour": pd.Timedelta(hours=48), "day": pd.Timedelta(days=14)}
SHORT_MIN_TRAIN = pd.Timedelta(days=7)
"""Training before a short daily fold: one weekly season, what the seasonal members need."""
DAILY_FOLD_FACTOR = 2
YEAR_DAYS = 364
"""52 weeks: a year back on the same weekdays."""
YEAR_AGO_FOLDS = 2
"""Daily folds at the as-of date one and two years back, where the history reaches."""


def short_daily_origins(
    first_day: pd.Timestamp, as_of: pd.Timestamp, horizon: int, count: int
) -> list[pd.Timestamp]:
    """Daily origins for a history too short for two weeks of training before a fold.

    The regular origins (``horizon`` days apart back from ``as_of``) that leave one
    season of training; when none does, the one origin one season after the first day,
    scored on the days between it and ``as_of`` (``attach_actuals`` drops the rest).
    Empty when not even that fits (under 8 days): ``evaluate`` then falls back to the
    seasonal naive.

    Why each member's score on such a fold says something about the real origin: the
    real origin has under three weeks of history too, so the members are in the same
    state there. The seasonal naive repeats the one week it has in both. The seasonal
    median over one season is the seasonal naive (ties in the weights go to the naive);
    at a real origin with 8-13 days it mixes in part of a second week, which the fold
    does not test. Prophet gets no weekly seasonality under 14 days, in the fold and at
    the real origin alike. The global LightGBM often has too few training rows to exist
    at all; a member missing from the fold gets no weight.
    """
    full = [as_of - pd.Timedelta(days=horizon * (k + 1)) for k in range(count)]
    full = [origin for origin in full if origin - first_day >= SHORT_MIN_TRAIN]
    if full:
        return sorted(full)
    earliest = first_day + SHORT_MIN_TRAIN
    return [earliest] if earliest < as_of else []


def year_ago_origins(
    first_day: pd.Timestamp, as_of: pd.Timestamp, horizon: int, recent: list[pd.Timestamp]
) -> list[pd.Timestamp]:
    """Daily origins on the as-of date's weekday one and two years back.

    Why: the recent folds only show the ensemble the last few months, so the weights of
    a December as-of date never see a holiday week, although the global LightGBM has
    learned it from earlier years. A fold at the same time of a past year scores each
    member on the weeks about to be forecast. Only origins whose fold ends before the
    recent folds start (none overlaps them) and that leave two weeks of training.
    """
    if not recent:
        return []
    earliest_recent = min(recent)
    origins = []
    for years in range(1, YEAR_AGO_FOLDS + 1):
        origin = as_of - pd.Timedelta(days=YEAR_DAYS * years)
        if origin + pd.Timedelta(days=horizon) <= earliest_recent and (
            origin - first_day >= MIN_TRAIN["day"]
        ):
            origins.append(origin)
    return origins


def plan_folds(history: pd.DataFrame, as_of: pd.Timestamp, folds: int) -> dict:
    """The CV origins per resolution: {"hour": {"horizon", "origins"}, "day": {...}}."""
    plan = {}
    hourly = history[history["resolution"] == "hour"]
    if not hourly.empty:
        first = hourly["ds"].min()
        origins = [
            as_of - pd.Timedelta(hours=HOURLY_HORIZON + HOURLY_STEP * k) for k in range(folds)
        ]
        origins = [o for o in origins if o - first >= MIN_TRAIN["hour"]]
        origins = sorted(o.isoformat() for o in origins)
        plan["hour"] = {"horizon": HOURLY_HORIZON, "origins": origins}
    if not history.empty:
        first_day = history["ds"].min().floor("D")
        span_days = (as_of - first_day).days
        horizon = 35 if span_days >= 35 * folds + 56 else 7
        daily_folds = DAILY_FOLD_FACTOR * folds
        origins = [as_of - pd.Timedelta(days=horizon * (k + 1)) for k in range(daily_folds)]
        origins = [o for o in origins if o - first_day >= MIN_TRAIN["day"]]
        origins += year_ago_origins(first_day, as_of, horizon, origins)
        if not origins:
            origins = short_daily_origins(first_day, as_of, horizon, daily_folds)
            logger.info(
                "%d days of history: no daily fold with two weeks of training fits; short "
                "folds with one week of training at %s", span_days, [str(o) for o in origins],
            )
        plan["day"] = {"horizon": horizon, "origins": sorted(o.isoformat() for o in origins)}
    for resolution, entry in plan.items():
        if len(entry["origins"]) < folds:
            logger.warning(
                "only %d of %d %s CV folds fit in the history", len(entry["origins"]), folds,
                resolution,
            )
    return plan


def attach_actuals(
    cv: pd.DataFrame, history: pd.DataFrame, resolution: str, end: pd.Timestamp
) -> pd.DataFrame:
    """Add ``y`` (the actual) and ``naive_scale`` (MASE denominator at the fold's origin).

    Rows whose actual was not observed are dropped: they are not scored.
    """
    if cv.empty:
        return cv
    spec = spec_for(resolution)
    units = unit_series(history, resolution, end)
    actual_frames, scales = [], []
    for unit in units:
        times = pd.date_range(unit.start, periods=len(unit.values), freq=spec.step)
        actual_frames.append(
            pd.DataFrame({"series_id": unit.series_id, "target": unit.target, "ds": times,
                          "y": unit.values})
        )
        for origin in cv["origin"].unique():
            cutoff = int((pd.Timestamp(origin) - unit.start) / spec.step)
            scales.append({
                "series_id": unit.series_id, "target": unit.target, "origin": origin,
                "naive_scale": metrics.seasonal_naive_mae(unit.values[:max(cutoff, 0)],
                                                          spec.season),
            })
    actual = pd.concat(actual_frames, ignore_index=True)
    merged = cv.merge(actual, on=["series_id", "target", "ds"], how="left")
    merged = merged.merge(pd.DataFrame(scales), on=["series_id", "target", "origin"], how="left")
    return merged[merged["y"].notna()].reset_index(drop=True)


def score_table(cv: pd.DataFrame) -> pd.DataFrame:
    """Every metric per model, resolution, horizon bucket and unit (over all folds).

    MASE is the mean over folds of the fold's MAE over its naive scale.
    """
    rows = []
    cv = cv.assign(bucket=0)
    for resolution in cv["resolution"].unique():
        mask = cv["resolution"] == resolution
        cv.loc[mask, "bucket"] = bucket_of(resolution, cv.loc[mask, "h"].to_numpy())
    keys = ["member", "resolution", "bucket", "series_id", "target"]
    for key, group in cv.groupby(keys, sort=True):
        member, resolution, bucket, series, target = key
        low, high = HORIZON_BUCKETS[resolution][bucket]
        row = metrics.all_metrics(group["y"], group["p50"], group["p10"], group["p90"])
        fold_mase = [
            metrics.mase(fold["y"], fold["p50"], fold["naive_scale"].iloc[0])
            for _origin, fold in group.groupby("origin")
        ]
        finite = [value for value in fold_mase if np.isfinite(value)]
        row["mase"] = float(np.mean(finite)) if finite else float("nan")
        row["folds"] = int(group["origin"].nunique())
        rows.append({
            "model": member, "resolution": resolution, "horizon": f"{low}-{high}",
            "series_id": series, "target": target, **row,
        })
    return pd.DataFrame(rows)


def unit_wape(cv: pd.DataFrame) -> pd.DataFrame:
    """WAPE per model, resolution and unit over every horizon and fold."""
    grouped = cv.assign(error=(cv["y"] - cv["p50"]).abs(), size=cv["y"].abs())
    totals = grouped.groupby(["member", "resolution", "series_id", "target"])[
        ["error", "size"]
    ].sum()
    totals = totals[totals["size"] > 0]
    return (totals["error"] / totals["size"]).rename("wape").reset_index()


def headline_wape(cv: pd.DataFrame, member: str = "ensemble") -> float:
    """The promotion score: mean over resolutions of the mean unit WAPE of ``member``."""
    table = unit_wape(cv[cv["member"] == member])
    if table.empty:
        return float("nan")
    return float(table.groupby("resolution")["wape"].mean().mean())
