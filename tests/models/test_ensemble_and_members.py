"""Ensemble weights come from CV errors; members behave on edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.history import UnitSeries
from features.lagged import DAILY, HOURLY
from models import naive, prophet_unit
from models.ensemble import learn_weights, learn_width_factor
from models.forecaster import combine


def _cv_rows(member: str, horizons, predictions, actuals) -> pd.DataFrame:
    return pd.DataFrame({
        "series_id": "s", "target": "requests", "origin": pd.Timestamp("2026-01-05"),
        "resolution": "hour", "member": member, "h": horizons, "p50": predictions,
        "p10": predictions, "p90": predictions, "y": actuals,
    })


def test_weights_follow_the_member_that_was_right_in_each_bucket():
    horizons = np.array([1, 2, 30, 31])
    actual = np.array([10.0, 20.0, 30.0, 40.0])
    # "lightgbm" is exact in the first bucket (h 1-6), "snaive" in the last (h 25-48).
    cv = pd.concat([
        _cv_rows("lightgbm", horizons, [10.0, 20.0, 0.0, 0.0], actual),
        _cv_rows("snaive", horizons, [0.0, 0.0, 30.0, 40.0], actual),
    ])
    weights = learn_weights(cv, "hour")
    assert weights["0"] == {"lightgbm": 1.0, "snaive": 0.0}
    assert weights["2"] == {"lightgbm": 0.0, "snaive": 1.0}
    assert "1" not in weights


def test_combine_mixes_quantiles_with_bucket_weights():
    members = pd.concat([
        _cv_rows("lightgbm", [1, 30], [10.0, 10.0], [0, 0]),
        _cv_rows("snaive", [1, 30], [20.0, 20.0], [0, 0]),
    ]).drop(columns=["y", "origin"]).assign(ds=lambda f: pd.Timestamp("2026-01-05")
                                            + pd.to_timedelta(f["h"], unit="h"))
    weights = {"0": {"lightgbm": 0.25, "snaive": 0.75}, "2": {"lightgbm": 1.0, "snaive": 0.0}}
    mixed = combine(members, "hour", weights).sort_values("h")
    assert mixed["p50"].tolist() == pytest.approx([17.5, 10.0])


def test_width_factor_widens_an_interval_that_covers_too_little():
    cv = pd.DataFrame({"y": np.linspace(0, 20, 101), "p50": 10.0, "p10": 6.0, "p90": 14.0})
    # 81 of the 101 evenly spread actuals lie in 10 +- 8: twice the half-width of 4.
    assert learn_width_factor(cv) == pytest.approx(2.0)


def test_seasonal_naive_repeats_last_week_and_never_goes_negative():
    values = np.arange(336, dtype=float)
    unit = UnitSeries("s", "requests", pd.Timestamp("2026-01-05"), "h", values)
    forecast = naive.forecast_unit(unit, 200, HOURLY)
    assert forecast["p50"].iloc[0] == 168.0
    assert forecast["p50"].iloc[167] == 335.0
    assert forecast["p50"].iloc[168] == 168.0
    assert (forecast["p10"] >= 0).all()
    assert forecast["ds"].iloc[0] == pd.Timestamp("2026-01-19")


@pytest.mark.parametrize("level", [0.0, 42.0])
def test_constant_daily_unit_is_forecast_as_itself_without_prophet(level):
    unit = UnitSeries("s", "requests", pd.Timestamp("2026-01-01"), "D", np.full(30, level))
    forecast = prophet_unit.forecast_unit(unit, 10, ("US",))
    assert (forecast[["p10", "p50", "p90"]] == level).all().all()
    assert forecast["ds"].iloc[0] == pd.Timestamp("2026-01-31")
    assert len(forecast) == 10 and DAILY.season == 7
