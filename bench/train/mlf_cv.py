"""mlforecast's cross-validation of LightGBM alone, timed; runs in bench/.venv-peers.

Usage: ``bench/.venv-peers/bin/python bench/train/mlf_cv.py HOURLY.parquet``
(columns unique_id, ds, y). Prints one JSON line with the wall time in seconds.
"""

from __future__ import annotations

import json
import sys
import time

import lightgbm as lgb
import pandas as pd
from mlforecast import MLForecast
from mlforecast.lag_transforms import RollingMean


def main() -> None:
    frame = pd.read_parquet(sys.argv[1])
    started = time.perf_counter()
    forecaster = MLForecast(
        models={"lgbm": lgb.LGBMRegressor(verbosity=-1, n_jobs=1)}, freq="h",
        lags=[1, 24, 168], lag_transforms={1: [RollingMean(24)], 24: [RollingMean(168)]},
        date_features=["hour", "dayofweek"],
    )
    result = forecaster.cross_validation(frame, n_windows=3, h=48, step_size=168)
    elapsed = time.perf_counter() - started
    error = (result["y"] - result["lgbm"]).abs().sum() / result["y"].abs().sum()
    print(json.dumps({"seconds": elapsed, "rows": len(result), "wape_pooled": float(error)}))


if __name__ == "__main__":
    main()
