"""A cluster-mode command run where its services are not: a clear error naming each one and how to
start it (exit 2, no traceback), before any client library or Spark is started."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vendlab.config import compose, embedded
from vendlab.services import ServiceUnavailable, endpoints, require


def test_the_compose_profile_needs_the_stack_services(tmp_path, monkeypatch):
    for var in ("VENDLAB_KAFKA", "VENDLAB_CASSANDRA", "VENDLAB_SPARK_MASTER", "VENDLAB_MASTER", "VENDLAB_CHECKPOINTS"):
        monkeypatch.delenv(var, raising=False)
    p = compose(tmp_path)
    got = [(e.service, e.address, e.variable) for e in endpoints(p, ("kafka", "cassandra", "spark", "hdfs"))]
    assert got == [
        ("Kafka", "kafka:29092", "VENDLAB_KAFKA"),
        ("Cassandra", "cassandra1:9042", "VENDLAB_CASSANDRA"),
        ("the Spark master", "spark-master:7077", "VENDLAB_SPARK_MASTER"),
        ("HDFS (namenode)", "namenode:8020", "VENDLAB_MASTER"),  # the checkpoints' namenode is the same one
    ]
    assert [e.service for e in endpoints(p, ("kafka",))] == ["Kafka"]
    bare = p.with_(kafka_bootstrap="broker", cassandra_hosts=("c1", "c2:9142"), spark_master="spark://m")
    got = [e.address for e in endpoints(bare, ("kafka", "cassandra", "spark"))]
    # a host without a port gets the service's default; Cassandra's driver uses one port for every host
    assert got == ["broker:9092", "c1:9142", "c2:9142", "m:7077"]


def test_nothing_to_reach_in_embedded_mode_or_on_yarn(tmp_path):
    assert endpoints(embedded(tmp_path), ("kafka", "cassandra", "spark", "hdfs")) == []
    yarn = compose(tmp_path).with_(spark_master="yarn", master_path="/tmp/m", checkpoint_dir="file:///tmp/c")
    assert [e.service for e in endpoints(yarn, ("spark", "hdfs"))] == []


def test_a_listening_service_passes_and_a_closed_port_or_unknown_name_is_named(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        require(compose(tmp_path).with_(kafka_bootstrap=f"127.0.0.1:{port}"), ("kafka",), "vendlab produce", wait_s=0)
    # the port is closed now (nothing listens)
    p = compose(tmp_path).with_(kafka_bootstrap=f"127.0.0.1:{port}", cassandra_hosts=("no-such-host.invalid",))
    with pytest.raises(ServiceUnavailable) as e:
        require(p, ("kafka", "cassandra"), "vendlab validate", wait_s=0)
    msg = str(e.value)
    assert f"Kafka at 127.0.0.1:{port} (VENDLAB_KAFKA): nothing answers there" in msg
    assert "Cassandra at no-such-host.invalid:9042 (VENDLAB_CASSANDRA): the name 'no-such-host.invalid' does not" in msg
    assert "start_kappa.py" in msg and "vendlab stack up" in msg


@pytest.mark.parametrize(
    "argv, variable, value, service",
    [
        (["produce", "--rate", "10"], "VENDLAB_KAFKA", "no-such-host.invalid:29092", "Kafka"),
        (["validate"], "VENDLAB_CASSANDRA", "no-such-host.invalid", "Cassandra"),
        (["job", "kappa"], "VENDLAB_SPARK_MASTER", "spark://no-such-host.invalid:7077", "the Spark master"),
    ],
)
def test_cluster_commands_say_which_service_is_missing(tmp_path, argv, variable, value, service):
    env = dict(os.environ, **{variable: value})
    r = subprocess.run(
        [sys.executable, "-m", "vendlab.cli", *argv, "--profile", "compose", "--data-dir", str(tmp_path / "d")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"{service} at no-such-host.invalid" in r.stderr and "start_lambda.py" in r.stderr
    assert "Traceback" not in r.stderr and "Exception" not in r.stderr


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "vendlab").exists(), reason="no project venv (make bootstrap)")
def test_the_start_scripts_use_the_project_venv_and_name_commands_a_user_can_type(tmp_path):
    """Run with the system's python3 (as `./lambda/start_lambda.py` is, by its shebang) and without the venv
    on PATH: the script re-runs itself with the venv's python, and the command it names is the venv's."""
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        pytest.skip("no python3 in /usr/bin or /bin")
    r = subprocess.run(
        [system_python, "lambda/start_lambda.py", "--local", str(tmp_path / "none"), "--status"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"start one with: .venv/bin/vendlab stack up --stack lambda --dir {tmp_path / 'none'}" in r.stdout + r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_service_that_starts_listening_later_is_waited_for_with_progress(tmp_path, capsys):
    """A job started before its service listens (a stack still starting, Cassandra restarting) waits for it."""
    import threading

    port = _free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def listen_later():
        time.sleep(2.0)
        server.bind(("127.0.0.1", port))
        server.listen()

    t = threading.Thread(target=listen_later, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        p = compose(tmp_path).with_(cassandra_hosts=(f"127.0.0.1:{port}",))
        require(p, ("cassandra",), "vendlab job kappa", wait_s=30, progress_s=0.5)
        assert 1.5 < time.monotonic() - t0 < 15
    finally:
        t.join()
        server.close()
    err = capsys.readouterr().err
    assert f"vendlab: waiting for Cassandra at 127.0.0.1:{port} (connection refused): " in err
    assert " s of 30 s" in err


def test_a_port_that_never_opens_hits_the_bound_set_by_the_variable(tmp_path, monkeypatch, capsys):
    port = _free_port()
    monkeypatch.setenv("VENDLAB_SERVICE_WAIT_S", "2")
    p = compose(tmp_path).with_(kafka_bootstrap=f"127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable) as e:
        require(p, ("kafka",), "vendlab produce", progress_s=0.5)
    assert 1.5 < time.monotonic() - t0 < 10
    msg = str(e.value)
    assert f"Kafka at 127.0.0.1:{port} (VENDLAB_KAFKA): nothing answers there" in msg
    assert "VENDLAB_SERVICE_WAIT_S" in msg and "start_kappa.py" in msg and "vendlab stack up" in msg
    assert " s of 2 s" in capsys.readouterr().err


def test_an_unresolved_name_fails_without_waiting_the_bound(tmp_path):
    p = compose(tmp_path).with_(kafka_bootstrap=f"127.0.0.1:{_free_port()}", cassandra_hosts=("no-such-host.invalid",))
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable) as e:
        require(p, ("kafka", "cassandra"), "vendlab validate", wait_s=300)
    assert time.monotonic() - t0 < 30
    assert "does not resolve" in str(e.value) and "Kafka at 127.0.0.1" in str(e.value)


def test_the_wait_bound_variable(monkeypatch):
    from vendlab.services import DEFAULT_WAIT_S, wait_bound_s

    monkeypatch.delenv("VENDLAB_SERVICE_WAIT_S", raising=False)
    assert wait_bound_s() == DEFAULT_WAIT_S == 300
    monkeypatch.setenv("VENDLAB_SERVICE_WAIT_S", "12.5")
    assert wait_bound_s() == 12.5
    monkeypatch.setenv("VENDLAB_SERVICE_WAIT_S", "soon")
    with pytest.raises(ServiceUnavailable, match="VENDLAB_SERVICE_WAIT_S"):
        wait_bound_s()


def test_a_service_of_several_addresses_is_there_when_one_answers(tmp_path, capsys):
    """A scaled-out stack with one broker and one Cassandra node away (stopped: in Docker their names no
    longer resolve): a job starts on the others, and names the ones away once."""
    with socket.socket() as kafka1, socket.socket() as cass2:
        for s in (kafka1, cass2):
            s.bind(("127.0.0.1", 0))
            s.listen()
        k, c = kafka1.getsockname()[1], cass2.getsockname()[1]
        closed = _free_port()
        p = compose(tmp_path).with_(
            kafka_bootstrap=f"127.0.0.1:{k},kafka2.invalid:29092,127.0.0.1:{closed}",
            cassandra_hosts=("cassandra1.invalid", f"127.0.0.1:{c}"),
        )
        t0 = time.monotonic()
        require(p, ("kafka", "cassandra"), "vendlab job kappa", wait_s=30)
        assert time.monotonic() - t0 < 10  # no waiting for the ones away
    err = capsys.readouterr().err
    assert "Kafka at kafka2.invalid:29092 does not answer (name not resolved); going on with its other" in err
    assert f"Kafka at 127.0.0.1:{closed} does not answer" in err


def test_a_service_none_of_whose_addresses_resolves_fails_at_once(tmp_path):
    p = compose(tmp_path).with_(kafka_bootstrap="kafka.invalid:29092,kafka2.invalid:29092")
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailable) as e:
        require(p, ("kafka",), "vendlab produce", wait_s=30)
    assert time.monotonic() - t0 < 10
    assert "kafka.invalid:29092" in str(e.value) and "kafka2.invalid:29092" in str(e.value)


def test_three_nodes_away_are_waited_for_on_one_progress_line(tmp_path, monkeypatch, capsys):
    """A whole Cassandra cluster restarting (three nodes): one line per wait, every address on it."""
    port = _free_port()  # the driver takes one port for every node (docs/local-stack.md): 127.0.0.1, .2, .3
    monkeypatch.setenv("VENDLAB_SERVICE_WAIT_S", "1.5")
    p = compose(tmp_path).with_(cassandra_hosts=tuple(f"127.0.0.{i}:{port}" for i in (1, 2, 3)))
    with pytest.raises(ServiceUnavailable):
        require(p, ("cassandra",), "vendlab job kappa", progress_s=0.5)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("vendlab: waiting for")]
    addresses = ", ".join(f"127.0.0.{i}:{port}" for i in (1, 2, 3))
    assert lines and all(
        ln.startswith(f"vendlab: waiting for Cassandra at {addresses} (connection refused): ") for ln in lines
    )
