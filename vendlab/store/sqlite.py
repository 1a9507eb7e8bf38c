"""SQLite view store (embedded mode): one file in WAL mode, so readers never block the writer.

Exactly-once: ``apply_batch`` runs in one transaction that first inserts (job, batch_id) into
``applied``; if that row exists the whole batch is skipped. Deltas, markers and dead letters
of a micro-batch therefore land together or not at all.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable

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
CREATE TABLE IF NOT EXISTS batch_runs (
    version INTEGER PRIMARY KEY, cutoff_bucket INTEGER NOT NULL, published_ms INTEGER NOT NULL,
    events INTEGER NOT NULL, seconds REAL NOT NULL);
"""

DEAD_LETTER_RAW_CHARS = 2000


class SqliteStore(ViewStore):
    def __init__(self, path: Path | str, readonly: bool = False, timeout_s: float = 30.0):
        self.path = str(path)
        self.readonly = readonly
        self.timeout_s = timeout_s
        self._local = threading.local()
        if not readonly:
            con = self._con()
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if self.readonly:
                con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s,
                                      check_same_thread=False)
            else:
                con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None,
                                      check_same_thread=False)
                con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    # -- writes ---------------------------------------------------------------------------
    def apply_batch(self, job: str, batch_id: int, deltas: Iterable[Delta], markers: Iterable[Marker] = (),
                    dead: Iterable[DeadLetter] = (), rows: int = 0, visible_ms: int | None = None) -> bool:
        con = self._con()
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
                ((job, v, k, b, val) for v, k, b, val in deltas))
            con.executemany("INSERT OR IGNORE INTO markers VALUES (?,?,?,?)",
                            ((job, mid, created, now) for mid, created in markers))
            con.executemany("INSERT INTO dead_letters VALUES (?,?,?,?,?,?)",
                            ((job, batch_id, i, r, raw[:DEAD_LETTER_RAW_CHARS], pos)
                             for i, (r, raw, pos) in enumerate(dead)))
            con.execute("COMMIT")
            return True
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def publish_batch_view(self, info: BatchViewInfo, rows: Iterable[tuple[str, str, int]]) -> None:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("DELETE FROM batch_views WHERE version=?", (info.version,))
            con.executemany("INSERT INTO batch_views VALUES (?,?,?,?)",
                            ((info.version, v, k, val) for v, k, val in rows))
            con.execute("INSERT OR REPLACE INTO batch_runs VALUES (?,?,?,?,?)",
                        (info.version, info.cutoff_bucket, info.published_ms, info.events, info.seconds))
            # Older versions are no longer served; keep the two newest for readers in flight.
            con.execute("DELETE FROM batch_views WHERE version < ?", (info.version - 1,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def retire_buckets(self, job: str, before_bucket: int, views: Iterable[str]) -> int:
        views = list(views)
        cur = self._con().execute(
            f"DELETE FROM agg WHERE job=? AND bucket < ? AND view IN ({','.join('?' * len(views))})",
            (job, before_bucket, *views))
        return cur.rowcount

    # -- reads ----------------------------------------------------------------------------
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

    def current_batch(self) -> BatchViewInfo | None:
        row = self._con().execute("SELECT * FROM batch_runs ORDER BY version DESC LIMIT 1").fetchone()
        return BatchViewInfo(*row) if row else None

    def read_batch_view(self, version: int, view: str) -> dict[str, int]:
        return {k: int(v) for k, v in self._con().execute(
            "SELECT key, value FROM batch_views WHERE version=? AND view=? ORDER BY key", (version, view))}

    def batch_history(self) -> list[BatchViewInfo]:
        return [BatchViewInfo(*r) for r in self._con().execute("SELECT * FROM batch_runs ORDER BY version")]

    def marker_latencies(self, job: str) -> list[tuple[int, int]]:
        return list(self._con().execute(
            "SELECT created_ms, visible_ms FROM markers WHERE job=? ORDER BY created_ms", (job,)))

    def has_marker(self, job: str, marker_id: str) -> bool:
        return self._con().execute("SELECT 1 FROM markers WHERE job=? AND marker_id=?",
                                   (job, marker_id)).fetchone() is not None

    def micro_batches(self, job: str) -> list[tuple[int, int, int]]:
        return list(self._con().execute(
            "SELECT batch_id, applied_ms, rows FROM applied WHERE job=? ORDER BY batch_id", (job,)))

    def dead_letters(self, job: str, limit: int = 100) -> list[DeadLetter]:
        return list(self._con().execute(
            "SELECT reason, raw, position FROM dead_letters WHERE job=? ORDER BY batch_id, seq LIMIT ?",
            (job, limit)))

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
