"""Per series and UTC hour (and day): the usage tables the forecasters read.

A day's rows are always rebuilt whole from what the lake holds for that day:
its calls, its usage buckets and its coverage (the time spans each source file
covered, per series). Hours inside some coverage with no calls become explicit
zeros; hours outside every coverage are absent, because a collector outage is
not zero usage. A file covers the span from its first to its last row (whole
hours), or its whole UTC day when named for it. Rebuilding from stored inputs
keeps late files exact.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.schema import (
    TIMESTAMP,
    USAGE_DAILY_SCHEMA,
    USAGE_HOURLY_SCHEMA,
)
from pipelines.settings import GRAIN_COLUMNS

logger = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

COVERAGE_SCHEMA = pa.schema(
    [
        pa.field("provider", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("team", pa.string(), nullable=False),
        pa.field("start", TIMESTAMP, nullable=False),
        pa.field("end", TIMESTAMP, nullable=False),
        pa.field("resolution", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
    ]
)
"""What each source file covered, per series: ``[start, end)`` at ``resolution``
(``hour`` for calls and sub-daily buckets, ``day`` for daily buckets), clipped to
the partition's day."""

SUMS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")


def without_usage(calls: pa.Table) -> pa.Array:
    """Calls that reported no token usage (e.g. streamed responses without a usage chunk)."""
    return pc.or_(pc.is_null(calls.column("input_tokens")),
                  pc.is_null(calls.column("output_tokens")))


def is_error(calls: pa.Table) -> pa.Array:
    return pc.fill_null(pc.greater_equal(calls.column("status_code"), 400), False)


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + DAY


def _grain_columns(table: pa.Table, grain: tuple[str, ...]) -> dict[str, pa.Array]:
    """Grain values as the lake stores them: columns outside the grain become ``*``."""
    count = table.num_rows
    return {
        column: table.column(column) if column in grain else pa.array(["*"] * count, pa.string())
        for column in GRAIN_COLUMNS
    }


def _aggregate(parts: list[pa.Table], key: str) -> pa.Table:
    combined = pa.concat_tables(parts, promote_options="default")
    measures = [name for name in combined.column_names if name not in (*GRAIN_COLUMNS, key)]
    grouped = combined.group_by([*GRAIN_COLUMNS, key], use_threads=False).aggregate(
        [(name, "sum") for name in measures]
    )
    return grouped.rename_columns(
        [name[: -len("_sum")] if name.endswith("_sum") else name for name in grouped.column_names]
    )


def _calls_by_hour(calls: pa.Table, grain: tuple[str, ...]) -> pa.Table:
    frame = {
        **_grain_columns(calls, grain),
        "hour": pc.floor_temporal(calls.column("timestamp"), 1, "hour"),
        "requests": pa.array([1] * calls.num_rows, pa.int64()) if calls.num_rows
        else pa.array([], pa.int64()),
        "errors": pc.cast(is_error(calls), pa.int64()),
        "calls_without_usage": pc.cast(without_usage(calls), pa.int64()),
    }
    for name in SUMS:
        frame[name] = pc.fill_null(calls.column(name), 0)
    return pa.table(frame)


