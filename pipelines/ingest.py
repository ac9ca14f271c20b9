"""``usagecast ingest``: raw call logs and usage exports into the Parquet lake.

An ingest is one batch, published all or nothing:

1. Files whose content hash is in the manifest are skipped (re-ingesting changes
   nothing). The others are streamed in record batches, parsed, and staged per
   UTC day under ``lake/_staging/<batch>/`` (in memory, spilled to disk when
   large), with refused rows set aside for the ``quarantine`` table.
2. Each touched day is rebuilt whole: stored calls plus staged ones, exact
   duplicates dropped (in Arrow for a small day, by DuckDB on disk for a large
   one: ``pipelines.daymerge``), then its hourly and daily rows from calls,
   buckets and coverage. The results are written into the staging folder and
   validated, read back from there, with ``pipelines.validate.validate_batch``;
   a ``DataQualityError`` discards them.
3. A commit journal listing every partition to move and every manifest entry is
   written atomically. From then on the batch is published: each staged
   partition replaces its lake partition with one ``os.replace``. A crash at any
   point is finished (journal present) or rolled back (no journal) by the next run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.daymerge import MergedDay
    from pipelines.formats import FormatSpec
    from pipelines.formats.readers import SourceFile
    from pipelines.settings import Settings

logger = logging.getLogger(__name__)

STAGING = "_staging"
MANIFEST = "_manifest.json"
JOURNAL = "COMMIT.json"
LOCK = ".ingest.lock"
SPILL_BYTES = 64 << 20
"""Staged rows kept in memory before they are spilled to the staging folder."""
VALIDATION_ROWS = 200_000
"""Staged calls gathered before they are validated, so memory stays flat on large batches.
One GX run's worth (``pipelines.validate.CHUNK_ROWS``)."""


@dataclass
class IngestResult:
    """What one ingest did; ``rows_read == stored + duplicates + quarantined``."""

    files_read: int = 0
    files_already_ingested: int = 0
    rows_read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    calls_without_usage: int = 0
    buckets_stored: int = 0
    days_touched: list[dt.date] = field(default_factory=list)
    batch_id: str = ""
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        text = (
            f"ingest: {self.files_read} files read, {self.files_already_ingested} already "
            f"ingested; {self.rows_read} rows: {self.stored} stored"
        )
        if self.buckets_stored:
            text += f" ({self.buckets_stored} usage buckets)"
        text += f", {self.duplicates} duplicates skipped, {self.quarantined} quarantined"
        if self.quarantine_reasons:
            reasons = ", ".join(f"{reason}: {count}" for reason, count
                                in sorted(self.quarantine_reasons.items()))
            text += f" ({reasons})"
        text += f"; {self.calls_without_usage} calls without usage"
        if self.days_touched:
            text += (f"; {len(self.days_touched)} days updated "
                     f"({self.days_touched[0]}..{self.days_touched[-1]})")
        return text


