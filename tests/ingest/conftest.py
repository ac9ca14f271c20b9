"""Small hand-written input files for ingest tests (synthetic, labelled as such)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write(tmp_path: Path):
    """Write a synthetic input file under the test's folder and return its path."""

    def _write(name: str, text: str | bytes) -> Path:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture(autouse=True, params=["in-memory", "on-disk"])
def merge_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every ingest test on both ways a day of calls is merged.

    Small days are merged in Arrow and large ones by DuckDB on disk
    (``pipelines.daymerge.IN_MEMORY_ROWS``); with the threshold at zero every day takes
    the on-disk path, so each behaviour is checked on both.
    """
    if request.param == "on-disk":
        monkeypatch.setattr("pipelines.daymerge.IN_MEMORY_ROWS", 0)
    return request.param
