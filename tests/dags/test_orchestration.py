"""The glue the DAG tasks call: which landing files a run reads, which as-of date it uses,
and how a failed step reaches Airflow."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.errors import DataQualityError, UsagecastError
from pipelines.orchestration import (
    event_extras,
    file_day,
    ingest_interval,
    interval_days,
    is_timed_run,
    landing_files_for_interval,
    log_task_failure,
    resolve_as_of,
    shard_indexes,
    step,
)
from pipelines.settings import load_settings

UTC = dt.UTC


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("request_id,timestamp\n")
    return path


def _utc(day: str, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=UTC)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    _touch(root / "calls-2024-03-04.csv")
    _touch(root / "calls-2024-03-05.csv")
    _touch(root / "openai_usage_20240305.jsonl")
    _touch(root / "dt=2024-03-05" / "gateway.csv")
    _touch(root / "calls-2024-03-06.csv")
    _touch(root / ".calls-2024-03-05.csv.tmp")
    _touch(root / "calls-2024-03-05.csv.part")
    _touch(root / "notes.csv")
    return root


def test_a_daily_interval_reads_only_the_files_of_its_day(landing: Path) -> None:
    files = landing_files_for_interval(landing, _utc("2024-03-05"), _utc("2024-03-06"))

    assert [path.relative_to(landing).as_posix() for path in files] == [
        "calls-2024-03-05.csv",
        "dt=2024-03-05/gateway.csv",
        "openai_usage_20240305.jsonl",
    ]


def test_hidden_partial_and_undated_files_are_never_picked_up(
    landing: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pipelines.orchestration"):
        files = landing_files_for_interval(landing, _utc("2024-03-01"), _utc("2024-04-01"))

    names = {path.name for path in files}
    assert names == {
        "calls-2024-03-04.csv",
        "calls-2024-03-05.csv",
        "openai_usage_20240305.jsonl",
        "gateway.csv",
        "calls-2024-03-06.csv",
    }
    assert "notes.csv" in caplog.text and "1 landing file(s) have no day" in caplog.text


def test_an_interval_takes_every_day_it_overlaps_and_no_other(landing: Path) -> None:
    files = landing_files_for_interval(landing, _utc("2024-03-04", 12), _utc("2024-03-05", 1))

    assert {file_day(path, landing) for path in files} == {
        dt.date(2024, 3, 4),
        dt.date(2024, 3, 5),
    }
    assert landing_files_for_interval(landing, _utc("2024-03-07"), _utc("2024-03-08")) == []


def test_an_interval_in_another_zone_is_read_in_utc(landing: Path) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    start = dt.datetime(2024, 3, 6, 9, tzinfo=tokyo)

    files = landing_files_for_interval(landing, start, start + dt.timedelta(days=1))

    assert [path.name for path in files] == ["calls-2024-03-06.csv"]


def test_an_empty_or_naive_interval_is_refused(landing: Path) -> None:
    with pytest.raises(ValueError, match="empty data interval"):
        landing_files_for_interval(landing, _utc("2024-03-05"), _utc("2024-03-05"))
    with pytest.raises(ValueError, match="no time zone"):
        landing_files_for_interval(
            landing, dt.datetime(2024, 3, 5), dt.datetime(2024, 3, 6)
        )


def test_a_missing_landing_folder_means_nothing_to_ingest(tmp_path: Path) -> None:
    assert landing_files_for_interval(tmp_path / "nowhere", _utc("2024-03-05"),
                                      _utc("2024-03-06")) == []


def test_file_day_skips_numbers_that_are_not_dates(tmp_path: Path) -> None:
    path = _touch(tmp_path / "batch-99999999-2024-02-29.csv")

    assert file_day(path, tmp_path) == dt.date(2024, 2, 29)


def test_a_manual_day_range_overrides_the_data_interval() -> None:
    start, end = ingest_interval(
        {"first_day": "2024-03-01", "last_day": "2024-03-03"},
        _utc("2024-03-10"),
        _utc("2024-03-11"),
    )

    assert (start, end) == (_utc("2024-03-01"), _utc("2024-03-04"))
    assert interval_days(start, end) == [
        dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)
    ]


def test_without_params_the_run_uses_its_data_interval() -> None:
    assert ingest_interval({}, _utc("2024-03-10"), _utc("2024-03-11")) == (
        _utc("2024-03-10"),
        _utc("2024-03-11"),
    )


@pytest.mark.parametrize(
    ("params", "start", "end", "message"),
    [
        ({"first_day": "2024-03-01"}, None, None, "both first_day and last_day"),
        ({"first_day": "2024-03-05", "last_day": "2024-03-01"}, None, None, "before"),
        ({"first_day": "2024-3-5", "last_day": "2024-03-06"}, None, None, "not a date"),
        ({}, None, None, "no data interval"),
        ({}, _utc("2024-03-10"), _utc("2024-03-10"), "no data interval"),
    ],
)
def test_a_run_without_a_real_interval_fails_with_a_hint(params, start, end, message) -> None:
    with pytest.raises(UsagecastError, match=message):
        ingest_interval(params, start, end)


def test_an_explicit_as_of_wins_then_the_asset_event_then_the_interval() -> None:
    extras = [{"as_of": "2024-03-05"}, {"as_of": "2024-03-07"}, {"version": "3"}]

    assert resolve_as_of("2024-01-02", extras, _utc("2024-03-10")) == "2024-01-02"
    assert resolve_as_of(None, extras, _utc("2024-03-10")) == "2024-03-07"
    assert resolve_as_of("", [], _utc("2024-03-10", 2)) == "2024-03-10"
    assert resolve_as_of(None, [{"version": "3"}]) is None


def test_event_extras_flattens_the_triggering_events() -> None:
    events = {
        "usage": [SimpleNamespace(extra={"as_of": "2024-03-05"})],
        "model": [SimpleNamespace(extra=None), SimpleNamespace(extra={"version": "2"})],
    }

    assert event_extras(events) == [{"as_of": "2024-03-05"}, {}, {"version": "2"}]
    assert event_extras(None) == []


def test_only_scheduled_and_backfill_runs_stand_for_their_interval() -> None:
    assert is_timed_run(SimpleNamespace(run_type="scheduled"))
    assert is_timed_run(SimpleNamespace(run_type=SimpleNamespace(value="backfill")))
    assert not is_timed_run(SimpleNamespace(run_type="manual"))
    assert not is_timed_run(None)


def test_shard_indexes_skip_empty_shards() -> None:
    assert shard_indexes({"shards": [["a", "b"], [], ["c"]]}) == [0, 2]


def test_expected_failures_fail_the_task_at_once_without_retries() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    quality = pytest.raises(AirflowFailException, match="validate: data-quality failure: bad")
    with quality, step("validate"):
        raise DataQualityError("bad tokens on 2024-03-05")
    no_champion = pytest.raises(AirflowFailException, match="plan_forecast: no champion yet")
    with no_champion, step("plan_forecast"):
        raise UsagecastError("no champion yet")
    bad_setting = pytest.raises(AirflowFailException, match="train: USAGECAST_CV_FOLDS")
    with bad_setting, step("train"):
        load_settings(env={"USAGECAST_CV_FOLDS": "zero"})


def test_unexpected_failures_are_left_to_the_retries() -> None:
    with pytest.raises(OSError, match="disk full"), step("ingest"):
        raise OSError("disk full")


def test_the_failure_callback_names_the_step_the_run_and_the_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = {
        "task_instance": SimpleNamespace(
            dag_id="usagecast_train", task_id="train_series_shard", map_index=2, try_number=3
        ),
        "run_id": "scheduled__2024-03-04T02:00:00+00:00",
        "exception": MemoryError("shard too large"),
    }

    with caplog.at_level(logging.ERROR, logger="pipelines.orchestration"):
        log_task_failure(context)

    assert (
        "usagecast step train_series_shard[2] of DAG usagecast_train failed "
        "(run scheduled__2024-03-04T02:00:00+00:00, try 3): MemoryError: shard too large"
    ) in caplog.text


@pytest.mark.slow
def test_ingesting_an_interval_twice_stores_its_real_calls_once(
    settings, replay_cvs_dir: Path
) -> None:
    """Three days of the real CVS replay log: a daily run, then the same run again."""
    import shutil

    from pipelines.lake import read_calls
    from pipelines.orchestration import run_ingest, run_validation

    settings.resolved_landing_dir.mkdir(parents=True)
    for day in ("2015-03-02", "2015-03-03", "2015-03-04"):
        shutil.copy(replay_cvs_dir / f"calls-{day}.csv", settings.resolved_landing_dir)
    expected_rows = len((replay_cvs_dir / "calls-2015-03-03.csv").read_text().splitlines()) - 1

    first = run_ingest(settings, _utc("2015-03-03"), _utc("2015-03-04"))
    again = run_ingest(settings, _utc("2015-03-03"), _utc("2015-03-04"))
    validated = run_validation(settings, [dt.date(2015, 3, 3)], now=_utc("2015-03-04"))

    assert [Path(path).name for path in first["files"]] == ["calls-2015-03-03.csv"]
    assert first["stored"] == expected_rows > 0
    assert first["days"] == ["2015-03-03"]
    assert again["stored"] == 0 and again["days"] == []
    assert read_calls(settings.lake_dir).num_rows == expected_rows
    assert validated["days"] == ["2015-03-03"] and validated["as_of"] == "2015-03-04"
