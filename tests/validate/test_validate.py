"""The calls and usage_hourly suites on real batches, and each fault kind they must catch."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import staged_batches as batches

from pipelines import lake
from pipelines.errors import DataQualityError, UsagecastError
from pipelines.schema import CALLS_SCHEMA
from pipelines.settings import Settings
from pipelines.validate import (
    CALLS_SUITE,
    HOURLY_SUITE,
    ValidationReport,
    calls_frame,
    hourly_frame,
    load_suite_spec,
    validate_batch,
    validate_lake,
)

UTC = dt.UTC
CVS_DAY = dt.date(2015, 3, 5)
END_OF_DAY = dt.datetime(2015, 3, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def cvs_calls(replay_cvs_dir: Path) -> pa.Table:
    files = sorted(replay_cvs_dir.glob("calls-*.csv"))
    return pa.concat_tables([batches.replay_calls(path) for path in files])


@pytest.fixture(scope="module")
def cvs_day(cvs_calls: pa.Table) -> tuple[pa.Table, pa.Table]:
    """One real day of the CVS replay: its calls and its hourly rows."""
    calls = batches.split_by_day(cvs_calls)[CVS_DAY]
    return calls, batches.hourly_from_calls(calls)[CVS_DAY]


def day_interval(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    return start, start + dt.timedelta(days=1)


def replace_column(table: pa.Table, name: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(name), pa.array(values, table[name].type))


def edit(table: pa.Table, name: str, row: int, value: object) -> pa.Table:
    values = table[name].to_pylist()
    values[row] = value
    return replace_column(table, name, values)


def test_clean_replay_log_passes_every_suite(settings: Settings, cvs_calls: pa.Table) -> None:
    calls_by_day = batches.split_by_day(cvs_calls)
    hourly_by_day = batches.hourly_from_calls(cvs_calls)
    first, last = min(calls_by_day), max(calls_by_day)
    interval = (day_interval(first)[0], day_interval(last)[1])

    report = validate_batch(
        settings, calls_by_day, hourly_by_day, batch_interval=interval, now=interval[1]
    )

    assert report.critical == []
    assert report.partitions_checked == 2 * 56
    assert report.rows_checked == 5_701 + sum(t.num_rows for t in hourly_by_day.values())
    assert report.warnings == []
    stored = list((settings.gx_dir / "uncommitted" / "validations").rglob("*.json"))
    assert {path.parent.parent.parent.name for path in stored} == {
        "calls-without-newest_partition", "usage_hourly"
    }
    assert report.docs_index is not None and report.docs_index.is_file()


def test_clean_azure_traces_pass_without_warnings(settings: Settings, real_data_dir: Path) -> None:
    folder = real_data_dir / "azure_llm_2023"
    calls = pa.concat_tables(
        [
            batches.azure_calls(folder / "AzureLLMInferenceTrace_code.csv", "code"),
            batches.azure_calls(folder / "AzureLLMInferenceTrace_conv.csv", "conv"),
        ]
    )
    assert calls.num_rows == 8_819 + 19_366
    newest = pc.max(calls["timestamp"]).as_py()

    report = validate_batch(
        settings,
        batches.split_by_day(calls),
        batches.hourly_from_calls(calls),
        batch_interval=day_interval(newest.date()),
        now=newest + dt.timedelta(hours=2),
    )

    assert report.critical == [] and report.warnings == []
    assert report.rows_checked == 28_185 + 2 * 2


def test_nullable_token_counts_pass_the_type_check(
    settings: Settings, cvs_day: tuple[pa.Table, pa.Table]
) -> None:
    calls, hourly = cvs_day
    tokens = calls["input_tokens"].to_pylist()
    calls = replace_column(calls, "input_tokens", [None] * 3 + tokens[3:])

    frame = calls_frame(calls, CVS_DAY)
    report = validate_batch(settings, {CVS_DAY: calls}, {CVS_DAY: hourly}, now=END_OF_DAY)

    assert str(frame["input_tokens"].dtype) == "Int64"
    assert frame["input_tokens"].isna().sum() == 3
    assert report.critical == []


Fault = Callable[[pa.Table, pa.Table], tuple[pa.Table, pa.Table, dict]]


def _negative_tokens(calls, hourly):
    return edit(calls, "input_tokens", 4, -12), hourly, {}


def _huge_output(calls, hourly):
    return edit(calls, "output_tokens", 7, 5_000_000), hourly, {}


def _call_in_the_future(calls, hourly):
    return calls, hourly, {"now": dt.datetime(2015, 3, 5, 12, tzinfo=UTC)}


def _call_outside_interval(calls, hourly):
    start, end = day_interval(CVS_DAY)
    return calls, hourly, {"batch_interval": (start, start + dt.timedelta(hours=12))}


def _call_in_wrong_partition(calls, hourly):
    moved = dt.datetime(2015, 3, 4, 23, 59, tzinfo=UTC)
    return edit(calls, "timestamp", 2, moved), hourly, {}


def _unknown_status(calls, hourly):
    return edit(calls, "status_code", 9, 999), hourly, {}


def _duplicate_request_id(calls, hourly):
    return edit(calls, "request_id", 5, calls["request_id"][6].as_py()), hourly, {}


def _most_calls_without_usage(calls, hourly):
    rows = calls.num_rows
    return replace_column(calls, "input_tokens", [None] * (rows * 6 // 10) + [
        10
    ] * (rows - rows * 6 // 10)), hourly, {}


def _cache_reads_above_input(calls, hourly):
    cached = [None] * calls.num_rows
    cached[3] = calls["input_tokens"][3].as_py() + 1
    return replace_column(calls, "cached_input_tokens", cached), hourly, {}


def _missing_column(calls, hourly):
    return calls.drop_columns(["status_code"]), hourly, {}


def _float_token_counts(calls, hourly):
    index = calls.schema.get_field_index("input_tokens")
    floats = calls["input_tokens"].cast(pa.float64())
    return calls.set_column(index, pa.field("input_tokens", pa.float64()), floats), hourly, {}


def _missing_hour(calls, hourly):
    keep = [row != 10 for row in range(hourly.num_rows)]
    return calls, hourly.filter(pa.array(keep)), {}


def _duplicate_hour(calls, hourly):
    return calls, pa.concat_tables([hourly, hourly.slice(3, 1)]), {}


def _negative_requests(calls, hourly):
    return calls, edit(hourly, "requests", 8, -1), {}


def _more_errors_than_requests(calls, hourly):
    return calls, edit(hourly, "errors", 8, hourly["requests"][8].as_py() + 1), {}


FAULTS = [
    (_negative_tokens, CALLS_SUITE, "expect_column_values_to_be_between", "input_tokens"),
    (_huge_output, CALLS_SUITE, "expect_column_values_to_be_between", "output_tokens"),
    (_call_in_the_future, CALLS_SUITE, "expect_column_values_to_be_between", "timestamp"),
    (_call_outside_interval, CALLS_SUITE, "expect_column_values_to_be_between", "timestamp"),
    (_call_in_wrong_partition, CALLS_SUITE, "expect_column_pair_values_to_be_equal",
     "timestamp_day == partition_day"),
    (_unknown_status, CALLS_SUITE, "expect_column_values_to_be_in_set", "status_code"),
    (_duplicate_request_id, CALLS_SUITE, "expect_column_values_to_be_unique", "request_id"),
    (_most_calls_without_usage, CALLS_SUITE, "expect_column_values_to_not_be_null",
     "input_tokens"),
    (_cache_reads_above_input, CALLS_SUITE, "expect_column_pair_values_a_to_be_greater_than_b",
     "input_tokens >= cached_input_tokens"),
    (_missing_column, CALLS_SUITE, "expect_table_columns_to_match_set", None),
    (_float_token_counts, CALLS_SUITE, "expect_column_values_to_be_of_type", "input_tokens"),
    (_missing_hour, HOURLY_SUITE, "expect_column_values_to_be_between", "hours_since_previous"),
    (_duplicate_hour, HOURLY_SUITE, "expect_compound_columns_to_be_unique", "series_id,hour"),
    (_negative_requests, HOURLY_SUITE, "expect_column_values_to_be_between", "requests"),
    (_more_errors_than_requests, HOURLY_SUITE,
     "expect_column_pair_values_a_to_be_greater_than_b", "requests >= errors"),
]


@pytest.mark.parametrize(
    ("fault", "suite", "expectation", "column"),
    FAULTS,
    ids=[fault.__name__.strip("_") for fault, *_ in FAULTS],
)
def test_each_critical_fault_stops_the_batch_and_names_its_expectation(
    settings: Settings,
    cvs_day: tuple[pa.Table, pa.Table],
    fault: Fault,
    suite: str,
    expectation: str,
    column: str | None,
) -> None:
    calls, hourly, options = fault(*cvs_day)
    options.setdefault("now", day_interval(CVS_DAY)[1])

    with pytest.raises(DataQualityError) as raised:
        validate_batch(settings, {CVS_DAY: calls}, {CVS_DAY: hourly}, **options)

    report: ValidationReport = raised.value.report
    matching = [
        finding
        for finding in report.critical
        if finding.suite == suite
        and finding.expectation.split(" ")[0] == expectation
        and finding.column == column
    ]
    assert matching, [finding.describe() for finding in report.critical]
    message = str(raised.value)
    assert f"suite {suite!r}" in message and expectation in message and "observed" in message
    assert all(finding.severity == "critical" for finding in report.critical)


def test_critical_message_names_the_offending_rows_by_file_and_line(
    settings: Settings, cvs_day: tuple[pa.Table, pa.Table]
) -> None:
    calls, hourly, _ = _huge_output(*cvs_day)

    with pytest.raises(DataQualityError) as raised:
        validate_batch(settings, {CVS_DAY: calls}, {CVS_DAY: hourly}, now=END_OF_DAY)

    [finding] = raised.value.report.critical
    assert finding.offending_rows == [
        {"output_tokens": 5_000_000, "source_file": "calls-2015-03-05.csv", "source_line": 9}
    ]
    assert finding.observed.startswith(f"1 of {calls.num_rows} rows unexpected")
    assert "source_file=calls-2015-03-05.csv, source_line=9" in str(raised.value)
    assert '"max_value": 200000' in str(raised.value)


def test_some_calls_without_usage_is_a_warning_not_a_stop(
    settings: Settings, cvs_day: tuple[pa.Table, pa.Table]
) -> None:
    calls, hourly = cvs_day
    without = calls.num_rows // 10
    calls = replace_column(
        calls, "output_tokens", [None] * without + calls["output_tokens"][without:].to_pylist()
    )

    report = validate_batch(settings, {CVS_DAY: calls}, {CVS_DAY: hourly}, now=END_OF_DAY)

    assert report.critical == []
    [warning] = report.warnings
    assert (warning.column, warning.severity) == ("output_tokens", "warning")
    assert warning.observed.startswith(f"{without} of {calls.num_rows} rows unexpected")


def _stored_results(settings: Settings) -> dict[str, dict]:
    """Stored validation results by run name."""
    stored = (settings.gx_dir / "uncommitted" / "validations").rglob("*.json")
    return {path.parent.parent.name: json.loads(path.read_text()) for path in stored}


def test_a_passing_run_is_stored_once_without_a_fingerprint(
    settings: Settings, cvs_day: tuple[pa.Table, pa.Table]
) -> None:
    calls, hourly = cvs_day

    report = validate_batch(settings, {CVS_DAY: calls}, {CVS_DAY: hourly}, now=END_OF_DAY)

    # calls-2015-03-05.csv of the CVS replay has 111 rows; its day has 24 hourly rows.
    assert (calls.num_rows, hourly.num_rows) == (111, 24)
    assert report.summary().startswith(
        "validation passed: 2 partitions, 135 rows (calls and hourly usage together), ")
    results = _stored_results(settings)
    assert sorted(results) == [f"calls-{CVS_DAY}", f"usage_hourly-{CVS_DAY}"]
    for result in results.values():
        assert result["success"]
        assert "pandas_data_fingerprint" not in result["meta"]["batch_markers"]
        # BOOLEAN_ONLY: every expectation evaluated, no value lists kept for passing rows.
        assert all(outcome["result"] == {} for outcome in result["results"])
    assert len(results[f"calls-{CVS_DAY}"]["results"]) == len(
        [e for e in load_suite_spec(CALLS_SUITE)["expectations"]
         if e["meta"].get("requires") is None])


def test_a_run_with_a_finding_is_repeated_for_the_offending_rows(
    settings: Settings, cvs_day: tuple[pa.Table, pa.Table]
) -> None:
    calls, hourly, _ = _huge_output(*cvs_day)

    with pytest.raises(DataQualityError) as raised:
        validate_batch(settings, {CVS_DAY: calls}, {CVS_DAY: hourly}, now=END_OF_DAY)

    results = _stored_results(settings)
    assert sorted(results) == [f"calls-{CVS_DAY}", f"calls-{CVS_DAY}-details",
                               f"usage_hourly-{CVS_DAY}"]
    assert not results[f"calls-{CVS_DAY}"]["success"]
    [detailed] = [outcome["result"] for outcome in results[f"calls-{CVS_DAY}-details"]["results"]
                  if not outcome["success"]]
    offending = {"output_tokens": 5_000_000, "source_file": "calls-2015-03-05.csv",
                 "source_line": 9}
    assert (detailed["unexpected_count"], detailed["partial_unexpected_index_list"]) == (
        1, [offending])
    [finding] = raised.value.report.critical
    assert finding.offending_rows == [offending]


def test_a_stale_newest_hour_is_a_warning(
    settings: Settings, cvs_day: tuple[pa.Table, pa.Table]
) -> None:
    calls, hourly = cvs_day
    newest_hour = pc.max(hourly["hour"]).as_py()

    report = validate_batch(
        settings, {CVS_DAY: calls}, {CVS_DAY: hourly}, now=newest_hour + dt.timedelta(hours=60)
    )

    assert report.critical == []
    [warning] = report.warnings
    assert (warning.column, warning.severity) == ("hour_age_hours", "warning")
    assert warning.observed == "60.0"


def test_a_quiet_sunday_is_measured_against_sundays(
    settings: Settings, cvs_calls: pa.Table
) -> None:
    """Weekly seasonality is not a data-quality problem: the band compares like days."""
    hourly_by_day = batches.hourly_from_calls(cvs_calls)
    frame = hourly_frame(settings, hourly_by_day, now=day_interval(max(hourly_by_day))[1])

    ratios = frame.groupby(frame["hour"].dt.date)["requests_vs_trailing"].first()
    # Real CVS counts: Sunday 2015-03-22 had 16 calls over 24 covered hours; the Sundays
    # of its trailing four weeks in the log had 43, 38 and 24 over 72 hours. Against all
    # trailing days it was 0.186, a false alarm on every quiet weekend.
    assert ratios[dt.date(2015, 3, 22)] == pytest.approx((16 / 24) / ((43 + 38 + 24) / 72))


def test_a_day_far_above_its_trailing_weeks_is_a_warning(
    settings: Settings, cvs_calls: pa.Table
) -> None:
    hourly_by_day = batches.hourly_from_calls(cvs_calls)
    days = sorted(hourly_by_day)[1:20]
    staged = {day: hourly_by_day[day] for day in days}
    last = staged[days[-1]]
    staged[days[-1]] = replace_column(
        last, "requests", [value * 10 for value in last["requests"].to_pylist()]
    )

    report = validate_batch(settings, {}, staged, now=day_interval(days[-1])[1])

    assert report.critical == []
    [warning] = report.warnings
    assert warning.column == "requests_vs_trailing"
    assert {row["hour"][:10] for row in warning.offending_rows} == {days[-1].isoformat()}
    assert warning.offending_rows[0]["requests_vs_trailing"] > 5.0


def test_validate_lake_finds_a_call_published_in_the_wrong_day(
    settings: Settings, cvs_calls: pa.Table
) -> None:
    calls_by_day = batches.split_by_day(cvs_calls)
    hourly_by_day = batches.hourly_from_calls(cvs_calls)
    for day in sorted(calls_by_day)[:5]:
        lake.write_partition(settings.lake_dir, "calls", day, calls_by_day[day])
        lake.write_partition(settings.lake_dir, "usage_hourly", day, hourly_by_day[day])
    wrong_day = sorted(calls_by_day)[3]
    lake.write_partition(
        settings.lake_dir, "calls", wrong_day, calls_by_day[sorted(calls_by_day)[4]]
    )
    now = day_interval(sorted(calls_by_day)[4])[1]

    clean_day = validate_lake(settings, day=sorted(calls_by_day)[1], now=now)
    everything = validate_lake(settings, now=now)

    assert clean_day.critical == [] and clean_day.partitions_checked == 2
    # The copied day's calls sit in the wrong partition, and their ids repeat the next day's.
    found = sorted((f.suite, f.expectation.split(" ")[0], f.column) for f in everything.critical)
    assert found == [
        (CALLS_SUITE, "expect_column_pair_values_to_be_equal", "timestamp_day == partition_day"),
        (CALLS_SUITE, "expect_column_values_to_be_unique", "request_id"),
    ]
    assert everything.partitions_checked == 10


def test_validate_command_fails_on_critical_and_passes_clean(
    settings: Settings, cvs_calls: pa.Table, capsys: pytest.CaptureFixture
) -> None:
    from pipelines.cli import main

    calls_by_day = batches.split_by_day(cvs_calls)
    hourly_by_day = batches.hourly_from_calls(cvs_calls)
    good, bad = sorted(calls_by_day)[:2]
    lake.write_partition(settings.lake_dir, "calls", good, calls_by_day[good])
    lake.write_partition(settings.lake_dir, "usage_hourly", good, hourly_by_day[good])
    broken = edit(calls_by_day[bad], "output_tokens", 0, 9_000_000)
    lake.write_partition(settings.lake_dir, "calls", bad, broken)
    base = ["--data-dir", str(settings.data_dir), "-q", "validate", "--now", "2015-04-23"]

    assert main([*base, "--date", good.isoformat()]) == 0
    assert "validation passed: 2 partitions" in capsys.readouterr().out
    assert main([*base, "--date", bad.isoformat()]) == 1
    assert main([*base, "--date", "2016-01-01"]) == 1


def test_critical_failure_inside_ingest_leaves_the_lake_untouched(
    settings: Settings, replay_cvs_dir: Path, tmp_path: Path
) -> None:
    from pipelines.ingest import ingest

    files = sorted(replay_cvs_dir.glob("calls-*.csv"))
    ingest(settings, files[:3])
    before = {
        path.relative_to(settings.lake_dir): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in settings.lake_dir.rglob("*.parquet")
    }
    broken = tmp_path / files[3].name
    lines = files[3].read_text().splitlines()
    fields = lines[1].split(",")
    fields[6] = "9000000"
    broken.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")

    with pytest.raises(DataQualityError, match="output_tokens"):
        ingest(settings, [files[2], broken])

    after = {
        path.relative_to(settings.lake_dir): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in settings.lake_dir.rglob("*.parquet")
    }
    assert after == before
    assert lake.partition_days(settings.lake_dir, "calls") == [
        dt.date.fromisoformat(path.stem[6:]) for path in files[:3]
    ]


def test_suite_files_declare_a_severity_for_every_expectation(tmp_path: Path) -> None:
    for name in (CALLS_SUITE, HOURLY_SUITE):
        spec = load_suite_spec(name)
        assert {e["meta"]["severity"] for e in spec["expectations"]} == {"critical", "warning"}
    (tmp_path / "calls.json").write_text(
        json.dumps({"name": "calls", "expectations": [{"type": "x", "kwargs": {}, "meta": {}}]})
    )

    with pytest.raises(UsagecastError, match=r"calls.json: expectation #0 \(x\) needs meta"):
        load_suite_spec(CALLS_SUITE, suites_dir=tmp_path)


def test_calls_schema_and_suite_list_the_same_columns() -> None:
    [columns] = [
        e["kwargs"]["column_set"]
        for e in load_suite_spec(CALLS_SUITE)["expectations"]
        if e["type"] == "expect_table_columns_to_match_set"
    ]
    assert columns == [*CALLS_SCHEMA.names, "timestamp_day", "partition_day"]


@pytest.mark.parametrize("handed_over", ["table", "partition file"])
def test_a_day_larger_than_a_chunk_still_finds_a_request_id_repeated_across_it(
    settings: Settings,
    cvs_day: tuple[pa.Table, pa.Table],
    monkeypatch: pytest.MonkeyPatch,
    handed_over: str,
) -> None:
    """Big days are validated in parts; every copy of one id must land in the same part.

    Ingest hands over its staged partition files; a large one is read back in id-hash
    parts, a table held in memory is split in request-id order.
    """
    calls, hourly = cvs_day
    first_id = calls["request_id"][0].as_py()
    calls = edit(calls, "request_id", calls.num_rows - 1, first_id)
    source = calls
    if handed_over == "partition file":
        source = lake.write_partition(settings.data_dir / "staged", "calls", CVS_DAY, calls)
    monkeypatch.setattr("pipelines.validate.CHUNK_ROWS", 7)

    with pytest.raises(DataQualityError) as raised:
        validate_batch(settings, {CVS_DAY: source}, {CVS_DAY: hourly},
                       now=day_interval(CVS_DAY)[1])

    findings = raised.value.report.critical
    assert [(f.expectation.split(" ")[0], f.column) for f in findings] == [
        ("expect_column_values_to_be_unique", "request_id")
    ]
    assert f"request_id={first_id}" in findings[0].describe()
    assert raised.value.report.rows_checked == calls.num_rows + hourly.num_rows
