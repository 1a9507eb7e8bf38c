"""The scaled-out topology (issue 24): kappa/ and lambda/docker-compose.ha.yml over docker-compose.yml, and the
start scripts' --nodes 3 / --spark-workers N. Checked without a Docker engine: the merged configuration as
docker-compose itself merges it (`docker-compose -f base -f ha config`), read with the images' own rules
(vendlab.compose_conf.kafka_properties: the apache/kafka image's env-to-properties; CASSANDRA_SEEDS as the
cassandra image's docker-entrypoint.sh writes it), and the compose command lines the start scripts build, on
the fake Docker host of tests/test_orchestrate.py."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_orchestrate import FakeDocker

from vendlab.compose_conf import kafka_properties, mem_limits
from vendlab.orchestrate import (
    HA_CLIENT_ENV,
    HA_FILE,
    STACKS,
    WORKERS_FILE,
    Result,
    main,
    scaled,
    workers_overlay,
)

ROOT = Path(__file__).resolve().parents[1]
BROKERS = ("kafka", "kafka2", "kafka3")
CASSANDRAS = ("cassandra1", "cassandra2", "cassandra3")
PARAMS = pytest.mark.parametrize("stack", ("kappa", "lambda"))


def compose_tool() -> str:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose (Debian package docker-compose) is not installed: scripts/bootstrap.sh --test")
    return tool


def compose_config(stack: str, *extra: Path, quiet: bool = False) -> subprocess.CompletedProcess:
    files = [ROOT / stack / "docker-compose.yml", ROOT / stack / HA_FILE, *extra]
    args = [compose_tool(), *[a for f in files for a in ("-f", str(f))], "--profile", "jobs", "config"]
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only"}
    return subprocess.run(
        args + (["-q"] if quiet else []), cwd=ROOT / stack, env=env, capture_output=True, text=True, timeout=120
    )


_MERGED: dict[str, dict] = {}


def merged(stack: str) -> dict:
    """docker-compose's own merge of docker-compose.yml and docker-compose.ha.yml (with the jobs)."""
    if stack not in _MERGED:
        r = compose_config(stack)
        assert r.returncode == 0, r.stderr
        _MERGED[stack] = yaml.safe_load(r.stdout)
    return _MERGED[stack]


def env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    return {str(k): str(v) for k, v in env.items()}


def published(svc: dict) -> set[tuple[str, int, int]]:
    """{(host ip, host port, container port)}: docker-compose 1.29 prints ports short ("127.0.0.1:9094:9094/tcp"),
    Compose v2 long ({host_ip, published, target})."""
    out = set()
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.add((str(p.get("host_ip", "")), int(p["published"]), int(p["target"])))
        else:
            ip, host, target = str(p).split("/")[0].split(":")
            out.add((ip, int(host), int(target)))
    return out


def listeners(text: str) -> dict[str, tuple[str, int]]:
    """'PLAINTEXT://kafka2:29092,PLAINTEXT_HOST://localhost:9094' -> {name: (host, port)}"""
    out = {}
    for item in text.split(","):
        name, _, rest = item.partition("://")
        host, _, port = rest.rpartition(":")
        out[name] = (host, int(port))
    return out


# -- the files --------------------------------------------------------------------------------------
@PARAMS
def test_base_and_ha_validate_together(stack):
    r = compose_config(stack, quiet=True)
    assert r.returncode == 0, r.stderr


@PARAMS
def test_the_overlay_is_never_a_stack_alone(stack):
    """Every service the overlay only amends is in docker-compose.yml; the new ones are complete services."""
    base = yaml.safe_load((ROOT / stack / "docker-compose.yml").read_text())["services"]
    ha = yaml.safe_load((ROOT / stack / HA_FILE).read_text())["services"]
    new = set(ha) - set(base)
    assert new == {"kafka2", "kafka3", "cassandra2", "cassandra3"}
    for name in new:
        for key in ("image", "hostname", "networks", "ports", "volumes", "mem_limit", "healthcheck", "restart"):
            assert key in ha[name], (name, key)


