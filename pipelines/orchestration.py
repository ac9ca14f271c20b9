"""Glue between Airflow runs and the pipeline steps, so that the DAG files stay thin.

A DAG task reads its run's data interval and params, calls one function here, and
passes only small JSON values (paths, dates, counts) on through XCom. Everything
here works without Airflow; only :func:`step` and :func:`log_task_failure` touch
Airflow, and they import it lazily.

Landing files are matched to a data interval by the UTC day in their name or in
the name of a folder above them (``calls-2024-03-05.csv``, ``dt=2024-03-05/x.jsonl``,
``usage_20240305.csv``), never by modification time, so that a backfill or a
rerun of an old interval reads exactly the files it read the first time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import DataQualityError, UsagecastError
from pipelines.settings import SettingsError

if TYPE_CHECKING:
    from pipelines.settings import Settings

logger = logging.getLogger(__name__)

DAY_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
"""A calendar day inside a file or folder name: ``2024-03-05`` or ``20240305``."""

SKIPPED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
"""Files still being written by whoever drops logs into the landing folder."""

USAGE_ASSET = ("usagecast_usage", "usagecast://lake/usage_hourly")
"""(name, uri) of the validated usage in the lake; the ingest DAG updates it."""

MODEL_ASSET = ("usagecast_model", "usagecast://registry/champion")
"""(name, uri) of the registered forecaster; the training DAG updates it."""

REPORTS_ASSET = ("usagecast_reports", "usagecast://reporting/forecast")
"""(name, uri) of the reporting tables; the forecast DAG updates them."""

TASK_RETRIES = 2

MAX_WARNINGS_IN_XCOM = 5
"""The task result carries the first few warnings; the log and Data Docs have all of them."""


DAY_PARAM = {"type": ["null", "string"], "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
"""JSON schema of a UTC day param (YYYY-MM-DD, or empty) in the DAGs' run forms."""


def default_task_args() -> dict[str, Any]:
    """Retry policy and failure callback shared by every usagecast task.

    Two retries, 1 then 2 minutes apart (exponential, capped at 15), cover a
    database restart or a full disk being cleared; failures that would repeat
    identically are not retried at all (see :func:`step`).
    """
    return {
        "owner": "usagecast",
        "retries": TASK_RETRIES,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=15),
        "on_failure_callback": log_task_failure,
    }


