"""A finished run's event-to-view latency split by whether lambda's batch layer was running: each
latency marker (the store's ``markers`` table) created while a batch run was going on (between a
run's start and its publication, ``batch_runs``) against the others, per view job.

    python scripts/perf/latency_by_batch.py DATA_DIR [DATA_DIR ...]
"""

import json
import sqlite3
import sys
from pathlib import Path


def quantile(xs: list[int], q: float) -> float | None:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] / 1000, 2) if xs else None


def split(data_dir: Path) -> dict:
    con = sqlite3.connect(data_dir / "views.sqlite")
    runs = [(p - s * 1000, p) for p, s in con.execute("SELECT published_ms, seconds FROM batch_runs")]
    out = {"batch_runs": len(runs)}
    for (job,) in con.execute("SELECT DISTINCT job FROM markers ORDER BY job"):
        rows = con.execute("SELECT created_ms, visible_ms - created_ms FROM markers WHERE job = ?", (job,)).fetchall()
        during = [lat for t, lat in rows if any(a <= t <= b for a, b in runs)]
        outside = [lat for t, lat in rows if not any(a <= t <= b for a, b in runs)]
        out[job] = {
            name: {"markers": len(xs), "p50_s": quantile(xs, 0.5), "p99_s": quantile(xs, 0.99)}
            for name, xs in (("during_batch_runs", during), ("outside", outside))
        }
    return out


if __name__ == "__main__":
    for d in sys.argv[1:]:
        print(d, json.dumps(split(Path(d))))
