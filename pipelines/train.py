"""``usagecast train``: cross-validate, train and register the forecasting models.

Four stages, so that Airflow can fan out the per-series work; each reads and
writes files under one run folder and returns only small JSON values:

1. ``plan_training`` reads the lake once, stores the history and decides the
   folds, the shards and the recipe;
2. ``train_shard`` runs the per-unit models (seasonal naive and median, Prophet) through CV
   for one shard of series;
3. ``train_global`` runs the global LightGBM models through the same CV, then
   trains them on all the history;
4. ``register_training`` learns the ensemble weights, interval widths and month
   interval from the CV errors, scores every model, logs it all to MLflow and
   registers the new version, promoting it to ``champion`` only if it beats the
   champion on the same folds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import subprocess
from pathlib import Path

from pipelines.errors import UsagecastError

logger = logging.getLogger(__name__)

ALL_MODELS = ("lightgbm", "prophet")


def _run_root(settings) -> Path:
    return settings.data_dir / "runs" / "train"


def _default_as_of(settings) -> dt.date:
    from pipelines.lake import partition_days

    days = partition_days(settings.lake_dir, "usage_hourly") + partition_days(
        settings.lake_dir, "usage_daily"
    )
    if not days:
        raise UsagecastError(
            f"no usage in the lake at {settings.lake_dir}: run `usagecast ingest` first"
        )
    return max(days) + dt.timedelta(days=1)


def data_hash(history) -> str:
    """A content hash of the training history, independent of row order."""
    import pandas as pd

    ordered = history.sort_values(["series_id", "target", "resolution", "ds"])
    hashed = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def code_version() -> str:
    from pipelines.settings import REPO_ROOT

    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
            text=True, timeout=10, check=True,
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def plan_training(
    settings,
    as_of: dt.date | None = None,
    series_filter: str | None = None,
    models: tuple[str, ...] = ALL_MODELS,
    shard_count: int = 4,
) -> dict:
    """Read the history, fix the folds and shards, and write them under a new run folder."""
    import pandas as pd

    from features.history import history_from_lake
    from models.cv import plan_folds
    from models.forecaster import RecipeConfig

    unknown = [name for name in models if name not in ALL_MODELS]
    if unknown:
        raise UsagecastError(f"unknown model(s) {unknown}: choose from {list(ALL_MODELS)}")
    as_of = as_of or _default_as_of(settings)
    history = history_from_lake(settings, as_of, series_filter)
    if history.empty:
        raise UsagecastError(
            f"no usage before {as_of} in {settings.lake_dir}"
            + (f" for series matching {series_filter!r}" if series_filter else "")
            + ": run `usagecast ingest` first"
        )
    content_hash = data_hash(history)
    run_dir = _run_root(settings) / f"{as_of.isoformat()}-{content_hash[:12]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    history_path = run_dir / "history.parquet"
    history.to_parquet(history_path, index=False)

    as_of_ts = pd.Timestamp(as_of)
    folds = plan_folds(history, as_of_ts, settings.cv_folds)
    series = sorted(history["series_id"].unique())
    shard_count = max(1, min(shard_count, len(series)))
    shards = [series[index::shard_count] for index in range(shard_count)]
    config = RecipeConfig(models=tuple(models), countries=tuple(settings.holiday_countries))
    plan = {
        "as_of": as_of.isoformat(),
        "run_dir": str(run_dir),
        "history_path": str(history_path),
        "data_hash": content_hash,
        "data_window": [history["ds"].min().isoformat(), as_of_ts.isoformat()],
        "series_count": len(series),
        "rows": len(history),
        "shards": shards,
        "folds": folds,
        "config": config.to_dict(),
        "code_version": code_version(),
    }
    (run_dir / "plan.json").write_text(json.dumps(plan, indent=2))
    logger.info(
        "training plan as of %s: %d series, %d rows, folds %s, run folder %s",
        as_of, len(series), len(history), {k: v["origins"] for k, v in folds.items()}, run_dir,
    )
    return plan


def _load_history(plan: dict, series: list[str] | None = None):
    import pandas as pd

    history = pd.read_parquet(plan["history_path"])
    if series is not None:
        history = history[history["series_id"].isin(series)]
    return history


def cross_validate_members(history, folds: dict, config, only: tuple[str, ...] | None = None):
    """CV forecasts of the recipe's members (those in ``only`` when given) at every origin."""
    import pandas as pd

    from models.forecaster import (
        DAY_HOURS,
        HOUR_MEMBERS,
        LIGHTGBM_HOURS,
        fit_global,
        member_forecasts,
        members,
        units_at,
    )

    wanted = members(config) if only is None else only

    frames = []
    for resolution, entry in folds.items():
        on_hours = resolution == "day" and any(name in wanted for name in HOUR_MEMBERS)
        for origin_text in entry["origins"]:
            origin = pd.Timestamp(origin_text)
            units = units_at(history, resolution, origin)
            if not units:
                continue
            global_model = hours_model = None
            if "lightgbm" in wanted:
                global_model = fit_global(history, resolution, origin, config)
            if on_hours and LIGHTGBM_HOURS in wanted:
                hours_model = fit_global(history, DAY_HOURS, origin, config)
            forecasts = member_forecasts(
                units, resolution, entry["horizon"], config, global_model, only=wanted,
                hourly_units=units_at(history, "hour", origin) if on_hours else None,
                hours_model=hours_model,
            )
            if not forecasts.empty:
                frames.append(forecasts.assign(origin=origin))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def train_shard(settings, plan: dict, shard_index: int) -> str:  # noqa: ARG001
    """CV of the per-unit models (seasonal naive and medians, Prophet) for one shard."""
    from models.forecaster import PER_UNIT_MEMBERS, RecipeConfig

    series = plan["shards"][shard_index]
    history = _load_history(plan, series)
    config = RecipeConfig.from_dict(plan["config"])
    cv = cross_validate_members(history, plan["folds"], config, only=PER_UNIT_MEMBERS)
    path = Path(plan["run_dir"]) / f"cv_shard_{shard_index}.parquet"
    _write_atomic_parquet(cv, path)
    logger.info("shard %d: %d series, %d CV rows -> %s", shard_index, len(series), len(cv), path)
    return str(path)


