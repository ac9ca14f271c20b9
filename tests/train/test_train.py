"""A short real series trained end to end: registry aliases, promotion rule, served model."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from real_lake_for_train import build_lake

from pipelines import train
from pipelines.errors import UsagecastError
from pipelines.registry import load_champion, registry_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, real_data_dir):
    """Two real tweet series, 30 days, trained twice on the same data."""
    from pipelines.settings import load_settings

    data_dir = tmp_path_factory.mktemp("train") / "var"
    settings = load_settings(env={}, data_dir=data_dir, progress=False, cv_folds=2)
    as_of = build_lake(settings.lake_dir, real_data_dir, ("CVS", "KO"), days=30)
    plan = train.plan_training(settings, as_of=as_of, shard_count=2)
    shards = [train.train_shard(settings, plan, index) for index in range(2)]
    global_output = train.train_global(settings, plan)
    first = train.register_training(settings, plan, shards, global_output)
    second = train.register_training(settings, plan, shards, global_output)
    return settings, as_of, plan, shards, global_output, first, second


def test_plan_has_rolling_folds_before_as_of(trained):
    _settings, as_of, plan, *_ = trained
    hourly = [pd.Timestamp(o) for o in plan["folds"]["hour"]["origins"]]
    daily = [pd.Timestamp(o) for o in plan["folds"]["day"]["origins"]]
    end = pd.Timestamp(as_of)
    assert hourly == [end - pd.Timedelta(hours=48 + 168), end - pd.Timedelta(hours=48)]
    assert plan["folds"]["day"]["horizon"] == 7
    assert daily == [end - pd.Timedelta(days=14), end - pd.Timedelta(days=7)]
    assert len(plan["data_hash"]) == 64


def test_first_version_is_champion_and_second_stays_challenger(trained):
    from mlflow import MlflowClient

    settings, *_rest, first, second = trained
    assert (first["version"], first["alias"]) == ("1", "champion")
    assert (second["version"], second["alias"]) == ("2", "challenger")
    client = MlflowClient(settings.resolved_tracking_uri, settings.resolved_tracking_uri)
    name = settings.registered_model
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "2"
    tags = client.get_model_version(name, "2").tags
    # Same recipe on the same folds scores the same: no 2% improvement, no promotion.
    assert float(tags["champion_cv_wape"]) == pytest.approx(float(tags["cv_wape"]), abs=1e-6)
    assert tags["promoted"] == "false" and "stays challenger" in tags["decision"]
    assert 0 < first["cv_wape"] < 1


def test_served_champion_honours_the_predict_contract(trained):
    import mlflow.pyfunc

    settings, as_of, plan, *_ = trained
    history = pd.read_parquet(plan["history_path"])
    newcomer = pd.DataFrame({
        "series_id": "new/daily-only", "resolution": "day", "target": "requests",
        "ds": pd.date_range(pd.Timestamp(as_of) - pd.Timedelta(days=5), periods=5, freq="D"),
        "y": [10.0, 12.0, 11.0, 13.0, 12.0],
    })
    history = pd.concat([history, newcomer], ignore_index=True)
    model, version = load_champion(settings)
    assert version == "1"
    params = {"as_of": as_of.isoformat(), "horizon_days": 62, "horizon_hours": 48}
    result = model.predict(history, params=params)

    hourly = result[result["resolution"] == "hour"]
    daily = result[result["resolution"] == "day"]
    assert set(hourly["series_id"]) == {"test/CVS/team", "test/KO/team"}
    assert hourly.groupby(["series_id", "target"]).size().eq(48).all()
    assert daily.groupby(["series_id", "target"]).size().eq(62).all()
    assert daily["series_id"].nunique() == 3
    assert hourly["ds"].min() == pd.Timestamp(as_of)
    assert ((result["p10"] <= result["p50"]) & (result["p50"] <= result["p90"])).all()
    assert (result["p10"] >= 0).all()
    assert (result["model_version"] == "1").all()
    new_rows = result[result["series_id"] == "new/daily-only"]
    assert new_rows["low_history"].all() and (new_rows["history_days"] == 5).all()
    assert not result[result["series_id"] == "test/KO/team"]["low_history"].any()

    direct = mlflow.pyfunc.load_model(f"models:/{settings.registered_model}@champion")
    again = direct.predict(history, params=params)
    pd.testing.assert_frame_equal(
        result.drop(columns="model_version"), again.drop(columns="model_version"),
        check_exact=False, rtol=0.05,
    )


def test_the_month_interval_learned_in_cv_travels_with_the_registered_model(trained):
    import json

    import mlflow
    from mlflow import MlflowClient

    settings, _as_of, plan, *_rest, first, _second = trained
    learned = first["month_interval"]
    # Learned again from the CV rows logged with the version, by the same code.
    cv_file = mlflow.artifacts.download_artifacts(
        run_id=first["run_id"], artifact_path="cv/cv_forecasts.parquet",
        tracking_uri=settings.resolved_tracking_uri,
    )
    assert train.learn_month_interval_from(pd.read_parquet(cv_file)) == learned
    assert learned["folds"] == len(plan["folds"]["day"]["origins"]) == 2
    assert 0.0 <= learned["correlation"] <= 1.0 and learned["spread_factor"] >= 1.0

    client = MlflowClient(settings.resolved_tracking_uri, settings.resolved_tracking_uri)
    tags = client.get_model_version(settings.registered_model, "1").tags
    assert json.loads(tags["month_interval"]) == learned
    model, _version = load_champion(settings)
    assert model.unwrap_python_model().bundle["month_interval"] == learned


def test_forced_promotion_moves_champion_and_registry_shows_it(trained):
    settings, _as_of, plan, shards, global_output, *_ = trained
    forced = train.register_training(settings, plan, shards, global_output, force_promotion=True)
    assert (forced["version"], forced["alias"]) == ("3", "champion")
    state = {row["version"]: row for row in registry_state(settings)}
    assert "champion" in state["3"]["aliases"] and state["1"]["aliases"] == []
    assert state["3"]["decision"] == "promotion forced"


def test_same_recipe_refit_on_newer_data_replaces_the_champion(trained):
    settings, _as_of, plan, shards, global_output, *_ = trained
    champion_before = {
        row["version"] for row in registry_state(settings) if "champion" in row["aliases"]
    }
    start, end = plan["data_window"]
    newer_end = (dt.date.fromisoformat(end[:10]) + dt.timedelta(days=7)).isoformat()
    newer_plan = {**plan, "data_window": [start, newer_end]}

    refit = train.register_training(settings, newer_plan, shards, global_output)

    assert champion_before == {"3"}
    assert (refit["version"], refit["alias"]) == ("4", "champion")
    state = {row["version"]: row for row in registry_state(settings)}
    assert state["4"]["decision"] == (
        f"same recipe as champion 3, refit on data through {newer_end}: replaces it"
    )


def test_no_champion_and_empty_lake_are_clear_errors(settings):
    with pytest.raises(UsagecastError, match="no champion yet"):
        load_champion(settings)
    with pytest.raises(UsagecastError, match="usagecast ingest"):
        train.plan_training(settings, as_of=dt.date(2026, 1, 1))
