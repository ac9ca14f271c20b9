"""The SQL reporting tables users open, written through SQLAlchemy Core.

One schema for the embedded SQLite file and for PostgreSQL. Every row carries
the run, the as-of date and the model version. A forecast run replaces all rows
of its as-of date (and the actual days and accuracy rows it recomputed) in one
transaction, so a rerun leaves the same rows and a failed run leaves the last
good ones. The views ``latest_forecast_daily`` and ``latest_cost_estimate``
show the most recent as-of date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    import pandas as pd

    from pipelines.settings import Settings

logger = logging.getLogger(__name__)

metadata = sa.MetaData()


def _run_columns() -> list[sa.Column]:
    return [
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
    ]


def _grain_columns() -> list[sa.Column]:
    return [
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
    ]


def _quantile_columns() -> list[sa.Column]:
    return [sa.Column(name, sa.Float, nullable=False) for name in ("p10", "p50", "p90")]


USAGE_DAILY = sa.Table(
    "usage_daily",
    metadata,
    sa.Column("series_id", sa.String(300), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    *_grain_columns(),
    sa.Column("resolution", sa.String(8), nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost", sa.Float, comment="null when the model is not in the price table"),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("price_effective_date", sa.Date),
    sa.Column("as_of_date", sa.Date, nullable=False),
    *_run_columns(),
    comment="Actual usage and cost per series and UTC day, as known by the last run.",
)

FORECAST_DAILY = sa.Table(
    "forecast_daily",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("series_id", sa.String(300), primary_key=True),
    sa.Column("target", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    *_grain_columns(),
    *_quantile_columns(),
    sa.Column("history_days", sa.Integer),
    sa.Column("low_history", sa.Boolean),
    *_run_columns(),
    comment="Daily totals per series and target, UTC days, from the as-of date on.",
)

FORECAST_HOURLY = sa.Table(
    "forecast_hourly",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("series_id", sa.String(300), primary_key=True),
    sa.Column("target", sa.String(32), primary_key=True),
    sa.Column("hour", sa.DateTime, primary_key=True, comment="UTC"),
    *_grain_columns(),
    *_quantile_columns(),
    *_run_columns(),
    comment="Hourly values for the hours after the as-of date (capacity planning).",
)

COST_ESTIMATE_MONTHLY = sa.Table(
    "cost_estimate_monthly",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("level", sa.String(8), primary_key=True, comment="series, team or total"),
    sa.Column("name", sa.String(300), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True, comment="first day, business time zone"),
    sa.Column("month_index", sa.Integer, nullable=False, comment="0 current, 1 next"),
    sa.Column("series_id", sa.String(300)),
    sa.Column("team", sa.String(200)),
    sa.Column("month_start_utc", sa.DateTime, nullable=False),
    sa.Column("month_end_utc", sa.DateTime, nullable=False),
    sa.Column("business_tz", sa.String(64), nullable=False),
    sa.Column("actual_cost_to_date", sa.Float),
    sa.Column("forecast_rest_p10", sa.Float),
    sa.Column("forecast_rest_p50", sa.Float),
    sa.Column("forecast_rest_p90", sa.Float),
    sa.Column("estimate_p10", sa.Float),
    sa.Column("estimate_p50", sa.Float),
    sa.Column("estimate_p90", sa.Float),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("unpriced_models", sa.String(2000), nullable=False),
    sa.Column("budget", sa.Float),
    sa.Column("prob_over_budget", sa.Float),
    *_run_columns(),
    comment="This and next month's cost: actual to date plus forecast rest, p10/p50/p90.",
)

COST_WHATIF_MONTHLY = sa.Table(
    "cost_whatif_monthly",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("series_id", sa.String(300), primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("alternative_model", sa.String(300), primary_key=True),
    sa.Column("month_index", sa.Integer, nullable=False),
    sa.Column("team", sa.String(200), nullable=False),
    sa.Column("current_model", sa.String(300), nullable=False),
    sa.Column("current_cost", sa.Float),
    sa.Column("alternative_cost", sa.Float, comment="null when the model is not priced"),
    sa.Column("difference", sa.Float, comment="alternative - current; negative is a saving"),
    sa.Column("currency", sa.String(3), nullable=False),
    *_run_columns(),
    comment="The month's usage (actual + p50 forecast) priced on each configured alternative.",
)

FORECAST_ACCURACY = sa.Table(
    "forecast_accuracy",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True, comment="the forecast's as-of date"),
    sa.Column("series_id", sa.String(300), primary_key=True),
    sa.Column("target", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("horizon_days", sa.Integer, nullable=False),
    *_quantile_columns(),
    sa.Column("actual", sa.Float, nullable=False),
    sa.Column("abs_error", sa.Float, nullable=False),
    sa.Column("inside_interval", sa.Boolean, nullable=False),
    *_run_columns(),
    comment="Each past daily forecast against its actual, once the actual is known.",
)

PIPELINE_RUNS = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("as_of_date", sa.Date, primary_key=True),
    sa.Column("step", sa.String(32), primary_key=True),
    *_run_columns(),
    sa.Column("data_start", sa.Date),
    sa.Column("data_end", sa.Date, comment="exclusive: the as-of date"),
    sa.Column("series_count", sa.Integer, nullable=False),
    sa.Column("forecast_daily_rows", sa.Integer, nullable=False),
    sa.Column("forecast_hourly_rows", sa.Integer, nullable=False),
    sa.Column("cost_rows", sa.Integer, nullable=False),
    sa.Column("accuracy_rows", sa.Integer, nullable=False),
    sa.Column("unpriced_models", sa.String(2000), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=False),
    comment="One row per forecast as-of date: which model, which data window, how many rows.",
)

AS_OF_TABLES = (FORECAST_DAILY, FORECAST_HOURLY, COST_ESTIMATE_MONTHLY, COST_WHATIF_MONTHLY)

VIEWS = {
    "latest_forecast_daily": (
        "SELECT * FROM forecast_daily "
        "WHERE as_of_date = (SELECT MAX(as_of_date) FROM forecast_daily)"
    ),
    "latest_cost_estimate": (
        "SELECT * FROM cost_estimate_monthly "
        "WHERE as_of_date = (SELECT MAX(as_of_date) FROM cost_estimate_monthly)"
    ),
}


def create_engine(settings: Settings) -> sa.Engine:
    """An engine on the configured reporting database; the SQLite file's folder is created."""
    url = sa.make_url(settings.resolved_report_db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)


