#!/usr/bin/env python3
"""Bring up the kappa architecture on its compose stack, set it up and start its jobs (see docs/compose.md).

./kappa/start_kappa.py                 writes .env, docker compose up -d, waits for health, sets up, starts the jobs
./kappa/start_kappa.py --dry-run       every command of a start, in order, with memory; runs none
./kappa/start_kappa.py --status | --stop | --down
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The project's venv (made by `make demo` / `make test`) when there is one: --local needs its Kafka and
# Cassandra clients, and the `vendlab` commands this script names live there.
VENV = ROOT / ".venv"
if (VENV / "bin" / "python").exists() and Path(sys.prefix).resolve() != VENV.resolve():
    os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])
sys.path.insert(0, str(ROOT))  # the repository, for vendlab

from vendlab.orchestrate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("kappa", directory=Path(__file__).resolve().parent))