@PARAMS
def test_three_kraft_nodes_in_combined_mode_with_one_quorum(stack):
    svcs = merged(stack)["services"]
    props = {b: kafka_properties(env_of(svcs[b])) for b in BROKERS}
    ids = {b: props[b]["node.id"] for b in BROKERS}
    assert sorted(ids.values()) == ["1", "2", "3"], ids
    assert ids["kafka"] == "1"  # the service kafka stays node 1
    assert len({env_of(svcs[b])["CLUSTER_ID"] for b in BROKERS}) == 1  # each formats its storage with it
    voters = {props[b]["controller.quorum.voters"] for b in BROKERS}
    assert len(voters) == 1, voters
    parsed = dict(v.split("@") for v in voters.pop().split(","))
    assert set(parsed) == set(ids.values())
    for b in BROKERS:
        p = props[b]
        assert p["process.roles"] == "broker,controller"
        host, port = parsed[ids[b]].rsplit(":", 1)
        assert host == svcs[b]["hostname"] == b  # a name on the stack's network
        assert listeners(p["listeners"])[p["controller.listener.names"]][1] == int(port)


@PARAMS
def test_advertised_listeners_resolve_on_the_network_and_on_the_host(stack):
    svcs = merged(stack)["services"]
    host_ports = []
    for b in BROKERS:
        p = kafka_properties(env_of(svcs[b]))
        adv, bound = listeners(p["advertised.listeners"]), listeners(p["listeners"])
        network = p["inter.broker.listener.name"]
        # containers: the broker's own service name, the port it binds
        assert adv[network] == (b, bound[network][1])
        assert b in svcs and svcs[b]["hostname"] == b
        # the host: localhost and a port published on 127.0.0.1 to the same port in the container
        host, port = adv["PLAINTEXT_HOST"]
        assert host == "localhost" and bound["PLAINTEXT_HOST"][1] == port
        assert ("127.0.0.1", port, port) in published(svcs[b]), (b, published(svcs[b]))
        host_ports.append(port)
    assert len(set(host_ports)) == 3 and host_ports[0] == 9092


@PARAMS
def test_replication_three_and_two_in_sync_everywhere(stack):
    svcs = merged(stack)["services"]
    for b in BROKERS:
        p = kafka_properties(env_of(svcs[b]))
        assert p["default.replication.factor"] == "3", b
        assert p["min.insync.replicas"] == "2", b
        for internal in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
            assert p[f"{internal}.replication.factor"] == "3", (b, internal)
        for internal in ("transaction.state.log", "share.coordinator.state.topic"):
            assert p[f"{internal}.min.isr"] == "2", (b, internal)
        # and what kafka (node 1) keeps from docker-compose.yml: no record deleted, no timestamp refused
        assert p["log.retention.ms"] == "-1" and p["log.retention.bytes"] == "-1"
        assert p["log.message.timestamp.after.max.ms"] == str(2**63 - 1)


@PARAMS
def test_each_broker_its_own_volume_probe_and_memory(stack):
    svcs = merged(stack)["services"]
    vols = [next(v for v in svcs[b]["volumes"] if "/var/lib/kafka/data" in str(v)) for b in BROKERS]
    assert len({str(v).split(":")[0] if isinstance(v, str) else v["source"] for v in vols}) == 3
    for b in BROKERS:
        probe = " ".join(svcs[b]["healthcheck"]["test"])
        # through the internal listener of the broker itself (its host listener's neighbours are not in its container)
        assert f"--bootstrap-server {b}:29092" in probe and "KAFKA_HEAP_OPTS='-Xms32m -Xmx32m'" in probe
        assert svcs[b]["restart"] == "unless-stopped"
        # a voter alone has no quorum: no broker may wait for another to be healthy
        assert not set(svcs[b].get("depends_on") or {}) & set(BROKERS), b


@PARAMS
def test_three_cassandra_nodes_one_ring_joining_one_at_a_time(stack):
    svcs = merged(stack)["services"]
    seeds = {env_of(svcs[c]).get("CASSANDRA_SEEDS") for c in CASSANDRAS}
    assert len(seeds) == 1 and None not in seeds, seeds  # unset, each node would seed itself alone
    assert set(seeds.pop().split(",")) <= set(CASSANDRAS)
    assert {env_of(svcs[c])["CASSANDRA_CLUSTER_NAME"] for c in CASSANDRAS} == {"vendlab"}
    assert {env_of(svcs[c])["MAX_HEAP_SIZE"] for c in CASSANDRAS} == {"512M"}
    assert svcs["cassandra2"]["depends_on"] == {"cassandra1": {"condition": "service_healthy"}}
    assert svcs["cassandra3"]["depends_on"] == {"cassandra2": {"condition": "service_healthy"}}
    volumes = {
        next(str(v).split(":")[0] for v in svcs[c]["volumes"] if "/var/lib/cassandra" in str(v)) for c in CASSANDRAS
    }
    assert len(volumes) == 3
    ports = [p for c in CASSANDRAS for p in sorted(published(svcs[c]))]
    assert ports[0] == ("127.0.0.1", 9042, 9042) and len({p[1] for p in ports}) == 3, ports
    assert {p[0] for p in ports} == {"127.0.0.1"} and {p[2] for p in ports} == {9042}


