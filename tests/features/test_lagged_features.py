"""Leak tests: features at an origin depend only on the unit's own past."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.history import unit_series
from features.lagged import DAILY, HOURLY, feature_columns, prediction_rows, unit_rows


@pytest.fixture(scope="module")
def tweet_history(real_data_dir) -> pd.DataFrame:
    """Two real tweet series (hourly sums of the 5-minute counts), as a history frame."""
    frames = []
    for name in ("CVS", "KO"):
        raw = pd.read_csv(real_data_dir / "nab_tweets" / f"twitter_volume_{name}.csv",
                          parse_dates=["timestamp"])
        hourly = raw.set_index("timestamp")["value"].resample("h").sum()
        hourly = hourly[hourly.index >= hourly.index[0].ceil("D")].iloc[: 24 * 28]
        frames.append(pd.DataFrame({
            "series_id": name, "resolution": "hour", "ds": hourly.index, "target": "requests",
            "y": hourly.to_numpy(dtype=float),
        }))
    return pd.concat(frames, ignore_index=True)


def _features_at(history, origin, spec, series="CVS"):
    units = [u for u in unit_series(history, spec.resolution, origin) if u.series_id == series]
    rows = prediction_rows(units, spec, 48 if spec is HOURLY else 14, ("US",))
    return rows[feature_columns(spec) + ["scale"]]


@pytest.mark.parametrize("spec", [HOURLY, DAILY], ids=["hourly", "daily"])
def test_features_ignore_the_future_and_other_series(tweet_history, spec):
    origin = pd.Timestamp(tweet_history["ds"].min()) + pd.Timedelta(days=21)
    clean = _features_at(tweet_history, origin, spec)

    poisoned = tweet_history.copy()
    future = poisoned["ds"] >= origin
    other = poisoned["series_id"] != "CVS"
    rng = np.random.default_rng(0)
    poisoned.loc[future | other, "y"] = rng.uniform(1e6, 1e7, int((future | other).sum()))
    # The poisoned frame keeps its future rows: unit_series must cut them off itself.
    dirty = _features_at(poisoned, origin, spec)

    pd.testing.assert_frame_equal(clean.reset_index(drop=True), dirty.reset_index(drop=True))


def test_training_rows_use_only_values_before_their_origin(tweet_history):
    unit = unit_series(tweet_history, "hour", tweet_history["ds"].max() + pd.Timedelta(hours=1))[0]
    origins = np.array([400])
    before = unit_rows(unit, origins, np.arange(1, 49), HOURLY, ("US",))
    changed = unit.__class__(unit.series_id, unit.target, unit.start, unit.freq,
                             np.where(np.arange(len(unit.values)) >= 400, 9e9, unit.values))
    after = unit_rows(changed, origins, np.arange(1, 49), HOURLY, ("US",))
    columns = feature_columns(HOURLY) + ["scale"]
    pd.testing.assert_frame_equal(before[columns], after[columns])
    assert (after["label"] > 1e6).all()


def test_prediction_lags_are_never_blank_or_zero(tweet_history):
    end = tweet_history["ds"].max() + pd.Timedelta(hours=1)
    units = [u for u in unit_series(tweet_history, "hour", end) if u.series_id == "KO"]
    rows = prediction_rows(units, HOURLY, 48, ("US",))
    lags = ["short_lag", "short_mean", "season_lag", "season_mean", "mean_24", "mean_168"]
    assert len(rows) == 48
    assert rows[lags].notna().all().all()
    # KO tweets every hour in these weeks: a zero lag could only be a fill-in.
    assert (rows[["short_mean", "season_mean", "mean_168"]] > 0).all().all()
    # Horizon 30 reaches a target 30 h ahead: its same-hour lag is 24*2 hours back.
    values = units[0].values
    row = rows[rows["h"] == 30].iloc[0]
    assert row["short_lag"] * row["scale"] == pytest.approx(values[len(values) + 29 - 48])


def test_a_new_series_gets_filled_lags_from_its_few_days(tweet_history):
    short = tweet_history[tweet_history["series_id"] == "KO"].iloc[:60]
    end = short["ds"].max() + pd.Timedelta(hours=1)
    rows = prediction_rows(unit_series(short, "hour", end), HOURLY, 48, ("US",))
    assert rows[feature_columns(HOURLY)].notna().all().all()
