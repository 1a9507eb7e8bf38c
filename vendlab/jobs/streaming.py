"""The streaming view job: log -> parse -> deduplicate -> additive views, via ``foreachBatch``.

It is kappa's whole pipeline and, with event-time buckets, lambda's speed layer: the same
code, a different ``job`` name and ``bucket_ms``. Each micro-batch's deltas, latency markers
and dead letters go to the view store in one ``apply_batch`` call, which the store applies
exactly once per (job, batch id): a micro-batch that Spark replays after a crash (same batch
id, same input, from the checkpoint) changes nothing the second time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession

from vendlab.config import Profile, open_store, store_class
from vendlab.jobs import parse, sources
from vendlab.jobs.views import ViewPlan, rollup, view_plan
from vendlab.store.base import ViewStore
from vendlab.world.catalog import Catalog

# Dead-letter rows kept per micro-batch (their counts per reason are always exact).
MAX_DEAD_ROWS_PER_BATCH = 10_000

# The sink retries a store's transient errors (BatchSink.apply) this long, backing off.
SINK_RETRY_S = 600.0
SINK_BACKOFF_S = 1.0
SINK_MAX_BACKOFF_S = 30.0

# Test hook: called with (job, batch_id, stage) at "before_apply" and "after_apply".
FaultHook = Callable[[str, int, str], None]

# Per job, the last micro-batches' timings, (batch_id, compute_s, sink_s): compute = the Spark
# plan up to the collected view rows, sink = the store write. Read by the benchmark.
SINK_TIMINGS: dict[str, deque] = {}


class BatchSink:
    """The ``foreachBatch`` function of a view job."""

    def __init__(self, profile: Profile, job: str, bucket_ms: int | None, fault_hook: FaultHook | None = None):
        self.profile = profile
        self.job = job
        self.bucket_ms = bucket_ms
        self.fault_hook = fault_hook
        self.retry_for_s = SINK_RETRY_S
        self._local = threading.local()
        self._plan: ViewPlan | None = None  # taken on the first micro-batch, reused by the others
        # The frames it is called with: parsed rows, or (start_view_job) their fine entries, which
        # the streaming plan already made (ViewPlan.fine): the callback then only sums them.
        self.fine_input = False

    def store(self) -> ViewStore:
        s = getattr(self._local, "store", None)
        if s is None:
            s = self._local.store = open_store(self.profile)
        return s

    def __call__(self, df: DataFrame, batch_id: int) -> None:
        # None until the first micro-batch reaches the store: apply opens it inside its retries, so a
        # store that is down when the job starts is waited for like one that fails later (a kappa job
        # started while Cassandra was stopped died at its first micro-batch: tests/test_localstack_kappa.py).
        store = getattr(self._local, "store", None)
        # A replayed batch (after a crash between the store's commit and Spark's) is computed
        # again even though the store will skip it: running the plan is what brings the
        # deduplication state to this batch's version (skipping it would forget its event ids).
        # One action: the micro-batch's stateful plan (deduplication) runs exactly once.
        t0 = time.perf_counter()
        if self._plan is None:
            self._plan = view_plan(self.bucket_ms)
        fine = df if self.fine_input else self._plan.fine(df)
        deltas, markers, dead, rows = rollup(self._plan.summed(fine).collect())
        dead = dead[:MAX_DEAD_ROWS_PER_BATCH]
        t1 = time.perf_counter()
        if self.fault_hook:
            self.fault_hook(self.job, batch_id, "before_apply")
        self.apply(store, batch_id, deltas, markers, dead, rows)
        if self.fault_hook:
            self.fault_hook(self.job, batch_id, "after_apply")
        SINK_TIMINGS.setdefault(self.job, deque(maxlen=1000)).append(
            (batch_id, round(t1 - t0, 4), round(time.perf_counter() - t1, 4))
        )

    def apply(self, store: ViewStore, batch_id: int, deltas, markers, dead, rows: int) -> bool:
        """store.apply_batch, retried with back-off while the store reports a transient error
        (``store.is_transient``): Cassandra down or timing out past its own retries, SQLite past
        its own. Safe: the store applies a batch id once, whichever attempt gets through."""
        t0 = time.monotonic()
        delay = SINK_BACKOFF_S
        transient = (
            getattr(store, "is_transient", None) if store is not None else store_class(self.profile).is_transient
        )
        current: ViewStore | None = store
        while True:
            try:
                if current is None:
                    current = self.reopen_store()  # may fail too (the store still down)
                return current.apply_batch(
                    self.job, batch_id, deltas, markers, dead, rows, visible_ms=int(time.time() * 1000)
                )
            except Exception as e:
                elapsed = time.monotonic() - t0
                if transient is None or not transient(e) or elapsed + delay > self.retry_for_s:
                    raise
                print(
                    f"vendlab: {self.job} micro-batch {batch_id}: the view store failed "
                    f"({type(e).__name__}: {e}); retrying in {delay:.2g} s with a new connection "
                    f"(giving up after {self.retry_for_s:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(delay)
                delay = min(delay * 2, SINK_MAX_BACKOFF_S)
                current = None

    def reopen_store(self) -> ViewStore:
        old = getattr(self._local, "store", None)
        self._local.store = None
        if old is not None:
            try:
                old.close()
            except Exception:  # a broken connection may fail to close: it is dropped anyway
                pass
        return self.store()


def parsed_stream(spark: SparkSession, profile: Profile, catalog: Catalog) -> DataFrame:
    raw = sources.read_log_stream(spark, profile)
    parsed = parse.parse(raw, sorted(catalog.machine_ids), sorted(catalog.product_names))
    return parse.deduplicate(parsed, profile.dedup_delay)


def fine_stream(spark: SparkSession, profile: Profile, catalog: Catalog, bucket_ms: int | None) -> DataFrame:
    """The parsed, deduplicated stream as its fine entries (``ViewPlan.fine``, stateless, after the
    deduplication): planned with the streaming query, so that a micro-batch's callback only sums
    them and makes fewer py4j calls (docs/history/results-2026-11.md, performance history)."""
    return view_plan(bucket_ms).fine(parsed_stream(spark, profile, catalog))


def start_view_job(
    spark: SparkSession,
    profile: Profile,
    catalog: Catalog,
    job: str,
    bucket_ms: int | None = None,
    trigger_seconds: float = 0.0,
    fault_hook: FaultHook | None = None,
    available_now: bool = False,
):
    """Start the streaming view job; returns the StreamingQuery."""
    df = fine_stream(spark, profile, catalog, bucket_ms)
    sink = BatchSink(profile, job, bucket_ms, fault_hook)
    sink.fine_input = True
    w = df.writeStream.queryName(job).foreachBatch(sink).option("checkpointLocation", profile.checkpoint(job))
    return sources.start_query(spark, job, w, trigger_seconds, available_now)
