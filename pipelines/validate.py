"""Great Expectations checks on every batch before it is published, and on the lake by hand.

The suites are data, kept in ``expectations/<suite>.json`` so that a reviewer reads the
thresholds there and never in code. Each expectation says in ``meta.severity`` whether a
failure is ``critical`` (the step stops, nothing downstream sees the batch) or a
``warning`` (logged, stored with the validation results, the run goes on).

An expectation may also say ``meta.requires``: ``batch_interval`` (it needs the interval
the batch claims to cover) or ``newest_partition`` (freshness makes sense only for the
newest data). When a requirement is not met the suite runs as a variant without those
expectations, registered under its own name (``calls-without-batch_interval``), so the
stored results and Data Docs say plainly what was not checked.

Everything GX keeps lives in a file-backed project under ``settings.gx_dir``: suites,
validation definitions, checkpoints, the stored results, and the Data Docs site
(``gx/uncommitted/data_docs/local_site/index.html``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import DataQualityError, UsagecastError
from pipelines.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

logger = logging.getLogger(__name__)

SUITES_DIR = REPO_ROOT / "expectations"
CALLS_SUITE = "calls"
HOURLY_SUITE = "usage_hourly"
CRITICAL = "critical"
WARNING = "warning"
SEVERITIES = (CRITICAL, WARNING)
REQUIREMENTS = ("batch_interval", "newest_partition")
DATASOURCE = "usagecast_staged"
OFFENDING_ROWS_SHOWN = 5
TRAILING_DAYS = 28
TRAILING_MIN_DAYS = 7
CHUNK_ROWS = 200_000
"""Calls validated per GX run. GX has a fixed cost per run, so runs are large; but a run
holds its frame plus GX's own copies (a 300k-row run raised a warmed process by ~350 MB),
and that, overlapping the next day's merge, sets the ingest's peak memory. 200k rows
costs ~10% more GX time than 300k and keeps ten times the replay near 1 GB."""
HOURLY_CHUNK_DAYS = 31
DETAILED = "-details"
"""Suffix of the checkpoint (and run name) that re-runs a suite for its offending rows."""
ROW_KEYS = {CALLS_SUITE: ["source_file", "source_line"], HOURLY_SUITE: ["series_id", "hour"]}
"""Columns that locate an offending row in the messages (the failing value comes too)."""


@dataclass(frozen=True)
class Finding:
    """One failed expectation on one partition, in words a user can act on."""

    suite: str
    days: tuple[dt.date, dt.date]
    expectation: str
    column: str | None
    severity: str
    observed: str
    offending_rows: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        first, last = self.days
        where = f" on {first}" if first == last else f" on {first}..{last}"
        column = f" column {self.column!r}" if self.column else ""
        text = (
            f"suite {self.suite!r}{where}: {self.expectation}{column} failed, "
            f"observed {self.observed}"
        )
        if self.offending_rows:
            rows = "; ".join(_format_row(row) for row in self.offending_rows)
            text += f"; offending rows: {rows}"
        return text

    def __str__(self) -> str:
        return self.describe()


@dataclass
class ValidationReport:
    """What the suites found; ``critical`` non-empty means the batch must not be used."""

    critical: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    partitions_checked: int = 0
    rows_checked: int = 0
    expectations_evaluated: int = 0
    docs_index: Path | None = None

    def extend(self, other: ValidationReport) -> None:
        self.critical.extend(other.critical)
        self.warnings.extend(other.warnings)
        self.partitions_checked += other.partitions_checked
        self.rows_checked += other.rows_checked
        self.expectations_evaluated += other.expectations_evaluated

    @property
    def success(self) -> bool:
        return not self.critical

    def summary(self) -> str:
        verdict = "passed" if self.success else f"FAILED ({len(self.critical)} critical)"
        text = (
            f"validation {verdict}: {self.partitions_checked} partitions, "
            f"{self.rows_checked:,} rows (calls and hourly usage together), "
            f"{self.expectations_evaluated} expectation results, {len(self.warnings)} warnings"
        )
        if self.docs_index is not None:
            text += f"; Data Docs: {self.docs_index}"
        return text

    def failure_message(self) -> str:
        lines = [self.summary()]
        lines.extend(f"- {finding.describe()}" for finding in self.critical)
        return "\n".join(lines)


def _format_row(row: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in row.items())


def load_suite_spec(name: str, suites_dir: Path = SUITES_DIR) -> dict[str, Any]:
    """Read a suite file and check every expectation declares a known severity."""
    path = suites_dir / f"{name}.json"
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsagecastError(f"expectation suite {path} is missing") from None
    except json.JSONDecodeError as error:
        raise UsagecastError(f"expectation suite {path} is not valid JSON: {error}") from None

    for position, expectation in enumerate(spec.get("expectations", [])):
        meta = expectation.get("meta", {})
        if meta.get("severity") not in SEVERITIES:
            raise UsagecastError(
                f"{path}: expectation #{position} ({expectation.get('type')}) needs "
                f"meta.severity 'critical' or 'warning', not {meta.get('severity')!r}"
            )
        if meta.get("requires") not in (None, *REQUIREMENTS):
            raise UsagecastError(
                f"{path}: expectation #{position} ({expectation.get('type')}) has unknown "
                f"meta.requires {meta.get('requires')!r}; known: {', '.join(REQUIREMENTS)}"
            )
    return spec


class _GxProject:
    """The file-backed GX project in the data folder, with one checkpoint per suite variant."""

    def __init__(self, settings: Settings) -> None:
        import great_expectations as gx

        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _skip_batch_fingerprints()
        self.context = gx.get_context(mode="file", project_root_dir=settings.data_dir)
        self.context.variables.progress_bars = {"globally": False}
        self.datasource = self.context.data_sources.add_or_update_pandas(DATASOURCE)
        self.specs = {name: load_suite_spec(name) for name in (CALLS_SUITE, HOURLY_SUITE)}
        self.checkpoints: dict[str, Any] = {}
        self.result_ids: list[Any] = []

    def checkpoint(self, suite: str, available: frozenset[str]) -> tuple[Any, Any]:
        """The screening and the detailed checkpoint of the suite variant that fits this run.

        Both run the same validation definition (the same suite on the same data); the
        screening one asks GX for ``BOOLEAN_ONLY`` results, the detailed one for
        ``SUMMARY`` results with the offending rows' keys (see ``run``).
        """
        missing = sorted(set(REQUIREMENTS) - available)
        variant = suite if not missing else f"{suite}-without-{'-'.join(missing)}"
        if variant in self.checkpoints:
            return self.checkpoints[variant]

        import great_expectations as gx

        spec = self.specs[suite]
        expectations = [
            expectation
            for expectation in spec["expectations"]
            if expectation.get("meta", {}).get("requires") in (None, *available)
        ]
        gx_suite = gx.ExpectationSuite(
            name=variant, expectations=expectations, meta=spec.get("meta", {})
        )
        if len(gx_suite.expectations) != len(expectations):
            raise UsagecastError(
                f"expectations/{suite}.json: GX rejected "
                f"{len(expectations) - len(gx_suite.expectations)} expectation(s); "
                "see the great_expectations log above for the invalid configuration"
            )
        gx_suite = self.context.suites.add_or_update(gx_suite)

        asset_names = self.datasource.get_asset_names()
        asset = (
            self.datasource.get_asset(suite)
            if suite in asset_names
            else self.datasource.add_dataframe_asset(suite)
        )
        batch_names = [definition.name for definition in asset.batch_definitions]
        batch_definition = (
            asset.get_batch_definition("staged")
            if "staged" in batch_names
            else asset.add_batch_definition_whole_dataframe("staged")
        )
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=variant, data=batch_definition, suite=gx_suite)
        )
        screening = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=variant,
                validation_definitions=[definition],
                actions=[],
                result_format={"result_format": "BOOLEAN_ONLY"},
            )
        )
        detailed = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"{variant}{DETAILED}",
                validation_definitions=[definition],
                actions=[],
                result_format={
                    "result_format": "SUMMARY",
                    "unexpected_index_column_names": ROW_KEYS[suite],
                    "partial_unexpected_count": OFFENDING_ROWS_SHOWN,
                },
            )
        )
        self.checkpoints[variant] = (screening, detailed)
        return screening, detailed

    def run(
        self,
        suite: str,
        days: list[dt.date],
        frame: pd.DataFrame,
        parameters: dict[str, Any],
        available: frozenset[str],
    ) -> ValidationReport:
        """The suite over one or more partitions; findings name the span of days.

        GX evaluates every expectation on every row with ``BOOLEAN_ONLY`` results, which
        skip the unexpected-value lists and row keys a passing run never needs and cost
        about half as much as ``SUMMARY``. When anything fails (a critical expectation,
        a warning or an error) the same suite runs again on the same frame with
        ``SUMMARY`` results, which name the offending rows; its findings are the ones
        reported. Both results are stored and shown in Data Docs.
        """
        from great_expectations.core.run_identifier import RunIdentifier

        screening, detailed = self.checkpoint(suite, available)
        span = (days[0], days[-1])
        run_name = f"{suite}-{span[0]}" if span[0] == span[1] else f"{suite}-{span[0]}..{span[1]}"
        result = screening.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_name),
        )
        self.result_ids.extend(result.run_results)
        if not result.success:
            result = detailed.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters,
                run_id=RunIdentifier(run_name=f"{run_name}{DETAILED}"),
            )
            self.result_ids.extend(result.run_results)
        report = ValidationReport(partitions_checked=len(days), rows_checked=len(frame))
        for validation in result.run_results.values():
            for outcome in validation.results:
                report.expectations_evaluated += 1
                finding = _finding(suite, span, outcome)
                if finding is None:
                    continue
                if finding.severity == CRITICAL:
                    report.critical.append(finding)
                else:
                    report.warnings.append(finding)
        return report

    def build_docs(self) -> Path | None:
        """Render the results gathered since the last build into the Data Docs site."""
        if not self.result_ids:
            return None
        self.context.build_data_docs(resource_identifiers=self.result_ids)
        self.result_ids = []
        index = self.settings.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html"
        return index if index.is_file() else None


_PROJECTS: dict[tuple, _GxProject] = {}


def _skip_batch_fingerprints() -> None:
    """Stop GX from hashing every row of each batch to label its stored result.

    NOTE: GX's pandas engine fingerprints a batch (an md5 over pandas' hash of every
    row, kept among the result's batch markers and shown in Data Docs) unless the frame
    takes more than ``HASH_THRESHOLD`` bytes, 1 GB. The fingerprint is no expectation and
    nothing reads it, yet it was ~40% of a passing run over calls; the threshold is set
    to zero so that no batch is hashed. Known shortcoming: this sets a module constant
    of GX's; if a GX release drops it, batches are hashed again (slower, still correct),
    and a warning says so.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    if not hasattr(engine, "HASH_THRESHOLD"):
        logger.warning("great_expectations has no HASH_THRESHOLD any more: every batch is "
                       "fingerprinted again, which slows validation down")
        return
    engine.HASH_THRESHOLD = 0


