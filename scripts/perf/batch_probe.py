"""The parts of the batch run's main job over a fixed master dataset (scripts/perf/batch_master.py),
each as its own Spark action in one JVM, interleaved, REPEATS times: JVM + Python CPU seconds
(psutil) and wall seconds; and Spark's floor (vendlab/bench/spark_floor.py) over the same log.

    PYTHONPATH=. python scripts/perf/batch_probe.py WORK [REPEATS]
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
from vendlab.bench.spark_floor import run_floor
from vendlab.bench.worker import Worker
from vendlab.jobs import batch
from vendlab.jobs.views import bucket_of, view_plan
from vendlab.world.catalog import Catalog

PY = psutil.Process()
VIEW_INPUT = [
    "event_id",
    "kind",
    "reason",
    "event_ms",
    "event_time",
    "machine_id",
    "product",
    "place",
    "category",
    "quantity",
    "revenue_cents",
    "temperature",
    "error_code",
    "stock",
]


def cpu(p):
    t = p.cpu_times()
    return t.user + t.system


def main():
    from pyspark.sql import functions as F

    work = Path(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    w = Worker({"work_dir": tempfile.mkdtemp(prefix="batch-probe-"), "seed": 5})
    d = work / "log"
    catalog = Catalog.load(d / "catalog.json")
    spark = w.start_spark()
    bspark = batch_session(spark)
    jvm = spark_jvm()
    p = w.profile(d).with_(master_path=str(work / "master"))
    _, parsed = batch.read_parsed(bspark, p, catalog)
    newest, events = batch.cutoff_and_rows(parsed, p)
    cutoff = (newest - p.lateness_ms) // p.bucket_ms
    before = parsed.filter((F.col("kind") != "dead") & (bucket_of(F.col("event_ms"), p.bucket_ms) < F.lit(cutoff)))
    plan = view_plan(p.bucket_ms, with_side_outputs=False)
    narrow = before.select(*VIEW_INPUT)
    probes = {
        "scan (view columns, noop)": lambda: narrow.write.format("noop").mode("overwrite").save(),
        "scan without stock (noop)": lambda: narrow.drop("stock").write.format("noop").mode("overwrite").save(),
        "scan + dedup (noop)": lambda: (
            narrow.dropDuplicates(["event_id"]).write.format("noop").mode("overwrite").save()
        ),
        "scan + views, no dedup (collect)": lambda: plan.rows(narrow, cutoff).collect(),
        "scan + dedup + views (collect)": lambda: plan.rows(before.dropDuplicates(["event_id"]), cutoff).collect(),
        "cutoff + count": lambda: batch.cutoff_and_rows(parsed, p),
        "event_id count > 1 (dup ids)": lambda: narrow.groupBy("event_id").count().filter("count > 1").count(),
        "spark floor (JSON, 1 run)": lambda: run_floor(bspark, d, runs=1),
    }
    out = {"events": events, "load_start": os.getloadavg()[0], "rounds": []}
    for f in probes.values():  # warm-up round
        f()
    for _ in range(repeats):
        r = {"load_1min": os.getloadavg()[0]}
        for name, f in probes.items():
            c0, p0, t0 = cpu(jvm), cpu(PY), time.monotonic()
            f()
            r[name] = {
                "wall_s": round(time.monotonic() - t0, 2),
                "jvm_cpu_s": round(cpu(jvm) - c0, 2),
                "py_cpu_s": round(cpu(PY) - p0, 2),
            }
        out["rounds"].append(r)
    out["plan"] = (
        plan.rows(before.dropDuplicates(["event_id"]), cutoff)._jdf.queryExecution().executedPlan().toString()[:6000]
    )
    spark.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
