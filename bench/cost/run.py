"""Month-total cost estimates as of day 10 and day 20 of every full month, on real series.

Usage: .venv/bin/python bench/cost/run.py [--cache DIR] [--limit-months N] [--skip-peers]

Series (read in place from ../shared/data/real, or USAGECAST_REAL_DATA_DIR):
- the replay log's seven series: their calls per UTC day are the NAB tweet counts
  (the replay tool places one call per counted tweet); tokens per call are the
  mean of the real Azure traces, priced at each series' model; March 2015;
- the Wikipedia article views (exp of the file's value) taken as one series' daily
  requests on openai/gpt-4.1, every month with no missing day of its own (its actual
  cost is then known); the missing days before it are interpolated for training only
  (``../shared/ANCHORS.md``'s protocol) and scored nowhere.

For every as-of date the champion's recipe is retrained on the days before it, as
``usagecast train`` builds it (``pipelines.train.fit_recipe``: CV folds, ensemble
weights, interval widths and the month interval learned on them, the global
LightGBM refit), and forecasts the rest of the month through the served model's
own predict path (``models.pyfunc.forecast_with_bundle``). The seven replay series
are trained together, as one lake would be; only their daily resolution is fitted
(the hourly models do not feed the daily forecast). The estimate is usagecast's
cost path (``pipelines.cost``: actual to date plus the forecast rest, p10/p90 by the
model's learned month rule, or by the setting's correlation for comparison).
Baselines measured in the same run: run-rate, and month-to-date + seasonal naive; and on
Wikipedia the peers (statsforecast MSTL and AutoETS, mlforecast LightGBM) forecasting the
rest of the month (``bench/cost/peers.py``, in ``bench/.venv-peers``; ``--skip-peers``).
Each as-of date's forecast is cached, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import calendar
import functools
import hashlib
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE.parent))

from peers_env import PEERS_VENV, peers_python  # noqa: E402

from models.cv import plan_folds  # noqa: E402
from models.forecaster import RecipeConfig  # noqa: E402
from models.pyfunc import forecast_with_bundle  # noqa: E402
from pipelines import cost  # noqa: E402
from pipelines.prices import load_prices  # noqa: E402
from pipelines.settings import load_settings  # noqa: E402
from pipelines.train import data_hash, fit_recipe, learn_month_interval_from  # noqa: E402

REAL = Path(os.environ.get("USAGECAST_REAL_DATA_DIR", REPO.parent / "shared" / "data" / "real"))
ROUTES = {
    "AAPL": ("anthropic", "claude-sonnet-4.5"),
    "AMZN": ("openai", "gpt-4.1"),
    "CRM": ("openai", "gpt-4.1"),
    "CVS": ("anthropic", "claude-opus-4"),
    "FB": ("anthropic", "claude-sonnet-4.5"),
    "KO": ("deepseek", "deepseek-v3.2"),
    "PFE": ("deepseek", "deepseek-v3.2"),
}
WIKI_ROUTE = ("openai", "gpt-4.1")
AS_OF_DAYS = (10, 20)


def mean_tokens() -> tuple[float, float]:
    frames = [pd.read_csv(path) for path in sorted((REAL / "azure_llm_2023").glob("*.csv"))]
    traces = pd.concat(frames)
    return float(traces["ContextTokens"].mean()), float(traces["GeneratedTokens"].mean())


def tweet_series() -> dict[str, pd.Series]:
    """Calls per complete UTC day (all 288 five-minute counts present)."""
    out = {}
    for name in ROUTES:
        counts = pd.read_csv(
            REAL / "nab_tweets" / f"twitter_volume_{name}.csv", parse_dates=["timestamp"]
        )
        per_day = counts.set_index("timestamp")["value"].resample("D")
        complete = per_day.count() == 288
        out[name] = per_day.sum()[complete].astype(float)
    return out


def wikipedia_series() -> pd.Series:
    """Daily views (exp of the file's log value) on a full daily grid, NaN where missing."""
    views = pd.read_csv(REAL / "wikipedia_daily" / "wp_log_R.csv", parse_dates=["ds"])
    views = views.drop_duplicates("ds").set_index("ds")["y"].sort_index()
    return np.exp(views).asfreq("D")


def interpolated(series: pd.Series) -> pd.Series:
    """The training history: missing days filled linearly in the file's log scale.

    Why: ANCHORS.md's protocol, so the peers and this bench train on the same days. A
    filled day is never an actual: only months with every day of their own are scored,
    and each is scored on its own days. Filling the whole file at once leaks nothing
    into an as-of date's training: a gap before a scored month ends at a present day
    before the month starts, so its filled values use only days before the as-of date.
    """
    return np.exp(np.log(series).interpolate(method="time", limit_area="inside"))


def full_months(series: pd.Series, weeks_before: int = 0) -> list[pd.Timestamp]:
    """Months with every day present, and in the ``weeks_before`` weeks before them."""
    months = []
    for month_start in pd.date_range(series.index.min(), series.index.max(), freq="MS"):
        month_end = month_start + pd.offsets.MonthBegin(1)
        first = month_start - pd.Timedelta(weeks=weeks_before)
        window = series[(series.index >= first) & (series.index < month_end)]
        if window.notna().sum() == (month_end - first).days:
            months.append(month_start)
    return months


def history_frame(named: dict[str, pd.Series]) -> pd.DataFrame:
    """The model's long input: one ``requests`` unit per series, daily rows."""
    frames = [
        pd.DataFrame(
            {"series_id": name, "resolution": "day", "ds": values.index, "target": "requests",
             "y": values.to_numpy(dtype=float)}
        ).dropna()
        for name, values in named.items()
    ]
    return pd.concat(frames, ignore_index=True)


@functools.cache
def model_code_hash() -> str:
    """A hash of the code a forecast depends on: ``features/``, ``models/``, the training."""
    digest = hashlib.sha256()
    files = sorted([*(REPO / "features").glob("*.py"), *(REPO / "models").glob("*.py"),
                    REPO / "pipelines" / "train.py"])
    for path in files:
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def champion_forecast(
    history: pd.DataFrame, as_of: pd.Timestamp, days: int, settings, cache_dir: Path, label: str
) -> tuple[pd.DataFrame, dict | None]:
    """Daily p10/p50/p90 of requests from ``as_of`` by the recipe retrained before it.

    Cached per as-of date, training history and model code (content hashes, so a cache
    made from other days or by other code is never reused): the forecast rows and the
    ensemble's daily CV rows, from which the month interval is learned again on every
    run (by the training code).
    """
    before = history[history["ds"] < as_of]
    key = f"{label}_{as_of:%Y%m%d}_{data_hash(before)[:12]}_{model_code_hash()}"
    rows_path = cache_dir / f"{key}.parquet"
    cv_path = cache_dir / f"{key}_cv.parquet"
    if not (rows_path.exists() and cv_path.exists()):
        config = RecipeConfig(countries=tuple(settings.holiday_countries))
        folds = {"day": plan_folds(before, as_of, settings.cv_folds)["day"]}
        bundle = fit_recipe(before, as_of, config, folds)
        predicted = forecast_with_bundle(bundle, before, as_of, 0, days, "bench")
        predicted[["series_id", "target", "ds", "p10", "p50", "p90"]].to_parquet(
            rows_path, index=False
        )
        cv = bundle["cv"]
        daily_cv = cv[(cv["member"] == "ensemble")] if len(cv) else pd.DataFrame(
            columns=["member", "resolution", "origin", "series_id", "target", "h", "ds", "y",
                     "p10", "p50", "p90"]
        )
        daily_cv.to_parquet(cv_path, index=False)
    predicted = pd.read_parquet(rows_path)
    cv = pd.read_parquet(cv_path)
    return predicted, learn_month_interval_from(cv)


def cost_inputs(history: pd.Series, name: str, route, tokens, as_of, month_start, requests):
    """Actual daily usage of the month to date, and the forecast rows of every target."""
    provider, model = route
    actual_days = history[(history.index >= month_start) & (history.index < as_of)]
    daily = pd.DataFrame(
        {
            "series_id": name, "provider": provider, "model": model, "team": name,
            "day": actual_days.index.date, "resolution": "day",
            "requests": actual_days.to_numpy(),
            "input_tokens": actual_days.to_numpy() * tokens[0],
            "output_tokens": actual_days.to_numpy() * tokens[1],
            "cached_input_tokens": 0.0, "cache_write_tokens": 0.0,
        }
    )
    long = []
    for target, factor in (("requests", 1.0), ("input_tokens", tokens[0]),
                           ("output_tokens", tokens[1]), ("cached_input_tokens", 0.0)):
        long.append(requests.assign(
            resolution="day", target=target, p10=requests["p10"] * factor,
            p50=requests["p50"] * factor, p90=requests["p90"] * factor,
        ))
    return daily, pd.concat(long, ignore_index=True)


def estimate_month(daily, forecast_long, name, route, prices, as_of, rules):
    """Total month estimate (p10, p50, p90) per named month rule, through pipelines.cost."""
    provider, model = route
    no_hours = daily.iloc[0:0].assign(hour=pd.Series(dtype="datetime64[us, UTC]"))
    series = pd.DataFrame([{"series_id": name, "provider": provider, "model": model,
                            "team": name}])
    intervals = pd.concat(
        [cost.actual_intervals(no_hours, daily, prices),
         cost.forecast_intervals(forecast_long, series, {}, prices)],
        ignore_index=True,
    )
    months = cost.business_months(as_of.date(), "UTC", count=1)
    results = {}
    for label, rule in rules.items():
        rows = cost.monthly_estimates(intervals, months, rule.correlation,
                                      spread_factor=rule.spread_factor)
        total = rows[rows["level"] == "total"].iloc[0]
        results[label] = (total["estimate_p10"], total["estimate_p50"], total["estimate_p90"])
    return results


def unit_cost(name, route, tokens, prices) -> float:
    """USD of one call at the mean token sizes, by usagecast's pricing."""
    provider, model = route
    one = pd.DataFrame([{
        "series_id": name, "provider": provider, "model": model, "team": name,
        "day": pd.Timestamp("2015-01-01").date(), "resolution": "day", "requests": 1.0,
        "input_tokens": tokens[0], "output_tokens": tokens[1], "cached_input_tokens": 0.0,
        "cache_write_tokens": 0.0,
    }])
    no_hours = one.iloc[0:0].assign(hour=pd.Series(dtype="datetime64[us, UTC]"))
    return float(cost.actual_intervals(no_hours, one, prices)["cost_p50"].iloc[0])


def run_cases(cases, settings, prices, tokens, cache_dir: Path, log) -> pd.DataFrame:
    """One row per (data set, series, month, as-of day).

    A case is ``(dataset, actuals, training, route_of, months, earlier_set)``: the
    actual daily requests per series (NaN where missing), the history the recipe
    trains on, and the months of the earlier, stricter month set (column ``earlier``).
    """
    rows = []
    setting_rule = cost.MonthRule(settings.month_error_correlation)
    for dataset, named, training, route_of, month_starts, earlier_set in cases:
        history = history_frame(training)
        for month_start in month_starts:
            month_days = calendar.monthrange(month_start.year, month_start.month)[1]
            month_end = month_start + pd.Timedelta(days=month_days)
            for day in AS_OF_DAYS:
                as_of = month_start + pd.Timedelta(days=day - 1)
                started = time.perf_counter()
                predicted, learned = champion_forecast(
                    history, as_of, (month_end - as_of).days, settings, cache_dir, dataset
                )
                rules = {
                    "learned": cost.month_rule(learned, settings.month_error_correlation),
                    "setting": setting_rule,
                }
                for name, values in named.items():
                    route = route_of(name)
                    requests = predicted[predicted["series_id"] == name]
                    daily, long = cost_inputs(values, name, route, tokens, as_of, month_start,
                                              requests)
                    estimates = estimate_month(daily, long, name, route, prices, as_of, rules)
                    per_call = unit_cost(name, route, tokens, prices)
                    actual = values[(values.index >= month_start) & (values.index < month_end)]
                    if len(actual) != month_days or actual.isna().any():
                        raise ValueError(f"{name} {month_start:%Y-%m}: a day of the month is "
                                         "missing, so its actual cost is unknown")
                    truth = float(actual.sum()) * per_call
                    to_date = float(actual[actual.index < as_of].sum())
                    last_week = values[values.index < as_of].tail(7).to_numpy()
                    snaive = to_date + float(np.resize(last_week, month_days - day + 1).sum())
                    row = {
                        "dataset": dataset, "series": name, "month": f"{month_start:%Y-%m}",
                        "day": day, "as_of": as_of, "actual": truth,
                        "requests_to_date": to_date, "requests_month": float(actual.sum()),
                        "earlier": month_start in earlier_set,
                        "err_runrate": abs(to_date / (day - 1) * month_days * per_call - truth)
                        / truth,
                        "err_snaive": abs(snaive * per_call - truth) / truth,
                        "rho": rules["learned"].correlation,
                        "factor": rules["learned"].spread_factor,
                        "rule_source": rules["learned"].source,
                    }
                    for label, (p10, p50, p90) in estimates.items():
                        row[f"err_{label}"] = abs(p50 - truth) / truth
                        row[f"in_{label}"] = bool(p10 <= truth <= p90)
                        row[f"width_{label}"] = (p90 - p10) / truth
                    rows.append(row)
                log(f"{dataset} as of {as_of.date()}: {time.perf_counter() - started:.1f}s")
    return pd.DataFrame(rows)


PEER_MODELS = ("mstl", "autoets", "mlf_lgbm")


def peer_errors(frame: pd.DataFrame, training: pd.Series, cache_dir: Path, log) -> pd.DataFrame:
    """Add ``err_<peer>`` to the Wikipedia rows: month to date + the peer's forecast of the rest.

    The peers (bench/accuracy's MSTL, AutoETS and mlforecast LightGBM) run in the peers'
    venv on the same filled training days as the champion; their forecasts are point
    forecasts, so they get an error and no coverage. Cached under a hash of the inputs and
    of the peers' code.
    """
    wiki = frame[frame["dataset"] == "wikipedia"]
    month_ends = pd.to_datetime(wiki["month"] + "-01") + pd.offsets.MonthBegin(1)
    cases = pd.DataFrame({"as_of": wiki["as_of"], "steps": (month_ends - wiki["as_of"]).dt.days})
    cases = cases.drop_duplicates().sort_values("as_of").reset_index(drop=True)
    history = pd.DataFrame({"ds": training.index, "y": training.to_numpy()}).dropna()

    digest = hashlib.sha256(pd.util.hash_pandas_object(history, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(cases, index=False).to_numpy().tobytes())
    for script in (HERE / "peers.py", HERE.parent / "accuracy" / "peers.py"):
        digest.update(script.read_bytes())
    out_path = cache_dir / f"peers_{digest.hexdigest()[:12]}.parquet"
    if not out_path.exists():
        history_path = cache_dir / "peers_history.parquet"
        cases_path = cache_dir / "peers_cases.parquet"
        history.to_parquet(history_path, index=False)
        cases.to_parquet(cases_path, index=False)
        log(f"peers: {len(cases)} as-of dates in {PEERS_VENV}")
        partial = out_path.with_suffix(".partial")
        subprocess.run([str(peers_python()), str(HERE / "peers.py"), str(history_path),
                        str(cases_path), str(partial)], check=True)
        partial.rename(out_path)
    peers = pd.read_parquet(out_path)
    failed = peers[peers["error"] != ""]
    if len(failed):
        log(f"peers failed on {len(failed)} (as-of date, model) pairs: "
            f"{failed['error'].iloc[0]}")
    rest = peers[peers["error"] == ""].groupby(["model", "as_of"])["yhat"].sum()

    frame = frame.copy()
    for model in PEER_MODELS:
        forecast_rest = wiki["as_of"].map(rest[model]) if model in rest.index else np.nan
        estimate = wiki["requests_to_date"] + forecast_rest
        frame[f"err_{model}"] = (estimate - wiki["requests_month"]).abs() / wiki["requests_month"]
    return frame


def peers_report(frame: pd.DataFrame) -> str:
    """Champion against month to date + each peer, on the Wikipedia rows."""
    lines = [
        "| data | as of | champion | MTD + MSTL | MTD + AutoETS | MTD + mlforecast LGBM |",
        "|---|---|---|---|---|---|",
    ]
    for label, day, group in _groups(frame):
        if f"err_{PEER_MODELS[0]}" not in group or group[f"err_{PEER_MODELS[0]}"].isna().all():
            continue
        cells = " | ".join(f"{100 * group[f'err_{model}'].mean():.2f}" for model in PEER_MODELS)
        lines.append(f"| {label} | day {day} | {100 * group['err_learned'].mean():.2f} | "
                     f"{cells} |")
    return "\n".join(lines)


def _groups(frame: pd.DataFrame):
    """Rows of the table: each data set and day, then the earlier Wikipedia month set."""
    for (dataset, day), group in frame.groupby(["dataset", "day"]):
        yield f"{dataset} ({len(group)})", day, group
    earlier = frame[(frame["dataset"] == "wikipedia") & frame["earlier"]]
    for day, group in earlier.groupby("day"):
        yield f"wikipedia, earlier set ({len(group)})", day, group


def report(frame: pd.DataFrame, setting_rho: float) -> str:
    lines = [
        "| data | as of | champion (mean abs %) | median | run-rate | MTD + snaive | "
        "coverage learned rule | width | coverage setting rho | width |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, day, group in _groups(frame):
        lines.append(
            f"| {label} | day {day} | {100 * group['err_learned'].mean():.2f} | "
            f"{100 * group['err_learned'].median():.2f} | "
            f"{100 * group['err_runrate'].mean():.2f} | {100 * group['err_snaive'].mean():.2f} | "
            f"{100 * group['in_learned'].mean():.0f}% | "
            f"{100 * group['width_learned'].mean():.1f}% | "
            f"{100 * group['in_setting'].mean():.0f}% | "
            f"{100 * group['width_setting'].mean():.1f}% |"
        )
    lines.append("")
    for label, day, group in _groups(frame):
        ours = group["err_learned"].mean()
        lines.append(
            f"{label} day {day}: ratio champion/run-rate "
            f"{ours / group['err_runrate'].mean():.2f}, champion/snaive "
            f"{ours / group['err_snaive'].mean():.2f}; learned rho "
            f"{group['rho'].min():.2f}-{group['rho'].max():.2f} (median "
            f"{group['rho'].median():.2f}), spread factor {group['factor'].min():.2f}-"
            f"{group['factor'].max():.2f}; setting fallback in "
            f"{(group['rule_source'] == 'setting').sum()} cases; setting rho {setting_rho:.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cost/cache"))
    parser.add_argument("--limit-months", type=int, help="only the last N Wikipedia months")
    parser.add_argument("--out", type=Path, help="write every case's row to this CSV")
    parser.add_argument("--skip-peers", action="store_true",
                        help="leave out the statsforecast / mlforecast peers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    logging.getLogger("cmdstanpy").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    prices = load_prices(REPO / "config" / "prices.csv")
    tokens = mean_tokens()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {message}", flush=True)

    wiki = wikipedia_series()
    wiki_months = full_months(wiki)
    if args.limit_months:
        wiki_months = wiki_months[-args.limit_months:]
    tweets = tweet_series()
    march = [pd.Timestamp("2015-03-01")]
    cases = [
        ("replay", tweets, tweets, ROUTES.get, march, march),
        ("wikipedia", {"wp_R": wiki}, {"wp_R": interpolated(wiki)}, lambda _name: WIKI_ROUTE,
         wiki_months, set(full_months(wiki, weeks_before=8))),
    ]
    frame = run_cases(cases, settings, prices, tokens, args.cache, log)
    if not args.skip_peers:
        frame = peer_errors(frame, interpolated(wiki), args.cache, log)
    if args.out:
        frame.to_csv(args.out, index=False)
    print(report(frame, settings.month_error_correlation))
    if not args.skip_peers:
        print()
        print(peers_report(frame))
    log("done")


if __name__ == "__main__":
    main()
