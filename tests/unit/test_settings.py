from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.settings import SettingsError, load_settings


def test_defaults_put_everything_under_one_data_folder():
    settings = load_settings(env={})

    assert settings.data_dir == Path("var")
    assert settings.lake_dir == Path("var/lake")
    assert settings.resolved_report_db_url.startswith("sqlite:///")
    assert settings.resolved_report_db_url.endswith("/var/reports.sqlite")
    assert settings.grain == ("provider", "model", "team")


def test_environment_then_flags(tmp_path):
    env = {"USAGECAST_DATA_DIR": str(tmp_path), "USAGECAST_GRAIN": "team, model"}

    from_env = load_settings(env=env)
    from_flag = load_settings(env=env, data_dir=tmp_path / "flag", grain=None)

    assert from_env.data_dir == tmp_path
    assert from_env.grain == ("team", "model")
    assert from_flag.data_dir == tmp_path / "flag"
    assert from_flag.grain == ("team", "model")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("USAGECAST_GRAIN", "provider,region", "USAGECAST_GRAIN"),
        ("USAGECAST_BUSINESS_TZ", "Mars/Olympus", "USAGECAST_BUSINESS_TZ"),
        ("USAGECAST_CV_FOLDS", "three", "USAGECAST_CV_FOLDS"),
        ("USAGECAST_PROMOTION_MARGIN", "1.5", "USAGECAST_PROMOTION_MARGIN"),
        ("USAGECAST_REPORT_DB_URL", "reports.db", "USAGECAST_REPORT_DB_URL"),
        ("USAGECAST_PRICES_FILE", "/nonexistent/prices.csv", "USAGECAST_PRICES_FILE"),
    ],
)
def test_a_wrong_setting_fails_naming_it(key, value, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env={key: value})


def test_mlflow_own_variable_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    settings = load_settings(env={"USAGECAST_MLFLOW_TRACKING_URI": "sqlite:///x.db"})

    assert settings.resolved_tracking_uri == "http://127.0.0.1:5000"
