"""CassandraStore's statement logic, without a server.

A fake session interprets the few CQL shapes the store uses (INSERT upserts by primary key,
SELECT/DELETE with equality and range restrictions, LIMIT, clustering order, USING TIMESTAMP and
WRITETIME, a batch applied all or nothing) over tables
parsed from vendlab/store/schema.cql, records every statement, and can fail on demand: a
retryable time-out (the store must retry) or a crash (the store must stay exactly once).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from cassandra import OperationTimedOut

from vendlab.store import base
from vendlab.store.base import BatchViewInfo
from vendlab.store.cassandra import STATEMENTS, TABLES, CassandraStore, schema_statements
from vendlab.store.sqlite import SqliteStore

SCHEMA = Path(__file__).resolve().parents[1] / "vendlab" / "store" / "schema.cql"


def parse_schema(text: str) -> dict[str, dict]:
    """table -> {columns: [...], pk: [...], ck: [...], desc: {col}}"""
    tables = {}
    body = "\n".join(ln.split("--", 1)[0] for ln in text.splitlines())
    for m in re.finditer(r"CREATE TABLE IF NOT EXISTS\s+(?:\w+\.)?(\w+)\s*\((.*?)\)\s*(WITH[^;]*)?;", body, re.S):
        name, cols_text, with_text = m.group(1), m.group(2), m.group(3) or ""
        pkm = re.search(r"PRIMARY KEY\s*\(\s*\(([^)]*)\)\s*,?\s*([^)]*)\)", cols_text)
        pk = [c.strip() for c in pkm.group(1).split(",") if c.strip()]
        ck = [c.strip() for c in pkm.group(2).split(",") if c.strip()]
        cols = [ln.strip().split()[0] for ln in cols_text[: pkm.start()].split(",") if ln.strip()]
        desc = set(re.findall(r"(\w+)\s+DESC", with_text))
        tables[name] = {"columns": cols, "pk": pk, "ck": ck, "desc": desc}
    return tables


class Crash(RuntimeError):
    """A failure the store must not retry (the process dies)."""


class FakeFuture:
    def __init__(self, result=None, error=None):
        self._result, self._error = result, error

    def result(self):
        if self._error:
            raise self._error
        return self._result


class FakePrepared:
    def __init__(self, cql):
        self.query_string = cql
        self.is_idempotent = False


class FakeBatch:
    """Stands for the driver's BatchStatement (``vendlab.store.cassandra.new_batch``): the statements in order."""

    def __init__(self):
        self.items: list[tuple[FakePrepared, tuple]] = []
        self.is_idempotent = False

    def add(self, stmt, params):
        self.items.append((stmt, tuple(params)))


@pytest.fixture(autouse=True)
def fake_batches(monkeypatch):
    monkeypatch.setattr("vendlab.store.cassandra.new_batch", FakeBatch)


