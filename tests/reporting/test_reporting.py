"""Reporting tables: per-as-of replacement, accuracy scoring and the README's FinOps queries.

Rows are hand-made (synthetic, labelled) so every query result is known in advance;
each test runs on the embedded SQLite file and on the real PostgreSQL server.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines import reporting
from pipelines.settings import REPO_ROOT

S1, S2 = "openai/gpt-4.1/crm", "anthropic/claude-opus-4/cvs"
GRAIN = {S1: ("openai", "gpt-4.1", "crm"), S2: ("anthropic", "claude-opus-4", "cvs")}
A, B = dt.date(2025, 6, 10), dt.date(2025, 6, 12)


def named_queries() -> dict[str, str]:
    text = (REPO_ROOT / "docs" / "queries.sql").read_text()
    queries = {}
    for block in text.split(";"):
        match = re.search(r"--\s*name:\s*(\S+)", block)
        if match:
            lines = [line for line in block.splitlines() if not line.strip().startswith("--")]
            queries[match.group(1)] = "\n".join(lines).strip()
    return queries


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, settings):
    if request.param == "sqlite":
        url = settings.resolved_report_db_url
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    else:
        url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for view in reporting.VIEWS:
            connection.execute(sa.text(f"DROP VIEW IF EXISTS {view}"))
    reporting.metadata.drop_all(engine)
    yield engine
    engine.dispose()


def frames_for(as_of: dt.date, run_id: str, actual_days: dict[str, list[float]]) -> dict:
    run = {"as_of_date": as_of, "run_id": run_id, "model_version": "3"}
    usage = []
    for series_id, requests in actual_days.items():
        provider, model, team = GRAIN[series_id]
        for offset, count in enumerate(requests):
            usage.append(
                {
                    "series_id": series_id,
                    "day": as_of - dt.timedelta(days=len(requests) - offset),
                    "provider": provider,
                    "model": model,
                    "team": team,
                    "resolution": "hour",
                    "requests": count,
                    "errors": 0,
                    "input_tokens": 1_000_000,
                    "output_tokens": 0,
                    "cached_input_tokens": 0,
                    "cache_write_tokens": 0,
                    "cost": 2.0,
                    "currency": "USD",
                    "price_effective_date": dt.date(2025, 4, 14),
                }
            )
    forecast = [
        {
            "series_id": series_id,
            "target": "requests",
            "day": as_of + dt.timedelta(days=step),
            "provider": GRAIN[series_id][0],
            "model": GRAIN[series_id][1],
            "team": GRAIN[series_id][2],
            "p10": 0.8 * level,
            "p50": level,
            "p90": 1.2 * level,
            "history_days": 30,
            "low_history": False,
        }
        for series_id, level in ((S1, 100.0), (S2, 10.0))
        for step in range(9)
    ]
    hourly = [
        {
            "series_id": S1,
            "target": "requests",
            "hour": dt.datetime(2025, 6, 1) + dt.timedelta(hours=step),
            "provider": "openai",
            "model": "gpt-4.1",
            "team": "crm",
            "p10": 3.0,
            "p50": 4.0,
            "p90": 5.0,
        }
        for step in range(48)
    ]
    month = {
        "month_start_utc": dt.datetime(2025, 6, 1),
        "month_end_utc": dt.datetime(2025, 7, 1),
        "business_tz": "UTC",
        "currency": "USD",
        "unpriced_models": "",
    }
    costs = [
        {
            "level": "total",
            "name": "all",
            "month": dt.date(2025, 6, 1),
            "month_index": 0,
            "actual_cost_to_date": 4.0,
            "estimate_p10": 50.0,
            "estimate_p50": 60.0,
            "estimate_p90": 75.0,
            **month,
        },
        {
            "level": "total",
            "name": "all",
            "month": dt.date(2025, 7, 1),
            "month_index": 1,
            "actual_cost_to_date": 0.0,
            "estimate_p10": 55.0,
            "estimate_p50": 70.0,
            "estimate_p90": 90.0,
            **month,
        },
        {
            "level": "team",
            "name": "crm",
            "team": "crm",
            "month": dt.date(2025, 6, 1),
            "month_index": 0,
            "actual_cost_to_date": 4.0,
            "estimate_p10": 40.0,
            "estimate_p50": 50.0,
            "estimate_p90": 62.0,
            "budget": 45.0,
            "prob_over_budget": 0.7,
            **month,
        },
        {
            "level": "team",
            "name": "cvs",
            "team": "cvs",
            "month": dt.date(2025, 6, 1),
            "month_index": 0,
            "actual_cost_to_date": 0.0,
            "estimate_p10": 8.0,
            "estimate_p50": 10.0,
            "estimate_p90": 13.0,
            "budget": 100.0,
            "prob_over_budget": 0.0,
            **month,
        },
        {
            "level": "series",
            "name": S1,
            "series_id": S1,
            "team": "crm",
            "month": dt.date(2025, 7, 1),
            "month_index": 1,
            "actual_cost_to_date": 0.0,
            "estimate_p10": 45.0,
            "estimate_p50": 58.0,
            "estimate_p90": 75.0,
            **month,
        },
    ]
    whatif = [
        {
            "series_id": S1,
            "month": dt.date(2025, 6, 1),
            "alternative_model": "openai/gpt-4.1-mini",
            "month_index": 0,
            "team": "crm",
            "current_model": "openai/gpt-4.1",
            "current_cost": 50.0,
            "alternative_cost": 10.0,
            "difference": -40.0,
            "currency": "USD",
        },
    ]
    runs = [
        {
            "step": "forecast",
            "data_start": dt.date(2025, 6, 1),
            "data_end": as_of,
            "series_count": 2,
            "forecast_daily_rows": len(forecast),
            "forecast_hourly_rows": len(hourly),
            "cost_rows": len(costs),
            "unpriced_models": "",
            "started_at": dt.datetime(2025, 6, 12, 1),
            "finished_at": dt.datetime(2025, 6, 12, 2),
        }
    ]
    return {
        name: pd.DataFrame(rows).assign(**run)
        for name, rows in (
            ("usage_daily", usage),
            ("forecast_daily", forecast),
            ("forecast_hourly", hourly),
            ("cost_estimate_monthly", costs),
            ("cost_whatif_monthly", whatif),
            ("pipeline_runs", runs),
        )
    }


def publish(engine, as_of, run_id, actual_days):
    frames = frames_for(as_of, run_id, actual_days)
    return reporting.publish(
        engine,
        as_of,
        frames,
        actual_window=(as_of - dt.timedelta(days=2), as_of),
        accuracy_actuals=frames["usage_daily"],
    )


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every table's rows without the columns that name the run."""
    out = {}
    with engine.connect() as connection:
        for table in reporting.metadata.sorted_tables:
            columns = [
                c for c in table.columns if c.name not in ("run_id", "started_at", "finished_at")
            ]
            rows = connection.execute(sa.select(*columns).order_by(*columns)).all()
            out[table.name] = [tuple(row) for row in rows]
    return out


