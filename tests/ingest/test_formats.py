"""Provider exports and other formats (synthetic files shaped like the documented fields)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow.compute as pc

from pipelines import lake
from pipelines.ingest import ingest
from pipelines.settings import REPO_ROOT


def test_anthropic_daily_buckets_stay_daily_with_cache_tokens_in_input(settings, write):
    report = {"data": [{
        "starting_at": "2025-06-01T00:00:00Z", "ending_at": "2025-06-02T00:00:00Z",
        "results": [{"uncached_input_tokens": 100, "cache_read_input_tokens": 50,
                     "cache_creation": {"ephemeral_5m_input_tokens": 20,
                                        "ephemeral_1h_input_tokens": 5},
                     "output_tokens": 30, "model": "claude-sonnet-4-5",
                     "workspace_id": "wrk_a"}]}], "has_more": False}
    path = write("anthropic.json", json.dumps(report))

    result = ingest(settings, [path])

    assert (result.stored, result.buckets_stored) == (1, 1)
    bucket = lake.read_usage_buckets(settings.lake_dir).to_pylist()[0]
    assert (bucket["input_tokens"], bucket["cached_input_tokens"],
            bucket["cache_write_tokens"], bucket["requests"]) == (175, 50, 25, None)
    assert lake.read_calls(settings.lake_dir).num_rows == 0
    assert lake.read_usage_hourly(settings.lake_dir).num_rows == 0
    daily = lake.read_usage_daily(settings.lake_dir).to_pylist()
    assert [(row["series_id"], row["day"], row["resolution"], row["input_tokens"],
             row["errors"]) for row in daily] == [
        ("anthropic/claude-sonnet-4-5/wrk_a", date(2025, 6, 1), "day", 175, None)]


def test_openai_hourly_export_csv_fills_usage_hourly(settings, write):
    header = ("start_time,end_time,start_time_iso,end_time_iso,project_id,num_model_requests,"
              "user_id,api_key_id,model,batch,service_tier,input_tokens,output_tokens,"
              "input_cached_tokens")
    path = write("openai-usage.csv", "\n".join([
        header,
        "1748736000,1748739600,2025-06-01T00:00:00+00:00,2025-06-01T01:00:00+00:00,proj_a,"
        "12.0,,,gpt-4.1,FALSE,default,1200.0,300.0,200.0",
        "1748743200,1748746800,2025-06-01T02:00:00+00:00,2025-06-01T03:00:00+00:00,proj_a,"
        "3.0,,,gpt-4.1,FALSE,default,100.0,30.0,0.0",
    ]) + "\n")

    result = ingest(settings, [path])

    assert result.buckets_stored == 2
    hourly = lake.read_usage_hourly(settings.lake_dir).to_pylist()
    assert [(row["hour"].hour, row["requests"], row["input_tokens"], row["cached_input_tokens"])
            for row in hourly] == [(0, 12, 1200, 200), (1, 0, 0, 0), (2, 3, 100, 0)]
    assert {row["series_id"] for row in hourly} == {"openai/gpt-4.1/proj_a"}


def test_litellm_spend_logs_map_status_and_provider(settings, write):
    path = write("spend.csv", "\n".join([
        "request_id,call_type,spend,total_tokens,prompt_tokens,completion_tokens,startTime,"
        "endTime,model,custom_llm_provider,team_id,status",
        "r1,acompletion,0.01,130,100,30,2025-06-01 10:00:00,2025-06-01 10:00:02,gpt-4.1,"
        "openai,team-a,success",
        "r2,acompletion,0,0,,,2025-06-01 10:05:00,2025-06-01 10:05:01,gpt-4.1,openai,,failure",
    ]) + "\n")

    result = ingest(settings, [path])

    assert (result.stored, result.calls_without_usage) == (2, 1)
    calls = lake.read_calls(settings.lake_dir).sort_by("source_line").to_pylist()
    assert [(c["team"], c["status_code"], c["input_tokens"]) for c in calls] == [
        ("team-a", 200, 100), ("no-team", 500, None)]


def test_burstgpt_relative_seconds_start_from_the_given_time(settings, write):
    path = write("burst.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,"
                 "Log Type\n5,ChatGPT,472,18,490,Conversation log\n"
                 "3600.5,GPT-4,1000,0,1000,API log\n")

    result = ingest(settings, [path], provider="openai", start="2023-05-01T00:00:00")

    assert result.stored == 2
    calls = lake.read_calls(settings.lake_dir).sort_by("source_line").to_pylist()
    assert [(c["timestamp"], c["model"], c["team"]) for c in calls] == [
        (datetime(2023, 5, 1, 0, 0, 5, tzinfo=UTC), "ChatGPT", "Conversation log"),
        (datetime(2023, 5, 1, 1, 0, 0, 500000, tzinfo=UTC), "GPT-4", "API log"),
    ]


def test_mapping_file_reads_an_unknown_log(settings, write):
    path = write("proxy.csv", "id,created,vendor,model_name,project,prompt,completion,"
                 "cache_hit_tokens,outcome\n"
                 "p1,2025-06-01T10:00:00Z,mistral,large,,40,10,8,ok\n"
                 "p2,2025-06-01T10:30:00Z,mistral,large,ops,60,20,0,error\n")

    result = ingest(settings, [path])

    assert result.stored == 2
    hourly = lake.read_usage_hourly(settings.lake_dir).sort_by("series_id").to_pylist()
    assert [(h["series_id"], h["requests"], h["errors"], h["cached_input_tokens"])
            for h in hourly] == [("mistral/large/ops", 1, 1, 0),
                                 ("mistral/large/unassigned", 1, 0, 8)]
    assert (REPO_ROOT / "config" / "mappings" / "example-gateway.yaml").is_file()


def test_parquet_with_naive_timestamps_reads_in_source_tz(settings, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "calls.parquet"
    pq.write_table(pa.table({
        "request_id": ["a"], "timestamp": pa.array([datetime(2025, 1, 1, 9)], pa.timestamp("ms")),
        "provider": ["openai"], "model": ["gpt-4.1"], "team": ["crm"],
        "input_tokens": [5], "output_tokens": [1],
    }), path)

    ingest(settings, [path], source_tz="Europe/Berlin")

    calls = lake.read_calls(settings.lake_dir)
    assert calls.column("timestamp").to_pylist() == [datetime(2025, 1, 1, 8, tzinfo=UTC)]
    assert pc.sum(calls.column("input_tokens")).as_py() == 5
