"""The lambda dashboard's queries on a real Cassandra 5.0 before and after the first batch run.

The Cassandra of the suite's kappa stack (a local process from the compose file's settings, vendlab.localstack),
in a keyspace of its own, with the schema of vendlab/store/schema.cql and rows written by CassandraStore as the
jobs write them. The variables are filled as the plugin and Grafana 12.2 fill them (tests/grafana_cql.py), each
panel query runs on Cassandra, and the items panel's rows go through the plugin's frames and Grafana's
transformations (tests/grafana_frames.py). A fresh keyspace must show serving = speed only = validation until the
first batch run (issue 25: the variables were empty and every lambda view query was invalid CQL), and the
batch + speed hand-off after it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import grafana_frames as gf
import pytest
from grafana_cql import fill, targets, variable_values

from vendlab.store import base
from vendlab.store.base import BatchViewInfo

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[1]
KEYSPACE = "vendlab_grafana"
# the lambda dashboard, its queries on this module's keyspace (every "vendlab." in it names a table)
DASH = json.loads(
    (ROOT / "grafana_templates" / "dashboards" / "lambda.json").read_text().replace("vendlab.", f"{KEYSPACE}.")
)
SPEED = {  # (bucket, product) -> items, as the speed job writes them (event-time buckets)
    (100, "water"): 3,
    (100, "chips"): 2,
    (101, "water"): 1,
    (102, "chips"): 4,
    (102, "apple"): 5,
}


@pytest.fixture(scope="module")
def store(kappa_stack):
    """The suite's kappa stack's Cassandra (tests/conftest.py; the lambda stack's settings are the same file's),
    in a keyspace of this module's (KEYSPACE, dropped at the end), since the stack is shared."""
    from vendlab.store.cassandra import CassandraStore

    st = None
    try:
        st = CassandraStore((kappa_stack.env()["VENDLAB_CASSANDRA"],), KEYSPACE, create_schema=True)
        yield st
    finally:
        if st is None:  # the schema failed half-way: drop what it made
            st = CassandraStore((kappa_stack.env()["VENDLAB_CASSANDRA"],), "system_schema")
        st.session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}")
        st.close()


def run_panels(store) -> tuple[dict[str, str], dict[str, int]]:
    """(the variables, the items panel's serving column): every lambda query runs on Cassandra."""
    variables = variable_values(DASH, store.session)
    now = int(time.time() * 1000)
    errors = []
    for title, t in targets(DASH):
        cql = fill(t["target"], variables, now - 3_600_000, now + 60_000)
        try:
            store.session.execute(cql)
        except Exception as e:  # every failing panel query is listed, not only the first
            errors.append(f"{title} ({t['refId']}): {cql}\n    {str(e)[:200]}")
    assert not errors, "panel queries that fail on Cassandra 5.0:\n  " + "\n  ".join(errors)
    (items,) = [p for p in DASH["panels"] if p["id"] == 1]
    frames = []
    for t in items["targets"]:
        result = store.session.execute(fill(t["target"], variables, 0, now))
        rows = [dict(zip(result.column_names, r)) for r in result]
        frames += gf.plugin_frames(t["refId"], list(result.column_names), rows)
    table = gf.table(gf.apply(items["transformations"], frames))
    assert table["difference"] == {k: 0 for k in table["difference"]}, table
    return variables, {k: int(v) for k, v in table["serving"].items()}


def test_lambda_dashboard_before_and_after_the_first_batch_run(store):
    deltas = [(base.ITEMS_BY_PRODUCT, k, b, n) for (b, k), n in SPEED.items()]
    assert store.apply_batch(base.LAMBDA_SPEED, 0, deltas, rows=len(deltas))
    total = {}
    for (_, k), n in SPEED.items():
        total[k] = total.get(k, 0) + n
    assert store.apply_batch(base.VALIDATION, 0, [(base.ITEMS_BY_PRODUCT, k, 0, n) for k, n in total.items()])

    # before the first batch run: version 0 (no batch view), cutoff 0 (every speed bucket)
    variables, serving = run_panels(store)
    assert variables == {"version": "0", "cutoff": "0"}
    assert serving == total == store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT)
    # because the variable queries on an empty batch_runs give one row, a null (the plugin sees 0), not "no row"
    for v in DASH["templating"]["list"]:
        assert [tuple(r) for r in store.session.execute(v["query"]["query"])] == [(None,)], v["name"]

    # the first batch run covers the buckets before 102, and a later one before 103; serving stays exact
    for version, cutoff in ((1, 102), (2, 103)):
        covered: dict[str, int] = {}
        for (b, k), n in SPEED.items():
            if b < cutoff:
                covered[k] = covered.get(k, 0) + n
        info = BatchViewInfo(version, cutoff, int(time.time() * 1000), sum(SPEED.values()), 0.5)
        store.publish_batch_view(info, [(base.ITEMS_BY_PRODUCT, k, n) for k, n in covered.items()])
        variables, serving = run_panels(store)
        assert variables == {"version": str(version), "cutoff": str(cutoff)}
        # the same values the newest row gives (the variables' queries before: ... LIMIT 1)
        newest = store.session.execute("SELECT version, cutoff_bucket FROM batch_runs WHERE lab = 'lambda' LIMIT 1")
        assert tuple(newest.one()) == (version, cutoff)
        assert serving == total, (version, serving)
        store.retire_buckets(base.LAMBDA_SPEED, cutoff, [base.ITEMS_BY_PRODUCT])
        assert run_panels(store)[1] == total, ("after retiring", version)


