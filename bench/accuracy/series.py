"""The real benchmark series and their folds, exactly as shared/ANCHORS.md describes them.

Shared by ``run.py`` (main venv) and ``peers.py`` (peers venv): plain pandas only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TWEETS = ("AAPL", "AMZN", "CRM", "CVS", "FB", "KO", "PFE")
FOLDS = 3
MIN_TRAIN = pd.Timedelta(days=7)


def hourly_counts(path: Path) -> pd.Series:
    """5-minute counts summed to UTC hours; empty slots inside the span count as 0."""
    raw = pd.read_csv(path, parse_dates=["timestamp"])
    return raw.set_index("timestamp")["value"].resample("h").sum().astype(float)


def load_series(real_dir: Path) -> dict[str, tuple[str, pd.Series]]:
    """{name: (group, series)}; group ``tweets`` shares fold origins, the others stand alone."""
    series = {}
    for ticker in TWEETS:
        path = real_dir / "nab_tweets" / f"twitter_volume_{ticker}.csv"
        series[f"tw_{ticker}"] = ("tweets", hourly_counts(path))
    elb = real_dir / "nab_aws" / "elb_request_count_8c0756.csv"
    series["elb_8c0756"] = ("elb", hourly_counts(elb))
    wiki = pd.read_csv(real_dir / "wikipedia_daily" / "wp_log_R.csv", parse_dates=["ds"])
    wiki = wiki.sort_values("ds").set_index("ds")["y"]
    wiki = np.exp(wiki).asfreq("D")
    series["wp_R"] = ("wiki", wiki)
    return series


def folds(series: pd.Series, evaluation: str) -> list[pd.Timestamp]:
    """Fold origins, oldest first: h48 (hourly, 168 h apart, last ending at the last full
    hour), d7 (midnight origins 7 days apart, last ending at the last full day), d35."""
    start = series.index[0]
    if evaluation == "h48":
        end = series.index[-1] + pd.Timedelta(hours=1)
        origins = [end - pd.Timedelta(hours=48 + 168 * k) for k in range(FOLDS)]
    elif evaluation == "d7":
        end = (series.index[-1] + pd.Timedelta(hours=1)).floor("D")
        origins = [end - pd.Timedelta(days=7 * (k + 1)) for k in range(FOLDS)]
    else:
        end = series.index[-1] + pd.Timedelta(days=1)
        origins = [end - pd.Timedelta(days=35 * (k + 1)) for k in range(FOLDS)]
    return sorted(origin for origin in origins if origin - start >= MIN_TRAIN)


def horizon(evaluation: str) -> int:
    return {"h48": 48, "d7": 168, "d35": 35}[evaluation]


def evaluations(name: str) -> list[str]:
    return ["d35"] if name.startswith("wp_") else ["h48", "d7"]


def to_daily(frame: pd.DataFrame) -> pd.DataFrame:
    """Sum hourly forecasts (columns ds, yhat) to daily totals."""
    days = frame.assign(ds=frame["ds"].dt.floor("D"))
    return days.groupby("ds", as_index=False)["yhat"].sum(min_count=1)
