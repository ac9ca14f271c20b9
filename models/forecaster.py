"""The forecasting recipe shared by cross-validation, training and the served model.

Members per resolution: seasonal naive, seasonal median (of the last four seasons),
the resolution's global LightGBM and a per-unit Prophet (on recent hours, or on daily
totals). ``member_forecasts`` runs the members at one origin; ``combine`` mixes them
with weights learned from cross-validation (see ``models.ensemble``), per horizon
bucket and, where a unit has the evidence, per unit.

A daily forecast of a unit with hourly data has two more members, built on its hours
and summed per day (``HOUR_MEMBERS``): the seasonal median of each hour over the last
four weeks, and a global LightGBM trained on hours for the first ``HOURS_MODEL_DAYS``
days. Why: daily totals give a unit one value per day, its hours give 24. Bursts of a
few hours in two of four weeks move the median of the four day totals, while each
hour's median sees at most one of them; and a global model on hours learns the
hour-of-week shape and the latest hours from many more rows than one on days. A unit
known only by daily buckets has neither, and gets weights learned for the members it
has (see ``models.ensemble``).
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
MEMBER_SETS_KEY = "member_sets"
"""Key of a resolution's weights for the units whose members differ from the pooled set."""
NAIVE_ONLY = {"snaive": 1.0}
"""The weights of a horizon bucket without CV evidence: the seasonal naive alone."""


def unit_key(series_id: str, target: str) -> str:
    """How a unit is named in the stored per-unit weights (targets never hold ``|``)."""
    return f"{series_id}|{target}"


def member_set_key(names) -> str:
    """How a set of members is named in the stored weights: sorted, joined by ``+``."""
    return "+".join(sorted(names))


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


SMEDIAN_HOURS = "smedian_hours"
"""Daily member: the hourly seasonal median (same hour, last four weeks) summed per day."""
LIGHTGBM_HOURS = "lightgbm_hours"
"""Daily member: the hourly global LightGBM of ``DAY_HOURS`` summed per day."""
HOUR_MEMBERS = (SMEDIAN_HOURS, LIGHTGBM_HOURS)
"""Daily members built on a unit's hours; only units with hourly data have them."""
PER_UNIT_MEMBERS = ("snaive", "smedian", "prophet", SMEDIAN_HOURS)
"""Members fitted one unit at a time (the train shards); the LightGBMs are global."""
GLOBAL_MEMBERS = ("lightgbm", LIGHTGBM_HOURS)
"""Members of one model trained on all units (the global stage)."""
DAY_HOURS = "day_hours"
"""Key of the global model behind ``LIGHTGBM_HOURS``: trained on hours, for daily totals."""
HOURS_MODEL_DAYS = 7
"""Days ``LIGHTGBM_HOURS`` forecasts (168 hourly horizons).

Why one week: the hour-of-week pattern and the recent hours it reads say most about
the coming days; one direct model over 35 days of hours would have 840 horizons, and
its capped training rows would thin to a few origins per unit. Later days have the
members on daily totals (and ``SMEDIAN_HOURS``).
"""


def members(config: RecipeConfig, resolution: str | None = None) -> tuple[str, ...]:
    """The members a recipe runs: the seasonal baselines always, the models it names.

    With ``resolution="day"`` (or None: every resolution) the members built on hours
    are included; a unit without hourly data simply has no rows for them.
    """
    names = ["snaive", "smedian"]
    if "lightgbm" in config.models:
        names.append("lightgbm")
    if "prophet" in config.models:
        names.append("prophet")
    if resolution in (None, "day"):
        names.append(SMEDIAN_HOURS)
        if "lightgbm" in config.models:
            names.append(LIGHTGBM_HOURS)
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


def model_spec(key: str):
    """The feature spec of a global model stored under ``key`` (a resolution or DAY_HOURS)."""
    return spec_for("hour" if key == DAY_HOURS else key)


def fit_global(
    history: pd.DataFrame, resolution: str, origin: pd.Timestamp, config: RecipeConfig
) -> gbm.GlobalModel | None:
    """The global LightGBM of a resolution trained on everything before ``origin``.

    ``resolution=DAY_HOURS`` trains the hourly model behind ``LIGHTGBM_HOURS``: on the
    hourly units, for ``HOURS_MODEL_DAYS`` days of hourly horizons.
    """
    if "lightgbm" not in config.models:
        return None
    if resolution == DAY_HOURS:
        units = units_at(history, "hour", origin)
        if not units:
            return None
        return gbm.fit(units, spec_for("hour"), HOURS_MODEL_DAYS * 24, config.countries,
                       config.gbm_params, key=DAY_HOURS)
    units = units_at(history, resolution, origin)
    spec = spec_for(resolution)
    return gbm.fit(units, spec, TRAIN_HORIZON[resolution], config.countries, config.gbm_params)


