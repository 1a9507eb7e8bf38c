"""The registry (vendlab.architectures) is the only place that lists the architectures.

A fake third architecture, a copy of kappa under another name, is registered by monkeypatching the registry;
every reader (CLI choices, serving, the dashboard, the bench, `answer`, `vendlab job`, the start scripts'
marker jobs) must then list it without another edit. A source scan checks that no module outside
vendlab/architectures/ compares against "kappa"/"lambda" as architecture names. No Spark.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vendlab import architectures
from vendlab.architectures import kappa, lambda_
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[1]
ITEMS = base.ITEMS_BY_PRODUCT

# A kappa twin (say a Spark Real-time Mode kappa) reading kappa's store job, with its own job command and process.
RTM = dataclasses.replace(
    kappa.KAPPA,
    name="rtm",
    description="kappa in Spark's real-time mode (a test double)",
    jobs=(dataclasses.replace(kappa.VIEW_JOB, command="rtm", process="rtm-job"),),
)


@pytest.fixture
def three(monkeypatch):
    monkeypatch.setattr(architectures, "ARCHITECTURES", (*architectures.ARCHITECTURES, RTM))


def test_registry_order_and_unknown_name():
    assert architectures.names() == ("kappa", "lambda")
    assert architectures.get("lambda") is lambda_.LAMBDA
    with pytest.raises(ValueError, match=r"unknown architecture 'x': allowed are kappa, lambda"):
        architectures.get("x")


def test_each_architecture_declares_what_the_lab_reads():
    k, lam = kappa.KAPPA, lambda_.LAMBDA
    assert [(j.kind, j.store_job, j.process, j.runs_on, j.bucketed) for j in lam.jobs] == [
        ("ingest", "lambda_ingest", "lambda-ingest", "standalone", False),
        ("view", "lambda_speed", "lambda-speed", "standalone", True),
        ("batch", "lambda_batch", "lambda-batch", "yarn", False),
    ]
    assert [(j.kind, j.store_job, j.process, j.command) for j in k.jobs] == [("view", "kappa", "kappa-job", "kappa")]
    assert (k.latency_job, k.view_name, lam.latency_job, lam.view_name) == (
        "kappa",
        "realtime",
        "lambda_speed",
        "serving",
    )


def test_ingest_job_name_is_the_ingest_query_name():
    pytest.importorskip("pyspark")
    from vendlab.jobs.ingest import INGEST

    assert lambda_.INGEST_JOB.store_job == INGEST


def test_lambda_serving_is_batch_plus_speed_after_the_cutoff(tmp_path):
    store = SqliteStore(tmp_path / "views.sqlite")
    try:
        store.apply_batch(base.LAMBDA_SPEED, 0, [(ITEMS, "cola", 0, 4), (ITEMS, "cola", 5, 2), (ITEMS, "tea", 7, 1)])
        assert lambda_.LAMBDA.read(store, ITEMS) == {"cola": 6, "tea": 1}  # no batch view yet: all speed buckets
        store.publish_batch_view(base.BatchViewInfo(1, 5, 0, 4, 0.1), [(ITEMS, "cola", 4)])
        with store.snapshot():
            assert lambda_.LAMBDA.views(store, ITEMS) == {
                "batch": {"cola": 4},
                "realtime": {"cola": 2, "tea": 1},
                "serving": {"cola": 6, "tea": 1},
            }
            assert lambda_.LAMBDA.reader(store)(ITEMS) == {"cola": 6, "tea": 1}
    finally:
        store.close()


def test_a_third_architecture_reaches_every_reader(three, tmp_path):
    from vendlab import cli, orchestrate, serving
    from vendlab.bench import worker
    from vendlab.dashboard import data, panels

    # the CLI: run --arch, answer --source, the job names of `vendlab job`
    parser = cli.build_parser()
    assert parser.parse_args(["run", "--arch", "rtm", "--duration", "1", "--data-dir", str(tmp_path)]).arch == "rtm"
    assert parser.parse_args(["answer", "--data-dir", str(tmp_path), "--source", "rtm"]).source == "rtm"
    assert parser.parse_args(["job", "rtm"]).name == "rtm"
    assert cli.stream_jobs() == ["kappa", "lambda_speed", "kappa"]  # rtm reads kappa's job
    # serving
    assert serving.sources() == ("kappa", "lambda", "rtm", "validation")
    assert "rtm_realtime" in serving.view_names()
    # the bench
    assert worker.query_jobs()["rtm"] == "kappa"
    # the dashboard
    assert data.arch_jobs()["rtm"] == "kappa" and data.exact_view()["rtm"] == "realtime"
    # the start scripts: the markers the rtm process records
    assert orchestrate.marker_jobs()["rtm-job"] == "kappa"
    assert orchestrate.stack_jobs("rtm") == ("validation", "generator", "rtm-job")

    # and what they read from a store that holds kappa's job
    store = SqliteStore(tmp_path / "views.sqlite")
    try:
        store.apply_batch(base.KAPPA, 0, [(ITEMS, "cola", 0, 3)], markers=[("m", 1)], visible_ms=2)
        store.apply_batch(base.VALIDATION, 0, [(ITEMS, "cola", 0, 3)], markers=[("m", 1)], visible_ms=2)
        assert serving.sources_present(store) == ["kappa", "rtm", "validation"]
        assert serving.view_reader(store, "rtm")(ITEMS) == {"cola": 3}
        with store.snapshot():
            assert serving.views_of(store)["rtm_realtime"] == {"cola": 3}
        v = data.views_payload(store)
        assert v["exactness"]["rtm"]["state"] == "exact" and v["present"]["rtm"] is True
        assert v["differences"][0]["rtm_realtime"] == 3
        assert panels.Sources(store, None).per_architecture(ITEMS)["rtm"] == {"cola": 3}
    finally:
        store.close()


def test_unknown_source_names_the_allowed_ones(tmp_path):
    from vendlab.serving import view_reader

    with pytest.raises(ValueError, match="allowed are kappa, lambda, validation"):
        view_reader(None, "delta")


# -- no module outside the registry compares against the architectures' names -----------------------
# `== "kappa"`, `"lambda" !=`, `in ("kappa", ...)`, `{"kappa": ...}`, `("kappa", "lambda")`
NAME_USE = re.compile(
    r"""(==|!=|\bin)\s*[(\[]?\s*["'](kappa|lambda)["']"""
    r"""|["'](kappa|lambda)["']\s*(==|!=|:(?!/)|,\s*["'](kappa|lambda)["'])"""
)
# What may keep the names, and why (path prefix relative to vendlab/):
ALLOWED = {
    # the compose stacks are folders kappa/ and lambda/ with different infrastructure (HDFS and YARN only in
    # lambda's): these are stack names, whose jobs the stack reads from the registry (orchestrate.stack_jobs)
    "localstack/": "compose stack names (kappa/, lambda/ folders)",
    # (its STACKS lines only: the infrastructure services and URLs of each compose stack folder)
    # the bench's experiments are per architecture by design (kappa's replay, lambda's batch history, the
    # local-stack bench of kappa's cluster job) and its results.json / report.md fields are named after them
    "bench/cli.py": "the bench document's per-architecture experiments and fields",
    "bench/report.py": "the report's two columns (kappa, lambda) of the bench document",
    "bench/plots.py": "the plots' colours and panels of the bench document",
    "bench/complexity.py": "each stack's services, modules and moving parts, counted per compose folder",
    "bench/local_stack.py": "the local-stack bench measures the kappa stack only",
}

STACK_KEY = re.compile(r"""^\s*"(kappa|lambda)": Stack\($""")


def test_no_architecture_names_outside_the_registry():
    found = []
    for path in sorted((ROOT / "vendlab").rglob("*.py")):
        rel = path.relative_to(ROOT / "vendlab").as_posix()
        if rel.startswith("architectures/") or any(rel.startswith(a) for a in ALLOWED):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if rel == "orchestrate.py" and STACK_KEY.match(code):
                continue
            if NAME_USE.search(code):
                found.append(f"vendlab/{rel}:{n}: {line.strip()}")
    assert not found, "architecture names outside vendlab/architectures/:\n" + "\n".join(found)


def test_the_scan_sees_what_it_looks_for():
    for bad in ('if arch == "kappa":', 'x = {"lambda": 1}', 'for a in ("kappa", "lambda"):', "if 'lambda' != s:"):
        assert NAME_USE.search(bad), bad
    for fine in ('"lambda_speed"', "lambda x: x", 'f"{arch}_realtime"', '"./lambda/start_lambda.py"'):
        assert not NAME_USE.search(fine), fine


def test_no_import_cycle_through_the_registry():
    """Each of these imports alone in a fresh interpreter (a cycle fails with a partially initialised module)."""
    mods = [
        "vendlab.architectures",
        "vendlab.architectures.lambda_",
        "vendlab.serving",
        "vendlab.runner",
        "vendlab.cli",
        "vendlab.orchestrate",
        "vendlab.dashboard.data",
        "vendlab.warmup",
        "vendlab.cluster",
    ]
    for m in mods:
        r = subprocess.run([sys.executable, "-c", f"import {m}"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"{m}: {r.stderr[-500:]}"


def test_the_registry_and_the_cli_import_no_spark():
    """Every command imports the registry; Spark is imported only where a job starts (docs/history/results-2026-11.md)."""
    code = "import sys, vendlab.cli, vendlab.serving, vendlab.architectures; print('pyspark' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stdout + r.stderr