class _Stage:
    """Rows of the batch per table and UTC day: in memory, spilled to disk when large."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pieces: dict[tuple[str, dt.date], list[pa.Table]] = defaultdict(list)
        self.spilled: dict[tuple[str, dt.date], list[Path]] = defaultdict(list)
        self.memory_bytes = 0

    def add(self, table_name: str, day: dt.date, rows: pa.Table) -> None:
        self.pieces[(table_name, day)].append(rows)
        self.memory_bytes += rows.nbytes
        if self.memory_bytes > SPILL_BYTES:
            self.spill()

    def spill(self) -> None:
        for key in list(self.pieces):
            self._spill(key)

    def _spill(self, key: tuple[str, dt.date], schema: pa.Schema | None = None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = self.pieces.pop(key, [])
        if not tables:
            return
        self.memory_bytes -= sum(table.nbytes for table in tables)
        table_name, day = key
        folder = self.root / "pieces" / table_name / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{len(self.spilled[key]):05d}.parquet"
        if schema is not None:
            tables = [table.cast(schema) for table in tables]
        pq.write_table(pa.concat_tables(tables), path, compression="lz4")
        self.spilled[key].append(path)

    def rows(self, table_name: str, day: dt.date) -> int:
        """How many rows are staged for ``table_name`` on ``day``, in memory and spilled."""
        import pyarrow.parquet as pq

        key = (table_name, day)
        return sum(table.num_rows for table in self.pieces.get(key, [])) + sum(
            pq.ParquetFile(path).metadata.num_rows for path in self.spilled.get(key, []))

    def days(self, table_name: str) -> set[dt.date]:
        return {day for name, day in (*self.pieces, *self.spilled) if name == table_name}

    def take_files(self, table_name: str, day: dt.date, schema: pa.Schema) -> list[Path]:
        """The day's staged rows as Parquet files in ``schema``, in the order they came.

        Rows still in memory are spilled first, so the caller can stream the day from disk.
        """
        key = (table_name, day)
        self._spill(key, schema)
        return self.spilled.pop(key, [])

    def take(self, table_name: str, day: dt.date, schema: pa.Schema) -> pa.Table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        key = (table_name, day)
        tables = [pq.read_table(path) for path in self.spilled.pop(key, [])]
        tables.extend(self.pieces.pop(key, []))
        if not tables:
            return schema.empty_table()
        return pa.concat_tables([table.cast(schema) for table in tables])


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _load_manifest(lake_dir: Path) -> dict[str, dict]:
    path = lake_dir / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json_atomically(path: Path, document: object) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def _exclusive(lake_dir: Path) -> Iterator[None]:
    """One ingest at a time per lake; a second one waits for the first."""
    lake_dir.mkdir(parents=True, exist_ok=True)
    with open(lake_dir / LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover(lake_dir: Path) -> int:
    """Finish batches that committed before a crash; discard those that did not.

    Returns how many committed batches were completed.
    """
    staging_root = lake_dir / STAGING
    if not staging_root.is_dir():
        return 0
    completed = 0
    for batch_dir in sorted(staging_root.iterdir()):
        journal = batch_dir / JOURNAL
        if journal.is_file():
            logger.warning("completing batch %s, interrupted after it committed", batch_dir.name)
            _publish(lake_dir, json.loads(journal.read_text(encoding="utf-8")))
            completed += 1
        else:
            logger.warning("discarding batch %s, interrupted before it committed", batch_dir.name)
        shutil.rmtree(batch_dir, ignore_errors=True)
    return completed


def _publish(lake_dir: Path, journal: dict) -> None:
    """Move every staged partition into the lake, then record the files as ingested.

    Idempotent: a partition already moved is skipped, so a rerun after a crash
    completes the publish.
    """
    for source, target in journal["moves"]:
        source_path, target_path = Path(source), Path(target)
        if source_path.is_file():
            target_path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source_path, target_path)
    manifest = _load_manifest(lake_dir)
    manifest.update(journal["manifest"])
    _write_json_atomically(lake_dir / MANIFEST, manifest)


def _check_source_tz(source_tz: str) -> None:
    try:
        ZoneInfo(source_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"--source-tz {source_tz!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)"
        ) from None


def _progress(settings: Settings, total: int):
    if not settings.progress or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="ingest", file=sys.stderr)


def _days_of(column: pa.Array) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pc.floor_temporal(column, 1, "day"), pa.date32())


def _stage_by_day(stage: _Stage, table_name: str, rows: pa.Table, time_column: str) -> None:
    import pyarrow.compute as pc

    if rows.num_rows == 0:
        return
    days = _days_of(rows.column(time_column))
    first, last = pc.min_max(days).values()
    if first == last:
        stage.add(table_name, first.as_py(), rows)
        return
    for day in pc.unique(days).to_pylist():
        stage.add(table_name, day, rows.filter(pc.equal(days, day)))


@dataclass
class _Batch:
    """State of one ingest while files are read."""

    stage: _Stage
    result: IngestResult
    line_maps: dict[str, tuple[int, object]] = field(default_factory=dict)
    quarantined: list[pa.Table] = field(default_factory=list)
    """Refused parsed rows; their lines still need ``line_maps``."""
    unsplittable: list[pa.Table] = field(default_factory=list)
    """Rows the reader could not split into fields, already with their physical lines."""


def _read_file(
    batch: _Batch,
    source: SourceFile,
    spec: FormatSpec,
    options: dict[str, object],
    source_tz: str,
    progress,
) -> None:
    """Stream one file into the stage; its refused rows go to the batch's quarantine."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.formats.normalize import normalise_batch
    from pipelines.formats.readers import read_batches
    from pipelines.hourly import coverage_of

    spec.check_header(source.header, options, source.path)
    columns = spec.source_columns(source.header)
    needed = sorted({name for names in columns.values() for name in names})
    ignored = [name for name in source.header if name not in needed]
    if ignored:
        logger.info("%s: format %s ignores columns %s", source.path, spec.name,
                    ", ".join(ignored))
    source_file = str(source.path)
    time_column = "timestamp" if spec.kind == "calls" else "bucket_start"
    table_name = "calls" if spec.kind == "calls" else "usage_buckets"
    coverage_parts = []
    active_hours: list[pa.Array] = []
    next_line = source.first_line
    for raw in read_batches(source, needed):
        normalised = normalise_batch(raw, spec, columns, options, source_tz, source_file,
                                     next_line)
        next_line += raw.num_rows
        batch.result.rows_read += raw.num_rows
        if normalised.quarantined.num_rows:
            batch.quarantined.append(normalised.quarantined)
        rows = normalised.rows
        _stage_by_day(batch.stage, table_name, rows, time_column)
        coverage_parts.append(coverage_of(rows, spec.kind, source_file))
        if spec.kind == "calls" and rows.num_rows:
            active_hours.append(pc.unique(pc.floor_temporal(rows.column("timestamp"), 1, "hour")))
        if progress is not None:
            progress.set_postfix(rows=batch.result.rows_read, refresh=False)

    if source.bad_rows:
        batch.result.rows_read += len(source.bad_rows)
        batch.unsplittable.append(
            pa.table(
                {
                    "source_file": pa.array([source_file] * len(source.bad_rows), pa.string()),
                    "source_line": pa.array([row.line for row in source.bad_rows], pa.int64()),
                    "field": pa.array(["row"] * len(source.bad_rows), pa.string()),
                    "reason": pa.array([row.reason for row in source.bad_rows], pa.string()),
                    "raw_line": pa.array([row.text for row in source.bad_rows], pa.string()),
                }
            )
        )
    if source.line_map is not None:
        batch.line_maps[source_file] = (source.first_line, source.line_map)
    if coverage_parts:
        from pipelines.hourly import (
            COVERAGE_SCHEMA,
            split_at_long_gaps,
            split_coverage_by_day,
            widen_to_named_day,
        )

        coverage = pa.concat_tables(coverage_parts).cast(COVERAGE_SCHEMA)
        merged = coverage.group_by(
            ["provider", "model", "team", "resolution", "source_file"], use_threads=False
        ).aggregate([("start", "min"), ("end", "max")])
        merged = merged.rename_columns(
            ["provider", "model", "team", "resolution", "source_file", "start", "end"]
        ).select(COVERAGE_SCHEMA.names).cast(COVERAGE_SCHEMA)
        if active_hours:
            merged = split_at_long_gaps(merged, pa.concat_arrays(active_hours))
        merged = widen_to_named_day(merged, source.path.name)
        for day, rows in split_coverage_by_day(merged).items():
            batch.stage.add("coverage", day, rows)


