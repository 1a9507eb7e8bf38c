"""Does lambda's batch layer starve its speed layer? A/B of two code trees, each running
`vendlab run --arch lambda` (its own JVM, validation on, 1 % duplicates, 0.1 % malformed lines),
interleaved: per run the batch runs (events, seconds), the speed layer's micro-batch intervals
(``applied`` table: time between consecutive micro-batches) and its marker latencies (event to
view), each split into *during a batch run* and *outside*; CPU seconds of the run's process tree
(getrusage of children) and the load average.

    PYTHONPATH=. python scripts/perf/lambda_live_ab.py OUT_DIR NAME=CODE_DIR [NAME=CODE_DIR ...] \
        [--rounds N] [--rate R] [--duration S] [--batch-interval S]
"""

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

VENV_PY = "/work/main/.venv/bin/python"


def pct(xs, q):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] / 1000, 2) if xs else None


def analyse(db: Path) -> dict:
    con = sqlite3.connect(db)
    runs = con.execute("SELECT version, published_ms, events, seconds FROM batch_runs ORDER BY version").fetchall()
    spans = [(pub - secs * 1000, pub) for _, pub, _, secs in runs]

    def during(t):
        return any(a <= t <= b for a, b in spans)

    applied = [t for (t,) in con.execute("SELECT applied_ms FROM applied WHERE job='lambda_speed' ORDER BY batch_id")]
    gaps = [(b, b - a) for a, b in zip(applied, applied[1:])]
    lat = con.execute("SELECT created_ms, visible_ms FROM markers WHERE job='lambda_speed'").fetchall()
    return {
        "batch_runs": [{"events": e, "seconds": s} for _, _, e, s in runs],
        "micro_batch_gap_s": {
            "during_batch": {
                "n": sum(during(t) for t, _ in gaps),
                "p50": pct([g for t, g in gaps if during(t)], 0.5),
                "max": pct([g for t, g in gaps if during(t)], 1.0),
            },
            "outside": {
                "n": sum(not during(t) for t, _ in gaps),
                "p50": pct([g for t, g in gaps if not during(t)], 0.5),
                "max": pct([g for t, g in gaps if not during(t)], 1.0),
            },
        },
        "latency_s": {
            "all": {"p50": pct([v - c for c, v in lat], 0.5), "p99": pct([v - c for c, v in lat], 0.99)},
            "created_during_batch": {
                "p50": pct([v - c for c, v in lat if during(c)], 0.5),
                "p99": pct([v - c for c, v in lat if during(c)], 0.99),
            },
            "created_outside": {
                "p50": pct([v - c for c, v in lat if not during(c)], 0.5),
                "p99": pct([v - c for c, v in lat if not during(c)], 0.99),
            },
        },
    }


def serving_exact(d: Path) -> bool:
    """lambda's serving view (batch + speed after the cutoff) == the manifest, from the run's store."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this tree's vendlab
    from vendlab.serving import lambda_views
    from vendlab.store.sqlite import SqliteStore
    from vendlab.world.generator import Manifest

    store = SqliteStore(d / "views.sqlite")
    try:
        serving = {k: v for k, v in lambda_views(store)["serving"].items() if v}
    finally:
        store.close()
    m = Manifest.load(d / "manifest.json")
    return serving == {k: v for k, v in m.items_by_product.items() if v}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--duration", type=float, default=90)
    ap.add_argument("--batch-interval", type=float, default=20)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    trees = dict(t.split("=", 1) for t in a.trees)
    for r in range(a.rounds):
        for name, code in trees.items():
            d = out / f"{name}-{r}"
            cmd = [
                VENV_PY,
                "-m",
                "vendlab.cli",
                "run",
                "--arch",
                "lambda",
                "--data-dir",
                str(d),
                "--rate",
                str(a.rate),
                "--duration",
                str(a.duration),
                "--batch-interval",
                str(a.batch_interval),
                "--dup-rate",
                "0.01",
                "--bad-rate",
                "0.001",
                "--json",
            ]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            load0, t0 = os.getloadavg()[0], time.monotonic()
            p = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": code}, capture_output=True, text=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            res = {
                "tree": name,
                "round": r,
                "rc": p.returncode,
                "load_start": round(load0, 1),
                "load_end": round(os.getloadavg()[0], 1),
                "wall_s": round(time.monotonic() - t0, 1),
                "cpu_s_children": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            }
            try:
                summary = json.loads(p.stdout)
                res.update(exact=summary["exact"], latency_ms=summary["latency_ms"], warmup_s=summary["warmup_s"])
            except (ValueError, KeyError):
                res["stderr_tail"] = p.stderr[-2000:]
            if (d / "views.sqlite").exists():
                res.update(analyse(d / "views.sqlite"))
                res["serving_exact"] = serving_exact(d)
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    sys.exit(main())
