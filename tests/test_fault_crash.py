"""Process crashes: `vendlab run` is killed with SIGKILL (its whole process group, so the JVM dies
too) at a chosen point, then `vendlab run --resume` restarts the pipelines from their
checkpoints and drains. The views must end exact: equal to the validation view, to the
recovered manifest, and to an independent recount of the log. Nothing doubled, nothing lost.

The kill points are reached through test-only hooks installed by a small wrapper around the
CLI (no production code knows about them): the hook writes a file and sleeps; the test sees
the file and kills. So the kill lands exactly where it is meant to:

- kappa, inside micro-batch 1 after the view store committed it and before Spark did: the
  replayed batch must change nothing (killed before the store's commit: tests/test_kappa.py);
- lambda, inside a hand-off (the new batch view published, the speed rows the previous view
  covered not yet retired), then the resumed run inside a batch run (Spark computing the next
  batch view), then resumed again.

The generator is killed too, wherever it was (tests/test_fault_generator.py kills it at
chosen points of a segment roll).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import record, vendlab_env

from vendlab.eventlog import list_segments
from vendlab.oracle import Validator
from vendlab.runner import with_all_keys
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore
from vendlab.world.catalog import Catalog
from vendlab.world.generator import Manifest

pytestmark = pytest.mark.spark  # each test runs `vendlab run` (Spark) in a subprocess and kills it

ROOT = Path(__file__).resolve().parents[1]


# The wrapper: installs the hook named by VL_FAULT, then runs the CLI.
CHILD = r"""
import os, sys, time
from pathlib import Path

flag = Path(os.environ["VL_FAULT_FLAG"])
kind, *args = os.environ["VL_FAULT"].split(":")

def reached():
    flag.write_text(str(os.getpid()))
    time.sleep(3600)  # the test kills the process group here


if kind == "sink":  # sink:<job>:<stage>:<batch id>
    job, stage, at = args[0], args[1], int(args[2])
    import vendlab.jobs.streaming as st
    init = st.BatchSink.__init__

    def patched(self, profile, j, bucket_ms, fault_hook=None):
        def hook(job_, batch_id, stage_):
            if job_ == job and stage_ == stage and batch_id >= at:
                reached()
        init(self, profile, j, bucket_ms, hook if j == job else fault_hook)

    st.BatchSink.__init__ = patched
elif kind == "batch_run":  # kill while Spark computes a batch view, once one with data is served
    import vendlab.jobs.batch as jb
    from vendlab.config import embedded, open_store
    compute = jb.compute_batch_view

    def patched(spark, profile, catalog):
        served = open_store(profile).current_batch()
        if served is None or served.cutoff_bucket == 0:
            return compute(spark, profile, catalog)
        flag.write_text(str(os.getpid()))  # the kill lands while the next lines run
        compute(spark, profile, catalog)
        reached()

    jb.compute_batch_view = patched
elif kind == "handoff":  # kill after publishing a batch view, before retiring the speed rows
    # that the previous view covered (the first hand-off where there are such rows)
    import vendlab.jobs.batch as jb
    from vendlab.store.sqlite import SqliteStore
    publish, compute = SqliteStore.publish_batch_view, jb.compute_batch_view

    def patched_publish(self, info, rows):
        prev = self.current_batch()
        low = self._con().execute("SELECT min(bucket) FROM agg WHERE job='lambda_speed' "
                                  "AND view='items_by_product'").fetchone()[0]
        publish(self, info, rows)
        if prev is not None and low is not None and low < prev.cutoff_bucket:
            reached()

    def committed(profile):
        meta = Path(profile.master_path) / "_spark_metadata"
        return meta.is_dir() and any(n.split(".")[0].isdigit() for n in os.listdir(meta))

    def patched_compute(spark, profile, catalog):
        while not committed(profile):  # no batch run before the ingest committed data
            time.sleep(0.2)
        return compute(spark, profile, catalog)

    SqliteStore.publish_batch_view = patched_publish
    jb.compute_batch_view = patched_compute

