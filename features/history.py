"""The model's one input shape: a long history frame, and how to build it from the lake.

Every model in usagecast reads the same long frame, one row per
(series, resolution, target, time step):

- ``series_id`` (str), ``resolution`` (``hour`` or ``day``), ``ds`` (naive UTC wall
  time; a day's midnight for ``day`` rows), ``target`` (one of ``schema.TARGETS``),
  ``y`` (float).

A *unit* is one (series_id, target) pair: the thing a model forecasts.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.schema import TARGETS

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = ("series_id", "resolution", "ds", "target", "y")


@dataclass(frozen=True)
class UnitSeries:
    """One unit's values on a regular grid; ``values`` is NaN where nothing was observed."""

    series_id: str
    target: str
    start: pd.Timestamp
    freq: str
    values: np.ndarray

    @property
    def end(self) -> pd.Timestamp:
        """The first time step after the last value."""
        return self.start + len(self.values) * pd.Timedelta(1, unit=_unit(self.freq))


def _unit(freq: str) -> str:
    return "h" if freq == "h" else "D"


def check_history(history: pd.DataFrame) -> pd.DataFrame:
    """Return a clean copy of ``history`` or raise ValueError naming what is wrong."""
    missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
    if missing:
        raise ValueError(f"history frame lacks columns {missing}; needs {list(HISTORY_COLUMNS)}")
    frame = history.loc[:, list(HISTORY_COLUMNS)].copy()
    bad_resolution = ~frame["resolution"].isin(["hour", "day"])
    if bad_resolution.any():
        row = frame.index[bad_resolution][0]
        raise ValueError(
            f"history row {row}: resolution {frame.at[row, 'resolution']!r} is not hour or day"
        )
    bad_target = ~frame["target"].isin(TARGETS)
    if bad_target.any():
        row = frame.index[bad_target][0]
        raise ValueError(f"history row {row}: target {frame.at[row, 'target']!r} not in {TARGETS}")
    frame["series_id"] = frame["series_id"].astype(str)
    frame["ds"] = pd.to_datetime(frame["ds"])
    if frame["ds"].dt.tz is not None:
        frame["ds"] = frame["ds"].dt.tz_convert("UTC").dt.tz_localize(None)
    frame["y"] = frame["y"].astype(float)
    return frame


def unit_series(history: pd.DataFrame, resolution: str, before: pd.Timestamp) -> list[UnitSeries]:
    """Regular-grid series per unit from rows of one resolution strictly before ``before``.

    Daily series for a unit come from its ``day`` rows when it has any, else from its
    ``hour`` rows summed per day (only days whose 24 hours are all present).
    """
    freq = "h" if resolution == "hour" else "D"
    rows = history[history["ds"] < before]
    rows = _daily_rows(rows) if resolution == "day" else rows[rows["resolution"] == "hour"]
    result = []
    for (series, target), group in rows.groupby(["series_id", "target"], sort=True):
        group = group.groupby("ds")["y"].sum(min_count=1).sort_index()
        if group.empty:
            continue
        grid = pd.date_range(group.index[0], before, freq=freq, inclusive="left")
        values = group.reindex(grid).to_numpy(dtype=float)
        result.append(UnitSeries(str(series), str(target), grid[0], freq, values))
    return result


def _daily_rows(rows: pd.DataFrame) -> pd.DataFrame:
    day_rows = rows[rows["resolution"] == "day"]
    hour_rows = rows[rows["resolution"] == "hour"]
    has_days = set(map(tuple, day_rows[["series_id", "target"]].drop_duplicates().to_numpy()))
    if not hour_rows.empty:
        keys = list(zip(hour_rows["series_id"], hour_rows["target"], strict=True))
        hour_rows = hour_rows[[key not in has_days for key in keys]]
    if hour_rows.empty:
        return day_rows
    summed = (
        hour_rows.assign(day=hour_rows["ds"].dt.floor("D"))
        .groupby(["series_id", "target", "day"])["y"]
        .agg(["sum", "count"])
        .reset_index()
    )
    summed = summed[summed["count"] == 24]
    summed = summed.rename(columns={"day": "ds", "sum": "y"}).assign(resolution="day")
    return pd.concat([day_rows, summed[list(HISTORY_COLUMNS)]], ignore_index=True)


def history_days(history: pd.DataFrame) -> dict[str, int]:
    """How many distinct UTC days each series has any data for."""
    days = history["ds"].dt.floor("D")
    return days.groupby(history["series_id"]).nunique().astype(int).to_dict()


def history_from_lake(
    settings, as_of: dt.date, series_filter: str | None = None, start_day: dt.date | None = None
) -> pd.DataFrame:
    """The history frame for every series from the lake, for days before ``as_of``.

    Hourly rows come from ``usage_hourly``; daily rows from ``usage_daily`` for the
    series known only by daily buckets (``resolution == 'day'``), so that an hourly
    series is not counted twice.
    """
    from pipelines.lake import read_usage_daily, read_usage_hourly

    hourly = read_usage_hourly(settings.lake_dir, start_day, as_of).to_pandas()
    daily = read_usage_daily(settings.lake_dir, start_day, as_of).to_pandas()
    frames = []
    if not hourly.empty:
        hourly_long = hourly.melt(
            id_vars=["series_id", "hour"], value_vars=list(TARGETS), var_name="target",
            value_name="y",
        ).rename(columns={"hour": "ds"})
        # The contract's ds is naive UTC wall time for both resolutions.
        hourly_long["ds"] = pd.to_datetime(hourly_long["ds"], utc=True).dt.tz_convert(None)
        frames.append(hourly_long.assign(resolution="hour"))
    if not daily.empty:
        daily = daily[daily["resolution"] == "day"]
        daily_long = daily.melt(
            id_vars=["series_id", "day"], value_vars=list(TARGETS), var_name="target",
            value_name="y",
        ).rename(columns={"day": "ds"})
        daily_long["ds"] = pd.to_datetime(daily_long["ds"])
        frames.append(daily_long.assign(resolution="day"))
    if not frames:
        return pd.DataFrame({column: [] for column in HISTORY_COLUMNS})
    history = check_history(pd.concat(frames, ignore_index=True))
    if series_filter:
        history = history[history["series_id"].str.contains(series_filter, regex=False)]
    logger.info(
        "history before %s: %d series, %d rows", as_of, history["series_id"].nunique(),
        len(history),
    )
    return history.sort_values(["series_id", "target", "resolution", "ds"]).reset_index(drop=True)
