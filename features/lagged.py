"""Origin-relative features for direct multi-horizon forecasts, leak-free by construction.

A row describes one (unit, origin, horizon): the origin is the first time step being
forecast, the horizon ``h`` counts steps from it (1 = the origin itself). Every
feature of the row is computed from the unit's own values *strictly before the
origin*, plus the calendar of the target time. The same function builds training
rows (many past origins, with labels) and prediction rows (one origin at the end of
the history, no label), so the two can never drift apart.

Values are divided by the unit's recent level (``scale``) so that one global model
fits series of every size; a lag that the history cannot supply falls back to the
next coarser statistic, so no feature is ever blank or zero-filled at prediction time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.calendar import calendar_features
from features.history import UnitSeries
from pipelines.schema import TARGETS


@dataclass(frozen=True)
class ResolutionSpec:
    """How a resolution's features look back: its seasons and recent windows."""

    resolution: str
    step: pd.Timedelta
    season: int
    short_season: int | None
    season_cycles: int
    short_cycles: int
    recent_windows: tuple[int, ...]
    scale_window: int
    min_history: int


HOURLY = ResolutionSpec(
    resolution="hour", step=pd.Timedelta(hours=1), season=168, short_season=24,
    season_cycles=4, short_cycles=7, recent_windows=(1, 6, 24, 168), scale_window=168,
    min_history=24,
)
DAILY = ResolutionSpec(
    resolution="day", step=pd.Timedelta(days=1), season=7, short_season=None,
    season_cycles=4, short_cycles=0, recent_windows=(1, 7, 28), scale_window=28,
    min_history=7,
)
SPECS = {"hour": HOURLY, "day": DAILY}


def spec_for(resolution: str) -> ResolutionSpec:
    return SPECS[resolution]


