"""Accuracy of the champion recipe against its baselines and peers on the real series.

Protocol: shared/ANCHORS.md (3 rolling-origin folds, expanding window, refit per
fold). For every fold the champion is trained exactly as ``usagecast train`` does
it, on the data before the fold's origin only (``pipelines.train.fit_recipe``:
inner CV folds, ensemble weights learned from them, the global LightGBM fit on
all series of the group), then the forecast at the origin. The peers from
statsforecast and mlforecast run in ``bench/.venv-peers`` (made here from
``peers_requirements.txt``) through ``peers.py``; their forecasts come back in a
Parquet file and are scored here by the same code as ours.

Usage: ``.venv/bin/python bench/accuracy/run.py [--skip-peers] [--out bench/accuracy]``
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from peers_env import peers_python  # noqa: E402
from series import folds, horizon, load_series, to_daily  # noqa: E402

from features.history import unit_series  # noqa: E402
from models.cv import plan_folds  # noqa: E402
from models.forecaster import DAY_HOURS, RecipeConfig, combine, member_forecasts  # noqa: E402
from pipelines.train import fit_recipe  # noqa: E402

MODELS = ("champion", "snaive", "prophet", "lightgbm", "tutorial", "mstl", "autoets", "mlf_lgbm")
TUTORIAL_PROPHET_WEIGHT = 0.5


def history_frame(named: dict[str, pd.Series], resolution: str) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"series_id": name, "resolution": resolution, "ds": s.index,
                      "target": "requests", "y": s.to_numpy(dtype=float)}).dropna()
        for name, s in named.items()
    ]
    return pd.concat(frames, ignore_index=True)


def champion_and_members(history: pd.DataFrame, origin: pd.Timestamp, evaluation: str) -> dict:
    """Our recipe trained before ``origin``: {model: {series: DataFrame(ds, yhat)}}."""
    resolution = "hour" if evaluation == "h48" else "day"
    steps = 48 if evaluation == "h48" else (7 if evaluation == "d7" else 35)
    before = history[history["ds"] < origin]
    config = RecipeConfig(countries=("US",))
    inner = {resolution: plan_folds(before, origin, 3)[resolution]}
    bundle = fit_recipe(before, origin, config, inner)
    weights, widths = bundle["weights"], bundle["width_factors"]
    units = unit_series(before, resolution, origin)
    members = member_forecasts(
        units, resolution, steps, config, bundle["models"].get(resolution),
        hourly_units=unit_series(before, "hour", origin) if resolution == "day" else None,
        hours_model=bundle["models"].get(DAY_HOURS),
    )
    mixed = combine(members, resolution, weights.get(resolution, {}), widths.get(resolution, 1.0))
    result: dict[str, dict[str, pd.DataFrame]] = {"champion": {}, "lightgbm": {}}
    for series, rows in mixed.groupby("series_id"):
        result["champion"][series] = rows[["ds", "p50"]].rename(columns={"p50": "yhat"})
    for series, rows in members[members["member"] == "lightgbm"].groupby("series_id"):
        result["lightgbm"][series] = rows[["ds", "p50"]].rename(columns={"p50": "yhat"})
    result["weights"] = weights.get(resolution, "no inner fold: equal weights")
    return result


def snaive(train: pd.Series, steps: int, season: int) -> np.ndarray:
    values = train.to_numpy(dtype=float)
    out = np.empty(steps)
    for step in range(steps):
        out[step] = values[len(values) + step - season * (step // season + 1)]
    return out


def prophet_forecast(train: pd.Series, steps: int, daily: bool) -> np.ndarray:
    from prophet import Prophet

    frame = pd.DataFrame({"ds": train.index, "y": train.to_numpy()}).dropna()
    model = Prophet(daily_seasonality=not daily, weekly_seasonality=True,
                    yearly_seasonality=daily, uncertainty_samples=0)
    model.fit(frame)
    freq = "D" if daily else "h"
    future = pd.DataFrame({"ds": pd.date_range(train.index[-1], periods=steps + 1,
                                               freq=freq)[1:]})
    return np.clip(model.predict(future)["yhat"].to_numpy(), 0, None)


def tutorial_forecast(train: pd.Series, steps: int, daily: bool, prophet: np.ndarray):
    """LightGBM on lags that are 0 at prediction time, blended 50/50 with Prophet."""
    import lightgbm as lgb

    lags = [1, 7, 28] if daily else [1, 24, 168]
    frame = pd.DataFrame({"y": train.interpolate(limit_direction="both")})
    for lag in lags:
        frame[f"lag_{lag}"] = frame["y"].shift(lag)
    frame["weekday"] = frame.index.day_of_week
    frame["season"] = frame.index.month if daily else frame.index.hour
    frame = frame.dropna()
    features = [c for c in frame.columns if c != "y"]
    booster = lgb.train({"objective": "regression", "verbosity": -1, "num_threads": 1},
                        lgb.Dataset(frame[features], frame["y"]), 100)
    freq = "D" if daily else "h"
    future_index = pd.date_range(train.index[-1], periods=steps + 1, freq=freq)[1:]
    future = pd.DataFrame({f"lag_{lag}": 0.0 for lag in lags}, index=future_index)
    future["weekday"] = future_index.day_of_week
    future["season"] = future_index.month if daily else future_index.hour
    gbm = np.clip(booster.predict(future[features]), 0, None)
    return TUTORIAL_PROPHET_WEIGHT * prophet + (1 - TUTORIAL_PROPHET_WEIGHT) * gbm


def season_naive_scale(train: pd.Series, evaluation: str) -> float:
    if evaluation == "d7":
        days = train.resample("D").agg(["sum", "count"])
        values = days.loc[days["count"] == 24, "sum"].to_numpy()
        season = 7
    else:
        values = train.to_numpy(dtype=float)
        season = 168 if evaluation == "h48" else 7
    if len(values) <= season:
        return float("nan")
    differences = np.abs(values[season:] - values[:-season])
    differences = differences[~np.isnan(differences)]
    return float(differences.mean()) if differences.size else float("nan")


def actual_for(series: pd.Series, origin: pd.Timestamp, evaluation: str) -> pd.Series:
    if evaluation == "h48":
        return series[(series.index >= origin) & (series.index < origin + pd.Timedelta(hours=48))]
    if evaluation == "d7":
        window = series[(series.index >= origin) & (series.index < origin + pd.Timedelta(days=7))]
        return window.resample("D").sum()
    return series[(series.index >= origin) & (series.index < origin + pd.Timedelta(days=35))]


def run_ours(series_by_name: dict, log, cache_dir: Path) -> tuple[pd.DataFrame, dict]:
    """Forecast rows (series, evaluation, origin, model, ds, yhat) of every main-venv model.

    Each fold's rows are kept in ``cache_dir`` so that an interrupted run resumes.
    """
    rows, weights = [], {}
    cache_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[str, dict[str, pd.Series]] = {}
    for name, (group, series) in series_by_name.items():
        groups.setdefault(group, {})[name] = series
    for group, members in groups.items():
        daily = group == "wiki"
        history = history_frame(members, "day" if daily else "hour")
        for evaluation in ["d35"] if daily else ["h48", "d7"]:
            origins = sorted({o for s in members.values() for o in folds(s, evaluation)})
            for origin in origins:
                started = time.perf_counter()
                piece = cache_dir / f"{group}_{evaluation}_{origin:%Y%m%dT%H}.parquet"
                if piece.exists():
                    rows.append(pd.read_parquet(piece))
                    continue
                fold_rows = []
                ours = champion_and_members(history, origin, evaluation)
                weights[f"{group}/{evaluation}/{origin.date()}"] = ours.pop("weights")
                for model, per_series in ours.items():
                    for name, frame in per_series.items():
                        fold_rows += [{"series": name, "evaluation": evaluation, "origin": origin,
                                  "model": model, "ds": ds, "yhat": y}
                                 for ds, y in zip(frame["ds"], frame["yhat"], strict=True)]
                for name, series in members.items():
                    if origin not in folds(series, evaluation):
                        continue
                    train = series[series.index < origin]
                    steps = horizon(evaluation)
                    season = 7 if daily else 168
                    index = pd.date_range(origin, periods=steps, freq="D" if daily else "h")
                    prophet = prophet_forecast(train, steps, daily)
                    forecasts = {"snaive": snaive(train, steps, season), "prophet": prophet}
                    try:
                        forecasts["tutorial"] = tutorial_forecast(train, steps, daily, prophet)
                    except ValueError as error:  # too short for its lags: a result, as for peers
                        log(f"tutorial failed on {name} {evaluation} {origin}: {error}")
                        forecasts["tutorial"] = np.full(steps, np.nan)
                    for model, values in forecasts.items():
                        frame = pd.DataFrame({"ds": index, "yhat": values})
                        if evaluation == "d7":
                            frame = to_daily(frame)
                        fold_rows += [{"series": name, "evaluation": evaluation, "origin": origin,
                                  "model": model, "ds": ds, "yhat": y}
                                 for ds, y in zip(frame["ds"], frame["yhat"], strict=True)]
                frame = pd.DataFrame(fold_rows)
                frame.to_parquet(piece, index=False)
                rows.append(frame)
                log(f"{group} {evaluation} origin {origin}: {time.perf_counter() - started:.0f}s")
    return pd.concat(rows, ignore_index=True), weights


def run_peers(real_dir: Path, out_dir: Path, log, peers_file: Path | None) -> pd.DataFrame:
    path = peers_file
    if path is not None:
        log(f"reusing peer forecasts from {peers_file}")
    else:
        path = out_dir / "peers_forecasts.parquet"
        subprocess.run([str(peers_python()), str(HERE / "peers.py"), str(real_dir), str(path)],
                       check=True)
    peers = pd.read_parquet(path)
    peers["origin"] = pd.to_datetime(peers["origin"])
    daily_sum = []
    for key, frame in peers[peers["evaluation"] == "d7"].groupby(
        ["series", "evaluation", "origin", "model"]
    ):
        if frame["ds"].isna().all():
            daily_sum.append(frame)
            continue
        summed = to_daily(frame[["ds", "yhat"]])
        daily_sum.append(summed.assign(series=key[0], evaluation=key[1], origin=key[2],
                                       model=key[3], error=""))
    others = peers[peers["evaluation"] != "d7"]
    return pd.concat([others] + daily_sum, ignore_index=True)


def score(forecasts: pd.DataFrame, series_by_name: dict) -> pd.DataFrame:
    """WAPE over a series' folds and MASE averaged over folds, per model and evaluation."""
    rows = []
    for (name, evaluation, model), group in forecasts.groupby(["series", "evaluation", "model"]):
        series = series_by_name[name][1]
        expected = folds(series, evaluation)
        errors, sizes, mases, failed = 0.0, 0.0, [], 0
        for origin in expected:
            fold = group[group["origin"] == origin]
            if fold.empty or fold["yhat"].isna().all():
                failed += 1
                continue
            actual = actual_for(series, origin, evaluation)
            joined = pd.DataFrame({"y": actual}).join(fold.set_index("ds")["yhat"]).dropna()
            errors += float((joined["y"] - joined["yhat"]).abs().sum())
            sizes += float(joined["y"].abs().sum())
            scale = season_naive_scale(series[series.index < origin], evaluation)
            if np.isfinite(scale) and scale > 0:
                mases.append(float((joined["y"] - joined["yhat"]).abs().mean()) / scale)
        rows.append({
            "series": name, "evaluation": evaluation, "model": model, "folds": len(expected),
            "failed": failed, "wape": errors / sizes if sizes > 0 and not failed else np.nan,
            "mase": float(np.mean(mases)) if mases and not failed else np.nan,
        })
    return pd.DataFrame(rows)


