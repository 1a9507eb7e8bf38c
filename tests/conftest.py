"""Shared fixtures: one local SparkSession for the whole test session (local[2], 2 shuffle partitions).

Test tiers (markers declared in pyproject.toml): ``spark`` is put here on every test that uses the ``spark``
fixture, directly or through another fixture; a test that starts Spark another way (a ``vendlab`` command in a
subprocess, a runner in process) carries the marker itself, as do ``browser`` and ``services`` tests.
One local stack (vendlab stack up) per test module that asks for ``lambda_stack`` or a scaled-out one; one
kappa stack for every file that asks for ``kappa_stack`` (SHARED_STACKS).
``make test-fast`` runs what is left, without the ``slow`` ones: ``-m "not spark and not browser and not services and not slow"``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from vendlab.world.scenario import write_scenario

ROOT = Path(__file__).resolve().parents[1]


# A test phase (setup, call, teardown) longer than this many seconds prints a line as it ends, so that a long
# run says what it is doing instead of a wall of dots (VENDLAB_SLOW_TEST_S; 0 prints none).
SLOW_REPORT_S = float(os.environ.get("VENDLAB_SLOW_TEST_S", "20"))
SERVICES_GROUP = "services"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker hook, which reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """Marks ``spark`` tests, and groups tests for ``make test`` (``pytest -n 2 --dist loadgroup``): each file
    is one group, so a module fixture is made once; every file with a ``services`` test joins one group, run
    by one worker one after the other (two local stacks at once would fight over 2 cores), and first, since
    it is the longest: the other worker takes the rest."""
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
    services_files = {item.path for item in items if item.get_closest_marker("services")}
    for item in items:
        group = SERVICES_GROUP if item.path in services_files else item.path.name
        item.add_marker(pytest.mark.xdist_group(group))
    for name in SHARED_STACKS:
        SHARED_STACKS[name] = {item.path for item in items if name in getattr(item, "fixturenames", ())}
    # services first; among them the files that share a stack next to each other, so that it is stopped after
    # the last of them (pytest_runtest_teardown). Stable: the order within a file is kept.
    items.sort(key=lambda item: (item.path not in services_files, item.path not in SHARED_STACKS["kappa_stack"]))


# A stack that several test files share, and the files that use it (set at collection).
SHARED_STACKS: dict[str, set] = {"kappa_stack": set()}
_OPEN_STACKS: dict = {}  # name -> (the stack, the generator of _local_stack that stops it), while it runs


def _shared_stack(name: str, start):
    """The running shared stack ``name``, or a new one from ``start()`` (a _local_stack generator)."""
    if name not in _OPEN_STACKS:
        gen = start()
        _OPEN_STACKS[name] = (next(gen), gen)
    return _OPEN_STACKS[name][0]


def _stop_shared(name: str) -> None:
    _, gen = _OPEN_STACKS.pop(name, (None, None))
    if gen is not None:
        next(gen, None)  # _local_stack's finally: every job stopped, the stack down


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the module fixtures of ``item`` are torn down: a shared stack stops after the last file in a row
    that uses it, not at the end of the session, so that it does not idle beside the next module's stack (a
    file that needs it later, in another order, starts a new one)."""
    try:
        return (yield)
    finally:  # also when a fixture's teardown failed
        for name, files in SHARED_STACKS.items():
            if item.path in files and (nextitem is None or nextitem.path not in files):
                _stop_shared(name)


@pytest.hookimpl(trylast=True)  # after pytest's own session teardown, so that no fixture outlives its stack
def pytest_sessionfinish(session):
    for name in list(_OPEN_STACKS):
        _stop_shared(name)


