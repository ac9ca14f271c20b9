"""Month-total cost estimates as of day 10 and day 20 of every full month, on real series.

Usage: .venv/bin/python bench/cost/run.py [--correlations 0,0.25,0.5,0.75,1]

Series (read in place from ../shared/data/real):
- the replay log's seven series: their calls per UTC day are the NAB tweet counts
  (the replay tool places one call per counted tweet); tokens per call are the
  mean of the real Azure traces, priced at each series' model; March 2015;
- the Wikipedia article views (exp of the file's value) taken as one series' daily
  requests on openai/gpt-4.1, every month with no missing day and 8 weeks before it.

The estimate is usagecast's own path (``pipelines.cost``: actual to date plus the
forecast rest, p10/p90 by the equicorrelation rule). The daily forecaster here is a
transparent stand-in, not the registered champion (training one per as-of date
for ~180 dates is a bench of its own): p50 = mean of the same weekday over the last
4 weeks; p10/p90 from the spread of its own errors over the 8 weeks before.
Baselines measured in the same run: run-rate, and month-to-date + seasonal naive.
"""

from __future__ import annotations

import argparse
import calendar
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipelines import cost  # noqa: E402
from pipelines.prices import load_prices  # noqa: E402

REAL = REPO.parent / "shared" / "data" / "real"
ROUTES = {
    "AAPL": ("anthropic", "claude-sonnet-4.5"),
    "AMZN": ("openai", "gpt-4.1"),
    "CRM": ("openai", "gpt-4.1"),
    "CVS": ("anthropic", "claude-opus-4"),
    "FB": ("anthropic", "claude-sonnet-4.5"),
    "KO": ("deepseek", "deepseek-v3.2"),
    "PFE": ("deepseek", "deepseek-v3.2"),
}


def mean_tokens() -> tuple[float, float]:
    frames = [pd.read_csv(path) for path in sorted((REAL / "azure_llm_2023").glob("*.csv"))]
    traces = pd.concat(frames)
    return float(traces["ContextTokens"].mean()), float(traces["GeneratedTokens"].mean())


def tweet_series() -> dict[str, pd.Series]:
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
    views = pd.read_csv(REAL / "wikipedia_daily" / "wp_log_R.csv", parse_dates=["ds"])
    views = views.drop_duplicates("ds").set_index("ds")["y"].sort_index()
    return np.exp(views).asfreq("D")


def weekday_mean_forecast(history: pd.Series, start: pd.Timestamp, days: int) -> np.ndarray:
    last = history[history.index < start].tail(28)
    by_weekday = last.groupby(last.index.day_of_week).mean()
    overall = float(last.mean())
    dates = pd.date_range(start, periods=days, freq="D")
    return np.array([float(by_weekday.get(d.day_of_week, overall)) for d in dates])


