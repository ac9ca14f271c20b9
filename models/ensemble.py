"""Ensemble weights per horizon bucket, learned from cross-validation errors.

For each resolution and bucket, the weights are the point of the simplex (a grid)
whose mixed median has the lowest mean WAPE over the units' CV forecasts; the
interval width factor is the one whose CV coverage of p10..p90 is closest to 80%.

``learn_month_interval`` does the same for sums of days (the rest of a month): it
chooses how the daily p10/p90 distances add up (see ``pipelines.cost``) so that the
k-day sums inside the CV folds are covered about 80% of the time.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from models.forecaster import HORIZON_BUCKETS, bucket_of

logger = logging.getLogger(__name__)

GRID_STEP = 0.05
WIDTH_FACTORS = np.round(np.arange(0.5, 3.01, 0.05), 2)
MONTH_CORRELATIONS = np.round(np.arange(0.0, 1.001, 0.05), 2)
MONTH_SPREAD_FACTORS = np.round(np.arange(1.05, 4.001, 0.05), 2)


def _simplex(count: int, step: float) -> np.ndarray:
    ticks = int(round(1 / step))
    points = [
        combo for combo in itertools.product(range(ticks + 1), repeat=count)
        if sum(combo) == ticks
    ]
    return np.array(points, dtype=float) / ticks


def _pivot(cv: pd.DataFrame, column: str, members: list[str]) -> pd.DataFrame:
    keys = ["series_id", "target", "origin", "h"]
    return cv.pivot_table(index=keys, columns="member", values=column, aggfunc="first")[members]


def learn_weights(cv: pd.DataFrame, resolution: str) -> dict:
    """{bucket: {member: weight}} from the CV frame of one resolution (rows with ``y``)."""
    cv = cv[cv["resolution"] == resolution]
    weights: dict[str, dict[str, float]] = {}
    for index in range(len(HORIZON_BUCKETS[resolution])):
        rows = cv[bucket_of(resolution, cv["h"].to_numpy()) == index]
        member_names = sorted(rows["member"].unique())
        if not member_names:
            continue
        p50 = _pivot(rows, "p50", member_names).dropna()
        if p50.empty:
            weights[str(index)] = {name: 1 / len(member_names) for name in member_names}
            continue
        actual = _pivot(rows, "y", member_names[:1]).loc[p50.index].iloc[:, 0].to_numpy()
        unit_keys = p50.index.droplevel(["origin", "h"]).to_flat_index()
        unit_codes = pd.factorize(pd.Index(unit_keys))[0]
        unit_totals = np.bincount(unit_codes, weights=np.abs(actual))
        candidates = _simplex(len(member_names), GRID_STEP)
        mixed = p50.to_numpy() @ candidates.T
        errors = np.abs(mixed - actual[:, None])
        per_unit = np.stack(
            [np.bincount(unit_codes, weights=errors[:, k]) for k in range(len(candidates))],
            axis=1,
        )
        scored = unit_totals > 0
        mean_wape = (per_unit[scored] / unit_totals[scored][:, None]).mean(axis=0)
        best = candidates[int(np.argmin(mean_wape))]
        weights[str(index)] = {
            name: float(weight) for name, weight in zip(member_names, best, strict=True)
        }
        logger.info(
            "%s bucket %s weights %s (CV mean WAPE %.3f)", resolution,
            HORIZON_BUCKETS[resolution][index], weights[str(index)], float(mean_wape.min()),
        )
    return weights


def learn_width_factor(ensemble_cv: pd.DataFrame, target_coverage: float = 0.8) -> float:
    """The interval scale whose CV coverage is closest to ``target_coverage``."""
    if ensemble_cv.empty:
        return 1.0
    actual = ensemble_cv["y"].to_numpy()
    p50 = ensemble_cv["p50"].to_numpy()
    below = (p50 - ensemble_cv["p10"].to_numpy()).clip(0)
    above = (ensemble_cv["p90"].to_numpy() - p50).clip(0)
    coverages = np.array([
        np.mean((actual >= np.clip(p50 - below * factor, 0, None))
                & (actual <= p50 + above * factor))
        for factor in WIDTH_FACTORS
    ])
    return float(WIDTH_FACTORS[int(np.argmin(np.abs(coverages - target_coverage)))])


def month_interval_candidates() -> list[tuple[float, float]]:
    """(correlation, spread factor) pairs from the narrowest sum interval to the widest.

    Raising the correlation from 0 to 1 widens the interval of a sum of days; when
    even fully correlated daily errors cover too little, a factor above 1 widens it
    further. Along this path the width of every sum only grows.
    """
    by_correlation = [(float(rho), 1.0) for rho in MONTH_CORRELATIONS]
    return by_correlation + [(1.0, float(factor)) for factor in MONTH_SPREAD_FACTORS]


def window_sums(ensemble_cv: pd.DataFrame, max_days: int | None = None) -> pd.DataFrame:
    """Per fold origin, unit, first day and length k: the sums over k forecast days of a fold.

    Every window of k consecutive forecast days inside a fold's horizon is one sample
    (column ``start``: the horizon of its first day). Columns ``y``, ``p50`` (sums),
    ``low1``/``low2`` (sum and sum of squares of the daily ``p50 - p10``) and
    ``high1``/``high2`` (the same for ``p90 - p50``). A unit's fold stops at its first
    day without an actual, so every window is complete.
    """
    keys = ["origin", "series_id", "target"]
    frame = ensemble_cv.sort_values([*keys, "h"]).copy()
    frame = frame[frame.groupby(keys).cumcount() + 1 == frame["h"]]
    low = (frame["p50"] - frame["p10"]).clip(lower=0).to_numpy()
    high = (frame["p90"] - frame["p50"]).clip(lower=0).to_numpy()
    parts = np.column_stack([frame["y"], frame["p50"], low, low**2, high, high**2])
    columns = ["y", "p50", "low1", "low2", "high1", "high2"]
    groups = list(frame.groupby(keys).indices.items())
    sums, owners, starts, lengths = [], [], [], []
    for owner, (_key, positions) in enumerate(groups):
        values = parts[np.sort(positions)]
        totals = np.vstack([np.zeros(len(columns)), np.cumsum(values, axis=0)])
        longest = len(values) if max_days is None else min(len(values), max_days)
        for length in range(1, longest + 1):
            first = np.arange(0, len(values) - length + 1)
            sums.append(totals[first + length] - totals[first])
            owners.append(np.full(len(first), owner))
            starts.append(first + 1)
            lengths.append(np.full(len(first), length))
    if not sums:
        return pd.DataFrame(columns=[*keys, "start", "k", *columns])
    owner = np.concatenate(owners)
    windows = pd.DataFrame(
        {key: [groups[index][0][place] for index in owner] for place, key in enumerate(keys)}
    )
    windows["start"] = np.concatenate(starts)
    windows["k"] = np.concatenate(lengths)
    windows[columns] = np.vstack(sums)
    return windows


def sum_coverage(windows: pd.DataFrame, correlation: float, spread_factor: float) -> float:
    """Share of window sums inside the interval built by ``pipelines.cost``'s rule.

    Each window length counts equally (the rest of a month is any length from 1 to 31
    days), however many windows of that length the folds hold.
    """
    low = spread_factor * np.sqrt(
        (1 - correlation) * windows["low2"] + correlation * windows["low1"] ** 2
    )
    high = spread_factor * np.sqrt(
        (1 - correlation) * windows["high2"] + correlation * windows["high1"] ** 2
    )
    inside = (windows["y"] >= (windows["p50"] - low).clip(lower=0)) & (
        windows["y"] <= windows["p50"] + high
    )
    return float(inside.groupby(windows["k"].to_numpy()).mean().mean())


def learn_month_interval(
    ensemble_cv: pd.DataFrame, target_coverage: float = 0.8, max_days: int = 31
) -> dict | None:
    """How daily intervals add up to a month's, learned from the ensemble's daily CV.

    Every window of k consecutive days inside a fold's horizon (k up to ``max_days``,
    the longest rest of a month) is one sample; the chosen (correlation, spread factor)
    is the narrowest candidate whose coverage of the window sums is closest to
    ``target_coverage``. Windows that start later than the fold origin carry the errors
    of longer horizons than the rest of a month does: they make the interval a little
    wider, and give more than one window per fold and length. None when there is no
    daily CV row to learn from. With few folds the windows of one fold are strongly
    dependent, so the choice varies from one training to the next: ``bench/cost``
    measures the coverage out of sample.
    """
    if ensemble_cv.empty:
        return None
    windows = window_sums(ensemble_cv, max_days)
    if windows.empty:
        return None
    candidates = month_interval_candidates()
    coverages = np.array([sum_coverage(windows, rho, factor) for rho, factor in candidates])
    best = int(np.argmin(np.abs(coverages - target_coverage)))
    correlation, spread_factor = candidates[best]
    learned = {
        "correlation": correlation,
        "spread_factor": spread_factor,
        "cv_coverage": float(coverages[best]),
        "windows": len(windows),
        "folds": int(windows["origin"].nunique()),
        "target_coverage": target_coverage,
    }
    logger.info(
        "month interval: correlation %.2f, spread factor %.2f cover %.0f%% of %d CV window "
        "sums over %d folds", correlation, spread_factor, 100 * learned["cv_coverage"],
        learned["windows"], learned["folds"],
    )
    return learned
