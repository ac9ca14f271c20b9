"""The input formats usagecast reads, as declarative column mappings.

A format says which source column feeds each canonical field of the lake (see
``pipelines.schema``) and what kind of rows it holds: ``calls`` (one row per API
call) or ``buckets`` (provider usage reports, stored as the buckets they came in).
Formats are detected from a file's header unless named; anything else is read
through a mapping file in ``config/mappings/`` (the format is documented there).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import InputError
from pipelines.settings import REPO_ROOT

logger = logging.getLogger(__name__)

MAPPINGS_DIR = REPO_ROOT / "config" / "mappings"

CALL_FIELDS = (
    "request_id",
    "timestamp",
    "provider",
    "model",
    "team",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "status_code",
    "latency_ms",
)
BUCKET_FIELDS = (
    "bucket_start",
    "bucket_end",
    "provider",
    "model",
    "team",
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
)
SUMMED_FIELDS = frozenset(
    {"requests", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens"}
)
"""Count fields may name several source columns; the ones present are added up."""

OPTION_FIELDS = ("provider", "model", "team")
"""Options that fill a grain field when its column is absent or a value is empty."""


@dataclass(frozen=True)
class FormatSpec:
    """How one input format maps onto the lake.

    ``fields`` maps a canonical field to its source column names (lower case);
    ``defaults`` gives a grain value used where the source has none;
    ``status_text`` maps textual statuses onto HTTP-like codes (errors are >= 400);
    ``relative_seconds`` marks a timestamp given in seconds from a ``start`` option.
    """

    name: str
    kind: str
    fields: Mapping[str, tuple[str, ...]]
    required: tuple[str, ...]
    defaults: Mapping[str, str] = field(default_factory=dict)
    status_text: Mapping[str, int] = field(default_factory=dict)
    relative_seconds: bool = False

    def source_columns(self, header: list[str]) -> dict[str, list[str]]:
        """Canonical field -> the header's own column names that feed it (case kept)."""
        by_lower = {name.strip().lower(): name for name in header}
        found: dict[str, list[str]] = {}
        for canonical, candidates in self.fields.items():
            present = [by_lower[name] for name in candidates if name in by_lower]
            if present:
                found[canonical] = present if canonical in SUMMED_FIELDS else present[:1]
        return found

    def matches(self, header: list[str]) -> bool:
        found = self.source_columns(header)
        return all(name in found for name in self.required)

    def check_header(self, header: list[str], options: Mapping[str, object], path: Path) -> None:
        """Refuse a file whose header lacks a needed column, naming the column and the file."""
        found = self.source_columns(header)
        for name in self.required:
            if name not in found:
                wanted = " or ".join(self.fields[name])
                raise InputError(
                    f"{path}: format {self.name} needs a column {wanted} (header has "
                    f"{', '.join(header)})"
                )
        grain_or_time = OPTION_FIELDS + (("timestamp",) if self.kind == "calls" else ())
        for name in grain_or_time:
            if name not in found and name not in self.defaults and not options.get(name):
                if name == "timestamp":
                    raise InputError(f"{path}: format {self.name} has no timestamp column")
                raise InputError(
                    f"{path}: format {self.name} carries no {name}: pass --{name}"
                )
        if self.relative_seconds and not options.get("start"):
            raise InputError(
                f"{path}: format {self.name} gives timestamps as seconds from a start time: "
                "pass --start (e.g. 2023-05-01T00:00:00)"
            )


