"""Builds a small real lake for the training tests (see tests/models/real_lake.py)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from real_lake import hourly_table, nab_hourly, write_hourly_lake  # noqa: E402


def build_lake(lake_dir: Path, real_data_dir: Path, names: tuple[str, ...], days: int) -> dt.date:
    """Write ``days`` whole UTC days of each tweet series; returns the as-of day after them."""
    frames = []
    for name in names:
        counts = nab_hourly(real_data_dir / "nab_tweets" / f"twitter_volume_{name}.csv")
        start = counts.index[0].ceil("D")
        end = start + pd_days(days)
        frames.append(hourly_table(name, counts, start, end))
    write_hourly_lake(lake_dir, frames)
    return (frames[0]["hour"].max().date() + dt.timedelta(days=1))


def pd_days(days: int):
    import pandas as pd

    return pd.Timedelta(days=days)
