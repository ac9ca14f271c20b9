"""One UTC day of calls rebuilt on disk: stored and staged calls, exact duplicates dropped.

A day on ten times the replay holds 1.6 M calls; merging, deduplicating and sorting it
whole in Arrow took about 1 GB. Here DuckDB runs the merge over the Parquet files (the
published partition and the staged pieces) under a memory limit, spilling to a folder
inside the batch's staging area, and hands the result back in slices: each slice is
written to the day's new partition and reduced to hourly sums as it comes, so memory
stays bounded by the limit plus a few slices whatever the size of the day.

The rules are those of the in-memory version they replace: a row with a request id is a
duplicate when the id repeats, a row without one when its content repeats, stored rows
always win over staged ones and earlier staged rows over later ones, and the day comes
out ordered by timestamp, ties in the order the rows arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

logger = logging.getLogger(__name__)

IN_MEMORY_ROWS = 250_000
"""Days with at most this many calls (stored and staged) are merged in Arrow: at about
200 bytes a call the merge's few copies stay under 200 MB, and a DuckDB query per small
day costs more than it saves."""
MEMORY_LIMIT = "128MB"
"""DuckDB's budget for one day's merge; beyond it the sort and the aggregates spill to
the staging folder. Known limit: this is measured, not proven, to be enough: 1.65 M-call
days (ten times the replay's largest) merge within it, while 64 MB failed with DuckDB's
out-of-memory error on a 1.5 M-call day. Such an error fails the batch before anything
is published."""
SCAN_MEMORY_LIMIT = "128MB"
"""DuckDB's budget when validation hashes a large partition's request ids into parts."""
SLICE_ROWS = 65_536
"""Rows handed back per slice (one Parquet row group each)."""
CALL_CONTENT = ["timestamp", "provider", "model", "team", "input_tokens", "output_tokens",
                "cached_input_tokens", "cache_write_tokens", "status_code", "latency_ms"]
"""What makes two calls without a request id the same call."""
NEW = "__new"
"""1 on rows staged by this batch, 0 on rows already in the lake."""


@dataclass
class MergedDay:
    """What the merge of one day kept; ``call_sums`` add up to the day's hourly call sums."""

    rows: int = 0
    new_rows: int = 0
    duplicates: int = 0
    new_without_usage: int = 0
    call_sums: list[pa.Table] = field(default_factory=list)


def connect(spill_dir: Path, threads: int = 1) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for merges, bounded in memory and spilling into ``spill_dir``."""
    import duckdb

    spill_dir.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(config={
        "memory_limit": MEMORY_LIMIT,
        "temp_directory": str(spill_dir),
        "threads": threads,
        "preserve_insertion_order": False,
    })


def _paths_literal(paths: list[Path]) -> str:
    quoted = ", ".join("'" + str(path).replace("'", "''") + "'" for path in paths)
    return f"[{quoted}]"


def _rows_in(paths: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in paths)


def merge_query(stored: Path | None, staged: list[Path], columns: list[str]) -> str:
    """SQL for the kept rows of a day in timestamp order, with a ``__new`` flag column."""
    sources = []
    for flag, paths in ((0, [stored] if stored is not None else []), (1, staged)):
        if paths:
            sources.append(
                f"SELECT *, {flag} AS {NEW} FROM read_parquet({_paths_literal(paths)}, "
                "filename = true, file_row_number = true, hive_partitioning = false)"
            )
    # A row is dropped when an earlier-arrived row shares its key: the request id, or
    # for rows without one their content (GROUP BY and IS NOT DISTINCT FROM treat NULLs
    # as equal, as Arrow's group_by does). Only repeated keys are kept in the two small
    # tables, found by hash aggregation (which spills, unlike a window over every row).
    arrival = f"{NEW}, filename, file_row_number"
    first = f"min({{'new': {NEW}, 'file': filename, 'row': file_row_number}})"
    this = f"{{'new': c.{NEW}, 'file': c.filename, 'row': c.file_row_number}}"
    content = ", ".join(CALL_CONTENT)
    same_content = " AND ".join(f"d.{name} IS NOT DISTINCT FROM c.{name}"
                                for name in CALL_CONTENT)
    return f"""
        WITH combined AS ({" UNION ALL BY NAME ".join(sources)}),
        repeated_ids AS (
            SELECT request_id, {first} AS first FROM combined
            WHERE request_id IS NOT NULL GROUP BY request_id HAVING count(*) > 1
        ),
        repeated_content AS (
            SELECT {content}, {first} AS first FROM combined
            WHERE request_id IS NULL GROUP BY {content} HAVING count(*) > 1
        )
        SELECT {", ".join(f"c.{name}" for name in columns)}, c.{NEW}
        FROM combined AS c
        ANTI JOIN repeated_ids AS d ON d.request_id = c.request_id AND d.first <> {this}
        ANTI JOIN repeated_content AS d
            ON c.request_id IS NULL AND {same_content} AND d.first <> {this}
        ORDER BY c.timestamp, {", ".join(f"c.{name}" for name in arrival.split(", "))}
    """


def merge_calls(
    connection: duckdb.DuckDBPyConnection,
    stored: Path | None,
    staged: list[Path],
    write: Callable[[Iterator[pa.Table]], object],
    grain: tuple[str, ...],
    fix_new_lines: Callable[[pa.Table, pa.Array], pa.Table],
) -> MergedDay:
    """Merge one day's ``stored`` partition with its ``staged`` files and stream the result.

    ``write`` receives the kept rows as an iterator of tables in ``CALLS_SCHEMA`` (it
    writes them to the new partition); ``fix_new_lines`` puts physical line numbers on
    the staged rows of each slice (the second argument flags them).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.hourly import hourly_call_sums, without_usage
    from pipelines.schema import CALLS_SCHEMA

    merged = MergedDay()
    staged_rows = _rows_in(staged)
    stored_rows = _rows_in([stored]) if stored is not None else 0
    query = merge_query(stored, staged, CALLS_SCHEMA.names)

    def slices() -> Iterator[pa.Table]:
        reader = connection.sql(query).to_arrow_reader(SLICE_ROWS)
        for batch in reader:
            flags = pc.equal(batch.column(NEW), 1)
            table = pa.Table.from_batches([batch]).drop_columns([NEW])
            table = fix_new_lines(table, flags).cast(CALLS_SCHEMA)
            merged.rows += table.num_rows
            new = pc.sum(pc.cast(flags, pa.int64())).as_py() or 0
            merged.new_rows += new
            if new:
                unused = pc.and_(flags, without_usage(table))
                merged.new_without_usage += pc.sum(pc.cast(unused, pa.int64())).as_py() or 0
            merged.call_sums.append(hourly_call_sums(table, grain))
            yield table

    write(slices())
    merged.duplicates = stored_rows + staged_rows - merged.rows
    return merged


def stored_call_sums(stored: Path, grain: tuple[str, ...]) -> MergedDay:
    """Hourly call sums of a stored partition read in slices (a day with nothing staged)."""
    import pyarrow.parquet as pq

    from pipelines.hourly import hourly_call_sums

    merged = MergedDay()
    for batch in pq.ParquetFile(stored).iter_batches(batch_size=SLICE_ROWS):
        merged.rows += batch.num_rows
        merged.call_sums.append(hourly_call_sums(batch, grain))
    return merged
