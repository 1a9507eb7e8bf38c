"""What an architecture declares (``Architecture``, ``Job``) and the one runnable pipeline built from it.

An architecture of the lab is data plus two small functions: the jobs it runs (each a streaming view job,
lambda's ingest job or lambda's batch loop), the job whose latency markers measure it, the view a user
reads and how to read it from a view store. Everything else in vendlab (the CLI's choices, the runner,
serving, the dashboard, ``answer``, the bench, ``vendlab job`` and the compose start scripts) reads these
declarations from the registry, ``vendlab.architectures``; docs/architecture.md says how to add one.

This module imports no Spark: the registry is imported by every command, Spark only where a job starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from vendlab.store import base
from vendlab.store.base import ViewStore

# Job kinds, in the order the warm-up runs them and ``vendlab job`` lists them: the streaming view jobs
# first (the latency-critical code), then what feeds the batch layer, then the batch layer.
VIEW = "view"  # a Spark Structured Streaming job: log -> additive views in the store (vendlab.jobs.streaming)
INGEST = "ingest"  # a Spark streaming job: log -> master dataset (vendlab.jobs.ingest)
BATCH = "batch"  # a loop of batch runs over the master dataset, each publishing a batch view + cutoff
KINDS = (VIEW, INGEST, BATCH)

STANDALONE = "standalone"  # compose: spark-submit to the Spark standalone master
YARN = "yarn"  # compose: spark-submit to YARN (lambda's batch layer)


class PipelineFailed(RuntimeError):
    """A pipeline's query or loop died (``Pipeline.check``)."""


@dataclass(frozen=True)
class Job:
    kind: str  # VIEW | INGEST | BATCH
    role: str  # its name inside the architecture: "view", "speed", "ingest", "batch" (warm-up job names)
    store_job: str  # the store's job name (views, markers, checkpoint): "kappa", "lambda_speed", "lambda_ingest"...
    title: str  # how messages name it: "kappa's view job"
    command: str  # `vendlab job NAME` on the cluster: "kappa", "lambda-speed", ...
    process: str  # the compose service (process) that runs the command: "kappa-job", "lambda-speed", ...
    runs_on: str = STANDALONE  # compose: STANDALONE (spark-submit to the Spark master) or YARN
    cores: int = 1  # compose, standalone: executor cores it takes from the workers
    bucketed: bool = False  # VIEW: views bucketed by event time (profile.bucket_ms), so a batch cutoff can split them


@dataclass(frozen=True)
class Architecture:
    name: str  # user-facing: `vendlab run --arch NAME`, JSON keys, view names NAME_PART
    description: str  # one line
    jobs: tuple[Job, ...]  # in start order
    latency_job: str  # the store job whose markers measure event-to-view latency
    view_name: str  # the part of its views a user reads (the one that must be exact): "realtime", "serving"
    view_title: str  # what `answer` says it reads: "kappa's real-time view", "lambda's serving view"
    parts: dict[str, str]  # the parts of its views, in order, -> what `vendlab views` says NAME_PART is
    read_parts: Callable[[ViewStore, str], dict[str, dict[str, int]]]  # (store, view) -> {part: {key: value}}
    is_present: Callable[[ViewStore], bool]  # does this store hold its output?
    view_detail: str = ""  # what that view is made of, if more than one job: "batch + speed"
    # (store) -> a function view -> the user-facing view, reading what it needs once (call inside a snapshot)
    make_reader: Callable[[ViewStore], Callable[[str], dict[str, int]]] | None = None
    # (spark, profile, catalog, settings) -> its runnable pipeline (default: Pipeline, its jobs as streaming queries)
    make_pipeline: Callable | None = None
    # (store, view) -> the JSON of its views for the dashboard, if more than read_parts (lambda adds its cutoff)
    dashboard_views: Callable | None = None

    def job(self, kind: str) -> Job | None:
        """Its first job of ``kind`` (None if it has none)."""
        return next((j for j in self.jobs if j.kind == kind), None)

    def jobs_of(self, kind: str) -> list[Job]:
        return [j for j in self.jobs if j.kind == kind]

    @property
    def latency(self) -> Job:
        """The job whose markers measure its latency."""
        return next(j for j in self.jobs if j.store_job == self.latency_job)

    @property
    def latency_label(self) -> str:
        """How tables name its latency job: "kappa", "lambda speed"."""
        role = self.latency.role
        return self.name if role == "view" else f"{self.name} {role}"

    def present(self, store: ViewStore) -> bool:
        return self.is_present(store)

    def views(self, store: ViewStore, view: str = base.ITEMS_BY_PRODUCT) -> dict[str, dict[str, int]]:
        """Every part of its views ({part: {key: value}}); call inside a snapshot for one consistent state."""
        return self.read_parts(store, view)

    def read(self, store: ViewStore, view: str = base.ITEMS_BY_PRODUCT) -> dict[str, int]:
        """The user-facing view."""
        return self.reader(store)(view)

    def reader(self, store: ViewStore) -> Callable[[str], dict[str, int]]:
        if self.make_reader is not None:
            return self.make_reader(store)
        return lambda view: self.read_parts(store, view)[self.view_name]

    def view_json(self, store: ViewStore, parts: dict[str, dict[str, int]]) -> dict:
        return self.dashboard_views(store, parts) if self.dashboard_views is not None else dict(parts)

    def pipeline(self, spark, profile, catalog, settings) -> Pipeline:
        make = self.make_pipeline or Pipeline
        return make(self, spark, profile, catalog, settings)


