"""Spark's floor (vendlab.bench.spark_floor) and kappa's replay (the bench's replay step) on the same
log in the same JVM, after the warm-up, measured in JVM CPU seconds per event (psutil; robust on a
loaded machine) and wall seconds; DuckDB on the same files for reference.

    PYTHONPATH=. python scripts/perf/floor_vs_replay.py [EVENTS]
"""

import json
import os
import sys
import tempfile
from pathlib import Path

from vendlab.bench.duckdb_ref import run_reference
from vendlab.bench.worker import Worker


def main():
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    w = Worker({"work_dir": tempfile.mkdtemp(prefix="floor-replay-"), "seed": 5})
    d = Path(w.work) / "log"
    w.make_log({"log_dir": str(d), "events": events})
    w.start_spark()
    out = {"events": events, "load_1min": os.getloadavg()[0]}
    out["warmup"] = w.warmup({"events": 10_000})
    out["floor"] = w.floor({"log_dir": str(d)})
    out["replay"] = w.replay({"log_dir": str(d)})
    out["duckdb"] = run_reference(d)
    out["replay_over_floor_cpu"] = round(
        out["replay"]["jvm_cpu_us_per_event"] / out["floor"]["jvm_cpu_us_per_event"], 2
    )
    out["load_1min_end"] = os.getloadavg()[0]
    w.spark.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