def forecast_with_interval(history: pd.Series, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    """Weekday-mean p50, and p10/p90 from its log errors at origins in the 8 weeks before."""
    log_errors = []
    for weeks_back in range(1, 9):
        origin = as_of - pd.Timedelta(weeks=weeks_back)
        actual = history[
            (history.index >= origin)
            & (history.index < origin + pd.Timedelta(days=min(days, 7 * weeks_back)))
        ]
        if actual.empty:
            continue
        predicted = weekday_mean_forecast(history, origin, len(actual))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log((actual.to_numpy() + 1.0) / (predicted + 1.0))
        log_errors.extend(ratio[np.isfinite(ratio)])
    low, high = np.quantile(log_errors, [0.1, 0.9]) if log_errors else (0.0, 0.0)
    p50 = weekday_mean_forecast(history, as_of, days)
    return pd.DataFrame(
        {
            "ds": pd.date_range(as_of, periods=days, freq="D"),
            "p10": p50 * np.exp(min(low, 0.0)),
            "p50": p50,
            "p90": p50 * np.exp(max(high, 0.0)),
        }
    )


def estimate_month(history, series_id, route, tokens, prices, month_start, day, correlations):
    """Our estimate (p10/p50/p90 per correlation) and the two baselines, for one as-of day."""
    provider, model = route
    as_of = month_start + pd.Timedelta(days=day - 1)
    month_days = calendar.monthrange(month_start.year, month_start.month)[1]
    month_end = month_start + pd.Timedelta(days=month_days)
    actual_days = history[(history.index >= month_start) & (history.index < as_of)]
    per_call = {"input_tokens": tokens[0], "output_tokens": tokens[1]}

    daily = pd.DataFrame(
        {
            "series_id": series_id,
            "provider": provider,
            "model": model,
            "team": series_id,
            "day": actual_days.index.date,
            "resolution": "day",
            "requests": actual_days.to_numpy(),
            "input_tokens": actual_days.to_numpy() * per_call["input_tokens"],
            "output_tokens": actual_days.to_numpy() * per_call["output_tokens"],
            "cached_input_tokens": 0.0,
            "cache_write_tokens": 0.0,
        }
    )
    predicted = forecast_with_interval(history, as_of, (month_end - as_of).days)
    long = []
    for target, factor in (
        ("requests", 1.0),
        ("input_tokens", per_call["input_tokens"]),
        ("output_tokens", per_call["output_tokens"]),
        ("cached_input_tokens", 0.0),
    ):
        long.append(
            predicted.assign(
                series_id=series_id,
                resolution="day",
                target=target,
                p10=predicted["p10"] * factor,
                p50=predicted["p50"] * factor,
                p90=predicted["p90"] * factor,
            )
        )
    series = pd.DataFrame(
        [{"series_id": series_id, "provider": provider, "model": model, "team": series_id}]
    )
    intervals = pd.concat(
        [
            cost.actual_intervals(
                daily.iloc[0:0].assign(hour=pd.Series(dtype="datetime64[us, UTC]")), daily, prices
            ),
            cost.forecast_intervals(pd.concat(long), series, {}, prices),
        ],
        ignore_index=True,
    )
    months = cost.business_months(as_of.date(), "UTC", count=1)
    results = {}
    for rho in correlations:
        row = cost.monthly_estimates(intervals, months, rho)
        total = row[row["level"] == "total"].iloc[0]
        results[rho] = (total["estimate_p10"], total["estimate_p50"], total["estimate_p90"])

    unit_cost = cost.actual_intervals(
        daily.iloc[0:0].assign(hour=pd.Series(dtype="datetime64[us, UTC]")),
        daily.head(1).assign(
            requests=1.0,
            input_tokens=per_call["input_tokens"],
            output_tokens=per_call["output_tokens"],
        ),
        prices,
    )["cost_p50"].iloc[0]
    to_date = float(actual_days.sum())
    run_rate = to_date / (day - 1) * month_days
    last_week = history[history.index < as_of].tail(7).to_numpy()
    rest_days = month_days - (day - 1)
    snaive = to_date + float(np.resize(last_week, rest_days).sum())
    return results, run_rate * unit_cost, snaive * unit_cost, unit_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--correlations", default="0,0.25,0.5,0.75,1")
    args = parser.parse_args()
    correlations = [float(value) for value in args.correlations.split(",")]
    logging.basicConfig(level=logging.ERROR)
    prices = load_prices(REPO / "config" / "prices.csv")
    tokens = mean_tokens()

    cases = []
    for name, history in tweet_series().items():
        cases.append(("replay", name, ROUTES[name], history, [pd.Timestamp("2015-03-01")]))
    wiki = wikipedia_series()
    months = []
    for month_start in pd.date_range(wiki.index.min(), wiki.index.max(), freq="MS"):
        month_end = month_start + pd.offsets.MonthBegin(1)
        window = wiki[
            (wiki.index >= month_start - pd.Timedelta(weeks=8)) & (wiki.index < month_end)
        ]
        expected = (month_end - (month_start - pd.Timedelta(weeks=8))).days
        if window.notna().sum() == expected and month_end <= wiki.index.max():
            months.append(month_start)
    cases.append(("wikipedia", "wp_R", ("openai", "gpt-4.1"), wiki.dropna(), months))

    rows = []
    for dataset, name, route, history, month_starts in cases:
        for month_start in month_starts:
            month_days = calendar.monthrange(month_start.year, month_start.month)[1]
            actual = history[
                (history.index >= month_start)
                & (history.index < month_start + pd.Timedelta(days=month_days))
            ]
            for day in (10, 20):
                estimates, run_rate, snaive, unit_cost = estimate_month(
                    history, name, route, tokens, prices, month_start, day, correlations
                )
                truth = float(actual.sum()) * unit_cost
                row = {
                    "dataset": dataset,
                    "series": name,
                    "month": f"{month_start:%Y-%m}",
                    "day": day,
                    "actual": truth,
                    "err_runrate": abs(run_rate - truth) / truth,
                    "err_snaive": abs(snaive - truth) / truth,
                }
                for rho, (p10, p50, p90) in estimates.items():
                    row[f"err_{rho}"] = abs(p50 - truth) / truth
                    row[f"in_{rho}"] = p10 <= truth <= p90
                    row[f"width_{rho}"] = (p90 - p10) / truth
                rows.append(row)
    frame = pd.DataFrame(rows)

    print(
        f"cases: {len(frame)} month estimates "
        f"({(frame['dataset'] == 'replay').sum()} replay, "
        f"{(frame['dataset'] == 'wikipedia').sum()} Wikipedia, "
        f"{frame.loc[frame['dataset'] == 'wikipedia', 'month'].nunique()} Wikipedia months)"
    )
    rho_mid = correlations[len(correlations) // 2]
    for (dataset, day), group in frame.groupby(["dataset", "day"]):
        ours = group[f"err_{rho_mid}"].mean()
        print(f"\n{dataset}, as of day {day}: mean abs % error of the month's cost")
        print(
            f"  usagecast estimate (p50)  {100 * ours:6.2f}%  "
            f"(median {100 * group[f'err_{rho_mid}'].median():.2f}%)"
        )
        print(
            f"  run-rate baseline         {100 * group['err_runrate'].mean():6.2f}%  "
            f"ratio ours/run-rate {ours / group['err_runrate'].mean():.2f}"
        )
        print(
            f"  MTD + seasonal naive      {100 * group['err_snaive'].mean():6.2f}%  "
            f"ratio ours/snaive {ours / group['err_snaive'].mean():.2f}"
        )
        print("  p10-p90 coverage (target ~80%) and mean width by correlation rho:")
        for rho in correlations:
            print(
                f"    rho {rho:4.2f}: coverage {100 * group[f'in_{rho}'].mean():5.1f}%, "
                f"width {100 * group[f'width_{rho}'].mean():5.1f}% of actual"
            )


if __name__ == "__main__":
    main()
