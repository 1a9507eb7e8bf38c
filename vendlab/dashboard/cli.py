"""``vendlab dashboard``: serve the live dashboard of a data dir (read-only).

Exit codes: 0 stopped with Ctrl-C, 2 a wrong port or host, a data dir that is a file, or a
``views.sqlite`` that is not a view store (the message says what is wrong and what is allowed). A
data dir or store that does not exist yet is not an error: the page waits for the run to make it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMANDS = ("dashboard",)
DEFAULT_PORT = 8050


def port_type(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: allowed are whole numbers 1..65535") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port: allowed are whole numbers 1..65535")
    return port


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="serve the live dashboard of a data dir (read-only; http://127.0.0.1:8050)",
        description="Serve the dashboard of a data dir written by `vendlab run` or `vendlab demo`. It reads "
        "DIR/views.sqlite read-only and refreshes itself every second, so it can watch a run "
        'in progress, and may start before the run (the page says "waiting for views" until the store '
        "appears). Everything it needs is served locally (works offline).",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="folder of a run (holds views.sqlite); it may not exist yet: the page waits for the run",
    )
    p.add_argument("--port", type=port_type, default=DEFAULT_PORT, help=f"TCP port 1..65535 (default {DEFAULT_PORT})")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)",
    )


def run(args) -> int:
    from vendlab.dashboard.server import DashboardError, DashboardServer, check_data_dir

    try:
        store_path = check_data_dir(args.data_dir)
        server = DashboardServer(args.data_dir, args.host, args.port)
    except DashboardError as e:
        print(f"vendlab dashboard: {e}", file=sys.stderr)
        return 2
    print(f"vendlab dashboard: {server.url}", flush=True)
    if store_path is None:
        print(
            f"vendlab dashboard: waiting for views: {args.data_dir / 'views.sqlite'} does not exist yet (start "
            f"`vendlab run` or `vendlab demo` with --data-dir {args.data_dir}); the page fills in when it "
            f"appears. Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"vendlab dashboard: reading {store_path} read-only; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after a clean shutdown
        pass
    print("vendlab dashboard: stopped", file=sys.stderr)
    return 0