class FakeSession:
    def __init__(self, tables: dict):
        self.schema = tables
        self.clock = 0  # the write timestamp of a statement without USING TIMESTAMP
        self.batches: list[FakeBatch] = []
        self.data: dict[str, dict[tuple, dict]] = {t: {} for t in tables}
        self.log: list[tuple[str, tuple]] = []
        self.keyspace = None
        self._fail: list = []  # [predicate, remaining, exception factory]

    # failure injection
    def fail(self, when, times=1, exc=lambda: OperationTimedOut("injected time-out")):
        self._fail.append([when, times, exc])

    def set_keyspace(self, ks):
        self.keyspace = ks

    def prepare(self, cql):
        return FakePrepared(cql)

    def execute_async(self, stmt, params=None):
        try:
            return FakeFuture(self.execute(stmt, params))
        except Exception as e:  # noqa: BLE001 - handed to the caller like a driver future
            return FakeFuture(error=e)

    def execute(self, stmt, params=None):
        if isinstance(stmt, FakeBatch):  # all or nothing: a failure of one statement leaves the data as it was
            for f in self._fail:
                if f[1] > 0 and any(f[0](st.query_string, p) for st, p in stmt.items):
                    f[1] -= 1
                    raise f[2]()
            self.batches.append(stmt)
            for st, p in stmt.items:
                self.log.append((st.query_string, p))
                self._run(st.query_string, list(p))
            return []
        cql = stmt.query_string if isinstance(stmt, FakePrepared) else stmt
        params = tuple(params or ())
        for f in self._fail:
            if f[1] > 0 and f[0](cql, params):
                f[1] -= 1
                raise f[2]()
        self.log.append((cql, params))
        return self._run(cql, list(params))

    # -- a tiny CQL interpreter -------------------------------------------------------------
    def _run(self, cql, params):
        s = " ".join(cql.split())
        if s.upper().startswith("CREATE"):
            return []
        self.clock = max(self.clock + 1, int(time.time() * 1_000_000))  # microseconds, as the driver's
        m = re.match(r"INSERT INTO (?:\w+\.)?(\w+) \(([^)]*)\) VALUES \(([^)]*)\)( USING TIMESTAMP \?)?$", s)
        if m:
            t = self.schema[m.group(1)]
            cols = [c.strip() for c in m.group(2).split(",")]
            assert set(cols) <= set(t["columns"]), cols
            stamp = params.pop() if m.group(4) else self.clock
            row = dict(zip(cols, params))
            key = tuple(row[c] for c in t["pk"] + t["ck"])
            old = self.data[m.group(1)].get(key)
            if old is None or old["WRITETIME(value)"] <= stamp:  # the newer write wins, as in Cassandra
                self.data[m.group(1)].setdefault(key, {}).update(row, **{"WRITETIME(value)": stamp})
            return []
        m = re.match(
            r"(SELECT (.*?)|DELETE) FROM (?:\w+\.)?(\w+)( USING TIMESTAMP \?)? WHERE (.*?)(?: LIMIT (\?|\d+))?$", s
        )
        assert m, f"unsupported CQL in fake: {s}"
        table, where, limit = m.group(3), m.group(5), m.group(6)
        stamp = params.pop(0) if m.group(4) else self.clock
        t = self.schema[table]
        conds = []
        for part in where.split(" AND "):
            c, op, v = part.split()
            assert c in t["columns"], (c, table)
            conds.append((c, op, params.pop(0) if v == "?" else v))
        if limit == "?":
            limit = params.pop(0)
        ops = {"=": lambda a, b: a == b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}
        keys = [k for k, r in self.data[table].items() if all(ops[op](r.get(c), v) for c, op, v in conds)]
        if m.group(1) == "DELETE":
            for k in keys:
                if self.data[table][k]["WRITETIME(value)"] <= stamp:  # a tombstone hides older writes only
                    del self.data[table][k]
            return []
        rows = [self.data[table][k] for k in keys]
        for c in reversed(t["ck"]):
            rows.sort(key=lambda r: r[c], reverse=c in t["desc"])
        if limit is not None:
            rows = rows[: int(limit)]
        cols = [c.strip() for c in m.group(2).split(",")]
        assert set(cols) <= set(t["columns"]) | {"WRITETIME(value)"}, cols
        return [tuple(r.get(c) for c in cols) for r in rows]


@pytest.fixture()
def tables():
    return parse_schema(SCHEMA.read_text())


@pytest.fixture()
def session(tables):
    return FakeSession(tables)


@pytest.fixture()
def store(session):
    return CassandraStore(session=session, retry_backoff_s=0)


DELTAS = [
    ("items_by_product", "cola", 0, 3),
    ("items_by_product", "water", 0, 2),
    ("items_by_category", "unhealthy", 0, 3),
    ("items_by_product", "cola", 0, 1),
]


def test_schema_has_every_table_and_statement_column(tables):
    assert set(TABLES) <= set(tables)
    for name, cql in STATEMENTS.items():
        table = re.search(r"(?:FROM|INTO) (\w+)", cql).group(1)
        assert table in tables, name
        for ident in re.findall(
            r"\b([a-z_]+)\b", cql.split(table, 1)[1] if "SELECT" not in cql else cql.replace(f"FROM {table}", " ")
        ):
            if ident.upper() in {"WHERE", "AND", "LIMIT", "VALUES", "SELECT", "DELETE"}:
                continue
            assert ident in tables[table]["columns"], (name, ident)


