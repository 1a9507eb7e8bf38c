"""A/B of the warm-up, measured in JVM CPU seconds (robust on a loaded machine).

In one fresh JVM: the kappa view job runs over a log of SEGMENTS segments of LINES lines
(one segment per micro-batch) twice, as two different queries (own job name, own checkpoint):
first on the cold JVM, then again (now warm). Prints, for each, the JVM's CPU seconds
(psutil: user + system of the Spark JVM) and each micro-batch's triggerExecution (ms).

    PYTHONPATH=. python scripts/perf/warmup_ab.py [SEGMENTS] [LINES]
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from vendlab.bench.measure import spark_jvm
from vendlab.config import embedded
from vendlab.jobs.streaming import start_view_job
from vendlab.spark import get_spark
from vendlab.warmup import write_warmup_log
from vendlab.world.catalog import make_catalog


def cpu(p):
    t = p.cpu_times()
    return t.user + t.system


def main():
    segs = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    lines = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    d = Path(tempfile.mkdtemp(prefix="warmup-ab-"))
    catalog = make_catalog(1)
    write_warmup_log(d, catalog, segs * lines, segment_lines=lines)
    p = embedded(d, max_files_per_trigger=1)
    spark = get_spark(p)
    jvm = spark_jvm()
    out = {"load_1min": os.getloadavg()[0], "segments": segs, "lines": lines}
    for name in ("cold", "warm"):
        c0, t0 = cpu(jvm), time.monotonic()
        q = start_view_job(spark, p, catalog, f"ab_{name}", available_now=True)
        q.awaitTermination()
        out[name] = {
            "jvm_cpu_s": round(cpu(jvm) - c0, 2),
            "wall_s": round(time.monotonic() - t0, 2),
            "batch_ms": [pr["durationMs"]["triggerExecution"] for pr in q.recentProgress],
        }
    out["load_1min_end"] = os.getloadavg()[0]
    spark.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
