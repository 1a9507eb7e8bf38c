"""The scaled-out lambda stack on real services (issue 24): `vendlab stack up --stack lambda --nodes 3` runs
lambda/docker-compose.yml merged with lambda/docker-compose.ha.yml as local processes: three KRaft brokers
(topic replication 3, min.insync.replicas 2), three Cassandra nodes (keyspace replication 3, LOCAL_QUORUM),
HDFS and YARN as in the one-node stack.

One run through ./lambda/start_lambda.py --local, as a user runs it: while the generator produces, one broker
and then one Cassandra node are stopped and started again, and the batch layer hands off to the speed layer
at least twice (on YARN); then --stop drains. Serving (batch + speed) must equal validation, the generator's
manifest and an independent recount of the topic. Small rates: the machine has 2 cores and about twenty JVMs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from localstack_helpers import recount_items_by_product, start_script

from vendlab.architectures.lambda_ import read_parts as lambda_views
from vendlab.localstack.jobs import LocalRunner
from vendlab.store import base
from vendlab.store.cassandra import CassandraStore
from vendlab.world.generator import Manifest

pytestmark = [pytest.mark.services, pytest.mark.ha]  # make test-ha (about 17 min alone on 2 cores)

SEED = 13
RATE = 300
BATCH_INTERVAL = 20
HANDOFF_TIMEOUT = 900  # hang guards, not speed targets
DRAIN_TIMEOUT = 1200
MANIFEST = Path("data") / "cluster" / "manifest.json"
JOBS = ("validation", "lambda-ingest", "lambda-speed", "lambda-batch")


def batch_runs(store: CassandraStore) -> list:
    return list(store.session.execute("SELECT version, cutoff_bucket FROM batch_runs WHERE lab = 'lambda'"))


@pytest.fixture(scope="module")
def ha_lambda(lambda_ha_stack):
    stack = lambda_ha_stack  # tests/conftest.py
    d = stack.dir
    args = ["--rate", str(RATE), "--seed", str(SEED), "--bad-rate", "0.01", "--dup-rate", "0.01"]
    args += ["--batch-interval", str(BATCH_INTERVAL), "--drain-timeout", str(DRAIN_TIMEOUT)]
    r = start_script("lambda", d, *args)
    assert r.returncode == 0, f"start_lambda.py failed (logs in {d / 'logs'}):\n{r.stderr}"
    out: dict = {}
    time.sleep(8)
    for name in ("kafka2", "cassandra2"):  # one broker, then one Cassandra node, away for 15 s each
        t = time.monotonic()
        assert stack.stop_service(name)
        time.sleep(15)
        stack.start_service(name, timeout=600)  # a restart under the suite's load: minutes, not seconds
        out[f"{name}_back_s"] = time.monotonic() - t
        time.sleep(8)
    store = CassandraStore(tuple(stack.env()["VENDLAB_CASSANDRA"].split(",")), "vendlab")
    runner = LocalRunner(stack)
    runs_at_outages_end = len(batch_runs(store))
    deadline = time.monotonic() + HANDOFF_TIMEOUT
    # two hand-offs, at least one of them after both outages
    while time.monotonic() < deadline and all(runner.running(j) for j in JOBS):
        runs = len(batch_runs(store))
        if runs >= 2 and runs > runs_at_outages_end:
            break
        time.sleep(3)
    out["alive"] = {j: runner.running(j) for j in JOBS}
    out["runs_at_outages_end"] = runs_at_outages_end
    out["stop"] = start_script("lambda", d, "--stop", "--drain-timeout", str(DRAIN_TIMEOUT))
    out.update(store=store, manifest=Manifest.load(d / MANIFEST), stack=stack)
    out["recount"] = recount_items_by_product(stack.env()["VENDLAB_KAFKA"], "vendlab-events", SEED)
    print(
        f"\nha lambda run: {out['kafka2_back_s']:.0f} s and {out['cassandra2_back_s']:.0f} s outages",
        file=sys.stderr,
    )
    yield out
    store.close()


def test_lambda_exact_through_a_broker_and_a_cassandra_node_stopped_and_started(ha_lambda):
    store, m, stop = ha_lambda["store"], ha_lambda["manifest"], ha_lambda["stack"]
    assert all(ha_lambda["alive"].values()), f"stopped during the run: {ha_lambda['alive']} (logs in {stop.dir})"
    r = ha_lambda["stop"]
    assert r.returncode == 0 and "drained: every job has the end marker" in r.stdout, r.stdout + r.stderr
    assert m.complete and m.sales > 0 and m.malformed > 0 and m.duplicates > 0
    want = {k: n for k, n in m.items_by_product.items() if n}
    views = lambda_views(store)
    serving = {k: n for k, n in views["serving"].items() if n}
    assert serving == store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == ha_lambda["recount"] == want
    runs = batch_runs(store)
    assert len(runs) >= 2 and len(runs) > ha_lambda["runs_at_outages_end"], (
        f"{len(runs)} batch runs, {ha_lambda['runs_at_outages_end']} of them before the outages ended"
    )
    assert sum(views["batch"].values()) > 0, "the batch layer on YARN covered nothing"


def test_lambda_topic_and_keyspace_are_replicated_three_times(ha_lambda):
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": ha_lambda["stack"].env()["VENDLAB_KAFKA"]})
    topic = admin.list_topics(topic="vendlab-events", timeout=20).topics["vendlab-events"]
    assert topic.partitions and all(len(p.replicas) == 3 for p in topic.partitions.values())
    ks = ha_lambda["store"].session.cluster.metadata.keyspaces["vendlab"]
    assert ks.replication_strategy.replication_factor == 3
