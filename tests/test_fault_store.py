"""View store trouble: the SQLite file locked by another writer for 10 s, a full disk (a real
tiny filesystem when this test may mount one, and SQLite's own size limit everywhere), a
store that never comes back, and Cassandra unavailable past the driver's retries. The writers
retry with back-off and say so on stderr; afterwards the views are exact, every batch counted
once."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import record

from vendlab.config import embedded
from vendlab.jobs import streaming
from vendlab.jobs.streaming import BatchSink, start_view_job
from vendlab.oracle import Validator
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore, StoreUnavailable

DELTAS = [(base.ITEMS_BY_PRODUCT, f"p{i}", 0, i + 1) for i in range(3000)]
EXPECTED = {f"p{i}": i + 1 for i in range(3000)}

LOCKER = r"""
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
print("released", flush=True)
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    """Another process takes the write lock of the file for ``seconds``."""
    p = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_file_locked_for_10_s_during_a_kappa_run(spark, tmp_path, log_factory, capfd):
    catalog, manifest = log_factory(tmp_path, seed=31, events=8_000, segment_lines=4_000, dup_rate=0.01, bad_rate=0.01)
    profile = embedded(tmp_path)
    store = SqliteStore(profile.sqlite_path)  # the tables exist
    held = {}

    def lock_now(job, batch_id, stage):
        # right before the sink writes micro-batch 0, another process takes the write lock for
        # 10 s; the validation consumer starts writing at the same moment
        if (batch_id, stage) == (0, "before_apply"):
            held["t0"] = time.monotonic()
            held["locker"] = hold_lock(profile.sqlite_path, 10)
            held["validation"] = threading.Thread(
                target=lambda: Validator(profile.log_dir, catalog, SqliteStore(profile.sqlite_path)).poll()
            )
            held["validation"].start()
        if (batch_id, stage) == (0, "after_apply"):
            held["applied_after"] = time.monotonic() - held["t0"]

    q = start_view_job(spark, profile, catalog, base.KAPPA, available_now=True, fault_hook=lock_now)
    q.awaitTermination()
    held["validation"].join()
    assert held["locker"].wait(5) == 0 and held["locker"].stdout.read().strip() == "released"
    assert q.exception() is None
    assert held["applied_after"] >= 9.5  # nothing got through while the lock was held
    err = capfd.readouterr().err
    assert "applying kappa batch 0 failed: database is locked (another process holds the write lock" in err
    assert "applying validation batch 0 failed: database is locked" in err
    assert "retrying in" in err
    expected = {k: v for k, v in manifest.items_by_product.items() if v}
    assert store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT) == expected
    assert store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == expected
    assert store.read_view(base.KAPPA, base.DEAD_LETTERS) == manifest.malformed_by_reason
    assert store.read_view(base.VALIDATION, base.DEAD_LETTERS) == manifest.malformed_by_reason
    assert [b for b, _, _ in store.micro_batches(base.KAPPA)] == [0]
    record(
        "sqlite_locked_10s",
        kappa_batch_applied_after_s=round(held["applied_after"], 1),
        kappa_retry_messages=err.count("applying kappa batch 0 failed"),
        validation_retry_messages=err.count("applying validation batch 0 failed"),
        exact=True,
    )


