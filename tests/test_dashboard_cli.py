"""`vendlab dashboard`: a wrong port, host or data dir gives exit code 2 and says what is allowed;
a good one serves the page (also before the run has made its data dir) and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from vendlab.cli import main
from vendlab.dashboard.cli import COMMANDS
from vendlab.dashboard.server import DashboardError, bind
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore


def run_cli(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse rejects a bad value with exit code 2
        return e.code


@pytest.fixture
def data_dir(tmp_path):
    store = SqliteStore(tmp_path / "views.sqlite")
    store.apply_batch(base.KAPPA, 0, [(base.ITEMS_BY_PRODUCT, "cola", 0, 4)])
    store.close()
    return tmp_path


@pytest.fixture
def busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def test_the_command_is_registered():
    assert COMMANDS == ("dashboard",)


@pytest.mark.parametrize("port", ["0", "65536", "-1", "80a", "8050.5"])
def test_a_port_outside_1_to_65535_is_refused(port, data_dir, capsys):
    assert run_cli(["dashboard", "--data-dir", str(data_dir), "--port", port]) == 2
    err = capsys.readouterr().err
    assert "--port" in err and "1..65535" in err and port in err


def test_a_port_in_use_is_refused(data_dir, busy_port, capsys):
    assert run_cli(["dashboard", "--data-dir", str(data_dir), "--port", str(busy_port)]) == 2
    err = capsys.readouterr().err
    assert f"port {busy_port} on 127.0.0.1 is already in use" in err and "1..65535" in err


def test_a_data_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert run_cli(["dashboard", "--data-dir", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "vendlab run" in err


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_dashboard_command(data_dir, port: int) -> subprocess.Popen:
    """``vendlab dashboard --data-dir DATA_DIR --port PORT`` in a subprocess, once it has printed its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vendlab.cli", "dashboard", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline()
    if line.strip() != f"vendlab dashboard: http://127.0.0.1:{port}/":
        proc.kill()
        raise AssertionError(f"vendlab dashboard printed {line!r}: {proc.communicate()[1]}")
    return proc


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_started_before_the_run_it_waits_for_views_then_shows_them(tmp_path):
    """docs/dashboard.md's recipe: `vendlab dashboard --data-dir D` before (or beside) the run that
    creates D; the page says "waiting for views" until the store appears, then serves it."""
    d = tmp_path / "not-yet"
    port = _free_port()
    proc = start_dashboard_command(d, port)
    try:
        assert "waiting for views" in proc.stderr.readline()
        status, v = _get(f"http://127.0.0.1:{port}/api/views")
        assert (status, v["store"]) == (503, "waiting") and "views.sqlite" in v["error"]
        d.mkdir()  # the run starts: its store appears and fills
        store = SqliteStore(d / "views.sqlite")
        store.apply_batch(base.KAPPA, 0, [(base.ITEMS_BY_PRODUCT, "cola", 0, 4)])
        status, v = _get(f"http://127.0.0.1:{port}/api/views")
        assert (status, v["store"]) == (200, "ok") and v["views"]["kappa"]["realtime"] == {"cola": 4}
        store.apply_batch(base.KAPPA, 1, [(base.ITEMS_BY_PRODUCT, "cola", 0, 3)])
        store.close()
        assert _get(f"http://127.0.0.1:{port}/api/views")[1]["views"]["kappa"]["realtime"] == {"cola": 7}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_file_that_is_not_a_view_store_is_refused(tmp_path, capsys):
    (tmp_path / "views.sqlite").write_text("not a database")
    assert run_cli(["dashboard", "--data-dir", str(tmp_path)]) == 2
    assert "is not a vendlab view store" in capsys.readouterr().err


def test_an_unknown_host_is_refused(data_dir, capsys):
    assert run_cli(["dashboard", "--data-dir", str(data_dir), "--host", "no-such-host.invalid"]) == 2
    err = capsys.readouterr().err
    assert "no-such-host.invalid" in err and "127.0.0.1" in err


def test_bind_refuses_bad_ports_for_the_embedded_server_too():
    with pytest.raises(DashboardError, match="1..65535"):
        bind("127.0.0.1", 70000)
    s = bind("127.0.0.1", 0)  # 0: any free port (tests, embedding)
    try:
        with pytest.raises(DashboardError, match="already in use"):
            bind("127.0.0.1", s.getsockname()[1])
    finally:
        s.close()


def test_serves_on_127_0_0_1_by_default_prints_its_url_and_stops_on_ctrl_c(data_dir):
    port = _free_port()
    proc = start_dashboard_command(data_dir, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/views", timeout=10) as r:
            assert json.loads(r.read())["views"]["kappa"]["realtime"] == {"cola": 4}
        listening = [c for c in __import__("psutil").Process(proc.pid).net_connections("tcp") if c.status == "LISTEN"]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