@PARAMS
def test_every_client_knows_every_broker_and_node(stack):
    svcs = merged(stack)["services"]
    internal = {f"{b}:29092" for b in BROKERS}
    clients = [n for n, s in svcs.items() if "VENDLAB_KAFKA" in env_of(s)]
    assert {"validation", "generator", "spark-master", "spark-worker-1", "spark-worker-2"} <= set(clients)
    for name in clients:
        env = env_of(svcs[name])
        assert set(env["VENDLAB_KAFKA"].split(",")) == internal, name
        assert set(env["VENDLAB_CASSANDRA"].split(",")) == set(CASSANDRAS), name
        assert env["VENDLAB_CASSANDRA_REPLICATION"] == "3", name
    assert set(env_of(svcs["kafka-ui"])["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"].split(",")) == internal
    # every job waits for the whole topology at its start
    for job in ("validation",) + tuple(j for j in STACKS[stack].jobs if j not in ("validation", "generator")):
        assert {"kafka", "kafka2", "kafka3", "cassandra3"} <= set(svcs[job]["depends_on"]), job


def test_the_extra_workers_get_the_overlays_client_settings():
    text = (ROOT / "kappa" / HA_FILE).read_text()
    anchors = yaml.safe_load(text)["x-ha-clients"]
    assert anchors == HA_CLIENT_ENV


@PARAMS
def test_grafana_reads_all_three_nodes_at_local_quorum(stack):
    svcs = merged(stack)["services"]
    mounts = [str(v) for v in svcs["grafana"]["volumes"]]
    ha = next(m for m in mounts if ":/etc/grafana/provisioning/datasources:" in m)
    folder = Path(ha.split(":")[0])
    assert folder.resolve() == (ROOT / "grafana_templates" / "provisioning-ha" / "datasources").resolve()
    ours = yaml.safe_load((folder / "cassandra.yml").read_text())["datasources"][0]
    default = yaml.safe_load((ROOT / "grafana_templates/provisioning/datasources/cassandra.yml").read_text())
    default = default["datasources"][0]
    # the plugin's hosts are separated by ";" (pkg/settings.go); gocql's names for the consistency
    assert ours["url"].split(";") == [f"{c}:9042" for c in CASSANDRAS]
    assert ours["jsonData"]["consistency"] == "LOCAL_QUORUM" and default["jsonData"]["consistency"] == "ONE"
    ours_rest = {**ours, "url": None, "jsonData": {**ours["jsonData"], "consistency": None}}
    default_rest = {**default, "url": None, "jsonData": {**default["jsonData"], "consistency": None}}
    assert ours_rest == default_rest


@PARAMS
def test_the_default_stack_is_as_small_as_before(stack):
    base = yaml.safe_load((ROOT / stack / "docker-compose.yml").read_text())["services"]
    assert not {"kafka2", "kafka3", "cassandra2", "cassandra3", "spark-worker-3"} & set(base)
    assert kafka_properties(env_of(base["kafka"]))["controller.quorum.voters"] == "1@kafka:29093"
    assert "CASSANDRA_SEEDS" not in env_of(base["cassandra1"])


# -- the extra Spark workers -------------------------------------------------------------------------
@PARAMS
def test_extra_workers_are_spark_worker_2_under_their_names(stack, tmp_path):
    st = scaled(STACKS[stack], 3, 4)
    path = tmp_path / WORKERS_FILE
    path.write_text(workers_overlay(st, (ROOT / stack / "docker-compose.yml").read_text()))
    r = compose_config(stack, path)
    assert r.returncode == 0, r.stderr
    svcs = yaml.safe_load(r.stdout)["services"]
    two = dict(svcs["spark-worker-2"])
    assert two.pop("hostname") == "spark-worker-2"
    for i in (3, 4):
        w = dict(svcs[f"spark-worker-{i}"])
        assert w.pop("hostname") == f"spark-worker-{i}"
        assert w == two, i
    assert "spark-worker-5" not in svcs
    assert mem_limits(path) == {"spark-worker-3": 1152, "spark-worker-4": 1152}


