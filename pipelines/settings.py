"""One settings object for every step, read from ``USAGECAST_*`` variables and CLI flags.

The embedded default keeps everything under one data folder (``./var`` unless
``USAGECAST_DATA_DIR`` says otherwise): the Parquet lake, the Great Expectations
project, the MLflow SQLite store with its artifacts, and the reporting database.
A wrong value fails at start with a message that names the variable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent

GRAIN_COLUMNS = ("provider", "model", "team")
"""Columns a series may be keyed by; the configured grain is a non-empty subset."""

ENV_PREFIX = "USAGECAST_"


class SettingsError(ValueError):
    """A setting has a value usagecast cannot use; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    """Where data lives and how the pipeline behaves; immutable once built."""

    data_dir: Path = Path("var")
    grain: tuple[str, ...] = GRAIN_COLUMNS
    business_tz: str = "UTC"
    holiday_countries: tuple[str, ...] = ("US",)
    report_db_url: str | None = None
    mlflow_tracking_uri: str | None = None
    registered_model: str = "usagecast-forecaster"
    experiment: str = "usagecast"
    cv_folds: int = 3
    promotion_margin: float = 0.02
    prices_file: Path = REPO_ROOT / "config" / "prices.csv"
    budgets_file: Path | None = None
    whatif_models: tuple[str, ...] = ()
    month_error_correlation: float = 0.75
    landing_dir: Path | None = None
    progress: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def gx_dir(self) -> Path:
        return self.data_dir / "gx"

    @property
    def mlflow_dir(self) -> Path:
        return self.data_dir / "mlflow"

    @property
    def resolved_landing_dir(self) -> Path:
        return self.landing_dir or self.data_dir / "landing"

    @property
    def resolved_report_db_url(self) -> str:
        """The reporting database: an embedded SQLite file in the data folder unless set."""
        if self.report_db_url:
            return self.report_db_url
        return f"sqlite:///{(self.data_dir / 'reports.sqlite').resolve()}"

    @property
    def resolved_tracking_uri(self) -> str:
        """MLflow's own variable wins, then ours, then a SQLite file in the data folder."""
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return (self.mlflow_dir / "artifacts").resolve()

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _parse_int(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a whole number") from None
    if number < minimum:
        raise SettingsError(f"{name}={value!r} must be at least {minimum}")
    return number


def _parse_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a number") from None
    if not 0.0 <= number < 1.0:
        raise SettingsError(f"{name}={value!r} must be a fraction in [0, 1), e.g. 0.02")
    return number


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}={value!r} is not a boolean (use true or false)")


def _check(settings: Settings) -> Settings:
    """Fail early, naming the setting, rather than deep inside a step."""
    unknown = [column for column in settings.grain if column not in GRAIN_COLUMNS]
    if not settings.grain or unknown:
        raise SettingsError(
            f"{ENV_PREFIX}GRAIN={','.join(settings.grain)!r}: choose a non-empty subset of "
            f"{','.join(GRAIN_COLUMNS)}"
        )
    try:
        ZoneInfo(settings.business_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"{ENV_PREFIX}BUSINESS_TZ={settings.business_tz!r} is not an IANA time zone "
            "(e.g. UTC, America/Los_Angeles)"
        ) from None
    if not settings.prices_file.is_file():
        raise SettingsError(f"{ENV_PREFIX}PRICES_FILE={str(settings.prices_file)!r} does not exist")
    if settings.budgets_file is not None and not settings.budgets_file.is_file():
        raise SettingsError(
            f"{ENV_PREFIX}BUDGETS_FILE={str(settings.budgets_file)!r} does not exist"
        )
    if settings.report_db_url is not None and "://" not in settings.report_db_url:
        raise SettingsError(
            f"{ENV_PREFIX}REPORT_DB_URL={settings.report_db_url!r} is not a SQLAlchemy URL "
            "(e.g. postgresql+psycopg2://user@host/db)"
        )
    return settings


def load_settings(
    env: Mapping[str, str] | None = None, **overrides: object
) -> Settings:
    """Build settings from the environment, then apply explicit overrides (CLI flags).

    Overrides whose value is ``None`` are ignored, so CLI flags left unset fall
    through to the environment and then to the embedded default.
    """
    env = os.environ if env is None else env
    values: dict[str, object] = {}

    def get(key: str) -> str | None:
        return env.get(ENV_PREFIX + key)

    if (raw := get("DATA_DIR")) is not None:
        values["data_dir"] = Path(raw)
    if (raw := get("GRAIN")) is not None:
        values["grain"] = _split(raw)
    if (raw := get("BUSINESS_TZ")) is not None:
        values["business_tz"] = raw.strip()
    if (raw := get("HOLIDAY_COUNTRIES")) is not None:
        values["holiday_countries"] = tuple(code.upper() for code in _split(raw))
    if (raw := get("REPORT_DB_URL")) is not None:
        values["report_db_url"] = raw.strip() or None
    if (raw := get("MLFLOW_TRACKING_URI")) is not None:
        values["mlflow_tracking_uri"] = raw.strip() or None
    if (raw := get("REGISTERED_MODEL")) is not None:
        values["registered_model"] = raw.strip()
    if (raw := get("CV_FOLDS")) is not None:
        values["cv_folds"] = _parse_int(ENV_PREFIX + "CV_FOLDS", raw, minimum=1)
    if (raw := get("PROMOTION_MARGIN")) is not None:
        values["promotion_margin"] = _parse_float(ENV_PREFIX + "PROMOTION_MARGIN", raw)
    if (raw := get("PRICES_FILE")) is not None:
        values["prices_file"] = Path(raw)
    if (raw := get("BUDGETS_FILE")) is not None:
        values["budgets_file"] = Path(raw) if raw.strip() else None
    if (raw := get("WHATIF_MODELS")) is not None:
        values["whatif_models"] = _split(raw)
    if (raw := get("MONTH_ERROR_CORRELATION")) is not None:
        values["month_error_correlation"] = _parse_float(
            ENV_PREFIX + "MONTH_ERROR_CORRELATION", raw
        )
    if (raw := get("LANDING_DIR")) is not None:
        values["landing_dir"] = Path(raw) if raw.strip() else None
    if (raw := get("PROGRESS")) is not None:
        values["progress"] = _parse_bool(ENV_PREFIX + "PROGRESS", raw)

    values.update({key: value for key, value in overrides.items() if value is not None})
    return _check(Settings(**values))