def _fix_lines(rows: pa.Table, line_maps: dict[str, tuple[int, object]],
               only: pa.Array | None = None) -> pa.Table:
    """Put the physical line on rows of files where refused rows shifted the count.

    ``only`` flags the rows to fix (this batch's rows, when stored ones come along).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not line_maps or rows.num_rows == 0:
        return rows
    lines = rows.column("source_line").to_numpy().copy()
    files = rows.column("source_file")
    for source_file, (first_line, line_map) in line_maps.items():
        mask = pc.equal(files, source_file)
        if only is not None:
            mask = pc.and_(mask, only)
        mask = mask.to_numpy(zero_copy_only=False)
        if mask.any():
            lines[mask] = np.asarray(line_map)[lines[mask] - first_line]
    index = rows.schema.get_field_index("source_line")
    return rows.set_column(index, rows.schema.field(index), pa.array(lines, pa.int64()))


def _first_of_each(table: pa.Table, keys: list[str]) -> pa.Array:
    """Row numbers of the first row of each distinct ``keys`` value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numbered = table.select(keys).append_column(
        "__row", pa.array(range(table.num_rows), pa.int64())
    )
    grouped = numbered.group_by(keys, use_threads=False).aggregate([("__row", "min")])
    return pc.cast(grouped.column("__row_min").combine_chunks(), pa.uint64())


