"""Peer forecasts (statsforecast MSTL/AutoETS, mlforecast LightGBM), run in bench/.venv-peers.

Usage: ``bench/.venv-peers/bin/python bench/accuracy/peers.py REAL_DIR OUT.parquet``.
Writes one row per (series, evaluation, origin, model, ds) with the forecast ``yhat``;
a model that fails on a fold writes no rows and one ``error`` row instead.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from series import evaluations, folds, horizon, load_series  # noqa: E402


def _statsforecast(train: pd.Series, steps: int, daily: bool) -> dict[str, pd.Series]:
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS

    frame = pd.DataFrame({"unique_id": "s", "ds": train.index, "y": train.to_numpy()})
    seasons = [7, 365] if daily else [24, 168]
    seasons = [season for season in seasons if len(train) >= 2 * season]
    models = [MSTL(season_length=seasons or [7 if daily else 24], alias="mstl"),
              AutoETS(season_length=7 if daily else 24, alias="autoets")]
    engine = StatsForecast(models=models, freq="D" if daily else "h", n_jobs=1)
    result = engine.forecast(df=frame, h=steps)
    return {name: result.set_index("ds")[name].clip(lower=0) for name in ("mstl", "autoets")}


def _mlforecast(train: pd.Series, steps: int, daily: bool) -> pd.Series:
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    frame = pd.DataFrame({"unique_id": "s", "ds": train.index, "y": train.to_numpy()})
    if daily:
        lags, transforms, dates = [1, 7, 28], {1: [RollingMean(7)], 7: [RollingMean(28)]}, [
            "dayofweek", "month"]
    else:
        lags, transforms, dates = [1, 24, 168], {1: [RollingMean(24)], 24: [RollingMean(168)]}, [
            "hour", "dayofweek"]
    forecaster = MLForecast(
        models={"mlf_lgbm": lgb.LGBMRegressor(verbosity=-1, n_jobs=1)},
        freq="D" if daily else "h", lags=lags, lag_transforms=transforms, date_features=dates,
    )
    forecaster.fit(frame)
    return forecaster.predict(steps).set_index("ds")["mlf_lgbm"].clip(lower=0)


def forecast_rows(train: pd.Series, steps: int, daily: bool, **keys) -> list[dict]:
    """Every peer's forecast of ``steps`` steps after ``train``, as rows carrying ``keys``.

    A peer that fails writes one row with its ``error`` and no forecast: a result, not a
    crash, so one bad fit never loses the others.
    """
    rows: list[dict] = []
    forecasts: dict[str, pd.Series] = {}
    for label in ("stats", "mlf"):
        try:
            if label == "stats":
                forecasts.update(_statsforecast(train, steps, daily))
            else:
                forecasts["mlf_lgbm"] = _mlforecast(train, steps, daily)
        except Exception as error:  # a peer failing on a fold is a result
            names = ["mstl", "autoets"] if label == "stats" else ["mlf_lgbm"]
            rows.extend({**keys, "model": model, "ds": pd.NaT, "yhat": float("nan"),
                         "error": repr(error)[:200]} for model in names)
    for model, values in forecasts.items():
        rows.extend({**keys, "model": model, "ds": ds, "yhat": float(value), "error": ""}
                    for ds, value in values.items())
    return rows


def main() -> None:
    real_dir, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    warnings.filterwarnings("ignore", category=FutureWarning)
    rows = []
    started = time.perf_counter()
    for name, (_group, series) in load_series(real_dir).items():
        for evaluation in evaluations(name):
            daily = evaluation == "d35"
            for origin in folds(series, evaluation):
                train = series[series.index < origin]
                if daily:
                    train = train.interpolate(limit_direction="both")
                rows += forecast_rows(train, horizon(evaluation), daily, series=name,
                                      evaluation=evaluation, origin=origin)
            print(f"peers {name} {evaluation} done ({time.perf_counter() - started:.0f}s)",
                  flush=True)
    pd.DataFrame(rows).to_parquet(out_path, index=False)


if __name__ == "__main__":
    main()
