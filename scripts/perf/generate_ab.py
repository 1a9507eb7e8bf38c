"""A/B of `vendlab generate --events N` as a user runs it: the code of a git revision against the
worktree's, interleaved, each a fresh process. Reports per round the wall time of the whole command
(Python start-up included), its CPU (user + system of the process and its threads), the load average
before it, and checks that both wrote the same log.

    PYTHONPATH=. python scripts/perf/generate_ab.py REVISION [ROUNDS] [EVENTS]
"""

import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def log_digest(d: Path) -> str:
    h = hashlib.sha256()
    for seg in sorted((d / "log").glob("seg-*")):
        h.update(seg.name.encode())
        h.update(seg.read_bytes())
    return h.hexdigest()


def run(code_dir: Path, events: int, scratch: Path) -> dict:
    out = scratch / "d"
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "vendlab.cli", "generate", "--data-dir", str(out), "--events", str(events)],
        cwd=code_dir,
        env=dict(os.environ, PYTHONPATH=str(code_dir)),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {
        "wall_s": round(wall, 2),
        "events_per_s": round(events / wall),
        "cpu_s": round(cpu, 2),
        "load_before": round(load, 1),
        "log": log_digest(out),
    }


def main() -> None:
    rev = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    events = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    here = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="generate-ab-") as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        archive = subprocess.run(["git", "archive", rev], cwd=here, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        res = {rev: [], "worktree": []}
        for _ in range(rounds):
            res[rev].append(run(old, events, tmp))
            res["worktree"].append(run(here, events, tmp))
        digests = {r["log"] for rows in res.values() for r in rows}
        for rows in res.values():
            for r in rows:
                del r["log"]
        print({"events": events, "same_log": len(digests) == 1, **res})


if __name__ == "__main__":
    main()
