from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import lake
from pipelines.schema import USAGE_HOURLY_SCHEMA


def _hourly(day: dt.date, requests: list[int]) -> pa.Table:
    hours = [
        dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC) for hour in range(len(requests))
    ]
    count = len(requests)
    return pa.table(
        {
            "series_id": ["openai/gpt-4.1/crm"] * count,
            "provider": ["openai"] * count,
            "model": ["gpt-4.1"] * count,
            "team": ["crm"] * count,
            "hour": hours,
            "requests": requests,
            "errors": [0] * count,
            "input_tokens": [r * 10 for r in requests],
            "output_tokens": [r * 2 for r in requests],
            "cached_input_tokens": [0] * count,
            "cache_write_tokens": [0] * count,
            "calls_without_usage": [0] * count,
        },
        schema=USAGE_HOURLY_SCHEMA,
    )


def test_partition_is_replaced_whole_and_read_by_day_range(tmp_path):
    first, second = dt.date(2015, 3, 1), dt.date(2015, 3, 2)
    lake.write_partition(tmp_path, "usage_hourly", first, _hourly(first, [1, 2, 3]))
    lake.write_partition(tmp_path, "usage_hourly", second, _hourly(second, [4, 5]))
    lake.write_partition(tmp_path, "usage_hourly", first, _hourly(first, [7]))

    everything = lake.read_usage_hourly(tmp_path)
    only_second = lake.read_usage_hourly(tmp_path, start_day=second)

    assert sorted(everything.column("requests").to_pylist()) == [4, 5, 7]
    assert only_second.column("requests").to_pylist() == [4, 5]
    assert lake.partition_days(tmp_path, "usage_hourly") == [first, second]


def test_leftover_temporary_file_is_invisible(tmp_path):
    day = dt.date(2015, 3, 1)
    lake.write_partition(tmp_path, "usage_hourly", day, _hourly(day, [3]))
    (lake.partition_dir(tmp_path, "usage_hourly", day) / ".crashed.tmp").write_bytes(b"PAR1")

    assert lake.read_usage_hourly(tmp_path).column("requests").to_pylist() == [3]


def test_empty_lake_reads_as_empty_table_with_schema(tmp_path):
    table = lake.read_usage_hourly(tmp_path)

    assert table.num_rows == 0
    assert table.schema == USAGE_HOURLY_SCHEMA


def test_near_unique_columns_are_written_without_a_dictionary(tmp_path):
    day = dt.date(2015, 3, 1)
    table = pa.table({"request_id": [f"r{i}" for i in range(1000)], "provider": ["openai"] * 1000})
    path = lake.write_partition(tmp_path, "calls", day, table)

    chunks = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(2)}

    assert not any("DICTIONARY" in encoding for encoding in encodings["request_id"])
    assert any("DICTIONARY" in encoding for encoding in encodings["provider"])
    assert pq.read_table(path).equals(table)


def test_unsynced_partitions_are_all_synced_under_their_root(tmp_path):
    first, second = dt.date(2015, 3, 1), dt.date(2015, 3, 2)
    lake.write_partition(tmp_path, "usage_hourly", first, _hourly(first, [1]), sync=False)
    lake.write_partition(tmp_path, "usage_hourly", second, _hourly(second, [2]), sync=False)

    assert lake.sync_files(tmp_path) == 2
    assert lake.sync_files(tmp_path / "missing") == 0
