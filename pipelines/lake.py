"""Reading and writing the Parquet lake: hive-style ``dt=YYYY-MM-DD`` partitions, zstd.

Each partition is one file, ``<table>/dt=<day>/part.parquet``, replaced whole with
``os.replace`` from a hidden temporary file beside it. A reader therefore sees a
partition either as it was or as it is now, never half-written, and a crash leaves
at most a hidden ``.tmp`` file that readers skip and the next write replaces.
A caller writing many partitions at once (ingest's staging) may leave them unsynced and
``sync_files`` them together before it relies on them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipelines.schema import (
    BUCKETS_SCHEMA,
    CALLS_SCHEMA,
    TIMESTAMP,
    USAGE_DAILY_SCHEMA,
    USAGE_HOURLY_SCHEMA,
)

logger = logging.getLogger(__name__)

PARTITION_FILE = "part.parquet"
COMPRESSION = "zstd"
ROW_GROUP_ROWS = 1 << 20
PLAIN_COLUMNS = frozenset({"request_id", "timestamp", "latency_ms", "source_line", "raw_line"})
"""Columns (of any table) that are nearly unique per row, written without a dictionary.
Arrow's writer tries a dictionary on every column unless told otherwise and falls back to
plain pages only once the dictionary page is full; on these columns of a calls partition
that made the write slower, the read back slower still (unique request ids) and the file
larger. Every other column (labels, status codes, token counts) keeps its dictionary."""
SYNC_THREADS = 8
"""fsyncs in flight at once in ``sync_files``: the file system commits them together."""

COVERAGE = "coverage"
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_line", pa.int64()),
        pa.field("field", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw_line", pa.string()),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("ingested_at", TIMESTAMP, nullable=False),
    ]
)
"""Rows ingest refused, with where they came from and why; partitioned by ingest day."""


def partition_dir(lake_dir: Path, table: str, day: dt.date) -> Path:
    return lake_dir / table / f"dt={day.isoformat()}"


def write_partition(lake_dir: Path, table: str, day: dt.date, data: pa.Table,
                    sync: bool = True) -> Path:
    """Replace one day's partition atomically with ``data`` (already in the table's schema)."""
    return write_partition_batches(lake_dir, table, day, data.schema, [data], sync=sync)


def write_partition_batches(
    lake_dir: Path,
    table: str,
    day: dt.date,
    schema: pa.Schema,
    parts: Iterable[pa.Table | pa.RecordBatch],
    sync: bool = True,
) -> Path:
    """Replace one day's partition atomically with ``parts`` written one after another.

    Each part goes to disk as it comes, so a day larger than memory can be written from
    a stream; the partition appears (``os.replace``) only once the file is complete.
    With ``sync=False`` the file is not fsynced: the caller must ``sync_files`` it before
    anything depends on it surviving a crash.
    """
    target_dir = partition_dir(lake_dir, table, day)
    target_dir.mkdir(parents=True, exist_ok=True)
    final_path = target_dir / PARTITION_FILE
    temporary_path = target_dir / f".{uuid.uuid4().hex}.tmp"
    dictionary = [name for name in schema.names if name not in PLAIN_COLUMNS]
    try:
        with pq.ParquetWriter(temporary_path, schema, compression=COMPRESSION,
                              use_dictionary=dictionary) as writer:
            for part in parts:
                if isinstance(part, pa.RecordBatch):
                    part = pa.Table.from_batches([part])
                writer.write_table(part, row_group_size=ROW_GROUP_ROWS)
        if sync:
            _fsync(temporary_path)
        os.replace(temporary_path, final_path)
    finally:
        temporary_path.unlink(missing_ok=True)
    return final_path


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_files(root: Path) -> int:
    """fsync every file under ``root`` (several at a time); returns how many."""
    paths = [path for path in root.rglob("*") if path.is_file()]
    with ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="fsync") as pool:
        list(pool.map(_fsync, paths))
    return len(paths)


def delete_partition(lake_dir: Path, table: str, day: dt.date) -> None:
    (partition_dir(lake_dir, table, day) / PARTITION_FILE).unlink(missing_ok=True)


def partition_days(lake_dir: Path, table: str) -> list[dt.date]:
    """The days that have a published partition, oldest first."""
    root = lake_dir / table
    if not root.is_dir():
        return []
    days = []
    for child in root.iterdir():
        if child.name.startswith("dt=") and (child / PARTITION_FILE).is_file():
            days.append(dt.date.fromisoformat(child.name[3:]))
    return sorted(days)


def read_partition(lake_dir: Path, table: str, day: dt.date) -> pa.Table | None:
    path = partition_dir(lake_dir, table, day) / PARTITION_FILE
    if not path.is_file():
        return None
    return pq.read_table(path)


def read_table(
    lake_dir: Path,
    table: str,
    schema: pa.Schema,
    start_day: dt.date | None = None,
    end_day: dt.date | None = None,
    columns: Iterable[str] | None = None,
) -> pa.Table:
    """Read published partitions with ``start_day <= dt < end_day`` (both optional)."""
    days = [
        day
        for day in partition_days(lake_dir, table)
        if (start_day is None or day >= start_day) and (end_day is None or day < end_day)
    ]
    if not days:
        return schema.empty_table() if columns is None else schema.empty_table().select(
            list(columns)
        )
    paths = [str(partition_dir(lake_dir, table, day) / PARTITION_FILE) for day in days]
    dataset = ds.dataset(paths, schema=schema, format="parquet")
    return dataset.to_table(columns=list(columns) if columns is not None else None)


def read_calls(lake_dir: Path, start_day=None, end_day=None, columns=None) -> pa.Table:
    return read_table(lake_dir, "calls", CALLS_SCHEMA, start_day, end_day, columns)


def read_usage_hourly(lake_dir: Path, start_day=None, end_day=None, columns=None) -> pa.Table:
    return read_table(lake_dir, "usage_hourly", USAGE_HOURLY_SCHEMA, start_day, end_day, columns)


def read_usage_daily(lake_dir: Path, start_day=None, end_day=None, columns=None) -> pa.Table:
    return read_table(lake_dir, "usage_daily", USAGE_DAILY_SCHEMA, start_day, end_day, columns)


def read_usage_buckets(lake_dir: Path, start_day=None, end_day=None, columns=None) -> pa.Table:
    return read_table(lake_dir, "usage_buckets", BUCKETS_SCHEMA, start_day, end_day, columns)


def read_coverage(lake_dir: Path, start_day=None, end_day=None, columns=None) -> pa.Table:
    from pipelines.hourly import COVERAGE_SCHEMA

    return read_table(lake_dir, COVERAGE, COVERAGE_SCHEMA, start_day, end_day, columns)


def read_quarantine(lake_dir: Path, start_day=None, end_day=None, columns=None) -> pa.Table:
    return read_table(lake_dir, "quarantine", QUARANTINE_SCHEMA, start_day, end_day, columns)
