"""Ingest throughput and peak memory on the full replay log, against two baselines.

    .venv/bin/python bench/ingest/run.py [--data DIR] [--scale 10] [--skip-scale]
                                         [--baseline CHECKOUT] [--baseline-scale]

Generates the full replay (2.74 million calls, 57 daily CSV files) with the shared
replay tool unless ``--data`` points at one, then runs each contender in its own
subprocess. Memory is that of the contender's whole process tree (so that a contender
that starts processes is counted whole): every 10 ms the RSS of each process in the
tree is read from ``/proc``; ``peak MB`` is the largest sampled sum, and ``bound MB``
the sum of each process's own peak (``VmHWM``), an upper bound that no short spike
between samples can escape. CPU seconds are the tree's user + system time
(``os.wait4``, which counts reaped children).

- ``arrow-read``: ``pyarrow.csv.read_csv`` of every file, nothing else (the ceiling);
- ``pandas``: the plain approach, per file ``read_csv``, ``to_datetime``, hourly
  ``groupby`` and ``to_parquet``;
- ``usagecast``: ``pipelines.ingest.ingest`` on a fresh data folder, validation included;
- ``usagecast-no-gx``: the same with the ingest's validation worker replaced by a no-op
  (GX is neither imported nor run), to show how the time splits (bench only; production
  always validates);
- ``usagecast xN``: the real ingest on N times the input (request ids made unique per
  copy), for memory.

``--baseline CHECKOUT`` adds ``baseline`` and ``baseline-no-gx``: the same two ingest
contenders with the code of another checkout (e.g. ``git archive <commit> | tar -x -C
DIR``; it runs on this venv with ``PYTHONPATH=CHECKOUT``), so that before and after are
measured in one run; ``--baseline-scale`` runs it on the N times input too.
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

SAMPLE_SECONDS = 0.01

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
        if mode.endswith("-no-gx"):
            import pipelines.ingest

            pipelines.ingest._BackgroundValidation = _NoValidation
        from pipelines.ingest import ingest
        from pipelines.settings import load_settings

        settings = load_settings(env={}, data_dir=scratch / "var", progress=False)
        result = ingest(settings, [data])
        rows = result.rows_read
    return {"rows": rows, "seconds": time.perf_counter() - started}


class _NoValidation:
    """Stands in for the ingest's validation worker: GX is neither imported nor run."""

    def __init__(self, _settings) -> None:
        pass

    def start(self) -> None:
        pass

    def submit(self, *_args, **_kwargs) -> None:
        pass

    def wait(self) -> None:
        pass

    def close(self) -> None:
        pass


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from ``/proc/<pid>/task/<tid>/children``."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in kB; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def measure(mode: str, data: Path, code: Path = REPO) -> dict:
    """Run one contender in a child process tree; its time, CPU and memory."""
    import threading

    env = dict(os.environ)
    if code != REPO:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as scratch:
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, "--data", str(data),
             "--scratch", scratch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=code,
            env=env,
        )
        peaks = {"sum_kb": 0, "hwm_kb": {}}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                total = 0
                for pid in _tree(process.pid):
                    rss, hwm = _memory_kb(pid)
                    total += rss
                    if hwm:
                        peaks["hwm_kb"][pid] = max(hwm, peaks["hwm_kb"].get(pid, 0))
                peaks["sum_kb"] = max(peaks["sum_kb"], total)
                time.sleep(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        sampler.join()
        if status != 0:
            raise SystemExit(f"{mode} failed with status {status}")
        result = json.loads(output.decode().strip().splitlines()[-1])
    result["peak_mb"] = max(peaks["sum_kb"], usage.ru_maxrss) / 1024
    result["bound_mb"] = max(sum(peaks["hwm_kb"].values()), usage.ru_maxrss) / 1024
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["mode"] = mode
    return result


def report(results: list[dict]) -> None:
    by_mode = {result["mode"]: result for result in results}
    arrow_rate = by_mode["arrow-read"]["rows"] / by_mode["arrow-read"]["seconds"]
    pandas_rate = by_mode["pandas"]["rows"] / by_mode["pandas"]["seconds"]
    print(f"{'contender':<20}{'rows':>12}{'seconds':>9}{'cpu s':>8}{'rows/s':>12}"
          f"{'vs arrow':>10}{'vs pandas':>11}{'peak MB':>9}{'bound MB':>10}")
    for result in results:
        rate = result["rows"] / result["seconds"]
        print(f"{result['mode']:<20}{result['rows']:>12,}{result['seconds']:>9.1f}"
              f"{result['cpu_seconds']:>8.1f}{rate:>12,.0f}{rate / arrow_rate:>10.2f}"
              f"{rate / pandas_rate:>11.2f}{result['peak_mb']:>9.0f}{result['bound_mb']:>10.0f}")
    sys.stdout.flush()


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
    parser.add_argument("--baseline", type=Path,
                        help="another checkout whose ingest is measured in the same run")
    parser.add_argument("--baseline-scale", action="store_true",
                        help="also run the baseline on the scaled input")
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
        if args.baseline:
            for mode in ("baseline", "baseline-no-gx"):
                results.append(measure(mode, data, args.baseline.resolve()))
        report(results)
        if not args.skip_scale:
            scaled = scaled_copy(data, Path(temporary) / f"x{args.scale}", args.scale)
            runs = [("usagecast", REPO)]
            if args.baseline and args.baseline_scale:
                runs.append(("baseline", args.baseline.resolve()))
            for mode, code in runs:
                result = measure(mode, scaled, code)
                print(f"{mode} x{args.scale}: {result['rows']:,} rows in "
                      f"{result['seconds']:.0f}s ({result['cpu_seconds']:.0f} cpu s), "
                      f"peak {result['peak_mb']:.0f} MB, bound {result['bound_mb']:.0f} MB")
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