def _drop_duplicates(existing: pa.Table, new: pa.Table, identity: list[str],
                     content: list[str]) -> tuple[pa.Table, int]:
    """Existing rows plus the new rows that are not exact duplicates; and how many were.

    Rows with an ``identity`` value (a request id) are duplicates when it repeats;
    rows without one when their ``content`` repeats. Existing rows always win.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    combined = pa.concat_tables([existing, new])
    if identity and combined.column(identity[0]).null_count == 0:
        kept_rows = _first_of_each(combined, identity)
    elif identity:
        has_id = pc.is_valid(combined.column(identity[0]))
        with_id_rows = pc.indices_nonzero(has_id)
        without_id_rows = pc.indices_nonzero(pc.invert(has_id))
        keep = []
        if len(with_id_rows):
            firsts = _first_of_each(combined.take(with_id_rows), identity)
            keep.append(pc.take(with_id_rows, firsts))
        if len(without_id_rows):
            firsts = _first_of_each(combined.take(without_id_rows), content)
            keep.append(pc.take(without_id_rows, firsts))
        kept_rows = pa.concat_arrays(keep) if keep else pa.array([], pa.uint64())
    else:
        kept_rows = _first_of_each(combined, content)
    if len(kept_rows) == combined.num_rows:
        return combined, 0
    kept = combined.take(pc.take(kept_rows, pc.sort_indices(kept_rows)))
    return kept, combined.num_rows - len(kept_rows)


def _merge_calls_in_memory(day: dt.date, stored: Path | None, new_calls: pa.Table,
                           final_dir: Path, grain: tuple[str, ...]) -> MergedDay:
    """``daymerge.merge_calls`` for a small day, in Arrow: the same rows, kept and ordered alike.

    Cheaper than a DuckDB query per day when the day fits comfortably in memory.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines import lake
    from pipelines.daymerge import CALL_CONTENT, MergedDay
    from pipelines.hourly import hourly_call_sums, without_usage
    from pipelines.schema import CALLS_SCHEMA

    existing = pq.read_table(stored).cast(CALLS_SCHEMA) if stored else CALLS_SCHEMA.empty_table()
    calls, duplicates = _drop_duplicates(existing, new_calls, ["request_id"], CALL_CONTENT)
    new_rows = new_calls.num_rows - duplicates
    merged = MergedDay(rows=calls.num_rows, new_rows=new_rows, duplicates=duplicates)
    if new_rows:
        kept_new = calls.slice(calls.num_rows - new_rows)
        merged.new_without_usage = pc.sum(without_usage(kept_new)).as_py() or 0
    timestamps = calls.column("timestamp").cast(pa.int64()).to_numpy()
    if new_rows and not bool((timestamps[1:] >= timestamps[:-1]).all()):
        calls = calls.sort_by([("timestamp", "ascending")])
    merged.call_sums.append(hourly_call_sums(calls, grain))
    lake.write_partition(final_dir, "calls", day, calls.cast(CALLS_SCHEMA), sync=False)
    return merged


