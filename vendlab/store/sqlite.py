"""SQLite view store (embedded mode): one file in WAL mode, so readers never block the writer.

Exactly-once: ``apply_batch`` runs in one transaction that first inserts (job, batch_id) into
``applied``; if that row exists the whole batch is skipped. Deltas, markers and dead letters
of a micro-batch therefore land together or not at all.

Store trouble (docs/reliability.md): every write transaction is retried with back-off while
SQLite reports a transient error (the file locked by another writer, the disk full, an I/O
error), each retry announced on stderr, for up to ``retry_for_s``; then ``StoreUnavailable``
says what failed and what to do. A failed attempt is rolled back whole, and a batch applied
by an attempt whose success went unnoticed is skipped by the next one: retries never count
twice. A writer waits at most ``attempt_timeout_s`` for the write lock per attempt.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from vendlab.store.base import BatchViewInfo, DeadLetter, Delta, Marker, ViewStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS agg (
    job TEXT NOT NULL, view TEXT NOT NULL, key TEXT NOT NULL, bucket INTEGER NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (job, view, key, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied (
    job TEXT NOT NULL, batch_id INTEGER NOT NULL, applied_ms INTEGER NOT NULL, rows INTEGER NOT NULL,
    PRIMARY KEY (job, batch_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS markers (
    job TEXT NOT NULL, marker_id TEXT NOT NULL, created_ms INTEGER NOT NULL, visible_ms INTEGER NOT NULL,
    PRIMARY KEY (job, marker_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    job TEXT NOT NULL, batch_id INTEGER NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL,
    raw TEXT NOT NULL, position TEXT NOT NULL, PRIMARY KEY (job, batch_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_views (
    version INTEGER NOT NULL, view TEXT NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (version, view, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bindings (
    job TEXT PRIMARY KEY, query_id TEXT NOT NULL, bound_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batch_runs (
    version INTEGER PRIMARY KEY, cutoff_bucket INTEGER NOT NULL, published_ms INTEGER NOT NULL,
    events INTEGER NOT NULL, seconds REAL NOT NULL);
"""

DEAD_LETTER_RAW_CHARS = 2000


# Substrings of the messages of transient sqlite3.OperationalError: worth retrying.
TRANSIENT_ERRORS = (
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
)


class StoreUnavailable(RuntimeError):
    """The view store stayed unwritable (locked, full, I/O errors) for the whole retry period."""


def _hint(error: Exception) -> str:
    m = str(error).lower()
    if "locked" in m:
        return "another process holds the write lock on the file"
    if "full" in m:
        return "the disk (or the file's size limit) is full: free some space"
    return "the file cannot be written: check the disk and its permissions"


