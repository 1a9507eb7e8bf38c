"""Lambda: a batch layer over the whole history, a speed layer over what the batch has not yet seen,
and serving that adds them with an exact hand-off.

    log ─┬─► ingest job (``lambda_ingest``) ──► master dataset (Parquet, append-only, log positions kept)
         │                                          └─► batch loop ──► batch view + cutoff (published together)
         └─► speed job (``lambda_speed``, views bucketed by event time) ──► speed view
    serving = batch view + the speed view's buckets at or after the cutoff

**The hand-off rule.** The speed job aggregates into event-time buckets of ``bucket_ms``. A batch run
reads one snapshot of the master dataset, takes the cutoff = (the oldest of the log partitions' newest
event times) - lateness, rounded down to a bucket, counts only the unique valid events before it, and
publishes (batch view, cutoff) atomically (vendlab.jobs.batch); serving reads the batch view plus the speed buckets at
or after the cutoff, in one snapshot of the store (``read_parts``, the one place that merges them); the
speed buckets the batch covers are then retired. An event is counted by the batch or by the speed view,
never by both: serving can lag (a late event below the cutoff waits for the next run), never double count.

The batch loop is a plain scheduler: run, publish, wait ``batch_interval``, repeat; in embedded mode a
thread beside the two streaming queries, on compose its own process on YARN (``lambda-batch``) while
ingest and speed run on the Spark standalone master (``lambda-ingest``, ``lambda-speed``). Each run reads
the master dataset as it is at that moment; the hand-off is defined by the published cutoff, not by
timing, so there is nothing else to synchronise. Details and the tests that show it exact across many
hand-offs: docs/lambda.md; the lab as a whole: docs/architecture.md.
"""

from __future__ import annotations

import threading

from vendlab.architectures.spec import BATCH, INGEST, VIEW, YARN, Architecture, Job, Pipeline, PipelineFailed
from vendlab.invariants import ReaderPromise
from vendlab.store import base

INGEST_JOB = Job(
    kind=INGEST,
    role="ingest",
    store_job="lambda_ingest",  # the ingest query's name and checkpoint (vendlab.jobs.ingest.INGEST)
    title="lambda's ingest job",
    command="lambda-ingest",
    process="lambda-ingest",
)
SPEED_JOB = Job(
    kind=VIEW,
    role="speed",
    store_job=base.LAMBDA_SPEED,
    title="lambda's speed job",
    command="lambda-speed",
    process="lambda-speed",
    bucketed=True,
)
BATCH_JOB = Job(
    kind=BATCH,
    role="batch",
    store_job=base.LAMBDA_BATCH,
    title="lambda's batch layer",
    command="lambda-batch",
    process="lambda-batch",
    runs_on=YARN,
)


def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(set(a) | set(b))}


_CURRENT = object()


def read_parts(store, view: str = base.ITEMS_BY_PRODUCT, info=_CURRENT) -> dict:
    """{"batch", "realtime", "serving"}: realtime is the speed view's part at or after the batch view's
    cutoff (``info``: a BatchViewInfo or None for no batch view yet; by default the store's current one);
    serving = batch + realtime."""
    if info is _CURRENT:
        info = store.current_batch()
    batch = store.read_batch_view(info.version, view) if info else {}
    realtime = store.read_view(base.LAMBDA_SPEED, view, min_bucket=info.cutoff_bucket if info else None)
    return {"batch": batch, "realtime": realtime, "serving": add(batch, realtime)}


def make_reader(store):
    """view -> serving, all views against the batch view current when the reader was made."""
    info = store.current_batch()
    return lambda view: read_parts(store, view, info)["serving"]


def is_present(store) -> bool:
    return store.last_batch_id(base.LAMBDA_SPEED) >= 0 or store.current_batch() is not None


def dashboard_views(store, parts: dict) -> dict:
    info = store.current_batch()
    return {**parts, "cutoff_bucket": info.cutoff_bucket if info else None}


# -- the batch layer ---------------------------------------------------------------------------------
BATCH_POOL = "lambda_batch"

