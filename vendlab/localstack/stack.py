"""A compose stack's services as local processes on 127.0.0.1 (no Docker).

    vendlab stack up --stack kappa|lambda --dir DIR
    vendlab stack status --dir DIR [--json]
    vendlab stack down --dir DIR [--purge]

Each service is the compose service of the same name, run from the same software (Maven artifacts
at the image's version, Spark from pyspark's distribution) with the same configuration (read from the
compose files, see composefile.py); only addresses, ports and data folders differ. DIR holds:

    DIR/stack.json         what runs: per service its pid, address, ports, version, log
    DIR/logs/<svc>.log     each service's output
    DIR/conf/<svc>/        generated configuration (server.properties, cassandra.yaml, *-site.xml)
    DIR/data/<svc>/        data (kept by `down`, removed by `down --purge`)
    DIR/client-env.json    the VENDLAB_* (and SPARK_CONF_DIR, HADOOP_CONF_DIR) a client uses

``LocalStack.env()`` and ``LocalStack.tool()`` give a local command runner what it needs to run the
start scripts' set-up steps here: each service's address and the argv of its CLI tools.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vendlab.compose_conf import hadoop_site_files, site_xml
from vendlab.localstack import composefile as cf
from vendlab.localstack import maven
from vendlab.localstack.supervise import describe_exit, proc_stat

STATE = "stack.json"
HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]

HADOOP_MAIN = {
    ("hdfs", "namenode"): "org.apache.hadoop.hdfs.server.namenode.NameNode",
    ("hdfs", "datanode"): "org.apache.hadoop.hdfs.server.datanode.DataNode",
    ("yarn", "resourcemanager"): "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager",
    ("yarn", "nodemanager"): "org.apache.hadoop.yarn.server.nodemanager.NodeManager",
}
# The JVM options the apache/kafka image's kafka-run-class.sh adds by default.
KAFKA_JVM_OPTS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]
# Cassandra 5.0's conf/jvm17-server.options (JPMS and GC lines): CassandraDaemon needs them on Java 17.
CASSANDRA_JVM17 = """-XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
-XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
-Djdk.attach.allowAttachSelf=true
--add-exports java.base/jdk.internal.misc=ALL-UNNAMED
--add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
--add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
--add-exports java.sql/java.sql=ALL-UNNAMED --add-exports java.base/java.lang.ref=ALL-UNNAMED
--add-exports jdk.unsupported/sun.misc=ALL-UNNAMED --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
--add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
--add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
--add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED
--add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
--add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED
--add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
--add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED
-Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true
-Dio.netty.allocator.maxOrder=11""".split()


# Java 17 here (the image brings its own JDK): YARN's Guice/cglib web apps and Hadoop's reflection need these.
HADOOP_JVM17 = [
    f"--add-opens=java.base/{p}=ALL-UNNAMED"
    for p in (
        "java.lang",
        "java.lang.reflect",
        "java.util",
        "java.util.concurrent",
        "java.io",
        "java.nio",
        "java.net",
        "sun.nio.ch",
        "sun.net.util",
    )
]


class StackError(Exception):
    """What is wrong and what to do (exit 2 on the command line)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str, timeout: float = 3.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read() if r.status == 200 else None
    except Exception:
        return None


