"""Ensemble weights per horizon bucket, learned from cross-validation errors.

For each resolution and bucket, the pooled weights are the point of the simplex (a
grid) whose mixed median has the lowest mean WAPE over all units' CV forecasts.
A unit (series, target) may get its own weights, shrunk toward the pooled ones: for
every CV origin, the unit's own and the pooled weights are learned on the other
origins and blended by each share of ``SHRINKAGE``; the share with the lowest error on
the held-out origins is kept only if it beats the pooled weights on every one of at
least ``MIN_UNIT_FOLDS`` held-out origins (by chance alone that happens at most one
time in 2**4 = 16). Otherwise, and for a unit unseen at training, the pooled weights
hold. Why so strict: on the real benchmark series, with three inner folds, freely
chosen per-unit weights fitted fold noise and lost to the pooled ones on average.
The interval width factor is the one whose CV coverage of p10..p90 is closest to 80%.

Units do not all have the same members: a daily unit with hourly data has the members
built on its hours, one known only by daily buckets does not. Weights are learned for
each set of members some unit has, and for each such set without the members built on
hours, pooled over every unit that has at least those members: the daily-only units'
weights pool over all units on the members they share, and a daily-only unit unseen at
training still finds weights learned for what it has. A unit uses the weights of its
own set. The grid is as fine as ``MAX_CANDIDATES`` allows for the set's size
(``grid_step``).

A bucket no CV row reaches (folds with a 7-day horizon say nothing of days 8-35) gets
no weights, and ``combine`` forecasts it with the seasonal naive alone; a resolution
with no CV row at all gets ``fallback_weights``, the same. Why not the weights of the
nearest scored bucket: errors over a few days do not carry to weeks ahead (a trend
Prophet fits on a few days drifts further every day, while the naive stays at last
week's level), so there is no evidence about the members there either.

``learn_month_interval`` does the same for sums of days (the rest of a month): it
chooses how the daily p10/p90 distances add up (see ``pipelines.cost``) so that the
k-day sums inside the CV folds are covered about 80% of the time.
"""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pandas as pd

from models.forecaster import (
    HORIZON_BUCKETS,
    HOUR_MEMBERS,
    MEMBER_SETS_KEY,
    NAIVE_ONLY,
    UNIT_WEIGHTS_KEY,
    bucket_of,
    member_set_key,
    unit_key,
)

logger = logging.getLogger(__name__)

GRID_STEPS = (0.05, 0.1, 0.125, 0.2, 0.25, 0.5)
"""Candidate grid steps of the weight simplex, finest first (see ``grid_step``)."""
MAX_CANDIDATES = 3003
"""Most grid points scored per bucket: six members on a 0.1 grid.

Why a bound: the error matrix holds units x origins x candidates, and six members on
the 0.05 grid of four would be 53,130 points (about 1.3 GB for 500 units and 6 folds).
"""
WIDTH_FACTORS = np.round(np.arange(0.5, 3.01, 0.05), 2)
MONTH_CORRELATIONS = np.round(np.arange(0.0, 1.001, 0.05), 2)
MONTH_SPREAD_FACTORS = np.round(np.arange(1.05, 4.001, 0.05), 2)
MIN_MONTH_FOLDS = 2
"""Fold origins a learned month interval needs: one fold is one sample of its level error."""
SHRINKAGE = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate shares of a unit's own weights (the rest pooled), smallest first: ties pool."""
MIN_UNIT_FOLDS = 4
"""Held-out origins a unit's own weights must all win before they replace the pooled ones."""
CANDIDATE_BLOCK = 64
"""Candidate weightings scored at once: bounds the memory of the error matrix."""


def grid_step(count: int) -> float:
    """The finest of ``GRID_STEPS`` whose simplex over ``count`` members fits the bound.

    Four members keep the 0.05 grid (1,771 points); five and six get 0.1.
    """
    for step in GRID_STEPS:
        ticks = int(round(1 / step))
        if math.comb(ticks + count - 1, count - 1) <= MAX_CANDIDATES:
            return step
    return GRID_STEPS[-1]


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