# The batch layer's own SQL settings (a session of its own on the same SparkContext): input splits
# of at most 8 MiB instead of one per core over half the history each. Spark schedules by task,
# without preemption: a streaming micro-batch waits until a running task ends, so the batch layer's
# tasks must be short for the speed layer to stay real-time while a run goes on (its pools:
# vendlab/fairscheduler.xml). Adaptive execution with 16 shuffle partitions on top was tried and not
# kept: a small history pays the extra tasks and stages at every run (docs/history/results-2026-11.md, performance history).
BATCH_SQL_CONF = {
    "spark.sql.files.maxPartitionBytes": str(8 * 2**20),
    # A live run's master dataset is many small files (one per ingest micro-batch and task, ~270 KB):
    # at the default open cost (4 MB per file) a split held one or two of them, so a scan was a task
    # per file or two; 128 KB packs them into 8 MiB splits (docs/history/results-2026-11.md, issue 15: lambda's batch layer).
    "spark.sql.files.openCostInBytes": str(128 * 2**10),
}


def batch_session(spark, max_tasks: int = 0):
    """A session for the batch layer: the same SparkContext (cores, JVM, caches), its own SQL conf;
    with ``max_tasks``, its jobs run at most that many tasks at a time (``Profile.shared_batch_tasks``:
    measured in docs/history/results-2026-11.md, issue 15's afternoon round)."""
    from vendlab.jobs.batch import MAX_TASKS_CONF

    s = spark.newSession()
    for k, v in BATCH_SQL_CONF.items():
        s.conf.set(k, v)
    if max_tasks:
        s.conf.set(MAX_TASKS_CONF, str(max_tasks))
        s.conf.set("spark.sql.shuffle.partitions", str(max_tasks))
    return s


def run_batch_loop(
    spark,
    profile,
    catalog,
    store,
    interval_s: float,
    stop: threading.Event | None = None,
    on_run=None,
    before_run=None,
    max_tasks: int = 0,
) -> None:
    """Run the batch layer every ``interval_s`` seconds until ``stop`` is set; ``before_run()`` and
    ``on_run(info)`` are called around each run; ``max_tasks``: see ``batch_session``."""
    from vendlab.jobs.batch import run_batch

    stop = stop or threading.Event()
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", BATCH_POOL)
    bspark = batch_session(spark, max_tasks)
    while not stop.wait(interval_s):
        if before_run:
            before_run()
        info = run_batch(bspark, profile, catalog, store)
        if on_run:
            on_run(info)


class LambdaPipeline(Pipeline):
    """Ingest and speed as streaming queries (``Pipeline``), plus the batch loop in a thread."""

    def __init__(self, arch: Architecture, spark, profile, catalog, settings):
        from vendlab.config import open_store

        # the ingest writes at least twice per batch interval, so that every batch run finds new history
        profile = profile.with_(ingest_trigger_s=min(profile.ingest_trigger_s, settings.batch_interval / 2))
        super().__init__(arch, spark, profile, catalog, settings)
        self.stop_event = threading.Event()
        self._open_store = lambda: open_store(profile)
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.runs: list[base.BatchViewInfo] = []
        self.reader_promise = ReaderPromise()

    def start(self) -> None:
        super().start()
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
                # in embedded mode the batch layer shares this JVM's cores with the streaming queries
                max_tasks=self.profile.shared_batch_tasks,
            )
        except BaseException as e:  # surfaced by check(), never swallowed
            if not self.stop_event.is_set():
                self.error = e

    def _on_run(self, info: base.BatchViewInfo, store) -> None:
        if not self.runs or self.runs[-1].version != info.version:
            self.runs.append(info)
        self.reader_promise.after_run(store)  # a reader of this or the previous version can complete it

    def check(self) -> None:
        super().check()
        if self.error is not None:
            raise PipelineFailed(f"lambda batch layer failed: {self.error}")

    def progress(self, store) -> str:
        v = self.views(store)
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
        super().stop()


LAMBDA = Architecture(
    name="lambda",
    description="batch layer over the master dataset + speed layer after the batch cutoff, merged at serving",
    jobs=(INGEST_JOB, SPEED_JOB, BATCH_JOB),
    latency_job=base.LAMBDA_SPEED,
    view_name="serving",
    view_title="lambda's serving view",
    view_detail="batch + speed",
    parts={
        "batch": "lambda's current batch view",
        "realtime": "lambda's speed view at or after the batch view's cutoff (job lambda_speed)",
        "serving": "lambda's serving view = lambda_batch + lambda_realtime",
    },
    read_parts=read_parts,
    is_present=is_present,
    make_reader=make_reader,
    make_pipeline=LambdaPipeline,
    dashboard_views=dashboard_views,
)
