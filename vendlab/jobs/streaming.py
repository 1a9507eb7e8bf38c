"""The streaming view job: log -> parse -> deduplicate -> additive views, via ``foreachBatch``.

It is kappa's whole pipeline and, with event-time buckets, lambda's speed layer: the same
code, a different ``job`` name and ``bucket_ms``. Each micro-batch's deltas, latency markers
and dead letters go to the view store in one ``apply_batch`` call, which the store applies
exactly once per (job, batch id): a micro-batch that Spark replays after a crash (same batch
id, same input, from the checkpoint) changes nothing the second time.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from pyspark.sql import DataFrame, SparkSession

from vendlab.catalog import Catalog
from vendlab.config import Profile, open_store
from vendlab.jobs import parse, sources
from vendlab.jobs.views import split, view_rows
from vendlab.store.base import ViewStore

# Dead-letter rows kept per micro-batch (their counts per reason are always exact).
MAX_DEAD_ROWS_PER_BATCH = 10_000

# Test hook: called with (job, batch_id, stage) at "before_apply" and "after_apply".
FaultHook = Callable[[str, int, str], None]


class BatchSink:
    """The ``foreachBatch`` function of a view job."""

    def __init__(self, profile: Profile, job: str, bucket_ms: int | None, fault_hook: FaultHook | None = None):
        self.profile = profile
        self.job = job
        self.bucket_ms = bucket_ms
        self.fault_hook = fault_hook
        self._local = threading.local()

    def store(self) -> ViewStore:
        s = getattr(self._local, "store", None)
        if s is None:
            s = self._local.store = open_store(self.profile)
        return s

    def __call__(self, df: DataFrame, batch_id: int) -> None:
        store = self.store()
        # A replayed batch (after a crash between the store's commit and Spark's) is computed
        # again even though the store will skip it: running the plan is what brings the
        # deduplication state to this batch's version (skipping it would forget its event ids).
        # One action: the micro-batch's stateful plan (deduplication) runs exactly once.
        deltas, markers, dead, rows = split(view_rows(df, self.bucket_ms).collect())
        dead = dead[:MAX_DEAD_ROWS_PER_BATCH]
        if self.fault_hook:
            self.fault_hook(self.job, batch_id, "before_apply")
        store.apply_batch(self.job, batch_id, deltas, markers, dead, rows, visible_ms=int(time.time() * 1000))
        if self.fault_hook:
            self.fault_hook(self.job, batch_id, "after_apply")


def parsed_stream(spark: SparkSession, profile: Profile, catalog: Catalog) -> DataFrame:
    raw = sources.read_log_stream(spark, profile)
    parsed = parse.parse(raw, sorted(catalog.machine_ids), sorted(catalog.product_names))
    return parse.deduplicate(parsed, profile.dedup_delay)


def start_view_job(spark: SparkSession, profile: Profile, catalog: Catalog, job: str,
                   bucket_ms: int | None = None, trigger_seconds: float = 0.0,
                   fault_hook: FaultHook | None = None, available_now: bool = False):
    """Start the streaming view job; returns the StreamingQuery."""
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", job)
    try:
        df = parsed_stream(spark, profile, catalog)
        w = (df.writeStream.queryName(job)
             .foreachBatch(BatchSink(profile, job, bucket_ms, fault_hook))
             .option("checkpointLocation", profile.checkpoint(job)))
        if available_now:  # process what the log holds now, then stop (tests, replays)
            w = w.trigger(availableNow=True)
        elif trigger_seconds > 0:
            w = w.trigger(processingTime=f"{trigger_seconds} seconds")
        return w.start()
    finally:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)