TIE_TOLERANCE = 1e-9
"""Relative score difference under which two candidate weightings tie."""


def _least_with_naive_first(scores: np.ndarray, naive_share: np.ndarray) -> int:
    """The lowest score; among ties, the candidate with most weight on the seasonal naive.

    Why: members that forecast the same (the seasonal median on one season is the
    naive) tie, and without this the float noise of the sums would pick their mix; the
    naive is the member that needs no evidence, so an undecided tie goes to it.
    """
    best = scores.min()
    tied = np.flatnonzero(scores <= best + TIE_TOLERANCE * max(abs(best), 1.0))
    return int(tied[np.argmax(naive_share[tied])])


def _pooled_choice(errors: np.ndarray, totals: np.ndarray, naive_share: np.ndarray) -> int:
    """Candidate with the lowest mean unit WAPE; ``errors`` (unit, cand), ``totals`` (unit,).

    ``naive_share`` (cand,) is each candidate's seasonal-naive weight, for ties.
    """
    scored = totals > 0
    if not scored.any():
        return _least_with_naive_first(errors.sum(axis=0), naive_share)
    scores = (errors[scored] / totals[scored][:, None]).mean(axis=0)
    return _least_with_naive_first(scores, naive_share)


def _summed_errors(
    forecasts: np.ndarray, actual: np.ndarray, cell: np.ndarray, cells: int,
    candidates: np.ndarray,
) -> np.ndarray:
    """Absolute error of every candidate mix summed per cell: shape (cells, candidates).

    Candidates go in blocks of ``CANDIDATE_BLOCK`` so that memory stays at rows x block
    (four members make 1,771 grid points).
    """
    order = np.argsort(cell, kind="stable")
    sorted_cell = cell[order]
    starts = np.flatnonzero(np.r_[True, sorted_cell[1:] != sorted_cell[:-1]])
    ordered_forecasts, ordered_actual = forecasts[order], actual[order, None]
    out = np.zeros((cells, len(candidates)))
    for low in range(0, len(candidates), CANDIDATE_BLOCK):
        block = candidates[low:low + CANDIDATE_BLOCK]
        errors = np.abs(ordered_forecasts @ block.T - ordered_actual)
        out[sorted_cell[starts], low:low + len(block)] = np.add.reduceat(errors, starts, axis=0)
    return out


def _bucket_weights(rows: pd.DataFrame) -> dict | None:
    """Pooled and per-unit weights of one bucket's CV rows: {"pooled": w, "units": {key: w}}."""
    member_names = sorted(rows["member"].unique())
    if not member_names:
        return None
    p50 = _pivot(rows, "p50", member_names).dropna()
    if p50.empty:
        equal = np.full(len(member_names), 1 / len(member_names))
        return {"members": member_names, "pooled": equal, "units": {}}
    actual = _pivot(rows, "y", member_names[:1]).loc[p50.index].iloc[:, 0].to_numpy()
    forecasts = p50.to_numpy()
    units = pd.Index(p50.index.droplevel(["origin", "h"]).to_flat_index())
    unit_codes, unit_names = pd.factorize(units)
    origin_codes, origin_names = pd.factorize(p50.index.get_level_values("origin"))
    n_units, n_origins = len(unit_names), len(origin_names)
    candidates = _simplex(len(member_names), grid_step(len(member_names)))
    cell = unit_codes * n_origins + origin_codes
    # cell_errors[u, o, c]: unit u's absolute error at origin o with candidate c.
    cell_errors = _summed_errors(forecasts, actual, cell, n_units * n_origins, candidates)
    cell_errors = cell_errors.reshape(n_units, n_origins, len(candidates))
    cell_totals = np.bincount(cell, weights=np.abs(actual), minlength=n_units * n_origins)
    cell_totals = cell_totals.reshape(n_units, n_origins)
    cell_rows = np.bincount(cell, minlength=n_units * n_origins).reshape(n_units, n_origins)

    naive_share = (
        candidates[:, member_names.index("snaive")] if "snaive" in member_names
        else np.zeros(len(candidates))
    )
    pooled = candidates[
        _pooled_choice(cell_errors.sum(axis=1), cell_totals.sum(axis=1), naive_share)
    ]
    pooled_without = [
        candidates[_pooled_choice(np.delete(cell_errors, o, axis=1).sum(axis=1),
                                  np.delete(cell_totals, o, axis=1).sum(axis=1), naive_share)]
        for o in range(n_origins)
    ]
    unit_weights = {}
    for u in range(n_units):
        seen = np.flatnonzero(cell_rows[u] > 0)
        if len(seen) < MIN_UNIT_FOLDS:
            continue
        # held_out[o, s]: the unit's error at held-out origin o with share s of its own
        # weights (learned without o), the rest pooled weights learned without o.
        held_out = np.zeros((len(seen), len(SHRINKAGE)))
        for row, o in enumerate(seen):
            own = candidates[int(np.argmin(np.delete(cell_errors[u], o, axis=0).sum(axis=0)))]
            mask = (unit_codes == u) & (origin_codes == o)
            for s, share in enumerate(SHRINKAGE):
                blend = share * own + (1 - share) * pooled_without[o]
                held_out[row, s] = np.abs(forecasts[mask] @ blend - actual[mask]).sum()
        best = int(np.argmin(held_out.sum(axis=0)))
        if not (held_out[:, best] < held_out[:, 0]).all():
            continue
        share = SHRINKAGE[best]
        own = candidates[int(np.argmin(cell_errors[u].sum(axis=0)))]
        unit_weights[unit_names[u]] = share * own + (1 - share) * pooled
        logger.debug("unit %s: own-weight share %.2f (held-out errors %s)", unit_names[u], share,
                     np.round(held_out[:, best], 1).tolist())
    return {"members": member_names, "pooled": pooled, "units": unit_weights}


