"""The dashboard's web server: a Starlette app served by uvicorn, reading the view store read-only.

Routes:
    /                     the page (static/index.html)
    /static/...           its script and style, and plotly.min.js from the plotly Python package
    /api/views            items per product in every view and the exactness check (data.views_payload)
    /api/metrics          latency, throughput, dead letters, lambda batch runs (data.metrics_payload)
    /api/panels           the owner's-question panels (panels.panels_payload)

The store is opened lazily and reopened when ``views.sqlite`` is replaced, so the server may start
before a run creates its store (``vendlab demo``) and keeps working across runs in the same dir.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")
STORE_FILE = "views.sqlite"
READ_TIMEOUT_S = 5.0


class DashboardError(Exception):
    """A problem the user can fix (port, host, data dir); the message says what is allowed."""


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the plotly Python package (no CDN, works offline)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise DashboardError("the plotly Python package is not installed: pip install -r requirements.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise DashboardError(f"{path} is missing: reinstall plotly (pip install -r requirements.txt)")
    return path


def check_data_dir(data_dir: Path) -> Path | None:
    """The store file of a data dir, or None while the run has not made it yet (the dir may not exist
    yet either: the page waits for it); DashboardError saying what is wrong for a path that can never
    hold views (a file) or a ``views.sqlite`` that is not a vendlab view store."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DashboardError(
            f"data dir {data_dir} is not a folder: give --data-dir a folder written by "
            f"`vendlab run` or `vendlab demo` (or one they will write)"
        )
    path = data_dir / STORE_FILE
    if not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=READ_TIMEOUT_S)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "applied" not in tables:
                raise sqlite3.DatabaseError(f"it has tables ({', '.join(sorted(tables)[:5])}) but not vendlab's")
        finally:
            con.close()
    except sqlite3.Error as e:
        raise DashboardError(
            f"{path} is not a vendlab view store ({e}): give --data-dir a folder written by "
            f"`vendlab run` or `vendlab demo`"
        ) from e
    return path


class StoreReader:
    """The data dir's view store, opened read-only on first use and reopened if the file is replaced.

    Used from the server's event-loop thread only (the reads are short), so one connection serves all.
    """

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / STORE_FILE
        self._store = None
        self._ino: int | None = None

    def get(self):
        from vendlab.store.sqlite import SqliteStore

        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            self.close()
            return None
        if self._store is None or ino != self._ino:
            self.close()
            self._store = SqliteStore(self.path, readonly=True, timeout_s=READ_TIMEOUT_S)
            self._ino = ino
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self._store, self._ino = None, None


def create_app(data_dir: Path | str):
    """The Starlette app of one data dir."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from vendlab.config import embedded
    from vendlab.dashboard import data, panels

    data_dir = Path(data_dir)
    reader = StoreReader(data_dir)
    plotly_js = plotly_js_path()
    bucket_ms = embedded(data_dir).bucket_ms
    no_cache = {"Cache-Control": "no-store"}

    def answer(build):
        """JSON of build(store, manifest); 503 with the reason while there is no readable store."""
        head = {"data_dir": str(data_dir.resolve()), "store_path": str(reader.path)}
        store = reader.get()
        if store is None:
            return JSONResponse(
                head | {"store": "waiting", "error": f"no {STORE_FILE} in {data_dir} yet"},
                status_code=503,
                headers=no_cache,
            )
        try:
            body = build(store, data.read_manifest(data_dir))
        except sqlite3.Error as e:  # e.g. the file exists but its tables are not made yet
            reader.close()
            return JSONResponse(
                head | {"store": "error", "error": f"{type(e).__name__}: {e}"}, status_code=503, headers=no_cache
            )
        if isinstance(body, list):
            body = {"panels": body}
        return JSONResponse(head | {"store": "ok"} | body, headers=no_cache)

    async def api_views(request):
        return answer(data.views_payload)

    async def api_metrics(request):
        return answer(lambda store, manifest: data.metrics_payload(store, manifest, bucket_ms))

    async def api_panels(request):
        return answer(panels.panels_payload)

    async def index(request):
        return FileResponse(STATIC_DIR / "index.html", headers=no_cache)

    async def plotly(request):
        return FileResponse(plotly_js, media_type="text/javascript")

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/views", api_views),
            Route("/api/metrics", api_metrics),
            Route("/api/panels", api_panels),
            Route("/static/plotly.min.js", plotly),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    app.state.reader = reader
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); DashboardError saying what is wrong and what is allowed.

    Port 0 takes any free port (for tests and embedding; the command line asks for 1..65535).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise DashboardError(f"port {port!r} is not a TCP port: allowed are whole numbers 1..65535")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
            0
        ]
    except (socket.gaierror, UnicodeError) as e:
        raise DashboardError(
            f"host {host!r} is not an address of this machine ({e}): use 127.0.0.1 "
            f"(default, this machine only) or 0.0.0.0 (every interface)"
        ) from e
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does; a live listener still wins
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise DashboardError(
                f"port {port} on {host} is already in use (another dashboard or program?): "
                f"choose a free --port in 1..65535, e.g. --port {port + 1 if port < 65535 else 8050}"
            ) from e
        if e.errno == errno.EACCES:
            raise DashboardError(f"port {port} on {host} needs privileges: choose --port in 1024..65535") from e
        if e.errno == errno.EADDRNOTAVAIL:
            raise DashboardError(
                f"host {host!r} is not an address of this machine: use 127.0.0.1 (default, "
                f"this machine only) or 0.0.0.0 (every interface)"
            ) from e
        raise DashboardError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # every interface: this machine reaches it on loopback
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


class DashboardServer:
    """The app on a bound socket. ``serve_forever()`` in the main thread (Ctrl-C stops it), or
    ``start()`` / ``stop()`` in a background thread."""

    def __init__(self, data_dir: Path | str, host: str = "127.0.0.1", port: int = 8050):
        import uvicorn

        self.app = create_app(data_dir)
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()
            self.app.state.reader.close()

    def start(self, timeout_s: float = 10.0) -> None:
        self.thread = threading.Thread(target=self.serve_forever, name="vendlab-dashboard", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise DashboardError(f"the dashboard server stopped while starting on {self.url}")
            if time.monotonic() > deadline:
                self.stop()
                raise DashboardError(f"the dashboard server did not start within {timeout_s:g} s on {self.url}")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 5.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=timeout_s)


def start_dashboard_in_thread(data_dir: Path | str, host: str = "127.0.0.1", port: int = 8050):
    """Serve the dashboard of ``data_dir`` from a daemon thread; returns ``(url, stop)``.

    The data dir and its store need not exist yet (the page says it is waiting for them).
    Raises DashboardError (its message is ready to print) if the port or host cannot be used.
    """
    srv = DashboardServer(data_dir, host, port)
    srv.start()
    return srv.url, srv.stop
