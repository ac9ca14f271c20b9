"""Staged batches built from real files, in the lake schemas, for the validation tests.

Helper INGEST owns the real conversion; these builders exist so the suites are tested on
real rows without depending on it: calls are read with pyarrow.csv and cast to
CALLS_SCHEMA, hourly rows are aggregated with DuckDB on a complete grid from each
series' first to last hour.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipelines.schema import CALLS_SCHEMA, USAGE_HOURLY_SCHEMA


def replay_calls(path: Path) -> pa.Table:
    """One replay file (request_id,timestamp,provider,...) as calls of CALLS_SCHEMA."""
    raw = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={"timestamp": pa.timestamp("us", tz="UTC"), "status_code": pa.int32()}
        ),
    )
    rows = raw.num_rows
    columns = {
        "request_id": raw["request_id"],
        "timestamp": raw["timestamp"],
        "provider": raw["provider"],
        "model": raw["model"],
        "team": raw["team"],
        "input_tokens": raw["input_tokens"].cast(pa.int64()),
        "output_tokens": raw["output_tokens"].cast(pa.int64()),
        "cached_input_tokens": pa.nulls(rows, pa.int64()),
        "cache_write_tokens": pa.nulls(rows, pa.int64()),
        "status_code": raw["status_code"],
        "latency_ms": pa.nulls(rows, pa.float64()),
        "source_file": pa.array([path.name] * rows, pa.string()),
        "source_line": pa.array(range(2, rows + 2), pa.int64()),
    }
    return pa.table(columns, schema=CALLS_SCHEMA)


def azure_calls(path: Path, team: str) -> pa.Table:
    """An Azure LLM trace (TIMESTAMP,ContextTokens,GeneratedTokens) as calls of one team."""
    raw = pacsv.read_csv(path)
    rows = raw.num_rows
    text = pc.utf8_slice_codeunits(raw["TIMESTAMP"].cast(pa.string()), 0, 26)
    timestamps = text.cast(pa.timestamp("us"))
    columns = {
        "request_id": pa.array([f"{team}-{line}" for line in range(rows)], pa.string()),
        "timestamp": timestamps.cast(pa.timestamp("us", tz="UTC")),
        "provider": pa.array(["azure-openai"] * rows),
        "model": pa.array(["gpt-4"] * rows),
        "team": pa.array([team] * rows),
        "input_tokens": raw["ContextTokens"].cast(pa.int64()),
        "output_tokens": raw["GeneratedTokens"].cast(pa.int64()),
        "cached_input_tokens": pa.nulls(rows, pa.int64()),
        "cache_write_tokens": pa.nulls(rows, pa.int64()),
        "status_code": pa.array([200] * rows, pa.int32()),
        "latency_ms": pa.nulls(rows, pa.float64()),
        "source_file": pa.array([path.name] * rows),
        "source_line": pa.array(range(2, rows + 2), pa.int64()),
    }
    return pa.table(columns, schema=CALLS_SCHEMA)


def split_by_day(calls: pa.Table) -> dict[dt.date, pa.Table]:
    days = pc.cast(calls["timestamp"], pa.date32())
    return {
        day: calls.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        for day in sorted(set(days.to_pylist()))
    }


def hourly_from_calls(calls: pa.Table) -> dict[dt.date, pa.Table]:
    """Per series and UTC hour, zeros for quiet hours between each series' first and last."""
    connection = duckdb.connect()
    connection.register("calls", calls)
    table = connection.sql(
        """
        WITH grid AS (
            SELECT provider, model, team, unnest(generate_series(
                date_trunc('hour', min(timestamp)), date_trunc('hour', max(timestamp)),
                INTERVAL 1 HOUR)) AS hour
            FROM calls GROUP BY provider, model, team
        ), usage AS (
            SELECT provider, model, team, date_trunc('hour', timestamp) AS hour,
                   count(*) AS requests,
                   count(*) FILTER (WHERE status_code >= 400) AS errors,
                   coalesce(sum(input_tokens), 0) AS input_tokens,
                   coalesce(sum(output_tokens), 0) AS output_tokens,
                   coalesce(sum(cached_input_tokens), 0) AS cached_input_tokens,
                   coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens,
                   count(*) FILTER (WHERE input_tokens IS NULL) AS calls_without_usage
            FROM calls GROUP BY ALL
        )
        SELECT provider || '/' || model || '/' || team AS series_id,
               grid.provider, grid.model, grid.team, grid.hour,
               coalesce(requests, 0) AS requests, coalesce(errors, 0) AS errors,
               coalesce(input_tokens, 0) AS input_tokens,
               coalesce(output_tokens, 0) AS output_tokens,
               coalesce(cached_input_tokens, 0) AS cached_input_tokens,
               coalesce(cache_write_tokens, 0) AS cache_write_tokens,
               coalesce(calls_without_usage, 0) AS calls_without_usage
        FROM grid LEFT JOIN usage USING (provider, model, team, hour)
        ORDER BY series_id, hour
        """
    ).to_arrow_table()
    table = table.cast(USAGE_HOURLY_SCHEMA)
    days = pc.cast(table["hour"], pa.date32())
    return {
        day: table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        for day in sorted(set(days.to_pylist()))
    }
