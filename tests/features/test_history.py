"""The history frame read from a lake that mixes hourly series and daily-only series."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from features.history import history_from_lake
from pipelines import lake
from pipelines.schema import USAGE_DAILY_SCHEMA, USAGE_HOURLY_SCHEMA

DAY = dt.date(2026, 3, 2)


def _hourly_partition() -> pa.Table:
    hours = [dt.datetime(2026, 3, 2, hour, tzinfo=dt.UTC) for hour in range(24)]
    return pa.table(
        {
            "series_id": ["openai/gpt-4.1/crm"] * 24,
            "provider": ["openai"] * 24,
            "model": ["gpt-4.1"] * 24,
            "team": ["crm"] * 24,
            "hour": hours,
            "requests": list(range(24)),
            "errors": [0] * 24,
            "input_tokens": [100] * 24,
            "output_tokens": [10] * 24,
            "cached_input_tokens": [0] * 24,
            "cache_write_tokens": [0] * 24,
            "calls_without_usage": [0] * 24,
        },
        schema=USAGE_HOURLY_SCHEMA,
    )


def _daily_partition() -> pa.Table:
    rows = [
        ("openai/gpt-4.1/crm", "openai", "gpt-4.1", "crm", "hour", 276, 2400),
        ("anthropic/claude-opus-4/ml", "anthropic", "claude-opus-4", "ml", "day", 40, 9000),
    ]
    columns = list(zip(*rows, strict=True))
    return pa.table(
        {
            "series_id": columns[0],
            "provider": columns[1],
            "model": columns[2],
            "team": columns[3],
            "day": [DAY, DAY],
            "resolution": columns[4],
            "requests": columns[5],
            "errors": [0, None],
            "input_tokens": columns[6],
            "output_tokens": [240, 500],
            "cached_input_tokens": [0, 0],
            "cache_write_tokens": [0, 0],
            "calls_without_usage": [0, None],
        },
        schema=USAGE_DAILY_SCHEMA,
    )


def test_hourly_and_daily_only_series_share_one_naive_utc_frame(settings):
    lake.write_partition(settings.lake_dir, "usage_hourly", DAY, _hourly_partition())
    lake.write_partition(settings.lake_dir, "usage_daily", DAY, _daily_partition())

    history = history_from_lake(settings, as_of=DAY + dt.timedelta(days=1))

    assert history["ds"].dt.tz is None
    hourly = history[(history["resolution"] == "hour") & (history["target"] == "requests")]
    assert len(hourly) == 24 and hourly["y"].sum() == 276
    assert hourly["ds"].min() == pd.Timestamp("2026-03-02 00:00")
    daily = history[history["resolution"] == "day"]
    assert set(daily["series_id"]) == {"anthropic/claude-opus-4/ml"}
    assert daily.set_index("target")["y"].to_dict()["input_tokens"] == 9000
    assert daily["ds"].iloc[0] == pd.Timestamp("2026-03-02")