def test_schema_statements_split_and_keyspace():
    stmts = schema_statements()
    assert stmts[0].startswith("CREATE KEYSPACE IF NOT EXISTS vendlab")
    assert all(s.startswith("CREATE") and "IF NOT EXISTS" in s for s in stmts)
    other = schema_statements("lab2")
    assert "CREATE TABLE IF NOT EXISTS lab2.view_rows" in " ".join(other)


def test_statements_are_prepared_idempotent(store, session):
    store.apply_batch("kappa", 0, DELTAS, markers=[("mk-1", 1000)], rows=5, visible_ms=1500)
    assert store._prepared and all(p.is_idempotent for p in store._prepared.values())
    assert session.keyspace == "vendlab"


def test_apply_batch_exactly_once_and_sums(store):
    assert store.apply_batch("kappa", 0, DELTAS, markers=[("mk-1", 1000)], rows=5, visible_ms=1500)
    assert not store.apply_batch("kappa", 0, DELTAS, rows=5)  # replay: skipped
    assert store.apply_batch("kappa", 1, [("items_by_product", "cola", 0, 10)], rows=1, visible_ms=1600)
    assert store.read_view("kappa", "items_by_product") == {"cola": 14, "water": 2}
    assert store.read_view("kappa", "items_by_category") == {"unhealthy": 3}
    assert store.last_batch_id("kappa") == 1 and store.last_batch_id("lambda_speed") == -1
    assert store.micro_batches("kappa") == [(0, 1500, 5), (1, 1600, 1)]
    assert store.marker_latencies("kappa") == [(1000, 1500)]
    assert store.has_marker("kappa", "mk-1") and not store.has_marker("kappa", "mk-2")


def test_retryable_failure_is_retried(store, session):
    session.fail(lambda cql, p: cql.startswith("INSERT INTO view_rows"), times=1)
    session.fail(lambda cql, p: cql.startswith("INSERT INTO applied"), times=1)
    assert store.apply_batch("kappa", 0, DELTAS, rows=4)
    assert store.retries == 2
    assert store.read_view("kappa", "items_by_product") == {"cola": 4, "water": 2}


def test_gives_up_after_max_attempts(session):
    store = CassandraStore(session=session, retry_backoff_s=0, max_attempts=2)
    session.fail(lambda cql, p: cql.startswith("INSERT INTO applied"), times=5)
    with pytest.raises(OperationTimedOut):
        store.apply_batch("kappa", 0, DELTAS)
    assert store.read_view("kappa", "items_by_product") == {}  # never committed: invisible


def test_crash_before_commit_then_replay_with_other_content(store, session):
    session.fail(lambda cql, p: cql.startswith("INSERT INTO applied"), times=1, exc=lambda: Crash("killed"))
    first = DELTAS + [("items_by_product", "cookies", 0, 7)]
    with pytest.raises(Crash):
        store.apply_batch("validation", 42, first, dead=[("bad_time", "{}", "t-0@1")])
    assert store.read_view("validation", "items_by_product") == {}  # partial rows are not counted
    # The retry of batch 42 covers other events (the consumer cut it at another offset).
    assert store.apply_batch("validation", 42, [("items_by_product", "cola", 0, 1)])
    assert store.read_view("validation", "items_by_product") == {"cola": 1}
    assert store.dead_letters("validation") == []  # the crashed attempt's dead letter is gone
    assert session.data["batch_rows"] == {}  # write-ahead list emptied on commit
    # Every stale row was deleted, not just hidden.
    assert {k[3] for k in session.data["view_rows"]} == {"cola"}


def test_identical_replay_after_crash_counts_once(store, session):
    session.fail(lambda cql, p: cql.startswith("INSERT INTO applied"), times=1, exc=lambda: Crash("killed"))
    with pytest.raises(Crash):
        store.apply_batch("kappa", 7, DELTAS)
    assert store.apply_batch("kappa", 7, DELTAS)
    assert store.read_view("kappa", "items_by_product") == {"cola": 4, "water": 2}