def train_global(settings, plan: dict) -> str:  # noqa: ARG001
    """CV of the global LightGBM models, then the final fit on all history; returns a folder."""
    import pandas as pd

    from models import gbm
    from models.forecaster import DAY_HOURS, GLOBAL_MEMBERS, RecipeConfig, fit_global

    history = _load_history(plan)
    config = RecipeConfig.from_dict(plan["config"])
    out_dir = Path(plan["run_dir"]) / "global"
    out_dir.mkdir(parents=True, exist_ok=True)
    cv = cross_validate_members(history, plan["folds"], config, only=GLOBAL_MEMBERS)
    _write_atomic_parquet(cv, out_dir / "cv.parquet")

    manifest = {}
    as_of = pd.Timestamp(plan["as_of"])
    for resolution in ("hour", "day", DAY_HOURS):
        model = fit_global(history, resolution, as_of, config)
        if model is None:
            continue
        gbm.importance(model).to_csv(out_dir / f"importance_{resolution}.csv", index=False)
        manifest[resolution] = model.write(out_dir)
    (out_dir / "models.json").write_text(json.dumps(manifest, indent=2))
    return str(out_dir)


def _write_atomic_parquet(frame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(temporary, index=False)
    temporary.replace(path)


def _load_global_models(global_output: str) -> dict:
    from models import gbm
    from models.forecaster import model_spec

    directory = Path(global_output)
    manifest = json.loads((directory / "models.json").read_text())
    return {
        resolution: gbm.load(
            resolution, stored["max_horizon"],
            {name: (directory / file).read_text() for name, file in stored["files"].items()},
            model_spec(resolution),
        )
        for resolution, stored in manifest.items()
    }


def evaluate(history, plan: dict, member_cv):
    """Actuals, learned ensemble and its CV rows: (cv with ensemble, weights, width factors).

    A daily history of 8 to 20 days is scored on short folds (``models.cv``). A
    resolution with no scored fold at all (under 8 days of daily history) gets
    ``fallback_weights``, the seasonal naive alone: nothing is learnable there, since
    an origin inside one season leaves the weekly members without a full season.
    """
    import pandas as pd

    from models.cv import attach_actuals
    from models.ensemble import fallback_weights, learn_weights, learn_width_factor
    from models.forecaster import combine

    as_of = pd.Timestamp(plan["as_of"])
    scored, weights, widths = [], {}, {}
    for resolution in plan["folds"]:
        members = (
            member_cv[member_cv["resolution"] == resolution] if not member_cv.empty
            else member_cv
        )
        if not members.empty:
            members = attach_actuals(members, history, resolution, as_of)
        if members.empty:
            weights[resolution] = fallback_weights(resolution)
            logger.warning(
                "no %s CV fold fits the history (or none has an observed actual): the %s "
                "forecast is the seasonal naive alone until the history has room for one "
                "(see models.cv)", resolution, resolution,
            )
            continue
        weights[resolution] = learn_weights(members, resolution)
        mixed = []
        for origin, group in members.groupby("origin"):
            combined = combine(group, resolution, weights[resolution]).assign(origin=origin)
            mixed.append(combined)
        ensemble = attach_actuals(
            pd.concat(mixed, ignore_index=True).assign(member="ensemble"), history,
            resolution, as_of,
        )
        widths[resolution] = learn_width_factor(ensemble)
        factor = widths[resolution]
        ensemble["p10"] = (ensemble["p50"] - (ensemble["p50"] - ensemble["p10"]) * factor).clip(0)
        ensemble["p90"] = ensemble["p50"] + (ensemble["p90"] - ensemble["p50"]) * factor
        scored += [members, ensemble]
    cv = pd.concat(scored, ignore_index=True) if scored else pd.DataFrame()
    return cv, weights, widths


def register_training(
    settings,
    plan: dict,
    shard_outputs: list[str],
    global_output: str,
    force_promotion: bool = False,
) -> dict:
    """Ensemble weights, scores, the MLflow runs and the registry decision."""
    import pandas as pd

    from models.cv import headline_wape, score_table
    from models.forecaster import RecipeConfig
    from pipelines import registry

    history = _load_history(plan)
    member_cv = pd.concat(
        [pd.read_parquet(path) for path in shard_outputs]
        + [pd.read_parquet(Path(global_output) / "cv.parquet")],
        ignore_index=True,
    )
    cv, weights, widths = evaluate(history, plan, member_cv)
    if cv.empty:
        raise UsagecastError(
            "no CV fold could be scored: the history is too short "
            f"({plan['data_window'][0]} to {plan['data_window'][1]})"
        )
    month_interval = learn_month_interval_from(cv)
    scores = score_table(cv)
    cv_wape = headline_wape(cv)
    config = RecipeConfig.from_dict(plan["config"])
    global_models = _load_global_models(global_output)

    champion_score = registry.champion_score_on_folds(
        settings, plan, history, config, cv_wape, _rescore_recipe
    )
    result = registry.log_and_register(
        settings, plan, cv=cv, scores=scores, cv_wape=cv_wape, weights=weights,
        width_factors=widths, global_models=global_models, global_output=global_output,
        champion=champion_score, force_promotion=force_promotion,
        month_interval=month_interval,
    )
    return result


def learn_month_interval_from(cv) -> dict | None:
    """The month interval learned from the ensemble's daily CV rows (None without any)."""
    from models.ensemble import learn_month_interval

    if cv.empty:
        return None
    daily = cv[(cv["member"] == "ensemble") & (cv["resolution"] == "day")]
    return learn_month_interval(daily)


def fit_recipe(history, as_of, config, folds: dict) -> dict:
    """Everything ``usagecast train`` stores, fitted in memory on ``history`` before ``as_of``.

    The same stages as the registered model (CV of every member at ``folds``, the
    ensemble weights, interval widths and month interval learned from it, the global
    LightGBM refit on all the history), without MLflow: the benches retrain the
    champion's recipe per origin with it. Returns a bundle as ``load_bundle`` does,
    for ``models.pyfunc.forecast_with_bundle``.
    """
    from models.forecaster import DAY_HOURS, fit_global

    before = history[history["ds"] < as_of]
    member_cv = cross_validate_members(before, folds, config)
    cv, weights, widths = evaluate(before, {"as_of": as_of.isoformat(), "folds": folds},
                                   member_cv)
    keys = [*folds, DAY_HOURS] if "day" in folds else list(folds)
    models = {key: fit_global(before, key, as_of, config) for key in keys}
    return {
        "config": config, "weights": weights, "width_factors": widths,
        "models": {resolution: model for resolution, model in models.items() if model},
        "month_interval": learn_month_interval_from(cv), "cv": cv,
    }


def _rescore_recipe(history, plan: dict, config) -> float:
    """Score another recipe (the champion's) through this plan's folds."""
    from models.cv import headline_wape

    member_cv = cross_validate_members(history, plan["folds"], config)
    cv, _weights, _widths = evaluate(history, plan, member_cv)
    return headline_wape(cv)


def train(
    settings,
    as_of: dt.date | None = None,
    series_filter: str | None = None,
    models: tuple[str, ...] = ALL_MODELS,
    force_promotion: bool = False,
) -> dict:
    """The four stages in sequence, in this process."""
    plan = plan_training(settings, as_of, series_filter, models)
    shard_outputs = [train_shard(settings, plan, index) for index in range(len(plan["shards"]))]
    global_output = train_global(settings, plan)
    return register_training(settings, plan, shard_outputs, global_output, force_promotion)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of", type=dt.date.fromisoformat,
        help="train on data before this UTC day (default: the day after the lake's last day)",
    )
    parser.add_argument("--series", help="only series whose id contains this text")
    parser.add_argument(
        "--models", default=",".join(ALL_MODELS),
        help=f"comma separated subset of {','.join(ALL_MODELS)} "
        "(seasonal naive and seasonal median always run)",
    )
    parser.add_argument(
        "--force-promotion", action="store_true",
        help="make the new version champion whatever its score",
    )


def run(args: argparse.Namespace, settings) -> str:
    models = tuple(name.strip() for name in args.models.split(",") if name.strip())
    result = train(settings, args.as_of, args.series, models, args.force_promotion)
    champion = result.get("champion_cv_wape")
    return (
        f"registered {settings.registered_model} version {result['version']} "
        f"({result['alias']}); CV WAPE {result['cv_wape']:.3f}"
        + (f" vs champion {champion:.3f}" if champion is not None else "")
    )
