"""All-or-nothing publishing: failed validation and crashes leave no partial batch."""

from __future__ import annotations

import os
from datetime import date

import pytest

from pipelines import ingest as ingest_module
from pipelines import lake
from pipelines.errors import DataQualityError
from pipelines.ingest import STAGING, ingest, recover

HEADER = "request_id,timestamp,provider,model,team,input_tokens,output_tokens,status_code\n"


def test_batch_failing_validation_leaves_the_lake_untouched(settings, write):
    good = write("good.csv", HEADER + "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n")
    ingest(settings, [good])
    before = lake.read_usage_hourly(settings.lake_dir)
    future = write("future.csv", HEADER + "b,2015-03-01T11:00:00Z,openai,gpt-4.1,crm,1,1,200\n"
                   "c,2099-01-01T00:00:00Z,openai,gpt-4.1,crm,1,1,200\n")

    with pytest.raises(DataQualityError):
        ingest(settings, [future])

    assert lake.partition_days(settings.lake_dir, "calls") == [date(2015, 3, 1)]
    assert lake.read_usage_hourly(settings.lake_dir).equals(before)
    assert lake.read_calls(settings.lake_dir).column("request_id").to_pylist() == ["a"]
    assert not any((settings.lake_dir / STAGING).iterdir())
    assert ingest(settings, [good]).files_already_ingested == 1


class PowerCut(BaseException):
    """Stands for the process dying mid-publish."""


def test_crash_after_commit_is_completed_by_the_next_run(settings, write, monkeypatch):
    path = write("two-days.csv", HEADER + "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n"
                 "b,2015-03-02T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n")
    real_publish = ingest_module._publish

    def publish_first_move_then_die(lake_dir, journal):
        first = {**journal, "moves": journal["moves"][:1]}
        source, target = first["moves"][0]
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
        raise PowerCut

    monkeypatch.setattr(ingest_module, "_publish", publish_first_move_then_die)
    with pytest.raises(PowerCut):
        ingest(settings, [path])
    monkeypatch.setattr(ingest_module, "_publish", real_publish)

    assert lake.partition_days(settings.lake_dir, "usage_hourly") == []
    assert recover(settings.lake_dir) == 1
    assert lake.partition_days(settings.lake_dir, "usage_hourly") == [
        date(2015, 3, 1), date(2015, 3, 2)]
    assert lake.read_calls(settings.lake_dir).num_rows == 2
    assert ingest(settings, [path]).files_already_ingested == 1


def test_batch_interrupted_before_commit_is_discarded(settings, write):
    leftover = settings.lake_dir / STAGING / "20250101T000000-dead" / "final" / "calls"
    leftover.mkdir(parents=True)
    (leftover / "part.parquet").write_bytes(b"PAR1")

    assert recover(settings.lake_dir) == 0

    assert not (settings.lake_dir / STAGING / "20250101T000000-dead").exists()
    assert lake.partition_days(settings.lake_dir, "calls") == []


def test_every_staged_partition_is_synced_before_the_journal(settings, write, monkeypatch):
    path = write("two-days.csv", HEADER + "a,2015-03-01T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n"
                 "b,2015-03-02T10:00:00Z,openai,gpt-4.1,crm,10,1,200\n")
    synced: list[str] = []
    real_sync, real_journal = lake.sync_files, ingest_module._write_json_atomically

    def sync_and_record(root):
        synced.extend(str(found) for found in root.rglob("*") if found.is_file())
        return real_sync(root)

    def journal_after_sync(target, document):
        if target.name == ingest_module.JOURNAL:
            assert sorted(source for source, _ in document["moves"]) == sorted(synced)
        real_journal(target, document)

    monkeypatch.setattr(lake, "sync_files", sync_and_record)
    monkeypatch.setattr(ingest_module, "_write_json_atomically", journal_after_sync)
    ingest(settings, [path])

    # calls, coverage, usage_hourly and usage_daily for each of the two days
    assert len(synced) == 8