def _project(settings: Settings) -> _GxProject:
    """The GX project of this data folder, set up once per process.

    Opening the context and registering suites, validation definitions and checkpoints
    costs seconds; an ingest validates in several calls, so it is done once. A changed
    suite file (or another data folder) gets a fresh project.
    """
    suite_files = tuple(
        (path.name, path.stat().st_mtime_ns, path.stat().st_size)
        for path in sorted(SUITES_DIR.glob("*.json"))
    )
    key = (str(settings.data_dir.resolve()), str(SUITES_DIR), suite_files)
    project = _PROJECTS.get(key)
    if project is None or not settings.gx_dir.is_dir():
        _PROJECTS.clear()
        project = _PROJECTS[key] = _GxProject(settings)
    project.settings = settings
    return project


def prepare(settings: Settings) -> None:
    """Import GX and open the data folder's project ahead of the first validation.

    Both take seconds; a caller with other work to do (ingest, while it reads files)
    runs this first on a worker thread.
    """
    _project(settings)


def _raised_exception(outcome: Any) -> str | None:
    """GX reports an expectation that could not run (e.g. a missing column) as an exception."""
    info = outcome.exception_info or {}
    candidates = [info] if "raised_exception" in info else list(info.values())
    for candidate in candidates:
        if isinstance(candidate, dict) and candidate.get("raised_exception"):
            return str(candidate.get("exception_message") or "exception").splitlines()[0]
    return None


