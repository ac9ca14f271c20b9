"""The served model applies each unit's own ensemble weights, and the pooled ones to others."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.forecaster import RecipeConfig
from models.pyfunc import UsagecastForecaster, write_bundle


def _daily_history() -> pd.DataFrame:
    days = pd.date_range("2026-01-01", periods=35, freq="D")
    return pd.concat([
        pd.DataFrame({"series_id": name, "resolution": "day", "ds": days,
                      "target": "requests", "y": np.arange(35, dtype=float) * factor})
        for name, factor in (("known", 1.0), ("unseen", 2.0))
    ], ignore_index=True)


def test_served_model_uses_per_unit_weights_and_pools_for_an_unseen_unit(tmp_path):
    # No LightGBM and no Prophet: the members are the seasonal naive and median only.
    config = RecipeConfig(models=(), countries=("US",))
    weights = {"day": {"0": {"smedian": 0.5, "snaive": 0.5},
                       "units": {"known|requests": {"0": {"smedian": 0.0, "snaive": 1.0}}}}}
    bundle = write_bundle(tmp_path / "bundle", config, weights, {"day": 1.0}, {})
    history = _daily_history()
    params = {"as_of": "2026-02-05", "horizon_days": 1, "horizon_hours": 0}
    output = pd.DataFrame({
        "series_id": ["s"], "resolution": ["day"], "target": ["requests"],
        "ds": [pd.Timestamp("2026-01-01")], "p10": [0.0], "p50": [1.0], "p90": [2.0],
        "model_version": ["1"], "history_days": [1], "low_history": [True],
    })
    signature = mlflow.models.infer_signature(history.head(3), output, params=params)
    mlflow.pyfunc.save_model(
        path=str(tmp_path / "model"), python_model=UsagecastForecaster(),
        artifacts={"bundle": str(bundle)}, signature=signature,
    )
    served = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    result = served.predict(history, params=params).set_index("series_id")["p50"]
    # known: its own weights, all seasonal naive: day 35 repeats day 28 -> 28.
    assert result["known"] == pytest.approx(28.0)
    # unseen (values 2 * day): pooled 0.5 naive (56) + 0.5 median of 56, 42, 28, 14 (35).
    assert result["unseen"] == pytest.approx(45.5)
