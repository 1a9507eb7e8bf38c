#!/usr/bin/env python3
"""Bring up the lambda architecture on its compose stack, set it up and start its jobs (see docs/compose.md).

./lambda/start_lambda.py                 writes .env, docker compose up -d, waits for health, sets up, starts the jobs
./lambda/start_lambda.py --dry-run       every command of a start, in order, with memory; runs none
./lambda/start_lambda.py --status | --stop | --down
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for vendlab

from vendlab.project_venv import use_project_venv  # noqa: E402  (standard library only)

use_project_venv(__file__)  # the project's venv when there is one (--local needs its clients)

from vendlab.orchestrate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("lambda", directory=Path(__file__).resolve().parent))