def snapshot(store: ViewStore):
    """The store's consistent-read context if it has one (SQLite), else a no-op."""
    snap = getattr(store, "snapshot", None)
    return snap() if snap is not None else contextlib.nullcontext()


def start_query(job: Job, spark, profile, catalog, name: str | None = None, available_now: bool = False):
    """Start a VIEW or INGEST job as a streaming query (under ``name`` instead of its store job: the warm-up)."""
    if job.kind == VIEW:
        from vendlab.jobs.streaming import start_view_job

        bucket_ms = profile.bucket_ms if job.bucketed else None
        kw = {"available_now": True} if available_now else {}
        return start_view_job(spark, profile, catalog, name or job.store_job, bucket_ms=bucket_ms, **kw)
    if job.kind == INGEST:
        from vendlab.jobs.ingest import start_ingest_job

        kw = {"available_now": True} if available_now else {"trigger_seconds": profile.ingest_trigger_s}
        return start_ingest_job(spark, profile, catalog=catalog, **kw)
    raise ValueError(f"job {job.command} is a {job.kind} job, not a streaming query")


class Pipeline:
    """An architecture running in embedded mode: each of its streaming jobs as a query of one Spark
    session (kappa's is its whole pipeline; lambda's subclass adds the batch loop)."""

    def __init__(self, arch: Architecture, spark, profile, catalog, settings):
        self.arch = arch
        self.name = arch.name
        self.latency_jobs = [arch.latency_job]
        self.exact_views = [arch.view_name]  # the views that must equal validation and the manifest
        self.spark, self.profile, self.catalog, self.settings = spark, profile, catalog, settings
        self.queries: list = []

    def start(self) -> None:
        for job in self.arch.jobs:
            if job.kind in (VIEW, INGEST):
                self.queries.append(start_query(job, self.spark, self.profile, self.catalog))

    def check(self) -> None:
        for q in self.queries:
            if not q.isActive and q.exception() is not None:
                raise PipelineFailed(f"{self.name} query {q.name} failed: {q.exception()}")

    def views(self, store) -> dict:
        with snapshot(store):
            return self.arch.views(store)

    def progress(self, store) -> str:
        items = sum(self.views(store)[self.arch.view_name].values())
        return f"{self.name} {items:,} items"

    def finish(self, drained: bool) -> None:
        pass

    def extra_summary(self, store) -> dict:
        return {}

    def stop(self) -> None:
        for q in self.queries:
            if q.isActive:
                q.stop()
