"""A/B of the generator's timestamp formatting (generator.iso_ms vs pc.strftime per event), interleaved
in one process, in process CPU seconds per million events (robust on a loaded machine).

    PYTHONPATH=. python scripts/perf/generator_ab.py [ROUNDS]
"""
import os
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc

from vendlab import generator
from vendlab.catalog import make_catalog


def strftime_each(ms):
    return pc.strftime(pa.array(ms.astype("datetime64[ms]")), format="%Y-%m-%dT%H:%M:%SZ", locale="C")


def run(fmt, events=300_000):
    generator.iso_ms = fmt
    gen = generator.Generator(make_catalog(1), 1, 20000, 60.0, bad_rate=0.001, dup_rate=0.01)
    gen.take(10_000)
    c0 = time.process_time()
    n = 0
    while n < events:
        gen.take(100_000)
        n += 100_000
    return (time.process_time() - c0) / n * 1e6


new = generator.iso_ms
res = {"strftime per event": [], "iso_ms": []}
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    res["strftime per event"].append(round(run(strftime_each), 2))
    res["iso_ms"].append(round(run(new), 2))
print({"cpu_s_per_million_events": res, "load_1min": os.getloadavg()[0]})
