"""Vectorised parsing of raw columns into the lake's types, with row-level problems.

Every parser takes one Arrow array as it came from the reader (strings from CSV,
numbers or strings from JSON, anything from Parquet) and returns the typed array
plus a list of ``Problem`` masks. The clean path is one ``pyarrow.compute`` cast;
only when that cast fails does a parser look at rows one class at a time, so a
faulty file is slower to read but a clean one is not.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

NS_TIMESTAMP_UTC = pa.timestamp("ns", tz="UTC")
US_TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")

INTEGER_PATTERN = r"^\s*[+-]?\d+(\.0*)?\s*$"
NUMBER_PATTERN = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
OFFSET_PATTERN = r"(Z|z|[+-]\d\d:?\d\d)\s*$"

EPOCH_SECONDS_BELOW = 1e11
EPOCH_MILLIS_BELOW = 1e14
EPOCH_MICROS_BELOW = 1e17
"""Epoch numbers are told apart by magnitude: below 1e11 they are seconds (up to the
year 5138), below 1e14 milliseconds, below 1e17 microseconds, nanoseconds above."""


@dataclass(frozen=True)
class Problem:
    """Rows (``mask``) whose ``field`` could not be used, and why."""

    mask: pa.Array
    field: str
    reason: str


def _blank_to_null(values: pa.Array) -> pa.Array:
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        return values
    stripped = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, values.type), stripped)


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _null_where(values: pa.Array, mask: pa.Array) -> pa.Array:
    return pc.if_else(mask, pa.scalar(None, values.type), values)


def parse_text(values: pa.Array) -> pa.Array:
    """Labels and ids: strings with surrounding blanks removed; empty means null."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    return pc.cast(_blank_to_null(values), pa.string())


