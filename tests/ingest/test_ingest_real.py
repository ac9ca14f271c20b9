"""Ingest on the real shared files: counts and token sums must equal the files' own."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import UTC, datetime

import pyarrow.compute as pc
import pytest

from pipelines import lake
from pipelines.ingest import ingest

AZURE_FILES = {
    "AzureLLMInferenceTrace_code.csv": 8_819,
    "AzureLLMInferenceTrace_conv.csv": 19_366,
}


def _file_sums(path):
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (
        len(rows),
        sum(int(row["ContextTokens"]) for row in rows),
        sum(int(row["GeneratedTokens"]) for row in rows),
    )


@pytest.mark.parametrize("name", sorted(AZURE_FILES))
def test_azure_trace_stores_every_call_with_the_files_token_sums(settings, real_data_dir, name):
    path = real_data_dir / "azure_llm_2023" / name
    rows, context_tokens, generated_tokens = _file_sums(path)

    result = ingest(settings, [path], provider="azure", model="gpt-4", team=name[24:28])

    calls = lake.read_calls(settings.lake_dir)
    assert rows == AZURE_FILES[name]
    assert result.stored == calls.num_rows == AZURE_FILES[name]
    assert result.rows_read == result.stored
    assert result.duplicates == result.quarantined == 0
    assert pc.sum(calls.column("input_tokens")).as_py() == context_tokens
    assert pc.sum(calls.column("output_tokens")).as_py() == generated_tokens
    hourly = lake.read_usage_hourly(settings.lake_dir)
    assert pc.sum(hourly.column("requests")).as_py() == rows
    assert pc.sum(hourly.column("input_tokens")).as_py() == context_tokens


def test_azure_timestamps_keep_sub_microsecond_files_order_in_utc(settings, real_data_dir):
    path = real_data_dir / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv"

    ingest(settings, [path], fmt="azure-trace", provider="azure", model="gpt-4", team="code")

    first = lake.read_calls(settings.lake_dir).sort_by("source_line").slice(0, 1).to_pylist()[0]
    assert first["timestamp"] == datetime(2023, 11, 16, 18, 17, 3, 979960, tzinfo=UTC)
    assert (first["input_tokens"], first["output_tokens"], first["source_line"]) == (4808, 10, 2)


@pytest.mark.slow
def test_cvs_replay_gives_every_call_and_hourly_sums_equal_to_the_input(settings, replay_cvs_dir):
    expected: dict[datetime, list[int]] = defaultdict(lambda: [0, 0, 0])
    for path in sorted(replay_cvs_dir.glob("*.csv")):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                at = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
                sums = expected[at.replace(minute=0, second=0, microsecond=0)]
                sums[0] += 1
                sums[1] += int(row["input_tokens"])
                sums[2] += int(row["output_tokens"])

    result = ingest(settings, [replay_cvs_dir])

    assert (result.rows_read, result.stored, result.duplicates, result.quarantined) == (
        5_701, 5_701, 0, 0)
    hourly = lake.read_usage_hourly(settings.lake_dir)
    assert set(hourly.column("series_id").to_pylist()) == {"anthropic/claude-opus-4/cvs"}
    stored = {
        row["hour"]: [row["requests"], row["input_tokens"], row["output_tokens"]]
        for row in hourly.to_pylist()
        if row["requests"]
    }
    assert stored == dict(expected)
    zero_hours = pc.sum(pc.equal(hourly.column("requests"), 0)).as_py()
    assert zero_hours > 0
    daily = lake.read_usage_daily(settings.lake_dir)
    assert pc.sum(daily.column("requests")).as_py() == 5_701
    assert set(daily.column("resolution").to_pylist()) == {"hour"}

    again = ingest(settings, [replay_cvs_dir])

    assert (again.files_read, again.files_already_ingested, again.stored) == (0, 56, 0)
    assert lake.read_calls(settings.lake_dir).num_rows == 5_701
