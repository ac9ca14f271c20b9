"""The lake's tables: their paths and explicit Arrow schemas.

Token fields are normalised on the way in so that every table means the same
thing whatever the source:

- ``input_tokens`` is *all* prompt tokens of the call or bucket, including
  cache reads and cache writes (OpenAI and LiteLLM report it that way;
  Anthropic's ``uncached_input_tokens`` is the uncached part only, so ingest
  adds the cache fields to it).
- ``cached_input_tokens`` are the prompt tokens read from a cache, and
  ``cache_write_tokens`` the prompt tokens written to one. Both are parts of
  ``input_tokens``, so the uncached part is ``input - cached - cache_write``
  and each part is priced once, at its own rate.
- A call that reported no usage keeps null token fields, never zero.

Every table keeps the series grain columns ``provider``, ``model`` and ``team``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

CALLS = "calls"
BUCKETS = "usage_buckets"
USAGE_HOURLY = "usage_hourly"
USAGE_DAILY = "usage_daily"
QUARANTINE = "quarantine"

TIMESTAMP = pa.timestamp("us", tz="UTC")

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")

CALLS_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string()),
        pa.field("timestamp", TIMESTAMP, nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("team", pa.string(), nullable=False),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("cached_input_tokens", pa.int64()),
        pa.field("cache_write_tokens", pa.int64()),
        pa.field("status_code", pa.int32()),
        pa.field("latency_ms", pa.float64()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
    ]
)
"""One row per call; partitioned by ``dt`` (the call's UTC date)."""

BUCKETS_SCHEMA = pa.schema(
    [
        pa.field("bucket_start", TIMESTAMP, nullable=False),
        pa.field("bucket_end", TIMESTAMP, nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("team", pa.string(), nullable=False),
        pa.field("requests", pa.int64()),
        pa.field("input_tokens", pa.int64()),
        pa.field("output_tokens", pa.int64()),
        pa.field("cached_input_tokens", pa.int64()),
        pa.field("cache_write_tokens", pa.int64()),
        pa.field("source_format", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
    ]
)
"""Provider usage reports stored as the buckets they came in (never spread into calls)."""

USAGE_HOURLY_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string(), nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("team", pa.string(), nullable=False),
        pa.field("hour", TIMESTAMP, nullable=False),
        pa.field("requests", pa.int64(), nullable=False),
        pa.field("errors", pa.int64(), nullable=False),
        pa.field("input_tokens", pa.int64(), nullable=False),
        pa.field("output_tokens", pa.int64(), nullable=False),
        pa.field("cached_input_tokens", pa.int64(), nullable=False),
        pa.field("cache_write_tokens", pa.int64(), nullable=False),
        pa.field("calls_without_usage", pa.int64(), nullable=False),
    ]
)
"""Per series and UTC hour; hours without calls inside a source's coverage are zeros,
hours outside every source's coverage are absent. Partitioned by ``dt``."""

USAGE_DAILY_SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string(), nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("team", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("resolution", pa.string(), nullable=False),
        pa.field("requests", pa.int64(), nullable=False),
        pa.field("errors", pa.int64()),
        pa.field("input_tokens", pa.int64(), nullable=False),
        pa.field("output_tokens", pa.int64(), nullable=False),
        pa.field("cached_input_tokens", pa.int64(), nullable=False),
        pa.field("cache_write_tokens", pa.int64(), nullable=False),
        pa.field("calls_without_usage", pa.int64()),
    ]
)
"""Per series and UTC day, from every source. ``resolution`` is ``hour`` where the
series also has hourly rows and ``day`` where it is known only by daily buckets."""

TARGETS = ("requests", "input_tokens", "output_tokens", "cached_input_tokens")
"""The quantities usagecast forecasts for every series."""


def series_id(provider: str, model: str, team: str, grain: tuple[str, ...]) -> str:
    """A stable, readable key: the grain's values joined by ``/`` (e.g. ``openai/gpt-4.1/crm``).

    Grain columns left out of the grain are stored as ``*`` in the lake.
    """
    values = {"provider": provider, "model": model, "team": team}
    return "/".join(values[column] for column in grain)


def table_dir(lake_dir: Path, table: str) -> Path:
    return lake_dir / table