def test_buckets_min_bucket_and_retire(store):
    store.apply_batch(
        "lambda_speed",
        0,
        [
            ("items_by_product", "cola", 10, 1),
            ("items_by_product", "cola", 11, 2),
            ("items_by_product", "water", 12, 5),
            ("dead_letters", "bad_time", 0, 1),
        ],
    )
    assert store.read_view("lambda_speed", "items_by_product", min_bucket=11) == {"cola": 2, "water": 5}
    assert store.retire_buckets("lambda_speed", 12, ["items_by_product"]) == 2  # the two cola buckets
    assert store.read_view("lambda_speed", "items_by_product") == {"water": 5}
    assert store.read_view("lambda_speed", "dead_letters") == {"bad_time": 1}  # not a bucketed view


def test_publish_batch_view_and_history(store):
    assert store.current_batch() is None
    store.publish_batch_view(BatchViewInfo(1, 100, 5000, 10, 1.5), [("items_by_product", "cola", 3)])
    store.publish_batch_view(
        BatchViewInfo(2, 120, 6000, 20, 1.0), [("items_by_product", "cola", 5), ("items_by_product", "water", 1)]
    )
    store.publish_batch_view(BatchViewInfo(3, 130, 7000, 30, 1.0), [("items_by_product", "cola", 6)])
    assert store.current_batch() == BatchViewInfo(3, 130, 7000, 30, 1.0)
    assert [i.version for i in store.batch_history()] == [1, 2, 3]
    assert store.read_batch_view(3, "items_by_product") == {"cola": 6}
    assert store.read_batch_view(2, "items_by_product") == {"cola": 5, "water": 1}  # kept for readers in flight
    assert store.read_batch_view(1, "items_by_product") == {}  # older versions deleted


def test_same_answers_as_sqlite(store, tmp_path):
    """The two stores are interchangeable: one scripted sequence, the same reads."""
    lite = SqliteStore(tmp_path / "v.sqlite")
    script = [
        ("apply", ("kappa", 0, DELTAS, [("mk-1", 10)], [("bad_time", "x", "p")], 4, 20)),
        ("apply", ("kappa", 0, DELTAS, [], [], 4, 30)),
        (
            "apply",
            (
                "lambda_speed",
                0,
                [("items_by_product", "cola", 5, 2), ("items_by_product", "cola", 6, 1)],
                [],
                [],
                2,
                40,
            ),
        ),
        ("retire", ("lambda_speed", 6, ["items_by_product"])),
        ("apply", ("kappa", 3, [("items_by_product", "water", 0, 9)], [], [], 1, 50)),
    ]
    for s in (store, lite):
        for op, a in script:
            if op == "apply":
                s.apply_batch(a[0], a[1], a[2], a[3], a[4], a[5], visible_ms=a[6])
            else:
                s.retire_buckets(*a)
    for job in (base.KAPPA, base.LAMBDA_SPEED):
        for view in (base.ITEMS_BY_PRODUCT, base.ITEMS_BY_CATEGORY, base.DEAD_LETTERS):
            assert store.read_view(job, view) == lite.read_view(job, view)
        assert store.last_batch_id(job) == lite.last_batch_id(job)
        assert store.micro_batches(job) == lite.micro_batches(job)
        assert store.marker_latencies(job) == lite.marker_latencies(job)
        assert store.dead_letters(job) == lite.dead_letters(job)
    lite.close()


def test_ensure_schema_runs_every_statement(session):
    CassandraStore(session=session, create_schema=True, retry_backoff_s=0)
    created = [c for c, _ in session.log if c.startswith("CREATE")]
    assert len(created) == len(schema_statements())


