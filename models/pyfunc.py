"""The served model: an MLflow pyfunc that forecasts from the history it is given.

What is stored: the trained global LightGBM boosters (hourly, daily, and the hourly
one behind the daily members built on hours), the ensemble weights and interval
width factors learned in CV, the month interval (how daily intervals add up over a
month, also a version tag read by the forecast step) and the recipe config.
Per-unit Prophet and the seasonal baselines are refit on the history passed to
``predict`` (they are cheap and must see the latest data); the global models use
that history only through their lag features.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.history import check_history, history_days, unit_series
from models import gbm
from models.forecaster import (
    DAY_HOURS,
    OUTPUT_COLUMNS,
    RecipeConfig,
    combine,
    member_forecasts,
    model_spec,
)

logger = logging.getLogger(__name__)

BUNDLE_FILE = "bundle.json"
LOW_HISTORY_DAYS = 14
"""A series with fewer days of data than this is flagged ``low_history``."""

RESULT_COLUMNS = OUTPUT_COLUMNS + ["model_version", "history_days", "low_history"]


def write_bundle(
    directory: Path,
    config: RecipeConfig,
    weights: dict,
    width_factors: dict,
    global_models: dict,
    extra: dict | None = None,
) -> Path:
    """Write everything ``load_bundle`` needs into ``directory``; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    stored_models = {}
    for resolution, model in global_models.items():
        if model is not None:
            stored_models[resolution] = model.write(directory)
    bundle = {
        "config": config.to_dict(), "weights": weights, "width_factors": width_factors,
        "global_models": stored_models, **(extra or {}),
    }
    (directory / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2, sort_keys=True))
    return directory


def load_bundle(directory: Path) -> dict:
    bundle = json.loads((Path(directory) / BUNDLE_FILE).read_text())
    models = {}
    for resolution, stored in bundle["global_models"].items():
        strings = {
            name: (Path(directory) / file).read_text() for name, file in stored["files"].items()
        }
        models[resolution] = gbm.load(
            resolution, stored["max_horizon"], strings, model_spec(resolution)
        )
    bundle["models"] = models
    bundle["config"] = RecipeConfig.from_dict(bundle["config"])
    return bundle


def forecast_with_bundle(
    bundle: dict,
    history: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_hours: int,
    horizon_days: int,
    model_version: str,
) -> pd.DataFrame:
    """The predict contract: hourly rows (hourly series only) and daily rows (every series)."""
    history = check_history(history)
    history = history[history["ds"] < as_of]
    frames = []
    for resolution, horizon in (("hour", horizon_hours), ("day", horizon_days)):
        if horizon <= 0:
            continue
        units = unit_series(history, resolution, as_of)
        if not units:
            continue
        members = member_forecasts(
            units, resolution, horizon, bundle["config"], bundle["models"].get(resolution),
            hourly_units=unit_series(history, "hour", as_of) if resolution == "day" else None,
            hours_model=bundle["models"].get(DAY_HOURS),
        )
        if members.empty:
            continue
        frames.append(
            combine(
                members, resolution, bundle["weights"].get(resolution, {}),
                bundle["width_factors"].get(resolution, 1.0),
            )
        )
    if not frames:
        return pd.DataFrame({column: [] for column in RESULT_COLUMNS})
    result = pd.concat(frames, ignore_index=True)
    days = history_days(history)
    result["history_days"] = result["series_id"].map(days).fillna(0).astype(int)
    result["low_history"] = result["history_days"] < LOW_HISTORY_DAYS
    result["model_version"] = str(model_version)
    result["p10"] = np.minimum(result["p10"], result["p50"])
    result["p90"] = np.maximum(result["p90"], result["p50"])
    return result[RESULT_COLUMNS].sort_values(
        ["series_id", "resolution", "target", "ds"]
    ).reset_index(drop=True)


def parse_params(params: dict | None) -> tuple[pd.Timestamp, int, int]:
    """``as_of`` (required, YYYY-MM-DD), ``horizon_days`` and ``horizon_hours``."""
    params = params or {}
    if not params.get("as_of"):
        raise ValueError("predict needs params={'as_of': 'YYYY-MM-DD', ...}")
    as_of = pd.Timestamp(str(params["as_of"])).tz_localize(None).normalize()
    horizon_days = int(params.get("horizon_days", 35))
    horizon_hours = int(params.get("horizon_hours", 48))
    if horizon_days < 0 or horizon_hours < 0:
        raise ValueError("horizon_days and horizon_hours must not be negative")
    return as_of, horizon_hours, horizon_days


class UsagecastForecaster(mlflow.pyfunc.PythonModel):
    """MLflow wrapper around ``forecast_with_bundle``."""

    def load_context(self, context) -> None:
        self.bundle = load_bundle(Path(context.artifacts["bundle"]))
        config = context.model_config or {}
        self.model_version = str(config.get("model_version", self.bundle.get("model_version")))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ARG002
        as_of, horizon_hours, horizon_days = parse_params(params)
        return forecast_with_bundle(
            self.bundle, model_input, as_of, horizon_hours, horizon_days, self.model_version
        )