def _fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` up to the last byte."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return filler


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (needs the right to mount: root in a container, else skipped)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tiny filesystem here ({r.stderr.strip() or 'mount failed'}); "
            "the SQLite size-limit test covers the full-disk path"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_on_a_tiny_filesystem(tiny_fs):
    messages = []
    filler = None

    def log(msg):  # the store's stderr line; on the third, an operator frees some space
        messages.append(msg)
        if len(messages) == 3:
            filler.unlink()

    store = SqliteStore(tiny_fs / "views.sqlite", backoff_s=0.05, max_backoff_s=0.2, log=log)
    store.apply_batch(base.KAPPA, 0, [(base.ITEMS_BY_PRODUCT, "cola", 0, 5)])
    filler = _fill(tiny_fs)
    assert store.apply_batch(base.KAPPA, 1, DELTAS, dead=[("bad_time", "x" * 500, "seg-1")] * 200)
    assert len(messages) == 3 and store.retries == 3
    assert "applying kappa batch 1 failed: database or disk is full" in messages[0]
    assert "free some space" in messages[0] and "retrying in" in messages[0]
    assert store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT) == {**EXPECTED, "cola": 5}
    assert len(store.dead_letters(base.KAPPA, limit=10_000)) == 200
    assert not store.apply_batch(base.KAPPA, 1, DELTAS)  # once, whatever the retries
    assert store._con().execute("PRAGMA integrity_check").fetchone() == ("ok",)
    record("disk_full_tmpfs", retries=store.retries, first_message=messages[0], exact=True)


def test_disk_full_as_sqlite_size_limit(tmp_path):
    """Portable twin of the tiny filesystem: SQLite's max_page_count gives the very same
    SQLITE_FULL error; raising the limit is freeing the space."""
    messages = []

    def log(msg):
        messages.append(msg)
        if len(messages) == 4:
            store._con().execute("PRAGMA max_page_count = 1000000")

    store = SqliteStore(tmp_path / "views.sqlite", backoff_s=0.05, max_backoff_s=0.2, log=log)
    store.apply_batch(base.KAPPA, 0, [(base.ITEMS_BY_PRODUCT, "cola", 5, 5)])
    pages = store._con().execute("PRAGMA page_count").fetchone()[0]
    store._con().execute(f"PRAGMA max_page_count = {pages + 2}")
    assert store.apply_batch(base.KAPPA, 1, DELTAS)
    assert len(messages) == 4 and all("database or disk is full" in m for m in messages)
    assert store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT) == {**EXPECTED, "cola": 5}
    assert [b for b, _, _ in store.micro_batches(base.KAPPA)] == [0, 1]
    record("disk_full_sqlite_limit", retries=store.retries, exact=True)


def test_a_store_that_stays_locked_gives_up_with_a_clear_message(tmp_path):
    path = tmp_path / "views.sqlite"
    store = SqliteStore(path, attempt_timeout_s=0.2, retry_for_s=1.5, backoff_s=0.1, log=lambda m: None)
    locker = hold_lock(path, 5)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailable) as e:
            store.apply_batch(base.KAPPA, 0, DELTAS)
        assert time.monotonic() - t0 < 3
    finally:
        locker.kill()
        locker.wait()
    msg = str(e.value)
    record("sqlite_locked_forever", gave_up_after_s=round(time.monotonic() - t0, 1), message=msg)
    assert str(path) in msg and "database is locked" in msg and "another process holds the write lock" in msg
    assert "Nothing of it was written" in msg and "vendlab run --resume" in msg
    assert store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT) == {}
    assert store.apply_batch(base.KAPPA, 0, DELTAS)  # the lock gone: it goes through


@pytest.mark.slow
def test_publish_and_retire_are_retried_too(tmp_path):
    path = tmp_path / "views.sqlite"
    store = SqliteStore(path, attempt_timeout_s=0.2, backoff_s=0.2, max_backoff_s=0.5, log=lambda m: None)
    locker = hold_lock(path, 1.5)
    store.publish_batch_view(base.BatchViewInfo(1, 100, 0, 10, 0.1), [(base.ITEMS_BY_PRODUCT, "cola", 3)])
    assert store.retries >= 1
    locker.wait()
    assert store.current_batch().version == 1
    locker = hold_lock(path, 1.0)
    store.retire_buckets(base.LAMBDA_SPEED, 100, [base.ITEMS_BY_PRODUCT])
    locker.wait()


# -- the sink's own retry: a store down longer than its own retries (Cassandra) ------------------


def _cassandra_store(session):
    from vendlab.store.cassandra import CassandraStore

    return CassandraStore(session=session, max_attempts=2, retry_backoff_s=0)


def test_sink_retries_a_cassandra_outage_and_applies_the_batch_once(monkeypatch, capfd):
    from cassandra.cluster import NoHostAvailable
    from test_cassandra_store import SCHEMA, FakeSession, parse_schema

    session = FakeSession(parse_schema(SCHEMA.read_text()))
    monkeypatch.setattr(streaming, "open_store", lambda profile: _cassandra_store(session))
    monkeypatch.setattr(streaming, "SINK_BACKOFF_S", 0.01)
    sink = BatchSink(embedded("/tmp/unused"), base.KAPPA, None)
    down = lambda: NoHostAvailable("injected: no host", {})  # noqa: E731
    # the outage starts in the middle of the batch's writes and outlasts the store's own retries
    # (the write and 2 synchronous attempts: 3 failures) three times; a failed attempt never
    # writes the commit row
    session.fail(lambda cql, p: cql.startswith("INSERT INTO view_rows") and p[3] == "p1500", times=9, exc=down)
    deltas = DELTAS
    assert sink.apply(sink.store(), 5, deltas, [("mk-1", 1000)], [("bad_time", "{}", "t@1")], 3000)
    err = capfd.readouterr().err
    assert err.count("kappa micro-batch 5: the view store failed (NoHostAvailable") == 3
    check = _cassandra_store(session)
    assert check.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT) == EXPECTED
    assert check.micro_batches(base.KAPPA)[0][0] == 5 and len(check.micro_batches(base.KAPPA)) == 1
    assert check.dead_letters(base.KAPPA) == [("bad_time", "{}", "t@1")]
    assert not sink.apply(sink.store(), 5, deltas, [], [], 3000)  # a replay: skipped
    record("cassandra_down_past_driver_retries", sink_retries=3, applied_once=True)


def test_sink_does_not_retry_what_is_not_transient(monkeypatch):
    class Broken:
        calls = 0

        def apply_batch(self, *a, **k):
            Broken.calls += 1
            raise ValueError("a bug, not an outage")

        is_transient = staticmethod(SqliteStore.is_transient)

    sink = BatchSink(embedded("/tmp/unused"), base.KAPPA, None)
    with pytest.raises(ValueError):
        sink.apply(Broken(), 0, [], [], [], 0)
    assert Broken.calls == 1


def test_sink_gives_up_after_its_retry_period(monkeypatch, tmp_path):
    from cassandra import OperationTimedOut

    class Down:
        calls = 0
        is_transient = staticmethod(lambda e: isinstance(e, OperationTimedOut))

        def apply_batch(self, *a, **k):
            Down.calls += 1
            raise OperationTimedOut("injected")

        def close(self):
            pass

    monkeypatch.setattr(streaming, "open_store", lambda profile: Down())
    monkeypatch.setattr(streaming, "SINK_BACKOFF_S", 0.05)
    sink = BatchSink(embedded(tmp_path), base.KAPPA, None)
    sink.retry_for_s = 0.5
    with pytest.raises(OperationTimedOut):
        sink.apply(Down(), 0, [], [], [], 0)
    assert 3 <= Down.calls <= 6
