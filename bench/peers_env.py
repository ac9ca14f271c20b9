"""The peers' virtualenv, ``bench/.venv-peers``: statsforecast and mlforecast pull pandas 2.

Shared by bench/accuracy and bench/cost, which hand the peers their input and read
their forecasts back as Parquet files; usagecast's own venv never imports them.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)

BENCH = Path(__file__).resolve().parent
PEERS_VENV = BENCH / ".venv-peers"
PEERS_REQUIREMENTS = BENCH / "accuracy" / "peers_requirements.txt"


def peers_python() -> Path:
    """The peers' interpreter, creating the venv from the pinned requirements on first use."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        logger.warning("creating %s from %s (a few minutes, once)", PEERS_VENV,
                       PEERS_REQUIREMENTS.name)
        subprocess.run(["python3.11", "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                        str(PEERS_REQUIREMENTS)], check=True)
    (PEERS_VENV / ".gitignore").write_text("*\n")
    return python
