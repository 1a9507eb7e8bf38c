"""A/B of the generator: the worktree's vendlab/world/generator.py against the one of a git revision,
interleaved in one process, in process CPU seconds per million events (robust on a loaded
machine), checking that both make the same bytes.

    PYTHONPATH=. python scripts/perf/generator_ab.py REVISION [ROUNDS]
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time

from vendlab.world import generator
from vendlab.world.catalog import make_catalog


def load_revision(rev: str):
    src = subprocess.run(
        ["git", "show", f"{rev}:vendlab/world/generator.py"], capture_output=True, text=True, check=True
    )
    path = os.path.join(tempfile.mkdtemp(), "generator_at_rev.py")
    with open(path, "w") as f:
        f.write(src.stdout)
    spec = importlib.util.spec_from_file_location("generator_at_rev", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["generator_at_rev"] = mod
    spec.loader.exec_module(mod)
    return mod


def run(mod, events=300_000):
    gen = mod.Generator(make_catalog(1), 1, 20000, 60.0, bad_rate=0.001, dup_rate=0.01)
    gen.take(10_000)
    c0 = time.process_time()
    n, data = 0, []
    while n < events:
        data.append(gen.take(100_000).data)
        n += 100_000
    return (time.process_time() - c0) / n * 1e6, b"".join(data)


old = load_revision(sys.argv[1])
res = {sys.argv[1]: [], "worktree": []}
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 3):
    a, text_a = run(old)
    b, text_b = run(generator)
    assert text_a == text_b, "the two generators made different lines"
    res[sys.argv[1]].append(round(a, 2))
    res["worktree"].append(round(b, 2))
print({"cpu_s_per_million_events": res, "same_bytes": True, "load_1min": os.getloadavg()[0]})
