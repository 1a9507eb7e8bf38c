"""Where lambda's batch run spends its time, step by step, over a fixed master dataset (written by
scripts/perf/batch_master.py), in this process's own JVM: CPU seconds of the JVM and of this Python
process (psutil) and wall seconds per step, for the current code path of ``vendlab.jobs.batch``.

    PYTHONPATH=. python scripts/perf/batch_parts.py WORK old|new|run_batch [REPEATS]

Prints one JSON line: per repeat, the steps (after one warm-up run that is not reported).
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from vendlab.architectures.lambda_ import batch_session
from vendlab.bench.measure import spark_jvm
from vendlab.bench.worker import Worker
from vendlab.config import open_store
from vendlab.jobs import batch
from vendlab.store.base import BatchViewInfo
from vendlab.world.catalog import Catalog

PY = psutil.Process()


class Clock:
    def __init__(self, jvm):
        self.jvm, self.steps = jvm, []
        self._mark()

    def _now(self):
        j, p = self.jvm.cpu_times(), PY.cpu_times()
        return time.monotonic(), j.user + j.system, p.user + p.system

    def _mark(self):
        self.t = self._now()

    def step(self, name, **extra):
        now = self._now()
        self.steps.append(
            {
                "step": name,
                "wall_s": round(now[0] - self.t[0], 3),
                "jvm_cpu_s": round(now[1] - self.t[1], 2),
                "py_cpu_s": round(now[2] - self.t[2], 2),
                **extra,
            }
        )
        self.t = self._now()


def publish(c, store, version, rows, cutoff, events, t0):
    """The last step of both step-by-step runs: publish the batch view, as run_batch does."""
    info = BatchViewInfo(
        version=version,
        cutoff_bucket=int(cutoff),
        published_ms=int(time.time() * 1000),
        events=events,
        seconds=round(time.monotonic() - t0, 3),
    )
    store.publish_batch_view(info, rows)
    c.step("publish (store)")
    return c.steps, sorted(rows), int(cutoff), events


def old_run(spark, profile, catalog, store, jvm, version):
    """The batch run as it was before issue 15's batch work (commit 9eba23c), step by step."""
    from pyspark.sql import functions as F

    from vendlab.jobs.views import rollup, view_plan

    c = Clock(jvm)
    t0 = time.monotonic()
    master, parsed = batch.read_parsed(spark, profile, catalog)
    c.step("list (read_parsed)")
    valid = parsed.filter(F.col("kind") != "dead").dropDuplicates(["event_id"]).cache()
    capped = F.least(F.col("event_ms"), F.unix_millis(F.col("log_ts")) + F.lit(profile.event_time_skew_ms))
    newest = (
        valid.filter(F.col("event_ms").isNotNull())
        .groupBy("log_partition")
        .agg(F.max(capped).alias("newest"))
        .agg(F.min("newest"))
        .first()[0]
    )
    c.step("scan + dedup + cache + newest")
    events = master.count()
    c.step("master.count()")
    cutoff = (newest - profile.lateness_ms) // profile.bucket_ms
    fine = view_plan(profile.bucket_ms, with_side_outputs=False).rows(valid, before_bucket=cutoff)
    c.step("view plan")
    got = fine.collect()
    c.step("view rows + collect", rows=len(got))
    deltas, _, _, _ = rollup(got)
    rows = [(v, k, val) for v, k, _, val in deltas]
    c.step("rollup (Python)", rows=len(rows))
    valid.unpersist()
    return publish(c, store, version, rows, cutoff, events, t0)


def new_run(spark, profile, catalog, store, jvm, version):
    """The batch run of vendlab.jobs.batch now, step by step (its _batch_view, split)."""
    from pyspark.sql import functions as F

    from vendlab.jobs.views import bucket_of, rollup, view_plan

    c = Clock(jvm)
    t0 = time.monotonic()
    _, parsed = batch.read_parsed(spark, profile, catalog)
    c.step("list (read_parsed)")
    newest, events = batch.cutoff_and_rows(parsed, profile)
    c.step("cutoff + count (one scan)")
    cutoff = (newest - profile.lateness_ms) // profile.bucket_ms
    before = parsed.filter(
        (F.col("kind") != "dead") & (bucket_of(F.col("event_ms"), profile.bucket_ms) < F.lit(cutoff))
    )
    unique = before.repartition(max(2, -(-events // batch.ROWS_PER_TASK)), "event_id").dropDuplicates(["event_id"])
    fine = view_plan(profile.bucket_ms, with_side_outputs=False).rows(unique, cutoff)
    c.step("view plan")
    got = fine.collect()
    c.step("scan + dedup + view rows + collect", rows=len(got))
    deltas, _, _, _ = rollup(got)
    rows = [(v, k, val) for v, k, _, val in deltas]
    c.step("rollup (Python)", rows=len(rows))
    return publish(c, store, version, rows, cutoff, events, t0)


def whole_run(spark, profile, catalog, store, jvm, version):
    """vendlab.jobs.batch.run_batch as the pipeline calls it, one step."""
    c = Clock(jvm)
    info = batch.run_batch(spark, profile, catalog, store)
    c.step("run_batch", events=info.events)
    rows, cutoff, events = batch.compute_batch_view(spark, profile, catalog)
    return c.steps, sorted(rows), cutoff, events


VARIANTS = {"old": old_run, "new": new_run, "run_batch": whole_run}


def digest(rows) -> str:
    import hashlib

    return hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()[:16]


def main():
    work = Path(sys.argv[1])
    variant = VARIANTS[sys.argv[2]]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    w = Worker({"work_dir": tempfile.mkdtemp(prefix="batch-parts-"), "seed": 5})
    d = work / "log"
    catalog = Catalog.load(d / "catalog.json")
    spark = w.start_spark()
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", "lambda_batch")
    bspark = batch_session(spark)
    for kv in filter(None, os.environ.get("VL_BATCH_CONF", "").split(",")):  # an A/B of a setting
        bspark.conf.set(*kv.split("=", 1))
    jvm = spark_jvm()
    p = w.profile(d).with_(master_path=str(work / "master"), checkpoint_dir=str(Path(w.work) / "ck"))
    (Path(w.work) / "store").mkdir()
    store = open_store(w.profile(Path(w.work) / "store"))
    out = {
        "variant": sys.argv[2],
        "conf": os.environ.get("VL_BATCH_CONF", ""),
        "load_start": os.getloadavg(),
        "runs": [],
    }
    result = None
    for i in range(repeats + 1):
        steps, rows, cutoff, events = variant(bspark, p, catalog, store, jvm, i + 1)
        if i:
            out["runs"].append({"load_1min": os.getloadavg()[0], "steps": steps})
        result = {"rows": len(rows), "cutoff": cutoff, "events": events, "digest": digest(rows)}
    out["result"] = result
    spark.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
