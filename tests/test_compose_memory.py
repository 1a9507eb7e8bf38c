"""Memory of the compose stacks (symptoms 5, 8, 9 of issue 13), from the YAML: every container's limit covers
what runs in it, JVM heaps stay below the limits, health probes start no full-heap JVM, and the sums are
the ones docs/compose.md states and the start script checks against Docker's memory.

What a container really uses (RSS) only a running stack shows; the per-JVM overhead below is an assumption
(metaspace, code cache, threads, direct buffers), stated in docs/compose.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import compose_file

from vendlab.compose_conf import hadoop_site_files, mem_limits, mib, parse_env_file
from vendlab.orchestrate import (
    DRIVER_MEMORY,
    EXECUTOR_MEMORY,
    HADOOP_TOOL_ENV,
    KAFKA_TOOL_ENV,
    SPARK_MIN_HEAP,
    StackSettings,
)
from vendlab.orchestrate import STACKS as ORCH

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("lambda", "kappa")
JVM_OVERHEAD = 128  # MiB per JVM beyond its heap
# A Spark driver's or executor's JVM: Spark's own minimum overhead (spark.driver/executor.memoryOverhead:
# max(384 MiB, 10 % of the heap)), which the YARN sizing uses too. Measured here: a pyspark 4.1.1 driver with a
# 512 MiB heap had 252 MiB committed outside the heap (NMT: metaspace 99, GC 43, symbols 29, ...) after one
# small aggregation; a long-running query adds code cache and generated classes.
SPARK_JVM_OVERHEAD = 384
PY_DRIVER = 160  # MiB: the Python side of a PySpark driver (pyspark, the store client, collected rows)
CASSANDRA_OFF_HEAP = 384  # MiB: chunk cache (1/4 heap), netty, bloom filters, threads, metaspace
JVM_TOOLS = re.compile(r"kafka-[\w-]+\.sh|\bhdfs\b|\byarn\b|\bhadoop\b|\bjava\b|\bnodetool\b")


def doc(stack):
    return compose_file(stack)


def xmx(opts: str) -> int:
    return mib(re.search(r"-Xmx(\d+[mMgG])", opts).group(1))


def probe(svc) -> str:
    return " ".join(svc["healthcheck"]["test"][1:])


def needs(stack: str) -> dict[str, int]:
    """What runs in each container, in MiB, from the compose file, hadoop.env and the job commands."""
    svcs = doc(stack)["services"]
    out = {}
    for name, s in svcs.items():
        env = s.get("environment", {})
        if name == "kafka":
            probe_heap = xmx(re.search(r"KAFKA_HEAP_OPTS='([^']*)'", probe(s)).group(1))
            tool_heap = xmx(KAFKA_TOOL_ENV["KAFKA_HEAP_OPTS"])
            out[name] = xmx(env["KAFKA_HEAP_OPTS"]) + JVM_OVERHEAD + max(probe_heap, tool_heap) + JVM_OVERHEAD
        elif name == "kafka-ui":
            out[name] = xmx(env["JAVA_OPTS"]) + JVM_OVERHEAD
        elif name == "cassandra1":
            out[name] = mib(env["MAX_HEAP_SIZE"]) + CASSANDRA_OFF_HEAP
        elif name == "namenode":
            out[name] = (
                mib(env["HADOOP_HEAPSIZE_MAX"])
                + JVM_OVERHEAD
                + mib(HADOOP_TOOL_ENV["HADOOP_HEAPSIZE_MAX"])
                + JVM_OVERHEAD
            )  # the start script's client
        elif name == "nodemanager":
            yarn = hadoop_site_files(parse_env_file((ROOT / "lambda" / "hadoop.env").read_text()))["yarn-site.xml"]
            out[name] = (
                mib(env["HADOOP_HEAPSIZE_MAX"]) + JVM_OVERHEAD + int(yarn["yarn.nodemanager.resource.memory-mb"])
            )
        elif "HADOOP_HEAPSIZE_MAX" in env:
            out[name] = mib(env["HADOOP_HEAPSIZE_MAX"]) + JVM_OVERHEAD
        elif name == "spark-master":
            out[name] = mib(env["SPARK_DAEMON_MEMORY"]) + JVM_OVERHEAD
        elif name.startswith("spark-worker"):
            out[name] = (
                mib(env["SPARK_DAEMON_MEMORY"]) + JVM_OVERHEAD + mib(env["SPARK_WORKER_MEMORY"]) + SPARK_JVM_OVERHEAD
            )
        elif name in ("validation", "generator"):
            out[name] = 256  # one Python process; validation's seen-id set is bounded (docs/compose.md)
        elif name in ORCH[stack].jobs:
            out[name] = mib(DRIVER_MEMORY) + SPARK_JVM_OVERHEAD + PY_DRIVER
        elif name == "grafana":
            out[name] = 192
        else:
            raise AssertionError(f"{stack}: no memory model for service {name}")
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_every_limit_covers_what_runs_in_its_container(stack):
    """Symptom 5: on today's files the three lambda drivers, their Python processes, the master daemon, the
    generator and validation all share spark-master's 2560 MiB; now each job is its own service."""
    from vendlab.orchestrate import StackSettings

    svcs = doc(stack)["services"]
    for p in ORCH[stack].processes(StackSettings()):  # each driver, the generator and validation: its own container
        assert p.name in svcs and "mem_limit" in svcs[p.name], f"{stack}: {p.name} has no service of its own"
    for name, need in needs(stack).items():
        assert need <= mib(svcs[name]["mem_limit"]), (
            f"{stack}/{name}: needs ~{need} MiB, limit {svcs[name]['mem_limit']}"
        )
    master = svcs["spark-master"]["command"]
    assert master[1] == "org.apache.spark.deploy.master.Master"  # nothing else runs there


