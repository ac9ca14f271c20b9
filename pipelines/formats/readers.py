"""Streaming readers: CSV, JSONL, JSON usage-report pages and Parquet, optionally gzipped.

A reader yields Arrow record batches of bounded size, so memory stays flat however
large a file is. CSV is read with ``pyarrow.csv.open_csv`` with every needed
column as text (the parsers in ``parse`` type them row by row); rows with the
wrong number of fields are kept aside with their text and line number.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from pipelines.errors import InputError

logger = logging.getLogger(__name__)

CSV_BLOCK_BYTES = 8 << 20
PARQUET_BATCH_ROWS = 256_000
JSON_BATCH_ROWS = 100_000
SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")


@dataclass
class BadRow:
    """A row that could not even be split into fields (e.g. a truncated last line)."""

    line: int | None
    text: str
    reason: str


@dataclass
class SourceFile:
    """One input file: its kind (by name), its header, and rows the reader refused."""

    path: Path
    kind: str
    gzipped: bool
    header: list[str] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    line_map: np.ndarray | None = None
    """Physical line of each parsed data row, set only when bad rows shifted the count."""
    first_line: int = 2


def list_sources(sources: list[Path]) -> list[Path]:
    """Files named, plus the readable files inside folders named (recursively, sorted)."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(
                sorted(
                    path
                    for path in source.rglob("*")
                    if path.is_file() and not path.name.startswith(".") and _kind_of(path)
                )
            )
        elif source.is_file():
            files.append(source)
        else:
            raise InputError(f"{source}: no such file or folder")
    return files


def _kind_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return {"ndjson": "jsonl", "tsv": "csv"}.get(suffix[1:], suffix[1:])
    return None


