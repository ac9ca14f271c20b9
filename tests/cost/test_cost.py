"""Monthly estimates: business-zone month boundaries, intervals, budgets and what-if."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from pipelines.cost import (
    MonthRule,
    actual_intervals,
    business_months,
    combine_spread,
    forecast_horizon_days,
    forecast_intervals,
    month_rule,
    monthly_estimates,
    prob_over,
    whatif_estimates,
)
from pipelines.prices import load_prices
from pipelines.settings import REPO_ROOT

PRICES = load_prices(REPO_ROOT / "config" / "prices.csv")


def hourly_row(series_id, provider, model, team, hour, input_tokens, output_tokens=0):
    return {
        "series_id": series_id,
        "provider": provider,
        "model": model,
        "team": team,
        "hour": pd.Timestamp(hour, tz="UTC"),
        "requests": 1,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": 0,
        "cache_write_tokens": 0,
    }


EMPTY_DAILY = pd.DataFrame(columns=["series_id", "day", "resolution"])


def test_a_call_at_2330_on_the_last_local_day_belongs_to_that_month_west_of_utc():
    # 2025-01-31 23:30 in Los Angeles (UTC-8) is 2025-02-01 07:30 UTC.
    hourly = pd.DataFrame(
        [
            hourly_row(
                "openai/gpt-4.1/crm", "openai", "gpt-4.1", "crm", "2025-02-01 07:00", 1_000_000
            )
        ]
    )
    intervals = actual_intervals(hourly, EMPTY_DAILY, PRICES)

    west = monthly_estimates(
        intervals, business_months(dt.date(2025, 1, 31), "America/Los_Angeles"), 0.5
    )
    utc = monthly_estimates(intervals, business_months(dt.date(2025, 1, 31), "UTC"), 0.5)

    def total(estimates, month):
        row = estimates[(estimates["level"] == "total") & (estimates["month"] == month)]
        return row["actual_cost_to_date"].iloc[0]

    assert total(west, dt.date(2025, 1, 1)) == pytest.approx(2.0)
    assert total(west, dt.date(2025, 2, 1)) == pytest.approx(0.0)
    assert total(utc, dt.date(2025, 1, 1)) == pytest.approx(0.0)
    assert total(utc, dt.date(2025, 2, 1)) == pytest.approx(2.0)


def test_months_are_half_open_utc_windows_of_local_midnights():
    january, february = business_months(dt.date(2025, 1, 10), "America/Los_Angeles")

    assert (january.start_utc, january.end_utc) == (
        dt.datetime(2025, 1, 1, 8),
        dt.datetime(2025, 2, 1, 8),
    )
    assert february.start_utc == january.end_utc
    assert february.end_utc == dt.datetime(2025, 3, 1, 8)


def test_the_forecast_horizon_reaches_the_end_of_next_month():
    assert forecast_horizon_days(dt.date(2025, 1, 1), "UTC") == 59
    assert forecast_horizon_days(dt.date(2025, 7, 1), "UTC") == 62
    assert forecast_horizon_days(dt.date(2025, 1, 20), "America/Los_Angeles") == 41


def test_equicorrelated_spreads_lie_between_independent_and_comonotone():
    assert combine_spread([1.0, 1.0, 1.0, 1.0], 0.0) == pytest.approx(2.0)
    assert combine_spread([1.0, 1.0, 1.0, 1.0], 1.0) == pytest.approx(4.0)
    assert combine_spread([1.0, 1.0], 0.5) == pytest.approx(math.sqrt(3.0))


def test_budget_probability_matches_the_interval_quantiles():
    assert prob_over(100.0, 80.0, 100.0, 130.0) == pytest.approx(0.5)
    assert prob_over(130.0, 80.0, 100.0, 130.0) == pytest.approx(0.1)
    assert prob_over(80.0, 80.0, 100.0, 130.0) == pytest.approx(0.9)


def forecast_rows(series_id, days, p10, p50, p90, target="input_tokens"):
    return [
        {
            "series_id": series_id,
            "resolution": "day",
            "target": target,
            "ds": pd.Timestamp(day),
            "p10": p10,
            "p50": p50,
            "p90": p90,
        }
        for day in days
    ]


def test_the_month_estimate_adds_actual_to_date_and_the_forecast_rest_with_an_interval():
    series = pd.DataFrame(
        [{"series_id": "s", "provider": "openai", "model": "gpt-4.1", "team": "crm"}]
    )
    hourly = pd.DataFrame(
        [hourly_row("s", "openai", "gpt-4.1", "crm", "2025-06-29 10:00", 3_000_000)]
    )
    forecast = pd.DataFrame(
        forecast_rows(
            "s", ["2025-06-29", "2025-06-30", "2025-07-01"], 500_000, 1_000_000, 2_000_000
        )
    )
    # The as-of date is 2025-06-29, so the actual hour of that day is not used.
    intervals = pd.concat(
        [
            actual_intervals(hourly.iloc[0:0], EMPTY_DAILY, PRICES),
            actual_intervals(
                pd.DataFrame(
                    [hourly_row("s", "openai", "gpt-4.1", "crm", "2025-06-02 10:00", 3_000_000)]
                ),
                EMPTY_DAILY,
                PRICES,
            ),
            forecast_intervals(forecast, series, {}, PRICES),
        ],
        ignore_index=True,
    )

    estimates = monthly_estimates(
        intervals,
        business_months(dt.date(2025, 6, 29), "UTC"),
        correlation=0.5,
        budgets=pd.DataFrame([{"team": "crm", "month": None, "budget": 10.0}]),
    )
    june = estimates[(estimates["level"] == "series") & (estimates["month_index"] == 0)].iloc[0]
    team_june = estimates[(estimates["level"] == "team") & (estimates["month_index"] == 0)].iloc[0]

    # Actual: 3M input x $2. Rest: 2 days of 1M (p10 0.5M, p90 2M) input = $2/day at p50.
    assert june["actual_cost_to_date"] == pytest.approx(6.0)
    assert june["forecast_rest_p50"] == pytest.approx(4.0)
    assert june["forecast_rest_p10"] == pytest.approx(4.0 - math.sqrt(3.0))
    assert june["forecast_rest_p90"] == pytest.approx(4.0 + math.sqrt(12.0))
    assert june["estimate_p50"] == pytest.approx(10.0)
    assert team_june["budget"] == 10.0
    assert team_june["prob_over_budget"] == pytest.approx(0.5)
    july = estimates[(estimates["level"] == "total") & (estimates["month_index"] == 1)].iloc[0]
    assert july["estimate_p50"] == pytest.approx(2.0)


def test_an_unpriced_series_is_named_and_left_out_of_the_totals():
    hourly = pd.DataFrame(
        [
            hourly_row("a", "openai", "gpt-4.1", "crm", "2025-06-02 10:00", 1_000_000),
            hourly_row("b", "acme", "secret", "crm", "2025-06-02 10:00", 1_000_000),
        ]
    )
    estimates = monthly_estimates(
        actual_intervals(hourly, EMPTY_DAILY, PRICES),
        business_months(dt.date(2025, 6, 20), "UTC"),
        correlation=0.5,
    )
    june = estimates[estimates["month_index"] == 0].set_index("name")

    assert june.loc["b", "estimate_p50"] is None or pd.isna(june.loc["b", "estimate_p50"])
    assert june.loc["b", "unpriced_models"] == "acme/secret"
    assert june.loc["all", "estimate_p50"] == pytest.approx(2.0)
    assert june.loc["all", "unpriced_models"] == "acme/secret"


def test_what_if_prices_the_same_usage_on_an_alternative_model():
    hourly = pd.DataFrame(
        [hourly_row("a", "openai", "gpt-4.1", "crm", "2025-06-02 10:00", 1_000_000, 1_000_000)]
    )
    whatif = whatif_estimates(
        actual_intervals(hourly, EMPTY_DAILY, PRICES),
        business_months(dt.date(2025, 6, 20), "UTC")[:1],
        ("openai/gpt-4.1-mini", "acme/unknown"),
        PRICES,
    ).set_index("alternative_model")

    assert whatif.loc["openai/gpt-4.1-mini", "current_cost"] == pytest.approx(10.0)
    assert whatif.loc["openai/gpt-4.1-mini", "alternative_cost"] == pytest.approx(2.0)
    assert whatif.loc["openai/gpt-4.1-mini", "difference"] == pytest.approx(-8.0)
    assert pd.isna(whatif.loc["acme/unknown", "alternative_cost"])


def test_a_learned_month_rule_replaces_the_setting_and_scales_each_series_spread():
    series = pd.DataFrame(
        [{"series_id": "s", "provider": "openai", "model": "gpt-4.1", "team": "crm"}]
    )
    forecast = pd.DataFrame(
        forecast_rows("s", ["2025-06-29", "2025-06-30"], 500_000, 1_000_000, 2_000_000)
    )
    intervals = forecast_intervals(forecast, series, {}, PRICES)
    rule = month_rule({"correlation": 1.0, "spread_factor": 1.5, "cv_coverage": 0.8}, 0.75)
    assert rule == MonthRule(1.0, 1.5, "model CV")

    estimates = monthly_estimates(
        intervals,
        business_months(dt.date(2025, 6, 29), "UTC")[:1],
        correlation=rule.correlation,
        spread_factor=rule.spread_factor,
    )
    june = estimates.set_index("level")
    # Each day: $2 at p50, $1 below it and $2 above it; fully correlated: 2 and 4, x 1.5.
    assert june.loc["series", "forecast_rest_p10"] == pytest.approx(4.0 - 3.0)
    assert june.loc["series", "forecast_rest_p90"] == pytest.approx(4.0 + 6.0)
    assert june.loc["total", "estimate_p90"] == pytest.approx(10.0)


def test_a_model_without_a_learned_month_rule_falls_back_to_the_setting():
    assert month_rule(None, 0.75) == MonthRule(0.75, 1.0, "setting")
    assert month_rule({}, 0.3) == MonthRule(0.3, 1.0, "setting")
