"""Lake tables built from the real NAB counts, for tests of the models and training.

Requests are the real 5-minute counts summed to UTC hours (empty slots inside the
span are 0, as in shared/ANCHORS.md). Token columns are derived from the requests
with fixed per-call sizes (labelled test data): the models see four related units
per series, which is what a real gateway log produces.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipelines.lake import write_partition
from pipelines.schema import USAGE_DAILY_SCHEMA, USAGE_HOURLY_SCHEMA

TOKENS_PER_CALL = {"input_tokens": 1200, "output_tokens": 240, "cached_input_tokens": 300}


def nab_hourly(csv_path: Path) -> pd.Series:
    """Hourly sums of a NAB 5-minute count file, indexed by naive UTC hour."""
    raw = pd.read_csv(csv_path, parse_dates=["timestamp"])
    hourly = raw.set_index("timestamp")["value"].resample("h").sum()
    return hourly.astype(float)


def hourly_table(name: str, counts: pd.Series, start=None, end=None) -> pd.DataFrame:
    counts = counts[(counts.index >= start) if start is not None else slice(None)]
    if end is not None:
        counts = counts[counts.index < end]
    requests = counts.round().astype("int64")
    frame = pd.DataFrame({
        "series_id": f"test/{name}/team",
        "provider": "test", "model": name, "team": "team",
        "hour": requests.index.tz_localize("UTC"),
        "requests": requests.to_numpy(), "errors": 0,
    })
    for column, size in TOKENS_PER_CALL.items():
        frame[column] = frame["requests"] * size
    frame["cache_write_tokens"] = 0
    frame["calls_without_usage"] = 0
    return frame


def write_hourly_lake(lake_dir: Path, frames: list[pd.DataFrame]) -> list[dt.date]:
    """Write usage_hourly and the matching usage_daily partitions; returns the days."""
    hourly = pd.concat(frames, ignore_index=True)
    hourly["dt"] = hourly["hour"].dt.date
    days = sorted(hourly["dt"].unique())
    for day in days:
        rows = hourly[hourly["dt"] == day].drop(columns="dt")
        write_partition(lake_dir, "usage_hourly", day,
                        pa.Table.from_pandas(rows, schema=USAGE_HOURLY_SCHEMA,
                                             preserve_index=False))
        daily = rows.assign(day=day).groupby(
            ["series_id", "provider", "model", "team", "day"], as_index=False
        )[["requests", "errors", "input_tokens", "output_tokens", "cached_input_tokens",
           "cache_write_tokens", "calls_without_usage"]].sum()
        daily["resolution"] = "hour"
        write_partition(lake_dir, "usage_daily", day,
                        pa.Table.from_pandas(daily[USAGE_DAILY_SCHEMA.names],
                                             schema=USAGE_DAILY_SCHEMA, preserve_index=False))
    return days
