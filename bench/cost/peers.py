"""Peer forecasts for bench/cost (statsforecast MSTL/AutoETS, mlforecast LightGBM).

Runs in ``bench/.venv-peers`` (pandas 2):
``bench/.venv-peers/bin/python bench/cost/peers.py HISTORY.parquet CASES.parquet OUT.parquet``.
HISTORY holds the training series (``ds``, ``y``: the same filled days the champion trains
on), CASES one row per as-of date (``as_of``, ``steps``: days to the end of the month).
Writes one row per (as_of, model, ds) with the forecast ``yhat``, fitted on the days before
``as_of`` only; a model that fails on a date writes one row with its ``error`` instead.
The models and their settings are bench/accuracy's, so both benches score the same peers.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "accuracy"))

from peers import forecast_rows  # noqa: E402


def main() -> None:
    history_path, cases_path, out_path = (Path(arg) for arg in sys.argv[1:4])
    warnings.filterwarnings("ignore", category=FutureWarning)
    history = pd.read_parquet(history_path).set_index("ds")["y"].dropna().sort_index()
    cases = pd.read_parquet(cases_path)
    rows = []
    started = time.perf_counter()
    for as_of, steps in zip(pd.to_datetime(cases["as_of"]), cases["steps"], strict=True):
        train = history[history.index < as_of]
        rows += forecast_rows(train, int(steps), daily=True, as_of=as_of)
        print(f"peers as of {as_of.date()} ({time.perf_counter() - started:.0f}s)", flush=True)
    pd.DataFrame(rows).to_parquet(out_path, index=False)


if __name__ == "__main__":
    main()
