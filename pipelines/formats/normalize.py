"""Turn one raw batch into lake rows (calls or buckets) plus quarantined rows.

Each canonical field is parsed with a vectorised parser; every row a parser
refuses is quarantined once, under the first field that failed, with the file,
its line and the row's text. Everything else is stored, so the counts add up.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import InputError
from pipelines.formats import OPTION_FIELDS, FormatSpec
from pipelines.formats.parse import (
    Problem,
    parse_count,
    parse_number,
    parse_text,
    parse_timestamp,
)
from pipelines.schema import BUCKETS_SCHEMA, CALLS_SCHEMA

logger = logging.getLogger(__name__)

QUARANTINE_COLUMNS = ("source_file", "source_line", "field", "reason", "raw_line")


@dataclass
class Normalised:
    """Rows ready for the lake and rows refused, from one batch."""

    rows: pa.Table
    quarantined: pa.Table


def _sum_counts(arrays: list[pa.Array]) -> pa.Array:
    """Add several count columns; null only where every part is null."""
    total = arrays[0]
    for part in arrays[1:]:
        both_null = pc.and_(pc.is_null(total), pc.is_null(part))
        added = pc.add(pc.fill_null(total, 0), pc.fill_null(part, 0))
        total = pc.if_else(both_null, pa.scalar(None, pa.int64()), added)
    return total


def _parse_status(values: pa.Array, spec: FormatSpec) -> tuple[pa.Array, list[Problem]]:
    if spec.status_text and (pa.types.is_string(values.type)
                             or pa.types.is_large_string(values.type)):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        keys = pa.array(list(spec.status_text))
        codes = pa.array(list(spec.status_text.values()), type=pa.int64())
        mapped = pc.take(codes, pc.index_in(lowered, value_set=keys))
        numeric, problems = parse_count(pc.if_else(pc.is_null(mapped), values, None), "status_code")
        return pc.cast(pc.coalesce(mapped, numeric), pa.int32()), problems
    counts, problems = parse_count(values, "status_code")
    return pc.cast(counts, pa.int32()), problems


def _parse_start(text: str, source_tz: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--start {text!r} is not an ISO date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(source_tz))
    return moment.astimezone(dt.UTC)


def _raw_text(batch: pa.RecordBatch, rows: pa.Array) -> pa.Array:
    """The refused rows' fields as read, comma-joined (every column the format reads)."""
    picked = batch.take(rows)
    texts = [pc.fill_null(pc.cast(column, pa.string()), "") for column in picked.columns]
    if not texts:
        return pa.array([""] * len(rows), pa.string())
    return pc.binary_join_element_wise(*texts, ",")


