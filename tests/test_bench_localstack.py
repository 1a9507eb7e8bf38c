"""`vendlab bench --profile local-stack --quick`: kappa's cluster-mode job on a local stack's Kafka +
Cassandra next to embedded kappa, in one run, on the suite's kappa stack (--stack-dir; a bench without it
starts its own and removes it after, checked here with the stack faked);
small rates and durations (the machine has 2 cores), no timed assertions: the numbers must come from a
real run, be exact, and the report must have its section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "vendlab.cli", "bench", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_stack_dir_needs_the_local_stack_profile(tmp_path):
    r = bench("--out", str(tmp_path / "out"), "--stack-dir", str(tmp_path))
    assert r.returncode == 2
    assert "--stack-dir is for --profile local-stack" in r.stderr and "Traceback" not in r.stderr


def test_stack_dir_without_a_stack_says_how_to_start_one(tmp_path):
    r = bench("--profile", "local-stack", "--out", str(tmp_path / "out"), "--stack-dir", str(tmp_path / "none"))
    assert r.returncode == 2
    assert "no local stack there" in r.stderr and "vendlab stack up --stack kappa" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def stack_bench(tmp_path_factory, kappa_stack):
    """The quick local-stack bench on the suite's kappa stack (--stack-dir: the stack is shared with the kappa
    module, tests/conftest.py), so that it does not start one of its own."""
    out = tmp_path_factory.mktemp("bench-stack-out")
    work = tmp_path_factory.mktemp("bench-stack-work")
    r = bench(
        "--profile", "local-stack", "--quick", "--out", str(out), "--work-dir", str(work),
        "--stack-dir", str(kappa_stack.dir), timeout=1800,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    return out, work, json.loads((out / "results.json").read_text()), r.stderr, kappa_stack


@pytest.mark.services
def test_local_stack_and_embedded_measured_in_one_run_and_exact(stack_bench):
    _, _, doc, stderr, _ = stack_bench
    assert doc["profile"] == "local-stack"
    assert {s.split("-")[0] for s in doc["local_stack"]["services"]} == {"kafka", "cassandra1", "spark"}
    for key in ("embedded", "local_stack"):
        points = doc[key]["sweep"]
        assert [p["rate"] for p in points] == doc["plan"]["sweep"]["rates"][: len(points)] and points
        for p in points:
            assert p["exact"] is True and p["drained"] is True
            # latencies come from the timed part's markers (one every 0.1 s), each positive
            assert len(p["latency_series"]) >= 0.9 * p.get("timed_markers", p["markers"]) > 0
            assert all(lat > 0 for _, lat in p["latency_series"])
            assert 0 < p["latency_ms"]["p50"] <= p["latency_ms"]["p99"]
            assert p["samples"] and all("load1" in s for s in p["samples"])
        assert set(doc[key]["latency_ms"]) >= {"p50", "p95", "p99"} and doc[key]["stall_cause"]
    for p in doc["embedded"]["sweep"]:
        assert p["rows_read"] == p["events"] + p["markers"]  # Spark's progress: every line
    for p in doc["local_stack"]["sweep"]:
        # the kappa views equal the validation consumer's and the manifest's, and the job applied
        # every line but the duplicate deliveries it dropped
        assert p["exact_manifest"] is True and p["exact_validation"] is True and p["validation_equals_manifest"]
        assert p["rows_read"] == p["events"] + p["markers"] - p["duplicates"]
        assert p["timed_events"] > 0 and p["warmup_events"] > 0
        assert p["cpu_pct"]["cpu_jvm"] is not None  # the stack's processes were sampled
    assert "bench: done" in stderr and "warm-up" in stderr  # progress went to stderr


@pytest.mark.services
def test_report_has_the_section_and_the_plot(stack_bench):
    out, _, doc, _, _ = stack_bench
    report = (out / "report.md").read_text()
    for heading in (
        "## Kappa on Kafka + Cassandra vs embedded kappa",
        "### Embedded kappa",
        "### Kappa on Kafka + Cassandra",
    ):
        assert heading in report
    assert "load average" in report.lower()
    for name in doc["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in report


@pytest.mark.services
def test_a_given_stack_is_left_running_without_the_benchs_topics_keyspaces_or_processes(stack_bench):
    _, work, doc, _, stack = stack_bench
    assert doc["local_stack"]["stack_dir"] == str(stack.dir) and not doc["local_stack"]["started_here"]
    assert all(s["running"] for s in stack.status()["services"].values()), stack.status()
    env = stack.env()
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": env["VENDLAB_KAFKA"]}).list_topics(timeout=20).topics
    assert not [t for t in topics if t.startswith("vendlab-bench-")], sorted(topics)
    from vendlab.store.cassandra import CassandraStore

    st = CassandraStore((env["VENDLAB_CASSANDRA"],), "system_schema")  # a keyspace that always exists
    try:
        spaces = [r.keyspace_name for r in st.session.execute("SELECT keyspace_name FROM system_schema.keyspaces")]
    finally:
        st.close()
    assert not [k for k in spaces if k.startswith("vendlab_bench_")], spaces
    checkpoints = Path(env["VENDLAB_CHECKPOINTS"].removeprefix("file://"))
    assert not list(checkpoints.glob("bench-*")), list(checkpoints.glob("bench-*"))
    left = []  # the bench's jobs, generator and validation consumer ran in its work folder
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(str(work) in a for a in p.info["cmdline"] or []):
                left.append((p.info["pid"], " ".join(p.info["cmdline"])[:200]))
        except psutil.Error:
            continue
    assert not left, left


def test_a_stack_the_bench_starts_is_purged_even_when_the_run_fails(tmp_path, monkeypatch):
    """Without --stack-dir the bench starts a kappa stack in its scratch folder and removes it at the end, also
    after a failed sweep (the stack itself is faked here: the real one is what the test above runs on)."""
    from types import SimpleNamespace

    from vendlab.bench import cli as bench_cli
    from vendlab.bench import local_stack, stack_sweep
    from vendlab.localstack import stack as stack_mod

    calls = []

    class FakeStack:
        def __init__(self, d, name=None):
            self.dir = d
            calls.append(("init", name))

        def up(self, timeout):
            calls.append("up")

        def status(self):
            return {"services": {}}

        def down(self, purge=False):
            calls.append(("down", purge))

    def failing_sweep(*a, **k):
        raise RuntimeError("the kappa job failed (see its log)")

    monkeypatch.setattr(stack_mod, "LocalStack", FakeStack)
    monkeypatch.setattr(stack_sweep, "sweep", failing_sweep)
    monkeypatch.setattr(bench_cli, "run_worker", lambda *a, **k: {"steps": [{"result": {"kappa": []}}]})
    import vendlab.spark

    monkeypatch.setattr(vendlab.spark, "check_java", lambda: None)
    args = SimpleNamespace(quick=True, stack_dir=None, out=tmp_path / "out", work_dir=tmp_path / "w", seed=1)
    assert local_stack.run_local_stack(args) == 1
    assert calls == [("init", "kappa"), "up", ("down", True)]
