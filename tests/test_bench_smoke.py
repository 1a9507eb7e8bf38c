"""`vendlab bench --quick`: the report's structure, and numbers that come from a real run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.spark

REQUIRED = {
    "kappa": {"sustainable_eps", "latency_ms", "replay_eps", "stall_cause"},
    "lambda": {"sustainable_eps", "latency_ms", "batch_seconds_by_history", "stall_cause"},
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    work = tmp_path_factory.mktemp("bench-work")
    proc = subprocess.run(
        [sys.executable, "-m", "vendlab.cli", "bench", "--quick", "--out", str(out), "--work-dir", str(work)],
        capture_output=True,
        text=True,
        timeout=1200,  # a hang guard: about 300 s on a loaded 2-core machine
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "results.json").read_text()), proc.stderr


def test_results_keys_and_files(bench):
    out, doc, stderr = bench
    assert {"machine", "kappa", "lambda", "duckdb_eps", "ram_vs_cores"} <= set(doc)
    for arch, keys in REQUIRED.items():
        assert keys <= set(doc[arch]), (arch, keys - set(doc[arch]))
        assert set(doc[arch]["latency_ms"]) >= {"p50", "p95", "p99"}
        assert isinstance(doc[arch]["stall_cause"], str) and doc[arch]["stall_cause"]
    assert doc["machine"]["cores"] >= 1
    assert doc["ram_vs_cores"] and all(
        {"arch", "master", "driver_memory", "sustainable_eps"} <= set(r) for r in doc["ram_vs_cores"]
    )
    assert {r["master"] for r in doc["ram_vs_cores"]} == {"local[1]", "local[2]"}
    assert doc["lambda"]["batch_seconds_by_history"] and all(
        s > 0 for s in doc["lambda"]["batch_seconds_by_history"].values()
    )
    for name in doc["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    report = (out / "report.md").read_text()
    for heading in (
        "## Summary",
        "## Rate sweep",
        "## Exactness over time",
        "## Lambda: batch cost as history grows",
        "## Kappa: reprocessing",
        "## More RAM or more cores?",
        "## Where the time goes",
        "## Physical reference: DuckDB",
        "## Where a line's cost goes",
        "## Complexity",
    ):
        assert heading in report
    for name in doc["plots"]:
        assert f"]({name})" in report
    assert "bench: done" in stderr  # progress went to stderr


def test_numbers_come_from_a_real_run(bench):
    _, doc, _ = bench
    for arch in ("kappa", "lambda"):
        points = doc["sweep"][arch]
        assert points
        for p in points:
            # Spark's own progress counted every line the generator's manifest says it wrote
            # (events + latency markers), and the views equal the manifest.
            assert p["rows_read"] == p["events"] + p["markers"], p
            assert p["exact"] is True
            # Latencies come from marker events: one every 0.1 s of the run, each positive.
            assert len(p["latency_series"]) >= p["markers"] * 0.9
            assert all(lat > 0 for _, lat in p["latency_series"])
            assert 0 < p["latency_ms"]["p50"] <= p["latency_ms"]["p99"]
            # where its micro-batches' time went, from Spark's own progress (vendlab.bench.timeparts)
            parts = p["time_parts"]["parts"]
            assert p["time_parts"]["batches"] >= 1 and parts["triggerExecution"]["mean_ms"] > 0
            assert parts["addBatch"]["mean_ms"] <= parts["triggerExecution"]["mean_ms"]
    ex = doc["exactness"]
    for arch in ("kappa", "lambda"):
        assert ex[arch]["exact"] is True
        assert ex[arch]["max_overcount"] <= 0  # never above what had been generated
        assert ex[arch]["final_view_minus_validation"] == 0
    replay = doc["kappa"]["replay"]
    assert replay["exact"] is True and replay["rows_read"] == replay["events"] > 0
    assert doc["kappa"]["replay_eps"] == pytest.approx(replay["events"] / replay["seconds"], rel=0.01)
    assert doc["duckdb"]["exact"] is True and doc["duckdb"]["events"] == replay["events"]
    gen = doc["generator"]  # the replay log, written as `vendlab generate` writes one
    assert gen["events"] == replay["events"] and gen["cpu_s_per_million"] > 0
    assert gen["generate_eps"] == pytest.approx(gen["events"] / gen["seconds"], rel=0.05)
    assert doc["duckdb_eps"] > 0
    # where a replayed line's JVM CPU goes: every cut of every round read the whole replay log and was
    # timed, and the replay (parse, dedup, views, sink) cost more JVM CPU than reading the lines alone
    lc = doc["line_cost"]
    assert lc["complete"] is True and lc["events"] == replay["events"]
    assert [s["step"] for s in lc["steps"]] == ["scan", "contract", "dedup", "views", "sink"]
    assert all(s["rows_read"] >= replay["events"] for s in lc["steps"])
    assert all(len(s["rounds_us_per_event"]) == lc["rounds"] for s in lc["steps"])
    assert lc["total_us_per_event"] > lc["steps"][0]["cumulative_us_per_event"] > 0
    assert doc["complexity"]["lambda"]["n_services"] > doc["complexity"]["kappa"]["n_services"] > 0
