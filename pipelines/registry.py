"""The MLflow side: tracking runs, the registered model, its aliases; ``usagecast models``.

Each retrain logs a parent run with one nested run per model, registers a new
version with alias ``challenger``, and moves ``champion`` to it only if its CV WAPE
beats the champion's by ``settings.promotion_margin`` on the same folds (the very
first version is champion). The decision and both scores are tags on the version.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from pipelines.errors import UsagecastError

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
CONFIG_TAG = "recipe_config"
SAME_RECIPE = "same recipe as the challenger"
MONTH_INTERVAL_TAG = "month_interval"
"""Version tag (JSON) with the month interval learned in CV, read by the forecast."""


def _client(settings):
    import mlflow
    from mlflow import MlflowClient

    settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.resolved_tracking_uri)
    return MlflowClient(settings.resolved_tracking_uri, settings.resolved_tracking_uri)


def _experiment_id(settings, client) -> str:
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    settings.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(
        settings.experiment, artifact_location=settings.mlflow_artifact_root.as_uri()
    )


def champion_version(settings, client=None):
    """The champion ModelVersion, or None when there is none yet."""
    from mlflow.exceptions import MlflowException

    client = client or _client(settings)
    try:
        return client.get_model_version_by_alias(settings.registered_model, CHAMPION)
    except MlflowException:
        return None


def require_champion_version(settings, client=None):
    """The champion ModelVersion; UsagecastError when there is none."""
    version = champion_version(settings, client)
    if version is None:
        raise UsagecastError("no champion yet: run `usagecast train` first")
    return version


def load_champion(settings):
    """(pyfunc model, version) of the champion; UsagecastError when there is none."""
    import mlflow.pyfunc

    version = require_champion_version(settings, _client(settings))
    model = mlflow.pyfunc.load_model(
        f"models:/{settings.registered_model}@{CHAMPION}",
        model_config={"model_version": str(version.version)},
    )
    return model, str(version.version)


def champion_score_on_folds(settings, plan, history, config, cv_wape, rescore) -> dict | None:
    """The champion's CV WAPE on this plan's folds, or None when there is no champion.

    The champion's recorded recipe is re-run through the new folds; when it is the
    same recipe as the challenger's, the challenger's own score is that score.
    """
    version = champion_version(settings)
    if version is None:
        return None
    recorded = version.tags.get(CONFIG_TAG)
    if recorded is None:
        logger.warning("champion version %s has no %s tag; scoring it as the current recipe",
                       version.version, CONFIG_TAG)
        recorded_config = config
    else:
        from models.forecaster import RecipeConfig

        recorded_config = RecipeConfig.from_dict(json.loads(recorded))
    if recorded_config == config:
        score, how = cv_wape, SAME_RECIPE
    else:
        score, how = rescore(history, plan, recorded_config), "re-run of its recipe"
    logger.info("champion version %s scores CV WAPE %.4f on the same folds (%s)",
                version.version, score, how)
    window = (version.tags.get("data_window") or "").split("..")
    return {
        "version": str(version.version),
        "cv_wape": float(score),
        "how": how,
        "data_window_end": window[1] if len(window) == 2 else "",
    }


def _plot_forecasts(cv, directory: Path) -> list[Path]:
    """Forecast-vs-actual plots of the ensemble's last fold for the largest units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    ensemble = cv[cv["member"] == "ensemble"]
    for resolution, rows in ensemble.groupby("resolution"):
        last = rows[rows["origin"] == rows["origin"].max()]
        sizes = last.groupby(["series_id", "target"])["y"].sum().sort_values(ascending=False)
        units = list(sizes.index[:6])
        if not units:
            continue
        figure, axes = plt.subplots(len(units), 1, figsize=(10, 2.2 * len(units)), squeeze=False)
        for axis, (series, target) in zip(axes[:, 0], units, strict=True):
            unit = last[(last["series_id"] == series) & (last["target"] == target)]
            axis.plot(unit["ds"], unit["y"], label="actual", color="black")
            axis.plot(unit["ds"], unit["p50"], label="p50")
            axis.fill_between(unit["ds"], unit["p10"], unit["p90"], alpha=0.3, label="p10-p90")
            axis.set_title(f"{series} {target}", fontsize=9)
        axes[0, 0].legend(fontsize=8)
        figure.tight_layout()
        path = directory / f"forecast_vs_actual_{resolution}.png"
        figure.savefig(path, dpi=80)
        plt.close(figure)
        paths.append(path)
    return paths


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    names = ("mlflow", "lightgbm", "prophet", "pandas", "numpy", "pyarrow", "holidays")
    return [f"{name}=={version(name)}" for name in names]


