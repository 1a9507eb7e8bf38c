"""The project's virtual environment (``.venv`` at the repository's root, made by `make demo` /
`make test`): the one place that knows where it is. Standard library only, so that a script run
with the system's python3 can import this module before anything else."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parents[1] / ".venv"


def use_project_venv(script: str) -> None:
    """Run ``script`` again with the venv's python when there is a venv and this is not it (a start
    script's shebang finds the system's python3, which lacks the Kafka and Cassandra clients --local needs)."""
    python = VENV / "bin" / "python"
    if python.exists() and Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(python), [str(python), script, *sys.argv[1:]])


def vendlab_command() -> str:
    """How to type `vendlab` here: `vendlab` when it is on PATH (venv activated, or installed), else the
    venv's (``.venv/bin/vendlab``)."""
    if shutil.which("vendlab"):
        return "vendlab"
    venv = VENV / "bin" / "vendlab"
    if not venv.exists():
        return "vendlab"
    try:
        return str(venv.relative_to(Path.cwd()))
    except ValueError:
        return str(venv)
