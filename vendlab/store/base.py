"""The view store interface: what the jobs write and what serving and dashboards read.

Every view is *additive*: a set of rows ``(job, view, key, bucket) -> value`` (integers:
items, cents, counts), read as a sum over buckets. A streaming job hands in the deltas of
one micro-batch with ``apply_batch``; the store applies them **exactly once per
(job, batch_id)**, which makes a replayed micro-batch after a crash harmless.

Jobs (``job`` column): ``kappa`` (kappa real-time view), ``lambda_speed`` (lambda real-time
view, bucketed by event time), ``validation`` (independent consumer). The lambda batch view is
published whole with ``publish_batch_view`` together with its cutoff.

Two implementations: ``SqliteStore`` (embedded, one file in WAL mode) and ``CassandraStore``
(compose). ``open_store(profile)`` picks one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

# (view, key, bucket, value)
Delta = tuple[str, str, int, int]
# (marker_id, created_ms)
Marker = tuple[str, int]
# (reason, raw line truncated, position)
DeadLetter = tuple[str, str, str]

# Jobs
KAPPA = "kappa"
LAMBDA_SPEED = "lambda_speed"
LAMBDA_BATCH = "lambda_batch"
VALIDATION = "validation"

# Additive views every job computes (see vendlab.jobs.views)
ITEMS_BY_PRODUCT = "items_by_product"
ITEMS_BY_CATEGORY = "items_by_category"
REVENUE_BY_CATEGORY = "revenue_cents_by_category"
DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True)
class BatchViewInfo:
    version: int
    cutoff_bucket: int  # the batch view covers every bucket < cutoff_bucket
    published_ms: int
    events: int  # master-dataset rows the batch read
    seconds: float  # how long the batch run took


class ViewStore(ABC):
    @abstractmethod
    def apply_batch(
        self,
        job: str,
        batch_id: int,
        deltas: Iterable[Delta],
        markers: Iterable[Marker] = (),
        dead: Iterable[DeadLetter] = (),
        rows: int = 0,
        visible_ms: int | None = None,
    ) -> bool:
        """Apply one micro-batch exactly once; False if (job, batch_id) was applied before."""

    @abstractmethod
    def last_batch_id(self, job: str) -> int:
        """The highest batch id applied for ``job``, -1 if none."""

    @abstractmethod
    def read_view(self, job: str, view: str, min_bucket: int | None = None) -> dict[str, int]:
        """Sum of the view's rows per key, over buckets >= min_bucket (all if None)."""

    def read_view_buckets(self, job: str, view: str, min_bucket: int) -> dict[tuple[str, int], int]:
        """The view's rows per (key, bucket), buckets >= min_bucket (lambda's reader checks,
        ``vendlab.invariants``)."""
        raise NotImplementedError

    @abstractmethod
    def publish_batch_view(self, info: BatchViewInfo, rows: Iterable[tuple[str, str, int]]) -> None:
        """Publish a whole batch view (rows: view, key, value) and its cutoff, atomically."""

    @abstractmethod
    def current_batch(self) -> BatchViewInfo | None:
        """The batch view that serving uses now."""

    @abstractmethod
    def read_batch_view(self, version: int, view: str) -> dict[str, int]: ...

    @abstractmethod
    def batch_history(self) -> list[BatchViewInfo]: ...

    @abstractmethod
    def retire_buckets(self, job: str, before_bucket: int, views: Iterable[str]) -> int:
        """Delete the job's rows of ``views`` in buckets < before_bucket (covered by a batch view)."""

    @abstractmethod
    def marker_latencies(self, job: str) -> list[tuple[int, int]]:
        """(created_ms, visible_ms) of every marker the job has made visible."""

    @abstractmethod
    def has_marker(self, job: str, marker_id: str) -> bool: ...

    @abstractmethod
    def micro_batches(self, job: str) -> list[tuple[int, int, int]]:
        """(batch_id, applied_ms, rows) of the job's applied micro-batches, in order."""

    @abstractmethod
    def dead_letters(self, job: str, limit: int = 100) -> list[DeadLetter]: ...

    # Which streaming query (checkpoint id) a job's applied batches belong to (vendlab.datadir).
    # Stores that do not record it (Cassandra: the cluster's checkpoints live on HDFS) say None.
    def binding(self, job: str) -> str | None:
        return None

    def bind(self, job: str, query_id: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not record query bindings")

    def close(self) -> None:
        pass
