"""Which services a cluster-mode command needs, and a clear error when one is not there.

The cluster-mode commands (``vendlab produce|validate|job --profile compose``) normally run inside a
compose stack, where the start scripts start them once every service is healthy. Run by hand
elsewhere, the names ``kafka``, ``cassandra1``, ``spark-master`` and ``namenode`` do not resolve,
and each client library fails its own way (a librdkafka metadata error, Cassandra's
``UnresolvableContactPoints``, a Java ``UnknownHostException`` inside Spark's stack trace).
``require`` checks each needed address first (name resolution, then a TCP connect, retried for a
few seconds so that a service still starting is waited for) and names the service, the address,
the variable that sets it and how to start it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from vendlab.config import Profile


def how_to_start() -> str:
    from vendlab.project_venv import vendlab_command

    return (
        "Start the stack with ./kappa/start_kappa.py or ./lambda/start_lambda.py (Docker; they run this command "
        f"inside it), or run the services here with `{vendlab_command()} stack up --stack kappa|lambda --dir DIR` "
        "and `./kappa/start_kappa.py --local DIR` (or ./lambda/start_lambda.py --local DIR)"
    )


class ServiceUnavailable(RuntimeError):
    """A service a command needs cannot be reached; the message says which and how to start it."""


@dataclass(frozen=True)
class Endpoint:
    service: str  # "Kafka", "Cassandra", "the Spark master", "HDFS (namenode)"
    host: str
    port: int
    variable: str  # the environment variable that sets the address

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    return (host, int(port)) if sep else (port, default_port)


def endpoints(profile: Profile, needs: tuple[str, ...]) -> list[Endpoint]:
    """The addresses behind ``needs`` (any of "kafka", "cassandra", "spark", "hdfs") in ``profile``;
    addresses that are not host:port services (local files, ``yarn``, ``local[...]``) are left out."""
    out = []
    if "kafka" in needs and profile.log == "kafka":
        for b in profile.kafka_bootstrap.split(","):
            out.append(Endpoint("Kafka", *_host_port(b, 9092), "VENDLAB_KAFKA"))
    if "cassandra" in needs and profile.store == "cassandra":
        from vendlab.store.cassandra import _split_host  # the driver's own reading: one port for every host

        names, port = _split_host(profile.cassandra_hosts)
        out += [Endpoint("Cassandra", name, port, "VENDLAB_CASSANDRA") for name in names]
    if "spark" in needs and profile.spark_master.startswith("spark://"):
        for hp in profile.spark_master[len("spark://") :].split(","):
            out.append(Endpoint("the Spark master", *_host_port(hp, 7077), "VENDLAB_SPARK_MASTER"))
    if "hdfs" in needs:
        for path, var in ((profile.master_path, "VENDLAB_MASTER"), (profile.checkpoint_dir, "VENDLAB_CHECKPOINTS")):
            u = urlsplit(path)
            if u.scheme == "hdfs" and u.hostname:
                e = Endpoint("HDFS (namenode)", u.hostname, u.port or 8020, var)
                if all(o.address != e.address for o in out):  # the checkpoints on the same namenode
                    out.append(e)
    return out


def _problem(e: Endpoint, timeout_s: float) -> str | None:
    """None if ``e`` accepts a TCP connection, else what is wrong with it."""
    try:
        infos = socket.getaddrinfo(e.host, e.port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return f"the name {e.host!r} does not resolve"
    last = ""
    for family, kind, proto, _, addr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(timeout_s)
                s.connect(addr)
                return None
        except OSError as err:
            last = err.strerror or str(err)
    return f"nothing answers there ({last})"


def require(profile: Profile, needs: tuple[str, ...], command: str, wait_s: float = 10.0) -> None:
    """Raise ServiceUnavailable naming every needed service that cannot be reached within ``wait_s``."""
    pending = endpoints(profile, needs)
    deadline = time.monotonic() + wait_s
    while True:
        problems = [(e, p) for e in pending if (p := _problem(e, timeout_s=2.0)) is not None]
        # a name that does not resolve will not start resolving by waiting: do not wait for it
        if not problems or time.monotonic() >= deadline or all("resolve" in p for _, p in problems):
            break
        pending = [e for e, _ in problems]
        time.sleep(1.0)
    if problems:
        lines = [f"  {e.service} at {e.address} ({e.variable}): {p}" for e, p in problems]
        raise ServiceUnavailable(
            f"{command}: cannot reach the services it needs:\n" + "\n".join(lines) + f"\n{how_to_start()}."
        )