BUCKET_CONTENT = ["bucket_start", "bucket_end", "provider", "model", "team", "requests",
                  "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                  "source_format"]


class _BackgroundValidation:
    """Great Expectations on one worker thread while the main thread goes on staging.

    GX is mostly Python and the staging mostly Arrow, which releases the GIL, so on two
    cores the two overlap (GX's import and project set-up run while files are read).
    Validations run one at a time, in order, and the next is handed over only when the
    previous one is done, so memory stays bounded; ``wait`` raises the first error (a
    ``DataQualityError``) before anything is published.
    """

    def __init__(self, settings: Settings) -> None:
        from concurrent.futures import ThreadPoolExecutor

        # Imported here, before the worker starts importing GX, so that both threads
        # never import the same modules at once.
        import pipelines.daymerge  # noqa: F401
        import pipelines.formats.normalize  # noqa: F401
        import pipelines.formats.readers  # noqa: F401
        import pipelines.hourly  # noqa: F401
        import pipelines.lake  # noqa: F401

        self.settings = settings
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate")
        self.futures: list = []
        self.started = False

    def start(self) -> None:
        """Set GX up in the background; called once there is something new to validate."""
        if not self.started:
            self.started = True
            self.futures.append(self.executor.submit(_prepare_validation, self.settings))

    def submit(self, calls_by_day: dict, hourly_by_day: dict, build_docs: bool) -> None:
        self.started = True
        self.wait()
        self.futures.append(self.executor.submit(
            _validate, self.settings, dict(calls_by_day), dict(hourly_by_day), build_docs))

    def wait(self) -> None:
        while self.futures:
            self.futures.pop(0).result()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _prepare_validation(settings: Settings) -> None:
    from pipelines.validate import prepare

    prepare(settings)


def _finalise(settings: Settings, batch: _Batch, final_dir: Path,
              validation: _BackgroundValidation) -> list[tuple[str, dt.date]]:
    """Rebuild every touched day into the staging folder and validate it; return what to move.

    A day of calls larger than ``daymerge.IN_MEMORY_ROWS`` is merged on disk
    (``pipelines.daymerge``), a smaller one in memory; either way the calls are validated
    from the day's new partition, so no step holds a large day whole. Buckets and
    coverage are small and merged in memory.
    """
    import pyarrow.parquet as pq

    from pipelines import daymerge, lake
    from pipelines.hourly import COVERAGE_SCHEMA, build_daily, build_hourly
    from pipelines.schema import BUCKETS_SCHEMA, CALLS_SCHEMA

    lake_dir = settings.lake_dir
    stage = batch.stage
    days = sorted(stage.days("calls") | stage.days("usage_buckets") | stage.days("coverage"))
    written: list[tuple[str, dt.date]] = []
    pending_calls: dict[dt.date, Path] = {}
    pending_rows = 0
    pending_hourly: dict[dt.date, pa.Table] = {}
    connection = None  # DuckDB, opened for the first day too large to merge in memory

    def existing(table_name: str, day: dt.date, schema: pa.Schema) -> pa.Table:
        stored = lake.read_partition(lake_dir, table_name, day)
        return schema.empty_table() if stored is None else stored.cast(schema)

    def fix_new_lines(rows: pa.Table, new: pa.Array) -> pa.Table:
        return _fix_lines(rows, batch.line_maps, only=new)

    for day in days:
        stored_path = lake.partition_dir(lake_dir, "calls", day) / lake.PARTITION_FILE
        stored_calls = stored_path if stored_path.is_file() else None
        calls_path = lake.partition_dir(final_dir, "calls", day) / lake.PARTITION_FILE
        staged_rows = stage.rows("calls", day)
        stored_rows = pq.ParquetFile(stored_calls).metadata.num_rows if stored_calls else 0
        if staged_rows and staged_rows + stored_rows <= daymerge.IN_MEMORY_ROWS:
            merged = _merge_calls_in_memory(
                day, stored_calls, _fix_lines(stage.take("calls", day, CALLS_SCHEMA),
                                              batch.line_maps), final_dir, settings.grain)
        elif staged_rows:
            # A large day's merge and a GX run each take a few hundred MB: the previous
            # validation finishes first, so that the two never hold memory at once.
            validation.wait()
            if connection is None:
                connection = daymerge.connect(stage.root / "duckdb")
            staged_calls = stage.take_files("calls", day, CALLS_SCHEMA)
            merged = daymerge.merge_calls(
                connection, stored_calls, staged_calls,
                lambda parts, day=day: lake.write_partition_batches(
                    final_dir, "calls", day, CALLS_SCHEMA, parts, sync=False),
                settings.grain, fix_new_lines)
            for path in staged_calls:
                path.unlink()
        elif stored_calls is not None:
            merged = daymerge.stored_call_sums(stored_calls, settings.grain)
            calls_path = stored_calls
        else:
            merged = daymerge.MergedDay()

        new_buckets = _fix_lines(stage.take("usage_buckets", day, BUCKETS_SCHEMA),
                                 batch.line_maps)
        new_coverage = stage.take("coverage", day, COVERAGE_SCHEMA)
        buckets, bucket_duplicates = _drop_duplicates(
            existing("usage_buckets", day, BUCKETS_SCHEMA), new_buckets, [], BUCKET_CONTENT)
        stored_coverage = existing(lake.COVERAGE, day, COVERAGE_SCHEMA)
        coverage, _ = _drop_duplicates(stored_coverage, new_coverage, [],
                                       COVERAGE_SCHEMA.names)

        new_bucket_count = new_buckets.num_rows - bucket_duplicates
        del new_buckets, new_coverage
        batch.result.duplicates += merged.duplicates + bucket_duplicates
        batch.result.stored += merged.new_rows + new_bucket_count
        batch.result.buckets_stored += new_bucket_count
        batch.result.calls_without_usage += merged.new_without_usage
        if not merged.new_rows and not new_bucket_count and coverage.num_rows == (
            stored_coverage.num_rows
        ):
            continue

        hourly = build_hourly(day, None, buckets, coverage, settings.grain,
                              call_sums=merged.call_sums)
        daily = build_daily(day, hourly, buckets, coverage, settings.grain)
        if merged.new_rows:
            written.append(("calls", day))
        for table_name, rows in (("usage_buckets", buckets.cast(BUCKETS_SCHEMA)),
                                 (lake.COVERAGE, coverage),
                                 ("usage_hourly", hourly), ("usage_daily", daily)):
            if table_name == "usage_buckets" and not new_bucket_count:
                continue
            lake.write_partition(final_dir, table_name, day, rows, sync=False)
            written.append((table_name, day))
        batch.result.days_touched.append(day)
        if merged.rows:
            pending_calls[day] = calls_path
            pending_rows += merged.rows
        if hourly.num_rows:
            pending_hourly[day] = hourly
        if pending_rows >= VALIDATION_ROWS:
            validation.submit(pending_calls, {}, build_docs=False)
            pending_calls.clear()
            pending_rows = 0
        del buckets, coverage, hourly, daily
    if connection is not None:
        connection.close()
    if pending_calls or pending_hourly:
        validation.submit(pending_calls, pending_hourly, build_docs=True)
    validation.wait()
    return written


def _validate(settings: Settings, calls_by_day: dict, hourly_by_day: dict,
              build_docs: bool) -> None:
    """The calls and usage_hourly suites on staged days; raises DataQualityError.

    Calls are validated as they pile up, the hourly rows of every touched day at the
    end in one run (they are small, and the trailing-weeks band then sees the whole
    batch). No batch interval is claimed: a merged day holds earlier calls too, so only
    the validator's own bounds (e.g. nothing in the future) apply.
    """
    from pipelines.validate import validate_batch

    report = validate_batch(settings, calls_by_day, hourly_by_day, build_docs=build_docs)
    logger.debug("%s", report.summary())


def _quarantine_table(batch: _Batch, batch_id: str, now: dt.datetime) -> pa.Table | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.lake import QUARANTINE_SCHEMA

    if not batch.quarantined and not batch.unsplittable:
        return None
    parsed = [_fix_lines(table, batch.line_maps) for table in batch.quarantined]
    rows = pa.concat_tables(parsed + batch.unsplittable)
    count = rows.num_rows
    rows = rows.append_column("batch_id", pa.array([batch_id] * count, pa.string()))
    rows = rows.append_column("ingested_at", pa.array([now] * count, QUARANTINE_SCHEMA.field(
        "ingested_at").type))
    reasons = rows.group_by(["reason"]).aggregate([("reason", "count")]).to_pylist()
    batch.result.quarantine_reasons = {row["reason"]: row["reason_count"] for row in reasons}
    for reason in batch.result.quarantine_reasons:
        example = rows.filter(pc.equal(rows.column("reason"), reason)).slice(0, 1).to_pylist()[0]
        logger.warning(
            "quarantined %d rows: %s (e.g. %s line %s, field %s)",
            batch.result.quarantine_reasons[reason], reason, example["source_file"],
            example["source_line"], example["field"],
        )
    return rows.select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)