def normalise_batch(
    batch: pa.RecordBatch,
    spec: FormatSpec,
    columns: Mapping[str, list[str]],
    options: Mapping[str, object],
    source_tz: str,
    source_file: str,
    first_line: int,
) -> Normalised:
    """Parse every field of ``batch`` into ``spec.kind``'s lake schema.

    ``columns`` maps canonical fields to the batch's column names; ``options``
    fills grain fields (``provider``, ``model``, ``team``) where the source has no
    value, and ``start`` anchors relative timestamps.
    """
    count = batch.num_rows
    schema = CALLS_SCHEMA if spec.kind == "calls" else BUCKETS_SCHEMA
    problems: list[Problem] = []
    parsed: dict[str, pa.Array] = {}

    def column(name: str) -> pa.Array:
        return batch.column(name)

    for name in OPTION_FIELDS:
        fallback = options.get(name) or spec.defaults.get(name)
        values = parse_text(column(columns[name][0])) if name in columns else None
        if values is None:
            values = pa.nulls(count, pa.string())
        if fallback:
            values = pc.fill_null(values, str(fallback))
        missing = pc.is_null(values)
        if pc.any(missing).as_py():
            problems.append(Problem(missing, name, f"missing {name}"))
        parsed[name] = values

    time_fields = ("timestamp",) if spec.kind == "calls" else ("bucket_start", "bucket_end")
    for name in time_fields:
        raw = column(columns[name][0])
        if spec.relative_seconds:
            seconds, found = parse_number(raw, name)
            problems.extend(found)
            start = _parse_start(str(options["start"]), source_tz)
            micros = pc.cast(pc.round(pc.multiply(seconds, 1e6)), pa.int64())
            anchor = int(start.timestamp() * 1_000_000)
            values = pc.cast(pc.add(micros, anchor), pa.timestamp("us", tz="UTC"))
            missing = pc.is_null(raw)
            if pc.any(missing).as_py():
                problems.append(Problem(missing, name, "missing timestamp"))
        else:
            values, found = parse_timestamp(raw, name, source_tz)
            problems.extend(found)
        parsed[name] = values

    count_fields = [f.name for f in schema if f.type == pa.int64()
                    and f.name not in ("source_line",)]
    for name in count_fields:
        if name not in columns:
            parsed[name] = pa.nulls(count, pa.int64())
            continue
        parts = []
        for source_name in columns[name]:
            values, found = parse_count(column(source_name), name)
            problems.extend(found)
            parts.append(values)
        parsed[name] = _sum_counts(parts)

    if spec.kind == "calls":
        parsed["request_id"] = (
            parse_text(column(columns["request_id"][0])) if "request_id" in columns
            else pa.nulls(count, pa.string())
        )
        if "status_code" in columns:
            status, found = _parse_status(column(columns["status_code"][0]), spec)
            problems.extend(found)
            parsed["status_code"] = status
        else:
            parsed["status_code"] = pa.nulls(count, pa.int32())
        if "latency_ms" in columns:
            latency, found = parse_number(column(columns["latency_ms"][0]), "latency_ms")
            problems.extend(found)
            parsed["latency_ms"] = latency
        else:
            parsed["latency_ms"] = pa.nulls(count, pa.float64())
    else:
        parsed["source_format"] = pa.array([spec.name] * count, pa.string())
        backwards = pc.fill_null(pc.less_equal(parsed["bucket_end"], parsed["bucket_start"]),
                                 False)
        if pc.any(backwards).as_py():
            problems.append(Problem(backwards, "bucket_end", "bucket ends before it starts"))

    lines = pa.array(range(first_line, first_line + count), type=pa.int64())
    parsed["source_file"] = pa.array([source_file] * count, pa.string())
    parsed["source_line"] = lines

    rows = pa.table({name: parsed[name] for name in schema.names}, schema=_relaxed(schema))
    if not problems:
        return Normalised(rows=rows, quarantined=_empty_quarantine())

    refused = pa.array([False] * count)
    fields = pa.nulls(count, pa.string())
    reasons = pa.nulls(count, pa.string())
    for problem in problems:
        first_time = pc.and_(problem.mask, pc.invert(refused))
        fields = pc.if_else(first_time, problem.field, fields)
        reasons = pc.if_else(first_time, problem.reason, reasons)
        refused = pc.or_(refused, first_time)
    refused_rows = pc.indices_nonzero(refused)
    quarantined = pa.table(
        {
            "source_file": pa.array([source_file] * len(refused_rows), pa.string()),
            "source_line": pc.take(lines, refused_rows),
            "field": pc.take(fields, refused_rows),
            "reason": pc.take(reasons, refused_rows),
            "raw_line": _raw_text(batch, refused_rows),
        }
    )
    return Normalised(rows=rows.filter(pc.invert(refused)), quarantined=quarantined)


def _relaxed(schema: pa.Schema) -> pa.Schema:
    """The schema with every field nullable: refused rows are dropped before storing."""
    return pa.schema([field.with_nullable(True) for field in schema])


def _empty_quarantine() -> pa.Table:
    return pa.table(
        {
            "source_file": pa.array([], pa.string()),
            "source_line": pa.array([], pa.int64()),
            "field": pa.array([], pa.string()),
            "reason": pa.array([], pa.string()),
            "raw_line": pa.array([], pa.string()),
        }
    )
