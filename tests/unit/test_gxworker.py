"""Validation runs in a worker process: its log records, its death and its fallback."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from pipelines import gxworker, lake
from pipelines.ingest import ingest

HEADER = "request_id,timestamp,provider,model,team,input_tokens,output_tokens,status_code\n"


def _calls(count: int, without_output: int) -> str:
    """``count`` synthetic calls on 2015-03-01, the first ``without_output`` without usage."""
    rows = [
        f"r{index},2015-03-01T10:{index:02d}:00Z,openai,gpt-4.1,crm,10,"
        f"{'' if index < without_output else 2},200\n"
        for index in range(count)
    ]
    return HEADER + "".join(rows)


@pytest.fixture
def write(tmp_path):
    def _write(name: str, text: str):
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write


@pytest.fixture
def fresh_worker():
    """Each test starts and ends without a worker, so none leaks into the next."""
    gxworker.shutdown()
    yield
    gxworker.shutdown()


def test_a_warning_raised_in_the_worker_reaches_the_callers_log(
    settings, write, caplog, fresh_worker
):
    path = write("calls-2015-03-01.csv", _calls(20, without_output=2))

    with caplog.at_level(logging.WARNING, logger="pipelines.validate"):
        result = ingest(settings, [path])

    assert isinstance(gxworker.executor(), ProcessPoolExecutor)
    assert (result.stored, result.calls_without_usage) == (20, 2)
    [record] = [r for r in caplog.records if "column 'output_tokens'" in r.getMessage()]
    assert (record.name, record.levelno) == ("pipelines.validate", logging.WARNING)
    assert "data quality warning" in record.getMessage()
    assert "2 of 20 rows unexpected" in record.getMessage()


def test_a_worker_that_died_is_replaced_by_the_next_ingest(settings, write, fresh_worker):
    ingest(settings, [write("calls-2015-03-01.csv", _calls(5, without_output=0))])
    [pid] = gxworker.executor()._processes
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):  # the executor notices on its own thread
        if gxworker.executor()._broken:
            break
        time.sleep(0.05)

    result = ingest(settings, [write("calls-2015-03-02.csv", _calls(5, without_output=0)
                                     .replace("2015-03-01", "2015-03-02"))])

    assert result.stored == 5
    assert [pid] != list(gxworker.executor()._processes)
    assert lake.partition_days(settings.lake_dir, "calls")[-1].isoformat() == "2015-03-02"


def test_a_daemonic_caller_validates_on_a_thread(settings, write, fresh_worker, monkeypatch):
    monkeypatch.setitem(multiprocessing.current_process()._config, "daemon", True)

    result = ingest(settings, [write("calls-2015-03-01.csv", _calls(5, without_output=0))])

    assert isinstance(gxworker.executor(), ThreadPoolExecutor)
    assert result.stored == 5
    assert lake.read_calls(settings.lake_dir).num_rows == 5