def _split_buckets(buckets: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Sub-daily buckets that fit in one UTC hour, and the rest (kept daily)."""
    width = pc.subtract(buckets.column("bucket_end"), buckets.column("bucket_start"))
    start_hour = pc.floor_temporal(buckets.column("bucket_start"), 1, "hour")
    end_hour = pc.floor_temporal(
        pc.subtract(buckets.column("bucket_end"), pa.scalar(dt.timedelta(microseconds=1))),
        1,
        "hour",
    )
    hourly = pc.and_(
        pc.less_equal(width, pa.scalar(HOUR, pa.duration("us"))), pc.equal(start_hour, end_hour)
    )
    return buckets.filter(hourly), buckets.filter(pc.invert(hourly))


def _buckets_by(buckets: pa.Table, grain: tuple[str, ...], key: str) -> pa.Table:
    start = buckets.column("bucket_start")
    frame = {
        **_grain_columns(buckets, grain),
        key: pc.floor_temporal(start, 1, "hour") if key == "hour"
        else pc.cast(pc.floor_temporal(start, 1, "day"), pa.date32()),
        "requests": pc.fill_null(buckets.column("requests"), 0),
    }
    if key == "hour":
        frame["errors"] = pa.array([0] * buckets.num_rows, pa.int64())
        frame["calls_without_usage"] = pa.array([0] * buckets.num_rows, pa.int64())
    for name in SUMS:
        frame[name] = pc.fill_null(buckets.column(name), 0)
    return pa.table(frame)


def _coverage_hours(coverage: pa.Table, grain: tuple[str, ...], day: dt.date) -> pa.Table:
    """One zero row per series and hour that some source covered on ``day``."""
    day_start, day_end = _day_bounds(day)
    hourly = coverage.filter(pc.equal(coverage.column("resolution"), "hour"))
    grain_values = _grain_columns(hourly, grain)
    seen: set[tuple] = set()
    starts = hourly.column("start").to_pylist()
    ends = hourly.column("end").to_pylist()
    keys = list(zip(*(grain_values[column].to_pylist() for column in GRAIN_COLUMNS),
                    strict=True))
    for key, start, end in zip(keys, starts, ends, strict=True):
        moment = max(start, day_start)
        while moment < min(end, day_end):
            seen.add((*key, moment))
            moment += HOUR
    rows = sorted(seen)
    table = {column: pa.array([row[i] for row in rows], pa.string())
             for i, column in enumerate(GRAIN_COLUMNS)}
    table["hour"] = pa.array([row[3] for row in rows], TIMESTAMP)
    for name in ("requests", "errors", "calls_without_usage", *SUMS):
        table[name] = pa.array([0] * len(rows), pa.int64())
    return pa.table(table)


def _with_series_id(table: pa.Table, grain: tuple[str, ...]) -> pa.Array:
    return pc.binary_join_element_wise(*(table.column(column) for column in grain), "/")


def hourly_call_sums(calls: pa.Table | pa.RecordBatch, grain: tuple[str, ...]) -> pa.Table:
    """Per series and hour sums of some calls of a day.

    Sums of disjoint slices of a day's calls add up to the sums of the whole day, so a
    day streamed in slices is reduced slice by slice and handed to ``build_hourly``.
    """
    if isinstance(calls, pa.RecordBatch):
        calls = pa.Table.from_batches([calls])
    return _aggregate([_calls_by_hour(calls, grain)], "hour")


def build_hourly(
    day: dt.date,
    calls: pa.Table | None,
    buckets: pa.Table,
    coverage: pa.Table,
    grain: tuple[str, ...],
    call_sums: list[pa.Table] | None = None,
) -> pa.Table:
    """``usage_hourly`` rows of one UTC day from everything the lake holds for that day.

    The day's calls come either whole (``calls``) or already reduced slice by slice with
    ``hourly_call_sums`` (``call_sums``); the result is the same.
    """
    hourly_buckets, _ = _split_buckets(buckets)
    parts = [*(call_sums or []), _buckets_by(hourly_buckets, grain, "hour"),
             _coverage_hours(coverage, grain, day)]
    if calls is not None:
        parts.insert(0, _calls_by_hour(calls, grain))
    grouped = _aggregate(parts, "hour")
    day_start, day_end = _day_bounds(day)
    hour = grouped.column("hour")
    inside = pc.and_(pc.greater_equal(hour, pa.scalar(day_start, TIMESTAMP)),
                     pc.less(hour, pa.scalar(day_end, TIMESTAMP)))
    grouped = grouped.filter(inside)
    table = grouped.append_column("series_id", _with_series_id(grouped, grain))
    table = table.sort_by([("series_id", "ascending"), ("hour", "ascending")])
    return table.select(USAGE_HOURLY_SCHEMA.names).cast(USAGE_HOURLY_SCHEMA)


def build_daily(
    day: dt.date,
    hourly: pa.Table,
    buckets: pa.Table,
    coverage: pa.Table,
    grain: tuple[str, ...],
) -> pa.Table:
    """``usage_daily`` rows of one UTC day.

    Series with hourly rows are summed from them (``resolution`` ``hour``); series
    known only by daily (or wider) buckets keep those (``resolution`` ``day``, with
    errors and calls without usage unknown), and a daily-covered series without a
    bucket that day is an explicit zero.
    """
    measures = ("requests", "errors", "calls_without_usage", *SUMS)
    from_hours = pa.table(
        {
            **{column: hourly.column(column) for column in GRAIN_COLUMNS},
            "day": pa.array([day] * hourly.num_rows, pa.date32()),
            **{name: hourly.column(name) for name in measures},
        }
    )
    hourly_daily = _aggregate([from_hours], "day") if hourly.num_rows else None

    _, daily_buckets = _split_buckets(buckets)
    daily_parts = [_buckets_by(daily_buckets, grain, "day")]
    day_coverage = coverage.filter(pc.equal(coverage.column("resolution"), "day"))
    if day_coverage.num_rows:
        grain_values = _grain_columns(day_coverage, grain)
        zeros = {column: grain_values[column] for column in GRAIN_COLUMNS}
        zeros["day"] = pa.array([day] * day_coverage.num_rows, pa.date32())
        for name in ("requests", *SUMS):
            zeros[name] = pa.array([0] * day_coverage.num_rows, pa.int64())
        daily_parts.append(pa.table(zeros))
    bucket_daily = _aggregate(daily_parts, "day")
    bucket_daily = bucket_daily.filter(
        pc.equal(bucket_daily.column("day"), pa.scalar(day, pa.date32()))
    )

    parts = []
    if hourly_daily is not None:
        parts.append(hourly_daily.append_column(
            "resolution", pa.array(["hour"] * hourly_daily.num_rows, pa.string())))
        hourly_keys = set(zip(*(hourly_daily.column(c).to_pylist() for c in GRAIN_COLUMNS),
                              strict=True))
        bucket_keys = list(zip(*(bucket_daily.column(c).to_pylist() for c in GRAIN_COLUMNS),
                               strict=True))
        keep = [key not in hourly_keys for key in bucket_keys]
        if not all(keep):
            logger.info("%s: %d series have both hourly data and daily buckets; using the "
                        "hourly data for their daily totals", day, keep.count(False))
        bucket_daily = bucket_daily.filter(pa.array(keep, pa.bool_()))
    if bucket_daily.num_rows:
        count = bucket_daily.num_rows
        parts.append(
            bucket_daily.append_column("resolution", pa.array(["day"] * count, pa.string()))
            .append_column("errors", pa.nulls(count, pa.int64()))
            .append_column("calls_without_usage", pa.nulls(count, pa.int64()))
        )
    if not parts:
        return USAGE_DAILY_SCHEMA.empty_table()
    combined = pa.concat_tables(
        [part.select([n for n in USAGE_DAILY_SCHEMA.names if n != "series_id"]) for part in parts]
    )
    combined = combined.append_column("series_id", _with_series_id(combined, grain))
    combined = combined.sort_by([("series_id", "ascending")])
    return combined.select(USAGE_DAILY_SCHEMA.names).cast(USAGE_DAILY_SCHEMA)


def coverage_of(rows: pa.Table, kind: str, source_file: str) -> pa.Table:
    """The spans one file covered per series (actual provider/model/team values).

    For calls: from the hour of the first call to the end of the hour of the last.
    For buckets: hourly buckets cover their hours, wider buckets their whole days.
    """
    if rows.num_rows == 0:
        return COVERAGE_SCHEMA.empty_table()
    if kind == "calls":
        start = pc.floor_temporal(rows.column("timestamp"), 1, "hour")
        end = pc.add(pc.floor_temporal(rows.column("timestamp"), 1, "hour"),
                     pa.scalar(HOUR, pa.duration("us")))
        resolution = pa.array(["hour"] * rows.num_rows)
    else:
        hourly, _ = _split_buckets(rows)
        is_hourly = pc.is_in(rows.column("source_line"), value_set=hourly.column("source_line"))
        start = pc.if_else(is_hourly,
                           pc.floor_temporal(rows.column("bucket_start"), 1, "hour"),
                           pc.floor_temporal(rows.column("bucket_start"), 1, "day"))
        end = pc.if_else(is_hourly,
                         pc.ceil_temporal(rows.column("bucket_end"), 1, "hour"),
                         pc.ceil_temporal(rows.column("bucket_end"), 1, "day"))
        resolution = pc.if_else(is_hourly, "hour", "day")
    spans = pa.table(
        {
            **{column: rows.column(column) for column in GRAIN_COLUMNS},
            "resolution": resolution,
            "start": start,
            "end": end,
        }
    )
    grouped = spans.group_by([*GRAIN_COLUMNS, "resolution"], use_threads=False).aggregate(
        [("start", "min"), ("end", "max")]
    ).rename_columns([*GRAIN_COLUMNS, "resolution", "start", "end"])
    grouped = grouped.append_column("source_file",
                                    pa.array([source_file] * grouped.num_rows, pa.string()))
    return grouped.select(COVERAGE_SCHEMA.names).cast(COVERAGE_SCHEMA)


MAX_QUIET = dt.timedelta(hours=24)
"""A file with no row for longer than this is taken to have stopped and resumed: its
coverage is split there, so one stray timestamp cannot claim months of zeros."""


def split_at_long_gaps(coverage: pa.Table, active_hours: pa.Array) -> pa.Table:
    """Hourly coverage rows cut into the stretches where the file had rows at least daily."""
    if coverage.num_rows == 0 or len(active_hours) == 0:
        return coverage
    hours = sorted(pc.unique(active_hours).to_pylist())
    stretches = [[hours[0], hours[0] + HOUR]]
    for hour in hours[1:]:
        if hour - stretches[-1][1] > MAX_QUIET:
            stretches.append([hour, hour + HOUR])
        else:
            stretches[-1][1] = hour + HOUR
    if len(stretches) == 1:
        return coverage
    rows = []
    for row in coverage.to_pylist():
        if row["resolution"] != "hour":
            rows.append(row)
            continue
        for start, end in stretches:
            if start < row["end"] and end > row["start"]:
                rows.append({**row, "start": max(start, row["start"]),
                             "end": min(end, row["end"])})
    return pa.Table.from_pylist(rows, schema=COVERAGE_SCHEMA)


def widen_to_named_day(coverage: pa.Table, file_name: str) -> pa.Table:
    """A file named for a UTC day (``...YYYY-MM-DD...``) covers that whole day.

    Daily-rotated logs (and the landing files of a daily run) say by their name
    which day they hold, so quiet hours at either end of the day are zeros, not
    gaps. Only applies when every span of the file lies inside that day.
    """
    match = re.search(r"(\d{4}-\d{2}-\d{2})", file_name)
    if match is None or coverage.num_rows == 0:
        return coverage
    try:
        day = dt.date.fromisoformat(match.group(1))
    except ValueError:
        return coverage
    day_start, day_end = _day_bounds(day)
    starts = coverage.column("start").to_pylist()
    ends = coverage.column("end").to_pylist()
    if min(starts) < day_start or max(ends) > day_end:
        return coverage
    is_hour = pc.equal(coverage.column("resolution"), "hour")
    widened = coverage.set_column(
        coverage.schema.get_field_index("start"), "start",
        pc.if_else(is_hour, pa.scalar(day_start, TIMESTAMP), coverage.column("start")),
    )
    return widened.set_column(
        widened.schema.get_field_index("end"), "end",
        pc.if_else(is_hour, pa.scalar(day_end, TIMESTAMP), widened.column("end")),
    ).cast(COVERAGE_SCHEMA)


def split_coverage_by_day(coverage: pa.Table) -> dict[dt.date, pa.Table]:
    """Coverage rows clipped to each UTC day they touch (the lake stores them per day)."""
    by_day: dict[dt.date, list[dict]] = {}
    for row in coverage.to_pylist():
        day = row["start"].date()
        while True:
            day_start, day_end = _day_bounds(day)
            if day_start >= row["end"]:
                break
            by_day.setdefault(day, []).append(
                {**row, "start": max(row["start"], day_start), "end": min(row["end"], day_end)}
            )
            day += DAY
    return {day: pa.Table.from_pylist(rows, schema=COVERAGE_SCHEMA)
            for day, rows in by_day.items()}