def submitted_heaps(command: list[str]) -> dict[str, int]:
    """--driver-memory / --executor-memory of a spark-submit command, in MiB."""
    return {a: mib(command[i + 1]) for i, a in enumerate(command) if a in ("--driver-memory", "--executor-memory")}


def test_spark_min_heap_is_sparks_rule():
    """UnifiedMemoryManager.getMaxMemory (Spark 4.1): a JVM whose max heap is below 1.5 x the reserved 300 MiB
    fails at SparkContext creation with [INVALID_DRIVER_MEMORY] (executors: [INVALID_EXECUTOR_MEMORY]).
    Checked with pyspark 4.1.1 here: --driver-memory 384m fails ("System memory 402653184 must be at least
    471859200"), 512m starts."""
    assert mib(SPARK_MIN_HEAP) * 1024 * 1024 == int(300 * 1024 * 1024 * 1.5) == 471859200


@pytest.mark.parametrize("stack", STACKS)
def test_every_spark_jvm_gets_at_least_sparks_minimum_heap(stack):
    """Before: --driver-memory 384m: every driver (kappa-job, lambda-ingest, lambda-speed, lambda-batch) died at
    start with [INVALID_DRIVER_MEMORY] and compose restarted it for ever."""
    drivers = [p for p in ORCH[stack].processes(StackSettings()) if "--driver-memory" in p.command]
    assert drivers
    for p in drivers:
        for flag, heap in submitted_heaps(p.command).items():
            assert heap >= mib(SPARK_MIN_HEAP), (
                f"{stack}/{p.name}: {flag} {heap} MiB < Spark's minimum {SPARK_MIN_HEAP}"
            )


