"""The forecasting recipe shared by cross-validation, training and the served model.

Members per resolution: seasonal naive, seasonal median (of the last four seasons),
the resolution's global LightGBM and a per-unit Prophet (on recent hours, or on daily
totals). ``member_forecasts`` runs the members at one origin; ``combine`` mixes them
with weights learned from cross-validation (see ``models.ensemble``), per horizon
bucket and, where a unit has the evidence, per unit.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from features.history import UnitSeries, unit_series
from features.lagged import spec_for
from models import gbm, naive, prophet_unit

logger = logging.getLogger(__name__)

HORIZON_BUCKETS = {
    "hour": ((1, 6), (7, 24), (25, 48)),
    "day": ((1, 7), (8, 14), (15, 35)),
}
TRAIN_HORIZON = {"hour": 48, "day": 35}
OUTPUT_COLUMNS = ["series_id", "resolution", "target", "ds", "p10", "p50", "p90"]
UNIT_WEIGHTS_KEY = "units"
"""Key of a resolution's weights that holds the per-unit weights (see ``models.ensemble``)."""
NAIVE_ONLY = {"snaive": 1.0}
"""The weights of a horizon bucket without CV evidence: the seasonal naive alone."""


def unit_key(series_id: str, target: str) -> str:
    """How a unit is named in the stored per-unit weights (targets never hold ``|``)."""
    return f"{series_id}|{target}"


@dataclass(frozen=True)
class RecipeConfig:
    """Everything that decides what the models are: compared when promoting."""

    models: tuple[str, ...] = ("lightgbm", "prophet")
    countries: tuple[str, ...] = ("US",)
    gbm_params: dict = field(default_factory=dict)
    prophet: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["models"] = list(self.models)
        data["countries"] = list(self.countries)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RecipeConfig:
        return cls(
            models=tuple(data.get("models", ())), countries=tuple(data.get("countries", ())),
            gbm_params=dict(data.get("gbm_params", {})), prophet=dict(data.get("prophet", {})),
        )


PER_UNIT_MEMBERS = ("snaive", "smedian", "prophet")
"""Members fitted one unit at a time (the train shards); LightGBM is global."""


def members(config: RecipeConfig) -> tuple[str, ...]:
    """The members a recipe runs: the seasonal baselines always, the models it names."""
    names = ["snaive", "smedian"]
    if "lightgbm" in config.models:
        names.append("lightgbm")
    if "prophet" in config.models:
        names.append("prophet")
    return tuple(names)


def bucket_of(resolution: str, horizons: np.ndarray) -> np.ndarray:
    """Index of each horizon's bucket; horizons past the last bucket use the last one."""
    buckets = HORIZON_BUCKETS[resolution]
    result = np.full(len(horizons), len(buckets) - 1)
    for index, (_low, high) in reversed(list(enumerate(buckets))):
        result[np.asarray(horizons) <= high] = index
    return result


def units_at(history: pd.DataFrame, resolution: str, origin: pd.Timestamp) -> list[UnitSeries]:
    return unit_series(history, resolution, origin)


def fit_global(
    history: pd.DataFrame, resolution: str, origin: pd.Timestamp, config: RecipeConfig
) -> gbm.GlobalModel | None:
    """The global LightGBM of a resolution trained on everything before ``origin``."""
    if "lightgbm" not in config.models:
        return None
    units = units_at(history, resolution, origin)
    spec = spec_for(resolution)
    return gbm.fit(units, spec, TRAIN_HORIZON[resolution], config.countries, config.gbm_params)


def member_forecasts(
    units: list[UnitSeries],
    resolution: str,
    horizon: int,
    config: RecipeConfig,
    global_model: gbm.GlobalModel | None,
    only: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Forecasts of each member (column ``member``) from the end of the units' history."""
    spec = spec_for(resolution)
    frames = []
    recipe = members(config)
    wanted = recipe if only is None else tuple(name for name in only if name in recipe)
    if "snaive" in wanted:
        frames.append(naive.forecast(units, horizon, spec).assign(member="snaive"))
    if "smedian" in wanted:
        frames.append(naive.median_forecast(units, horizon, spec).assign(member="smedian"))
    if "lightgbm" in wanted and global_model is not None:
        frames.append(
            gbm.predict(global_model, units, spec, horizon, config.countries)
            .assign(member="lightgbm")
        )
    if "prophet" in wanted:
        frames.append(
            prophet_unit.forecast(units, horizon, config.countries, config.prophet)
            .assign(member="prophet")
        )
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).assign(resolution=resolution)


def combine(
    member_frame: pd.DataFrame, resolution: str, weights: dict, width_factor: float = 1.0
) -> pd.DataFrame:
    """Weighted mix of the members' quantiles per horizon bucket.

    ``weights[str(bucket)][member]`` are the pooled weights; a unit listed under
    ``weights[UNIT_WEIGHTS_KEY][unit_key(series, target)][str(bucket)]`` uses its own
    instead (a unit unseen at training, or a bucket it has none for, uses the pooled
    ones). A bucket with no weights at all (no CV evidence) is the seasonal naive alone
    (see ``models.ensemble.fallback_weights``). A member missing for a unit has its
    weight shared out over the others; when every weighted member is missing, the
    members present are mixed equally.
    ``width_factor`` widens or narrows the interval around the median (learned from CV
    coverage).
    """
    frame = member_frame.copy()
    bucket = bucket_of(resolution, frame["h"].to_numpy())
    per_unit = weights.get(UNIT_WEIGHTS_KEY, {})
    units = [unit_key(s, t) for s, t in zip(frame["series_id"], frame["target"], strict=True)]
    frame["weight"] = [
        per_unit.get(unit, {}).get(str(b), weights.get(str(b), NAIVE_ONLY)).get(member, 0.0)
        for unit, b, member in zip(units, bucket, frame["member"], strict=True)
    ]
    keys = ["series_id", "target", "ds", "h"]
    totals = frame.groupby(keys)["weight"].transform("sum")
    equal = frame.groupby(keys)["weight"].transform("size")
    frame["weight"] = np.where(totals > 0, frame["weight"] / totals.where(totals > 0, 1), 1 / equal)
    for column in ("p10", "p50", "p90"):
        frame[column] = frame[column] * frame["weight"]
    mixed = frame.groupby(keys, as_index=False)[["p10", "p50", "p90"]].sum()
    lower = mixed["p50"] - (mixed["p50"] - mixed["p10"]).clip(lower=0) * width_factor
    upper = mixed["p50"] + (mixed["p90"] - mixed["p50"]).clip(lower=0) * width_factor
    mixed["p10"] = lower.clip(lower=0)
    mixed["p90"] = upper.clip(lower=0)
    mixed["p50"] = mixed["p50"].clip(lower=0)
    return mixed.assign(resolution=resolution)