def test_bad_topology_values_name_what_is_allowed(tmp_path):
    for argv, allowed in (
        (["--nodes", "2"], "allowed are 1 (the default stack) and 3"),
        (["--nodes", "0"], "allowed are 1"),
        (["--spark-workers", "1"], "allowed are 2 to 8"),
        (["--spark-workers", "9"], "allowed are 2 to 8"),
    ):
        code, out, err = run("kappa", FakeDocker("kappa"), tmp_path, "--dry-run", *argv)
        assert code == 2 and allowed in err, (argv, err)
    with pytest.raises(SystemExit) as e:
        run("lambda", FakeDocker("lambda"), tmp_path, "--local", str(tmp_path), "--nodes", "3")
    assert e.value.code == 2


# -- the start scripts on a fake Docker host ---------------------------------------------------------
class ScaledDocker(FakeDocker):
    """FakeDocker answering for the scaled-out stack: every compose call must name exactly ``files``."""

    def __init__(self, stack, nodes=3, workers=2, topic_rf=None, keyspace_rf=None, mem_gib=24.0, **kw):
        super().__init__(stack, mem_gib=mem_gib, **kw)
        self.stack = scaled(STACKS[stack], nodes, workers)
        self.services = self.stack.services
        self.files: list[list[str]] = []
        self.raw: list[list[str]] = []
        self.topic_rf = topic_rf  # an existing topic's replication factor (None: as created)
        self.keyspace_rf = keyspace_rf
        if topic_rf is not None:
            self.topics["vendlab-events"] = dict(self.stack.topic_config())

    def run(self, args, input=None, timeout=None, stream=False):
        self.raw.append(list(args))
        if args[:3] == ["docker", "compose", "-f"]:
            rest, files = list(args[2:]), []
            while rest[:1] == ["-f"]:
                files.append(rest[1])
                rest = rest[2:]
            self.files.append(files)
            args = ["docker", "compose", "-f", files[0], *rest]
        return super().run(args, input, timeout, stream)

    def exec(self, service, cmd, input, env):
        if cmd[0].endswith("kafka-topics.sh") and "--describe" in cmd:
            rf = self.topic_rf or 3
            return Result(0, f"Topic: vendlab-events\tPartitionCount: 6\tReplicationFactor: {rf}\tConfigs: ...\n")
        if cmd[0] == "cqlsh" and "-e" in cmd and "system_schema.keyspaces" in cmd[-1]:
            rf = self.keyspace_rf or 3
            return Result(
                0,
                "\n replication\n-------------\n {'class': 'org.apache.cassandra.locator.SimpleStrategy', "
                f"'replication_factor': '{rf}'}}\n\n(1 rows)\n",
            )
        if cmd[0] == "cqlsh" and "-e" in cmd and cmd[-1].startswith("CONSISTENCY QUORUM; "):
            cmd = [*cmd[:-1], cmd[-1][len("CONSISTENCY QUORUM; ") :]]
        return super().exec(service, cmd, input, env)


def run(stack, fake, tmp_path, *argv):
    """main() on copies of the stack's compose files in tmp_path (where .env and the workers' file go)."""
    for name in ("docker-compose.yml", HA_FILE):
        if not (tmp_path / name).exists():
            shutil.copy(ROOT / stack / name, tmp_path / name)
    out, err, old = io.StringIO(), io.StringIO(), sys.stderr
    sys.stderr = err
    try:
        code = main(stack, list(argv), runner=fake, directory=tmp_path, out=out)
    finally:
        sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def env_file(tmp_path) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in (tmp_path / ".env").read_text().splitlines() if "=" in ln)