@pytest.mark.parametrize("stack", STACKS)
def test_executors_fit_the_workers_and_yarn(stack):
    svcs = doc(stack)["services"]
    for w in ("spark-worker-1", "spark-worker-2"):
        assert mib(EXECUTOR_MEMORY) <= mib(svcs[w]["environment"]["SPARK_WORKER_MEMORY"])
    if stack == "lambda":
        yarn = hadoop_site_files(parse_env_file((ROOT / "lambda" / "hadoop.env").read_text()))["yarn-site.xml"]
        batch = next(
            p
            for p in ORCH["lambda"].processes(__import__("vendlab.orchestrate").orchestrate.StackSettings())
            if p.name == "lambda-batch"
        ).command
        conf = dict(batch[i + 1].split("=", 1) for i, a in enumerate(batch) if a == "--conf")
        am = mib(conf["spark.yarn.am.memory"]) + mib(conf["spark.yarn.am.memoryOverhead"])
        executor = mib(EXECUTOR_MEMORY) + max(384, mib(EXECUTOR_MEMORY) // 10)  # Spark's default overhead
        assert am + executor <= int(yarn["yarn.nodemanager.resource.memory-mb"])
        assert max(am, executor) <= int(yarn["yarn.scheduler.maximum-allocation-mb"])


@pytest.mark.parametrize("stack", STACKS)
def test_health_probes_start_no_full_heap_jvm(stack):
    """Symptom 8: a probe runs inside the service's container and inherits its environment: a Kafka or
    Hadoop CLI tool would start a JVM with the service's heap inside the service's limit (today: kafka-topics.sh
    with -Xmx384m in 768 MiB every 15 s; hdfs dfsadmin with the namenode's heap). A JVM probe must set its
    own small heap (counted in the limit above); the Hadoop probes are shell TCP checks."""
    for name, s in doc(stack)["services"].items():
        cmd = probe(s)
        if JVM_TOOLS.search(cmd):
            own = re.search(r"KAFKA_HEAP_OPTS='[^']*-Xmx(\d+)m", cmd) or re.search(r"HADOOP_HEAPSIZE_MAX=(\d+)m", cmd)
            assert own, f"{stack}/{name}: the probe `{cmd}` starts a JVM with the service's heap"
            assert int(own.group(1)) <= 64, f"{stack}/{name}: probe heap {own.group(1)} MiB"


@pytest.mark.parametrize("stack", STACKS)
def test_the_start_scripts_reader_agrees_with_yaml(stack):
    svcs = doc(stack)["services"]
    assert mem_limits(ROOT / stack / "docker-compose.yml") == {n: mib(s["mem_limit"]) for n, s in svcs.items()}


@pytest.mark.parametrize("stack", STACKS)
def test_sums_are_the_ones_the_docs_state(stack):
    """Symptom 9: the sums per stack (infrastructure, jobs, total) as docs/compose.md states them, and every
    service's limit in its table. Lambda (12.5 GiB) does not fit Docker Desktop's default VM of a 16 GB laptop:
    the start script compares the total with `docker info`'s MemTotal first (tests/test_orchestrate.py)."""
    svcs = doc(stack)["services"]
    limits = {n: mib(s["mem_limit"]) for n, s in svcs.items()}
    jobs = sum(v for n, v in limits.items() if n in ORCH[stack].jobs)
    total = sum(limits.values())
    text = (ROOT / "docs" / "compose.md").read_text()
    table = text[text.index("| service | lambda | kappa |") :]
    table = table[: table.index("\n\n")]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:4]] for ln in table.splitlines()[2:]}
    col = STACKS.index(stack)
    for n, v in limits.items():
        key = (
            "spark-worker-1, -2"
            if n.startswith("spark-worker")
            else ("datanode1, datanode2" if n.startswith("datanode") else n)
        )
        cell = rows[key][col]
        assert re.search(rf"\b{v}\b", cell), f"docs/compose.md: {n} of {stack} is {v} MiB, the table says {cell!r}"
    assert f"{(total - jobs)} MiB" in rows["infrastructure"][col]
    assert f"{jobs} MiB" in rows["jobs"][col]
    assert f"{total} MiB = {total / 1024:.1f} GiB" in rows["**total**"][col].replace("**", "")
    # the summary figures above the table and in the README's stack commands (they said 12.3 / 6.8 GiB
    # while the table said 12.5 / 7.0)
    gib = f"{total / 1024:.1f} GiB"
    assert f"{gib} for {stack}" in text[: text.index("| service | lambda | kappa |")], f"docs/compose.md: {gib}"
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith(f"./{stack}/start_{stack}.py "))
    assert f"needs {gib} for Docker" in line, line
    assert "docker info" in text and "--skip-memory-check" in text
