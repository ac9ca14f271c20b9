"""Seasonal naive: the value one season before (same hour last week, same weekday last week).

It is the baseline every metric is scaled by, and one of the ensemble's members.
Its interval comes from the spread of the unit's own seasonal differences.
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
    times = unit.end + pd.to_timedelta(steps * spec.step.value, unit="ns")
    return pd.DataFrame(
        {
            "series_id": unit.series_id,
            "target": unit.target,
            "h": steps + 1,
            "ds": times,
            "p10": np.clip(p50 + min(low, 0.0), 0, None),
            "p50": np.clip(p50, 0, None),
            "p90": np.clip(p50 + max(high, 0.0), 0, None),
        }
    )


def forecast(units: list[UnitSeries], horizon: int, spec: ResolutionSpec) -> pd.DataFrame:
    frames = [forecast_unit(unit, horizon, spec) for unit in units]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
