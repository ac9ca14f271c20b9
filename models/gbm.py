"""One global LightGBM per resolution, trained direct over horizons, with p10/p50/p90 models.

"Direct" means one model sees the horizon as a feature and never consumes its own
predictions: every input comes from the history before the origin (see
``features.lagged``). Targets are divided by the unit's recent level, so a
thousand-call series and a ten-call series teach the same model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.history import UnitSeries
from features.lagged import ResolutionSpec, feature_columns, prediction_rows, training_rows

logger = logging.getLogger(__name__)

QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}

DEFAULT_PARAMS = {
    "learning_rate": 0.06,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_boost_round": 200,
}


@dataclass
class GlobalModel:
    """The three quantile boosters of one resolution, with what they were trained for.

    ``resolution`` is the key the model is stored under: ``hour``, ``day``, or
    ``day_hours`` (the hourly model behind the daily members built on hours).
    """

    resolution: str
    max_horizon: int
    boosters: dict  # quantile name -> lightgbm.Booster
    feature_names: list[str]

    def to_strings(self) -> dict[str, str]:
        return {name: booster.model_to_string() for name, booster in self.boosters.items()}

    def write(self, directory: Path) -> dict:
        """Save the boosters as text files; returns the manifest entry ``load`` reads back."""
        files = {}
        for name, text in self.to_strings().items():
            path = directory / f"lightgbm_{self.resolution}_{name}.txt"
            path.write_text(text)
            files[name] = path.name
        return {"max_horizon": self.max_horizon, "files": files}


def fit(
    units: list[UnitSeries],
    spec: ResolutionSpec,
    max_horizon: int,
    countries: tuple[str, ...],
    params: dict | None = None,
    seed: int = 7,
    key: str | None = None,
) -> GlobalModel | None:
    """Train the quantile boosters on every unit's past origins; None when too little data.

    ``key`` is what the model is stored under (default: the spec's resolution).
    """
    import lightgbm as lgb

    params = {**DEFAULT_PARAMS, **(params or {})}
    rounds = int(params.pop("num_boost_round"))
    rows = training_rows(units, spec, max_horizon, countries)
    if len(rows) < 200:
        logger.info("only %d %s training rows: no global LightGBM", len(rows), spec.resolution)
        return None
    columns = feature_columns(spec)
    dataset = lgb.Dataset(
        rows[columns].to_numpy(dtype=float), label=rows["label"].to_numpy(dtype=float),
        feature_name=columns, categorical_feature=["target_code"], free_raw_data=False,
    )
    boosters = {}
    for name, alpha in QUANTILES.items():
        booster_params = {
            **params, "objective": "quantile", "alpha": alpha, "verbosity": -1, "seed": seed,
            "num_threads": 1, "deterministic": True, "force_row_wise": True,
        }
        boosters[name] = lgb.train(booster_params, dataset, num_boost_round=rounds)
    logger.info(
        "trained %s LightGBM on %d rows from %d units (horizon %d)",
        spec.resolution, len(rows), len(units), max_horizon,
    )
    return GlobalModel(key or spec.resolution, max_horizon, boosters, columns)


def predict(
    model: GlobalModel,
    units: list[UnitSeries],
    spec: ResolutionSpec,
    horizon: int,
    countries: tuple[str, ...],
) -> pd.DataFrame:
    """Quantile forecasts for ``horizon`` steps from the end of each unit's history."""
    rows = prediction_rows(units, spec, horizon, countries)
    if rows.empty:
        return pd.DataFrame()
    features = rows[model.feature_names].to_numpy(dtype=float)
    quantiles = np.column_stack(
        [model.boosters[name].predict(features) for name in ("p10", "p50", "p90")]
    )
    quantiles = np.sort(np.clip(quantiles, 0, None), axis=1) * rows["scale"].to_numpy()[:, None]
    return pd.DataFrame(
        {
            "series_id": rows["series_id"].to_numpy(),
            "target": rows["target"].to_numpy(),
            "h": rows["h"].to_numpy(),
            "ds": rows["ds"].to_numpy(),
            "p10": quantiles[:, 0],
            "p50": quantiles[:, 1],
            "p90": quantiles[:, 2],
        }
    )


def load(resolution: str, max_horizon: int, strings: dict[str, str], spec) -> GlobalModel:
    """Rebuild a GlobalModel from ``to_strings()`` output."""
    import lightgbm as lgb

    boosters = {name: lgb.Booster(model_str=text) for name, text in strings.items()}
    return GlobalModel(resolution, max_horizon, boosters, feature_columns(spec))


def importance(model: GlobalModel) -> pd.DataFrame:
    """Gain importance of the median model, largest first."""
    booster = model.boosters["p50"]
    gains = booster.feature_importance(importance_type="gain")
    frame = pd.DataFrame({"feature": booster.feature_name(), "gain": gains})
    return frame.sort_values("gain", ascending=False).reset_index(drop=True)
