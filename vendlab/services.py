"""Which services a cluster-mode command needs, and a clear error when one is not there.

The cluster-mode commands (``vendlab produce|validate|job --profile compose``) normally run inside a
compose stack, where the start scripts start them once every service is healthy. Run by hand
elsewhere, the names ``kafka``, ``cassandra1``, ``spark-master`` and ``namenode`` do not resolve,
and each client library fails its own way (a librdkafka metadata error, Cassandra's
``UnresolvableContactPoints``, a Java ``UnknownHostException`` inside Spark's stack trace).
``require`` checks each needed address first (name resolution, then a TCP connect) and names the
service, the address, the variable that sets it and how to start it.

A service that resolves but does not answer (yet) is waited for, up to ``VENDLAB_SERVICE_WAIT_S``
seconds (default 300): a job started while Cassandra restarts, or before a freshly started stack's
services listen, runs once they answer instead of exiting 2 after a few seconds (nothing restarts a
job process that exits; the 10-s bound this replaces made a job that was still starting when a test
stopped Cassandra for 10 s exit for good). A progress line goes to stderr every few seconds.
"""

from __future__ import annotations

import os
import socket
import sys
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


WAIT_VARIABLE = "VENDLAB_SERVICE_WAIT_S"
DEFAULT_WAIT_S = 300.0
PROGRESS_S = 5.0  # a progress line on stderr this often while waiting


def wait_bound_s() -> float:
    """How long ``require`` waits for a service that does not answer: ``VENDLAB_SERVICE_WAIT_S`` seconds
    (default 300; 0 checks once)."""
    text = os.environ.get(WAIT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_WAIT_S
    try:
        value = float(text)
    except ValueError:
        raise ServiceUnavailable(f"{WAIT_VARIABLE}={text!r} is not a number of seconds") from None
    return max(0.0, value)


UNRESOLVED = "does not resolve"


def _problem(e: Endpoint, timeout_s: float) -> tuple[str, str] | None:
    """None if ``e`` accepts a TCP connection, else (what is wrong, the short reason for a progress line)."""
    try:
        infos = socket.getaddrinfo(e.host, e.port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return f"the name {e.host!r} {UNRESOLVED}", "name not resolved"
    last = ""
    for family, kind, proto, _, addr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(timeout_s)
                s.connect(addr)
                return None
        except OSError as err:
            last = err.strerror or str(err)
    return f"nothing answers there ({last})", last.lower() or "no answer"


def require(
    profile: Profile,
    needs: tuple[str, ...],
    command: str,
    wait_s: float | None = None,
    progress_s: float = PROGRESS_S,
) -> None:
    """Wait until every needed service accepts a connection; raise ServiceUnavailable naming each one that
    does not within ``wait_s`` seconds (default: ``VENDLAB_SERVICE_WAIT_S``, else 300).

    A service of several addresses (three brokers in VENDLAB_KAFKA, three Cassandra nodes in
    VENDLAB_CASSANDRA) is there when one of them answers: its client bootstraps from any one and finds
    the others itself (librdkafka's bootstrap list, the driver's contact points), so a job started while
    one node of a scaled-out stack is away runs instead of waiting for it; that node is named once."""
    bound = wait_bound_s() if wait_s is None else max(0.0, wait_s)
    all_endpoints = endpoints(profile, needs)
    started = time.monotonic()
    next_progress = started + progress_s
    reached: set[str] = set()  # services one of whose addresses answered
    while True:
        pending = [e for e in all_endpoints if e.service not in reached]
        checked = [(e, _problem(e, timeout_s=2.0)) for e in pending]
        for e, p in checked:
            if p is None:
                reached.add(e.service)
        others = [(e, p) for e, p in checked if p is not None and e.service in reached]
        for e, (_, reason) in others:
            print(
                f"vendlab: {e.service} at {e.address} does not answer ({reason}); going on with its other addresses",
                file=sys.stderr,
                flush=True,
            )
        problems = [(e, p) for e, p in checked if p is not None and e.service not in reached]
        now = time.monotonic()
        # A name that does not resolve fails at once, without waiting the bound. Outside a stack (the usual
        # cause: a command run by hand, a mistyped variable) it will not start resolving, and minutes of
        # waiting would only hide the error. Inside Docker a name resolves once its container exists and
        # while it runs, so an unresolved name there means the container is gone or stopped: the command
        # exits 2 and compose's restart policy (restart: on-failure) starts it again. With several
        # addresses, only when none of them resolves.
        # (every address of a service not reached is in problems: each was checked and none answered)
        all_unresolved = any(
            all(UNRESOLVED in p[0] for e, p in problems if e.service == svc) for svc in {e.service for e, _ in problems}
        )
        if not problems or now - started >= bound or all_unresolved:
            break
        if now >= next_progress:
            by_service: dict[str, list] = {}  # one line per service, its addresses together (three nodes)
            for e, (_, reason) in problems:
                by_service.setdefault(e.service, []).append((e.address, reason))
            for svc, seen in by_service.items():
                reasons = ", ".join(dict.fromkeys(r for _, r in seen))
                print(
                    f"vendlab: waiting for {svc} at {', '.join(a for a, _ in seen)} ({reasons}): "
                    f"{now - started:.0f} s of {bound:.0f} s ({WAIT_VARIABLE} sets the bound)",
                    file=sys.stderr,
                    flush=True,
                )
            next_progress = now + progress_s
        time.sleep(min(1.0, max(0.0, bound - (now - started))))
    if problems:
        lines = [f"  {e.service} at {e.address} ({e.variable}): {p}" for e, (p, _) in problems]
        waited = f" (waited {time.monotonic() - started:.0f} s; {WAIT_VARIABLE} sets the bound)" if bound > 0 else ""
        raise ServiceUnavailable(
            f"{command}: cannot reach the services it needs{waited}:\n" + "\n".join(lines) + f"\n{how_to_start()}."
        )