def pid_alive(pid: int, marker: str) -> bool:
    """The process exists and is ours (its command line names ``marker``): a reused pid is not.

    A process that has just been started can show an empty command line for a moment (seen right after
    ``Popen`` returned, under load): that is waited for, up to a second, rather than read as "not ours"."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            os.kill(pid, 0)
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ProcessLookupError):
            return False
        stat = proc_stat(pid)
        if stat is None or stat[0] == "Z":
            return False
        if cmd.strip() or time.monotonic() > deadline:
            return marker in cmd
        time.sleep(0.02)


def java_home(java: str) -> str:
    """JAVA_HOME of a java executable (YARN containers start $JAVA_HOME/bin/java)."""
    return os.environ.get("JAVA_HOME") or str(Path(java).resolve().parents[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class Service:
    name: str
    compose: str  # the compose service it stands for
    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int]  # role -> local port
    address: str
    version: str
    health: Callable[[Service], bool]
    needs: tuple[str, ...] = ()
    prepare: Callable[[], None] | None = None
    pid: int | None = None
    extra: dict = field(default_factory=dict)


class LocalStack:
    def __init__(
        self,
        directory: Path | str,
        stack: str | None = None,
        root: Path = cf.ROOT,
        out=None,
        overrides: dict | None = None,
        nodes: int | None = None,
        spark_workers: int | None = None,
    ):
        self.dir = Path(directory).resolve()
        self.root = root
        self.out = out if out is not None else sys.stderr  # the stderr of now, not of the import
        state = self.read_state()
        if stack is None:
            if not state:
                raise StackError(
                    f"no local stack in {self.dir} (no {STATE}): start one with "
                    f"`vendlab stack up --stack kappa|lambda --dir {self.dir}`"
                )
            stack = state["stack"]
        elif state and state.get("stack") not in (None, stack):
            raise StackError(
                f"{self.dir} holds a {state['stack']} stack, not {stack}: use another --dir, "
                f"or `vendlab stack down --dir {self.dir} --purge` first"
            )
        self.stack = stack
        self.state = state or {"stack": stack, "services": {}, "ports": {}}
        # extra broker settings for tests (e.g. a short log.retention.check.interval.ms): KAFKA_* variables
        # added on top of the compose file's, so the image's own rule turns them into properties too
        self.overrides = dict(overrides if overrides is not None else self.state.get("overrides", {}))
        # the topology: 1 (docker-compose.yml) or 3 (with docker-compose.ha.yml: three Kafka brokers,
        # three Cassandra nodes); kept in stack.json so that status, stop and start see the same nodes
        old_nodes = self.state.get("nodes", 1)
        if nodes is not None and state and nodes != old_nodes and state.get("services"):
            raise StackError(
                f"{self.dir} holds a {old_nodes}-node {stack} stack, not {nodes}: use another --dir, "
                f"or `vendlab stack down --dir {self.dir} --purge` first"
            )
        self.nodes = nodes if nodes is not None else old_nodes
        if spark_workers is not None and spark_workers < 1:
            raise StackError(f"--spark-workers {spark_workers}: allowed is a whole number of 1 or more")
        self.spark_workers = spark_workers if spark_workers is not None else self.state.get("spark_workers")

    # -- state ----------------------------------------------------------------------------------------
    def read_state(self) -> dict:
        p = self.dir / STATE
        return json.loads(p.read_text()) if p.exists() else {}

    def write_state(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (STATE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.dir / STATE)

    def say(self, msg: str) -> None:
        print(f"vendlab: {msg}", file=self.out, flush=True)

    def port(self, key: str) -> int:
        """A stable local port per (service, role): reused across up/down while free."""
        ports = self.state.setdefault("ports", {})
        p = ports.get(key)
        if p is None or (not self._running_on(p) and not _bindable(p)):
            p = free_port()
            while p in ports.values():
                p = free_port()
            ports[key] = p
        return p

    def _running_on(self, port: int) -> bool:
        return any(
            port in s.get("ports", {}).values() and pid_alive(s.get("pid") or -1, str(self.dir))
            for s in self.state.get("services", {}).values()
        )

    # -- paths ----------------------------------------------------------------------------------------
    def conf(self, svc: str) -> Path:
        d = self.dir / "conf" / svc
        d.mkdir(parents=True, exist_ok=True)
        return d

    def data(self, svc: str) -> Path:
        d = self.dir / "data" / svc
        d.mkdir(parents=True, exist_ok=True)
        return d

    def node_key(self, svc: str) -> str:
        """The name a service's folders and ports are kept under: its own, but "cassandra" for the first
        Cassandra node, the name the one-node stack has always used, so that a stack directory made before the
        scaled-out one still works."""
        names = self.cassandra_names()
        return "cassandra" if names and svc == names[0] else svc

    def service_data(self, svc: str) -> Path:
        """The folder a service keeps its data in."""
        return self.data(self.node_key(svc))

    def log(self, svc: str) -> Path:
        d = self.dir / "logs"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{svc}.log"

    # -- plan -----------------------------------------------------------------------------------------
    def load(self) -> None:
        """Java and Maven, the compose file, the jars (resolved once, then from the cache)."""
        self.java, _ = maven.check_tools()
        self.compose = cf.load(self.stack, self.root, nodes=self.nodes)
        comps = ["kafka", "cassandra", "spark-kafka"] + (["hadoop"] if self.stack == "lambda" else [])
        self.cp = maven.resolve_all(maven.cache_dir(), comps)
        self.check_versions()
        self.hostmap: dict[str, str] = {}

    def plan(self) -> list[Service]:
        self.load()
        services = [*self.kafka_brokers(), *self.cassandra_nodes()]
        if self.stack == "lambda":
            services += self.hadoop()
        services += self.spark()
        return services

    def check_versions(self) -> None:
        """The jars are the compose images' versions (and Spark's Kafka source pyspark's)."""
        import pyspark

        want = {
            "kafka": self.compose.image_tag("kafka"),
            "cassandra": self.compose.image_tag("cassandra1"),
            "spark-kafka": pyspark.__version__,
        }
        if self.stack == "lambda":
            want["hadoop"] = self.compose.image_tag("namenode")
        for comp, version in want.items():
            pinned = maven.pinned_version(comp)
            if pinned != version:
                raise StackError(
                    f"{maven.pom(comp)} pins {comp} {pinned} but the {self.stack} compose file (or "
                    f"pyspark) runs {version}: set the version in the pom to {version}"
                )

    # Kafka ------------------------------------------------------------------------------------------
    def broker_names(self) -> list[str]:
        """The compose file's Kafka brokers, in its order: kafka (and kafka2, kafka3 with --nodes 3)."""
        return [n for n, v in self.compose.services.items() if str(v.get("image", "")).startswith("apache/kafka")]

    def kafka_brokers(self) -> list[Service]:
        return [self.kafka(name) for name in self.broker_names()]

    def _kafka_env(self, name: str) -> dict[str, str]:
        env = cf.kafka_env(self.compose.environment(name))
        env.update(self.overrides)
        return env

    def kafka(self, name: str = "kafka") -> Service:
        env = self._kafka_env(name)
        listeners = cf.kafka_listeners(env)
        # every broker's listeners get local ports first: a broker's voters name the other brokers
        local_ports = {}
        for b in self.broker_names():
            b_listeners = cf.kafka_listeners(self._kafka_env(b))
            local_ports[b] = {cport: self.port(f"{b}.{ln}") for ln, cport in b_listeners.items()}
        ports = {ln: local_ports[name][cport] for ln, cport in listeners.items()}
        local = cf.relocate_kafka(env, ports, self.data(name) / "log", peers=local_ports)
        # compose names the broker by its service (the first one also by its alias broker) on the
        # inter-broker (containers') listener
        inner = env.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT")
        for host in (name, "broker") if name == self.broker_names()[0] else (name,):
            self.hostmap[f"{host}:{listeners[inner]}"] = f"{HOST}:{ports[inner]}"
        conf = self.conf(name)
        (conf / "default").mkdir(exist_ok=True)
        (conf / "mounted").mkdir(exist_ok=True)
        (conf / "final").mkdir(exist_ok=True)
        (conf / "final" / "log4j2.yaml").write_text(LOG4J2_YAML)
        cp = ":".join(self.cp["kafka"])
        heap = cf.heap_flags(env.get("KAFKA_HEAP_OPTS", "-Xmx1G -Xms1G"))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_") and k != "CLUSTER_ID"}
        setup_env = {**base_env, **{k: v for k, v in local.items() if k.startswith("KAFKA_") or k == "CLUSTER_ID"}}

        def prepare():
            # the image's own entry step: env -> server.properties, then format the KRaft storage
            r = subprocess.run(
                [
                    self.java,
                    "-cp",
                    cp,
                    f"-Dlog4j2.configurationFile={conf / 'final' / 'log4j2.yaml'}",
                    "kafka.docker.KafkaDockerWrapper",
                    "setup",
                    "--default-configs-dir",
                    str(conf / "default"),
                    "--mounted-configs-dir",
                    str(conf / "mounted"),
                    "--final-configs-dir",
                    str(conf / "final"),
                ],
                env=setup_env,
                capture_output=True,
                text=True,
            )
            text = r.stdout + r.stderr
            if r.returncode != 0 and "already formatted" not in text.lower():
                raise StackError(
                    f"formatting Kafka's storage failed (exit {r.returncode}):\n  "
                    + "\n  ".join(text.strip().splitlines()[-6:])
                )

        boot = f"{HOST}:{ports[inner]}"
        return Service(
            name=name,
            compose=name,
            argv=[
                self.java,
                *heap,
                *KAFKA_JVM_OPTS,
                f"-Dlog4j2.configurationFile={conf / 'final' / 'log4j2.yaml'}",
                f"-Dkafka.logs.dir={self.dir / 'logs'}",
                f"-Dvendlab.stack={self.dir}",
                "-cp",
                cp,
                "kafka.Kafka",
                str(conf / "final" / "server.properties"),
            ],
            env=base_env,
            ports=ports,
            address=boot,
            version=maven.jar_version(self.cp["kafka"], "kafka_2.13") or "?",
            health=lambda s: _kafka_ok(s.address),
            prepare=prepare,
            extra={
                "listeners": {n: f"{HOST}:{p}" for n, p in ports.items()},
                "server_properties": str(conf / "final" / "server.properties"),
            },
        )

    # Cassandra --------------------------------------------------------------------------------------
    def cassandra_names(self) -> list[str]:
        """The compose file's Cassandra nodes, in its order: cassandra1 (and cassandra2, cassandra3)."""
        return [n for n, v in self.compose.services.items() if str(v.get("image", "")).startswith("cassandra:")]

    def cassandra_nodes(self) -> list[Service]:
        names = self.cassandra_names()
        nodes = [self.cassandra(n) for n in names]
        # one node joins at a time, as the overlay's depends_on (service_healthy) orders them: two
        # nodes bootstrapping at once is refused ("Other bootstrapping/leaving/moving nodes detected")
        for prev, node in zip(nodes, nodes[1:]):
            node.needs = (prev.name,)
        return nodes

    def cassandra_host(self, name: str) -> str:
        """Node i of the cluster listens on 127.0.0.i, every node on the same ports: the Python
        driver takes one port for all its contact points and the peers it discovers (the
        CassandraStore's hosts share one port), so nodes differ by address, as ccm runs them."""
        return f"127.0.0.{self.cassandra_names().index(name) + 1}"

    def cassandra(self, name: str = "cassandra1") -> Service:
        env = self.compose.environment(name)
        native, storage = self.port("cassandra.native"), self.port("cassandra.storage")
        jmx = self.port(f"{self.node_key(name)}.jmx")
        host = self.cassandra_host(name)
        self.hostmap[f"{name}:9042"] = f"{host}:{native}"
        self.hostmap[name] = f"{host}:{native}"
        d = self.service_data(name)
        conf = self.conf(self.node_key(name))
        # CASSANDRA_SEEDS as the image's docker-entrypoint.sh reads it (a comma list of host names;
        # default: the node's own address), each name relocated to its local address
        seeds = [x.strip() for x in env.get("CASSANDRA_SEEDS", "").split(",") if x.strip()] or [name]
        seed_hosts = ",".join(
            f"{self.cassandra_host(x) if x in self.cassandra_names() else x}:{storage}" for x in seeds
        )
        y = {
            "cluster_name": "Test Cluster",
            "num_tokens": 16,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": seed_hosts}],
                }
            ],
            "endpoint_snitch": "SimpleSnitch",
            "listen_address": host,
            "rpc_address": host,
            "storage_port": storage,
            "native_transport_port": native,
            "start_native_transport": True,
            "data_file_directories": [str(d / "data")],
            "commitlog_directory": str(d / "commitlog"),
            "saved_caches_directory": str(d / "saved_caches"),
            "hints_directory": str(d / "hints"),
            "cdc_raw_directory": str(d / "cdc_raw"),
        }
        for var, key in cf.CASSANDRA_YAML_VARS.items():
            if env.get(var):
                y[key] = int(env[var]) if key == "num_tokens" else env[var]
        import yaml

        (conf / "cassandra.yaml").write_text(yaml.safe_dump(y, sort_keys=False))
        (conf / "logback.xml").write_text(LOGBACK_XML)
        cp = self.cp["cassandra"]
        return Service(
            name=name,
            compose=name,
            argv=[
                self.java,
                *cf.cassandra_heap(env),
                *CASSANDRA_JVM17,
                "-Djava.net.preferIPv4Stack=true",
                f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
                f"-Dcassandra.storagedir={d}",
                f"-Dlogback.configurationFile={conf / 'logback.xml'}",
                f"-Dcassandra.logdir={self.dir / 'logs'}",
                f"-Dcassandra.jmx.local.port={jmx}",
                "-Dcassandra-foreground=yes",
                "-Dcassandra.skip_wait_for_gossip_to_settle=0",
                f"-Dvendlab.stack={self.dir}",
                "-cp",
                ":".join(cp),
                "org.apache.cassandra.service.CassandraDaemon",
            ],
            env=dict(os.environ),
            ports={"native": native, "storage": storage, "jmx": jmx},
            address=f"{host}:{native}",
            version=maven.jar_version(cp, "cassandra-all") or "?",
            health=lambda s: _cassandra_ok(s.address),
            extra={"heap": cf.cassandra_heap(env), "HEAP_NEWSIZE": env.get("HEAP_NEWSIZE", "")},
        )

    # Hadoop -----------------------------------------------------------------------------------------
    def hadoop(self) -> list[Service]:
        nn_rpc, nn_http = self.port("namenode.rpc"), self.port("namenode.http")
        self.hostmap["namenode:8020"] = f"{HOST}:{nn_rpc}"
        rm = {k: self.port(f"resourcemanager.{k}") for k in ("address", "scheduler", "tracker", "admin", "webapp")}
        client = self.hadoop_conf_dir("client", {})
        self.client_hadoop_conf = client
        out = []
        names = [
            s
            for s, v in self.compose.services.items()
            if str(v.get("image", "")).startswith("apache/hadoop")
            or (isinstance(v.get("command"), list) and tuple(v["command"][:2]) in HADOOP_MAIN)
        ]
        for name in names:
            cmd = tuple(self.compose.service(name)["command"][:2])
            env = self.compose.environment(name)
            role = cmd[1]
            extra: dict[str, dict[str, str]] = {}
            ports: dict[str, int] = {}
            needs: tuple[str, ...] = ()
            d = self.data(name)
            if role == "namenode":
                ports = {"rpc": nn_rpc, "http": nn_http}
                address, health = f"hdfs://{HOST}:{nn_rpc}", _namenode_ok
            elif role == "datanode":
                ports = {k: self.port(f"{name}.{k}") for k in ("data", "http", "ipc")}
                extra["hdfs-site.xml"] = {
                    "dfs.datanode.address": f"{HOST}:{ports['data']}",
                    "dfs.datanode.http.address": f"{HOST}:{ports['http']}",
                    "dfs.datanode.ipc.address": f"{HOST}:{ports['ipc']}",
                }
                address, health, needs = f"{HOST}:{ports['data']}", _port_health("data"), ("namenode",)
            elif role == "resourcemanager":
                ports = rm
                address, health, needs = f"http://{HOST}:{rm['webapp']}", _rm_ok, ("namenode",)
            else:
                ports = {k: self.port(f"{name}.{k}") for k in ("address", "localizer", "webapp", "shuffle")}
                extra["yarn-site.xml"] = {
                    "yarn.nodemanager.address": f"{HOST}:{ports['address']}",
                    "yarn.nodemanager.localizer.address": f"{HOST}:{ports['localizer']}",
                    "yarn.nodemanager.webapp.address": f"{HOST}:{ports['webapp']}",
                    "mapreduce.shuffle.port": str(ports["shuffle"]),
                    "yarn.nodemanager.local-dirs": str(d / "local"),
                    "yarn.nodemanager.log-dirs": str(self.dir / "logs" / f"{name}-containers"),
                }
                address, health, needs = (
                    f"http://{HOST}:{ports['webapp']}",
                    _port_health("webapp"),
                    ("resourcemanager",),
                )
            extra.setdefault("core-site.xml", {})["hadoop.tmp.dir"] = str(d / "tmp")
            if role == "namenode":
                extra.setdefault("hdfs-site.xml", {})["dfs.namenode.name.dir"] = str(d / "name")
            if role == "datanode":
                extra["hdfs-site.xml"]["dfs.datanode.data.dir"] = str(d / "data")
            conf = self.hadoop_conf_dir(name, extra)
            cp = [str(conf)] + self.cp["hadoop"]
            heap = [f"-Xmx{env['HADOOP_HEAPSIZE_MAX']}"] if env.get("HADOOP_HEAPSIZE_MAX") else []
            prepare = self._format_namenode(cp, d) if role == "namenode" else None
            out.append(
                Service(
                    name=name,
                    compose=name,
                    argv=[
                        self.java,
                        *heap,
                        *HADOOP_JVM17,
                        f"-Dhadoop.log.dir={self.dir / 'logs'}",
                        f"-Dvendlab.stack={self.dir}",
                        "-Dhadoop.root.logger=INFO,console",
                        "-cp",
                        ":".join(cp),
                        HADOOP_MAIN[cmd],
                    ],
                    env={
                        **os.environ,
                        "HADOOP_CONF_DIR": str(conf),
                        "JAVA_HOME": java_home(self.java),
                        "HADOOP_USER_NAME": os.environ.get("USER", "root"),
                    },
                    ports=ports,
                    address=address,
                    version=maven.jar_version(self.cp["hadoop"], "hadoop-common") or "?",
                    health=health,
                    needs=needs,
                    prepare=prepare,
                    extra={"conf": str(conf)},
                )
            )
        return out

    def hadoop_conf_dir(self, name: str, extra: dict[str, dict[str, str]]) -> Path:
        """The site files of hadoop.env by the image's rule, addresses relocated, plus ``extra``."""
        envs = {}
        for svc in self.compose.services:
            if str(self.compose.service(svc).get("image", "")).startswith("apache/hadoop"):
                envs = self.compose.environment(svc)
                break
        files = hadoop_site_files(envs)
        nn = self.hostmap.get("namenode:8020")
        rm = {
            k: self.state["ports"][f"resourcemanager.{k}"]
            for k in ("address", "scheduler", "tracker", "admin", "webapp")
        }
        files.setdefault("core-site.xml", {})
        files.setdefault("hdfs-site.xml", {})
        files.setdefault("yarn-site.xml", {})
        for props in files.values():
            for k, v in props.items():
                props[k] = relocate(v, self.hostmap)
        if files["yarn-site.xml"].get("yarn.resourcemanager.hostname"):
            files["yarn-site.xml"]["yarn.resourcemanager.hostname"] = HOST
        files["yarn-site.xml"].update(
            {
                "yarn.resourcemanager.address": f"{HOST}:{rm['address']}",
                "yarn.resourcemanager.scheduler.address": f"{HOST}:{rm['scheduler']}",
                "yarn.resourcemanager.resource-tracker.address": f"{HOST}:{rm['tracker']}",
                "yarn.resourcemanager.admin.address": f"{HOST}:{rm['admin']}",
                "yarn.resourcemanager.webapp.address": f"{HOST}:{rm['webapp']}",
            }
        )
        files["hdfs-site.xml"].update(
            {
                "dfs.namenode.http-address": f"{HOST}:{self.state['ports']['namenode.http']}",
                "dfs.namenode.rpc-address": nn,
                "dfs.datanode.hostname": HOST,
            }
        )
        for props in files.values():  # every bind host (0.0.0.0 in hadoop.env): loopback here
            for k in props:
                if k.endswith("bind-host"):
                    props[k] = HOST
        for fname, props in extra.items():
            files.setdefault(fname, {}).update(props)
        conf = self.conf(name)
        for fname, props in files.items():
            (conf / fname).write_text(site_xml(props))
        (conf / "log4j.properties").write_text(HADOOP_LOG4J)
        # HDFS's web UI pages ship in the distribution's share/hadoop/hdfs/webapps, not in the Maven jars;
        # the HTTP servers only need the folders on the class path (their servlets: JMX, WebHDFS)
        for app in ("hdfs", "datanode", "secondary", "journal"):
            (conf / "webapps" / app).mkdir(parents=True, exist_ok=True)
        return conf

    def _format_namenode(self, cp: list[str], d: Path):
        def prepare():
            # the image's ENSURE_NAMENODE_DIR step: format when the name folder does not exist yet
            if (d / "name" / "current").exists():
                return
            r = subprocess.run(
                [
                    self.java,
                    "-cp",
                    ":".join(cp),
                    HADOOP_MAIN[("hdfs", "namenode")],
                    "-format",
                    "-force",
                    "-nonInteractive",
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise StackError("formatting the namenode failed:\n  " + "\n  ".join(r.stderr.splitlines()[-6:]))

        return prepare

    # Spark ------------------------------------------------------------------------------------------
    def spark(self) -> list[Service]:
        home = spark_home()
        mport, mweb = self.port("spark-master.port"), self.port("spark-master.webui")
        self.hostmap["spark-master:7077"] = f"{HOST}:{mport}"
        out = []
        master_svc = self.compose.service("spark-master")
        base = {k: v for k, v in self.compose.environment("spark-master").items() if k.startswith("SPARK_")}
        daemon_env = {
            **os.environ,
            **base,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": HOST,
            "SPARK_CONF_DIR": str(self.spark_conf_dir()),
            "PYSPARK_PYTHON": sys.executable,
            "PYTHONPATH": str(REPO),
        }
        master_args = _arg_map(master_svc["command"], {"--host": HOST, "--port": str(mport), "--webui-port": str(mweb)})
        out.append(
            Service(
                name="spark-master",
                compose="spark-master",
                argv=[str(home / "bin" / "spark-class"), *master_args[1:]],
                env={**daemon_env, "SPARK_DAEMON_JAVA_OPTS": f"-Dvendlab.stack={self.dir}"},
                ports={"port": mport, "webui": mweb},
                address=f"spark://{HOST}:{mport}",
                version=_pyspark_version(),
                health=lambda s: http_ok(f"http://{HOST}:{s.ports['webui']}/json/") is not None,
                extra={"webui": f"http://{HOST}:{mweb}"},
            )
        )
        for w, template in self.worker_names():
            env = {k: v for k, v in self.compose.environment(template).items() if k.startswith("SPARK_")}
            wport, wweb = self.port(f"{w}.port"), self.port(f"{w}.webui")
            work = self.data(w)
            args = _arg_map(self.compose.service(template)["command"], {"--webui-port": str(wweb)})
            args = [relocate(a, self.hostmap) for a in args[1:]]
            out.append(
                Service(
                    name=w,
                    compose=w,
                    argv=[
                        str(home / "bin" / "spark-class"),
                        *args[:1],
                        "--host",
                        HOST,
                        "--port",
                        str(wport),
                        "--work-dir",
                        str(work),
                        *args[1:],
                    ],
                    env={**daemon_env, **env, "SPARK_DAEMON_JAVA_OPTS": f"-Dvendlab.stack={self.dir}"},
                    ports={"port": wport, "webui": wweb},
                    address=f"{HOST}:{wport}",
                    version=_pyspark_version(),
                    health=_worker_ok(mweb, wport),
                    needs=("spark-master",),
                )
            )
        return out

    def worker_names(self) -> list[tuple[str, str]]:
        """(worker, the compose service it is configured from): the compose file's spark-worker-1, -2,
        ..., or with --spark-workers N the first N of them and, past them, spark-worker-3, -4, ...
        configured as the last one (what `docker compose up --scale` would add)."""
        named = self.compose.services_like("spark-worker")
        if not named:
            raise StackError(f"the {self.stack} compose file has no spark-worker service")
        n = self.spark_workers or len(named)
        return [(named[i], named[i]) if i < len(named) else (f"spark-worker-{i + 1}", named[-1]) for i in range(n)]

    def spark_conf_dir(self) -> Path:
        """spark-defaults.conf with Spark's Kafka source on spark.jars (the compose image bakes it in)."""
        conf = self.conf("spark")
        have = {_artifact(p.name) for p in (spark_home() / "jars").glob("*.jar")}
        jars = [j for j in self.cp["spark-kafka"] if _artifact(Path(j).name) not in have]
        (conf / "spark-defaults.conf").write_text(
            "# vendlab local stack: Spark's Kafka source (resolved by Maven, see vendlab/localstack/maven/)\n"
            f"spark.jars {','.join(jars)}\n"
        )
        return conf

    # -- client environment ---------------------------------------------------------------------------
    def client_env(self) -> dict[str, str]:
        """What a job, the generator or the validation consumer gets in the Spark containers
        (x-spark environment of the compose file), pointed at the local services."""
        src = self.compose.environment("spark-master")
        env = {
            k: relocate(v, self.hostmap) for k, v in src.items() if k.startswith("VENDLAB_") or k == "HADOOP_USER_NAME"
        }
        vols = {}
        for v in self.compose.service("spark-master").get("volumes") or []:
            if isinstance(v, str) and ":" in v:
                name, mount = v.split(":")[:2]
                vols[mount] = self.data("volumes") / name
        for k, v in env.items():
            for mount, local in vols.items():
                if v.startswith(f"file://{mount}"):
                    env[k] = "file://" + str(local) + v[len(f"file://{mount}") :]
        env["SPARK_CONF_DIR"] = str(self.conf("spark"))
        env["PYSPARK_PYTHON"] = sys.executable
        env["SPARK_LOCAL_IP"] = HOST  # the drivers bind to loopback like the services
        if self.stack == "lambda":
            env["HADOOP_CONF_DIR"] = str(self.dir / "conf" / "client")
            env["YARN_CONF_DIR"] = env["HADOOP_CONF_DIR"]
        return env

    def env(self) -> dict[str, str]:
        return dict(self.state.get("client_env", {}))

    def java_path(self) -> str:
        return getattr(self, "java", None) or maven.check_tools()[0]

    def tool(self, name: str) -> list[str]:
        """argv of a service's CLI tool: kafka-topics, kafka-configs, kafka-storage, hdfs (FsShell: dfs commands),
        dfsadmin, yarn-application, spark-submit."""
        t = self.state.get("tools", {})
        if name not in t:
            raise StackError(
                f"no tool {name!r} in this {self.stack} stack (tools: {', '.join(t)}); a stack started "
                f"by an older vendlab lacks newer tools: run `vendlab stack up --stack {self.stack} "
                f"--dir {self.dir}` again (it keeps what runs and records the tools)"
            )
        return list(t[name])

    def _tools(self) -> dict[str, list[str]]:
        kcp = ":".join(self.cp["kafka"])
        t = {
            "kafka-topics": [self.java, "-Xmx256m", "-cp", kcp, "org.apache.kafka.tools.TopicCommand"],
            "kafka-storage": [self.java, "-Xmx256m", "-cp", kcp, "kafka.tools.StorageTool"],
            "kafka-configs": [self.java, "-Xmx256m", "-cp", kcp, "kafka.admin.ConfigCommand"],
            "spark-submit": [str(spark_home() / "bin" / "spark-submit")],
        }
        if self.stack == "lambda":
            hcp = ":".join([str(self.dir / "conf" / "client")] + self.cp["hadoop"])
            t["hdfs"] = [self.java, "-Xmx256m", "-cp", hcp, "org.apache.hadoop.fs.FsShell"]
            t["dfsadmin"] = [self.java, "-Xmx256m", "-cp", hcp, "org.apache.hadoop.hdfs.tools.DFSAdmin"]
            t["yarn-application"] = [
                self.java,
                "-Xmx256m",
                "-cp",
                hcp,
                "org.apache.hadoop.yarn.client.cli.ApplicationCLI",
                "application",
            ]
        return t

    # -- commands -------------------------------------------------------------------------------------
    def up(self, timeout: float = 300.0, only: list[str] | None = None) -> dict:
        """Start the stack's services (those named in ``only``, with what they need, if given) and wait for
        every one to be healthy."""
        services = self.plan()
        if only is not None:
            names = [s.name for s in services]
            unknown = sorted(set(only) - set(names))
            if unknown:
                raise StackError(
                    f"no service {', '.join(unknown)} in the {self.stack} stack; it has {', '.join(names)}"
                )
            wanted = set(only)
            for s in reversed(services):  # compose order: a service's needs come before it
                if s.name in wanted:
                    wanted.update(s.needs)
            services = [s for s in services if s.name in wanted]
        self.state["stack"] = self.stack
        self.state["nodes"] = self.nodes
        self.state["spark_workers"] = self.spark_workers
        self.state["overrides"] = self.overrides
        known = self.state.setdefault("services", {})
        started: list[str] = []
        by_name = {s.name: s for s in services}
        deadline = time.monotonic() + timeout
        for s in services:  # every service whose dependencies are healthy, in the compose order
            for need in s.needs:
                self._wait(by_name[need], deadline)
            old = known.get(s.name, {})
            if old.get("pid") and pid_alive(old["pid"], str(self.dir)):
                s.pid = old["pid"]
                self.say(f"{s.name}: already running (pid {s.pid})")
            else:
                if s.prepare:
                    s.prepare()
                s.pid = self._spawn(s)
                started.append(s.name)
                self.say(f"{s.name}: started (pid {s.pid}, {s.address}, log {self.log(s.name)})")
            known[s.name] = self._record(s)
            self.write_state()
        for s in services:
            self._wait(s, deadline)
        self.state["client_env"] = self.client_env()
        self.state["tools"] = self._tools()
        self.write_state()
        (self.dir / "client-env.json").write_text(json.dumps(self.state["client_env"], indent=2))
        self.say(f"{self.stack} stack up in {self.dir}: " + ", ".join(s.name for s in services))
        return self.status()

    def _record(self, s: Service) -> dict:
        return {
            "compose": s.compose,
            "pid": s.pid,
            "address": s.address,
            "ports": s.ports,
            "version": s.version,
            "log": str(self.log(s.name)),
            "argv": s.argv,
            "extra": s.extra,
            # the service's environment as a difference from this one's, for start_service
            "env": {k: v for k, v in s.env.items() if os.environ.get(k) != v},
            "env_unset": sorted(k for k in os.environ if k not in s.env),
        }

    def _spawn(self, s: Service) -> int:
        log = open(self.log(s.name), "ab")
        log.write(f"\n=== vendlab stack: starting {s.name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        p = subprocess.Popen(
            s.argv,
            env=s.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.data(s.name),
            start_new_session=True,
        )
        log.close()
        self._children = getattr(self, "_children", {})
        self._children[s.name] = p
        return p.pid

    def _wait(self, s: Service, deadline: float) -> None:
        said = 0.0
        while True:
            if s.pid is None or not pid_alive(s.pid, str(self.dir)) and not _child_alive(self, s.name):
                raise StackError(
                    f"{s.name} stopped while starting; see its log: {self.log(s.name)}\n  "
                    + "\n  ".join(_tail(self.log(s.name), 8))
                )
            if s.health(s):
                return
            now = time.monotonic()
            if now > deadline:
                raise StackError(
                    f"time-out waiting for {s.name} to be healthy ({s.address}); see its log: {self.log(s.name)}"
                )
            if now - said > 10:
                self.say(f"  waiting for {s.name} ({s.address})")
                said = now
            time.sleep(1.0)

    def status(self) -> dict:
        """{stack, dir, services: {name: {address, pid, version, healthy, running, log}}, env, jobs: {name:
        {running, state, pid, supervisor_pid, restart, restarts, last_exit_code, last_exit_at, started_at,
        log}}} (jobs: those launched by vendlab.localstack.jobs, from their supervisors' status files)."""
        from vendlab.localstack.supervise import jobs_status

        out = {"stack": self.stack, "dir": str(self.dir), "services": {}, "env": self.env()}
        out["jobs"] = jobs_status(self.dir / "jobs")
        for name, rec in self.state.get("services", {}).items():
            running = bool(rec.get("pid")) and pid_alive(rec["pid"], str(self.dir))
            out["services"][name] = {
                "address": rec["address"],
                "pid": rec["pid"] if running else None,
                "version": rec["version"],
                "running": running,
                "healthy": running and _health_of(name, rec),
                "log": rec["log"],
            }
        return out

    # -- one service or job on purpose: vendlab stack stop|start ----------------------------------------
    def _runner(self):
        from vendlab.localstack.jobs import LocalRunner

        return LocalRunner(self)

    def names(self) -> tuple[list[str], list[str]]:
        """(the services of stack.json in their start order, the jobs launched on this stack)."""
        return list(self.state.get("services", {})), self._runner().names() if self._has_jobs() else []

    def _has_jobs(self) -> bool:
        return (self.dir / "jobs").is_dir()  # (a LocalRunner makes it: not made here for nothing)

    def _named(self, names: list[str]) -> tuple[list[str], list[str]]:
        services, jobs = self.names()
        unknown = [n for n in names if n not in services and n not in jobs]
        if unknown:
            raise StackError(
                f"no service or job named {', '.join(unknown)} in the {self.stack} stack in {self.dir}; "
                f"services: {', '.join(services) or '(none)'}; jobs: {', '.join(jobs) or '(none launched)'}"
            )
        return [n for n in services if n in names], [n for n in jobs if n in names]

    def stop(self, names: list[str], timeout: float = 60.0) -> None:
        """Stop services and jobs on purpose: the jobs first (SIGINT to the supervisor, which forwards it
        and does not restart the job), then the services in the reverse of their start order (SIGTERM);
        SIGKILL after ``timeout`` seconds."""
        services, jobs = self._named(names)
        runner = self._runner()
        for name in jobs:
            st = runner.observe(name) or {}
            if not runner.running(name):
                self.say(f"{name}: not running ({st.get('state') or 'stopped'})")
                continue
            self.say(f"{name}: stopping (SIGINT, SIGKILL after {timeout:g} s)")
            runner.signal(name, signal.SIGINT, wait=timeout)
            st = runner.status(name) or {}
            self.say(
                f"{name}: stopped on purpose (exit {describe_exit(st.get('last_exit_code'))}); restart "
                f"{st.get('restart', 'no')} does not restart it: `vendlab stack start --dir {self.dir} {name}` does"
            )
        for name in reversed(services):
            rec = self.state["services"][name]
            pid = rec.get("pid")
            if self.stop_service(name, timeout):
                self.say(f"{name}: stopped (pid {pid}, SIGTERM)")
            else:
                self.say(f"{name}: not running")
            rec["pid"] = None
            self.write_state()

    def start(self, names: list[str], timeout: float = 300.0) -> None:
        """Start stopped services (in their start order, each waited for until healthy, as ``up`` does),
        then stopped jobs under a new supervisor with their recorded command and restart policy."""
        services, jobs = self._named(names)
        deadline = time.monotonic() + timeout
        for name in services:
            self.start_service(name, max(1.0, deadline - time.monotonic()))
        runner = self._runner()
        for name in jobs:
            seen = runner.observe(name) or {}
            if not runner.relaunch(name):
                self.say(
                    f"{name}: already running (pid {seen.get('pid') or runner.pid(name)}"
                    + (
                        "; orphaned: its supervisor was killed, nothing restarts it: stop it and start it "
                        "to supervise it again)"
                        if seen.get("state") == "orphaned"
                        else ")"
                    )
                )
                continue
            st = runner.status(name) or {}
            self.say(
                f"{name}: started (pid {st.get('pid')}, supervisor {st.get('supervisor_pid')}, restart "
                f"{st.get('restart', 'no')}, log {st.get('log')})"
            )

    def stop_service(self, name: str, timeout: float = 30.0) -> bool:
        rec = self.state.get("services", {}).get(name)
        if not rec or not rec.get("pid") or not pid_alive(rec["pid"], str(self.dir)):
            return False
        _terminate(rec["pid"], timeout, str(self.dir))
        child = getattr(self, "_children", {}).get(name)
        if child is not None:
            child.poll()
        return True

    def start_service(self, name: str, timeout: float = 180.0) -> None:
        """Start one stopped service again (same argv, same ports, same data)."""
        rec = self.state["services"][name]
        if rec.get("pid") and pid_alive(rec["pid"], str(self.dir)):
            self.say(f"{name}: already running (pid {rec['pid']})")
            return
        s = Service(
            name=name,
            compose=rec["compose"],
            argv=rec["argv"],
            env=_service_env(rec),
            ports=rec["ports"],
            address=rec["address"],
            version=rec["version"],
            health=lambda s: _health_of(name, rec),
        )
        s.pid = self._spawn(s)
        rec["pid"] = s.pid
        self.write_state()
        self.say(f"{name}: started (pid {s.pid}, {s.address}, log {self.log(name)})")
        self._wait(s, time.monotonic() + timeout)
        self.say(f"{name}: healthy")

    def restart_kafka(self, overrides: dict[str, str], timeout: float = 180.0) -> None:
        """Stop the broker, add KAFKA_* ``overrides`` to the compose file's (the image's rule turns them
        into properties), start it again on the same ports and data."""
        self.stop_service("kafka")
        self.overrides.update(overrides)
        self.state["overrides"] = self.overrides
        self.load()
        s = self.kafka()
        s.prepare()
        s.pid = self._spawn(s)
        self.state["services"]["kafka"] = self._record(s)
        self.write_state()
        self._wait(s, time.monotonic() + timeout)

    def down(self, purge: bool = False) -> list[str]:
        """Stop the jobs launched on the stack (on purpose: none is restarted into a stopping stack, none
        is left behind), then the services in the reverse of their start order."""
        stopped = []
        for name in self._runner().stop_all() if self._has_jobs() else []:
            stopped.append(name)
            self.say(f"{name}: stopped (job)")
        for name in reversed(list(self.state.get("services", {}))):
            if self.stop_service(name):
                stopped.append(name)
                self.say(f"{name}: stopped")
            self.state["services"][name]["pid"] = None
        self.write_state()
        if purge:
            for sub in ("data", "conf", "logs"):
                shutil.rmtree(self.dir / sub, ignore_errors=True)
            for f in (STATE, "client-env.json"):
                (self.dir / f).unlink(missing_ok=True)
            self.say(f"removed the stack's data, configuration and logs in {self.dir}")
        return stopped


def _service_env(rec: dict) -> dict[str, str]:
    """A restarted service's environment: this one, changed as its record says (``env``, ``env_unset``:
    what ``up`` gave it, e.g. the Spark workers' SPARK_WORKER_* and SPARK_DAEMON_JAVA_OPTS, the Hadoop
    daemons' HADOOP_CONF_DIR and JAVA_HOME, Kafka without the KAFKA_* of this shell). A record written
    before those fields: HADOOP_CONF_DIR only."""
    unset = set(rec.get("env_unset", ()))
    env = {k: v for k, v in os.environ.items() if k not in unset}
    if "env" in rec:
        return env | rec["env"]
    if "conf" in rec.get("extra", {}):
        env["HADOOP_CONF_DIR"] = rec["extra"]["conf"]
    return env


def _child_alive(stack: LocalStack, name: str) -> bool:
    child = getattr(stack, "_children", {}).get(name)
    return child is not None and child.poll() is None


def _terminate(pid: int, timeout: float, marker: str) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid, marker):
            break
        try:  # reap it when it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.3)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _tail(path: Path, n: int) -> list[str]:
    try:
        return path.read_text(errors="replace").strip().splitlines()[-n:]
    except OSError:
        return []


def _artifact(jar_name: str) -> str:
    """artifact id of a jar file name (name-1.2.3.jar -> name)."""
    m = re.match(r"(.+?)-\d[\w.\-]*\.jar$", jar_name)
    return m.group(1) if m else jar_name


def _pyspark_version() -> str:
    import pyspark

    return pyspark.__version__


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        # as the servers do: a port in TIME_WAIT after a stop is still ours to reuse
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def relocate(value: str, hostmap: dict[str, str]) -> str:
    """Replace compose host names (host:port first, then a bare host) with local addresses."""
    for k in sorted(hostmap, key=len, reverse=True):
        if ":" in k:
            value = re.sub(rf"(?<![\w.-]){re.escape(k)}(?!\d)", hostmap[k], value)
    for k in hostmap:
        if ":" not in k:
            value = re.sub(rf"(?<![\w.:/-]){re.escape(k)}(?![\w.:-])", hostmap[k], value)
    return value


def _arg_map(cmd: list[str], values: dict[str, str]) -> list[str]:
    """A compose command with the values of some --flags replaced."""
    out = list(cmd)
    for i, a in enumerate(out[:-1]):
        if a in values:
            out[i + 1] = values[a]
    return out


# -- health checks -------------------------------------------------------------------------------------
def _kafka_ok(bootstrap: str) -> bool:
    if not port_open(int(bootstrap.rsplit(":", 1)[1])):
        return False
    try:
        from confluent_kafka.admin import AdminClient

        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
        return True
    except Exception:
        return False


def _cassandra_ok(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    if not port_open(int(port), host):
        return False
    try:
        from cassandra.cluster import Cluster

        c = Cluster([host], port=int(port), connect_timeout=5, protocol_version=5)
        try:
            c.connect().execute("SELECT release_version FROM system.local")
            return True
        finally:
            c.shutdown()
    except Exception:
        return False


def _namenode_ok(s) -> bool:
    body = http_ok(f"http://{HOST}:{s.ports['http']}/jmx?qry=Hadoop:service=NameNode,name=NameNodeInfo")
    if not body:
        return False
    # up and answering; not "out of safe mode": after a restart with blocks on the datanodes, the namenode
    # leaves safe mode only once they report, and they start after it (issue 13, defect 3)
    return bool(json.loads(body).get("beans"))


def _rm_ok(s) -> bool:
    return http_ok(f"http://{HOST}:{s.ports['webapp']}/ws/v1/cluster/info") is not None


def _port_health(role: str):
    return lambda s: port_open(s.ports[role])


def _worker_ok(master_web: int, worker_port: int):
    def ok(s) -> bool:
        body = http_ok(f"http://{HOST}:{master_web}/json/")
        if not body:
            return False
        return any(
            w.get("state") == "ALIVE" and str(w.get("port")) == str(worker_port)
            for w in json.loads(body).get("workers", [])
        )

    return ok


def _health_of(name: str, rec: dict) -> bool:
    """Health from a stack.json record (status, restarts)."""
    ports = rec.get("ports", {})
    ns = type("S", (), {"ports": ports, "address": rec["address"]})
    if name.startswith("kafka") and name != "kafka-ui":
        return _kafka_ok(rec["address"])
    if name.startswith("cassandra"):
        return _cassandra_ok(rec["address"])
    if name == "spark-master":
        return http_ok(f"http://{HOST}:{ports['webui']}/json/") is not None
    if "namenode" in name:
        return _namenode_ok(ns)
    if "resourcemanager" in name:
        return _rm_ok(ns)
    role = "data" if "data" in ports else "webapp" if "webapp" in ports else "webui" if "webui" in ports else None
    return port_open(ports[role]) if role else False


LOG4J2_YAML = """Configuration:
  Appenders:
    Console: {name: STDOUT, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: STDOUT}]}
"""
LOGBACK_XML = """<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""
HADOOP_LOG4J = """log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
"""