def _stage_quarantine(lake_dir: Path, final_dir: Path, day: dt.date, rows: pa.Table) -> None:
    """The day's quarantine partition with this batch's refused rows appended."""
    import pyarrow as pa

    from pipelines import lake

    stored = lake.read_partition(lake_dir, "quarantine", day)
    if stored is not None:
        rows = pa.concat_tables([stored.cast(rows.schema), rows])
    lake.write_partition(final_dir, "quarantine", day, rows, sync=False)


def ingest(
    settings: Settings,
    sources: list[Path],
    fmt: str | None = None,
    source_tz: str = "UTC",
    **format_options: object,
) -> IngestResult:
    """Ingest files (or folders of files) into the lake as one all-or-nothing batch.

    ``fmt`` names a format (detected per file from its header when ``None``);
    ``source_tz`` is the zone of naive timestamps; ``format_options`` are
    ``provider``, ``model``, ``team`` (values for sources without them) and
    ``start`` (the origin of relative timestamps).
    """
    from pipelines import lake
    from pipelines.formats import resolve_format
    from pipelines.formats.readers import list_sources

    _check_source_tz(source_tz)
    unknown = set(format_options) - {"provider", "model", "team", "start"}
    if unknown:
        raise InputError(f"unknown format options: {', '.join(sorted(unknown))}")
    options = {key: value for key, value in format_options.items() if value is not None}
    spec_for_all = resolve_format(fmt) if fmt else None
    lake_dir = settings.lake_dir
    paths = list_sources([Path(source) for source in sources])

    with _exclusive(lake_dir):
        recover(lake_dir)
        batch_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        batch_dir = lake_dir / STAGING / batch_id
        batch = _Batch(stage=_Stage(batch_dir), result=IngestResult(batch_id=batch_id))
        validation = _BackgroundValidation(settings)
        try:
            manifest_entries = _read_sources(settings, batch, paths, spec_for_all, options,
                                             source_tz, _load_manifest(lake_dir), validation)
            final_dir = batch_dir / "final"
            written = _finalise(settings, batch, final_dir, validation)
            now = dt.datetime.now(dt.UTC)
            quarantine = _quarantine_table(batch, batch_id, now)
            if quarantine is not None:
                batch.result.quarantined = quarantine.num_rows
                _stage_quarantine(lake_dir, final_dir, now.date(), quarantine)
                written.append(("quarantine", now.date()))
            moves = [
                (str(lake.partition_dir(final_dir, name, day) / lake.PARTITION_FILE),
                 str(lake.partition_dir(lake_dir, name, day) / lake.PARTITION_FILE))
                for name, day in written
            ]
            # Staged partitions were written unsynced: all of them reach the disk, together,
            # before the journal that makes them the batch's committed state.
            lake.sync_files(final_dir)
            batch_dir.mkdir(parents=True, exist_ok=True)
            _write_json_atomically(batch_dir / JOURNAL,
                                   {"moves": moves, "manifest": manifest_entries})
        except BaseException:
            validation.close()
            shutil.rmtree(batch_dir, ignore_errors=True)
            raise
        validation.close()
        _publish(lake_dir, json.loads((batch_dir / JOURNAL).read_text(encoding="utf-8")))
        shutil.rmtree(batch_dir, ignore_errors=True)

    result = batch.result
    logger.info("%s", result.summary())
    return result