def test_ensure_schema_creates_the_keyspace_with_the_stacks_replication(session):
    """The scaled-out stacks (VENDLAB_CASSANDRA_REPLICATION=3) ask for 3 copies; the default stays 1."""
    CassandraStore(session=session, create_schema=True, retry_backoff_s=0, replication=3)
    keyspace = next(c for c, _ in session.log if c.startswith("CREATE KEYSPACE"))
    assert "'replication_factor': 3}" in keyspace


# -- compaction ---------------------------------------------------------------------------------
def _live_rows(session, job, view):
    return sorted((k[2], k[3], k[4]) for k in session.data["view_rows"] if k[0] == job and k[1] == view)


def _many_batches(store, job="kappa", n=12, first=0):
    for b in range(first, first + n):
        store.apply_batch(job, b, [("items_by_product", "cola", 0, b + 1), ("items_by_product", "water", 0, 1)])


def test_compaction_folds_committed_batches_and_reads_stay_equal(session):
    store = CassandraStore(session=session, retry_backoff_s=0, compact_rows=0)
    _many_batches(store)
    before = store.read_view("kappa", "items_by_product")
    assert len(_live_rows(session, "kappa", "items_by_product")) == 24
    assert store.compact("kappa") == 22
    assert _live_rows(session, "kappa", "items_by_product") == [(0, "cola", -1), (0, "water", -1)]
    assert store.read_view("kappa", "items_by_product") == before == {"cola": 78, "water": 12}
    # What Grafana computes (a sum of every row, applied or not) equals the reader's view too.
    grafana = {}
    for k, r in session.data["view_rows"].items():
        if k[:2] == ("kappa", "items_by_product"):
            grafana[k[3]] = grafana.get(k[3], 0) + r["value"]
    assert grafana == before
    # A replay of a folded batch is still skipped; new batches add on top of the fold; a second fold is equal.
    assert not store.apply_batch("kappa", 3, [("items_by_product", "cola", 0, 1000)])
    _many_batches(store, n=3, first=12)
    assert store.read_view("kappa", "items_by_product") == {"cola": 78 + 13 + 14 + 15, "water": 15}
    assert store.compact("kappa") == 6
    assert store.read_view("kappa", "items_by_product") == {"cola": 120, "water": 15}
    assert store.compact("kappa") == 0  # nothing left to fold


def test_compaction_runs_every_compact_rows_rows(session):
    store = CassandraStore(session=session, retry_backoff_s=0, compact_rows=10)
    _many_batches(store, n=4)  # 8 rows: no compaction yet
    assert len(_live_rows(session, "kappa", "items_by_product")) == 8 and not session.batches
    _many_batches(store, n=1, first=4)  # 10 rows: folded after the commit
    assert _live_rows(session, "kappa", "items_by_product") == [(0, "cola", -1), (0, "water", -1)]
    assert all(b.is_idempotent for b in session.batches)
    assert store.read_view("kappa", "items_by_product") == {"cola": 15, "water": 5}
    with pytest.raises(ValueError, match="compact_rows -1"):
        CassandraStore(session=session, compact_rows=-1)


def test_each_fold_is_one_batch_with_its_delete(session, monkeypatch):
    """The -1 row of a (bucket, key) and the delete of the rows it replaces travel in the same batch, so no
    reader sees both (counted twice) or neither (lost), whatever the split into batches."""
    monkeypatch.setattr("vendlab.store.cassandra.FOLDS_PER_BATCH", 2)
    store = CassandraStore(session=session, retry_backoff_s=0, compact_rows=0)
    for b in range(3):
        store.apply_batch("kappa", b, [("items_by_product", f"p{i}", 0, 1) for i in range(5)])
    store.compact("kappa")
    assert len(session.batches) == 3  # 5 folds, 2 per batch
    for batch in session.batches:
        puts = [p[3] for st, p in batch.items if st.query_string.startswith("INSERT")]
        dels = [p[4] for st, p in batch.items if st.query_string.startswith("DELETE")]
        assert puts == dels and puts
    assert store.read_view("kappa", "items_by_product") == {f"p{i}": 3 for i in range(5)}


