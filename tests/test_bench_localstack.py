"""`vendlab bench --profile local-stack --quick`: kappa's cluster-mode job on a local stack's Kafka +
Cassandra next to embedded kappa, in one run. The bench starts its own kappa stack and removes it after;
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
def stack_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-stack-out")
    work = tmp_path_factory.mktemp("bench-stack-work")
    r = bench("--profile", "local-stack", "--quick", "--out", str(out), "--work-dir", str(work), timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    return out, work, json.loads((out / "results.json").read_text()), r.stderr


@pytest.mark.services
def test_local_stack_and_embedded_measured_in_one_run_and_exact(stack_bench):
    _, _, doc, stderr = stack_bench
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
    out, _, doc, _ = stack_bench
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
def test_the_stack_it_started_is_gone(stack_bench):
    _, work, doc, _ = stack_bench
    d = Path(doc["local_stack"]["stack_dir"])
    assert doc["local_stack"]["started_here"] and d.is_relative_to(work)
    assert not (d / "stack.json").exists() and not (d / "data").exists()  # stack down --purge
    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(str(d) in a for a in p.info["cmdline"] or []):
                left.append((p.info["pid"], " ".join(p.info["cmdline"])[:200]))
        except psutil.Error:
            continue
    assert not left, left