def _signature_and_example(history_path: str):
    import pandas as pd
    from mlflow.models import infer_signature

    history = pd.read_parquet(history_path)
    example = history.groupby("resolution").head(3).reset_index(drop=True)
    output = pd.DataFrame({
        "series_id": ["s"], "resolution": ["day"], "target": ["requests"],
        "ds": [pd.Timestamp("2026-01-01")], "p10": [0.0], "p50": [1.0], "p90": [2.0],
        "model_version": ["1"], "history_days": [1], "low_history": [True],
    })
    params = {"as_of": "2026-01-01", "horizon_days": 35, "horizon_hours": 48}
    return infer_signature(example, output, params=params), example


def log_and_register(
    settings, plan, *, cv, scores, cv_wape, weights, width_factors, global_models,
    global_output, champion, force_promotion, month_interval=None,
) -> dict:
    """Log the parent and nested runs, register the version and decide the aliases."""
    import mlflow

    from models.cv import headline_wape
    from models.pyfunc import UsagecastForecaster, write_bundle
    from pipelines.settings import REPO_ROOT

    client = _client(settings)
    experiment_id = _experiment_id(settings, client)
    name = settings.registered_model
    # The same recipe scores the same on the same folds, so the margin could never be
    # beaten; a refit of the champion's own recipe on newer data replaces it instead, or
    # the served boosters would never see a week of data newer than the first version's.
    refit_on_newer_data = (
        champion is not None
        and champion.get("how") == SAME_RECIPE
        and champion.get("data_window_end", "") < plan["data_window"][1]
    )
    promote = champion is None or force_promotion or refit_on_newer_data or (
        cv_wape <= champion["cv_wape"] * (1 - settings.promotion_margin)
    )
    if champion is None:
        decision = "first version: champion"
    elif force_promotion:
        decision = "promotion forced"
    elif refit_on_newer_data:
        decision = (f"same recipe as champion {champion['version']}, refit on data through "
                    f"{plan['data_window'][1]}: replaces it")
    elif promote:
        decision = (f"CV WAPE {cv_wape:.4f} beats champion {champion['cv_wape']:.4f} "
                    f"by at least {settings.promotion_margin:.0%}")
    else:
        decision = (f"CV WAPE {cv_wape:.4f} does not beat champion {champion['cv_wape']:.4f} "
                    f"by {settings.promotion_margin:.0%}: stays challenger")

    with tempfile.TemporaryDirectory() as scratch, mlflow.start_run(
        experiment_id=experiment_id, run_name=f"retrain {plan['as_of']}"
    ) as parent:
        scratch_dir = Path(scratch)
        mlflow.log_params({
            "as_of": plan["as_of"], "data_window_start": plan["data_window"][0],
            "data_window_end": plan["data_window"][1], "data_hash": plan["data_hash"],
            "code_version": plan["code_version"], "series": plan["series_count"],
            "rows": plan["rows"], "models": ",".join(plan["config"]["models"]),
            "holiday_countries": ",".join(plan["config"]["countries"]),
            "cv_folds": settings.cv_folds,
            "folds": json.dumps({k: v["origins"] for k, v in plan["folds"].items()}),
        })
        mlflow.log_metric("cv_wape", cv_wape)
        for member in sorted(cv["member"].unique()):
            member_rows = cv[cv["member"] == member]
            with mlflow.start_run(
                experiment_id=experiment_id, run_name=member, nested=True
            ):
                mlflow.log_param("model", member)
                mlflow.log_metric("cv_wape", headline_wape(cv, member))
                for (resolution, origin), fold in member_rows.groupby(["resolution", "origin"]):
                    step = int(sorted(member_rows["origin"].unique()).index(origin))
                    total = fold["y"].abs().sum()
                    if total > 0:
                        fold_wape = float((fold["y"] - fold["p50"]).abs().sum() / total)
                        mlflow.log_metric(f"{resolution}_fold_wape", fold_wape, step=step)
                member_scores = scores[scores["model"] == member]
                summary = member_scores.groupby(["resolution", "horizon"])[
                    ["wape", "mase", "smape", "coverage_80"]
                ].mean()
                for (resolution, horizon), row in summary.iterrows():
                    for metric, value in row.items():
                        if value == value:
                            mlflow.log_metric(f"{resolution}_{horizon}_{metric}", float(value))

        cv.to_parquet(scratch_dir / "cv_forecasts.parquet", index=False)
        scores.to_csv(scratch_dir / "cv_scores.csv", index=False)
        mlflow.log_artifact(str(scratch_dir / "cv_forecasts.parquet"), "cv")
        mlflow.log_artifact(str(scratch_dir / "cv_scores.csv"), "cv")
        for path in Path(global_output).glob("importance_*.csv"):
            mlflow.log_artifact(str(path), "feature_importance")
        for path in _plot_forecasts(cv, scratch_dir):
            mlflow.log_artifact(str(path), "plots")
        mlflow.log_dict(
            {"weights": weights, "width_factors": width_factors,
             "month_interval": month_interval},
            "ensemble.json",
        )
        if month_interval:
            mlflow.log_metric("month_interval_correlation", month_interval["correlation"])
            mlflow.log_metric("month_interval_spread_factor", month_interval["spread_factor"])
            mlflow.log_metric("month_interval_cv_coverage", month_interval["cv_coverage"])

        from models.forecaster import RecipeConfig

        config = RecipeConfig.from_dict(plan["config"])
        bundle_dir = write_bundle(
            scratch_dir / "bundle", config, weights, width_factors, global_models,
            extra={"data_hash": plan["data_hash"], "as_of": plan["as_of"],
                   "month_interval": month_interval},
        )
        signature, example = _signature_and_example(plan["history_path"])
        model_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=UsagecastForecaster(),
            artifacts={"bundle": str(bundle_dir)},
            code_paths=[str(REPO_ROOT / "features"), str(REPO_ROOT / "models")],
            signature=signature,
            input_example=example,
            pip_requirements=_pip_requirements(),
            model_config={"model_version": f"run:{parent.info.run_id[:12]}"},
        )
        registered = mlflow.register_model(model_info.model_uri, name)
        version = str(registered.version)

    tags = {
        "cv_wape": f"{cv_wape:.6f}",
        "champion_cv_wape": "" if champion is None else f"{champion['cv_wape']:.6f}",
        "champion_version_compared": "" if champion is None else champion["version"],
        "decision": decision,
        "promoted": str(promote).lower(),
        CONFIG_TAG: json.dumps(plan["config"], sort_keys=True),
        "data_hash": plan["data_hash"],
        "data_window": f"{plan['data_window'][0]}..{plan['data_window'][1]}",
        "code_version": plan["code_version"],
        "run_id": parent.info.run_id,
        MONTH_INTERVAL_TAG: json.dumps(month_interval, sort_keys=True) if month_interval else "",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, CHALLENGER, version)
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    champion_now = champion_version(settings, client)
    logger.info("registered %s version %s: %s", name, version, decision)
    return {
        "version": version,
        "alias": CHAMPION if promote else CHALLENGER,
        "champion_version": str(champion_now.version) if champion_now else None,
        "cv_wape": float(cv_wape),
        "champion_cv_wape": None if champion is None else float(champion["cv_wape"]),
        "decision": decision,
        "run_id": parent.info.run_id,
        "weights": weights,
        "width_factors": width_factors,
        "month_interval": month_interval,
    }