def test_three_reruns_of_an_as_of_date_leave_the_same_rows(engine):
    publish(engine, A, "a-1", {S1: [100.0, 100.0], S2: [10.0, 10.0]})
    publish(engine, B, "b-1", {S1: [90.0, 130.0], S2: [10.0, 10.0]})
    first = snapshot(engine)

    publish(engine, B, "b-2", {S1: [90.0, 130.0], S2: [10.0, 10.0]})
    publish(engine, B, "b-3", {S1: [90.0, 130.0], S2: [10.0, 10.0]})

    assert snapshot(engine) == first
    counts = {name: len(rows) for name, rows in first.items()}
    assert counts["forecast_daily"] == 2 * 2 * 9
    assert counts["usage_daily"] == 2 * 4
    assert counts["forecast_accuracy"] == 2 * 2
    assert counts["pipeline_runs"] == 2
    with engine.connect() as connection:
        run_ids = (
            connection.execute(
                sa.text("SELECT DISTINCT run_id FROM forecast_daily ORDER BY run_id")
            )
            .scalars()
            .all()
        )
    assert run_ids == ["a-1", "b-3"]


def test_the_readme_queries_return_the_hand_computed_answers(engine):
    publish(engine, A, "a-1", {S1: [100.0, 100.0], S2: [10.0, 10.0]})
    publish(engine, B, "b-1", {S1: [90.0, 130.0], S2: [10.0, 10.0]})
    queries = named_queries()

    with engine.connect() as connection:
        results = {
            name: [tuple(row) for row in connection.execute(sa.text(query)).all()]
            for name, query in queries.items()
        }

    assert len(queries) == 9
    assert [row[3] for row in results["month_estimate_total"]] == [60.0, 70.0]
    assert [row[1] for row in results["month_estimate_by_team"]] == ["crm", "cvs"]
    assert [(row[1], row[5]) for row in results["teams_likely_over_budget"]] == [("crm", 0.7)]
    assert results["top_series_next_month"] == [(S1, "crm", 45.0, 58.0, 75.0)]
    assert [row[5] for row in results["cheaper_alternatives"]] == [-40.0]
    assert [(row[0], row[2]) for row in results["requests_next_7_days"]] == [
        (S1, pytest.approx(700.0)),
        (S2, pytest.approx(70.0)),
    ]
    spend = sorted(
        (row[0], float(row[2]), int(row[3])) for row in results["actual_spend_by_model_this_month"]
    )
    assert spend == [("anthropic", 8.0, 40), ("openai", 8.0, 420)]
    accuracy = {row[0]: row for row in results["forecast_accuracy_by_series"]}
    # S1 forecast 100 a day as of June 10; actual 90 and 130: WAPE 40 / 220, one of two inside.
    assert accuracy[S1][2] == 2
    assert float(accuracy[S1][3]) == pytest.approx(40.0 / 220.0)
    assert float(accuracy[S1][4]) == pytest.approx(0.5)
    assert float(accuracy[S2][3]) == pytest.approx(0.0)
    assert [str(row[0]) for row in results["recent_runs"]] == ["2025-06-12", "2025-06-10"]


def test_the_summary_shows_the_latest_totals_and_the_team_budget(settings):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(settings.resolved_report_db_url)
    publish(engine, B, "b-1", {S1: [90.0, 130.0], S2: [10.0, 10.0]})
    engine.dispose()

    summary = reporting.render_summary(settings)

    assert "as of 2025-06-12" in summary
    assert "requests" in summary and "770" in summary  # 7 days x (100 + 10)
    total_june = next(line for line in summary.splitlines() if "2025-06  total" in line)
    assert total_june.split()[-3:] == ["50.00", "60.00", "75.00"]
    assert "45 (P(over) 70%)" in summary


def test_every_query_in_the_readme_is_one_the_tests_run():
    readme = (REPO_ROOT / "README.md").read_text()
    readme_queries = [
        block.strip().rstrip(";") for block in re.findall(r"```sql\n(.*?)```", readme, re.S)
    ]

    tested = {" ".join(query.split()) for query in named_queries().values()}

    assert len(readme_queries) == 3
    assert all(" ".join(query.split()) in tested for query in readme_queries)