def _read_sources(settings, batch, paths, spec_for_all, options, source_tz, manifest,
                  validation) -> dict:
    """Stream every new file into the stage; return the manifest entries for them."""
    from pipelines.formats import detect_format
    from pipelines.formats.readers import open_source

    entries: dict[str, dict] = {}
    progress = _progress(settings, sum(path.stat().st_size for path in paths))
    try:
        for path in paths:
            digest = _file_digest(path)
            if digest in manifest or digest in entries:
                logger.info("%s: already ingested (same content), skipped", path)
                batch.result.files_already_ingested += 1
            else:
                validation.start()
                source = open_source(path)
                if source.header:
                    spec = spec_for_all or detect_format(source.header, path)
                    _read_file(batch, source, spec, options, source_tz, progress)
                else:
                    logger.warning("%s: empty file, nothing to ingest", path)
                batch.result.files_read += 1
                entries[digest] = {
                    "path": str(path.resolve()),
                    "bytes": path.stat().st_size,
                    "batch_id": batch.result.batch_id,
                }
            if progress is not None:
                progress.update(path.stat().st_size)
    finally:
        if progress is not None:
            progress.close()
    return entries


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", type=Path, metavar="SOURCE",
                        help="files or folders of CSV, JSONL, JSON or Parquet (optionally .gz)")
    parser.add_argument("--format", dest="fmt", metavar="F",
                        help="gateway, azure-trace, burstgpt, openai-usage, anthropic-usage, "
                             "litellm, or a mapping file (default: detect from the header)")
    parser.add_argument("--source-tz", default="UTC", metavar="TZ",
                        help="time zone of timestamps written without an offset (default UTC)")
    parser.add_argument("--provider", help="provider for sources that do not name one")
    parser.add_argument("--model", help="model for sources that do not name one")
    parser.add_argument("--team", help="team for sources that do not name one")
    parser.add_argument("--start", help="origin of relative timestamps (burstgpt), ISO time")


def run(args: argparse.Namespace, settings: Settings) -> str:
    result = ingest(settings, args.sources, fmt=args.fmt, source_tz=args.source_tz,
                    provider=args.provider, model=args.model, team=args.team, start=args.start)
    return result.summary()
