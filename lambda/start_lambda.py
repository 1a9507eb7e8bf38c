#!/usr/bin/env python3
"""Set up and start the lambda architecture on its compose stack (see docs/compose.md).

    cd lambda && docker compose up -d && python start_lambda.py
    python start_lambda.py --status | --stop
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for vendlab

from vendlab.orchestrate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("lambda", directory=Path(__file__).resolve().parent))
