"""Wall time of a full ``usagecast train`` (CV + fit + registry) on the real replay series.

The lake holds the 7 tweet series (57 days, hourly) as 7 gateway series: requests
are the real hourly counts, token columns are requests times fixed per-call sizes
(``tests/models/real_lake.py``; derived data), so there are 28 units as in the full
replay. Baseline, measured in the same run on the same
hourly folds (3 windows, 48 h, 168 h apart): mlforecast's ``cross_validation`` of
LightGBM alone, in bench/.venv-peers (see bench/accuracy/peers_requirements.txt).

Usage: ``.venv/bin/python bench/train/run.py``
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "models"))

from real_lake import hourly_table, nab_hourly, write_hourly_lake  # noqa: E402

from pipelines import train  # noqa: E402
from pipelines.settings import load_settings  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real"
TICKERS = ("AAPL", "AMZN", "CRM", "CVS", "FB", "KO", "PFE")
PEERS_PYTHON = REPO / "bench" / ".venv-peers" / "bin" / "python"


def build_lake(lake_dir: Path) -> pd.DataFrame:
    frames = []
    for ticker in TICKERS:
        counts = nab_hourly(REAL / "nab_tweets" / f"twitter_volume_{ticker}.csv")
        frames.append(hourly_table(ticker, counts, counts.index[0].ceil("D"),
                                   counts.index[-1].floor("D")))
    write_hourly_lake(lake_dir, frames)
    hourly = pd.concat(frames, ignore_index=True)
    long = hourly.melt(id_vars=["series_id", "hour"],
                       value_vars=["requests", "input_tokens", "output_tokens",
                                   "cached_input_tokens"], var_name="target", value_name="y")
    return pd.DataFrame({"unique_id": long["series_id"] + ":" + long["target"],
                         "ds": long["hour"].dt.tz_localize(None), "y": long["y"].astype(float)})


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(env={}, data_dir=Path(scratch) / "var", progress=False)
        units = build_lake(settings.lake_dir)
        units_path = Path(scratch) / "units.parquet"
        units.to_parquet(units_path, index=False)

        stages = {}
        started = time.perf_counter()
        plan = train.plan_training(settings, shard_count=1)
        stages["plan"] = time.perf_counter() - started
        mark = time.perf_counter()
        shard = train.train_shard(settings, plan, 0)
        stages["shard (snaive + Prophet CV)"] = time.perf_counter() - mark
        mark = time.perf_counter()
        global_output = train.train_global(settings, plan)
        stages["global (LightGBM CV + fit)"] = time.perf_counter() - mark
        mark = time.perf_counter()
        result = train.register_training(settings, plan, [shard], global_output)
        stages["register (ensemble, MLflow)"] = time.perf_counter() - mark
        ours = time.perf_counter() - started

        baseline = None
        if PEERS_PYTHON.exists():
            output = subprocess.run([str(PEERS_PYTHON), str(HERE / "mlf_cv.py"), str(units_path)],
                                    check=True, capture_output=True, text=True).stdout
            baseline = json.loads(output.strip().splitlines()[-1])

    print(f"units: {units['unique_id'].nunique()}, hourly rows: {len(units)}, "
          f"folds: {json.dumps({k: len(v['origins']) for k, v in plan['folds'].items()})}")
    for name, seconds in stages.items():
        print(f"  {name:<32} {seconds:7.1f} s")
    print(f"usagecast full retrain with CV:   {ours:7.1f} s (CV WAPE {result['cv_wape']:.3f})")
    if baseline:
        print(f"mlforecast CV, LightGBM alone:    {baseline['seconds']:7.1f} s "
              f"(pooled WAPE {baseline['wape_pooled']:.3f})")
        print(f"ratio full retrain / mlforecast CV: {ours / baseline['seconds']:.1f}x; "
              f"LightGBM stage / mlforecast CV: "
              f"{stages['global (LightGBM CV + fit)'] / baseline['seconds']:.1f}x")
    else:
        print("mlforecast baseline skipped: run bench/accuracy/run.py once to create "
              "bench/.venv-peers")


if __name__ == "__main__":
    main()