def _as_dict(members: list[str], weights: np.ndarray) -> dict[str, float]:
    return {name: round(float(w), 6) for name, w in zip(members, weights, strict=True)}


def fallback_weights(resolution: str) -> dict:
    """Weights for a resolution without any scored CV fold: the seasonal naive alone.

    Why the naive and not an equal mix: with no fold there is no evidence about any
    member, and the naive is the one that needs none. It fits nothing, so it cannot
    overfit a few days; it is the scale every MASE is measured against, so the forecast
    is the baseline rather than an untested claim to beat it; and an equal mix is not
    neutral but adds a fitted member (Prophet on a few days, no weekly seasonality)
    whose error nobody has seen.
    """
    return {
        **{str(index): dict(NAIVE_ONLY) for index in range(len(HORIZON_BUCKETS[resolution]))},
        UNIT_WEIGHTS_KEY: {},
    }


def _member_sets(rows: pd.DataFrame) -> list[tuple[frozenset, list]]:
    """Each set of members some unit has, with its units; the most common set first.

    Ties go to the larger set, then to the names, so that the order is fixed. Each
    set's members other than ``HOUR_MEMBERS`` follow as a set of its own (with the units
    that have exactly it, often none), for the daily-only units seen or not.
    """
    present = rows.groupby(["series_id", "target"])["member"].agg(frozenset)
    groups: dict[frozenset, list] = {}
    for unit, names in present.items():
        groups.setdefault(names, []).append(unit)
    for names in list(groups):
        groups.setdefault(names - frozenset(HOUR_MEMBERS), [])
    groups.pop(frozenset(), None)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), -len(item[0]),
                                                    sorted(item[0])))


