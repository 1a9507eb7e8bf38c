"""The fixed cost of a micro-batch: where its time goes, and its CPU, on small micro-batches.

In one JVM (after the warm-up): a log of SEGS segments of LINES lines (default 25 x 1,000), read by
the kappa view job one segment per micro-batch (``max_files_per_trigger=1``, availableNow), once per
variant of Spark settings and per round, interleaved. Prints per run the wall time, the JVM's and
this process's CPU per micro-batch, and the parts of a micro-batch (``vendlab.bench.timeparts``).
To compare two checkouts (old and new code), run it from each, alternating.

    PYTHONPATH=. python scripts/perf/fixed_cost_ab.py '{"base": {}, "sp1": {"spark.sql.shuffle.partitions": "1"}}'
    (environment: LINES, SEGS, ROUNDS, BUCKET=1 for lambda's bucketed speed job, OUT=results.json)
"""

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from vendlab.bench.measure import STATE_KEYS, spark_jvm
from vendlab.bench.timeparts import markdown, table
from vendlab.config import embedded
from vendlab.jobs.streaming import SINK_TIMINGS, start_view_job
from vendlab.spark import get_spark
from vendlab.warmup import warm_up, write_warmup_log
from vendlab.world.catalog import make_catalog

LINES = int(os.environ.get("LINES", 1000))
SEGS = int(os.environ.get("SEGS", 25))
ROUNDS = int(os.environ.get("ROUNDS", 2))


def main(variants: dict) -> dict:
    bucket = 60_000 if os.environ.get("BUCKET") else None
    root = Path(tempfile.mkdtemp(prefix="vendlab-fixed-"))
    try:
        cat = make_catalog(1, machines=20)
        write_warmup_log(root / "src", cat, LINES * SEGS, segment_lines=LINES)
        spark = get_spark(embedded(root / "spark"))
        warm_up(spark, cat, ["kappa"], bucket_ms=bucket)
        jvm, me = spark_jvm(), psutil.Process()
        res = {}
        for r in range(ROUNDS):
            for name, conf in variants.items():
                p = embedded(root / f"{name}-{r}", max_files_per_trigger=1)
                shutil.copytree(root / "src" / "log", p.log_dir)
                old = {k: spark.conf.get(k, None) for k in conf}
                for k, v in conf.items():
                    spark.conf.set(k, v)
                job = f"kappa_{name}_{r}"
                c0 = sum(jvm.cpu_times()[:2]), sum(me.cpu_times()[:2])
                t = time.perf_counter()
                q = start_view_job(spark, p, cat, job, bucket_ms=bucket, available_now=True)
                q.awaitTermination()
                wall = time.perf_counter() - t
                cpu = sum(jvm.cpu_times()[:2]) - c0[0], sum(me.cpu_times()[:2]) - c0[1]
                for k, v in old.items():
                    spark.conf.unset(k) if v is None else spark.conf.set(k, v)
                batches = [
                    {
                        "batch": int(pr["batchId"]),
                        "rows": int(pr["numInputRows"]),
                        "duration_ms": dict(pr["durationMs"]),
                        "state": [{k: so.get(k) for k in STATE_KEYS} for so in pr["stateOperators"]],
                    }
                    for pr in q.recentProgress
                ]
                t_ = table(batches, list(SINK_TIMINGS.get(job, [])), skip_first=2)
                n = max(1, len(batches))
                t_["cpu_per_batch_ms"] = {"jvm": round(cpu[0] / n * 1000, 1), "python": round(cpu[1] / n * 1000, 1)}
                res.setdefault(name, []).append(t_)
                print(
                    f"round {r} {name}: wall {wall:.1f} s, {len(batches)} micro-batches, CPU per micro-batch: JVM "
                    f"{t_['cpu_per_batch_ms']['jvm']} ms, Python {t_['cpu_per_batch_ms']['python']} ms; load "
                    f"{os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        for name in variants:
            print(f"\n### {name}")
            print("\n".join(markdown({f"{name} round {i}": t for i, t in enumerate(res[name])})))
        return res
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"base": {}})
    if os.environ.get("OUT"):
        Path(os.environ["OUT"]).write_text(json.dumps(out, indent=1))