def markdown(scores: pd.DataFrame) -> str:
    models = [m for m in MODELS if m in set(scores["model"])]
    lines = []
    for evaluation in ("h48", "d7", "d35"):
        table = scores[scores["evaluation"] == evaluation]
        if table.empty:
            continue
        lines += [f"\n### {evaluation} (cells: WAPE / MASE)\n",
                  "| series | folds | " + " | ".join(models) + " |",
                  "|---|---|" + "---|" * len(models)]
        for name, rows in table.groupby("series", sort=False):
            cells = []
            by_model = rows.set_index("model")
            for model in models:
                if model not in by_model.index:
                    cells.append("-")
                    continue
                row = by_model.loc[model]
                if row["failed"]:
                    cells.append(f"ERROR ({int(row['failed'])}/{int(row['folds'])} folds)")
                    continue
                mase = "n/a" if pd.isna(row["mase"]) else f"{row['mase']:.2f}"
                cells.append(f"{row['wape']:.3f} / {mase}")
            lines.append(f"| {name} | {int(rows['folds'].iloc[0])} | " + " | ".join(cells) + " |")
        means = table.groupby("model")[["wape", "mase"]].mean()
        lines.append("| **mean** | | " + " | ".join(
            f"**{means.loc[m, 'wape']:.3f}** / {means.loc[m, 'mase']:.2f}" if m in means.index
            else "-" for m in models) + " |")
    return "\n".join(lines)