def learn_weights(cv: pd.DataFrame, resolution: str) -> dict:
    """Weights of one resolution from its CV frame (rows with ``y``).

    Returns ``{bucket: {member: weight}}`` (pooled, for the set of members most units
    have) plus, under ``UNIT_WEIGHTS_KEY``, ``{unit_key(series, target): {bucket:
    {member: weight}}}`` for the units with CV evidence of their own, and under
    ``MEMBER_SETS_KEY``, ``{member_set_key(members): {bucket: {member: weight}}}`` for
    the other sets of members, each pooled over every unit that has them all (see the
    module docstring); ``combine`` reads all three. A bucket without CV rows has no
    entry: ``combine`` gives it the seasonal naive alone.
    """
    cv = cv[cv["resolution"] == resolution]
    weights: dict = {}
    per_unit: dict[str, dict] = {}
    per_set: dict[str, dict] = {}
    for index in range(len(HORIZON_BUCKETS[resolution])):
        rows = cv[bucket_of(resolution, cv["h"].to_numpy()) == index]
        if rows.empty:
            continue
        unit_keys = pd.MultiIndex.from_arrays([rows["series_id"], rows["target"]])
        present = rows.groupby(["series_id", "target"])["member"].agg(frozenset)
        for place, (names, own_units) in enumerate(_member_sets(rows)):
            sharing = [unit for unit, has in present.items() if names <= has]
            chosen = rows[unit_keys.isin(sharing) & rows["member"].isin(names)]
            learned = _bucket_weights(chosen)
            if learned is None:
                continue
            members = learned["members"]
            pooled = _as_dict(members, learned["pooled"])
            if place == 0:
                weights[str(index)] = pooled
            else:
                per_set.setdefault(member_set_key(names), {})[str(index)] = pooled
            own = set(own_units)
            for (series_id, target), unit_w in learned["units"].items():
                if (series_id, target) in own:
                    per_unit.setdefault(unit_key(series_id, target), {})[str(index)] = (
                        _as_dict(members, unit_w)
                    )
            logger.info(
                "%s bucket %s weights %s, pooled over %d unit(s) (%d with exactly these "
                "members); %d unit(s) won held-out folds with their own", resolution,
                HORIZON_BUCKETS[resolution][index], pooled, len(sharing), len(own_units),
                len([unit for unit in learned["units"] if unit in own]),
            )
    weights[UNIT_WEIGHTS_KEY] = per_unit
    if per_set:
        weights[MEMBER_SETS_KEY] = per_set
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


def equicorrelated_spread(total, total_of_squares, correlation: float):
    """Spread of a sum of parts from the sum and the sum of squares of their spreads.

    ``sqrt((1 - rho) * sum(d_i^2) + rho * (sum d_i)^2)``: ``rho = 0`` treats the parts'
    errors as independent, ``rho = 1`` as moving together. Works on scalars and arrays;
    ``pipelines.cost`` builds month intervals with it and ``sum_coverage`` scores it.
    """
    variance = (1.0 - correlation) * total_of_squares + correlation * total**2
    return np.sqrt(np.maximum(variance, 0.0))


def sum_coverage(windows: pd.DataFrame, correlation: float, spread_factor: float) -> float:
    """Share of window sums inside the interval built by ``pipelines.cost``'s rule.

    Each window length counts equally (the rest of a month is any length from 1 to 31
    days), however many windows of that length the folds hold.
    """
    low = spread_factor * equicorrelated_spread(windows["low1"], windows["low2"], correlation)
    high = spread_factor * equicorrelated_spread(
        windows["high1"], windows["high2"], correlation
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

    Nothing is learned (None: the caller falls back to the setting) from fewer than
    ``MIN_MONTH_FOLDS`` fold origins. The windows of one fold share that fold's level
    error, so the folds, not the windows, are the independent samples of what makes a
    month sum miss, and one fold is a single sample of it. Two are still few: the rule
    then varies a lot from one training to the next (measured by bench/cost). (Seen on
    bench/cost's replay series as of March 20: from one 7-day fold the rule learned
    correlation 0.05 and covered 3 of the 7 months; the setting's 0.75 covered 6.)
    """
    if ensemble_cv.empty:
        return None
    windows = window_sums(ensemble_cv, max_days)
    if windows.empty:
        return None
    folds = int(windows["origin"].nunique())
    if folds < MIN_MONTH_FOLDS:
        logger.info(
            "month interval not learned: %d CV fold(s), fewer than %d; the setting's "
            "correlation applies", folds, MIN_MONTH_FOLDS,
        )
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
        "folds": folds,
        "target_coverage": target_coverage,
    }
    logger.info(
        "month interval: correlation %.2f, spread factor %.2f cover %.0f%% of %d CV window "
        "sums over %d folds", correlation, spread_factor, 100 * learned["cv_coverage"],
        learned["windows"], learned["folds"],
    )
    return learned