@PARAMS
def test_nodes_3_names_both_files_in_every_compose_call(stack, tmp_path):
    fake = ScaledDocker(stack, up=False)
    code, out, err = run(stack, fake, tmp_path, "--nodes", "3")
    assert code == 0, err
    assert fake.files and all(f == [str(tmp_path / "docker-compose.yml"), str(tmp_path / HA_FILE)] for f in fake.files)
    up = next(c for c in fake.raw if "up" in c and "--no-deps" not in c)
    names = up[up.index("-d") + 1 :]
    assert names == list(fake.stack.services)
    for s in ("kafka", "kafka2", "kafka3", "cassandra1", "cassandra2", "cassandra3", "spark-worker-2"):
        assert s in names
    assert names.index("kafka2") < names.index("cassandra1") < names.index("cassandra2") < names.index("cassandra3")
    create = next(c for c in fake.raw if "--create" in c)
    assert create[create.index("--replication-factor") + 1] == "3"
    assert "min.insync.replicas=2" in create
    schema = next(i for i, c in zip(fake.inputs, fake.raw) if c[-1] == "cqlsh" and i)
    assert "'replication_factor': 3" in schema
    env = env_file(tmp_path)
    assert env["VENDLAB_NODES"] == "3" and env["VENDLAB_SPARK_WORKERS"] == "2"
    assert env["COMPOSE_FILE"] == os.pathsep.join(["docker-compose.yml", HA_FILE])
    assert "replication 3, min.insync.replicas 2" in out


@PARAMS
def test_a_later_status_stop_down_use_the_recorded_topology(stack, tmp_path):
    fake = ScaledDocker(stack, up=False)
    assert run(stack, fake, tmp_path, "--nodes", "3")[0] == 0
    fake.files.clear()
    code, out, err = run(stack, fake, tmp_path, "--status")
    assert code == 0, err
    assert fake.files and all(len(f) == 2 and f[1].endswith(HA_FILE) for f in fake.files)
    for s in ("kafka2", "kafka3", "cassandra2", "cassandra3"):
        assert re.search(rf"^  {s}\s+running healthy", out, re.M), out
    fake.files.clear()
    code, out, err = run(stack, fake, tmp_path, "--stop")
    assert code == 0, err
    assert all(len(f) == 2 for f in fake.files)
    drain = [c[-1] for c in fake.raw if "cqlsh" in c and "-e" in c and "vendlab.markers" in c[-1]]
    assert drain and all(q.startswith("CONSISTENCY QUORUM; ") for q in drain)


@PARAMS
def test_spark_workers_writes_their_file_and_names_it(stack, tmp_path):
    fake = ScaledDocker(stack, nodes=3, workers=4, up=False)
    code, out, err = run(stack, fake, tmp_path, "--nodes", "3", "--spark-workers", "4")
    assert code == 0, err
    assert all(f[-1] == str(tmp_path / WORKERS_FILE) and len(f) == 3 for f in fake.files)
    text = (tmp_path / WORKERS_FILE).read_text()
    assert "spark-worker-3:" in text and "spark-worker-4:" in text and "spark-worker-5" not in text
    up = next(c for c in fake.raw if "up" in c and "--no-deps" not in c)
    assert [s for s in up if s.startswith("spark-worker-")] == [f"spark-worker-{i}" for i in range(1, 5)]
    assert env_file(tmp_path)["COMPOSE_FILE"] == os.pathsep.join(["docker-compose.yml", HA_FILE, WORKERS_FILE])


def test_spark_workers_alone_keeps_one_broker(tmp_path):
    fake = ScaledDocker("kappa", nodes=1, workers=3, up=False)
    code, out, err = run("kappa", fake, tmp_path, "--spark-workers", "3")
    assert code == 0, err
    assert all(f == [str(tmp_path / "docker-compose.yml"), str(tmp_path / WORKERS_FILE)] for f in fake.files)
    create = next(c for c in fake.raw if "--create" in c)
    assert create[create.index("--replication-factor") + 1] == "1" and "min.insync.replicas=2" not in create
    assert "cassandra2" not in (tmp_path / WORKERS_FILE).read_text()


def test_the_default_start_is_as_before(tmp_path):
    fake = ScaledDocker("kappa", nodes=1, up=False)
    code, out, err = run("kappa", fake, tmp_path)
    assert code == 0, err
    assert all(f == [str(tmp_path / "docker-compose.yml")] for f in fake.files)
    env = env_file(tmp_path)
    assert not {"VENDLAB_NODES", "VENDLAB_SPARK_WORKERS", "COMPOSE_FILE"} & set(env)
    assert not (tmp_path / WORKERS_FILE).exists()
    create = next(c for c in fake.raw if "--create" in c)
    assert create[create.index("--replication-factor") + 1] == "1"


