"""Validating the full replay log against ingesting it: wall time ratio and peak memory.

    .venv/bin/python bench/validate/run.py [--work DIR] [--series NAME ...]

Writes the replay log (2.74M calls over 57 days for all series) under the work folder
once, ingests it with ``pipelines.ingest.ingest`` in a child process (the baseline),
then runs ``pipelines.validate.validate_lake`` over every published partition in
another child process. Each child reports its wall time and peak RSS; the validation
child also samples its RSS, so flat memory shows as a first-half peak close to the
second-half peak. Ingest's own time includes the ``validate_batch`` calls it makes; that
share is printed too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REPLAY_TOOL = REPO_ROOT.parent / "shared" / "tools" / "replay_calls.py"


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ingest_child(data_dir: str, replay_dir: str, queue: multiprocessing.Queue) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from pipelines import validate
    from pipelines.ingest import ingest
    from pipelines.logs import configure_logging
    from pipelines.settings import load_settings

    configure_logging(quiet=True)
    spent = {"validate_batch": 0.0}
    original = validate.validate_batch

    def timed_validate_batch(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["validate_batch"] += time.perf_counter() - started

    validate.validate_batch = timed_validate_batch
    settings = load_settings(env={}, data_dir=Path(data_dir), progress=False)
    started = time.perf_counter()
    result = ingest(settings, [Path(replay_dir)])
    queue.put(
        {
            "seconds": time.perf_counter() - started,
            "validate_batch_seconds": spent["validate_batch"],
            "peak_mb": _peak_mb(),
            "stored": result.stored,
        }
    )


def _validate_child(data_dir: str, queue: multiprocessing.Queue) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import datetime as dt

    from pipelines.lake import partition_days
    from pipelines.logs import configure_logging
    from pipelines.settings import load_settings
    from pipelines.validate import validate_lake

    configure_logging(quiet=True)
    settings = load_settings(env={}, data_dir=Path(data_dir), progress=False)
    newest = partition_days(settings.lake_dir, "usage_hourly")[-1]
    now = dt.datetime.combine(newest + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    samples: list[tuple[float, float]] = []
    running = True

    def sample() -> None:
        while running:
            samples.append((time.perf_counter(), _rss_mb()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    baseline_mb = _rss_mb()
    started = time.perf_counter()
    sampler.start()
    report = validate_lake(settings, now=now)
    elapsed = time.perf_counter() - started
    running = False
    sampler.join()
    middle = started + elapsed / 2
    queue.put(
        {
            "seconds": elapsed,
            "peak_mb": _peak_mb(),
            "rss_before_mb": baseline_mb,
            "first_half_peak_mb": max((mb for at, mb in samples if at < middle), default=0.0),
            "second_half_peak_mb": max((mb for at, mb in samples if at >= middle), default=0.0),
            "rows": report.rows_checked,
            "partitions": report.partitions_checked,
            "critical": len(report.critical),
            "warnings": len(report.warnings),
            "summary": report.summary(),
        }
    )


def _in_child(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    outcome = queue.get()
    process.join()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="work folder (default: a fresh temp folder)")
    parser.add_argument("--series", nargs="*", help="replay only these series (default: all)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="usagecast-bench-validate-"))
    replay_dir = work / "replay"
    data_dir = work / "var"
    if not replay_dir.is_dir():
        command = [sys.executable, str(REPLAY_TOOL), str(replay_dir)]
        if args.series:
            command += ["--series", *args.series]
        subprocess.run(command, check=True)
    if data_dir.exists():
        raise SystemExit(f"{data_dir} exists; remove it or pass another --work")

    ingested = _in_child(_ingest_child, str(data_dir), str(replay_dir))
    validated = _in_child(_validate_child, str(data_dir))

    print(f"work folder: {work}")
    print(
        f"ingest (baseline): {ingested['stored']:,} calls in {ingested['seconds']:.1f}s "
        f"(of which validate_batch {ingested['validate_batch_seconds']:.1f}s), "
        f"peak RSS {ingested['peak_mb']:.0f} MB"
    )
    print(
        f"validate_lake: {validated['rows']:,} rows in {validated['partitions']} partitions, "
        f"{validated['seconds']:.1f}s, peak RSS {validated['peak_mb']:.0f} MB "
        f"(before {validated['rss_before_mb']:.0f} MB; first-half peak "
        f"{validated['first_half_peak_mb']:.0f} MB, second-half peak "
        f"{validated['second_half_peak_mb']:.0f} MB)"
    )
    print(f"  {validated['summary']}")
    ratio = validated["seconds"] / ingested["seconds"]
    print(f"ratio validate_lake / ingest wall time: {ratio:.2f}")
    print(json.dumps({"ingest": ingested, "validate_lake": validated}, default=str))


if __name__ == "__main__":
    main()