def _finding(suite: str, days: tuple[dt.date, dt.date], outcome: Any) -> Finding | None:
    """Turn one failed GX result into a finding; ``None`` when the expectation held."""
    config = outcome.expectation_config
    error = _raised_exception(outcome)
    if outcome.success and error is None:
        return None

    kwargs = config.kwargs or {}
    column = kwargs.get("column")
    if column is None and "column_A" in kwargs:
        relation = "==" if config.type.endswith("to_be_equal") else ">="
        column = f"{kwargs['column_A']} {relation} {kwargs['column_B']}"
    if column is None and "column_list" in kwargs:
        column = ",".join(kwargs["column_list"])
    severity = (config.meta or {}).get("severity", CRITICAL)

    result = outcome.result or {}
    if error is not None:
        observed = f"an error: {error}"
        severity = CRITICAL
    elif "unexpected_count" in result and result.get("element_count"):
        observed = (
            f"{result['unexpected_count']:,} of {result['element_count']:,} rows unexpected "
            f"({result.get('unexpected_percent', 0.0):.2f}%)"
        )
        if result.get("partial_unexpected_list") and not result.get(
            "partial_unexpected_index_list"
        ):
            values = [_plain(value) for value in result["partial_unexpected_list"]]
            observed += f", e.g. {values[:OFFENDING_ROWS_SHOWN]}"
    else:
        observed = repr(_plain(result.get("observed_value")))
    rows = [
        {key: _plain(value) for key, value in row.items()}
        for row in (result.get("partial_unexpected_index_list") or [])[:OFFENDING_ROWS_SHOWN]
        if isinstance(row, dict)
    ]
    bounds = {
        key: kwargs[key]
        for key in ("min_value", "max_value", "value_set", "mostly", "type_", "column_set")
        if key in kwargs and key != "value_set"
    }
    expectation = config.type + (f" {json.dumps(bounds, default=str)}" if bounds else "")
    return Finding(suite, days, expectation, column, severity, observed, rows)