def month_interval_of(version) -> dict | None:
    """The month interval a registered version learned in CV; None for older versions."""
    recorded = (getattr(version, "tags", None) or {}).get(MONTH_INTERVAL_TAG)
    return json.loads(recorded) if recorded else None


def registry_state(settings) -> list[dict]:
    """Every version with its aliases and recorded scores, newest first."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        model = client.get_registered_model(settings.registered_model)
    except MlflowException:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name='{settings.registered_model}'")
    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        rows.append({
            "version": str(version.version),
            "aliases": sorted(aliases.get(str(version.version), [])),
            "cv_wape": version.tags.get("cv_wape"),
            "champion_cv_wape": version.tags.get("champion_cv_wape"),
            "decision": version.tags.get("decision"),
            "data_window": version.tags.get("data_window"),
        })
    return rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the state as JSON")


def run(args: argparse.Namespace, settings) -> str:
    import sys

    rows = registry_state(settings)
    if not rows:
        return f"no versions of {settings.registered_model} yet: run `usagecast train` first"
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(f"{'version':>7}  {'aliases':<20} {'cv_wape':>9} {'vs champ':>9}  "
                         "decision\n")
        for row in rows:
            sys.stdout.write(
                f"{row['version']:>7}  {','.join(row['aliases']) or '-':<20} "
                f"{row['cv_wape'] or '-':>9} {row['champion_cv_wape'] or '-':>9}  "
                f"{row['decision'] or ''}\n"
            )
    champion = next((row for row in rows if CHAMPION in row["aliases"]), None)
    return (
        f"{settings.registered_model}: {len(rows)} version(s), champion "
        f"{champion['version'] if champion else 'none'}"
    )