if kind in ("handoff", "batch_run"):
    # the run may not end before the kill point is reached, however slow this machine is:
    # draining done, the batch layer keeps running until the test kills the process
    import vendlab.architectures.lambda_ as la
    la.LambdaPipeline.finish = lambda self, drained: time.sleep(3600)

from vendlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_args(arch: str, data_dir: Path, *extra: str) -> list[str]:
    # --no-warmup: the warm-up (vendlab/warmup.py, tested in test_master_dataset.py and test_cli.py) runs
    # in a scratch folder and would only delay the kill points these tests wait for
    return ["run", "--arch", arch, "--data-dir", str(data_dir), "--json", "--no-warmup", *extra]


def run_until_killed(
    arch: str, data_dir: Path, fault: str, *flags: str, timeout: float = 900, tag: str = "crash"
) -> float:
    """Start `vendlab run` with the fault hook; SIGKILL its process group when the hook is
    reached. Returns the seconds it ran. `timeout` guards against a hang only: on two cores with
    a local stack's JVMs beside it (make test's other worker) the first batch run alone took more
    than 180 s once, so it is far above any run's time and the failure shows the run's log."""
    flag = data_dir.parent / f"{data_dir.name}.{tag}.reached"
    env = vendlab_env() | {"VL_FAULT": fault, "VL_FAULT_FLAG": str(flag)}
    log_path = data_dir.parent / f"{data_dir.name}.{tag}.log"
    log = open(log_path, "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *_run_args(arch, data_dir, *flags)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while not flag.exists():
            if proc.poll() is not None:
                pytest.fail(
                    f"the run ended (exit {proc.returncode}) before reaching {fault}: " + log_path.read_text()[-3000:]
                )
            if time.monotonic() - t0 > timeout:
                pytest.fail(f"{fault} not reached in {timeout} s: " + log_path.read_text()[-3000:])
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _wait_group_gone(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    return time.monotonic() - t0


def _wait_group_gone(pgid: int, timeout: float = 20) -> None:
    """Every process of the group (the JVM included) is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]
        if not alive:
            return
        time.sleep(0.1)
    pytest.fail(f"processes of group {pgid} still alive after SIGKILL")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def resume(arch: str, data_dir: Path, *flags: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "vendlab.cli", *_run_args(arch, data_dir, "--resume", *flags)],
        env=vendlab_env(),
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard, see run_until_killed
        cwd=ROOT,
    )
    assert r.returncode in (0, 1), r.stderr[-3000:]
    assert "resuming from the checkpoints" in r.stderr
    return json.loads(r.stdout)


def recount(data_dir: Path, catalog: Catalog) -> dict[str, dict]:
    """The log, counted again from scratch by the plain-Python consumer into a fresh store."""
    store = SqliteStore(data_dir.parent / f"{data_dir.name}.recount.sqlite")
    Validator(data_dir / "log", catalog, store).poll()
    return {
        v: store.read_view(base.VALIDATION, v)
        for v in (base.ITEMS_BY_PRODUCT, base.REVENUE_BY_CATEGORY, base.DEAD_LETTERS)
    }


def check_exact(data_dir: Path, result: dict, exact_view: str) -> dict:
    """Exact after the resume: the pipeline's view == validation == recovered manifest == recount."""
    catalog = Catalog.load(data_dir / "catalog.json")
    products = [p.product for p in catalog.products]
    m = Manifest.load(data_dir / "manifest.json")
    assert m.complete
    segs = list_segments(data_dir / "log")
    assert m.segments == len(segs) == segs[-1].number + 1  # manifest consistent with the log
    assert not list((data_dir / "log").glob(".seg-*.tmp"))  # the stale half segment was removed
    again = recount(data_dir, catalog)
    expected = with_all_keys(m.items_by_product, products)
    assert with_all_keys(again[base.ITEMS_BY_PRODUCT], products) == expected
    assert again[base.DEAD_LETTERS] == m.malformed_by_reason
    assert result["drained"] and result["exact"]
    assert result["views"][exact_view] == result["views"]["validation"] == expected
    assert result["dead_letters"] == m.malformed_by_reason
    store = SqliteStore(data_dir / "views.sqlite", readonly=True)
    job = base.KAPPA if exact_view == "realtime" else base.LAMBDA_SPEED
    ids = [b for b, _, _ in store.micro_batches(job)]
    assert ids == list(range(len(ids)))  # every micro-batch applied once, none skipped
    return {
        "events": m.events,
        "sales": m.sales,
        "duplicates": m.duplicates,
        "malformed": m.malformed,
        "items": sum(expected.values()),
    }


RUN = ("--duration", "4", "--rate", "1500", "--seed", "7", "--bad-rate", "0.01", "--dup-rate", "0.01")


def test_kappa_killed_inside_a_micro_batch_resumes_exactly(tmp_path):
    """Killed after the view store committed micro-batch 1 and before Spark did: the replay of
    batch 1 must change nothing. (Killed before the store's commit: tests/test_kappa.py.)"""
    d = tmp_path / "run"
    ran = run_until_killed("kappa", d, "sink:kappa:after_apply:1", *RUN)
    store = SqliteStore(d / "views.sqlite", readonly=True)
    applied = store.last_batch_id(base.KAPPA)
    ckpt = d / "checkpoints" / "kappa"
    committed = max((int(p.name) for p in (ckpt / "commits").iterdir() if p.name.isdigit()), default=-1)
    planned = max(int(p.name) for p in (ckpt / "offsets").iterdir() if p.name.isdigit())
    # the kill landed inside micro-batch `planned`: Spark planned it and never committed it,
    # the store holds it
    assert applied == planned == committed + 1
    store.close()
    t0 = time.monotonic()
    result = resume("kappa", d)
    outcome = check_exact(d, result, "realtime")
    record(
        "kappa_kill_inside_micro_batch",
        killed_after_s=round(ran, 1),
        batch_planned=planned,
        batch_in_store=applied,
        batch_committed_by_spark=committed,
        resume_s=round(time.monotonic() - t0, 1),
        replayed_batch_skipped=True,
        **outcome,
        exact=result["exact"],
    )


def test_lambda_killed_inside_a_handoff_then_inside_a_batch_run_resumes_exactly(tmp_path):
    """1. killed inside a hand-off, events in flight: the new batch view published, the speed
    rows the previous view covered not yet retired; 2. the resumed run killed while Spark
    computes a batch view: nothing more published; 3. resumed again: exact."""
    d = tmp_path / "run"
    lam = (
        "--duration",
        "5",
        "--rate",
        "1000",
        "--seed",
        "8",
        "--bad-rate",
        "0.01",
        "--dup-rate",
        "0.01",
        "--batch-interval",
        "1",
        "--time-scale",
        "600",
    )
    ran1 = run_until_killed("lambda", d, "handoff", *lam)
    store = SqliteStore(d / "views.sqlite", readonly=True)
    runs = store.batch_history()
    assert len(runs) >= 2 and runs[-2].cutoff_bucket > 0
    buckets = [
        b
        for (b,) in store._con().execute(
            "SELECT DISTINCT bucket FROM agg WHERE job='lambda_speed' AND view='items_by_product'"
        )
    ]
    assert min(buckets) < runs[-2].cutoff_bucket  # published, not retired yet
    store.close()

    ran2 = run_until_killed("lambda", d, "batch_run", "--resume", "--batch-interval", "1", tag="batch-run")
    store = SqliteStore(d / "views.sqlite", readonly=True)
    assert [r.version for r in store.batch_history()] == [r.version for r in runs]  # nothing published
    store.close()

    t0 = time.monotonic()
    result = resume("lambda", d, "--batch-interval", "1")
    outcome = check_exact(d, result, "serving")
    record(
        "lambda_kill_inside_handoff_then_batch_run",
        killed_in_handoff_after_s=round(ran1, 1),
        versions_at_first_kill=[r.version for r in runs],
        unretired_buckets_below=runs[-2].cutoff_bucket,
        killed_in_batch_run_after_s=round(ran2, 1),
        resume_s=round(time.monotonic() - t0, 1),
        handoffs_after_resume=result.get("handoffs"),
        **outcome,
        exact=result["exact"],
    )
