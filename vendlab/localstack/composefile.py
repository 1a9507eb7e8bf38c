"""Read the compose stacks' own configuration (kappa/ and lambda/ docker-compose.yml, lambda/hadoop.env)
at run time, so that the local stack runs with the settings the containers get.

Nothing here copies a value out of those files: a setting that is wrong in compose is wrong in the
local stack too. Two image rules turn that configuration into the services' files:

- Kafka: the apache/kafka image's ``kafka.docker.KafkaDockerWrapper`` (in the very kafka_2.13 jar the
  broker runs) turns the ``KAFKA_*`` variables into server.properties; vendlab.localstack.stack runs it.
  The image's scripts first fill a few variables when unset (docker/resources/common-scripts/
  configureDefaults) and derive KAFKA_LISTENERS from KAFKA_ADVERTISED_LISTENERS when unset
  (.../configure); ``kafka_env`` applies those two steps.
- Hadoop: the apache/hadoop image's envtoconf.py (scripts/envtoconf.py, transformation.py of the
  hadoop-runner image): ``vendlab.compose_conf.hadoop_site_files`` (one port of the rule, shared with the
  compose tests), rendered by ``vendlab.compose_conf.site_xml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from vendlab.compose_conf import parse_env_file

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("kappa", "lambda")
# The scaled-out topology: the overlay next to each stack's docker-compose.yml, which
# `docker compose -f docker-compose.yml -f docker-compose.ha.yml` and `start_*.py --nodes 3` use.
HA_OVERLAY = "docker-compose.ha.yml"
NODES = (1, 3)


class ComposeError(Exception):
    """A compose file lacks what the local stack needs (the message says what and where)."""


@dataclass(frozen=True)
class ComposeStack:
    name: str
    path: Path
    doc: dict

    @property
    def services(self) -> dict:
        return self.doc.get("services") or {}

    def service(self, name: str) -> dict:
        try:
            return self.services[name]
        except KeyError:
            raise ComposeError(f"{self.path} has no service {name!r} (services: {', '.join(self.services)})") from None

    def environment(self, name: str) -> dict[str, str]:
        """The service's environment as a container gets it: its env_file(s), then `environment`."""
        svc = self.service(name)
        env: dict[str, str] = {}
        files = svc.get("env_file") or []
        for f in [files] if isinstance(files, (str, dict)) else files:
            f = f["path"] if isinstance(f, dict) else f
            env.update(parse_env_file((self.path.parent / f).read_text()))
        raw = svc.get("environment") or {}
        if isinstance(raw, list):
            for item in raw:
                k, _, v = str(item).partition("=")
                env[k] = v
        else:
            env.update({k: "" if v is None else str(v) for k, v in raw.items()})
        return env

    def image_tag(self, name: str) -> str:
        image = self.service(name).get("image", "")
        if ":" not in image:
            raise ComposeError(f"service {name!r} in {self.path} has no pinned image tag ({image!r})")
        return image.rsplit(":", 1)[1]

    def services_like(self, prefix: str) -> list[str]:
        return sorted(s for s in self.services if s.startswith(prefix))


def load(stack: str, root: Path = ROOT, nodes: int = 1) -> ComposeStack:
    """The stack's compose file; with ``nodes=3`` merged with its HA overlay as ``docker compose -f
    docker-compose.yml -f docker-compose.ha.yml`` merges them (see ``merge``)."""
    if stack not in STACKS:
        raise ComposeError(f"unknown stack {stack!r}: allowed are {', '.join(STACKS)}")
    if nodes not in NODES:
        raise ComposeError(f"--nodes {nodes}: allowed are {', '.join(map(str, NODES))}")
    path = root / stack / "docker-compose.yml"
    if not path.exists():
        raise ComposeError(f"{path} not found")
    doc = yaml.safe_load(path.read_text()) or {}
    if nodes > 1:
        ha = path.parent / HA_OVERLAY
        if not ha.exists():
            raise ComposeError(f"{ha} not found (the {nodes}-node topology of the {stack} stack)")
        doc = merge(doc, yaml.safe_load(ha.read_text()) or {})
    return ComposeStack(stack, path, doc)


# Compose's merge rules for the keys the local stack reads (compose-spec "Merge and override"):
# mappings merge key by key, `environment` (list or mapping form) merges by variable, and the
# sequences compose appends to are appended; any other value of the overlay replaces the base's.
_APPENDED = ("ports", "expose", "volumes", "env_file", "dns", "extra_hosts")


def merge(base, over, key: str = ""):
    if key in ("environment", "labels"):
        return {**_as_mapping(base), **_as_mapping(over)}
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, k) if k in base else v
        return out
    if key in _APPENDED and isinstance(base, list) and isinstance(over, list):
        return base + [v for v in over if v not in base]
    return over


def _as_mapping(value) -> dict:
    if isinstance(value, list):
        return dict(str(item).partition("=")[::2] for item in value)
    return dict(value or {})


