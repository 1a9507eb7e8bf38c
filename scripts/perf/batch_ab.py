"""A/B of lambda's batch run over a master dataset of raw lines (parsed at every run) vs one with
the parsed columns (vendlab.jobs.ingest with a catalog: a column scan), in one JVM, interleaved,
measured in JVM CPU seconds (psutil) and wall seconds; both views checked equal.

    PYTHONPATH=. python scripts/perf/batch_ab.py [EVENTS] [ROUNDS]
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from vendlab.bench.measure import spark_jvm
from vendlab.bench.worker import Worker
from vendlab.jobs.batch import compute_batch_view
from vendlab.jobs.ingest import start_ingest_job
from vendlab.world.catalog import Catalog


def cpu(p):
    t = p.cpu_times()
    return t.user + t.system


def main():
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    w = Worker({"work_dir": tempfile.mkdtemp(prefix="batch-ab-"), "seed": 5})
    d = Path(w.work) / "log"
    w.make_log({"log_dir": str(d), "events": events})
    catalog = Catalog.load(d / "catalog.json")
    spark = w.start_spark()
    jvm = spark_jvm()
    out = {"events": events, "load_1min": os.getloadavg()[0], "ingest_cpu_s": {}, "batch": {"raw": [], "parsed": []}}
    profiles = {}
    for form, cat in (("raw", None), ("parsed", catalog)):
        p = w.profile(d).with_(
            master_path=str(Path(w.work) / f"master-{form}"), checkpoint_dir=str(Path(w.work) / f"ck-{form}")
        )
        c0 = cpu(jvm)
        q = start_ingest_job(spark, p, available_now=True, catalog=cat)
        q.awaitTermination()
        out["ingest_cpu_s"][form] = round(cpu(jvm) - c0, 2)
        profiles[form] = p
    views = {}
    for _ in range(rounds):
        for form in ("raw", "parsed"):
            c0, t0 = cpu(jvm), time.monotonic()
            rows, cutoff, n = compute_batch_view(spark, profiles[form], catalog)
            out["batch"][form].append({"jvm_cpu_s": round(cpu(jvm) - c0, 2), "wall_s": round(time.monotonic() - t0, 2)})
            views[form] = (sorted(rows), cutoff, n)
    out["same_view"] = views["raw"] == views["parsed"]
    out["load_1min_end"] = os.getloadavg()[0]
    spark.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