def test_compaction_that_fails_midway_loses_nothing_and_is_retried(session, monkeypatch):
    monkeypatch.setattr("vendlab.store.cassandra.FOLDS_PER_BATCH", 1)
    store = CassandraStore(session=session, retry_backoff_s=0, compact_rows=6, max_attempts=1)
    session.fail(lambda cql, p: cql.startswith("DELETE FROM view_rows USING") and p[4] == "water", times=1)
    _many_batches(store, n=3)  # 6 rows: the fold of cola lands, the one of water times out
    assert store.read_view("kappa", "items_by_product") == {"cola": 6, "water": 3}
    assert (0, "water", 0) in _live_rows(session, "kappa", "items_by_product")
    _many_batches(store, n=1, first=3)  # the next commit retries the compaction
    assert _live_rows(session, "kappa", "items_by_product") == [(0, "cola", -1), (0, "water", -1)]
    assert store.read_view("kappa", "items_by_product") == {"cola": 10, "water": 4}


def test_compaction_leaves_an_uncommitted_attempt_alone(store, session):
    _many_batches(store, n=2)
    session.fail(lambda cql, p: cql.startswith("INSERT INTO applied"), times=1, exc=lambda: Crash("killed"))
    with pytest.raises(Crash):
        store.apply_batch("kappa", 2, [("items_by_product", "cola", 0, 50)])
    store.apply_batch("kappa", 3, [("items_by_product", "cola", 0, 7)])  # (a writer that skipped batch 2)
    store.compact("kappa")
    assert (0, "cola", 2) in _live_rows(session, "kappa", "items_by_product")  # not folded, not deleted
    assert store.read_view("kappa", "items_by_product") == {"cola": 1 + 2 + 7, "water": 2}
    assert store.apply_batch("kappa", 2, [("items_by_product", "cola", 0, 50)])  # its retry counts once
    assert store.read_view("kappa", "items_by_product") == {"cola": 60, "water": 2}


def test_fold_is_stamped_above_the_rows_it_replaces(store, session):
    _many_batches(store, n=2)
    far = 10**18  # a row written by a writer whose clock ran ahead
    for r in session.data["view_rows"].values():
        r["WRITETIME(value)"] = far
    store.compact("kappa")
    assert _live_rows(session, "kappa", "items_by_product") == [(0, "cola", -1), (0, "water", -1)]
    assert store.read_view("kappa", "items_by_product") == {"cola": 3, "water": 2}


def test_compaction_keeps_buckets_apart(store, session):
    for b in range(4):
        store.apply_batch(
            "lambda_speed", b, [("items_by_product", "cola", 10 + b % 2, 1), ("items_by_product", "water", 12, 2)]
        )
    before = store.read_view_buckets("lambda_speed", "items_by_product", 11)
    store.compact("lambda_speed")
    assert (
        store.read_view_buckets("lambda_speed", "items_by_product", 11)
        == before
        == {
            ("cola", 11): 2,
            ("water", 12): 8,
        }
    )
    assert store.read_view("lambda_speed", "items_by_product", min_bucket=10) == {"cola": 4, "water": 8}
    assert store.retire_buckets("lambda_speed", 12, ["items_by_product"]) == 2
    assert store.read_view("lambda_speed", "items_by_product") == {"water": 8}


def test_after_compaction_readers_read_only_the_commits_of_unfolded_batches(session):
    """A key written once long ago is folded too, so the readers' read of `applied` starts at the oldest
    unfolded batch, not at the run's first: its cost stays bounded as the run grows."""
    store = CassandraStore(session=session, retry_backoff_s=0, compact_rows=0)
    store.apply_batch("kappa", 0, [("items_by_product", "rare", 0, 1)])
    _many_batches(store, n=20, first=1)
    store.compact("kappa")
    _many_batches(store, n=2, first=21)
    session.log.clear()
    assert store.read_view("kappa", "items_by_product") == {"rare": 1, "cola": sum(range(2, 24)), "water": 22}
    (applied,) = [p for cql, p in session.log if cql.startswith("SELECT batch_id FROM applied WHERE job = ? AND")]
    assert applied == ("kappa", 21, 22)