def ensure_schema(engine: sa.Engine) -> None:
    """Create missing tables and views; existing ones are left as they are."""
    metadata.create_all(engine)
    existing = set(sa.inspect(engine).get_view_names())
    with engine.begin() as connection:
        for name, query in VIEWS.items():
            if name not in existing:
                connection.execute(sa.text(f"CREATE VIEW {name} AS {query}"))


def _records(frame: pd.DataFrame, table: sa.Table) -> list[dict]:
    """Rows as plain Python values in the table's columns (NaN becomes NULL)."""
    import pandas as pd

    columns = {}
    for column in table.columns:
        if column.name not in frame.columns:
            continue
        values = frame[column.name]
        if isinstance(column.type, sa.Date):
            converted = [None if pd.isna(value) else pd.Timestamp(value).date() for value in values]
        elif isinstance(column.type, sa.DateTime):
            converted = [
                None
                if pd.isna(value)
                else pd.Timestamp(value).tz_localize(None).to_pydatetime()
                if pd.Timestamp(value).tzinfo is not None
                else pd.Timestamp(value).to_pydatetime()
                for value in values
            ]
        else:
            converted = [None if _is_missing(value) else _plain(value) for value in values]
        columns[column.name] = converted
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _is_missing(value: object) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def publish(
    engine: sa.Engine,
    as_of: dt.date,
    frames: dict[str, pd.DataFrame],
    actual_window: tuple[dt.date, dt.date] | None,
    series_ids: Iterable[str] | None = None,
    accuracy_actuals: pd.DataFrame | None = None,
) -> dict[str, int]:
    """Replace the as-of date's rows in every reporting table, in one transaction.

    ``frames`` maps table names to rows for this as-of date. ``usage_daily`` rows
    replace the actual days in ``actual_window`` (for ``series_ids``, or every
    series when ``None``). When ``accuracy_actuals`` (daily actuals) are given,
    forecasts of earlier as-of dates are scored against them in the same
    transaction. Returns the number of rows written per table.
    """
    ensure_schema(engine)
    tables = {table.name: table for table in metadata.sorted_tables}
    written: dict[str, int] = {}
    series_list = sorted(series_ids) if series_ids is not None else None

    with engine.begin() as connection:
        for table in AS_OF_TABLES:
            delete = table.delete().where(table.c.as_of_date == as_of)
            if (
                series_list is not None
                and "series_id" in table.c
                and table is not (COST_ESTIMATE_MONTHLY)
            ):
                delete = delete.where(table.c.series_id.in_(series_list))
            connection.execute(delete)
        connection.execute(
            PIPELINE_RUNS.delete().where(
                PIPELINE_RUNS.c.as_of_date == as_of, PIPELINE_RUNS.c.step == "forecast"
            )
        )

        if actual_window is not None:
            delete = USAGE_DAILY.delete().where(
                USAGE_DAILY.c.day >= actual_window[0], USAGE_DAILY.c.day < actual_window[1]
            )
            if series_list is not None:
                delete = delete.where(USAGE_DAILY.c.series_id.in_(series_list))
            connection.execute(delete)

        if accuracy_actuals is not None:
            frames = dict(frames)
            frames["forecast_accuracy"] = _score_past_forecasts(
                connection, as_of, accuracy_actuals, series_list
            )

        for name, frame in frames.items():
            if name == "pipeline_runs":
                continue
            records = _records(frame, tables[name])
            if records:
                connection.execute(tables[name].insert(), records)
            written[name] = len(records)

        if "pipeline_runs" in frames:
            run = frames["pipeline_runs"].copy()
            run["accuracy_rows"] = written.get("forecast_accuracy", 0)
            connection.execute(PIPELINE_RUNS.insert(), _records(run, PIPELINE_RUNS))
            written["pipeline_runs"] = len(run)
    logger.info(
        "reporting tables for as-of %s written: %s",
        as_of,
        ", ".join(f"{name} {count}" for name, count in written.items()),
    )
    return written


