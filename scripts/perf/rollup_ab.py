"""A/B of ``vendlab.jobs.views.rollup``: the worktree's against the one of a git revision, on the
summed fine entries of a realistic micro-batch, interleaved in one process, in process CPU
seconds (robust on a loaded machine); both must return the same deltas, markers, dead rows and
row count.

The input is made once with Spark (EVENTS generated events, parsed, ``view_plan().rows``,
collected) for a kappa micro-batch (no buckets) and a lambda speed micro-batch (1-minute
buckets) and kept in WORK_DIR/rollup-input.pickle for the next runs.

    PYTHONPATH=. python scripts/perf/rollup_ab.py REVISION [ROUNDS] [EVENTS] [WORK_DIR]
"""

import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vendlab.jobs import views


def load_revision(rev: str):
    import importlib.util

    src = subprocess.run(["git", "show", f"{rev}:vendlab/jobs/views.py"], capture_output=True, text=True, check=True)
    path = os.path.join(tempfile.mkdtemp(), "views_at_rev.py")
    with open(path, "w") as f:
        f.write(src.stdout)
    spec = importlib.util.spec_from_file_location("views_at_rev", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["views_at_rev"] = mod
    spec.loader.exec_module(mod)
    return mod


def make_input(events: int, work: Path) -> dict:
    from vendlab.config import embedded
    from vendlab.jobs import parse
    from vendlab.spark import get_spark
    from vendlab.world.catalog import make_catalog
    from vendlab.world.generator import Generator

    cat = make_catalog(1)
    gen = Generator(cat, 1, 20_000, 60.0, bad_rate=0.001, dup_rate=0.01)
    lines = gen.take(events).data.decode().splitlines()
    spark = get_spark(embedded(work / "spark"))
    raw = spark.createDataFrame([(x,) for x in lines], "value string").selectExpr(
        "value",
        "0 as log_partition",
        "cast(null as long) as log_offset",
        "timestamp_millis(0) as log_ts",
        "'seg-0' as position",
    )
    df = parse.parse(raw, sorted(cat.machine_ids), sorted(cat.product_names)).cache()
    out = {
        "kappa": [tuple(r) for r in views.view_plan(None, True).rows(df).collect()],
        "lambda_speed": [tuple(r) for r in views.view_plan(60_000, True).rows(df).collect()],
    }
    spark.stop()
    return out


def cpu(rollup, rows, repeat: int) -> float:
    c0 = time.process_time()
    for _ in range(repeat):
        rollup(rows)
    return (time.process_time() - c0) / repeat


def main():
    rev = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    work = Path(sys.argv[4] if len(sys.argv) > 4 else tempfile.gettempdir()) / f"rollup-ab-{events}"
    work.mkdir(parents=True, exist_ok=True)
    cached = work / "rollup-input.pickle"
    if not cached.exists():
        cached.write_bytes(pickle.dumps(make_input(events, work)))
    inputs = pickle.loads(cached.read_bytes())
    old = load_revision(rev)
    res = {}
    for name, rows in inputs.items():
        assert old.rollup(rows) == views.rollup(rows), f"{name}: the two roll-ups differ"
        a, b = [], []
        for _ in range(rounds):
            a.append(cpu(old.rollup, rows, 5))
            b.append(cpu(views.rollup, rows, 5))
        res[name] = {
            "summed_entries": len(rows),
            f"{rev}_ms": round(statistics.median(a) * 1000, 2),
            "worktree_ms": round(statistics.median(b) * 1000, 2),
            "rounds": rounds,
        }
    print({"events": events, "cpu_median_per_rollup": res, "same_output": True, "load_1min": os.getloadavg()[0]})


if __name__ == "__main__":
    main()
