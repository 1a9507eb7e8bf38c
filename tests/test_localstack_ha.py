"""The scaled-out kappa stack on real services (issue 24): `vendlab stack up --nodes 3` runs the compose
file merged with kappa/docker-compose.ha.yml as local processes: three KRaft brokers (kafka, kafka2,
kafka3: combined broker and controller, topic replication 3, min.insync.replicas 2) and three Cassandra
nodes (cassandra1..3 on 127.0.0.1..3, keyspace replication 3, LOCAL_QUORUM).

One run through ./kappa/start_kappa.py --local, as a user runs it; while the generator produces, one
broker and then one Cassandra node are stopped and started again; then --stop drains. The views must
equal validation, the generator's manifest and an independent recount of the topic. One stack for the
module (about two minutes to start on two cores), small rates (the machine has 2 cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from localstack_helpers import recount_items_by_product, start_script

from vendlab.localstack.jobs import LocalRunner
from vendlab.localstack.stack import LocalStack
from vendlab.store import base
from vendlab.store.cassandra import CassandraStore
from vendlab.world.generator import Manifest

pytestmark = pytest.mark.services

SEED = 11
RATE = 300
DRAIN_TIMEOUT = 900  # a hang guard, not a speed target
MANIFEST = Path("data") / "cluster" / "manifest.json"


@pytest.fixture(scope="module")
def ha_stack(kappa_ha_stack):
    return kappa_ha_stack  # tests/conftest.py


def hosts(stack: LocalStack) -> tuple[str, ...]:
    return tuple(stack.env()["VENDLAB_CASSANDRA"].split(","))


def test_three_brokers_and_three_cassandra_nodes_are_one_cluster_each(ha_stack):
    from cassandra.cluster import Cluster
    from confluent_kafka.admin import AdminClient

    st = ha_stack.status()
    names = set(st["services"])
    assert {"kafka", "kafka2", "kafka3", "cassandra1", "cassandra2", "cassandra3"} <= names
    assert all(s["healthy"] for s in st["services"].values()), st["services"]
    boot = ha_stack.env()["VENDLAB_KAFKA"]
    assert len(boot.split(",")) == 3
    md = AdminClient({"bootstrap.servers": boot}).list_topics(timeout=20)
    assert sorted(md.brokers) == [1, 2, 3]
    addresses = sorted(st["services"][n]["address"] for n in ("cassandra1", "cassandra2", "cassandra3"))
    assert [a.split(":")[0] for a in addresses] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    host, port = addresses[0].split(":")
    c = Cluster([host], port=int(port), protocol_version=5)
    try:
        c.connect()
        up = sorted(h.address for h in c.metadata.all_hosts() if h.is_up)
        assert up == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def ha_run(ha_stack):
    d = ha_stack.dir
    args = ["--rate", str(RATE), "--seed", str(SEED), "--bad-rate", "0.01", "--dup-rate", "0.01"]
    args += ["--drain-timeout", str(DRAIN_TIMEOUT)]
    out: dict = {}
    r = start_script("kappa", d, *args)
    assert r.returncode == 0, f"start_kappa.py failed (logs in {d / 'logs'}):\n{r.stderr}"
    time.sleep(8)
    # one broker away for 15 s while the generator produces (acks=all, min.insync.replicas 2 of 3)
    t = time.monotonic()
    assert ha_stack.stop_service("kafka2")
    time.sleep(15)
    ha_stack.start_service("kafka2")
    out["kafka2_back_s"] = time.monotonic() - t
    time.sleep(8)
    # one Cassandra node away for 15 s (LOCAL_QUORUM: 2 of 3 replicas answer)
    t = time.monotonic()
    assert ha_stack.stop_service("cassandra2")
    time.sleep(15)
    ha_stack.start_service("cassandra2")
    out["cassandra2_back_s"] = time.monotonic() - t
    time.sleep(8)
    out["jobs_before_stop"] = LocalRunner(ha_stack).status("kappa-job")
    r = start_script("kappa", d, *args, "--stop")
    assert r.returncode == 0, f"start_kappa.py --stop failed (logs in {d / 'logs'}):\n{r.stderr}"
    out["stop"] = r
    store = CassandraStore(hosts(ha_stack), "vendlab")
    out.update(store=store, manifest=Manifest.load(d / MANIFEST))
    print(f"\nha run: {out['kafka2_back_s']:.0f} s and {out['cassandra2_back_s']:.0f} s outages", file=sys.stderr)
    yield out
    store.close()


def test_kappa_exact_through_a_broker_and_a_cassandra_node_stopped_and_started(ha_stack, ha_run):
    store, m = ha_run["store"], ha_run["manifest"]
    assert m.complete and m.sales > 0 and m.malformed > 0 and m.duplicates > 0
    want = {k: n for k, n in m.items_by_product.items() if n}
    kappa = store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT)
    assert kappa == store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == want
    recount = recount_items_by_product(ha_stack.env()["VENDLAB_KAFKA"], "vendlab-events", SEED)
    assert recount == want


def test_topic_and_keyspace_are_replicated_three_times(ha_stack, ha_run):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": ha_stack.env()["VENDLAB_KAFKA"]})
    topic = admin.list_topics(topic="vendlab-events", timeout=20).topics["vendlab-events"]
    assert topic.partitions and all(len(p.replicas) == 3 for p in topic.partitions.values())
    # every replica back in sync after kafka2's restart
    deadline = time.monotonic() + 60
    while any(len(p.isrs) < 3 for p in topic.partitions.values()) and time.monotonic() < deadline:
        time.sleep(2)
        topic = admin.list_topics(topic="vendlab-events", timeout=20).topics["vendlab-events"]
    assert all(len(p.isrs) == 3 for p in topic.partitions.values())
    res = ConfigResource(ConfigResource.Type.TOPIC, "vendlab-events")
    conf = admin.describe_configs([res])[res].result()
    assert conf["min.insync.replicas"].value == "2"
    ks = ha_run["store"].session.cluster.metadata.keyspaces["vendlab"]
    assert ks.replication_strategy.replication_factor == 3
