"""The local stack's scaled-out topology (`vendlab stack up --nodes 3 --spark-workers N`), configured from
the compose file merged with its HA overlay; no services started here (tests/test_localstack_ha.py runs
them)."""

from __future__ import annotations

import re

import pytest

from vendlab.cli import main
from vendlab.localstack import composefile as cf
from vendlab.localstack.stack import LocalStack, StackError


def test_merge_follows_composes_rules_for_what_the_local_stack_reads():
    base = {
        "services": {
            "kafka": {"image": "apache/kafka:1", "environment": ["A=1", "B=2"], "ports": ["9092:9092"]},
            "x": {"command": ["a", "b"]},
        }
    }
    over = {
        "services": {
            "kafka": {"environment": {"B": "3", "C": "4"}, "ports": ["9093:9093"]},
            "x": {"command": ["c"]},
            "kafka2": {"image": "apache/kafka:1"},
        }
    }
    m = cf.merge(base, over)
    assert m["services"]["kafka"]["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert m["services"]["kafka"]["ports"] == ["9092:9092", "9093:9093"]
    assert m["services"]["x"]["command"] == ["c"]  # a command is replaced, never appended
    assert list(m["services"]) == ["kafka", "x", "kafka2"]
    assert base["services"]["kafka"]["environment"] == ["A=1", "B=2"]  # the inputs are not changed


def test_nodes_other_than_1_or_3_are_refused_with_what_is_allowed(capsys):
    with pytest.raises(cf.ComposeError, match=r"--nodes 2: allowed are 1, 3"):
        cf.load("kappa", nodes=2)
    with pytest.raises(SystemExit):
        main(["stack", "up", "--stack", "kappa", "--dir", "/tmp/x", "--nodes", "2"])
    assert "invalid choice: 2 (choose from 1, 3)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["stack", "up", "--stack", "kappa", "--dir", "/tmp/x", "--spark-workers", "1"])
    assert "'1': allowed are 2 to 8" in capsys.readouterr().err


def _cluster_env(n: int) -> dict[str, dict[str, str]]:
    voters = ",".join(f"{i}@kafka{'' if i == 1 else i}:29093" for i in range(1, n + 1))
    out = {}
    for i in range(1, n + 1):
        name = "kafka" if i == 1 else f"kafka{i}"
        out[name] = cf.kafka_env(
            {
                "KAFKA_NODE_ID": str(i),
                "KAFKA_LISTENERS": f"PLAINTEXT://:29092,CONTROLLER://:29093,PLAINTEXT_HOST://:{9091 + i}",
                "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{name}:29092,PLAINTEXT_HOST://localhost:{9091 + i}",
                "KAFKA_CONTROLLER_QUORUM_VOTERS": voters,
            }
        )
    return out


def test_each_brokers_voters_name_every_brokers_own_controller_port(tmp_path):
    envs = _cluster_env(3)
    local_ports = {}
    for k, (name, env) in enumerate(envs.items()):
        local_ports[name] = {c: 41000 + 10 * k + j for j, c in enumerate(cf.kafka_listeners(env).values())}
    voters = set()
    for name, env in envs.items():
        ports = {ln: local_ports[name][c] for ln, c in cf.kafka_listeners(env).items()}
        local = cf.relocate_kafka(env, ports, tmp_path / name, peers=local_ports)
        assert cf.kafka_listeners(local) == ports
        # the advertised inter-broker address is this broker's own port, the host listener too
        adv = dict(re.findall(r"(\w+)://127\.0\.0\.1:(\d+)", local["KAFKA_ADVERTISED_LISTENERS"]))
        assert adv == {"PLAINTEXT": str(ports["PLAINTEXT"]), "PLAINTEXT_HOST": str(ports["PLAINTEXT_HOST"])}
        voters.add(local["KAFKA_CONTROLLER_QUORUM_VOTERS"])
    # one quorum, as every broker sees it: node i at broker i's controller port
    assert voters == {",".join(f"{i + 1}@127.0.0.1:{41000 + 10 * i + 1}" for i in range(3))}


def test_an_address_naming_a_port_a_peer_does_not_listen_on_is_an_error(tmp_path):
    env = _cluster_env(2)["kafka"] | {"KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka:29093,2@kafka2:29999"}
    ports = {"PLAINTEXT": 1, "CONTROLLER": 2, "PLAINTEXT_HOST": 3}
    peers = {"kafka": {29092: 1, 29093: 2, 9092: 3}, "kafka2": {29092: 4, 29093: 5, 9093: 6}}
    with pytest.raises(cf.ComposeError, match="kafka2:29999"):
        cf.relocate_kafka(env, ports, tmp_path, peers=peers)


def test_spark_workers_beyond_the_compose_files_are_configured_as_its_last(tmp_path):
    def names(n):
        st = LocalStack(tmp_path / f"w{n}", "kappa", spark_workers=n)
        st.compose = cf.load("kappa")
        return st.worker_names()

    assert names(None) == [("spark-worker-1", "spark-worker-1"), ("spark-worker-2", "spark-worker-2")]
    assert names(4)[2:] == [("spark-worker-3", "spark-worker-2"), ("spark-worker-4", "spark-worker-2")]


def test_a_stack_folder_keeps_its_topology(tmp_path):
    st = LocalStack(tmp_path, "kappa", nodes=3)
    st.state.update(nodes=3, services={"kafka": {"pid": None}})
    st.write_state()
    assert LocalStack(tmp_path).nodes == 3
    with pytest.raises(StackError, match="holds a 3-node kappa stack, not 1"):
        LocalStack(tmp_path, "kappa", nodes=1)


def test_each_cassandra_node_has_its_own_data_folder(tmp_path):
    """The folder a service's data is in, as the stack starts it and as the soak measures it: the first node's is
    data/cassandra (the one-node stack's name), the others' their own (the soak measured an empty data/cassandra1)."""
    one = LocalStack(tmp_path / "one", "kappa")
    one.compose = cf.load("kappa")
    assert one.service_data("cassandra1") == tmp_path / "one" / "data" / "cassandra"
    three = LocalStack(tmp_path / "three", "kappa", nodes=3)
    three.compose = cf.load("kappa", nodes=3)
    assert [three.service_data(n).name for n in three.cassandra_names()] == ["cassandra", "cassandra2", "cassandra3"]
    assert three.service_data("kafka2") == tmp_path / "three" / "data" / "kafka2"


def test_cqlsh_consistency_command_sets_the_level_of_the_local_query():
    """The start scripts' drain reads `cqlsh -e "CONSISTENCY QUORUM; SELECT ..."` on three nodes: on a local
    stack the CONSISTENCY shell command sets the statement's level; it is not sent as CQL (a syntax error,
    which made every drain on a 3-node local stack wait its whole time-out)."""
    from cassandra import ConsistencyLevel

    from vendlab.localstack.jobs import LocalRunner

    class Session:
        def __init__(self):
            self.seen = []

        def execute(self, stmt):
            self.seen.append(stmt)
            return [("kappa", 3)]

    runner = object.__new__(LocalRunner)
    runner._cql = Session()
    r = runner.cql(["cqlsh", "-e", "CONSISTENCY QUORUM; SELECT job, n FROM t WHERE a = 'x;y'"])
    assert (r.code, r.out) == (0, "kappa | 3\n")
    (stmt,) = runner._cql.seen
    assert stmt.query_string == "SELECT job, n FROM t WHERE a = 'x;y'"
    assert stmt.consistency_level == ConsistencyLevel.QUORUM
    assert runner.cql(["cqlsh", "-e", "SELECT 1"]).code == 0 and runner._cql.seen[-1] == "SELECT 1"
    bad = runner.cql(["cqlsh", "-e", "CONSISTENCY MOST; SELECT 1"])
    assert bad.code == 1 and "MOST is not a consistency level" in bad.err