def verdict(scores: pd.DataFrame) -> list[str]:
    """Does the champion beat snaive and the tutorial on every series, and each peer on mean?"""
    lines = []
    for evaluation, table in scores.groupby("evaluation"):
        wape = table.pivot(index="series", columns="model", values="wape")
        for rival in ("snaive", "tutorial"):
            if rival in wape.columns:
                losses = wape.index[(wape["champion"] >= wape[rival]) & wape[rival].notna()]
                lines.append(f"{evaluation}: champion beats {rival} on "
                             f"{len(wape) - len(losses)}/{len(wape)} series"
                             + (f" (not: {', '.join(losses)})" if len(losses) else ""))
        means = wape.mean()
        better = [m for m in means.index if m != "champion" and means[m] <= means["champion"]]
        lines.append(f"{evaluation}: mean WAPE champion {means['champion']:.3f}; peers at or "
                     f"below it: {', '.join(better) or 'none'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-dir", type=Path, default=REPO.parent / "shared" / "data" / "real")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--peers-file", type=Path, help="reuse peers.py output")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)

    series_by_name = load_series(args.real_dir)
    ours, weights = run_ours(series_by_name, log, args.out / "folds")
    frames = [ours]
    if not args.skip_peers:
        frames.append(run_peers(args.real_dir, args.out, log, args.peers_file))
    forecasts = pd.concat(frames, ignore_index=True)
    scores = score(forecasts, series_by_name)
    scores.to_csv(args.out / "scores.csv", index=False)
    (args.out / "ensemble_weights.json").write_text(json.dumps(weights, indent=1))
    text = markdown(scores)
    summary = verdict(scores)
    (args.out / "table.md").write_text(text + "\n\n" + "\n".join(f"- {s}" for s in summary) + "\n")
    print(text)
    print("\n".join(summary))
    log("done")


if __name__ == "__main__":
    main()
