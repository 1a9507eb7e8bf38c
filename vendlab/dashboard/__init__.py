"""The embedded dashboard: the Grafana panels of the compose stacks, without Docker.

``vendlab dashboard --data-dir DIR`` serves it (see vendlab/dashboard/cli.py and docs/dashboard.md);
``vendlab demo`` starts it in a thread with ``start_dashboard_in_thread``. This module stays light
(the command line imports it for every command): the web stack is imported only when serving.
"""

from __future__ import annotations

from pathlib import Path


def start_dashboard_in_thread(data_dir: Path | str, host: str = "127.0.0.1", port: int = 8050):
    """Serve the dashboard of ``data_dir`` from a daemon thread; returns ``(url, stop)``.

    The data dir and its ``views.sqlite`` need not exist yet: the page waits for them. Raises
    ``vendlab.dashboard.server.DashboardError`` (message ready to print) if the port is not
    0..65535 or is in use, or the host is not an address of this machine.
    """
    from vendlab.dashboard.server import start_dashboard_in_thread as start

    return start(data_dir, host, port)
