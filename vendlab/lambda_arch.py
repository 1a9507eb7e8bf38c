"""The lambda architecture: ingest (log -> master dataset), batch layer on a schedule, speed
layer (the streaming view job with event-time buckets) and the serving merge.

The batch scheduler is a plain loop in a thread (embedded) or in its own process on the
cluster (``vendlab job lambda-batch``): run, publish, wait ``batch_interval``, repeat. Each run
reads the master dataset as it is at that moment, so the next run starts where the master
dataset has grown to; the hand-off is defined by the published cutoff, not by timing, so
there is nothing to synchronise beyond that (see docs/lambda.md).
"""

from __future__ import annotations

import threading

from vendlab.catalog import Catalog
from vendlab.config import Profile
from vendlab.invariants import ReaderPromise
from vendlab.jobs.batch import run_batch
from vendlab.jobs.ingest import start_ingest_job
from vendlab.jobs.streaming import start_view_job
from vendlab.serving import lambda_views
from vendlab.store import base

BATCH_POOL = "lambda_batch"

# The batch layer's own SQL settings (a session of its own on the same SparkContext): input splits
# of at most 8 MiB instead of one per core over half the history each. Spark schedules by task,
# without preemption: a streaming micro-batch waits until a running task ends, so the batch layer's
# tasks must be short for the speed layer to stay real-time while a run goes on (its pools:
# vendlab/fairscheduler.xml). Adaptive execution with 16 shuffle partitions on top was tried and not
# kept: a small history pays the extra tasks and stages at every run (docs/results.md, performance history).
BATCH_SQL_CONF = {
    "spark.sql.files.maxPartitionBytes": str(8 * 2**20),
    # A live run's master dataset is many small files (one per ingest micro-batch and task, ~270 KB):
    # at the default open cost (4 MB per file) a split held one or two of them, so a scan was a task
    # per file or two; 128 KB packs them into 8 MiB splits (docs/results.md, issue 15: lambda's batch layer).
    "spark.sql.files.openCostInBytes": str(128 * 2**10),
}


def batch_session(spark):
    """A session for the batch layer: the same SparkContext (cores, JVM, caches), its own SQL conf."""
    s = spark.newSession()
    for k, v in BATCH_SQL_CONF.items():
        s.conf.set(k, v)
    return s


def run_batch_loop(
    spark,
    profile: Profile,
    catalog: Catalog,
    store,
    interval_s: float,
    stop: threading.Event | None = None,
    on_run=None,
    before_run=None,
) -> None:
    """Run the batch layer every ``interval_s`` seconds until ``stop`` is set; ``before_run()`` and
    ``on_run(info)`` are called around each run."""
    stop = stop or threading.Event()
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", BATCH_POOL)
    bspark = batch_session(spark)
    while not stop.wait(interval_s):
        if before_run:
            before_run()
        info = run_batch(bspark, profile, catalog, store)
        if on_run:
            on_run(info)


class LambdaPipeline:
    name = "lambda"
    latency_jobs = [base.LAMBDA_SPEED]
    exact_views = ["serving"]

    def __init__(self, spark, profile: Profile, catalog: Catalog, settings):
        from vendlab.config import open_store

        self.spark, self.profile, self.catalog, self.settings = spark, profile, catalog, settings
        self.queries = []
        self.stop_event = threading.Event()
        self.store = None
        self._open_store = lambda: open_store(profile)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.runs: list[base.BatchViewInfo] = []
        self.reader_promise = ReaderPromise()

    def start(self) -> None:
        self.queries.append(start_ingest_job(self.spark, self.profile, catalog=self.catalog))
        self.queries.append(
            start_view_job(self.spark, self.profile, self.catalog, base.LAMBDA_SPEED, bucket_ms=self.profile.bucket_ms)
        )
        self.thread = threading.Thread(target=self._batch_loop, name="lambda-batch", daemon=True)
        self.thread.start()

    def _batch_loop(self) -> None:
        try:
            store = self._open_store()
            run_batch_loop(
                self.spark,
                self.profile,
                self.catalog,
                store,
                self.settings.batch_interval,
                self.stop_event,
                on_run=lambda info: self._on_run(info, store),
                # a reader fetches the version served just before the run (the one it may
                # still be completing when the run retires speed rows)
                before_run=lambda: self.reader_promise.fetch(store),
            )
        except BaseException as e:  # surfaced by check(), never swallowed
            if not self.stop_event.is_set():
                self.error = e

    def _on_run(self, info: base.BatchViewInfo, store) -> None:
        if not self.runs or self.runs[-1].version != info.version:
            self.runs.append(info)
        self.reader_promise.after_run(store)  # a reader of this or the previous version can complete it

    def check(self) -> None:
        from vendlab.pipelines import PipelineFailed

        for q in self.queries:
            if not q.isActive and q.exception() is not None:
                raise PipelineFailed(f"lambda query {q.name} failed: {q.exception()}")
        if self.error is not None:
            raise PipelineFailed(f"lambda batch layer failed: {self.error}")

    def views(self, store) -> dict:
        with store.snapshot():
            return lambda_views(store)

    def progress(self, store) -> str:
        with store.snapshot():
            v = lambda_views(store)
        info = self.runs[-1] if self.runs else None
        b = f", batch v{info.version} ({info.seconds:.1f} s)" if info else ""
        return f"lambda {sum(v['serving'].values()):,} items (batch {sum(v['batch'].values()):,}{b})"

    def finish(self, drained: bool) -> None:
        """Stop the batch scheduler, letting a run in progress publish first."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=600)

    def extra_summary(self, store) -> dict:
        runs = self.runs
        return {
            "handoffs": len(runs),
            "batch_runs": [
                {"version": r.version, "cutoff_bucket": r.cutoff_bucket, "events": r.events, "seconds": r.seconds}
                for r in runs
            ],
            # after each batch run: could a reader of the current and the previous version complete it?
            "reader_checks": list(self.reader_promise.checks),
        }

    def stop(self) -> None:
        self.stop_event.set()
        for q in self.queries:
            if q.isActive:
                q.stop()
