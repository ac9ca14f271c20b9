"""Ingest throughput and peak memory on the full replay log, against two baselines.

    .venv/bin/python bench/ingest/run.py [--data DIR] [--scale 10] [--skip-scale]

Generates the full replay (2.74 million calls, 57 daily CSV files) with the shared
replay tool unless ``--data`` points at one, then runs each contender in its own
subprocess and reads that process's peak RSS from ``os.wait4``:

- ``arrow-read``: ``pyarrow.csv.read_csv`` of every file, nothing else (the ceiling);
- ``pandas``: the plain approach, per file ``read_csv``, ``to_datetime``, hourly
  ``groupby`` and ``to_parquet``;
- ``usagecast``: ``pipelines.ingest.ingest`` on a fresh data folder, validation included;
- ``usagecast-no-gx``: the same with the Great Expectations step replaced by a no-op,
  to show how the time splits (bench only; production always validates);
- ``usagecast xN``: the real ingest on N times the input (request ids made unique per
  copy), for memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REPLAY_TOOL = Path(
    os.environ.get("USAGECAST_REPLAY_TOOL", REPO.parent / "shared" / "tools" / "replay_calls.py")
)


def work(mode: str, data: Path, scratch: Path) -> dict:
    files = sorted(data.rglob("*.csv"))
    started = time.perf_counter()
    if mode == "arrow-read":
        import pyarrow.csv as pacsv

        rows = sum(pacsv.read_csv(path).num_rows for path in files)
    elif mode == "pandas":
        import pandas as pd

        rows = 0
        out = scratch / "pandas"
        out.mkdir(parents=True, exist_ok=True)
        for path in files:
            frame = pd.read_csv(path)
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
            frame["hour"] = frame["timestamp"].dt.floor("h")
            hourly = frame.groupby(["provider", "model", "team", "hour"], as_index=False).agg(
                requests=("request_id", "size"),
                input_tokens=("input_tokens", "sum"),
                output_tokens=("output_tokens", "sum"),
            )
            frame.to_parquet(out / f"{path.stem}.parquet")
            hourly.to_parquet(out / f"{path.stem}.hourly.parquet")
            rows += len(frame)
    else:
        if mode == "usagecast-no-gx":
            import pipelines.validate

            pipelines.validate.validate_batch = _no_validation
        from pipelines.ingest import ingest
        from pipelines.settings import load_settings

        settings = load_settings(env={}, data_dir=scratch / "var", progress=False)
        result = ingest(settings, [data])
        rows = result.rows_read
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _no_validation(*_args, **_kwargs):
    class Report:
        critical: list = []
        warnings: list = []

        def summary(self) -> str:
            return "validation skipped by the benchmark"

    return Report()


def measure(mode: str, data: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as scratch:
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, "--data", str(data),
             "--scratch", scratch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        if status != 0:
            raise SystemExit(f"{mode} failed with status {status}")
        result = json.loads(output.decode().strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    result["mode"] = mode
    return result


def scaled_copy(data: Path, target: Path, factor: int) -> Path:
    """``factor`` copies of every file with request ids made unique per copy."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    for copy in range(factor):
        folder = target / f"copy-{copy}"
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(data.glob("*.csv")):
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={"timestamp": pa.string()}))
            ids = pc.binary_join_element_wise(table.column("request_id"), f"c{copy}", "-")
            table = table.set_column(0, "request_id", ids)
            pacsv.write_csv(table, folder / path.name)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="an existing full replay folder")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(work(args.worker, args.data, args.scratch)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as temporary:
        data = args.data
        if data is None:
            data = Path(temporary) / "replay"
            subprocess.run([sys.executable, str(REPLAY_TOOL), str(data)], check=True)
        print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        results = [measure(mode, data) for mode in
                   ("arrow-read", "pandas", "usagecast", "usagecast-no-gx")]
        by_mode = {result["mode"]: result for result in results}
        print(f"{'contender':<20}{'rows':>12}{'seconds':>10}{'rows/s':>12}"
              f"{'vs arrow':>10}{'vs pandas':>11}{'peak MB':>10}")
        for result in results:
            rate = result["rows"] / result["seconds"]
            arrow_rate = by_mode["arrow-read"]["rows"] / by_mode["arrow-read"]["seconds"]
            pandas_rate = by_mode["pandas"]["rows"] / by_mode["pandas"]["seconds"]
            print(f"{result['mode']:<20}{result['rows']:>12,}{result['seconds']:>10.1f}"
                  f"{rate:>12,.0f}{rate / arrow_rate:>10.2f}{rate / pandas_rate:>11.2f}"
                  f"{result['peak_mb']:>10.0f}")
        sys.stdout.flush()
        if not args.skip_scale:
            scaled = scaled_copy(data, Path(temporary) / f"x{args.scale}", args.scale)
            result = measure("usagecast", scaled)
            print(f"usagecast x{args.scale}: {result['rows']:,} rows in "
                  f"{result['seconds']:.0f}s, peak {result['peak_mb']:.0f} MB")
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