def test_compaction_on_cassandra_keeps_every_reader_and_panel_exact(store):
    """The view store's compaction (vendlab.store.cassandra: a single-partition unlogged batch per fold, a range
    delete with USING TIMESTAMP, WRITETIME) is valid CQL on Cassandra 5.0, and every kappa panel query that
    reads view_rows, and every Python reader, gives the same numbers before and after it, with far fewer rows."""
    from vendlab.store.cassandra import CassandraStore

    ks = "vendlab_compaction"
    cluster = store.session.cluster
    hosts = [f"{h}:{cluster.port}" for h in cluster.contact_points]
    st = CassandraStore(hosts, ks, create_schema=True, compact_rows=0)
    try:
        kappa_dash = json.loads((ROOT / "grafana_templates" / "dashboards" / "kappa.json").read_text())
        queries = sorted(
            {fill(t["target"], {}, 0, 10**13).replace("vendlab.", f"{ks}.") for _, t in targets(kappa_dash)}
        )
        queries = [q for q in queries if "view_rows" in q]
        assert len(queries) >= 8, queries

        def panels():
            return {q: sorted(tuple(r) for r in st.session.execute(q)) for q in queries}

        views = (base.ITEMS_BY_PRODUCT, base.ITEMS_BY_CATEGORY, base.DEAD_LETTERS)
        for batch in range(40):
            deltas = [(base.ITEMS_BY_PRODUCT, f"p{i}", 0, batch + i) for i in range(12)]
            deltas += [(base.ITEMS_BY_CATEGORY, c, 0, batch) for c in ("healthy", "unhealthy")]
            deltas += [(base.DEAD_LETTERS, "bad_json", 0, 1)] if batch % 7 == 0 else []
            for job in (base.KAPPA, base.VALIDATION):
                assert st.apply_batch(job, batch, deltas, rows=len(deltas))
        # a crashed attempt of batch 40 (rows written, no commit): invisible to readers before and after
        st.session.execute(
            f"INSERT INTO {ks}.view_rows (job, view_name, bucket, view_key, batch_id, value) "
            "VALUES ('kappa', 'items_by_product', 0, 'p0', 40, 1000)"
        )
        for b in range(3):  # lambda's speed rows, in event-time buckets
            st.apply_batch(base.LAMBDA_SPEED, b, [(base.ITEMS_BY_PRODUCT, "p1", 100 + b % 2, 2)])
        before = panels()
        reads = {(job, v): st.read_view(job, v) for job in (base.KAPPA, base.VALIDATION) for v in views}
        speed = st.read_view_buckets(base.LAMBDA_SPEED, base.ITEMS_BY_PRODUCT, 100)
        rows_before = st.session.execute(f"SELECT COUNT(*) FROM {ks}.view_rows").one()[0]

        removed = sum(st.compact(job) for job in (base.KAPPA, base.VALIDATION, base.LAMBDA_SPEED))
        rows_after = st.session.execute(f"SELECT COUNT(*) FROM {ks}.view_rows").one()[0]
        assert removed == rows_before - rows_after and rows_after == 2 * 15 + 1 + 2, (rows_before, rows_after)
        assert panels() == before
        assert {(job, v): st.read_view(job, v) for job, v in reads} == reads
        assert reads[(base.KAPPA, base.ITEMS_BY_PRODUCT)] == reads[(base.VALIDATION, base.ITEMS_BY_PRODUCT)]
        assert st.read_view_buckets(base.LAMBDA_SPEED, base.ITEMS_BY_PRODUCT, 100) == speed
        # the panels count the crashed attempt's row (they sum every row, docs/dashboard.md), the readers do not
        assert before != {q: [] for q in queries}
        # later batches add on top of the folds; a second compaction is exact too
        more = [(base.ITEMS_BY_PRODUCT, "p0", 0, 5)]
        assert st.apply_batch(base.KAPPA, 41, more) and not st.apply_batch(base.KAPPA, 3, more)
        st.compact(base.KAPPA)
        expect = dict(
            reads[(base.KAPPA, base.ITEMS_BY_PRODUCT)], p0=reads[(base.KAPPA, base.ITEMS_BY_PRODUCT)]["p0"] + 5
        )
        assert st.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT) == expect
    finally:
        st.session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        st.close()