def _plain(value: Any) -> Any:
    """Numpy and pandas scalars as plain Python values, so messages and JSON read cleanly."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def calls_frame(table: pa.Table, day: dt.date) -> pd.DataFrame:
    """One calls partition as pandas, with nullable integers and the partition's day.

    GX's type check reads ``dtype.type``: pandas ``Int64`` reports ``numpy.int64`` and
    passes ``type_: int64``, whereas the default conversion would turn nullable token
    columns into float64 and fail it. ``timestamp_day`` and ``partition_day`` let the
    suite check that every call sits in the partition of its own UTC day, which is what
    allows several partitions to be validated in one GX run.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if "timestamp" in table.column_names:
        timestamps = table.column("timestamp")
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        table = table.append_column(
            "timestamp_day", pc.floor_temporal(timestamps, 1, "day")
        ).append_column(
            "partition_day", pa.repeat(pa.scalar(midnight, timestamps.type), table.num_rows)
        )
    return _nullable_frame(table)


def _nullable_frame(table: pa.Table) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    # Integer columns with nulls become pandas Int64 (same numpy type for GX); those
    # without stay numpy, because GX's range checks are vectorised only for numpy dtypes.
    mapping = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()}
    return pd.DataFrame(
        {
            name: column.to_pandas(types_mapper=mapping.get if column.null_count else None)
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )


def hourly_frame(
    settings: Settings,
    hourly_by_day: dict[dt.date, pa.Table],
    now: dt.datetime,
) -> pd.DataFrame:
    """Hourly partitions as one pandas frame with the three derived columns the suite checks.

    ``hours_since_previous`` is the gap to the series' previous hour in the same UTC day
    (null for its first hour): hours outside every source's coverage are absent by
    design, so only holes inside a day's covered span count.
    ``requests_vs_trailing`` compares the day's mean requests per covered hour with the
    series' mean on the same weekday over the trailing weeks (a quiet Sunday is measured
    against Sundays, not against busy weekdays), taken from the batch itself and the
    published lake (the batch wins for its own days); null with fewer than a week of
    history.
    ``hour_age_hours`` is how long before ``now`` each hour began.
    """
    import pandas as pd

    days = sorted(hourly_by_day)
    frames = [_nullable_frame(hourly_by_day[day]).assign(utc_day=day) for day in days]
    batch = pd.concat(frames, ignore_index=True)
    if "series_id" not in batch.columns or "hour" not in batch.columns:
        return batch.drop(columns="utc_day")

    batch = batch.sort_values(["utc_day", "series_id", "hour"], kind="stable")
    gaps = batch.groupby(["utc_day", "series_id"], sort=False)["hour"].diff()
    batch["hours_since_previous"] = gaps.dt.total_seconds() / 3600.0

    per_day = _daily_rates(batch)
    history = _published_daily_rates(settings, days[0] - dt.timedelta(days=TRAILING_DAYS), days)
    rates = pd.concat([frame for frame in (history, per_day) if len(frame)], ignore_index=True)
    batch = batch.merge(
        _trailing_ratios(rates, per_day), on=["series_id", "utc_day"], how="left", validate="m:1"
    )
    batch["hour_age_hours"] = (pd.Timestamp(now) - batch["hour"]).dt.total_seconds() / 3600.0
    return batch.drop(columns="utc_day").reset_index(drop=True)


def _daily_rates(hourly: pd.DataFrame) -> pd.DataFrame:
    """Mean requests per covered hour, per series and day."""
    grouped = hourly.groupby(["series_id", "utc_day"], as_index=False).agg(
        requests=("requests", "sum"), hours=("hour", "count")
    )
    grouped["requests"] = grouped["requests"].astype("float64")
    return grouped


def _published_daily_rates(
    settings: Settings, start: dt.date, batch_days: list[dt.date]
) -> pd.DataFrame:
    """The lake's per-series daily rates in the trailing window, minus the batch's own days."""
    import pandas as pd

    from pipelines import lake

    table = lake.read_usage_hourly(
        settings.lake_dir,
        start_day=start,
        end_day=batch_days[-1],
        columns=["series_id", "hour", "requests"],
    )
    if table.num_rows == 0:
        return pd.DataFrame(columns=["series_id", "utc_day", "requests", "hours"])
    hourly = table.to_pandas()
    hourly["utc_day"] = hourly["hour"].dt.date
    hourly = hourly[~hourly["utc_day"].isin(set(batch_days))]
    return _daily_rates(hourly)


def _trailing_ratios(rates: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """For each (series, day) in ``targets``: its hourly rate over the trailing hourly rate
    of the same weekday."""
    import numpy as np
    import pandas as pd

    by_series = {series: group for series, group in rates.groupby("series_id")}
    ratios = []
    for row in targets.itertuples(index=False):
        history = by_series.get(row.series_id)
        ratio = None
        if history is not None:
            window = history[
                (history["utc_day"] < row.utc_day)
                & (history["utc_day"] >= row.utc_day - dt.timedelta(days=TRAILING_DAYS))
            ]
            same_weekday = window[
                window["utc_day"].map(dt.date.weekday) == row.utc_day.weekday()
            ]
            hours = same_weekday["hours"].sum()
            if window["utc_day"].nunique() >= TRAILING_MIN_DAYS and hours > 0:
                trailing_rate = same_weekday["requests"].sum() / hours
                if trailing_rate > 0:
                    ratio = (row.requests / row.hours) / trailing_rate
        ratios.append(np.nan if ratio is None else ratio)
    return pd.DataFrame(
        {
            "series_id": targets["series_id"].to_numpy(),
            "utc_day": targets["utc_day"].to_numpy(),
            "requests_vs_trailing": np.asarray(ratios, dtype="float64"),
        }
    )


def _interval_parameters(
    batch_interval: tuple[dt.datetime, dt.datetime] | None, now: dt.datetime
) -> tuple[dict[str, Any], frozenset[str]]:
    parameters: dict[str, Any] = {"now": now.isoformat()}
    available: set[str] = set()
    if batch_interval is not None:
        start, end = (_utc(moment) for moment in batch_interval)
        if end <= start:
            raise UsagecastError(f"batch interval {start} .. {end} is empty")
        parameters["interval_start"] = start.isoformat()
        parameters["interval_end"] = end.isoformat()
        available.add("batch_interval")
    return parameters, frozenset(available)


def _hour_floor(moment: str) -> str:
    return dt.datetime.fromisoformat(moment).replace(minute=0, second=0, microsecond=0).isoformat()


def _log_warnings(report: ValidationReport) -> None:
    for finding in report.warnings:
        logger.warning("data quality warning: %s", finding.describe())


def validate_batch(
    settings: Settings,
    calls_by_day: dict[dt.date, pa.Table | Path],
    hourly_by_day: dict[dt.date, pa.Table],
    batch_interval: tuple[dt.datetime, dt.datetime] | None = None,
    now: dt.datetime | None = None,
    *,
    build_docs: bool = True,
) -> ValidationReport:
    """Check a staged batch before it is published; raise ``DataQualityError`` if critical.

    ``batch_interval`` is the ``[start, end)`` span the batch claims to cover (a scheduled
    run's data interval); without it only "not in the future" and "in its own day's
    partition" bound the timestamps. A day's calls are a table or the Parquet file of
    the staged partition (read back in parts, so a large day is never held whole). Every
    day is checked before raising, so the message lists all critical findings; the error
    carries the report as ``error.report``.
    A caller that validates one batch in several calls passes ``build_docs=False`` to all
    but the last: the Data Docs site is then rendered once, with every call's results
    (and always when a critical finding stops the batch).
    """
    now = _utc(now or dt.datetime.now(dt.UTC))
    parameters, available = _interval_parameters(batch_interval, now)
    newest_published = _newest_published_day(settings)
    project = _project(settings)
    report = ValidationReport()

    calls = ((day, calls_by_day[day]) for day in sorted(calls_by_day))
    for days, frame in _chunks(calls, CHUNK_ROWS, calls_frame):
        report.extend(project.run(CALLS_SUITE, days, frame, parameters, available))
        del frame

    if hourly_by_day:
        hourly_parameters = dict(parameters)
        if "interval_start" in hourly_parameters:
            hourly_parameters["interval_start"] = _hour_floor(parameters["interval_start"])
        days = sorted(hourly_by_day)
        if newest_published is None or days[-1] >= newest_published:
            available = available | {"newest_partition"}
        frame = hourly_frame(settings, hourly_by_day, now)
        report.extend(project.run(HOURLY_SUITE, days, frame, hourly_parameters, available))

    if build_docs or report.critical:
        report.docs_index = project.build_docs()
    _log_warnings(report)
    if report.critical:
        error = DataQualityError(report.failure_message())
        error.report = report  # type: ignore[attr-defined]
        raise error
    logger.info("%s", report.summary())
    return report


def _chunks(
    partitions: Iterable[tuple[dt.date, pa.Table | Path]],
    max_rows: int,
    to_frame: Callable[[pa.Table, dt.date], pd.DataFrame],
) -> Iterator[tuple[list[dt.date], pd.DataFrame]]:
    """Consecutive partitions gathered into frames of about ``max_rows`` rows.

    GX costs about a second per run whatever the size, so small partitions are validated
    together; a partition larger than ``max_rows`` is split (see ``_split_by_request``),
    so memory stays bounded by about one chunk whatever the size of a day.
    """
    import pandas as pd

    days: list[dt.date] = []
    frames: list[pd.DataFrame] = []
    rows = 0

    def gathered() -> pd.DataFrame:
        # The pieces are dropped before GX runs, so a chunk is held once, not twice.
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        frames.clear()
        return frame

    for day, source in partitions:
        for part in _parts(source, max_rows):
            if rows and rows + part.num_rows > max_rows:
                yield days, gathered()
                days, rows = [], 0
            if not days or days[-1] != day:
                days.append(day)
            frames.append(to_frame(part, day))
            rows += part.num_rows
            del part
    if days:
        yield days, gathered()


def _parts(source: pa.Table | Path, max_rows: int) -> Iterator[pa.Table]:
    """A partition, held (a table) or on disk (its Parquet file), in parts of about ``max_rows``."""
    if isinstance(source, Path):
        yield from _read_by_request(source, max_rows)
    else:
        yield from _split_by_request(source, max_rows)


def _read_by_request(path: Path, max_rows: int) -> Iterator[pa.Table]:
    """A partition file read in parts of about ``max_rows`` rows, never split inside an id.

    Each row's part is the hash of its request id (computed by DuckDB over that column
    alone), so every copy of an id lands in the same part, as with ``_split_by_request``.
    The file is read once, row group by row group, into one scratch file per part; the
    parts are then read back one at a time, so no more than one part is ever held.
    """
    import tempfile

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.daymerge import SCAN_MEMORY_LIMIT

    parquet = pq.ParquetFile(path)
    schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
    if rows <= max_rows or "request_id" not in schema.names:
        yield parquet.read()
        return
    import duckdb

    count = -(-rows // max_rows)
    literal = "'" + str(path).replace("'", "''") + "'"
    with duckdb.connect(config={"threads": 1, "memory_limit": SCAN_MEMORY_LIMIT}) as connection:
        parts = connection.sql(
            f"SELECT (hash(request_id) % {count})::USMALLINT AS part FROM read_parquet("
            f"{literal}, hive_partitioning = false, file_row_number = true) "
            "ORDER BY file_row_number"
        ).to_arrow_table().column("part").combine_chunks()
    with tempfile.TemporaryDirectory(prefix="usagecast-parts-") as scratch:
        part_paths = [Path(scratch) / f"{part:05d}.parquet" for part in range(count)]
        writers = [pq.ParquetWriter(part_path, schema, compression="lz4")
                   for part_path in part_paths]
        try:
            offset = 0
            for group in range(parquet.num_row_groups):
                rows_in_group = parquet.metadata.row_group(group).num_rows
                group_parts = parts.slice(offset, rows_in_group)
                offset += rows_in_group
                table = parquet.read_row_group(group)
                for part, writer in enumerate(writers):
                    writer.write_table(table.filter(pc.equal(group_parts, part)))
        finally:
            for writer in writers:
                writer.close()
        for part_path in part_paths:
            yield pq.read_table(part_path)


def _split_by_request(table: pa.Table, max_rows: int) -> Iterator[pa.Table]:
    """A partition in parts of at most about ``max_rows`` rows, cut between request ids.

    The rows are cut in request-id order and never inside a run of one id, so every
    copy of a repeated id lands in the same part and ``request_id`` uniqueness checked
    part by part is uniqueness over the whole partition.
    """
    import pyarrow.compute as pc

    if table.num_rows <= max_rows or "request_id" not in table.column_names:
        yield table
        return
    ids = table.column("request_id")
    order = pc.sort_indices(ids).to_numpy()

    def same_id(first: int, second: int) -> bool:
        a, b = ids[int(order[first])], ids[int(order[second])]
        return a.is_valid and a == b

    start = 0
    while start < table.num_rows:
        end = min(start + max_rows, table.num_rows)
        while end < table.num_rows and same_id(end, end - 1):
            end += 1
        yield table.take(order[start:end])
        start = end


def _newest_published_day(settings: Settings) -> dt.date | None:
    from pipelines import lake

    days = lake.partition_days(settings.lake_dir, "usage_hourly")
    return days[-1] if days else None


def validate_lake(
    settings: Settings, day: dt.date | None = None, now: dt.datetime | None = None
) -> ValidationReport:
    """Check published partitions (all days, or one) and report; never raises on bad data.

    Partitions are read one at a time and validated in chunks of about ``CHUNK_ROWS``
    calls, so memory stays flat however long the lake is. Each call must sit in its own
    day's partition; freshness applies to the chunk holding the newest hourly partition.
    """
    from pipelines import lake

    now = _utc(now or dt.datetime.now(dt.UTC))
    calls_days = lake.partition_days(settings.lake_dir, "calls")
    hourly_days = lake.partition_days(settings.lake_dir, "usage_hourly")
    newest_hourly = hourly_days[-1] if hourly_days else None
    if day is not None:
        calls_days = [candidate for candidate in calls_days if candidate == day]
        hourly_days = [candidate for candidate in hourly_days if candidate == day]
        if not calls_days and not hourly_days:
            raise UsagecastError(
                f"no published partition for {day.isoformat()} in {settings.lake_dir}"
            )
    parameters, available = _interval_parameters(None, now)
    project = _project(settings)
    report = ValidationReport()

    calls = (
        (partition_day,
         lake.partition_dir(settings.lake_dir, "calls", partition_day) / lake.PARTITION_FILE)
        for partition_day in _progress(settings, calls_days, "calls partitions")
    )
    for days, frame in _chunks(calls, CHUNK_ROWS, calls_frame):
        report.extend(project.run(CALLS_SUITE, days, frame, parameters, available))
        del frame

    for start in range(0, len(hourly_days), HOURLY_CHUNK_DAYS):
        days = hourly_days[start : start + HOURLY_CHUNK_DAYS]
        tables = {
            partition_day: lake.read_partition(settings.lake_dir, "usage_hourly", partition_day)
            for partition_day in days
        }
        variant = available | {"newest_partition"} if newest_hourly in days else available
        frame = hourly_frame(settings, tables, now)
        report.extend(project.run(HOURLY_SUITE, days, frame, parameters, variant))

    report.docs_index = project.build_docs()
    _log_warnings(report)
    for finding in report.critical:
        logger.error("data quality failure: %s", finding.describe())
    logger.info("%s", report.summary())
    return report


def _progress(settings: Settings, items: list[dt.date], what: str) -> Iterable[dt.date]:
    if not settings.progress or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"validating {what}", unit="day")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        help="validate only this UTC day's partitions (YYYY-MM-DD); default: every day",
    )
    parser.add_argument(
        "--now",
        type=dt.datetime.fromisoformat,
        help="check freshness and 'not in the future' against this time instead of now",
    )


def run(args: argparse.Namespace, settings: Settings) -> str:
    report = validate_lake(settings, day=args.date, now=args.now)
    if report.critical:
        raise DataQualityError(report.failure_message())
    return report.summary()
