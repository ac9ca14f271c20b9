"""Where the inner CV folds fall: daily folds are twice as many as hourly ones, if they fit."""

from __future__ import annotations

import pandas as pd

from models.cv import plan_folds


def _hourly_history(days: int) -> pd.DataFrame:
    ds = pd.date_range("2026-01-01", periods=24 * days, freq="h")
    return pd.DataFrame({"series_id": "s", "resolution": "hour", "ds": ds,
                         "target": "requests", "y": 1.0})


def test_sixty_days_give_three_hourly_and_six_weekly_daily_folds():
    as_of = pd.Timestamp("2026-03-02")  # 60 days after the first one
    plan = plan_folds(_hourly_history(60), as_of, 3)
    assert plan["hour"]["origins"] == [
        (as_of - pd.Timedelta(hours=48 + 168 * k)).isoformat() for k in (2, 1, 0)
    ]
    # 60 days < 3 * 35 + 56: 7-day folds; the oldest of six leaves 18 days of training.
    assert plan["day"]["horizon"] == 7
    assert plan["day"]["origins"] == [
        (as_of - pd.Timedelta(days=7 * k)).isoformat() for k in (6, 5, 4, 3, 2, 1)
    ]


def test_daily_folds_stop_where_two_weeks_of_training_no_longer_fit():
    as_of = pd.Timestamp("2026-01-31")  # 30 days: origins 7 and 14 days back only
    plan = plan_folds(_hourly_history(30), as_of, 3)
    assert plan["day"]["origins"] == [
        (as_of - pd.Timedelta(days=k)).isoformat() for k in (14, 7)
    ]


def _daily_origins(days: int) -> list[str]:
    """The daily fold origins planned for a history of ``days`` days from 2026-01-01."""
    as_of = pd.Timestamp("2026-01-01") + pd.Timedelta(days=days)
    plan = plan_folds(_hourly_history(days), as_of, 3)
    assert plan["day"]["horizon"] == 7
    return plan["day"]["origins"]


def test_ten_and_twelve_days_get_one_partial_fold_one_week_after_the_first_day():
    # 2026-01-08 leaves 7 days of training (Jan 1-7); it is scored on Jan 8-10 (10 days)
    # or Jan 8-12 (12 days), fewer than its 7-day horizon.
    assert _daily_origins(10) == ["2026-01-08T00:00:00"]
    assert _daily_origins(12) == ["2026-01-08T00:00:00"]


def test_fourteen_and_twenty_days_get_one_full_week_fold_before_the_as_of_day():
    # 14 days: as_of - 7 = Jan 8, 7 days of training; 20 days: as_of - 7 = Jan 14, 13
    # days of training; as_of - 14 = Jan 7 would leave 6 days, under one season.
    assert _daily_origins(14) == ["2026-01-08T00:00:00"]
    assert _daily_origins(20) == ["2026-01-14T00:00:00"]


def test_short_folds_are_only_used_where_no_two_week_fold_fits():
    # 21 days: as_of - 7 = Jan 15 leaves the regular 14 days; the short fold at Jan 8
    # (7 days of training, unlike the real origin's 21) is not added.
    assert _daily_origins(21) == ["2026-01-15T00:00:00"]


def test_no_daily_fold_without_one_season_of_training_and_one_day_to_score():
    assert _daily_origins(7) == []
    assert _daily_origins(8) == ["2026-01-08T00:00:00"]


def _long_daily_plan(days: int, folds: int = 3) -> tuple[pd.Timestamp, dict]:
    ds = pd.date_range("2026-01-01", periods=days, freq="D")
    history = pd.DataFrame({"series_id": "s", "resolution": "day", "ds": ds,
                            "target": "requests", "y": 1.0})
    as_of = ds[-1] + pd.Timedelta(days=1)
    return as_of, plan_folds(history, as_of, folds)["day"]


def test_two_years_of_history_add_folds_one_and_two_years_back_on_the_same_weekday():
    as_of, plan = _long_daily_plan(800)
    recent = [as_of - pd.Timedelta(days=35 * k) for k in (6, 5, 4, 3, 2, 1)]
    year_ago = [as_of - pd.Timedelta(days=364 * k) for k in (2, 1)]
    assert plan["horizon"] == 35
    assert plan["origins"] == sorted(o.isoformat() for o in recent + year_ago)
    assert all(o.day_of_week == as_of.day_of_week for o in year_ago)


def test_a_year_ago_fold_needs_two_weeks_of_training_before_it():
    # 740 days: two years back (728 days) leaves 12 days of training, one year back 376.
    as_of, plan = _long_daily_plan(740)
    assert (as_of - pd.Timedelta(days=728)).isoformat() not in plan["origins"]
    assert (as_of - pd.Timedelta(days=364)).isoformat() in plan["origins"]
    assert len(plan["origins"]) == 7


def test_a_year_ago_fold_that_would_overlap_the_recent_folds_is_left_out():
    # Six folds setting: 12 recent folds reach 420 days back, past the 364-day origin,
    # whose 35 days would be scored twice; the one two years back is kept.
    as_of, plan = _long_daily_plan(900, folds=6)
    assert (as_of - pd.Timedelta(days=364)).isoformat() not in plan["origins"]
    assert (as_of - pd.Timedelta(days=728)).isoformat() in plan["origins"]
    assert len(plan["origins"]) == 13