def _is_gzipped(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def open_source(path: Path) -> SourceFile:
    kind = _kind_of(path)
    if kind is None:
        raise InputError(
            f"{path}: unknown file type (use .csv, .jsonl, .json or .parquet, optionally .gz)"
        )
    source = SourceFile(path=path, kind=kind, gzipped=_is_gzipped(path))
    source.header = _read_header(source)
    source.first_line = {"csv": 2, "jsonl": 1, "json": 1, "parquet": 1}[kind]
    return source


def _text_stream(source: SourceFile) -> io.TextIOBase:
    """A text view of the file (gunzipped, BOM dropped); the caller closes it."""
    raw = gzip.open(source.path, "rb") if source.gzipped else open(source.path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _arrow_stream(source: SourceFile) -> pa.NativeFile:
    return pa.input_stream(str(source.path), compression="gzip" if source.gzipped else None)


def _delimiter(source: SourceFile) -> str:
    name = source.path.name.lower()
    return "\t" if name.endswith(".tsv") or name.endswith(".tsv.gz") else ","


def _read_header(source: SourceFile) -> list[str]:
    """Column names, without reading the body; an empty file has none."""
    try:
        if source.kind == "csv":
            with _text_stream(source) as stream:
                first = next(csv.reader(stream, delimiter=_delimiter(source)), [])
            return [name.strip() for name in first]
        if source.kind == "parquet":
            return list(pq.ParquetFile(source.path).schema_arrow.names)
        if source.kind == "jsonl":
            with _text_stream(source) as stream:
                for line in stream:
                    if line.strip():
                        return list(_flatten(json.loads(line)).keys())
            return []
        return list(next(iter(_json_document_rows(source)), {}).keys())
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, pa.ArrowInvalid) as error:
        raise InputError(f"{source.path}: cannot read the header: {error}") from None


def read_batches(source: SourceFile, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Batches with ``columns`` (header names) only; a missing column is simply absent."""
    if source.kind == "csv":
        yield from _read_csv(source, columns)
    elif source.kind == "parquet":
        parquet = pq.ParquetFile(source.path)
        yield from parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns)
    elif source.kind == "jsonl":
        yield from _read_jsonl(source, columns)
    else:
        yield from _rows_to_batches(_json_document_rows(source), columns)


def _read_csv(source: SourceFile, columns: list[str]) -> Iterator[pa.RecordBatch]:
    def refuse(row: pacsv.InvalidRow) -> str:
        source.bad_rows.append(
            BadRow(
                line=row.number,
                text=row.text,
                reason=f"expected {row.expected_columns} fields, found {row.actual_columns}",
            )
        )
        return "skip"

    if not source.header:
        return
    wanted = [name for name in source.header if name.strip() in columns]
    try:
        reader = pacsv.open_csv(
            _arrow_stream(source),
            read_options=pacsv.ReadOptions(
                block_size=CSV_BLOCK_BYTES,
                column_names=source.header,
                skip_rows=1,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=_delimiter(source), invalid_row_handler=refuse
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted,
                column_types={name: pa.string() for name in wanted},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        if "Empty CSV file" in str(error):
            return
        raise InputError(f"{source.path}: cannot read as CSV: {error}") from None
    try:
        for batch in reader:
            yield batch.rename_columns([name.strip() for name in batch.schema.names])
    except pa.ArrowInvalid as error:
        raise InputError(f"{source.path}: cannot read as CSV: {error}") from None
    if source.bad_rows:
        _locate_bad_rows(source)


def _locate_bad_rows(source: SourceFile) -> None:
    """Find the physical lines of refused rows, and of the good rows after them.

    Arrow's streaming reader does not report line numbers, so when a file had bad
    rows it is read once more with Python's csv module, which is slow but exact.
    """
    expected = len(source.header)
    good_lines: list[int] = []
    bad: list[BadRow] = []
    with _text_stream(source) as stream:
        reader = csv.reader(stream, delimiter=_delimiter(source))
        next(reader, None)
        start = reader.line_num + 1
        for record in reader:
            if record and len(record) == expected:
                good_lines.append(start)
            elif record:
                bad.append(
                    BadRow(start, ",".join(record),
                           f"expected {expected} fields, found {len(record)}")
                )
            start = reader.line_num + 1
    if len(bad) != len(source.bad_rows):
        logger.warning(
            "%s: could not place %d refused rows on their lines; stored without line numbers",
            source.path,
            len(source.bad_rows),
        )
        return
    source.bad_rows = bad
    source.line_map = np.asarray(good_lines, dtype=np.int64)


def _flatten(record: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _scalar_text(value: object) -> object:
    if value is None or isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value
    return json.dumps(value)


def _rows_to_batches(rows: Iterator[dict], columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Rows of JSON values, as text columns (numbers are kept as their JSON text)."""
    buffer: list[dict] = []

    def flush() -> pa.RecordBatch:
        arrays = [
            pa.array(
                [None if (v := row.get(name)) is None else str(_scalar_text(v))
                 for row in buffer],
                type=pa.string(),
            )
            for name in columns
        ]
        return pa.RecordBatch.from_arrays(arrays, names=columns)

    for row in rows:
        buffer.append(row)
        if len(buffer) >= JSON_BATCH_ROWS:
            yield flush()
            buffer = []
    if buffer:
        yield flush()


def _read_jsonl(source: SourceFile, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """JSON lines through Arrow's streaming reader; mixed-type files through Python."""
    try:
        reader = pajson.open_json(
            _arrow_stream(source), read_options=pajson.ReadOptions(block_size=CSV_BLOCK_BYTES)
        )
        batches = []
        for batch in reader:
            table = pa.Table.from_batches([batch]).flatten()
            present = [name for name in columns if name in table.column_names]
            batches.append(table.select(present))
            if sum(item.num_rows for item in batches) >= JSON_BATCH_ROWS:
                yield from (b for t in batches for b in t.to_batches())
                batches = []
        yield from (b for t in batches for b in t.to_batches())
        return
    except pa.ArrowInvalid as error:
        logger.info("%s: reading line by line (%s)", source.path, error)
    yield from _rows_to_batches(_jsonl_rows(source), columns)


def _jsonl_rows(source: SourceFile) -> Iterator[dict]:
    with _text_stream(source) as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                source.bad_rows.append(BadRow(number, line.rstrip("\n"), f"invalid JSON: {error}"))
                continue
            yield _flatten(record) if isinstance(record, dict) else {}


def _json_document_rows(source: SourceFile) -> Iterator[dict]:
    """A usage API response (pages of buckets with ``results``), or a list of rows.

    Each result row gets its bucket's start and end, so a bucket is one row per
    model/project group, as the provider reported it.
    """
    with _text_stream(source) as stream:
        document = json.load(stream)
    pages = document if isinstance(document, list) else [document]
    for page in pages:
        if isinstance(page, dict) and isinstance(page.get("data"), list):
            for bucket in page["data"]:
                bounds = {k: v for k, v in bucket.items() if k not in ("results", "result")}
                results = bucket.get("results", bucket.get("result")) or []
                for result in results:
                    yield {**_flatten(bounds), **_flatten(result)}
        elif isinstance(page, dict):
            yield _flatten(page)