# -- Kafka ----------------------------------------------------------------------------------------------
# apache/kafka docker/resources/common-scripts/configureDefaults: set only when the variable is unset
# (the script skips this step when KAFKA_ZOOKEEPER_CONNECT is set).
KAFKA_IMAGE_DEFAULTS = {
    "CLUSTER_ID": "5L6g3nShT-eMCtK--X86sw",
    "KAFKA_NODE_ID": "1",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
    "KAFKA_LISTENERS": "PLAINTEXT://localhost:29092,CONTROLLER://localhost:29093,PLAINTEXT_HOST://0.0.0.0:9092",
    "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:29092,PLAINTEXT_HOST://localhost:9092",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:29093",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LOG_DIRS": "/tmp/kraft-combined-logs",
}
# Variables holding host:port addresses, rewritten to loopback ports (nothing else is changed).
KAFKA_ADDRESS_VARS = ("KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS", "KAFKA_CONTROLLER_QUORUM_VOTERS")
_LISTENER = re.compile(r"([A-Za-z0-9_]+)://([^:,]*):(\d+)")


def kafka_env(compose_env: dict[str, str]) -> dict[str, str]:
    """The broker's variables after the image's configureDefaults and configure steps."""
    env = dict(compose_env)
    if not env.get("KAFKA_ZOOKEEPER_CONNECT"):
        for k, v in KAFKA_IMAGE_DEFAULTS.items():
            if not env.get(k):
                env[k] = v
    if (
        not env.get("KAFKA_LISTENERS")
        and env.get("KAFKA_PROCESS_ROLES") != "controller"
        and env.get("KAFKA_ADVERTISED_LISTENERS")
    ):
        env["KAFKA_LISTENERS"] = re.sub(r"://[^:]*:", "://0.0.0.0:", env["KAFKA_ADVERTISED_LISTENERS"])
    return env


def kafka_listeners(env: dict[str, str]) -> dict[str, int]:
    """Listener name -> container port, from KAFKA_LISTENERS."""
    return {m.group(1): int(m.group(3)) for m in _LISTENER.finditer(env.get("KAFKA_LISTENERS", ""))}


def relocate_kafka(
    env: dict[str, str],
    ports: dict[str, int],
    log_dir: Path,
    host: str = "127.0.0.1",
    peers: dict[str, dict[int, int]] | None = None,
) -> dict[str, str]:
    """Only addresses and the data folder change: every listener keeps its name and protocol, and
    gets ``host`` and its new port (``ports``: listener name -> port); the quorum voters follow the
    controller listener's port. ``peers`` (the other brokers of a cluster: compose service name ->
    {container port: local port}) relocates an address naming another broker, such as its entry in
    KAFKA_CONTROLLER_QUORUM_VOTERS (``2@kafka2:29093``), to that broker's local port."""
    old = kafka_listeners(env)
    missing = [n for n in old if n not in ports]
    if missing:
        raise ComposeError(f"no local port for Kafka listener(s) {', '.join(missing)}")
    by_old_port = {old[n]: ports[n] for n in old}
    peers = peers or {}

    def local(m: re.Match) -> str:
        name, port = m.group(2), int(m.group(3))
        table = peers.get(name, by_old_port)
        if port not in table:
            if name in peers:
                raise ComposeError(f"{m.group(0)!r} names a port that {name} does not listen on")
            return f"{m.group(1)}{host}:{port}"
        return f"{m.group(1)}{host}:{table[port]}"

    out = dict(env)
    for var in KAFKA_ADDRESS_VARS:
        if var not in out:
            continue
        out[var] = re.sub(r"(@|://)([^:,@/]*):(\d+)", local, out[var])
    out["KAFKA_LOG_DIRS"] = str(log_dir)
    return out


def heap_flags(value: str) -> list[str]:
    """KAFKA_HEAP_OPTS-like text -> JVM flags."""
    return value.split()


# -- Cassandra ------------------------------------------------------------------------------------------
# The cassandra image's docker-entrypoint.sh maps these variables onto cassandra.yaml keys.
CASSANDRA_YAML_VARS = {
    "CASSANDRA_CLUSTER_NAME": "cluster_name",
    "CASSANDRA_NUM_TOKENS": "num_tokens",
    "CASSANDRA_ENDPOINT_SNITCH": "endpoint_snitch",
}


def cassandra_heap(env: dict[str, str]) -> list[str]:
    """cassandra-env.sh: -Xms and -Xmx from MAX_HEAP_SIZE. HEAP_NEWSIZE becomes -Xmn only with CMS;
    Cassandra 5.0 on Java 17 runs G1 (conf/jvm17-server.options), where cassandra-env.sh leaves the
    young generation to G1, so it is recorded but not applied."""
    if not env.get("MAX_HEAP_SIZE"):
        return []
    return [f"-Xms{env['MAX_HEAP_SIZE']}", f"-Xmx{env['MAX_HEAP_SIZE']}"]