class SqliteStore(ViewStore):
    def __init__(
        self,
        path: Path | str,
        readonly: bool = False,
        timeout_s: float = 30.0,
        attempt_timeout_s: float = 2.0,
        retry_for_s: float = 600.0,
        backoff_s: float = 0.25,
        max_backoff_s: float = 8.0,
        log=None,
    ):
        self.path = str(path)
        self.readonly = readonly
        self.timeout_s = timeout_s  # readers: how long to wait for a lock
        self.attempt_timeout_s = attempt_timeout_s  # writers: per attempt, then back off and retry
        self.retry_for_s = retry_for_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.retries = 0  # retried write attempts (observable in tests)
        self._local = threading.local()
        if not readonly:

            def init(con):
                con.execute("PRAGMA journal_mode=WAL")
                con.executescript(SCHEMA)

            self._retrying("creating the tables", init)

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if self.readonly:
                con = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s, check_same_thread=False
                )
            else:
                con = sqlite3.connect(
                    self.path, timeout=self.attempt_timeout_s, isolation_level=None, check_same_thread=False
                )
                con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    @staticmethod
    def is_transient(error: BaseException) -> bool:
        """Worth retrying: the file locked, the disk full, an I/O error."""
        return isinstance(error, sqlite3.OperationalError) and any(t in str(error).lower() for t in TRANSIENT_ERRORS)

    def _retrying(self, what: str, fn):
        """fn(connection), retried with back-off while the error is transient."""
        t0 = time.monotonic()
        delay, attempt = self.backoff_s, 1
        while True:
            try:
                return fn(self._con())
            except sqlite3.OperationalError as e:
                if not self.is_transient(e):
                    raise
                elapsed = time.monotonic() - t0
                if elapsed + delay > self.retry_for_s:
                    raise StoreUnavailable(
                        f"view store {self.path}: {what} failed {attempt} times over {elapsed:.0f} s: {e} "
                        f"({_hint(e)}). Nothing of it was written. Fix the store, then run again: "
                        f"`vendlab run --resume --data-dir DIR` continues from the checkpoints."
                    ) from e
                self.log(
                    f"vendlab: view store {self.path}: {what} failed: {e} ({_hint(e)}); "
                    f"retrying in {delay:.2g} s (attempt {attempt + 1}; giving up after "
                    f"{self.retry_for_s:.0f} s)"
                )
                self.retries += 1
                if "i/o" in str(e).lower() or "unable to open" in str(e).lower():
                    self.close()  # a fresh connection for the next attempt
                time.sleep(delay)
                delay, attempt = min(delay * 2, self.max_backoff_s), attempt + 1

    @staticmethod
    def _rollback(con: sqlite3.Connection) -> None:
        # SQLite may have rolled back already (a full disk does): a second ROLLBACK would raise
        # and hide the real error.
        if con.in_transaction:
            con.execute("ROLLBACK")

    # -- writes ---------------------------------------------------------------------------
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
        deltas, markers, dead = list(deltas), list(markers), list(dead)  # re-read by a retry
        return self._retrying(
            f"applying {job} batch {batch_id}",
            lambda con: self._apply(con, job, batch_id, deltas, markers, dead, rows, visible_ms),
        )

    def _apply(self, con, job, batch_id, deltas, markers, dead, rows, visible_ms) -> bool:
        con.execute("BEGIN IMMEDIATE")
        try:
            if con.execute("SELECT 1 FROM applied WHERE job=? AND batch_id=?", (job, batch_id)).fetchone():
                con.execute("ROLLBACK")
                return False
            now = visible_ms if visible_ms is not None else int(time.time() * 1000)
            con.execute("INSERT INTO applied VALUES (?,?,?,?)", (job, batch_id, now, rows))
            con.executemany(
                "INSERT INTO agg VALUES (?,?,?,?,?) ON CONFLICT (job, view, key, bucket) "
                "DO UPDATE SET value = value + excluded.value",
                ((job, v, k, b, val) for v, k, b, val in deltas),
            )
            con.executemany(
                "INSERT OR IGNORE INTO markers VALUES (?,?,?,?)", ((job, mid, created, now) for mid, created in markers)
            )
            con.executemany(
                "INSERT INTO dead_letters VALUES (?,?,?,?,?,?)",
                ((job, batch_id, i, r, raw[:DEAD_LETTER_RAW_CHARS], pos) for i, (r, raw, pos) in enumerate(dead)),
            )
            con.execute("COMMIT")
            return True
        except BaseException:
            self._rollback(con)
            raise

    def publish_batch_view(self, info: BatchViewInfo, rows: Iterable[tuple[str, str, int]]) -> None:
        rows = list(rows)

        def publish(con):
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM batch_views WHERE version=?", (info.version,))
                con.executemany(
                    "INSERT INTO batch_views VALUES (?,?,?,?)", ((info.version, v, k, val) for v, k, val in rows)
                )
                con.execute(
                    "INSERT OR REPLACE INTO batch_runs VALUES (?,?,?,?,?)",
                    (info.version, info.cutoff_bucket, info.published_ms, info.events, info.seconds),
                )
                # Older versions are no longer served; keep the two newest for readers in flight.
                con.execute("DELETE FROM batch_views WHERE version < ?", (info.version - 1,))
                con.execute("COMMIT")
            except BaseException:
                self._rollback(con)
                raise

        self._retrying(f"publishing batch view {info.version}", publish)

    def retire_buckets(self, job: str, before_bucket: int, views: Iterable[str]) -> int:
        views = list(views)
        return self._retrying(
            f"retiring {job} buckets < {before_bucket}",
            lambda con: (
                con.execute(
                    f"DELETE FROM agg WHERE job=? AND bucket < ? AND view IN ({','.join('?' * len(views))})",
                    (job, before_bucket, *views),
                ).rowcount
            ),
        )

    def bind(self, job: str, query_id: str) -> None:
        self._retrying(
            f"binding {job} to its query",
            lambda con: con.execute(
                "INSERT OR REPLACE INTO bindings VALUES (?,?,?)", (job, query_id, int(time.time() * 1000))
            ),
        )

    def move_job(self, source: str, target: str) -> None:
        """Replace everything of job ``target`` by job ``source``'s rows, in one transaction (a
        rebuilt view version becomes the served one)."""

        def move(con):
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM agg WHERE job=?", (target,))
                con.execute("DELETE FROM applied WHERE job=?", (target,))
                con.execute("DELETE FROM markers WHERE job=?", (target,))
                con.execute("DELETE FROM dead_letters WHERE job=?", (target,))
                con.execute("DELETE FROM bindings WHERE job=?", (target,))
                con.execute("UPDATE agg SET job=? WHERE job=?", (target, source))
                con.execute("UPDATE applied SET job=? WHERE job=?", (target, source))
                con.execute("UPDATE markers SET job=? WHERE job=?", (target, source))
                con.execute("UPDATE dead_letters SET job=? WHERE job=?", (target, source))
                con.execute("UPDATE bindings SET job=? WHERE job=?", (target, source))
                con.execute("COMMIT")
            except BaseException:
                self._rollback(con)
                raise

        self._retrying(f"making {source} the served {target}", move)

    def drop_jobs(self, jobs: Iterable[str], batch_views: bool = False) -> None:
        """Delete every row of ``jobs`` (and, with ``batch_views``, every published batch view)."""
        jobs = list(jobs)

        def drop(con):
            con.execute("BEGIN IMMEDIATE")
            try:
                for job in jobs:
                    con.execute("DELETE FROM agg WHERE job=?", (job,))
                    con.execute("DELETE FROM applied WHERE job=?", (job,))
                    con.execute("DELETE FROM markers WHERE job=?", (job,))
                    con.execute("DELETE FROM dead_letters WHERE job=?", (job,))
                    con.execute("DELETE FROM bindings WHERE job=?", (job,))
                if batch_views:
                    con.execute("DELETE FROM batch_views")
                    con.execute("DELETE FROM batch_runs")
                con.execute("COMMIT")
            except BaseException:
                self._rollback(con)
                raise

        self._retrying(f"removing the rows of {', '.join(jobs)}", drop)

    # -- reads ----------------------------------------------------------------------------
    def binding(self, job: str) -> str | None:
        row = self._con().execute("SELECT query_id FROM bindings WHERE job=?", (job,)).fetchone()
        return row[0] if row else None

    def jobs(self) -> list[str]:
        """Every job with applied micro-batches or a binding (kappa, lambda_speed, validation, kappa_v2...)."""
        return [r[0] for r in self._con().execute("SELECT job FROM applied UNION SELECT job FROM bindings ORDER BY 1")]

    def last_batch_id(self, job: str) -> int:
        row = self._con().execute("SELECT max(batch_id) FROM applied WHERE job=?", (job,)).fetchone()
        return -1 if row[0] is None else row[0]

    def read_view(self, job: str, view: str, min_bucket: int | None = None) -> dict[str, int]:
        q = "SELECT key, sum(value) FROM agg WHERE job=? AND view=?"
        args: tuple = (job, view)
        if min_bucket is not None:
            q += " AND bucket >= ?"
            args += (min_bucket,)
        return {k: int(v) for k, v in self._con().execute(q + " GROUP BY key ORDER BY key", args)}

    def read_view_buckets(self, job: str, view: str, min_bucket: int) -> dict[tuple[str, int], int]:
        return {
            (k, int(b)): int(v)
            for k, b, v in self._con().execute(
                "SELECT key, bucket, sum(value) FROM agg WHERE job=? AND view=? AND bucket >= ? GROUP BY key, bucket",
                (job, view, min_bucket),
            )
        }

    def current_batch(self) -> BatchViewInfo | None:
        row = self._con().execute("SELECT * FROM batch_runs ORDER BY version DESC LIMIT 1").fetchone()
        return BatchViewInfo(*row) if row else None

    def read_batch_view(self, version: int, view: str) -> dict[str, int]:
        return {
            k: int(v)
            for k, v in self._con().execute(
                "SELECT key, value FROM batch_views WHERE version=? AND view=? ORDER BY key", (version, view)
            )
        }

    def batch_history(self) -> list[BatchViewInfo]:
        return [BatchViewInfo(*r) for r in self._con().execute("SELECT * FROM batch_runs ORDER BY version")]

    def marker_latencies(self, job: str) -> list[tuple[int, int]]:
        return list(
            self._con().execute("SELECT created_ms, visible_ms FROM markers WHERE job=? ORDER BY created_ms", (job,))
        )

    def has_marker(self, job: str, marker_id: str) -> bool:
        return (
            self._con().execute("SELECT 1 FROM markers WHERE job=? AND marker_id=?", (job, marker_id)).fetchone()
            is not None
        )

    def micro_batches(self, job: str) -> list[tuple[int, int, int]]:
        return list(
            self._con().execute("SELECT batch_id, applied_ms, rows FROM applied WHERE job=? ORDER BY batch_id", (job,))
        )

    def dead_letters(self, job: str, limit: int = 100) -> list[DeadLetter]:
        return list(
            self._con().execute(
                "SELECT reason, raw, position FROM dead_letters WHERE job=? ORDER BY batch_id, seq LIMIT ?",
                (job, limit),
            )
        )

    def snapshot(self):
        """A read transaction: every read inside it sees one consistent state of the file."""
        return _Snapshot(self._con())

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class _Snapshot:
    def __init__(self, con: sqlite3.Connection):
        self.con = con
        self.own = not con.in_transaction

    def __enter__(self):
        if self.own:
            self.con.execute("BEGIN")
        return self

    def __exit__(self, *exc):
        if self.own:
            self.con.execute("COMMIT")