def _score_past_forecasts(
    connection: sa.Connection,
    as_of: dt.date,
    actuals: pd.DataFrame,
    series_list: list[str] | None,
) -> pd.DataFrame:
    """Daily forecasts of earlier as-of dates for days before ``as_of``, next to the actual.

    The rows scored are deleted first, so scoring again gives the same rows.
    """
    import pandas as pd

    query = sa.select(FORECAST_DAILY).where(
        FORECAST_DAILY.c.as_of_date < as_of, FORECAST_DAILY.c.day < as_of
    )
    delete = FORECAST_ACCURACY.delete().where(
        FORECAST_ACCURACY.c.as_of_date < as_of, FORECAST_ACCURACY.c.day < as_of
    )
    if series_list is not None:
        query = query.where(FORECAST_DAILY.c.series_id.in_(series_list))
        delete = delete.where(FORECAST_ACCURACY.c.series_id.in_(series_list))
    connection.execute(delete)
    past = pd.DataFrame(connection.execute(query).mappings().all())
    if not len(past) or not len(actuals):
        return pd.DataFrame(columns=[column.name for column in FORECAST_ACCURACY.columns])

    long_actuals = actuals.melt(
        id_vars=["series_id", "day"],
        value_vars=[
            c
            for c in ("requests", "input_tokens", "output_tokens", "cached_input_tokens")
            if c in actuals.columns
        ],
        var_name="target",
        value_name="actual",
    )
    long_actuals["day"] = pd.to_datetime(long_actuals["day"]).dt.date
    past["day"] = pd.to_datetime(past["day"]).dt.date
    past["as_of_date"] = pd.to_datetime(past["as_of_date"]).dt.date
    scored = past.merge(long_actuals, on=["series_id", "day", "target"], how="inner")
    scored["actual"] = scored["actual"].astype("float64")
    scored["horizon_days"] = [
        (day - forecast_as_of).days + 1
        for day, forecast_as_of in zip(scored["day"], scored["as_of_date"], strict=True)
    ]
    scored["abs_error"] = (scored["p50"] - scored["actual"]).abs()
    scored["inside_interval"] = (scored["actual"] >= scored["p10"]) & (
        scored["actual"] <= scored["p90"]
    )
    return scored


