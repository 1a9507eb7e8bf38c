"""Kappa: one streaming job from the log to the real-time view, and nothing else.

    log ──► view job (Spark Structured Streaming, job ``kappa``) ──► real-time view ──► the user

Every event is read once from the log (Kafka on compose, segment files embedded), parsed,
deduplicated by ``event_id`` within the watermark and added to additive views in the store, one
micro-batch at a time, exactly once per (job, batch id). What a user reads (``realtime``) is that
view as it stands. History is recomputed by replaying the log into a new view version
(``vendlab replay``), not by a batch layer. On compose the job runs on the Spark standalone master
(process ``kappa-job``, ``vendlab job kappa``). docs/architecture.md describes the whole lab.
"""

from __future__ import annotations

from vendlab.architectures.spec import VIEW, Architecture, Job
from vendlab.store import base

VIEW_JOB = Job(
    kind=VIEW,
    role="view",
    store_job=base.KAPPA,
    title="kappa's view job",
    command="kappa",
    process="kappa-job",
    cores=2,
)


def read_parts(store, view: str = base.ITEMS_BY_PRODUCT) -> dict[str, dict[str, int]]:
    return {"realtime": store.read_view(base.KAPPA, view)}


def is_present(store) -> bool:
    return store.last_batch_id(base.KAPPA) >= 0


KAPPA = Architecture(
    name="kappa",
    description="one streaming job: log -> real-time view",
    jobs=(VIEW_JOB,),
    latency_job=base.KAPPA,
    view_name="realtime",
    view_title="kappa's real-time view",
    parts={"realtime": "kappa's real-time view (job kappa)"},
    read_parts=read_parts,
    is_present=is_present,
    make_reader=lambda store: lambda view: store.read_view(base.KAPPA, view),
)
