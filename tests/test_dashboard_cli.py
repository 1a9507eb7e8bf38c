"""`vendlab dashboard`: a wrong port, host or data dir gives exit code 2 and says what is allowed;
a good one serves the page and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
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


def test_a_missing_data_dir_is_refused(tmp_path, capsys):
    assert run_cli(["dashboard", "--data-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope does not exist" in err and "vendlab run" in err


def test_a_data_dir_without_views_is_refused(tmp_path, capsys):
    assert run_cli(["dashboard", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no views.sqlite" in err and "vendlab run" in err


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
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "vendlab.cli", "dashboard", "--data-dir", str(data_dir),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.strip() == f"vendlab dashboard: http://127.0.0.1:{port}/", proc.stderr.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/views", timeout=10) as r:
            assert json.loads(r.read())["views"]["kappa"]["realtime"] == {"cola": 4}
        listening = [c for c in __import__("psutil").Process(proc.pid).net_connections("tcp")
                     if c.status == "LISTEN"]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