def latest_as_of(engine: sa.Engine) -> dt.date | None:
    """The most recent as-of date in ``cost_estimate_monthly``, if any."""
    if not sa.inspect(engine).has_table(COST_ESTIMATE_MONTHLY.name):
        return None
    with engine.connect() as connection:
        value = connection.execute(sa.select(sa.func.max(COST_ESTIMATE_MONTHLY.c.as_of_date)))
        found = value.scalar()
    if found is None:
        return None
    return found if isinstance(found, dt.date) else dt.date.fromisoformat(str(found))


def render_summary(settings: Settings, as_of: dt.date | None = None) -> str:
    """A short table: next 7 days' forecast totals and this and next month's cost estimate."""
    engine = create_engine(settings)
    try:
        as_of = as_of or latest_as_of(engine)
        if as_of is None:
            return "no forecast yet: run `usagecast forecast` first"
        with engine.connect() as connection:
            week = connection.execute(
                sa.select(
                    FORECAST_DAILY.c.target,
                    sa.func.sum(FORECAST_DAILY.c.p10),
                    sa.func.sum(FORECAST_DAILY.c.p50),
                    sa.func.sum(FORECAST_DAILY.c.p90),
                )
                .where(
                    FORECAST_DAILY.c.as_of_date == as_of,
                    FORECAST_DAILY.c.day < as_of + dt.timedelta(days=7),
                )
                .group_by(FORECAST_DAILY.c.target)
                .order_by(FORECAST_DAILY.c.target)
            ).all()
            months = (
                connection.execute(
                    sa.select(COST_ESTIMATE_MONTHLY)
                    .where(
                        COST_ESTIMATE_MONTHLY.c.as_of_date == as_of,
                        COST_ESTIMATE_MONTHLY.c.level.in_(("team", "total")),
                    )
                    .order_by(
                        COST_ESTIMATE_MONTHLY.c.month,
                        COST_ESTIMATE_MONTHLY.c.level.desc(),
                        COST_ESTIMATE_MONTHLY.c.name,
                    )
                )
                .mappings()
                .all()
            )
    finally:
        engine.dispose()
    return _format_summary(as_of, week, months)


def _money(value: float | None) -> str:
    return "unpriced" if value is None else f"{value:,.2f}"


def _format_summary(as_of: dt.date, week: list, months: list) -> str:
    lines = [f"usagecast forecast as of {as_of}", "", "next 7 days, all series (p10 / p50 / p90)"]
    for target, p10, p50, p90 in week:
        lines.append(f"  {target:<22}{p10:>16,.0f}{p50:>16,.0f}{p90:>16,.0f}")
    lines += ["", "monthly cost estimate (actual to date + forecast rest)"]
    lines.append(
        f"  {'month':<9}{'scope':<24}{'to date':>12}{'p10':>12}{'p50':>12}{'p90':>12}  budget"
    )
    for row in months:
        month = (
            row["month"]
            if isinstance(row["month"], dt.date)
            else dt.date.fromisoformat(str(row["month"]))
        )
        scope = "total" if row["level"] == "total" else f"team {row['name']}"
        budget = ""
        if row["budget"] is not None:
            budget = f"  {row['budget']:,.0f} (P(over) {row['prob_over_budget']:.0%})"
        lines.append(
            f"  {month:%Y-%m}  {scope:<24}{_money(row['actual_cost_to_date']):>12}"
            f"{_money(row['estimate_p10']):>12}{_money(row['estimate_p50']):>12}"
            f"{_money(row['estimate_p90']):>12}{budget}"
        )
        if row["unpriced_models"]:
            lines.append(f"  {'':<9}not included, unpriced: {row['unpriced_models']}")
    return "\n".join(lines)