def _window_means(values: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Mean of the observed values in ``values[end - width:end]`` for each end (NaN if none)."""
    observed = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(observed, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(observed)])
    starts = np.clip(ends - width, 0, None)
    count = counts[ends] - counts[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (sums[ends] - sums[starts]) / np.maximum(count, 1), np.nan)


def _seasonal_values(
    values: np.ndarray, targets: np.ndarray, horizons: np.ndarray, season: int, cycles: int
) -> np.ndarray:
    """Values one, two, ... ``cycles`` seasons before each target, all before the origin.

    The first cycle used is the nearest one that lies before the origin:
    ``ceil(h / season)`` seasons back. Returns shape (rows, cycles), NaN where absent.
    """
    first = np.ceil(horizons / season).astype(int)
    out = np.full((len(targets), cycles), np.nan)
    for cycle in range(cycles):
        index = targets - season * (first + cycle)
        valid = index >= 0
        out[valid, cycle] = values[index[valid]]
    return out


def _nanmean_rows(block: np.ndarray) -> np.ndarray:
    observed = ~np.isnan(block)
    count = observed.sum(axis=1)
    total = np.where(observed, block, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _fill(primary: np.ndarray, *fallbacks: np.ndarray) -> np.ndarray:
    result = primary.copy()
    for fallback in fallbacks:
        missing = np.isnan(result)
        if not missing.any():
            break
        result[missing] = fallback[missing]
    return result


def unit_rows(
    unit: UnitSeries,
    origins: np.ndarray,
    horizons: np.ndarray,
    spec: ResolutionSpec,
    countries: tuple[str, ...],
) -> pd.DataFrame:
    """Feature rows of one unit for every (origin index, horizon) pair.

    ``origins`` are indices into ``unit.values`` (the first step forecast; it may equal
    ``len(values)`` for a forecast past the history's end). Columns: ``origin``,
    ``h``, ``ds`` (target time), ``scale``, the features, and ``label`` (target value
    divided by scale, NaN where the target lies beyond the history or is unobserved).
    """
    values = unit.values
    origin_grid, horizon_grid = np.meshgrid(origins, horizons, indexing="ij")
    origin_index = origin_grid.ravel()
    horizon = horizon_grid.ravel()
    target_index = origin_index + horizon - 1

    scale = _window_means(values, origin_index, spec.scale_window)
    scale = _fill(scale, _window_means(values, origin_index, len(values) + 1))
    denominator = np.where(np.nan_to_num(scale) > 0, scale, 1.0)

    recent = {
        f"mean_{width}": _window_means(values, origin_index, width) / denominator
        for width in spec.recent_windows
    }
    level = recent[f"mean_{spec.scale_window}"]
    seasonal = _seasonal_values(values, target_index, horizon, spec.season, spec.season_cycles)
    seasonal_mean = _nanmean_rows(seasonal) / denominator
    columns = {}
    if spec.short_season:
        short = _seasonal_values(
            values, target_index, horizon, spec.short_season, spec.short_cycles
        )
        short_mean = _fill(_nanmean_rows(short) / denominator, level)
        short_lag = _fill(short[:, 0] / denominator, short_mean)
        seasonal_mean = _fill(seasonal_mean, short_mean)
        columns["short_lag"] = short_lag
        columns["short_mean"] = short_mean
    seasonal_mean = _fill(seasonal_mean, level)
    seasonal_lag = _fill(seasonal[:, 0] / denominator, seasonal_mean)
    columns["season_lag"] = seasonal_lag
    columns["season_mean"] = seasonal_mean
    for name, column in recent.items():
        columns[name] = _fill(column, level)

    target_times = unit.start + pd.to_timedelta(target_index * spec.step.value, unit="ns")
    calendar = calendar_features(target_times, spec.resolution, countries)

    labels = np.full(len(target_index), np.nan)
    inside = target_index < len(values)
    labels[inside] = values[target_index[inside]] / denominator[inside]

    frame = pd.DataFrame(
        {
            "series_id": unit.series_id,
            "target": unit.target,
            "origin": origin_index,
            "h": horizon,
            "ds": target_times,
            "scale": np.nan_to_num(scale),
            "target_code": TARGETS.index(unit.target),
            **columns,
            **calendar,
            "label": labels,
        }
    )
    return frame


def feature_columns(spec: ResolutionSpec) -> list[str]:
    """The model inputs of a resolution, in a fixed order."""
    columns = ["h", "target_code"]
    if spec.short_season:
        columns += ["short_lag", "short_mean"]
    columns += ["season_lag", "season_mean"]
    columns += [f"mean_{width}" for width in spec.recent_windows]
    columns += ["weekday", "weekend", "day_of_month", "month", "holiday"]
    if spec.resolution == "hour":
        columns.append("hour")
    return columns


def training_rows(
    units: list[UnitSeries],
    spec: ResolutionSpec,
    max_horizon: int,
    countries: tuple[str, ...],
    max_rows: int = 60_000,
) -> pd.DataFrame:
    """Labelled rows from past origins of every unit, thinned evenly to about ``max_rows``."""
    candidates = sum(max(len(unit.values) - spec.min_history, 0) for unit in units)
    stride = max(1, int(np.ceil(candidates * max_horizon / max_rows)))
    frames = []
    for unit in units:
        last = len(unit.values)
        if last <= spec.min_history:
            continue
        origins = np.arange(last - 1, spec.min_history - 1, -stride)[::-1]
        rows = unit_rows(unit, origins, np.arange(1, max_horizon + 1), spec, countries)
        frames.append(rows[rows["label"].notna()])
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def prediction_rows(
    units: list[UnitSeries], spec: ResolutionSpec, horizon: int, countries: tuple[str, ...]
) -> pd.DataFrame:
    """Rows for a forecast from the end of each unit's history, ``horizon`` steps ahead."""
    frames = [
        unit_rows(unit, np.array([len(unit.values)]), np.arange(1, horizon + 1), spec, countries)
        for unit in units
        if len(unit.values) > 0
    ]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