BUILTIN_FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            name="anthropic-usage",
            kind="buckets",
            fields={
                "bucket_start": ("starting_at",),
                "bucket_end": ("ending_at",),
                "model": ("model",),
                "team": ("workspace_id",),
                "input_tokens": (
                    "uncached_input_tokens",
                    "cache_creation.ephemeral_5m_input_tokens",
                    "cache_creation.ephemeral_1h_input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ),
                "output_tokens": ("output_tokens",),
                "cached_input_tokens": ("cache_read_input_tokens",),
                "cache_write_tokens": (
                    "cache_creation.ephemeral_5m_input_tokens",
                    "cache_creation.ephemeral_1h_input_tokens",
                    "cache_creation_input_tokens",
                ),
            },
            required=("bucket_start", "bucket_end", "input_tokens", "output_tokens"),
            defaults={"provider": "anthropic", "model": "all-models", "team": "default"},
        ),
        FormatSpec(
            name="openai-usage",
            kind="buckets",
            fields={
                "bucket_start": ("start_time_iso", "start_time"),
                "bucket_end": ("end_time_iso", "end_time"),
                "model": ("model",),
                "team": ("project_id",),
                "requests": ("num_model_requests",),
                "input_tokens": ("input_tokens",),
                "output_tokens": ("output_tokens",),
                "cached_input_tokens": ("input_cached_tokens",),
            },
            required=("bucket_start", "bucket_end", "requests", "input_tokens"),
            defaults={"provider": "openai", "model": "all-models", "team": "default"},
        ),
        FormatSpec(
            name="litellm",
            kind="calls",
            fields={
                "request_id": ("request_id",),
                "timestamp": ("starttime",),
                "provider": ("custom_llm_provider",),
                "model": ("model",),
                "team": ("team_id",),
                "input_tokens": ("prompt_tokens",),
                "output_tokens": ("completion_tokens",),
                "status_code": ("status",),
                "latency_ms": ("request_duration_ms",),
            },
            required=("timestamp", "model", "input_tokens", "output_tokens"),
            defaults={"provider": "litellm", "team": "no-team"},
            status_text={"success": 200, "failure": 500},
        ),
        FormatSpec(
            name="burstgpt",
            kind="calls",
            fields={
                "timestamp": ("timestamp",),
                "model": ("model",),
                "team": ("log type",),
                "input_tokens": ("request tokens",),
                "output_tokens": ("response tokens",),
            },
            required=("timestamp", "model", "input_tokens", "output_tokens"),
            relative_seconds=True,
        ),
        FormatSpec(
            name="azure-trace",
            kind="calls",
            fields={
                "timestamp": ("timestamp",),
                "input_tokens": ("contexttokens",),
                "output_tokens": ("generatedtokens",),
            },
            required=("timestamp", "input_tokens", "output_tokens"),
        ),
        FormatSpec(
            name="gateway",
            kind="calls",
            fields={name: (name,) for name in CALL_FIELDS},
            required=("timestamp", "input_tokens", "output_tokens"),
        ),
    )
}
"""Built-in formats, most specific first: detection takes the first whose header fits."""


def _as_tuple(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value.strip().lower(),)
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(item.strip().lower() for item in value)
    raise InputError(f"{where}: expected a column name or a list of column names")


def load_mapping(path: Path) -> FormatSpec:
    """Read a column-mapping file (YAML) into a format; errors name the file and the key."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"{path}: cannot read mapping file: {error}") from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: a mapping file is a YAML mapping with name, kind and fields")
    kind = document.get("kind", "calls")
    if kind not in ("calls", "buckets"):
        raise InputError(f"{path}: kind must be calls or buckets, not {kind!r}")
    allowed = CALL_FIELDS if kind == "calls" else BUCKET_FIELDS
    raw_fields = document.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise InputError(f"{path}: fields must map canonical fields to source columns")
    fields: dict[str, tuple[str, ...]] = {}
    for canonical, source in raw_fields.items():
        if canonical not in allowed:
            raise InputError(
                f"{path}: fields.{canonical} is not a {kind} field (use {', '.join(allowed)})"
            )
        fields[canonical] = _as_tuple(source, f"{path}: fields.{canonical}")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict) or any(key not in OPTION_FIELDS for key in defaults):
        raise InputError(f"{path}: defaults may only set {', '.join(OPTION_FIELDS)}")
    time_fields = ("timestamp",) if kind == "calls" else ("bucket_start", "bucket_end")
    required = tuple(name for name in time_fields + ("input_tokens", "output_tokens")
                     if name in fields)
    for name in time_fields:
        if name not in fields:
            raise InputError(f"{path}: fields.{name} is required for kind {kind}")
    status_text = {str(key).lower(): int(value)
                   for key, value in (document.get("status_text") or {}).items()}
    return FormatSpec(
        name=str(document.get("name") or path.stem),
        kind=kind,
        fields=fields,
        required=required,
        defaults={key: str(value) for key, value in defaults.items()},
        status_text=status_text,
        relative_seconds=bool(document.get("relative_seconds", False)),
    )


def mapping_formats(mappings_dir: Path = MAPPINGS_DIR) -> list[FormatSpec]:
    if not mappings_dir.is_dir():
        return []
    return [load_mapping(path) for path in sorted(mappings_dir.glob("*.yaml"))]


def resolve_format(fmt: str) -> FormatSpec:
    """A format named on the command line: built-in, a mapping file's name, or its path."""
    if fmt in BUILTIN_FORMATS:
        return BUILTIN_FORMATS[fmt]
    path = Path(fmt)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_mapping(path)
    for spec in mapping_formats():
        if spec.name == fmt:
            return spec
    known = sorted(BUILTIN_FORMATS) + [spec.name for spec in mapping_formats()]
    raise InputError(f"--format {fmt!r} is unknown: use one of {', '.join(known)} "
                     "or the path of a mapping file")


def detect_format(header: list[str], path: Path) -> FormatSpec:
    """The first built-in format, then mapping file, whose needed columns are all present."""
    for spec in list(BUILTIN_FORMATS.values()) + mapping_formats():
        if spec.matches(header):
            logger.debug("%s: detected format %s", path, spec.name)
            return spec
    raise InputError(
        f"{path}: cannot tell the format from the header ({', '.join(header) or 'empty'}); "
        "pass --format or add a mapping file under config/mappings/"
    )
