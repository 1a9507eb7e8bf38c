"""Cassandra view store (compose profile), with cassandra-driver.

Cassandra has no multi-table transactions, so ``apply_batch`` is made exactly once per
(job, batch_id) with rows *keyed by the batch id* and a commit row written last:

1. ``applied`` has a row for (job, batch_id)? The batch was applied: return False.
2. ``batch_rows`` (job, batch_id) lists the rows an earlier attempt of this batch started to
   write (it crashed before its commit): delete those rows and its dead letters.
3. Write the list of rows this attempt writes into ``batch_rows`` (write-ahead).
4. Write the partial rows ``view_rows (job, view, bucket, key, batch_id) -> value``, the
   markers and the dead letters. Every write is an idempotent upsert of a full row.
5. Commit: insert ``applied (job, batch_id)``; then empty ``batch_rows`` for the batch.

A reader sums ``view_rows`` over the batch ids that ``applied`` holds, so a half-written
batch is invisible, and a replay (same batch id) overwrites its own rows instead of adding to
them. A batch that Spark replays after a crash has the same content; one that differs (the
Kafka validation consumer's batches are cut by time) is handled by step 2.

**Compaction** keeps a view's partition small over hours: every ``compact_rows`` rows a job has
written, ``compact`` folds the rows of its committed micro-batches into one row per (bucket, key)
with the batch id ``COMPACTED`` (-1), which readers count as committed. Each (bucket, key) is folded
by one single-partition batch (an upsert of the -1 row and a range delete of the folded batch ids):
Cassandra applies a single-partition batch as one mutation, atomically and in isolation, so a
reader (Grafana's sums included) sees either the rows or their fold, never both or neither. Only
committed batches are folded, and a committed batch is never written again (step 1), so nothing is
counted twice; the fold's writes carry a timestamp above every row they replace.

Every statement is prepared and marked idempotent; the retry policy retries server time-outs
and unavailable errors, and ``_execute`` retries client-side time-outs and lost connections a
few times (safe: every write is an upsert of a whole row or a delete). One writer per job at a
time (Spark runs one query per checkpoint; run one validation consumer).

Dashboards (grafana_templates/) read the same tables with CQL; Grafana sums every row, so a
batch that is half-written at that instant can show for a refresh; Python readers never see it.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from importlib import resources

from vendlab.store.base import BatchViewInfo, DeadLetter, Delta, Marker, ViewStore

KEYSPACE = "vendlab"
LAB = "lambda"  # partition of batch_runs
DEAD_LETTER_RAW_CHARS = 2000
IN_FLIGHT = 64  # concurrent async writes per call
COMPACTED = -1  # batch id of the row that holds the sum of a (bucket, key)'s folded micro-batches
COMPACT_ROWS = 20_000  # view rows a job writes between two compactions (0: never compact)
FOLDS_PER_BATCH = 100  # (bucket, key) folds per CQL batch: each fold's two statements stay together

# Names of the CQL tables this module uses (tests check they all exist in schema.cql).
TABLES = ("view_rows", "batch_rows", "applied", "job_views", "markers", "dead_letters", "batch_views", "batch_runs")

STATEMENTS = {
    # reads
    "is_applied": "SELECT batch_id FROM applied WHERE job = ? AND batch_id = ?",
    "applied_ids_between": "SELECT batch_id FROM applied WHERE job = ? AND batch_id >= ? AND batch_id <= ?",
    "last_batch": "SELECT batch_id FROM applied WHERE job = ? LIMIT 1",
    "micro_batches": "SELECT batch_id, applied_ms, row_count FROM applied WHERE job = ?",
    "pending_rows": "SELECT view_name, bucket, view_key FROM batch_rows WHERE job = ? AND batch_id = ?",
    "view_rows": "SELECT bucket, view_key, batch_id, value FROM view_rows WHERE job = ? AND view_name = ?",
    "view_rows_stamped": (
        "SELECT bucket, view_key, batch_id, value, WRITETIME(value) FROM view_rows WHERE job = ? AND view_name = ?"
    ),
    "view_rows_from": (
        "SELECT bucket, view_key, batch_id, value FROM view_rows WHERE job = ? AND view_name = ? AND bucket >= ?"
    ),
    "view_rows_before": ("SELECT bucket, view_key FROM view_rows WHERE job = ? AND view_name = ? AND bucket < ?"),
    "job_views": "SELECT view_name FROM job_views WHERE job = ?",
    "markers": "SELECT created_ms, visible_ms FROM markers WHERE job = ?",
    "has_marker": "SELECT marker_id FROM markers WHERE job = ? AND marker_id = ?",
    "dead_letters": "SELECT reason, raw, position FROM dead_letters WHERE job = ? LIMIT ?",
    "current_batch": (
        "SELECT version, cutoff_bucket, published_ms, events, seconds FROM batch_runs WHERE lab = ? LIMIT 1"
    ),
    "batch_runs": "SELECT version, cutoff_bucket, published_ms, events, seconds FROM batch_runs WHERE lab = ?",
    "batch_view": "SELECT view_key, value FROM batch_views WHERE version = ? AND view_name = ?",
    # writes (all idempotent)
    "del_view_row": (
        "DELETE FROM view_rows WHERE job = ? AND view_name = ? AND bucket = ? AND view_key = ? AND batch_id = ?"
    ),
    "del_dead_batch": "DELETE FROM dead_letters WHERE job = ? AND batch_id = ?",
    "put_pending": "INSERT INTO batch_rows (job, batch_id, view_name, bucket, view_key) VALUES (?, ?, ?, ?, ?)",
    "del_pending": "DELETE FROM batch_rows WHERE job = ? AND batch_id = ?",
    "put_job_view": "INSERT INTO job_views (job, view_name) VALUES (?, ?)",
    "put_view_row": (
        "INSERT INTO view_rows (job, view_name, bucket, view_key, batch_id, value) VALUES (?, ?, ?, ?, ?, ?)"
    ),
    "put_marker": (
        "INSERT INTO markers (job, marker_id, created_ms, visible_ms, latency_ms, visible_at) VALUES (?, ?, ?, ?, ?, ?)"
    ),
    "put_dead": ("INSERT INTO dead_letters (job, batch_id, seq, reason, raw, position) VALUES (?, ?, ?, ?, ?, ?)"),
    "put_applied": ("INSERT INTO applied (job, batch_id, applied_ms, applied_at, row_count) VALUES (?, ?, ?, ?, ?)"),
    "retire": "DELETE FROM view_rows WHERE job = ? AND view_name = ? AND bucket < ?",
    # compaction: the fold of a (bucket, key) and the delete of the batch ids it folded, in one batch
    "put_fold": (
        "INSERT INTO view_rows (job, view_name, bucket, view_key, batch_id, value) VALUES (?, ?, ?, ?, ?, ?) "
        "USING TIMESTAMP ?"
    ),
    "del_folded": (
        "DELETE FROM view_rows USING TIMESTAMP ? WHERE job = ? AND view_name = ? AND bucket = ? AND view_key = ? "
        "AND batch_id >= ? AND batch_id <= ?"
    ),
    "del_folded_row": (
        "DELETE FROM view_rows USING TIMESTAMP ? WHERE job = ? AND view_name = ? AND bucket = ? AND view_key = ? "
        "AND batch_id = ?"
    ),
    "del_batch_view": "DELETE FROM batch_views WHERE version = ? AND view_name = ?",
    "put_batch_view": "INSERT INTO batch_views (version, view_name, view_key, value) VALUES (?, ?, ?, ?)",
    "put_batch_run": (
        "INSERT INTO batch_runs (lab, version, cutoff_bucket, published_ms, published_at, events, "
        "seconds) VALUES (?, ?, ?, ?, ?, ?, ?)"
    ),
}

# A batch_rows entry that marks "an attempt of this batch started", even for a batch with no rows.
_PENDING_SENTINEL = ("", 0, "")


REPLICATION_VARIABLE = "VENDLAB_CASSANDRA_REPLICATION"  # the keyspace's replication factor (compose overlays: 3)
_REPLICATION_DEFAULT = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def schema_cql(keyspace: str = KEYSPACE, replication: int = 1) -> str:
    """The CQL schema file's text, for ``keyspace`` with ``replication`` copies of each row (SimpleStrategy:
    the stacks run one data centre; the file says 1, the scaled-out stacks ask for 3)."""
    text = resources.files("vendlab.store").joinpath("schema.cql").read_text()
    if replication != 1:
        if replication < 1:
            raise ValueError(f"replication {replication}: a keyspace needs at least 1 copy of each row")
        assert _REPLICATION_DEFAULT in text, "schema.cql's keyspace replication is not the one this code replaces"
        text = text.replace(
            _REPLICATION_DEFAULT,
            _REPLICATION_DEFAULT.replace("'replication_factor': 1", f"'replication_factor': {replication}"),
        )
    return (
        text
        if keyspace == KEYSPACE
        else text.replace(f"{KEYSPACE}.", f"{keyspace}.").replace(
            f"KEYSPACE IF NOT EXISTS {KEYSPACE}", f"KEYSPACE IF NOT EXISTS {keyspace}"
        )
    )


def schema_statements(keyspace: str = KEYSPACE, replication: int = 1) -> list[str]:
    """The schema file split into statements (comments dropped)."""
    lines = [ln.split("--", 1)[0] for ln in schema_cql(keyspace, replication).splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def replication_from_env(environ=os.environ) -> int:
    """``VENDLAB_CASSANDRA_REPLICATION`` (the compose overlays set 3), default 1."""
    text = environ.get(REPLICATION_VARIABLE, "").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{REPLICATION_VARIABLE}={text!r}: a whole number of copies, 1 or more")
    return int(text)


def new_batch():
    """An empty unlogged CQL batch (the folds of ``compact``; each batch touches one partition, where a
    batch is one mutation: atomic and isolated without the batch log)."""
    from cassandra.query import BatchStatement, BatchType

    return BatchStatement(batch_type=BatchType.UNLOGGED)


def _retryable_errors() -> tuple[type[BaseException], ...]:
    from cassandra import OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
    from cassandra.cluster import NoHostAvailable

    return OperationTimedOut, WriteTimeout, ReadTimeout, Unavailable, NoHostAvailable


def retry_policy(max_retries: int = 3):
    """Retries server-side time-outs and unavailable errors: safe, every statement is idempotent."""
    from cassandra.policies import RetryPolicy

    class IdempotentRetryPolicy(RetryPolicy):
        def on_read_timeout(
            self, query, consistency, required_responses, received_responses, data_retrieved, retry_num
        ):
            return (self.RETRY, consistency) if retry_num < max_retries else (self.RETHROW, None)

        def on_write_timeout(self, query, consistency, write_type, required_responses, received_responses, retry_num):
            return (self.RETRY, consistency) if retry_num < max_retries else (self.RETHROW, None)

        def on_unavailable(self, query, consistency, required_replicas, alive_replicas, retry_num):
            return (self.RETRY_NEXT_HOST, None) if retry_num < max_retries else (self.RETHROW, None)

        def on_request_error(self, query, consistency, error, retry_num):
            return (self.RETRY_NEXT_HOST, None) if retry_num < max_retries else (self.RETHROW, None)

    return IdempotentRetryPolicy()


def connect(hosts: Sequence[str], port: int = 9042, timeout_s: float = 20.0):
    """A cassandra-driver Session with the retry policy and LOCAL_QUORUM (QUORUM of RF 1 = ONE)."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        retry_policy=retry_policy(),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=timeout_s,
    )
    cluster = Cluster(
        list(hosts),
        port=port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=5,
        connect_timeout=timeout_s,
    )
    return cluster.connect()


