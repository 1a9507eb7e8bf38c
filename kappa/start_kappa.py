#!/usr/bin/env python3
"""Set up and start the kappa architecture on its compose stack (see docs/compose.md).

    cd kappa && docker compose up -d && python start_kappa.py
    python start_kappa.py --status | --stop
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for vendlab

from vendlab.orchestrate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("kappa", directory=Path(__file__).resolve().parent))