def event_extras(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> list[dict]:
    """The ``extra`` of every asset event that triggered a run (none for a manual run)."""
    if not triggering_asset_events:
        return []
    return [
        dict(event.extra or {})
        for events in triggering_asset_events.values()
        for event in events
    ]


def file_day(path: Path, landing_dir: Path) -> dt.date | None:
    """The UTC day a landing file holds, from its own name first, then its folders'."""
    relative = path.relative_to(landing_dir)
    for name in (relative.name, *(part for part in reversed(relative.parts[:-1]))):
        for match in DAY_IN_NAME.finditer(name):
            try:
                return dt.date(int(match[1]), int(match[2]), int(match[3]))
            except ValueError:
                continue
    return None


def landing_files_for_interval(
    landing_dir: Path, start: dt.datetime, end: dt.datetime
) -> list[Path]:
    """The landing files whose day overlaps the interval ``[start, end)``, oldest day first.

    ``start`` and ``end`` are aware datetimes (Airflow's data interval); a file of
    day D covers ``[D 00:00 UTC, D+1 00:00 UTC)``. Hidden files and files still
    being written are left for a later run; files without a day in their path are
    reported once per call so a user can rename them.
    """
    if end <= start:
        raise ValueError(f"empty data interval [{start}, {end}): nothing can land in it")
    if not landing_dir.is_dir():
        logger.warning("landing folder %s does not exist: nothing to ingest", landing_dir)
        return []

    start_utc, end_utc = _as_utc(start), _as_utc(end)
    matched: list[tuple[dt.date, str, Path]] = []
    undated: list[Path] = []
    for path in landing_dir.rglob("*"):
        relative_parts = path.relative_to(landing_dir).parts
        if not path.is_file() or any(part.startswith(".") for part in relative_parts):
            continue
        if path.name.endswith(SKIPPED_SUFFIXES):
            continue
        day = file_day(path, landing_dir)
        if day is None:
            undated.append(path)
            continue
        day_start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        if day_start < end_utc and day_start + dt.timedelta(days=1) > start_utc:
            matched.append((day, str(path), path))

    if undated:
        logger.warning(
            "%d landing file(s) have no day (YYYY-MM-DD) in their name or folder and are "
            "never picked up by a scheduled run, e.g. %s; rename them or ingest them with "
            "`usagecast ingest`",
            len(undated),
            undated[0],
        )
    matched.sort()
    logger.info(
        "%d landing file(s) in %s for [%s, %s)",
        len(matched),
        landing_dir,
        start_utc.isoformat(),
        end_utc.isoformat(),
    )
    return [path for _, _, path in matched]


def _as_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; data intervals are aware datetimes")
    return moment.astimezone(dt.UTC)


def parse_day(value: object, name: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` run parameter as a date (``None`` or ``""`` mean "not given")."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise UsagecastError(f"param {name}={value!r} is not a date (YYYY-MM-DD)") from None


def ingest_interval(
    params: Mapping[str, Any], interval_start: dt.datetime | None, interval_end: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    """The interval an ingest run covers: the params' day range if given, else the run's.

    A manual run may set ``first_day`` and ``last_day`` (both included) to load a
    range of past days at once; a scheduled run or a backfill uses its data interval.
    """
    first_day = parse_day(params.get("first_day"), "first_day")
    last_day = parse_day(params.get("last_day"), "last_day")
    if first_day is not None or last_day is not None:
        if first_day is None or last_day is None:
            raise UsagecastError("set both first_day and last_day, or neither")
        if last_day < first_day:
            raise UsagecastError(f"last_day {last_day} is before first_day {first_day}")
        return (
            dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC),
            dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
        )
    if interval_start is None or interval_end is None or interval_end <= interval_start:
        raise UsagecastError(
            f"this run has no data interval ([{interval_start}, {interval_end})): trigger it "
            "with a logical date, or set first_day and last_day"
        )
    return interval_start, interval_end


def interval_days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """The UTC days that overlap ``[start, end)``."""
    first = _as_utc(start).date()
    last = (_as_utc(end) - dt.timedelta(microseconds=1)).date()
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def run_ingest(settings: Settings, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Ingest the landing files of ``[start, end)``; the result says what changed.

    Returns ``{"files": [...], "summary": str, "days": [...], ...}`` with ``files``
    empty when nothing landed for the interval (the caller decides to skip).
    Ingest itself skips files it has already stored, so a rerun stores nothing twice.
    """
    from pipelines.ingest import ingest

    files = landing_files_for_interval(settings.resolved_landing_dir, start, end)
    if not files:
        return {"files": [], "summary": "no landing files", "days": []}
    result = ingest(settings, files)
    logger.info("ingest of %d file(s): %s", len(files), result.summary())
    return {
        "files": [str(path) for path in files],
        "summary": result.summary(),
        "rows_read": result.rows_read,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "quarantined": result.quarantined,
        "days": sorted({day.isoformat() for day in result.days_touched}),
    }


def run_validation(
    settings: Settings, days: Iterable[dt.date], now: dt.datetime | None = None
) -> dict[str, Any]:
    """Validate the published partitions of ``days``; raises DataQualityError on a failure.

    ``now`` is the moment freshness is judged at: the end of the run's data interval,
    so that a backfill of last month is as fresh as its first run was. Days without
    a published partition (nothing landed for them) are skipped. Returns the
    validated days, warnings, and the as-of date a forecast of this fresh usage
    should use (the day after the last validated day).
    """
    from pipelines.lake import partition_days
    from pipelines.validate import validate_lake

    published = set(partition_days(settings.lake_dir, "calls")) | set(
        partition_days(settings.lake_dir, "usage_hourly")
    )
    requested = sorted(set(days) & published)
    if requested and set(requested) == published:
        # One pass over the whole lake costs one suite run, not one per day.
        reports = [validate_lake(settings, now=now)]
    else:
        reports = [validate_lake(settings, day=day, now=now) for day in requested]
    warnings: list[str] = []
    for report in reports:
        if report.critical:
            raise DataQualityError(
                f"published usage of {requested[0]}..{requested[-1]}: "
                f"{report.failure_message()}"
            )
        warnings.extend(warning.describe()[:300] for warning in report.warnings)
        logger.info("validated: %s", report.summary())
    validated = [day.isoformat() for day in requested]
    next_as_of = (
        (dt.date.fromisoformat(validated[-1]) + dt.timedelta(days=1)).isoformat()
        if validated
        else None
    )
    return {
        "days": validated,
        "warning_count": len(warnings),
        "warnings": warnings[:MAX_WARNINGS_IN_XCOM],
        "as_of": next_as_of,
    }


def resolve_as_of(
    param_value: object,
    event_extras: Iterable[Mapping[str, Any]] = (),
    interval_end: dt.datetime | None = None,
) -> str | None:
    """The as-of date of a training or forecast run, as ``YYYY-MM-DD`` or ``None``.

    An explicit param wins; then the latest ``as_of`` carried by the asset events
    that triggered the run (so a rerun of an asset-triggered run forecasts from the
    same day); then the end of a scheduled run's data interval. ``None`` lets the
    step pick the day after the last day in the lake.
    """
    explicit = parse_day(param_value, "as_of")
    if explicit is not None:
        return explicit.isoformat()
    carried = [extra["as_of"] for extra in event_extras if extra.get("as_of")]
    if carried:
        return max(carried)
    if interval_end is not None:
        return _as_utc(interval_end).date().isoformat()
    return None


def is_timed_run(dag_run: Any) -> bool:
    """Whether a run stands for its data interval (scheduled or backfilled), not for "now"."""
    run_type = getattr(dag_run, "run_type", None)
    return getattr(run_type, "value", run_type) in ("scheduled", "backfill")


def shard_indexes(plan: Mapping[str, Any]) -> list[int]:
    """One index per non-empty shard of a training or forecast plan, for task mapping."""
    return [index for index, shard in enumerate(plan["shards"]) if shard]


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Run one pipeline step inside a task; expected failures are not retried.

    A :class:`UsagecastError` (bad input, a failed data-quality check, no champion
    yet) or a wrong setting will fail the same way on every retry, so it becomes Airflow's
    ``AirflowFailException``: the task fails at once and downstream tasks do not
    run. Anything else (a full disk, a dropped database connection) is left to the
    task's retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except DataQualityError as error:
        logger.error("step %s stopped on a data-quality failure: %s", name, error)
        raise AirflowFailException(f"{name}: data-quality failure: {error}") from error
    except (UsagecastError, SettingsError) as error:
        logger.error("step %s failed: %s", name, error)
        raise AirflowFailException(f"{name}: {error}") from error


def log_task_failure(context: Mapping[str, Any]) -> None:
    """Airflow failure callback: say which step of which run failed, why, and where to look."""
    task_instance = context.get("task_instance") or context.get("ti")
    dag_id = getattr(task_instance, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(task_instance, "task_id", "?")
    map_index = getattr(task_instance, "map_index", -1)
    try_number = getattr(task_instance, "try_number", "?")
    run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", "?")
    error = context.get("exception")
    where = f"{task_id}[{map_index}]" if map_index not in (None, -1) else task_id
    logger.error(
        "usagecast step %s of DAG %s failed (run %s, try %s): %s: %s. Read this task's log "
        "in the Airflow UI; data-quality and input failures are not retried, fix the data "
        "and clear the task",
        where,
        dag_id,
        run_id,
        try_number,
        type(error).__name__ if error is not None else "unknown error",
        error,
    )
