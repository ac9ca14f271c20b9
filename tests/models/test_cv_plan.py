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