def parse_count(values: pa.Array, field: str) -> tuple[pa.Array, list[Problem]]:
    """Non-negative whole numbers; null (or empty) stays null, meaning "not reported"."""
    values = _blank_to_null(values)
    problems: list[Problem] = []
    if pa.types.is_integer(values.type):
        counts = pc.cast(values, pa.int64())
    elif pa.types.is_floating(values.type):
        fractional = pc.fill_null(pc.not_equal(pc.floor(values), values), False)
        if _any(fractional):
            problems.append(Problem(fractional, field, "not a whole number"))
            values = _null_where(values, fractional)
        counts = pc.cast(values, pa.int64())
    elif pa.types.is_boolean(values.type) or pa.types.is_null(values.type):
        counts = pc.cast(values, pa.int64())
    else:
        values = pc.cast(values, pa.string())
        try:
            counts = pc.cast(values, pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            well_formed = pc.fill_null(pc.match_substring_regex(values, INTEGER_PATTERN), True)
            malformed = pc.invert(well_formed)
            if _any(malformed):
                problems.append(Problem(malformed, field, "not a whole number"))
            cleaned = _null_where(values, malformed)
            counts = pc.cast(pc.cast(cleaned, pa.float64()), pa.int64())
    negative = pc.fill_null(pc.less(counts, 0), False)
    if _any(negative):
        problems.append(Problem(negative, field, "negative count"))
        counts = _null_where(counts, negative)
    return counts, problems


def parse_number(values: pa.Array, field: str) -> tuple[pa.Array, list[Problem]]:
    """Measurements such as latency: any non-negative real number, null when absent."""
    values = _blank_to_null(values)
    problems: list[Problem] = []
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        numbers = pc.cast(values, pa.float64())
    else:
        try:
            numbers = pc.cast(values, pa.float64())
        except pa.ArrowInvalid:
            malformed = pc.invert(
                pc.fill_null(pc.match_substring_regex(values, NUMBER_PATTERN), True)
            )
            problems.append(Problem(malformed, field, "not a number"))
            numbers = pc.cast(_null_where(values, malformed), pa.float64())
    negative = pc.fill_null(pc.less(numbers, 0), False)
    if _any(negative):
        problems.append(Problem(negative, field, "negative value"))
        numbers = _null_where(numbers, negative)
    return numbers, problems


def _epoch_to_utc(numbers: pa.Array) -> pa.Array:
    """Seconds, milliseconds, microseconds or nanoseconds since 1970, told apart by size."""
    numbers = pc.cast(numbers, pa.float64())
    magnitude = pc.abs(numbers)
    nanos_per_unit = pc.case_when(
        pc.make_struct(
            pc.less(magnitude, EPOCH_SECONDS_BELOW),
            pc.less(magnitude, EPOCH_MILLIS_BELOW),
            pc.less(magnitude, EPOCH_MICROS_BELOW),
        ),
        pa.scalar(1e9),
        pa.scalar(1e6),
        pa.scalar(1e3),
        pa.scalar(1.0),
    )
    nanos = pc.cast(pc.round(pc.multiply(numbers, nanos_per_unit)), pa.int64())
    return pc.cast(nanos, pa.timestamp("ns")).cast(NS_TIMESTAMP_UTC)


def _localise(naive: pa.Array, source_tz: str) -> pa.Array:
    if source_tz == "UTC":
        return pc.cast(naive, NS_TIMESTAMP_UTC)
    return pc.assume_timezone(naive, source_tz, ambiguous="earliest", nonexistent="raise")


def _parse_strings_one_by_one(values: pa.Array, source_tz: str) -> tuple[pa.Array, pa.Array]:
    """The slow path for the rows a vectorised cast refused: Python's ISO parser, row by row."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(source_tz)
    parsed: list[dt.datetime | None] = []
    failed: list[bool] = []
    for text in values.to_pylist():
        if text is None:
            parsed.append(None)
            failed.append(False)
            continue
        try:
            moment = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            parsed.append(None)
            failed.append(True)
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
            if moment != moment.astimezone(dt.UTC).astimezone(zone):
                parsed.append(None)
                failed.append(True)
                continue
        parsed.append(moment.astimezone(dt.UTC))
        failed.append(False)
    return pa.array(parsed, type=NS_TIMESTAMP_UTC), pa.array(failed, type=pa.bool_())


def _parse_timestamp_strings(values: pa.Array, source_tz: str) -> tuple[pa.Array, pa.Array]:
    """ISO strings with any offset, naive ISO strings in ``source_tz``, or epoch numbers."""
    try:
        return pc.cast(values, NS_TIMESTAMP_UTC), pa.nulls(len(values), pa.bool_())
    except pa.ArrowInvalid:
        pass
    try:
        return _localise(pc.cast(values, pa.timestamp("ns")), source_tz), pa.nulls(
            len(values), pa.bool_()
        )
    except pa.ArrowInvalid:
        pass

    with_offset = pc.fill_null(pc.match_substring_regex(values, OFFSET_PATTERN), False)
    numeric = pc.fill_null(pc.match_substring_regex(values, NUMBER_PATTERN), False)
    naive = pc.and_(pc.invert(with_offset), pc.invert(numeric))
    result = pa.nulls(len(values), NS_TIMESTAMP_UTC)
    failed = pa.array([False] * len(values))
    for mask, kind in ((with_offset, "offset"), (naive, "naive"), (numeric, "epoch")):
        if not _any(mask):
            continue
        subset = _null_where(values, pc.invert(mask))
        try:
            if kind == "offset":
                converted = pc.cast(subset, NS_TIMESTAMP_UTC)
            elif kind == "naive":
                converted = _localise(pc.cast(subset, pa.timestamp("ns")), source_tz)
            else:
                converted = _epoch_to_utc(pc.cast(subset, pa.float64()))
            subset_failed = pa.array([False] * len(values))
        except pa.ArrowInvalid:
            converted, subset_failed = _parse_strings_one_by_one(subset, source_tz)
        result = pc.if_else(mask, converted, result)
        failed = pc.or_(failed, pc.and_(mask, subset_failed))
    return result, failed


def parse_timestamp(
    values: pa.Array, field: str, source_tz: str = "UTC"
) -> tuple[pa.Array, list[Problem]]:
    """Any timestamp form usagecast accepts, as UTC microseconds.

    ISO strings keep their own offset (a file may mix ``+01:00`` and ``+02:00``
    across a DST change); naive strings and naive Parquet timestamps are read in
    ``source_tz``; numbers are epoch values in s, ms, µs or ns, told apart by size.
    A missing or unreadable timestamp is a problem of its row.
    """
    values = _blank_to_null(values)
    problems: list[Problem] = []
    if pa.types.is_timestamp(values.type):
        if values.type.tz is None:
            parsed = _localise(pc.cast(values, pa.timestamp("ns")), source_tz)
        else:
            parsed = pc.cast(values, NS_TIMESTAMP_UTC)
        failed = pa.nulls(len(values), pa.bool_())
    elif pa.types.is_date(values.type):
        parsed = _localise(pc.cast(pc.cast(values, pa.timestamp("s")), pa.timestamp("ns")),
                           source_tz)
        failed = pa.nulls(len(values), pa.bool_())
    elif pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        parsed = _epoch_to_utc(values)
        failed = pa.nulls(len(values), pa.bool_())
    else:
        parsed, failed = _parse_timestamp_strings(pc.cast(values, pa.string()), source_tz)

    unreadable = pc.fill_null(failed, False)
    if _any(unreadable):
        problems.append(Problem(unreadable, field, "unreadable timestamp"))
    missing = pc.is_null(values)
    if _any(missing):
        problems.append(Problem(missing, field, "missing timestamp"))
    utc = pc.cast(pc.floor_temporal(parsed, 1, "microsecond"), US_TIMESTAMP_UTC)
    return utc, problems
