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


def test_window_sums_cover_every_run_of_days_and_stop_at_a_missing_day():
    fold = _fold(0, [11.0, 9.0, 14.0])
    gap = fold[fold["h"] != 2]  # day 2 had no actual: only day 1 is a complete window
    later = gap.assign(origin=gap["origin"] + pd.Timedelta(days=7))
    windows = window_sums(pd.concat([fold, later]))
    first = windows[windows["origin"] == fold["origin"].iloc[0]].set_index(["k", "start"])
    assert first.loc[(1, 3), "y"] == 14.0
    assert first.xs(2, level="k")["y"].tolist() == [20.0, 23.0]
    assert first.loc[(3, 1), ["y", "p50", "low1", "low2", "high1"]].tolist() == [
        34.0, 30.0, 3.0, 3.0, 3.0,
    ]
    assert len(first) == 6 and len(windows) == 7


def test_correlation_is_the_smallest_that_covers_the_two_day_sums_enough():
    # Each fold misses by m/2 on both days (daily half-width 1: every day is covered),
    # so its 2-day sum misses by m = 0.5, -1.2, 1.8, 1.9, -2.0. A 2-day half-width is
    # sqrt(2 + 2 rho): 1.789 at rho 0.60, 1.817 at 0.65, 1.897 at 0.80, 1.924 at 0.85.
    # 2-day coverage 2/5 below 0.65, 3/5 from 0.65; each length counts equally, so the
    # coverage is (1 + 2/5) / 2 = 0.7, then (1 + 3/5) / 2 = 0.8 from rho 0.65.
    misses = [0.5, -1.2, 1.8, 1.9, -2.0]
    cv = pd.concat([
        _fold(10 * index, [10.0 + miss / 2, 10.0 + miss / 2])
        for index, miss in enumerate(misses)
    ])
    learned = learn_month_interval(cv)
    assert learned["correlation"] == pytest.approx(0.65)
    assert learned["spread_factor"] == 1.0
    assert learned["cv_coverage"] == pytest.approx(0.8)
    assert (learned["windows"], learned["folds"]) == (15, 5)
    windows = window_sums(cv)
    assert sum_coverage(windows, 0.6, 1.0) == pytest.approx(0.7)
    assert sum_coverage(windows, 0.85, 1.0) == pytest.approx(0.9)


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


def test_one_fold_learns_nothing_and_two_do():
    # The two-day misses of the correlation test above, from one and then two origins.
    folds = [_fold(10 * index, [10.0 + miss / 2, 10.0 + miss / 2])
             for index, miss in enumerate([0.5, -1.2])]
    assert learn_month_interval(folds[0]) is None
    assert learn_month_interval(pd.concat(folds))["folds"] == 2
