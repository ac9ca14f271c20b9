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
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd

from models.forecaster import HORIZON_BUCKETS, UNIT_WEIGHTS_KEY, bucket_of, unit_key

logger = logging.getLogger(__name__)

GRID_STEP = 0.05
WIDTH_FACTORS = np.round(np.arange(0.5, 3.01, 0.05), 2)
SHRINKAGE = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate shares of a unit's own weights (the rest pooled), smallest first: ties pool."""
MIN_UNIT_FOLDS = 4
CANDIDATE_BLOCK = 64
"""Held-out origins a unit's own weights must all win before they replace the pooled ones."""


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


def _pooled_choice(errors: np.ndarray, totals: np.ndarray) -> int:
    """Candidate with the lowest mean unit WAPE; ``errors`` (unit, cand), ``totals`` (unit,)."""
    scored = totals > 0
    if not scored.any():
        return int(np.argmin(errors.sum(axis=0)))
    return int(np.argmin((errors[scored] / totals[scored][:, None]).mean(axis=0)))


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
    candidates = _simplex(len(member_names), GRID_STEP)
    cell = unit_codes * n_origins + origin_codes
    # cell_errors[u, o, c]: unit u's absolute error at origin o with candidate c.
    cell_errors = _summed_errors(forecasts, actual, cell, n_units * n_origins, candidates)
    cell_errors = cell_errors.reshape(n_units, n_origins, len(candidates))
    cell_totals = np.bincount(cell, weights=np.abs(actual), minlength=n_units * n_origins)
    cell_totals = cell_totals.reshape(n_units, n_origins)
    cell_rows = np.bincount(cell, minlength=n_units * n_origins).reshape(n_units, n_origins)

    pooled = candidates[_pooled_choice(cell_errors.sum(axis=1), cell_totals.sum(axis=1))]
    pooled_without = [
        candidates[_pooled_choice(np.delete(cell_errors, o, axis=1).sum(axis=1),
                                  np.delete(cell_totals, o, axis=1).sum(axis=1))]
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


def learn_weights(cv: pd.DataFrame, resolution: str) -> dict:
    """Weights of one resolution from its CV frame (rows with ``y``).

    Returns ``{bucket: {member: weight}}`` (pooled over all units) plus, under
    ``UNIT_WEIGHTS_KEY``, ``{unit_key(series, target): {bucket: {member: weight}}}`` for
    the units with CV evidence of their own; ``combine`` reads both.
    """
    cv = cv[cv["resolution"] == resolution]
    weights: dict = {}
    per_unit: dict[str, dict] = {}
    for index in range(len(HORIZON_BUCKETS[resolution])):
        rows = cv[bucket_of(resolution, cv["h"].to_numpy()) == index]
        learned = _bucket_weights(rows)
        if learned is None:
            continue
        members = learned["members"]
        weights[str(index)] = _as_dict(members, learned["pooled"])
        for (series_id, target), unit_w in learned["units"].items():
            per_unit.setdefault(unit_key(series_id, target), {})[str(index)] = _as_dict(
                members, unit_w
            )
        logger.info(
            "%s bucket %s pooled weights %s; %d unit(s) won held-out folds with their own",
            resolution, HORIZON_BUCKETS[resolution][index], weights[str(index)],
            len(learned["units"]),
        )
    weights[UNIT_WEIGHTS_KEY] = per_unit
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
