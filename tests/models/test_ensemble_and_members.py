"""Ensemble weights come from CV errors; members behave on edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.history import UnitSeries
from features.lagged import DAILY, HOURLY
from models import naive, prophet_unit
from models.ensemble import learn_weights, learn_width_factor
from models.forecaster import RecipeConfig, combine


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
    # No CV row in bucket 1 (h 7-24): no weights (``combine`` uses the naive alone).
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


def _unit_rows(series: str, origin: str, lightgbm: float, snaive: float, y: float):
    """Two hourly CV rows (h 1 and 2, bucket 0) per member for one unit and origin."""
    return pd.concat([
        _cv_rows("lightgbm", [1, 2], [lightgbm] * 2, [y] * 2),
        _cv_rows("snaive", [1, 2], [snaive] * 2, [y] * 2),
    ]).assign(series_id=series, origin=pd.Timestamp(origin))


WEEKS = ("2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26")


def test_a_unit_keeps_its_own_weights_only_when_they_win_every_held_out_fold():
    # a: lightgbm exact, snaive 100% high; b: snaive exact, lightgbm 50% low;
    # c (one origin only): lightgbm exact, snaive 20% high.
    # Pooled mean WAPE over a, b (and c): lightgbm wins with or without any one origin.
    # b's own weights (all snaive), learned on three origins, are exact on the fourth,
    # where the pooled ones miss by 50 per row: b keeps its own. a's own weights are the
    # pooled ones (no strict win) and c has too few origins: both use the pooled ones.
    cv = pd.concat([_unit_rows("a", day, 100.0, 200.0, 100.0) for day in WEEKS]
                   + [_unit_rows("b", day, 50.0, 100.0, 100.0) for day in WEEKS]
                   + [_unit_rows("c", WEEKS[-1], 100.0, 120.0, 100.0)])
    weights = learn_weights(cv, "hour")
    assert weights["0"] == {"lightgbm": 1.0, "snaive": 0.0}
    assert weights["units"] == {"b|requests": {"0": {"lightgbm": 0.0, "snaive": 1.0}}}


def test_a_unit_whose_best_member_flips_between_folds_keeps_the_pooled_weights():
    # d: lightgbm exact at two origins, snaive at the other two (each 60% off at the
    # others). Held out, its own weights lose where the pooled ones (all lightgbm, set by
    # a) are exact and tie elsewhere, so d keeps the pooled weights.
    cv = pd.concat([_unit_rows("a", day, 100.0, 200.0, 100.0) for day in WEEKS]
                   + [_unit_rows("d", day, 100.0, 160.0, 100.0) for day in WEEKS[::2]]
                   + [_unit_rows("d", day, 160.0, 100.0, 100.0) for day in WEEKS[1::2]])
    weights = learn_weights(cv, "hour")
    assert weights["0"] == {"lightgbm": 1.0, "snaive": 0.0}
    assert weights["units"] == {}


def test_too_few_folds_leave_every_unit_on_the_pooled_weights():
    # b would win with four origins (above); with three it has too little evidence.
    cv = pd.concat([_unit_rows("a", day, 100.0, 200.0, 100.0) for day in WEEKS[:3]]
                   + [_unit_rows("b", day, 50.0, 100.0, 100.0) for day in WEEKS[:3]])
    assert learn_weights(cv, "hour")["units"] == {}


def test_combine_uses_a_units_own_weights_and_the_pooled_ones_for_an_unseen_unit():
    members = pd.concat([
        _cv_rows("lightgbm", [1], [10.0], [0]), _cv_rows("snaive", [1], [20.0], [0]),
    ])
    members = pd.concat([members, members.assign(series_id="new")])
    members = members.drop(columns=["y", "origin"]).assign(ds=pd.Timestamp("2026-01-05"))
    weights = {"0": {"lightgbm": 0.25, "snaive": 0.75},
               "units": {"s|requests": {"0": {"lightgbm": 1.0, "snaive": 0.0}}}}
    mixed = combine(members, "hour", weights).set_index("series_id")["p50"]
    assert mixed["s"] == pytest.approx(10.0)
    assert mixed["new"] == pytest.approx(17.5)


def test_seasonal_median_takes_the_median_of_the_same_slot_over_four_weeks():
    # Daily values 0..34 with a spike of 1000 one week before the first forecast day.
    values = np.arange(35, dtype=float)
    values[28] = 1000.0
    unit = UnitSeries("s", "requests", pd.Timestamp("2026-01-01"), "D", values)
    forecast = naive.median_forecast_unit(unit, 8, DAILY)
    # Day 35's slot values: 28 (spiked to 1000), 21, 14, 7 -> median (14 + 21) / 2.
    assert forecast["p50"].iloc[0] == pytest.approx(17.5)
    # Day 36: 29, 22, 15, 8 -> 18.5; day 42 (h 8) reuses day 35's slots from the weeks
    # before it: 28 (1000), 21, 14, 7 again, as the seasonal naive does.
    assert forecast["p50"].iloc[1] == pytest.approx(18.5)
    assert forecast["p50"].iloc[7] == pytest.approx(17.5)
    assert forecast["p90"].iloc[0] == pytest.approx(np.quantile([7, 14, 21, 1000], 0.9))
    assert naive.forecast_unit(unit, 1, DAILY)["p50"].iloc[0] == 1000.0


def _daily_history(days: int = 35) -> pd.DataFrame:
    ds = pd.date_range("2026-01-01", periods=days, freq="D")
    return pd.DataFrame({"series_id": "s", "resolution": "day", "ds": ds,
                         "target": "requests", "y": np.arange(days, dtype=float)})


def test_cv_runs_every_member_of_the_recipe_and_only_those():
    from models.forecaster import RecipeConfig
    from pipelines.train import cross_validate_members

    folds = {"day": {"horizon": 7, "origins": ["2026-01-29T00:00:00"]}}
    history = _daily_history()
    full = cross_validate_members(history, folds, RecipeConfig(models=("lightgbm",)))
    assert sorted(full["member"].unique()) == ["lightgbm", "smedian", "snaive"]

    asked = cross_validate_members(history, folds, RecipeConfig(models=("lightgbm",)),
                                   only=("snaive", "prophet"))
    assert sorted(asked["member"].unique()) == ["snaive"]
    # Origin 2026-01-29 is day 28: the seasonal naive repeats days 21..27.
    assert asked.sort_values("ds")["p50"].tolist() == [21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0]


def test_the_in_memory_recipe_weighs_every_member_the_registered_one_does():
    from models.forecaster import RecipeConfig
    from pipelines.train import fit_recipe

    folds = {"day": {"horizon": 7, "origins": ["2026-01-29T00:00:00"]}}
    bundle = fit_recipe(_daily_history(), pd.Timestamp("2026-02-05"), RecipeConfig(models=()),
                        folds)
    assert sorted(bundle["weights"]["day"]["0"]) == ["smedian", "snaive"]


def _hourly_history(values: np.ndarray, start: str = "2026-01-05") -> pd.DataFrame:
    ds = pd.date_range(start, periods=len(values), freq="h")
    return pd.DataFrame({"series_id": "s", "resolution": "hour", "ds": ds,
                         "target": "requests", "y": values})


def test_the_hourly_seasonal_median_summed_per_day_ignores_bursts_of_a_few_hours():
    from models.forecaster import SMEDIAN_HOURS, member_forecasts, units_at

    # Four weeks of hours at 1 call each; in week 3 hours 0-5, in week 4 hours 6-11 of
    # the weekday being forecast carry 100 calls.
    values = np.ones(28 * 24)
    values[14 * 24:14 * 24 + 6] = 100.0
    values[21 * 24 + 6:21 * 24 + 12] = 100.0
    history = _hourly_history(values)
    as_of = pd.Timestamp("2026-02-02")
    frame = member_forecasts(
        units_at(history, "day", as_of), "day", 8, RecipeConfig(models=()), None,
        hourly_units=units_at(history, "hour", as_of),
    ).set_index(["member", "h"])["p50"]
    # Every hour's median over the four weeks is 1: 24 a day. The daily median of the
    # four day totals (24, 24, 618, 618) is 321; day 8 reuses day 1's weeks.
    assert frame[(SMEDIAN_HOURS, 1)] == pytest.approx(24.0)
    assert frame[(SMEDIAN_HOURS, 2)] == pytest.approx(24.0)
    assert frame[("smedian", 1)] == pytest.approx(321.0)
    assert frame[(SMEDIAN_HOURS, 8)] == pytest.approx(24.0)
    assert frame.xs(SMEDIAN_HOURS).index.tolist() == list(range(1, 9))


def test_the_hourly_lightgbm_member_sums_its_hours_for_the_first_week_only():
    from features.lagged import HOURLY
    from models import gbm
    from models.forecaster import (
        DAY_HOURS,
        LIGHTGBM_HOURS,
        fit_global,
        member_forecasts,
        units_at,
    )

    hours = np.arange(28 * 24)
    values = 10.0 + 5.0 * np.sin(2 * np.pi * hours / 24) + (hours % 168 >= 120) * 3.0
    history = _hourly_history(values)
    as_of = pd.Timestamp("2026-02-02")
    config = RecipeConfig(models=("lightgbm",))
    model = fit_global(history, DAY_HOURS, as_of, config)
    assert model.resolution == DAY_HOURS and model.max_horizon == 168
    hourly_units = units_at(history, "hour", as_of)
    frame = member_forecasts(units_at(history, "day", as_of), "day", 10, config, None,
                             hourly_units=hourly_units, hours_model=model)
    rows = frame[frame["member"] == LIGHTGBM_HOURS].sort_values("h")
    # Days 1-7 only, each the sum of the model's 24 hourly forecasts of that day.
    assert rows["h"].tolist() == list(range(1, 8))
    assert rows["ds"].tolist() == list(pd.date_range(as_of, periods=7, freq="D"))
    hourly = gbm.predict(model, hourly_units, HOURLY, 168, config.countries)
    assert rows["p50"].to_numpy() == pytest.approx(
        hourly["p50"].to_numpy().reshape(7, 24).sum(axis=1)
    )
    # Without the hourly units (a daily-only unit) neither member built on hours exists.
    alone = member_forecasts(units_at(history, "day", as_of), "day", 10, config, None)
    assert set(alone["member"]) == {"snaive", "smedian"}


def test_grid_step_keeps_the_simplex_within_the_candidate_bound():
    from models.ensemble import MAX_CANDIDATES, _simplex, grid_step

    # 4 members: 1,771 points at 0.05; 5: 10,626 at 0.05, so 0.1 (1,001); 6: 3,003 at
    # 0.1; 7: 8,008 at 0.1, so 0.125 (3,003).
    assert [grid_step(count) for count in (2, 4, 5, 6, 7)] == [0.05, 0.05, 0.1, 0.1, 0.125]
    assert len(_simplex(6, grid_step(6))) == 3003 == MAX_CANDIDATES


def _set_rows(series: str, forecasts: dict, y: float) -> pd.DataFrame:
    return pd.concat([
        _cv_rows(member, [1, 2], [value] * 2, [y] * 2).assign(series_id=series,
                                                                resolution="day")
        for member, value in forecasts.items()
    ])


def test_units_without_the_members_on_hours_get_weights_learned_for_the_members_they_have():
    from models.forecaster import MEMBER_SETS_KEY, SMEDIAN_HOURS

    # h1, h2 (hourly data): smedian_hours exact, lightgbm 40% high, snaive 100% high.
    # d (daily only): lightgbm 50% low, snaive 100% high.
    hourly = {"snaive": 200.0, "lightgbm": 140.0, SMEDIAN_HOURS: 100.0}
    cv = pd.concat([_set_rows("h1", hourly, 100.0), _set_rows("h2", hourly, 100.0),
                    _set_rows("d", {"snaive": 200.0, "lightgbm": 50.0}, 100.0)])
    weights = learn_weights(cv, "day")
    # The set most units have, pooled over h1 and h2: smedian_hours alone is exact.
    assert weights["0"] == {"lightgbm": 0.0, SMEDIAN_HOURS: 1.0, "snaive": 0.0}
    # {lightgbm, snaive}, pooled over all three units: with lightgbm's share w the WAPEs
    # are 1 - 0.6 w (h1, h2) and |1 - 1.5 w| (d); their mean is least at w = 2/3, which
    # on the grid is 0.7 (mean 0.403; 0.65 gives 0.415).
    assert weights[MEMBER_SETS_KEY] == {
        "lightgbm+snaive": {"0": {"lightgbm": 0.7, "snaive": 0.3}}
    }
    # Served: d (and any daily-only unit) mixes 0.7 x 50 + 0.3 x 200 = 95, not an
    # equal mix of its two members (the pooled weights have none on them).
    served = cv.drop(columns=["y", "origin"]).assign(ds=pd.Timestamp("2026-01-05"))
    mixed = combine(served[served["h"] == 1], "day", weights).set_index("series_id")["p50"]
    assert mixed["d"] == pytest.approx(95.0)
    assert mixed["h1"] == pytest.approx(100.0)