def _summed_per_day(hourly: pd.DataFrame, days: int) -> pd.DataFrame:
    """Hourly forecast rows (from a day's midnight) summed to ``days`` daily rows.

    Each quantile is summed as it is: a day's interval is then as wide as if all its
    hours missed together, wider than when they miss independently; the ensemble's
    width factor, learned on CV coverage, rescales it.
    """
    if hourly.empty:
        return hourly
    frame = hourly[hourly["h"] <= days * 24].assign(h=lambda f: (f["h"] - 1) // 24 + 1)
    summed = frame.groupby(["series_id", "target", "h"], as_index=False).agg(
        ds=("ds", "min"), p10=("p10", "sum"), p50=("p50", "sum"), p90=("p90", "sum"),
        hours=("p50", "size"),
    )
    summed = summed[summed["hours"] == 24].drop(columns="hours")
    summed["ds"] = summed["ds"].dt.floor("D")
    return summed


def hour_member_forecasts(
    hourly_units: list[UnitSeries],
    days: int,
    config: RecipeConfig,
    hours_model: gbm.GlobalModel | None,
    wanted: tuple[str, ...],
) -> list[pd.DataFrame]:
    """The daily members built on hours (``HOUR_MEMBERS`` in ``wanted``), each summed per day.

    ``hourly_units`` end at the daily origin (a midnight), so every 24 hourly steps
    make one forecast day.
    """
    hourly_spec = spec_for("hour")
    frames = []
    if SMEDIAN_HOURS in wanted:
        median = naive.median_forecast(hourly_units, days * 24, hourly_spec)
        frames.append(_summed_per_day(median, days).assign(member=SMEDIAN_HOURS))
    if LIGHTGBM_HOURS in wanted and hours_model is not None:
        model_days = min(days, HOURS_MODEL_DAYS)
        predicted = gbm.predict(hours_model, hourly_units, hourly_spec, model_days * 24,
                                config.countries)
        frames.append(_summed_per_day(predicted, model_days).assign(member=LIGHTGBM_HOURS))
    return frames


def member_forecasts(
    units: list[UnitSeries],
    resolution: str,
    horizon: int,
    config: RecipeConfig,
    global_model: gbm.GlobalModel | None,
    only: tuple[str, ...] | None = None,
    hourly_units: list[UnitSeries] | None = None,
    hours_model: gbm.GlobalModel | None = None,
) -> pd.DataFrame:
    """Forecasts of each member (column ``member``) from the end of the units' history.

    For a daily forecast, ``hourly_units`` (the hourly series ending at the same
    origin) and ``hours_model`` (the ``DAY_HOURS`` model) feed the members built on
    hours; without them those members are left out.
    """
    spec = spec_for(resolution)
    frames = []
    recipe = members(config, resolution)
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
    if resolution == "day" and hourly_units:
        # Only units with a daily series of their own: the members on hours join the
        # others, they never make a unit forecastable that was not.
        daily_keys = {(unit.series_id, unit.target) for unit in units}
        hourly_units = [u for u in hourly_units if (u.series_id, u.target) in daily_keys]
        frames += hour_member_forecasts(hourly_units, horizon, config, hours_model, wanted)
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
    ones), and a unit whose members in a bucket are a set with weights of its own
    (``weights[MEMBER_SETS_KEY][member_set_key(members)][str(bucket)]``) uses those
    before the pooled ones. A bucket with no weights at all (no CV evidence) is the
    seasonal naive alone
    (see ``models.ensemble.fallback_weights``). A member missing for a unit has its
    weight shared out over the others; when every weighted member is missing, the
    members present are mixed equally.
    ``width_factor`` widens or narrows the interval around the median (learned from CV
    coverage).
    """
    frame = member_frame.copy()
    frame["bucket"] = bucket_of(resolution, frame["h"].to_numpy())
    per_unit = weights.get(UNIT_WEIGHTS_KEY, {})
    per_set = weights.get(MEMBER_SETS_KEY, {})
    units = [unit_key(s, t) for s, t in zip(frame["series_id"], frame["target"], strict=True)]
    sets = frame.groupby(["series_id", "target", "bucket"])["member"].transform(
        lambda names: member_set_key(set(names))
    )

    def bucket_weights(unit: str, names: str, bucket: int) -> dict:
        key = str(bucket)
        shared = per_set.get(names, {}).get(key, weights.get(key, NAIVE_ONLY))
        return per_unit.get(unit, {}).get(key, shared)

    frame["weight"] = [
        bucket_weights(unit, names, b).get(member, 0.0)
        for unit, names, b, member in zip(units, sets, frame["bucket"], frame["member"],
                                          strict=True)
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
