"""The month interval learned from CV k-day sums: cases whose answer is computed by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from models.ensemble import learn_month_interval, sum_coverage, window_sums


def _fold(origin_day: int, actuals, p50=10.0, spread=1.0) -> pd.DataFrame:
    """One unit's daily ensemble CV rows from one origin: constant quantiles, given actuals."""
    origin = pd.Timestamp("2026-01-01") + pd.Timedelta(days=origin_day)
    days = len(actuals)
    return pd.DataFrame({
        "member": "ensemble", "resolution": "day", "series_id": "s", "target": "requests",
        "origin": origin, "h": range(1, days + 1),
        "ds": pd.date_range(origin, periods=days, freq="D"),
        "p10": p50 - spread, "p50": p50, "p90": p50 + spread, "y": actuals,
    })


def test_window_sums_add_from_the_origin_and_stop_at_a_missing_day():
    fold = _fold(0, [11.0, 9.0, 14.0])
    gap = fold[fold["h"] != 2]  # day 2 had no actual: only the 1-day window is complete
    windows = window_sums(pd.concat([fold, gap.assign(origin=gap["origin"] + pd.Timedelta(7))]))
    first = windows[windows["origin"] == fold["origin"].iloc[0]]
    assert first["k"].tolist() == [1, 2, 3]
    assert first["y"].tolist() == [11.0, 20.0, 34.0]
    assert first["p50"].tolist() == [10.0, 20.0, 30.0]
    assert first["low1"].tolist() == [1.0, 2.0, 3.0]
    assert first["low2"].tolist() == [1.0, 2.0, 3.0]
    assert len(windows) == 4


def test_correlation_is_the_smallest_that_covers_four_in_five_two_day_sums():
    # Day 1 is always exact; the two-day sums miss p50 by 0.5, -1.2, 1.8, 2.5, -3.0.
    # A 2-day half-width is sqrt(2 + 2 rho) with daily half-width 1: 1.414 at rho 0,
    # 1.789 at 0.60, 1.817 at 0.65, 2 at 1. Below 0.65 the sums of 0.5 and 1.2 and all
    # five 1-day sums are covered (7/10); from 0.65 the 1.8 too (8/10).
    misses = [0.5, -1.2, 1.8, 2.5, -3.0]
    cv = pd.concat([_fold(10 * index, [10.0, 10.0 + miss]) for index, miss in enumerate(misses)])
    learned = learn_month_interval(cv)
    assert learned["correlation"] == pytest.approx(0.65)
    assert learned["spread_factor"] == 1.0
    assert learned["cv_coverage"] == pytest.approx(0.8)
    assert (learned["windows"], learned["folds"]) == (10, 5)
    assert sum_coverage(window_sums(cv), 0.6, 1.0) == pytest.approx(0.7)


def test_spread_factor_widens_when_even_full_correlation_covers_too_little():
    # 1-day windows only: the correlation cannot change a single day's interval (+-2).
    # Misses 0, 1, 2.5, 3, 5 need a factor of 1.5 to cover four of the five.
    misses = [0.0, 1.0, 2.5, 3.0, 5.0]
    cv = pd.concat([
        _fold(10 * index, [10.0 + miss], spread=2.0) for index, miss in enumerate(misses)
    ])
    learned = learn_month_interval(cv)
    assert (learned["correlation"], learned["spread_factor"]) == (1.0, pytest.approx(1.5))
    assert learned["cv_coverage"] == pytest.approx(0.8)


def test_no_daily_cv_rows_learns_nothing():
    assert learn_month_interval(_fold(0, []).iloc[0:0]) is None
