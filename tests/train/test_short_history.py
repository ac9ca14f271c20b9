"""Short histories: scored on a partial inner fold, or the seasonal naive alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.cv import plan_folds
from models.ensemble import fallback_weights
from models.forecaster import RecipeConfig, combine, member_forecasts, units_at
from pipelines.train import cross_validate_members, evaluate

BASELINES_ONLY = RecipeConfig(models=())
"""Seasonal naive and median only: no fitted member, so every number is by hand."""


def _daily_history(values) -> pd.DataFrame:
    ds = pd.date_range("2026-01-01", periods=len(values), freq="D")
    return pd.DataFrame({"series_id": "s", "resolution": "day", "ds": ds,
                         "target": "requests", "y": np.asarray(values, dtype=float)})


def _evaluate(history: pd.DataFrame):
    as_of = history["ds"].max() + pd.Timedelta(days=1)
    folds = {"day": plan_folds(history, as_of, 3)["day"]}
    member_cv = cross_validate_members(history, folds, BASELINES_ONLY)
    return evaluate(history, {"as_of": as_of.isoformat(), "folds": folds}, member_cv)


def test_twelve_days_are_scored_on_the_five_days_after_a_one_week_origin():
    values = [10, 20, 30, 40, 50, 60, 70, 15, 25, 35, 45, 55]
    cv, weights, _widths = _evaluate(_daily_history(values))
    ensemble = cv[cv["member"] == "ensemble"].sort_values("h")
    # Origin Jan 8 (7 days of training): scored on Jan 8-12 only, h 1-5 of 7.
    assert ensemble["h"].tolist() == [1, 2, 3, 4, 5]
    assert ensemble["y"].tolist() == [15, 25, 35, 45, 55]
    # One season before the fold: the seasonal median is the naive (last week
    # repeated), so the two tie and the tie goes to the naive. Only h 1-7 is scored:
    # buckets 8-14 and 15-35 get no weights (the naive alone in ``combine``).
    assert ensemble["p50"].tolist() == pytest.approx([10, 20, 30, 40, 50])
    assert weights["day"] == {"0": {"smedian": 0.0, "snaive": 1.0}, "units": {}}


def test_a_week_of_history_falls_back_to_the_seasonal_naive_alone():
    history = _daily_history([5, 1, 9, 2, 7, 3, 8])
    cv, weights, widths = _evaluate(history)
    assert cv.empty and widths == {}
    assert weights == {"day": {"0": {"snaive": 1.0}, "1": {"snaive": 1.0},
                               "2": {"snaive": 1.0}, "units": {}}}
    assert weights["day"] == fallback_weights("day")
    # Served through those weights, day 8 and day 15 repeat day 1, whatever the median.
    as_of = pd.Timestamp("2026-01-08")
    members = member_forecasts(units_at(history, "day", as_of), "day", 14, BASELINES_ONLY, None)
    mixed = combine(members, "day", weights["day"]).sort_values("ds")
    assert mixed["p50"].tolist() == pytest.approx([5, 1, 9, 2, 7, 3, 8] * 2)


def test_a_bucket_without_weights_is_the_naive_not_an_equal_mix():
    history = _daily_history([5, 1, 9, 2, 7, 3, 8, 6, 2, 10, 3, 8, 4, 9])
    members = member_forecasts(
        units_at(history, "day", pd.Timestamp("2026-01-15")), "day", 1, BASELINES_ONLY, None
    )
    # Naive: day 8's value 6; median of the two seasons (5, 6): 5.5.
    assert members.set_index("member")["p50"].to_dict() == pytest.approx(
        {"snaive": 6.0, "smedian": 5.5}
    )
    assert combine(members, "day", {})["p50"].tolist() == pytest.approx([6.0])
