"""Ensemble weights per horizon bucket, learned from cross-validation errors.

For each resolution and bucket, the weights are the point of the simplex (a grid)
whose mixed median has the lowest mean WAPE over the units' CV forecasts; the
interval width factor is the one whose CV coverage of p10..p90 is closest to 80%.
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