def _split_host(hosts: Sequence[str]) -> tuple[list[str], int]:
    names, port = [], 9042
    for h in hosts:
        if ":" in h:
            h, p = h.rsplit(":", 1)
            port = int(p)
        names.append(h)
    return names, port


class CassandraStore(ViewStore):
    """ViewStore on Cassandra. ``session`` may be injected (tests pass a fake one)."""

    def __init__(
        self,
        hosts: Sequence[str] = ("cassandra1",),
        keyspace: str = KEYSPACE,
        session=None,
        create_schema: bool = False,
        replication: int = 1,
        max_attempts: int = 4,
        retry_backoff_s: float = 0.5,
        compact_rows: int = COMPACT_ROWS,
    ):
        if compact_rows < 0:
            raise ValueError(f"compact_rows {compact_rows}: rows between compactions, 0 (never) or more")
        self.keyspace = keyspace
        self.compact_rows = compact_rows
        self._written: dict[str, int] = defaultdict(int)  # view rows per job since its last compaction
        self._written_views: dict[str, set[str]] = defaultdict(set)
        self.replication = replication  # the keyspace's, when this store creates it (create_schema)
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.retries = 0  # client-side re-executions (observable in tests and logs)
        self._own_session = session is None
        if session is None:
            names, port = _split_host(hosts)
            session = connect(names, port)
        self.session = session
        if create_schema:
            self.ensure_schema()
        self.session.set_keyspace(keyspace)
        self._prepared: dict[str, object] = {}

    # -- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def is_transient(error: BaseException) -> bool:
        """Worth retrying the whole batch (BatchSink.apply): time-outs, unavailable, no host.
        Safe: every write is an idempotent upsert and the batch's commit row comes last."""
        return isinstance(error, _retryable_errors())

    def ensure_schema(self) -> None:
        for stmt in schema_statements(self.keyspace, self.replication):
            self._execute(stmt, None)

    def _stmt(self, name: str):
        st = self._prepared.get(name)
        if st is None:
            st = self.session.prepare(STATEMENTS[name])
            st.is_idempotent = True
            self._prepared[name] = st
        return st

    def _execute(self, stmt, params):
        errors = _retryable_errors()
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self.session.execute(stmt, params)
            except errors:
                if attempt == self.max_attempts:
                    raise
                self.retries += 1
                if self.retry_backoff_s:
                    time.sleep(self.retry_backoff_s * attempt)  # back-off between retries, not a wait for readiness

    def _q(self, name: str, *params) -> list:
        return list(self._execute(self._stmt(name), params) or [])

    def _write_many(self, name: str, rows: Iterable[tuple]) -> None:
        """Upserts with up to IN_FLIGHT requests in flight; a failed one is retried synchronously."""
        stmt = self._stmt(name)
        errors = _retryable_errors()
        window: list[tuple[object, tuple]] = []

        def drain():
            for fut, params in window:
                try:
                    fut.result()
                except errors:
                    self.retries += 1
                    self._execute(stmt, params)
            window.clear()

        for params in rows:
            window.append((self.session.execute_async(stmt, params), params))
            if len(window) >= IN_FLIGHT:
                drain()
        drain()

    # -- writes -----------------------------------------------------------------------------
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
        if self._q("is_applied", job, batch_id):
            return False
        agg: dict[tuple[str, int, str], int] = defaultdict(int)
        for view, key, bucket, value in deltas:
            agg[(view, int(bucket), key)] += int(value)
        now = visible_ms if visible_ms is not None else int(time.time() * 1000)
        # 2. a crashed attempt of this batch id: remove what it wrote
        started = {(r[0], r[1], r[2]) for r in self._q("pending_rows", job, batch_id)}
        if started:
            stale = [(job, v, b, k, batch_id) for v, b, k in started - set(agg) if (v, b, k) != _PENDING_SENTINEL]
            self._write_many("del_view_row", stale)
            self._execute(self._stmt("del_dead_batch"), (job, batch_id))
        # 3. write-ahead list of the rows this attempt writes
        self._write_many(
            "put_pending", [(job, batch_id, *_PENDING_SENTINEL)] + [(job, batch_id, v, b, k) for v, b, k in agg]
        )
        # 4. the rows, the markers, the dead letters
        self._write_many("put_job_view", [(job, v) for v in sorted({v for v, _, _ in agg})])
        self._write_many("put_view_row", [(job, v, b, k, batch_id, val) for (v, b, k), val in agg.items()])
        self._write_many(
            "put_marker", [(job, mid, int(created), now, now - int(created), now) for mid, created in markers]
        )
        self._write_many(
            "put_dead",
            [(job, batch_id, i, r, raw[:DEAD_LETTER_RAW_CHARS], pos) for i, (r, raw, pos) in enumerate(dead)],
        )
        # 5. commit, then drop the write-ahead list
        self._execute(self._stmt("put_applied"), (job, batch_id, now, now, int(rows)))
        self._execute(self._stmt("del_pending"), (job, batch_id))
        self._written[job] += len(agg)
        self._written_views[job].update(v for v, _, _ in agg)
        if self.compact_rows and self._written[job] >= self.compact_rows:
            self._compact_written(job)
        return True

    def _compact_written(self, job: str) -> None:
        """The compaction ``apply_batch`` runs every ``compact_rows`` rows, after a commit. A failure leaves
        every (bucket, key) folded or not (each fold is atomic) and is retried after the next commit."""
        views = sorted(self._written_views[job])
        try:
            self.compact(job, views)
        except _retryable_errors() as e:
            print(f"view store: compaction of {job} deferred ({type(e).__name__}: {str(e)[:200]})", flush=True)
            return
        self._written[job] = 0
        self._written_views[job].clear()

    def compact(self, job: str, views: Iterable[str] | None = None) -> int:
        """Fold the rows of ``job``'s committed micro-batches into one row per (view, bucket, key) (batch id
        ``COMPACTED``); every view the job wrote if ``views`` is None. Returns how many rows it removed.
        Reads and sums are unchanged; the writer of ``job`` calls it (one writer per job, module docstring)."""
        views = sorted(views) if views is not None else sorted(r[0] for r in self._q("job_views", job))
        removed = 0
        for view in views:
            groups: dict[tuple[int, str], list[tuple[int, int, int]]] = defaultdict(list)
            for bucket, key, batch_id, value, stamp in self._q("view_rows_stamped", job, view):
                groups[(int(bucket), key)].append((int(batch_id), int(value), int(stamp or 0)))
            ids = [r[0] for rows in groups.values() for r in rows if r[0] >= 0]
            if not ids:
                continue
            # the commits of the batches in this partition only (the writer is the only one committing them)
            committed = {int(r[0]) for r in self._q("applied_ids_between", job, min(ids), max(ids))}
            folds = []
            for (bucket, key), rows in groups.items():
                done = [r for r in rows if r[0] == COMPACTED or r[0] in committed]
                if not any(r[0] >= 0 for r in done):
                    continue  # a lone fold (a lone committed row is folded too: readers then read few commits)
                # above every row it replaces, so that no clock of an earlier writer can hide the fold
                stamp = max(int(time.time() * 1_000_000), max(r[2] for r in done) + 1)
                top = max(r[0] for r in done)
                items = [("put_fold", (job, view, bucket, key, COMPACTED, sum(r[1] for r in done), stamp))]
                if all(r[0] in committed for r in rows if 0 <= r[0] <= top):
                    items.append(("del_folded", (stamp, job, view, bucket, key, 0, top)))
                else:  # a row of an uncommitted attempt lies in the range: delete the folded rows one by one
                    items += [("del_folded_row", (stamp, job, view, bucket, key, r[0])) for r in done if r[0] >= 0]
                folds.append(items)
                removed += len(done) - 1
            for i in range(0, len(folds), FOLDS_PER_BATCH):
                batch = new_batch()
                for items in folds[i : i + FOLDS_PER_BATCH]:
                    for name, params in items:
                        batch.add(self._stmt(name), params)
                batch.is_idempotent = True  # the same folds again give the same rows
                self._execute(batch, None)
        return removed

    def publish_batch_view(self, info: BatchViewInfo, rows: Iterable[tuple[str, str, int]]) -> None:
        rows = list(rows)
        views = sorted({v for v, _, _ in rows})
        # A crashed earlier attempt of this version may have left other keys: clear first.
        self._write_many("del_batch_view", [(info.version, v) for v in views])
        self._write_many("put_batch_view", [(info.version, v, k, int(val)) for v, k, val in rows])
        # Commit point: from here on current_batch() serves this version.
        self._execute(
            self._stmt("put_batch_run"),
            (
                LAB,
                info.version,
                info.cutoff_bucket,
                info.published_ms,
                info.published_ms,
                info.events,
                float(info.seconds),
            ),
        )
        # Older versions are no longer served; keep the two newest for readers in flight.
        old = [r[0] for r in self._q("batch_runs", LAB) if r[0] < info.version - 1]
        self._write_many("del_batch_view", [(ver, v) for ver in old for v in views])

    def retire_buckets(self, job: str, before_bucket: int, views: Iterable[str]) -> int:
        n = 0
        for view in views:
            n += len(self._q("view_rows_before", job, view, before_bucket))
            self._execute(self._stmt("retire"), (job, view, before_bucket))
        return n

    # -- reads ------------------------------------------------------------------------------
    def last_batch_id(self, job: str) -> int:
        rows = self._q("last_batch", job)
        return int(rows[0][0]) if rows else -1

    def _committed_rows(self, job: str, rows) -> list:
        """The rows of committed batches (and folds): a batch counts if it was committed when the read began
        (the newest commit then, read first; batches commit in order), so a batch half-written while its rows
        are read is not counted. Only the commits of the batch ids the rows carry are read."""
        last = self.last_batch_id(job)
        rows = list(rows())
        ids = [int(r[2]) for r in rows if 0 <= int(r[2]) <= last]
        committed = {int(r[0]) for r in self._q("applied_ids_between", job, min(ids), last)} if ids else set()
        return [r for r in rows if int(r[2]) in committed or r[2] == COMPACTED]

    def read_view(self, job: str, view: str, min_bucket: int | None = None) -> dict[str, int]:
        rows = self._committed_rows(
            job,
            lambda: (
                self._q("view_rows", job, view)
                if min_bucket is None
                else self._q("view_rows_from", job, view, min_bucket)
            ),
        )
        out: dict[str, int] = defaultdict(int)
        for _bucket, key, _batch_id, value in rows:
            out[key] += int(value)
        return dict(sorted(out.items()))

    def read_view_buckets(self, job: str, view: str, min_bucket: int) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = defaultdict(int)
        for bucket, key, _batch_id, value in self._committed_rows(
            job, lambda: self._q("view_rows_from", job, view, min_bucket)
        ):
            out[(key, int(bucket))] += int(value)
        return dict(out)

    def current_batch(self) -> BatchViewInfo | None:
        rows = self._q("current_batch", LAB)
        return _info(rows[0]) if rows else None

    def read_batch_view(self, version: int, view: str) -> dict[str, int]:
        return {k: int(v) for k, v in sorted(self._q("batch_view", version, view))}

    def batch_history(self) -> list[BatchViewInfo]:
        return sorted((_info(r) for r in self._q("batch_runs", LAB)), key=lambda i: i.version)

    def marker_latencies(self, job: str) -> list[tuple[int, int]]:
        return sorted((int(c), int(v)) for c, v in self._q("markers", job))

    def has_marker(self, job: str, marker_id: str) -> bool:
        return bool(self._q("has_marker", job, marker_id))

    def micro_batches(self, job: str) -> list[tuple[int, int, int]]:
        return sorted((int(b), int(a), int(r)) for b, a, r in self._q("micro_batches", job))

    def dead_letters(self, job: str, limit: int = 100) -> list[DeadLetter]:
        return [(r[0], r[1], r[2]) for r in self._q("dead_letters", job, limit)]

    def close(self) -> None:
        if self._own_session:
            self.session.cluster.shutdown()


def _info(row) -> BatchViewInfo:
    version, cutoff, published, events, seconds = row
    return BatchViewInfo(int(version), int(cutoff), int(published), int(events), float(seconds))
