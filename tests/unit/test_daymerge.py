"""The on-disk merge of a day (DuckDB) keeps, orders and counts exactly as the in-memory one.

Input: the real-count CVS replay plus a synthetic late file (labelled as such) that repeats
stored request ids, repeats a call without an id, and has a broken row in the middle.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.compute as pc
import pytest

from pipelines import lake
from pipelines.ingest import ingest
from pipelines.settings import load_settings

TABLES = ("calls", "usage_hourly", "usage_daily", lake.COVERAGE)
FIRST_DAY = dt.date(2015, 2, 26)


def _late_file(replay_dir: Path, target: Path) -> Path:
    """Three stored calls again, an id-less call twice, a broken row, one new call."""
    lines = (replay_dir / "calls-2015-02-26.csv").read_text().splitlines()
    late = [
        lines[0],
        *lines[1:4],
        ",2015-02-26T23:10:00.000Z,anthropic,claude-opus-4,cvs,50,5,200",
        "broken,row",
        ",2015-02-26T23:10:00.000Z,anthropic,claude-opus-4,cvs,50,5,200",
        "late-new,2015-02-26T22:00:00.000Z,anthropic,claude-opus-4,cvs,7,,200",
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(late) + "\n")
    return target


def _run(data_dir: Path, replay_dir: Path, late: Path):
    settings = load_settings(env={}, data_dir=data_dir, progress=False)
    first = ingest(settings, [replay_dir])
    second = ingest(settings, [late])
    return settings, first, second


def test_on_disk_merge_matches_in_memory_merge(
    tmp_path: Path, replay_cvs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    late = _late_file(replay_cvs_dir, tmp_path / "late" / "late-2015-02-26.csv")
    in_memory, first_a, second_a = _run(tmp_path / "a", replay_cvs_dir, late)
    monkeypatch.setattr("pipelines.daymerge.IN_MEMORY_ROWS", 0)
    on_disk, first_b, second_b = _run(tmp_path / "b", replay_cvs_dir, late)

    assert (first_b.stored, first_b.duplicates) == (first_a.stored, first_a.duplicates) == (
        5701, 0)
    counts = [(r.rows_read, r.stored, r.duplicates, r.quarantined, r.calls_without_usage)
              for r in (second_a, second_b)]
    assert counts == [(7, 2, 4, 1, 1)] * 2
    for table in TABLES:
        for day in lake.partition_days(in_memory.lake_dir, table):
            expected = lake.read_partition(in_memory.lake_dir, table, day)
            assert lake.read_partition(on_disk.lake_dir, table, day).equals(expected), (
                table, day)
    assert lake.partition_days(on_disk.lake_dir, "calls") == lake.partition_days(
        in_memory.lake_dir, "calls")

    calls = lake.read_partition(on_disk.lake_dir, "calls", FIRST_DAY)
    timestamps = calls.column("timestamp")
    assert pc.all(pc.greater_equal(timestamps.slice(1), timestamps.slice(0, len(timestamps) - 1)))
    late_rows = calls.filter(pc.equal(calls.column("source_file"), str(late)))
    assert sorted(late_rows.column("source_line").to_pylist()) == [5, 8]