def pytest_runtest_logreport(report):
    """Under xdist this runs in each worker (whose output nobody sees: skipped) and again in the controller,
    where ``report.node`` says which worker ran the test."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    node = getattr(report, "node", None)
    worker = node.gateway.id if node is not None else "main"
    key = (worker, report.nodeid.split("::")[0])
    _TIME_BY_FILE[key] = _TIME_BY_FILE.get(key, 0.0) + report.duration
    if not SLOW_REPORT_S or report.duration < SLOW_REPORT_S:
        return
    reporter = _CONFIG[0].pluginmanager.get_plugin("terminalreporter") if _CONFIG else None
    if reporter is None:
        return
    label = f"[{worker}] " if node is not None else ""
    reporter.write("\n")
    reporter.write_line(f"{label}{report.when} took {report.duration:.0f} s, {report.outcome}: {report.nodeid}")


_TIME_BY_FILE: dict[tuple[str, str], float] = {}  # (worker, test file) -> seconds of its setup, call, teardown


def pytest_terminal_summary(terminalreporter):
    """Where the time went: each worker's busy seconds, and the files that took longest (their phases summed,
    module fixtures included), so that a slow run says which process was the critical path and why."""
    if not _TIME_BY_FILE or sum(_TIME_BY_FILE.values()) < SLOW_REPORT_S:
        return
    busy: dict[str, float] = {}
    for (worker, _), t in _TIME_BY_FILE.items():
        busy[worker] = busy.get(worker, 0.0) + t
    terminalreporter.section("time per worker and per test file")
    terminalreporter.write_line("busy: " + ", ".join(f"{w} {t:,.0f} s" for w, t in sorted(busy.items())))
    top = sorted(_TIME_BY_FILE.items(), key=lambda kv: -kv[1])[:15]
    for (worker, path), t in top:
        terminalreporter.write_line(f"{t:8,.0f} s  {worker:5}  {path}")


_CONFIG: list = []  # the pytest config, for the terminal reporter (set in pytest_configure)


def pytest_configure(config):
    _CONFIG.append(config)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from vendlab.config import embedded
    from vendlab.spark import get_spark

    session = get_spark(embedded(tmp_path_factory.mktemp("spark")))
    yield session
    session.stop()


# -- helpers shared by test modules (import them: ``from conftest import record``) ---------------------------


def record(test: str, **measured) -> None:
    """Append what a test measured to $VENDLAB_RELIABILITY_LOG (JSON lines), for docs/reliability.md."""
    path = os.environ.get("VENDLAB_RELIABILITY_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, **measured}, default=str) + "\n")


def vendlab_env() -> dict:
    """The environment for a ``python -m vendlab...`` subprocess: this checkout's vendlab first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def iso(ms: int) -> str:
    """Epoch milliseconds as the events' event_time (ISO-8601 UTC, milliseconds, Z)."""
    return str(np.datetime_as_string(np.datetime64(ms, "ms"), unit="ms")) + "Z"


# The services both compose stacks take from docker/compose/ (written once there).
SHARED_SERVICES = (
    "kafka",
    "kafka-ui",
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    "cassandra1",
    "grafana",
    "validation",
    "generator",
)


def compose_file(stack: str) -> dict:
    """A stack's docker-compose.yml (``lambda`` or ``kappa``), parsed."""
    import yaml

    return yaml.safe_load((ROOT / stack / "docker-compose.yml").read_text())


def sale_line(catalog, eid: str, i: int, qty: int, event_time: str = "2026-01-05T06:00:00.000Z") -> bytes:
    """A valid sale line: ``catalog``'s i-th product at its i-th machine (modulo their numbers).

    In the generator's compact JSON (no spaces): the Kafka writer finds a line's machine_id by its
    compact text and keys the record by it; a spaced line goes without a key, to a random partition."""
    p, m = catalog.products[i % len(catalog.products)], catalog.machines[i % len(catalog.machines)]
    event = {
        "event_id": eid,
        "type": "sale",
        "machine_id": m.machine_id,
        "place": m.place,
        "product": p.product,
        "category": p.category,
        "quantity": qty,
        "unit_price": p.price_cents / 100,
        "customer_id": "C1",
        "event_time": event_time,
    }
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"


@pytest.fixture
def serve():
    """serve(data_dir) -> the URL of a dashboard on that data dir (a thread of this process, any free
    port); each is stopped after the test."""
    from vendlab.dashboard import start_dashboard_in_thread

    stops = []

    def start(data_dir):
        url, stop = start_dashboard_in_thread(data_dir, port=0)
        stops.append(stop)
        return url

    yield start
    for stop in stops:
        stop()