@PARAMS
def test_a_single_node_topic_or_keyspace_is_refused_on_three_nodes(stack, tmp_path):
    fake = ScaledDocker(stack, topic_rf=1, up=False)
    code, out, err = run(stack, fake, tmp_path, "--nodes", "3")
    assert code == 2 and "replication factor 1" in err and "down -v" in err, err
    assert not fake.jobs
    fake = ScaledDocker(stack, keyspace_rf=1, up=False)
    fake.tables = {"view_rows"}
    (tmp_path / "other").mkdir()
    code, out, err = run(stack, fake, tmp_path / "other", "--nodes", "3")
    assert code == 2 and "keyspace vendlab has replication factor 1" in err, err


@PARAMS
def test_dry_run_nodes_3_prints_both_files_and_the_scaled_memory(stack, tmp_path):
    fake = FakeDocker(stack)
    code, out, err = run(stack, fake, tmp_path, "--dry-run", "--nodes", "3")
    assert code == 0, err
    limits = {**mem_limits(ROOT / stack / "docker-compose.yml"), **mem_limits(ROOT / stack / HA_FILE)}
    assert f"add up to {sum(limits.values())} MiB" in out
    assert f"-f {tmp_path / HA_FILE}" in out


@PARAMS
def test_docs_state_the_scaled_out_sums(stack):
    """docs/compose.md's table of the scaled-out stacks: what --nodes 3 adds, infrastructure, jobs, total,
    from the mem_limit values of both files (the start script sums the same)."""
    limits = {**mem_limits(ROOT / stack / "docker-compose.yml"), **mem_limits(ROOT / stack / HA_FILE)}
    added = sum(v for n, v in limits.items() if n in ("kafka2", "kafka3", "cassandra2", "cassandra3"))
    jobs = sum(v for n, v in limits.items() if n in STACKS[stack].jobs)
    total = sum(limits.values())
    text = (ROOT / "docs" / "compose.md").read_text()
    table = text[text.index("| scaled-out stack | lambda | kappa |") :]
    table = table[: table.index("\n\n")]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:4]] for ln in table.splitlines()[2:]}
    col = ("lambda", "kappa").index(stack)
    assert rows["added by `--nodes 3`: kafka2, kafka3, cassandra2, cassandra3"][col] == f"{added} MiB"
    assert rows["infrastructure, `--nodes 3`"][col] == f"{total - jobs} MiB"
    assert rows["jobs"][col] == f"{jobs} MiB"
    assert rows["**total, `--nodes 3`**"][col] == f"**{total} MiB = {total / 1024:.1f} GiB**"
    assert rows["each worker above 2 (`--spark-workers N`)"][col] == f"+ {limits['spark-worker-2']} MiB"


def test_schema_replication_is_the_stacks_and_the_default_file_unchanged():
    from vendlab.store.cassandra import replication_from_env, schema_cql, schema_statements

    assert schema_cql() == schema_cql(replication=1)
    assert "'replication_factor': 1}" in schema_statements()[0]
    three = schema_statements("vendlab", 3)
    assert "'replication_factor': 3}" in three[0] and three[1:] == schema_statements()[1:]
    assert "'replication_factor': 3}" in schema_statements("lab2", 3)[0] and "lab2" in schema_statements("lab2", 3)[0]
    assert replication_from_env({}) == 1 and replication_from_env({"VENDLAB_CASSANDRA_REPLICATION": "3"}) == 3
    with pytest.raises(ValueError, match="VENDLAB_CASSANDRA_REPLICATION"):
        replication_from_env({"VENDLAB_CASSANDRA_REPLICATION": "0"})


@PARAMS
def test_the_start_scripts_memory_reader_agrees_with_yaml_on_the_overlay(stack):
    ha = yaml.safe_load((ROOT / stack / HA_FILE).read_text())["services"]
    assert mem_limits(ROOT / stack / HA_FILE) == {
        n: int(s["mem_limit"][:-1]) for n, s in ha.items() if "mem_limit" in s
    }


def test_down_names_the_recorded_files_too(tmp_path):
    fake = ScaledDocker("kappa", nodes=3, workers=3, up=False)
    assert run("kappa", fake, tmp_path, "--nodes", "3", "--spark-workers", "3")[0] == 0
    (tmp_path / WORKERS_FILE).unlink()  # rewritten from docker-compose.yml by the next call that needs it
    fake.files.clear()
    code, out, err = run("kappa", fake, tmp_path, "--down")
    assert code == 0, err
    assert any("down" in c for c in fake.raw)
    assert fake.files and all(len(f) == 3 and f[2].endswith(WORKERS_FILE) for f in fake.files)
    assert (tmp_path / WORKERS_FILE).exists()
