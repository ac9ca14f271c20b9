"""Faulty and awkward inputs (synthetic files written by the tests): every row is stored,
skipped as a duplicate or quarantined with its reason, and the counts add up."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime

import pyarrow.compute as pc
import pytest

from pipelines import lake
from pipelines.errors import InputError
from pipelines.ingest import ingest

GATEWAY_HEADER = "request_id,timestamp,provider,model,team,input_tokens,output_tokens,status_code"




def _adds_up(result) -> None:
    assert result.rows_read == result.stored + result.duplicates + result.quarantined


def _quarantine(settings):
    rows = lake.read_quarantine(settings.lake_dir).to_pylist()
    return sorted((row["source_line"], row["field"], row["reason"]) for row in rows)


def _timestamps(settings):
    calls = lake.read_calls(settings.lake_dir).sort_by("source_line")
    return calls.column("timestamp").to_pylist()


def test_offsets_across_a_dst_change_become_utc(settings, write):
    path = write("dst.csv", "\n".join([
        GATEWAY_HEADER,
        "a,2015-03-29T01:30:00+01:00,openai,gpt-4.1,crm,10,1,200",
        "b,2015-03-29T03:30:00+02:00,openai,gpt-4.1,crm,10,1,200",
        "c,2015-03-29T04:30:00.250Z,openai,gpt-4.1,crm,10,1,200",
    ]) + "\n")

    ingest(settings, [path])

    assert _timestamps(settings) == [
        datetime(2015, 3, 29, 0, 30, tzinfo=UTC),
        datetime(2015, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2015, 3, 29, 4, 30, 0, 250000, tzinfo=UTC),
    ]


def test_naive_timestamps_are_read_in_the_source_time_zone(settings, write):
    path = write("naive.csv", GATEWAY_HEADER + "\n"
                 "a,2015-07-01 12:00:00,openai,gpt-4.1,crm,10,1,200\n")

    ingest(settings, [path], source_tz="America/New_York")

    assert _timestamps(settings) == [datetime(2015, 7, 1, 16, 0, tzinfo=UTC)]


def test_epoch_seconds_millis_micros_and_nanos_are_told_apart(settings, write):
    rows = ["1427587200", "1427587200000", "1427587200000000", "1427587200000000000",
            "1427587200.5"]
    path = write("epoch.csv", GATEWAY_HEADER + "\n" + "".join(
        f"r{index},{value},openai,gpt-4.1,crm,10,1,200\n" for index, value in enumerate(rows)))

    ingest(settings, [path])

    moment = datetime(2015, 3, 29, tzinfo=UTC)
    assert _timestamps(settings) == [moment] * 4 + [moment.replace(microsecond=500000)]


def test_bad_timestamps_and_tokens_are_quarantined_with_line_field_and_reason(settings, write):
    path = write("bad.csv", "\n".join([
        GATEWAY_HEADER,
        "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200",
        "b,yesterday at noon,openai,gpt-4.1,crm,10,1,200",
        "c,2015-03-01T10:05:00Z,openai,gpt-4.1,crm,-5,1,200",
        "d,2015-03-01T10:06:00Z,openai,gpt-4.1,crm,ten,1,200",
        "e,2015-03-01T10:07:00Z,openai,gpt-4.1,crm,12.0,3,200",
        "f,2015-03-01T10:08:00Z,openai,gpt-4.1,,12,3,200",
        "g,,openai,gpt-4.1,crm,1,1,200",
    ]) + "\n")

    result = ingest(settings, [path])

    _adds_up(result)
    assert (result.rows_read, result.stored, result.quarantined) == (7, 2, 5)
    assert _quarantine(settings) == [
        (3, "timestamp", "unreadable timestamp"),
        (4, "input_tokens", "negative count"),
        (5, "input_tokens", "not a whole number"),
        (7, "team", "missing team"),
        (8, "timestamp", "missing timestamp"),
    ]
    raw = lake.read_quarantine(settings.lake_dir).filter(
        pc.equal(lake.read_quarantine(settings.lake_dir).column("source_line"), 5))
    assert "ten" in raw.column("raw_line")[0].as_py()
    assert "negative count: 1" in result.summary()


def test_duplicates_by_request_id_and_by_content_are_skipped_once(settings, write):
    first = write("a.csv", "\n".join([
        GATEWAY_HEADER,
        "x1,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200",
        "x1,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200",
        ",2015-03-01T10:01:00Z,openai,gpt-4.1,crm,7,2,200",
        ",2015-03-01T10:01:00Z,openai,gpt-4.1,crm,7,2,200",
        ",2015-03-01T10:01:00Z,openai,gpt-4.1,crm,7,3,200",
    ]) + "\n")
    second = write("b.csv", GATEWAY_HEADER + "\n"
                   "x1,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n"
                   "x2,2015-03-01T11:00:00Z,openai,gpt-4.1,crm,10,1,200\n")

    result = ingest(settings, [first, second])

    _adds_up(result)
    assert (result.rows_read, result.stored, result.duplicates) == (7, 4, 3)
    hourly = lake.read_usage_hourly(settings.lake_dir)
    assert pc.sum(hourly.column("requests")).as_py() == 4


def test_truncated_last_line_is_quarantined_with_its_line(settings, write):
    path = write("cut.csv", GATEWAY_HEADER + "\n"
                 "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n"
                 "b,2015-03-01T10:01:00Z,openai,gpt-4.1,crm,11,1,200\n"
                 "c,2015-03-01T10:02:00Z,openai")

    result = ingest(settings, [path])

    _adds_up(result)
    assert (result.stored, result.quarantined) == (2, 1)
    assert _quarantine(settings) == [(4, "row", "expected 8 fields, found 3")]


def test_bad_row_in_the_middle_keeps_later_line_numbers_exact(settings, write):
    path = write("mid.csv", GATEWAY_HEADER + "\n"
                 "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n"
                 "broken,row\n"
                 "b,2015-03-01T10:01:00Z,openai,gpt-4.1,crm,x,1,200\n")

    ingest(settings, [path])

    assert _quarantine(settings) == [
        (3, "row", "expected 8 fields, found 2"),
        (4, "input_tokens", "not a whole number"),
    ]
    assert lake.read_calls(settings.lake_dir).column("source_line").to_pylist() == [2]


def test_byte_order_mark_and_unknown_columns_are_harmless(settings, write):
    path = write("bom.csv", ("\ufeffrequest_id,timestamp,provider,model,team,input_tokens,"
                             "output_tokens,region,status_code\n"
                             "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,eu,200\n"
                             ).encode("utf-8"))

    result = ingest(settings, [path])

    assert (result.stored, result.quarantined) == (1, 0)
    assert lake.read_calls(settings.lake_dir).column("request_id").to_pylist() == ["a"]


def test_empty_and_header_only_files_read_zero_rows(settings, write):
    empty = write("empty.csv", "")
    header_only = write("header.csv", GATEWAY_HEADER + "\n")

    result = ingest(settings, [empty, header_only])

    assert (result.files_read, result.rows_read, result.stored) == (2, 0, 0)
    assert lake.partition_days(settings.lake_dir, "calls") == []


def test_call_without_usage_keeps_null_tokens_and_is_counted(settings, write):
    path = write("stream.csv", GATEWAY_HEADER + "\n"
                 "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,,,200\n"
                 "b,2015-03-01T10:01:00Z,openai,gpt-4.1,crm,5,2,500\n")

    result = ingest(settings, [path])

    assert result.calls_without_usage == 1
    calls = lake.read_calls(settings.lake_dir).sort_by("source_line")
    assert calls.column("input_tokens").to_pylist() == [None, 5]
    hour = lake.read_usage_hourly(settings.lake_dir).to_pylist()
    assert [(row["requests"], row["errors"], row["input_tokens"], row["calls_without_usage"])
            for row in hour] == [(2, 1, 5, 1)]


def test_gzipped_jsonl_with_numbers_is_read(settings, write):
    lines = [
        {"request_id": "a", "timestamp": 1425204000, "provider": "openai", "model": "gpt-4.1",
         "team": "crm", "input_tokens": 10, "output_tokens": 2, "cached_input_tokens": 4},
        {"request_id": "b", "timestamp": "2015-03-01T10:30:00Z", "provider": "openai",
         "model": "gpt-4.1", "team": "crm", "input_tokens": 20, "output_tokens": 3},
    ]
    path = write("calls.jsonl.gz", gzip.compress(
        "".join(json.dumps(line) + "\n" for line in lines).encode()))

    result = ingest(settings, [path])

    assert result.stored == 2
    hour = lake.read_usage_hourly(settings.lake_dir).to_pylist()
    assert [(r["hour"], r["requests"], r["input_tokens"], r["cached_input_tokens"])
            for r in hour] == [(datetime(2015, 3, 1, 10, tzinfo=UTC), 2, 30, 4)]


def test_quiet_hours_inside_coverage_are_zero_and_outside_absent(settings, write):
    path = write("span.csv", GATEWAY_HEADER + "\n"
                 "a,2015-03-01T10:10:00Z,openai,gpt-4.1,crm,10,1,200\n"
                 "b,2015-03-01T13:50:00Z,openai,gpt-4.1,crm,10,1,200\n")

    ingest(settings, [path])

    hours = [(row["hour"].hour, row["requests"])
             for row in lake.read_usage_hourly(settings.lake_dir).to_pylist()]
    assert hours == [(10, 1), (11, 0), (12, 0), (13, 1)]


def test_a_file_named_for_a_day_covers_the_whole_day(settings, write):
    path = write("calls-2015-03-01.csv", GATEWAY_HEADER + "\n"
                 "a,2015-03-01T10:10:00Z,openai,gpt-4.1,crm,10,1,200\n")

    ingest(settings, [path])

    hourly = lake.read_usage_hourly(settings.lake_dir)
    assert hourly.num_rows == 24
    assert pc.sum(hourly.column("requests")).as_py() == 1


def test_late_file_for_a_past_day_updates_that_days_hourly_rows(settings, write):
    first = write("first.csv", GATEWAY_HEADER + "\n"
                  "a,2015-03-01T10:10:00Z,openai,gpt-4.1,crm,10,1,200\n"
                  "b,2015-03-02T10:10:00Z,openai,gpt-4.1,crm,10,1,200\n")
    ingest(settings, [first])
    late = write("late.csv", GATEWAY_HEADER + "\n"
                 "c,2015-03-01T10:20:00Z,openai,gpt-4.1,crm,5,1,200\n"
                 "a,2015-03-01T10:10:00Z,openai,gpt-4.1,crm,10,1,200\n")

    result = ingest(settings, [late])

    assert (result.stored, result.duplicates, result.days_touched) == (1, 1, [date(2015, 3, 1)])
    first_day = lake.read_usage_hourly(settings.lake_dir, end_day=date(2015, 3, 2))
    at_ten = first_day.filter(pc.equal(pc.hour(first_day.column("hour")), 10)).to_pylist()
    assert [(row["requests"], row["input_tokens"]) for row in at_ten] == [(2, 15)]


def test_reingesting_the_same_bytes_changes_nothing(settings, write):
    path = write("once.csv", GATEWAY_HEADER + "\n"
                 "a,2015-03-01T10:10:00Z,openai,gpt-4.1,crm,10,1,200\n")
    ingest(settings, [path])
    before = (lake.partition_dir(settings.lake_dir, "calls", date(2015, 3, 1))
              / lake.PARTITION_FILE).stat().st_mtime_ns

    again = ingest(settings, [path])

    assert (again.files_read, again.files_already_ingested, again.rows_read) == (0, 1, 0)
    after = (lake.partition_dir(settings.lake_dir, "calls", date(2015, 3, 1))
             / lake.PARTITION_FILE).stat().st_mtime_ns
    assert before == after


def test_unknown_header_names_the_file(settings, write):
    path = write("odd.csv", "when,who,what\n1,2,3\n")

    with pytest.raises(InputError, match="odd.csv: cannot tell the format"):
        ingest(settings, [path])


def test_format_without_grain_columns_needs_flags(settings, real_data_dir):
    path = real_data_dir / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv"

    with pytest.raises(InputError, match="pass --provider"):
        ingest(settings, [path])


def test_a_long_silence_in_a_file_is_not_filled_with_zeros(settings, write):
    path = write("gap.csv", GATEWAY_HEADER + "\n"
                 "a,2015-03-01T10:10:00Z,openai,gpt-4.1,crm,10,1,200\n"
                 "b,2015-03-01T11:10:00Z,openai,gpt-4.1,crm,10,1,200\n"
                 "c,2015-03-05T09:10:00Z,openai,gpt-4.1,crm,10,1,200\n")

    ingest(settings, [path])

    hourly = lake.read_usage_hourly(settings.lake_dir).to_pylist()
    assert [(row["hour"].day, row["hour"].hour, row["requests"]) for row in hourly] == [
        (1, 10, 1), (1, 11, 1), (5, 9, 1)]