def parse_segment(spark, folder: Path, lines: list[bytes], catalog):
    """``lines`` written as one log segment in ``folder``, read by the text source the jobs use
    (its lineSep included) and parsed: the parsed frame, one partition, in the file's order."""
    from pyspark.sql import functions as F

    from vendlab.jobs import parse, sources

    seg = folder / "seg-000000000000-1767592800000.jsonl"
    seg.write_bytes(b"".join(line + b"\n" for line in lines))
    raw = spark.read.option("lineSep", "\n").text(str(seg)).select("value", F.col("_metadata.file_name").alias("file"))
    assert raw.rdd.getNumPartitions() == 1  # one partition: collect() keeps the file's order
    return parse.parse(sources.file_envelope(raw), sorted(catalog.machine_ids), sorted(catalog.product_names))


@pytest.fixture(scope="module")
def cluster():
    """confluent-kafka's mock cluster (3 brokers inside this process), one per test module:
    (the producer that owns it, its bootstrap string)."""
    from confluent_kafka import Producer

    from vendlab.kafka_log import producer_config

    p = Producer(producer_config("unused:9092", **{"test.mock.num.brokers": 3, "log_level": 3}))
    md = p.list_topics(timeout=10)
    yield p, ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    p.flush(10)


def write_log(
    data_dir, seed=3, events=20_000, segment_lines=5_000, rate=20_000, bad_rate=0.0, dup_rate=0.0, machines=20
):
    """A finished log in ``data_dir`` (catalog.json, log/, manifest.json); returns (catalog, manifest).
    The generator's own time scale (60x), unlike a scenario's days."""
    return write_scenario(
        data_dir,
        seed=seed,
        events=events,
        rate=rate,
        time_scale=60.0,
        machines=machines,
        bad_rate=bad_rate,
        dup_rate=dup_rate,
        segment_lines=segment_lines,
    )


@pytest.fixture
def log_factory():
    return write_log


def _local_stack(tmp_path_factory, name: str, timeout: float, nodes: int = 1):
    """A local stack for one test module (``nodes`` 3: the scaled-out topology), stopped by pid at the end
    (every job of every run first); its logs stay in the printed folder."""
    import time

    from vendlab.localstack.jobs import LocalRunner
    from vendlab.localstack.stack import LocalStack

    label = name if nodes == 1 else f"{name}-ha"
    d = tmp_path_factory.mktemp(f"localstack-{label}")
    stack = LocalStack(d, name, nodes=nodes)
    print(f"\nlocal {name} stack, {nodes} node(s), in {d} (logs: {d / 'logs'})", file=sys.stderr)
    try:
        t0 = time.monotonic()
        stack.up(timeout=timeout)
        print(f"\n{nodes}-node {name} stack up in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        yield stack
    finally:
        if (d / "jobs").exists():
            LocalRunner(stack).stop_all()
        stack.down()
        print(f"\nlocal {name} stack stopped; logs kept in {d / 'logs'}", file=sys.stderr)


@pytest.fixture(scope="module")
def kappa_stack(tmp_path_factory):
    """One kappa stack for the files that ask for it (the kappa module, the local-stack bench, the lambda
    dashboard's queries on Cassandra), each on its own topic or keyspace where it writes: they run one after
    the other (pytest_collection_modifyitems) and the stack stops after the last of them (SHARED_STACKS)."""
    return _shared_stack("kappa_stack", lambda: _local_stack(tmp_path_factory, "kappa", 600))


@pytest.fixture(scope="module")
def lambda_stack(tmp_path_factory):
    yield from _local_stack(tmp_path_factory, "lambda", 900)


@pytest.fixture(scope="module")
def kappa_ha_stack(tmp_path_factory):
    """The kappa stack on three nodes (three brokers, three Cassandra nodes: docs/local-stack.md)."""
    yield from _local_stack(tmp_path_factory, "kappa", 900, nodes=3)


@pytest.fixture(scope="module")
def lambda_ha_stack(tmp_path_factory):
    yield from _local_stack(tmp_path_factory, "lambda", 900, nodes=3)
