"""Seasonal naive: the value one season before (same hour last week, same weekday last week);
seasonal median: the median of the same slot over the last four seasons.

The seasonal naive is the baseline every metric is scaled by; both are ensemble
members. The naive's interval comes from the spread of the unit's own seasonal
differences, the median's from the spread of the slot values it takes the median of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.history import UnitSeries
from features.lagged import ResolutionSpec


def forecast_unit(unit: UnitSeries, horizon: int, spec: ResolutionSpec) -> pd.DataFrame:
    """``horizon`` steps from the end of the unit's history, repeating its last full season."""
    values = unit.values
    season = spec.season
    observed = values[~np.isnan(values)]
    fallback = float(observed[-season:].mean()) if observed.size else 0.0
    steps = np.arange(horizon)
    p50 = np.empty(horizon)
    for step in steps:
        index = len(values) + step - season * (step // season + 1)
        value = values[index] if index >= 0 else np.nan
        p50[step] = fallback if np.isnan(value) else value
    differences = values[season:] - values[:-season] if len(values) > season else np.array([])
    differences = differences[~np.isnan(differences)][-season * 4 :]
    if differences.size >= 10:
        low, high = np.quantile(differences, [0.1, 0.9])
    else:
        low, high = -0.25 * abs(fallback), 0.25 * abs(fallback)
    return _quantile_frame(unit, spec, steps, p50 + min(low, 0.0), p50, p50 + max(high, 0.0))


def _quantile_frame(
    unit: UnitSeries, spec: ResolutionSpec, steps: np.ndarray, p10, p50, p90
) -> pd.DataFrame:
    """A unit's forecast rows for ``steps`` (0-based), every quantile clipped at zero."""
    return pd.DataFrame(
        {
            "series_id": unit.series_id,
            "target": unit.target,
            "h": steps + 1,
            "ds": unit.end + pd.to_timedelta(steps * spec.step.value, unit="ns"),
            "p10": np.clip(p10, 0, None),
            "p50": np.clip(p50, 0, None),
            "p90": np.clip(p90, 0, None),
        }
    )


def forecast(units: list[UnitSeries], horizon: int, spec: ResolutionSpec) -> pd.DataFrame:
    frames = [forecast_unit(unit, horizon, spec) for unit in units]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


MEDIAN_CYCLES = 4
"""Seasons the seasonal median looks back over: four weeks, a month of same-slot values."""


def median_forecast_unit(unit: UnitSeries, horizon: int, spec: ResolutionSpec) -> pd.DataFrame:
    """Median of the same seasonal slot over the last ``MEDIAN_CYCLES`` seasons.

    Why: one news spike in last week's slot moves the seasonal naive fully and this
    member not at all, and WAPE rewards the median. Unobserved slots are skipped; a
    slot with no observed value falls back to the median of the last observed season.
    p10/p90 are the 10% and 90% quantiles of the same slot values.
    """
    values = unit.values
    season = spec.season
    observed = values[~np.isnan(values)]
    fallback = float(np.median(observed[-season:])) if observed.size else 0.0
    steps = np.arange(horizon)
    slots = np.full((horizon, MEDIAN_CYCLES), np.nan)
    for cycle in range(MEDIAN_CYCLES):
        index = len(values) + steps - season * (steps // season + 1 + cycle)
        valid = index >= 0
        slots[valid, cycle] = values[index[valid]]
    empty = np.isnan(slots).all(axis=1)
    slots[empty, 0] = fallback
    with np.errstate(all="ignore"):
        p10, p50, p90 = np.nanquantile(slots, [0.1, 0.5, 0.9], axis=1)
    return _quantile_frame(unit, spec, steps, p10, p50, p90)


def median_forecast(units: list[UnitSeries], horizon: int, spec: ResolutionSpec) -> pd.DataFrame:
    frames = [median_forecast_unit(unit, horizon, spec) for unit in units]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
