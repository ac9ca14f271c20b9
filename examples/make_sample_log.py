"""Write a SYNTHETIC API-gateway call log for the demo: one CSV per UTC day.

Every row is made up. The traffic imitates what a gateway in front of a few
teams sees: office-hours peaks for interactive teams, an evening peak for a
consumer feature, a nightly batch job, quieter weekends, slow growth, and a
few failed calls that reported no usage. The columns are those of the real
replay log (`/work/shared/tools/replay_calls.py`), so the same ingest reads both:

    request_id,timestamp,provider,model,team,input_tokens,output_tokens,status_code

    python examples/make_sample_log.py OUT_DIR [--days 28] [--last-day 2026-12-02]

The same arguments always give the same files, byte for byte.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIELDS = [
    "request_id", "timestamp", "provider", "model", "team",
    "input_tokens", "output_tokens", "status_code",
]


@dataclass(frozen=True)
class Route:
    """One synthetic series: a team calling one model, with its own rhythm."""

    provider: str
    model: str
    team: str
    peak_calls_per_hour: float
    rhythm: str
    weekend_factor: float
    weekly_growth: float
    median_input_tokens: float
    median_output_tokens: float


ROUTES = (
    Route("openai", "gpt-4.1", "support", 90, "office", 0.25, 0.02, 1800, 350),
    Route("anthropic", "claude-haiku-4.5", "support", 140, "office", 0.30, 0.01, 900, 120),
    Route("anthropic", "claude-sonnet-4.5", "engineering", 45, "office", 0.15, 0.05, 6000, 900),
    Route("openai", "gpt-4.1-mini", "search", 160, "evening", 1.20, 0.00, 700, 90),
    Route("google", "gemini-2.5-flash", "analytics", 400, "nightly", 1.00, 0.03, 3000, 400),
)

ERROR_RATE = 0.006


def hourly_shape(rhythm: str, hour: int) -> float:
    """Relative load of a UTC hour in [0, 1] for each kind of team."""
    if rhythm == "office":
        return 0.05 + 0.95 * math.exp(-(((hour - 14.5) / 3.2) ** 2))
    if rhythm == "evening":
        return 0.25 + 0.75 * math.exp(-(((hour - 20.0) / 3.5) ** 2))
    if rhythm == "nightly":
        return 1.0 if 2 <= hour < 4 else 0.02
    raise ValueError(f"unknown rhythm {rhythm!r}")


def write_day(out_dir: Path, day: dt.date, first_day: dt.date, rng: np.random.Generator) -> int:
    rows = []
    weeks_in = (day - first_day).days / 7
    for route in ROUTES:
        day_factor = route.weekend_factor if day.weekday() >= 5 else 1.0
        growth = (1 + route.weekly_growth) ** weeks_in
        for hour in range(24):
            rate = route.peak_calls_per_hour * hourly_shape(route.rhythm, hour)
            count = rng.poisson(rate * day_factor * growth * rng.lognormal(0, 0.15))
            offsets = np.sort(rng.uniform(0, 3600, count))
            inputs = rng.lognormal(math.log(route.median_input_tokens), 0.6, count)
            outputs = rng.lognormal(math.log(route.median_output_tokens), 0.5, count)
            failed = rng.random(count) < ERROR_RATE
            start = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)
            for offset, prompt, completion, error in zip(
                offsets, inputs, outputs, failed, strict=True
            ):
                at = start + dt.timedelta(seconds=float(offset))
                rows.append(
                    {
                        "request_id": f"{route.team}-{rng.integers(2**63):016x}",
                        "timestamp": at.isoformat(timespec="milliseconds").replace(
                            "+00:00", "Z"
                        ),
                        "provider": route.provider,
                        "model": route.model,
                        "team": route.team,
                        "input_tokens": "" if error else int(prompt) + 1,
                        "output_tokens": "" if error else int(completion) + 1,
                        "status_code": 500 if error else 200,
                    }
                )
    rows.sort(key=lambda row: row["timestamp"])
    path = out_dir / f"calls-{day.isoformat()}.csv"
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(path)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--days", type=int, default=28, help="how many days (default 28)")
    parser.add_argument(
        "--last-day",
        type=dt.date.fromisoformat,
        default=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1),
        help="last UTC day of the log, YYYY-MM-DD (default: yesterday)",
    )
    parser.add_argument("--seed", type=int, default=20240501)
    args = parser.parse_args()

    args.out_dir.mkdir(parents=True, exist_ok=True)
    first_day = args.last_day - dt.timedelta(days=args.days - 1)
    total = 0
    for offset in range(args.days):
        day = first_day + dt.timedelta(days=offset)
        rng = np.random.default_rng([args.seed, day.toordinal()])
        total += write_day(args.out_dir, day, first_day, rng)
    print(
        f"SYNTHETIC sample log: {total:,} made-up calls, {len(ROUTES)} series, "
        f"{first_day} to {args.last_day}, in {args.out_dir}"
    )


if __name__ == "__main__":
    main()
