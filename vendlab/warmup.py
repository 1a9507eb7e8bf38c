"""Warm a Spark JVM before the clock starts: run the jobs once on throw-away data.

A cold JVM pays, on its first micro-batches, for what no later batch pays: Spark generating and
compiling (Janino) the code of each plan, HotSpot interpreting that code until its JIT has
compiled it, class loading, the first state store. The first events a user generates would see
seconds of latency that say nothing about the architecture (a cold run's p99 comes from its first seconds).

:func:`warm_up` writes a small log of the same fleet (so the generated code is the code the real
queries will ask for, and Spark's code cache hands it to them compiled) into a scratch folder
and runs there, to completion, each job the run will start: the streaming view job (with or
without event-time buckets), lambda's ingest job and a batch run. Everything it writes (log,
checkpoints, master dataset, views) stays in the scratch folder, which is removed afterwards:
nothing reaches the run's views, its log or its checkpoints.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from vendlab.config import Profile, embedded, open_store
from vendlab.world.catalog import Catalog

# Events of the warm-up log and lines per segment: with one segment per micro-batch, each job runs
# WARMUP_EVENTS / WARMUP_SEGMENT_LINES micro-batches, enough for the JIT to compile the per-row code
# (HotSpot's C2 compiles a loop after ~10k iterations) and every per-batch path to run a few times.
WARMUP_EVENTS = 30_000
WARMUP_SEGMENT_LINES = 5_000
WARMUP_BAD_RATE = 0.01  # a few dead letters and duplicates, so that their paths are warm too
WARMUP_DUP_RATE = 0.01


def write_warmup_log(
    d: Path, catalog: Catalog, events: int, seed: int = 1, segment_lines: int = WARMUP_SEGMENT_LINES
) -> None:
    """A complete log of ``events`` events of ``catalog``'s fleet in ``d``/log, each segment
    ending with a latency marker (so that the markers' path is warm too)."""
    from vendlab.finished_log import write_log
    from vendlab.world.generator import Generator, marker_line, wall_ms

    markers = 0

    def with_marker(data: bytes) -> tuple[bytes, int]:
        nonlocal markers
        markers += 1
        return data + marker_line(f"warmup-{markers}", wall_ms()), data.count(b"\n") + 1

    gen = Generator(catalog, seed, 20_000, bad_rate=WARMUP_BAD_RATE, dup_rate=WARMUP_DUP_RATE)
    write_log(d, gen, events, segment_lines, mix=with_marker)


def warm_up(
    spark,
    catalog: Catalog,
    archs,
    events: int = WARMUP_EVENTS,
    bucket_ms: int | None = None,
    progress=None,
    scratch_root: Path | None = None,
) -> dict:
    """Run every job of ``archs`` once on a scratch log; returns {"seconds", "events", "jobs"}.

    ``bucket_ms``: the lambda speed job's event-time bucket (the run profile's). The scratch
    folder is a local temporary folder, so this is for local masters (embedded runs, the bench)."""
    from vendlab import architectures
    from vendlab.architectures.lambda_ import batch_session
    from vendlab.architectures.spec import BATCH, KINDS, start_query
    from vendlab.jobs.batch import run_batch

    t0 = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="vendlab-warmup-", dir=scratch_root))
    jobs = []
    try:
        write_warmup_log(root, catalog, events)
        # One segment per micro-batch: several batches per job, as in a live run.
        p: Profile = embedded(root, max_files_per_trigger=1)
        if bucket_ms is not None:
            p = p.with_(bucket_ms=bucket_ms)
        for arch in archs:
            # each job of the architecture (vendlab.architectures), the streaming view jobs first
            for job in sorted(architectures.get(arch).jobs, key=lambda j: KINDS.index(j.kind)):
                name = f"warmup_{arch}_{job.role}"
                if job.kind != BATCH:
                    q = start_query(job, spark, p, catalog, name=name, available_now=True)
                else:
                    store = open_store(p)
                    try:
                        run_batch(batch_session(spark, p.shared_batch_tasks), p, catalog, store)
                    finally:
                        store.close()
                    jobs.append(name)
                    continue
                q.awaitTermination()
                if q.exception() is not None:
                    raise RuntimeError(f"warm-up job {name} failed: {q.exception()}")
                jobs.append(name)
            if progress:
                progress(f"warmed {arch} ({time.monotonic() - t0:.1f} s so far)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"seconds": round(time.monotonic() - t0, 2), "events": events, "jobs": jobs}
