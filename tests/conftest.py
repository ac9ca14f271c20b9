"""Fixtures shared by every test: an isolated data folder, the real data, and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.settings import REPO_ROOT, Settings, load_settings

REAL_DATA_DIR = Path(
    os.environ.get("USAGECAST_REAL_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "real")
)
REPLAY_TOOL = REAL_DATA_DIR.parent.parent / "tools" / "replay_calls.py"
POSTGRES_ADMIN_URL = os.environ.get(
    "USAGECAST_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow exports the tracking URI it was last given; no test may inherit another's store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on an empty data folder of the test's own; nothing leaks between tests."""
    return load_settings(env={}, data_dir=tmp_path / "var", progress=False)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared real data, read in place; missing data is a failure in CI, a skip elsewhere."""
    if not (REAL_DATA_DIR / "README.md").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"real data not found at {REAL_DATA_DIR}")
        pytest.skip(f"real data not found at {REAL_DATA_DIR} (set USAGECAST_REAL_DATA_DIR)")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def replay_cvs_dir(tmp_path_factory: pytest.TempPathFactory, real_data_dir: Path) -> Path:
    """The replay log of the CVS series (5,701 real-count calls), written once per session."""
    import subprocess
    import sys

    out_dir = tmp_path_factory.mktemp("replay_cvs")
    subprocess.run(
        [sys.executable, str(REPLAY_TOOL), str(out_dir), "--series", "CVS"],
        check=True,
        capture_output=True,
    )
    return out_dir


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the real server for this test session, dropped at the end."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"usagecast_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable: {error}")
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
            ),
            {"name": name},
        )
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()
