"""Start, inspect and stop a compose stack: the code behind lambda/start_lambda.py and kappa/start_kappa.py.
Standard library only (the start scripts run with any Python 3.10+).

    ./lambda/start_lambda.py              everything: .env, compose up, health, set-up, jobs, URLs (safe to re-run)
    ./lambda/start_lambda.py --dry-run    print every command of a start, in order, with memory; run none
    ./lambda/start_lambda.py --status     what runs, and the URLs
    ./lambda/start_lambda.py --stop       stop the generator, let the jobs drain its end marker, then stop them
                                          (the infrastructure keeps running)
    ./lambda/start_lambda.py --down       stop the jobs, then `docker compose down` (volumes kept)
    ./lambda/start_lambda.py --nodes 3    three Kafka brokers and three Cassandra nodes (docker-compose.ha.yml in every
                                          docker compose call; --spark-workers N adds workers 3..N; kept in .env)
    ./lambda/start_lambda.py --local DIR  the same steps on a local stack (`vendlab stack up --stack lambda
                                          --dir DIR`): vendlab.localstack.start (needs the project's venv)

Steps of a start, each skipped when its result is already there:
 1. ``.env`` next to the compose file: a random Grafana admin password (kept) and the run settings
    (VENDLAB_RATE, VENDLAB_SEED ...; the job services read them);
 2. Docker, its daemon, Compose v2, and Docker's memory against the sum of the stack's ``mem_limit``s;
 3. ``docker compose up -d SERVICE...`` (the infrastructure, by name; the first time builds the Spark images);
 4. every infrastructure service healthy (``docker compose ps --format json``), with a time-out;
 5. the Kafka topic (config from vendlab.kafka_log; an existing topic's config is checked and corrected),
    the Cassandra keyspace and tables, and on lambda the HDFS folders (after safe mode is off);
 6. the jobs: compose services of the profile ``jobs`` (validation, generator, the Spark drivers), each
    ``docker compose --profile jobs up -d --no-deps NAME`` in order; compose restarts one that fails;
 7. ``COMPOSE_PROFILES=jobs`` into ``.env`` (plain ``docker compose up -d`` / ``down`` include the jobs from
    then on), and the URLs.

Every command goes through a ``CommandRunner``; the tests hand in a fake one, ``--dry-run`` a printing one.
The steps above are the one list of steps (``Orchestrator.start``, ``stop``, ``status``); what executes them is a
few primitives (``exec`` a tool in a service, start/stop/list a job, bring up and check the infrastructure),
done with ``docker compose`` here and overridden by ``vendlab.localstack.start.LocalOrchestrator`` for
``--local DIR``, which runs the same commands as local processes.
Inside a job container, ``python -m vendlab.orchestrate exec NAME`` builds that job's command from the
settings in its environment and replaces itself with it (the job is the container's PID 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from vendlab import architectures
from vendlab.architectures.spec import BATCH, YARN
from vendlab.compose_conf import mem_limits
from vendlab.config import BATCH_INTERVAL_S
from vendlab.kafka_log import (
    DEFAULT_PARTITIONS,
    DEFAULT_TOPIC,
    END_PREFIX,
    HA_MIN_INSYNC,
    TOPIC_CONFIG,
    topic_config,
    topic_create_args,
)
from vendlab.spark import submit_confs
from vendlab.store.cassandra import TABLES, schema_cql

ENV_FILE = ".env"
PASSWORD_VAR = "GRAFANA_ADMIN_PASSWORD"
JOBS_PROFILE = "jobs"
# The settings that make the generator's stream: a restarted generator continues the stream in the topic
# and refuses other values of these (world.generator.Generator.check_continues, exit 2), which compose's
# `restart: on-failure` would then restart for ever. The start script refuses them up front instead.
STREAM_SETTINGS = ("VENDLAB_SEED", "VENDLAB_RATE", "VENDLAB_BAD_RATE", "VENDLAB_DUP_RATE")
# After starting the jobs, the start script waits this long and checks that every job is still running
# and was not restarted, before it prints success (a job that exits at once is restarted by compose).
JOB_SETTLE_S = 20.0
SUBMIT = "/opt/vendlab/submit.py"  # launcher baked into the Spark image (docker/spark/submit.py)
PYTHON = "/opt/vendlab/venv/bin/python"
HDFS_DIRS = ("/vendlab/master", "/vendlab/checkpoints", "/user/hadoop")
# CLI tools run inside a service's container inherit its heap settings: give them their own, small ones.
KAFKA_TOOL_ENV = {"KAFKA_HEAP_OPTS": "-Xms32m -Xmx64m"}
HADOOP_TOOL_ENV = {"HADOOP_HEAPSIZE_MAX": "96m", "HADOOP_HEAPSIZE_MIN": "32m"}
DOCKER_INSTALL = (
    "Install Docker Engine with the Compose plugin (https://docs.docker.com/engine/install/; "
    "on Debian/Ubuntu: sudo apt-get install -y docker.io docker-compose-v2), then start it "
    "with: sudo systemctl start docker"
)
GRAFANA_PLUGIN = "hadesarchitect-cassandra-datasource"
VALIDATION_JOB = "validation"  # the job name the validation consumer records its markers under (vendlab.store.base)


def marker_jobs() -> dict[str, str]:
    """Streaming process -> the job name its latency markers are recorded under (vendlab.architectures)."""
    return {j.process: j.store_job for a, j in architectures.all_jobs() if j.store_job == a.latency_job}


class OrchestrateError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Result:
    code: int
    out: str = ""
    err: str = ""


class CommandRunner:
    """Runs commands for real. Tests replace it with a fake that records and answers."""

    dry = False

    def run(
        self, args: list[str], input: str | None = None, timeout: float | None = 300, stream: bool = False
    ) -> Result:
        """stream: the command's output goes to the terminal (long steps such as the first image build)."""
        try:
            if stream:
                p = subprocess.run(args, input=input, text=True, timeout=timeout)
                return Result(p.returncode)
            p = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError as e:
            return Result(127, "", str(e))
        except subprocess.TimeoutExpired:
            return Result(124, "", f"timed out after {timeout} s")
        return Result(p.returncode, p.stdout, p.stderr)

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)  # pause between two health polls

    def now(self) -> float:
        return time.monotonic()


class DryRunner(CommandRunner):
    """--dry-run: prints each command instead of running it, and answers as a stack that is up and healthy
    but not yet set up would, so the plan shows every step of a first start. Needs no Docker."""

    dry = True

    def __init__(self, stack: Stack, out):
        self.stack, self.out = stack, out

    def run(self, args, input=None, timeout=None, stream=False) -> Result:
        text = shlex.join(args) + (" < vendlab/store/schema.cql" if input else "")
        print(f"  $ {text}", file=self.out, flush=True)
        if "ps" in args:
            return Result(
                0,
                "\n".join(
                    json.dumps({"Service": s, "State": "running", "Health": "healthy"}) for s in self.stack.services
                )
                + "\n",
            )
        if "-ls -d" in " ".join(args):
            return Result(1)  # HDFS folders missing
        return Result(0)

    def which(self, name):
        return f"/usr/bin/{name}"

    def sleep(self, seconds):
        pass


@dataclass(frozen=True)
class Process:
    """A job: a compose service of the profile "jobs" whose PID 1 is ``command``."""

    name: str
    command: list[str]
    memory: str = ""  # what it holds in memory, for the plan


@dataclass
class StackSettings:
    """What a compose stack's generator and jobs run with, from the stack's .env (VENDLAB_*), and how
    long the start script waits. Not to be confused with ``runner.RunSettings`` (one embedded run)
    or ``config.Profile`` (where the log, views and checkpoints live)."""

    rate: float = 2000.0
    seed: int = 1
    bad_rate: float = 0.01
    dup_rate: float = 0.01
    batch_interval: float = BATCH_INTERVAL_S
    health_timeout: float = 600.0
    poll_interval: float = 5.0
    drain_timeout: float = 600.0

    ENV = {
        "rate": "VENDLAB_RATE",
        "seed": "VENDLAB_SEED",
        "bad_rate": "VENDLAB_BAD_RATE",
        "dup_rate": "VENDLAB_DUP_RATE",
        "batch_interval": "VENDLAB_BATCH_INTERVAL",
    }

    def env(self) -> dict[str, str]:
        return {var: f"{getattr(self, k):g}" for k, var in self.ENV.items()}

    @classmethod
    def from_env(cls, environ=os.environ) -> StackSettings:
        s = cls()
        for k, var in cls.ENV.items():
            if environ.get(var):
                setattr(s, k, type(getattr(s, k))(float(environ[var])) if k == "seed" else float(environ[var]))
        return s


# Spark refuses a JVM heap below 1.5 x its 300 MiB reserved memory (UnifiedMemoryManager.getMaxMemory:
# "[INVALID_DRIVER_MEMORY] System memory ... must be at least 471859200"), for drivers and executors alike.
SPARK_MIN_HEAP = "450m"
DRIVER_MEMORY = "512m"
EXECUTOR_MEMORY = "512m"


@dataclass(frozen=True)
class Stack:
    name: str
    services: tuple[str, ...]  # the infrastructure (no profile): `docker compose up -d` starts these
    jobs: tuple[str, ...]  # services of the profile "jobs", in start order
    urls: tuple[tuple[str, str], ...]
    hdfs: bool = False
    topic: str = DEFAULT_TOPIC
    partitions: int = DEFAULT_PARTITIONS
    extra: dict = field(default_factory=dict)
    nodes: int = 1  # Kafka brokers and Cassandra nodes: 1, or 3 with docker-compose.ha.yml (--nodes 3)
    spark_workers: int = 2  # spark-worker-1 ... spark-worker-N (--spark-workers N; 3 on come from WORKERS_FILE)

    @property
    def replication(self) -> int:
        """The topic's replication factor and the keyspace's: one copy per node."""
        return self.nodes

    def topic_config(self) -> dict[str, str]:
        """The topic's config: TOPIC_CONFIG, and on three brokers min.insync.replicas=2 (with the producer's
        acks=all a write is acknowledged once two replicas have it: one broker may go, none is lost)."""
        return topic_config(self.nodes)

    def compose_files(self) -> tuple[str, ...]:
        """The compose files of every ``docker compose`` call, in merge order."""
        return (
            ("docker-compose.yml",)
            + ((HA_FILE,) if self.nodes > 1 else ())
            + ((WORKERS_FILE,) if self.spark_workers > BASE_WORKERS else ())
        )

    def processes(self, s: StackSettings) -> list[Process]:
        cli = [PYTHON, "-m", "vendlab.cli"]
        seed = ["--profile", "compose", "--seed", str(s.seed)]
        procs = [
            Process("validation", cli + ["validate"] + seed, "Python: the validation consumer"),
            Process(
                "generator",
                cli
                + ["produce"]
                + seed
                + ["--rate", f"{s.rate:g}", "--bad-rate", f"{s.bad_rate:g}", "--dup-rate", f"{s.dup_rate:g}"],
                "Python: the generator",
            ),
        ]
        drv = f"driver heap {DRIVER_MEMORY} + Python driver"
        for job in architectures.get(self.name).jobs:  # the architecture's jobs, in start order
            if job.runs_on == YARN:
                submit = yarn_submit(job.command)
                memory = f"{drv}; on YARN: AM 256m+128m, executor {EXECUTOR_MEMORY}+384m"
            else:
                submit = standalone_submit(job.command, cores=job.cores)
                executors = (
                    f"executor: 1 core x {EXECUTOR_MEMORY} on a worker"
                    if job.cores == 1
                    else f"executors: {job.cores} cores x {EXECUTOR_MEMORY} on the workers"
                )
                memory = f"{drv}; {executors}"
            batch = ["--batch-interval", f"{s.batch_interval:g}"] if job.kind == BATCH else []
            procs.append(Process(job.process, submit + ["job", job.command] + seed + batch, memory))
        return procs


# -- the topology: --nodes, --spark-workers ------------------------------------------------------
HA_FILE = "docker-compose.ha.yml"  # made by docker/compose/make_stacks.py from <stack>.ha.in.yml
WORKERS_FILE = "docker-compose.workers.yml"  # written by the start script for --spark-workers above 2 (git-ignored)
NODES_ALLOWED = (1, 3)
HA_NODES = {"kafka": ("kafka", "kafka2", "kafka3"), "cassandra1": ("cassandra1", "cassandra2", "cassandra3")}
BASE_WORKERS = 2  # spark-worker-1 and spark-worker-2, in docker-compose.yml
WORKERS_ALLOWED = range(2, 9)
# what docker-compose.ha.yml's x-ha-clients gives every client (tests/test_compose_ha.py checks it is the same);
# the extra workers' file repeats it, as `extends` takes spark-worker-2 from docker-compose.yml alone
HA_CLIENT_ENV = {
    "VENDLAB_KAFKA": "kafka:29092,kafka2:29092,kafka3:29092",
    "VENDLAB_CASSANDRA": "cassandra1,cassandra2,cassandra3",
    "VENDLAB_CASSANDRA_REPLICATION": "3",
}
TOPOLOGY_VARS = {"nodes": "VENDLAB_NODES", "spark_workers": "VENDLAB_SPARK_WORKERS"}
COMPOSE_FILE_VAR = "COMPOSE_FILE"


def worker_name(i: int) -> str:
    return f"spark-worker-{i}"


def scaled(stack: Stack, nodes: int = 1, spark_workers: int = BASE_WORKERS) -> Stack:
    """``stack`` with ``nodes`` Kafka brokers and Cassandra nodes and ``spark_workers`` Spark workers: its
    infrastructure services in start order (kafka, kafka2, kafka3, ...; cassandra1, cassandra2, cassandra3)."""
    if nodes not in NODES_ALLOWED:
        raise OrchestrateError(
            f"--nodes {nodes}: allowed are 1 (the default stack) and 3 (docker-compose.ha.yml: three Kafka "
            "brokers, three Cassandra nodes)",
            2,
        )
    if spark_workers not in WORKERS_ALLOWED:
        raise OrchestrateError(
            f"--spark-workers {spark_workers}: allowed are {WORKERS_ALLOWED.start} to {WORKERS_ALLOWED.stop - 1} "
            f"(at least 2: the jobs take 2 cores, one per worker; each worker adds 1152 MiB)",
            2,
        )
    out = []
    for s in stack.services:
        if s.startswith("spark-worker-"):
            if s == worker_name(1):
                out += [worker_name(i) for i in range(1, spark_workers + 1)]
            continue
        out += HA_NODES.get(s, (s,)) if nodes > 1 else (s,)
    return replace(stack, services=tuple(out), nodes=nodes, spark_workers=spark_workers)


def _block(text: str, first: str, end: str) -> list[str]:
    """The lines of ``text`` from the line ``first`` up to (not including) the next line matching ``end``,
    less trailing blank lines."""
    lines = text.splitlines()
    i = lines.index(first)
    j = next((k for k in range(i + 1, len(lines)) if re.match(end, lines[k])), len(lines))
    out = lines[i:j]
    while out and not out[-1].strip():
        out.pop()
    return out


def workers_overlay(stack: Stack, base_text: str) -> str:
    """The compose file of the workers above spark-worker-2 (WORKERS_FILE), from the stack's docker-compose.yml
    text (``base_text``): its ``x-spark`` template and, for each worker, spark-worker-2's definition under the
    worker's name (image, command, memory, probe, restart policy, network). Not compose's ``extends``:
    docker-compose 1.29 refuses to extend a service with ``depends_on``."""
    template = _block(base_text, "x-spark: &spark", r"^\S")
    worker = _block(base_text, f"  {worker_name(2)}:", r"^  \S")
    lines = [
        f"# Written by start_{stack.name}.py --spark-workers {stack.spark_workers} (vendlab/orchestrate.py, "
        "workers_overlay) from docker-compose.yml: each worker",
        "# as spark-worker-2 under its own name. Rewritten at each start: do not edit.",
        *template,
        "",
        "services:",
    ]
    for i in range(BASE_WORKERS + 1, stack.spark_workers + 1):
        lines += [ln.replace(worker_name(2), worker_name(i)) for ln in worker]
        if stack.nodes > 1:  # as docker-compose.ha.yml gives spark-worker-2
            lines += ["    environment:", "      <<: *spark-env"] + [
                f'      {k}: "{v}"' for k, v in HA_CLIENT_ENV.items()
            ]
        lines.append("")
    return "\n".join(lines)


def record_topology(directory: Path, stack: Stack) -> bool:
    """DIR/.env: VENDLAB_NODES / VENDLAB_SPARK_WORKERS (the next --status, --stop, --down use them) and
    COMPOSE_FILE (plain `docker compose` then reads the same files) for a topology other than the default;
    removed for the default one. True if the file changed."""
    path = directory / ENV_FILE
    keys = (*TOPOLOGY_VARS.values(), COMPOSE_FILE_VAR)
    lines = [ln for ln in path.read_text().splitlines() if ln.partition("=")[0].strip() not in keys]
    lines = [ln for ln in lines if ln != TOPOLOGY_COMMENT]
    if stack.compose_files() != ("docker-compose.yml",):
        lines += [
            TOPOLOGY_COMMENT,
            f"{TOPOLOGY_VARS['nodes']}={stack.nodes}",
            f"{TOPOLOGY_VARS['spark_workers']}={stack.spark_workers}",
            f"{COMPOSE_FILE_VAR}={os.pathsep.join(stack.compose_files())}",
        ]
    text = "\n".join(lines) + "\n"
    if path.read_text() == text:
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


TOPOLOGY_COMMENT = "# the topology of the last start (--nodes, --spark-workers) and its compose files"


def recorded_topology(directory: Path) -> dict[str, int]:
    """{"nodes": 3, "spark_workers": 4} as the last start recorded in DIR/.env (empty: the default)."""
    env = read_env_file(directory / ENV_FILE)
    return {k: int(env[v]) for k, v in TOPOLOGY_VARS.items() if env.get(v, "").isdigit()}


def standalone_submit(name: str, cores: int) -> list[str]:
    return [
        "/opt/spark/bin/spark-submit",
        "--master",
        "spark://spark-master:7077",
        "--name",
        f"vendlab-{name}",
        "--driver-memory",
        DRIVER_MEMORY,
        "--executor-memory",
        EXECUTOR_MEMORY,
        "--total-executor-cores",
        str(cores),
        *submit_confs(),
        SUBMIT,
    ]


def yarn_submit(name: str) -> list[str]:
    """The batch layer on YARN: the nodemanager image (Java 8) carries Java 17 in /opt/java17, which the AM and the
    executor are told to use; no Python runs there (DataFrame-only jobs: no Python worker in an executor).
    Containers: AM 256m + 128m overhead, one executor 512m + 384m (default overhead) = the nodemanager's 1280 MB."""
    env = ["env", "VENDLAB_SPARK_MASTER=yarn", "HADOOP_CONF_DIR=/opt/hadoop-conf", "YARN_CONF_DIR=/opt/hadoop-conf"]
    return env + [
        "/opt/spark/bin/spark-submit",
        "--master",
        "yarn",
        "--deploy-mode",
        "client",
        "--name",
        f"vendlab-{name}",
        "--driver-memory",
        DRIVER_MEMORY,
        "--executor-memory",
        EXECUTOR_MEMORY,
        "--num-executors",
        "1",
        "--executor-cores",
        "1",
        "--conf",
        "spark.yarn.appMasterEnv.JAVA_HOME=/opt/java17",
        "--conf",
        "spark.executorEnv.JAVA_HOME=/opt/java17",
        "--conf",
        "spark.yarn.am.memory=256m",
        "--conf",
        "spark.yarn.am.memoryOverhead=128m",
        *submit_confs(),
        SUBMIT,
    ]


def stack_jobs(name: str) -> tuple[str, ...]:
    """The jobs of the stack of architecture ``name``, in start order: validation and the generator, then
    the architecture's processes (vendlab.architectures)."""
    return ("validation", "generator") + tuple(j.process for j in architectures.get(name).jobs)


COMMON_URLS = (
    ("Grafana (dashboards; user admin, password in {dir}/.env)", "http://127.0.0.1:3000"),
    ("Kafka UI (topic, partitions, consumer lag)", "http://127.0.0.1:9021"),
    ("Spark master (workers, running applications)", "http://127.0.0.1:8080"),
)
STACKS = {
    "lambda": Stack(
        name="lambda",
        services=(
            "kafka",
            "kafka-ui",
            "namenode",
            "datanode1",
            "datanode2",
            "resourcemanager",
            "nodemanager",
            "spark-master",
            "spark-worker-1",
            "spark-worker-2",
            "cassandra1",
            "grafana",
        ),
        jobs=stack_jobs("lambda"),
        urls=COMMON_URLS
        + (
            ("HDFS namenode (master dataset under /vendlab/master)", "http://127.0.0.1:9870"),
            ("YARN resourcemanager (batch layer runs)", "http://127.0.0.1:8088"),
        ),
        hdfs=True,
    ),
    "kappa": Stack(
        name="kappa",
        services=("kafka", "kafka-ui", "spark-master", "spark-worker-1", "spark-worker-2", "cassandra1", "grafana"),
        jobs=stack_jobs("kappa"),
        urls=COMMON_URLS,
    ),
}


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                k, _, v = line.partition("=")
                out[k.strip()] = v.strip()
    return out


def ensure_env_file(directory: Path, settings: StackSettings | None = None) -> bool:
    """DIR/.env (mode 600): a random Grafana admin password if missing (kept once made), and the run
    settings, replaced by the ones given. True if the file was created."""
    path = directory / ENV_FILE
    created = not path.exists()
    lines = path.read_text().splitlines() if path.exists() else []
    have = read_env_file(path)
    new = dict(settings.env()) if settings else {}
    # a setting already there is replaced in place, so the file's order (and a later COMPOSE_PROFILES) stays
    for i, ln in enumerate(lines):
        key = ln.partition("=")[0].strip()
        if "=" in ln and key in new:
            lines[i] = f"{key}={new[key]}"
    missing = {k: v for k, v in new.items() if k not in have}
    if PASSWORD_VAR not in have:
        lines += [
            "# Grafana admin password, made by start_*.py (this file is git-ignored)",
            f"{PASSWORD_VAR}={secrets.token_urlsafe(18)}",
        ]
    if missing:
        if "# run settings of the job services, written by start_*.py from its flags" not in lines:
            lines.append("# run settings of the job services, written by start_*.py from its flags")
        lines += [f"{k}={v}" for k, v in missing.items()]
    text = "\n".join(lines) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return created


PROFILES_VAR = "COMPOSE_PROFILES"


def enable_jobs_profile(directory: Path) -> bool:
    """Adds COMPOSE_PROFILES=jobs to DIR/.env (Compose reads COMPOSE_* variables from the project's .env), so that
    after a first start a plain `docker compose up -d` brings the jobs back with the infrastructure and a plain
    `docker compose down` removes them too (without it, `down` skips the job containers, leaves the network, and
    the jobs crash-loop against a stack that is gone). True if the line was added."""
    path = directory / ENV_FILE
    if read_env_file(path).get(PROFILES_VAR) == JOBS_PROFILE:
        return False
    lines = [ln for ln in path.read_text().splitlines() if ln.partition("=")[0].strip() != PROFILES_VAR]
    lines += [
        "# set once the topic, tables and folders exist: plain `docker compose up -d` / `down` include the jobs",
        f"{PROFILES_VAR}={JOBS_PROFILE}",
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return True


def parse_ps(text: str) -> dict[str, dict]:
    """``docker compose ps --format json``: a JSON array (older v2) or one object per line."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("["):
        items = json.loads(text)
    else:
        items = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
    return {i["Service"]: i for i in items}


def topic_config_problems(describe: str, wanted: dict[str, str] | None = None) -> dict[str, str]:
    """kafka-configs.sh --describe output -> {key: wanted} for each entry of ``wanted`` (TOPIC_CONFIG) not set
    as wanted."""
    found = dict(re.findall(r"\b([a-z][a-z0-9.]+)=(-?\w+)", describe))
    return {k: v for k, v in (TOPIC_CONFIG if wanted is None else wanted).items() if found.get(k) != v}


def topic_replication(describe: str) -> int | None:
    """``kafka-topics.sh --describe --topic T`` output -> the topic's replication factor (None if not shown)."""
    m = re.search(r"ReplicationFactor:\s*(\d+)", describe)
    return int(m.group(1)) if m else None


def keyspace_replication(cqlsh_out: str) -> int | None:
    """cqlsh's output of ``SELECT replication FROM system_schema.keyspaces ...`` -> the replication factor."""
    m = re.search(r"'replication_factor':\s*'(\d+)'", cqlsh_out)
    return int(m.group(1)) if m else None


class Orchestrator:
    def __init__(
        self,
        stack: Stack,
        directory: Path,
        runner: CommandRunner | None = None,
        settings: StackSettings | None = None,
        out=sys.stdout,
        memory_check: bool = True,
    ):
        self.stack = stack
        self.dir = Path(directory)
        self.runner = runner or CommandRunner()
        self.s = settings or StackSettings()
        self.out = out
        self.memory_check = memory_check
        self.file = self.dir / "docker-compose.yml"
        self.files = [self.dir / name for name in stack.compose_files()]  # base, then the overlays
        self.previous_env: dict[str, str] = {}  # DIR/.env as the previous start left it (prepare_run)
        self.topic_created = False  # ensure_topic made the topic in this start: no stream in it yet
        self.compose = ["docker", "compose"] + [a for f in self.files for a in ("-f", str(f))]
        self.jobs_compose = self.compose + ["--profile", JOBS_PROFILE]

    @property
    def dry(self) -> bool:
        return getattr(self.runner, "dry", False)

    def say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    def limits(self) -> dict[str, int]:
        out = {}
        for f in self.files:
            if f.name == WORKERS_FILE:  # each extends spark-worker-2, memory limit included
                out.update({s: out[worker_name(2)] for s in self.stack.services if s.startswith("spark-worker-")})
            else:
                out.update(mem_limits(f))
        return out

    # -- plumbing ---------------------------------------------------------------------------
    def exec(self, service: str, args: list[str], input: str | None = None, env: dict | None = None) -> Result:
        flags = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        return self.runner.run(self.compose + ["exec", "-T", *flags, service] + args, input=input)

    def must(self, what: str, r: Result) -> Result:
        if r.code != 0:
            tail = (r.err or r.out).strip().splitlines()[-5:]
            raise OrchestrateError(f"{what} failed (exit {r.code}):\n  " + "\n  ".join(tail))
        return r

    # -- checks -----------------------------------------------------------------------------
    def check_docker(self) -> None:
        if self.runner.which("docker") is None:
            raise OrchestrateError(f"Docker is not installed (no `docker` command). {DOCKER_INSTALL}", 2)
        r = self.runner.run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
        if r.code != 0:
            raise OrchestrateError(
                "Docker is installed but its daemon is not running or not reachable "
                f"({(r.err or r.out).strip()[:200]}). Start it with: sudo systemctl start docker "
                "(or open Docker Desktop); your user may need to be in the `docker` group.",
                2,
            )
        r = self.runner.run(["docker", "compose", "version"], timeout=30)
        if r.code != 0:
            raise OrchestrateError(
                "Docker Compose v2 (`docker compose`) is missing. Install it with: "
                "sudo apt-get install -y docker-compose-v2 (or Docker's docker-compose-plugin)",
                2,
            )

    def check_memory(self) -> None:
        """Docker's memory (the VM's, on Docker Desktop) must hold every container at its limit."""
        need = sum(self.limits().values())
        if not self.memory_check:
            self.say(
                f"  memory check skipped (--skip-memory-check); the stack's limits add up to {need / 1024:.1f} GiB"
            )
            return
        r = self.runner.run(["docker", "info", "--format", "{{.MemTotal}}"], timeout=30)
        if self.dry:
            self.say(
                f"  (the stack's memory limits add up to {need} MiB = {need / 1024:.1f} GiB: "
                "a start stops here if Docker has less)"
            )
            return
        try:
            have = int(r.out.strip()) // (1024 * 1024)
        except ValueError:
            self.say(f"  could not read Docker's memory ({r.out.strip()[:80]!r}); not checked")
            return
        if have < need:
            raise OrchestrateError(
                f"Docker has {have / 1024:.1f} GiB of memory; the {self.stack.name} stack's containers have limits "
                f"adding up to {need / 1024:.1f} GiB (docs/compose.md, Resources), so the kernel would kill some "
                f"of them. Give Docker at least {-(-need // 1024)} GiB (Docker Desktop: Settings > Resources > "
                f"Memory; Docker Desktop on WSL 2 has no such setting: `memory=` under `[wsl2]` in "
                f"%UserProfile%\\.wslconfig, then `wsl --shutdown`), or run the smaller stack (kappa), or start anyway with --skip-memory-check.",
                2,
            )
        self.say(f"  Docker has {have / 1024:.1f} GiB; the stack's limits add up to {need / 1024:.1f} GiB")

    def services(self) -> dict[str, dict]:
        r = self.runner.run(self.jobs_compose + ["ps", "--all", "--format", "json"], timeout=60)
        if r.code != 0:
            raise OrchestrateError(f"`docker compose ps` failed: {(r.err or r.out).strip()[:300]}", 2)
        return parse_ps(r.out)

    def compose_up(self) -> None:
        lim = self.limits()
        self.say(
            "  "
            + ", ".join(f"{s} {lim.get(s, 0)}M" for s in self.stack.services)
            + f" = {sum(lim.get(s, 0) for s in self.stack.services) / 1024:.1f} GiB"
        )
        self.say("  (the first time builds the Spark images: about 10 minutes, output below)")
        # the infrastructure by name: once .env activates the profile jobs (enable_jobs_profile), a bare `up -d`
        # would start the jobs too, before the topic, tables and folders are checked
        self.must(
            "docker compose up -d",
            self.runner.run(self.compose + ["up", "-d", *self.stack.services], timeout=None, stream=True),
        )

    def wait_healthy(self) -> None:
        deadline = self.runner.now() + self.s.health_timeout
        while True:
            ps = self.services()
            state = {
                s: (ps.get(s, {}).get("State", "missing"), ps.get(s, {}).get("Health", "")) for s in self.stack.services
            }
            bad = {s: st for s, st in state.items() if st[1] != "healthy"}
            dead = {s: st for s, st in bad.items() if st[0] in ("exited", "dead", "missing")}
            if not bad:
                self.say(f"  all {len(state)} services healthy")
                return
            hint = ""
            if "grafana" in bad:
                hint = (
                    f"\n  grafana is healthy once its plugin {GRAFANA_PLUGIN} is loaded; the first start "
                    "downloads it (needs the internet; without it Grafana stops), later starts use the copy "
                    "in the grafana-data volume"
                )
            if dead:
                raise OrchestrateError(
                    "these services stopped: "
                    + ", ".join(f"{s} ({st[0]})" for s, st in dead.items())
                    + f"\n  see why with: cd {self.stack.name} && docker compose logs "
                    + " ".join(dead)
                    + "\n  then: docker compose up -d"
                    + (hint if "grafana" in dead else ""),
                    1,
                )
            if self.runner.now() >= deadline:
                raise OrchestrateError(
                    f"time-out after {self.s.health_timeout:g} s waiting for services to be healthy: "
                    + ", ".join(f"{s} ({st[1] or st[0]})" for s, st in sorted(bad.items()))
                    + f"\n  see why with: cd {self.stack.name} && docker compose logs "
                    + " ".join(sorted(bad))
                    + hint,
                    1,
                )
            self.say("  waiting for: " + ", ".join(f"{s} ({st[1] or st[0]})" for s, st in sorted(bad.items())))
            self.runner.sleep(self.s.poll_interval)

    # -- resources --------------------------------------------------------------------------
    def ensure_topic(self) -> bool:
        kt = ["/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server", "kafka:29092"]
        listed = self.must("listing Kafka topics", self.exec("kafka", kt + ["--list"], env=KAFKA_TOOL_ENV))
        st = self.stack
        if st.topic not in listed.out.split():
            args = (
                topic_create_args(st.topic, st.partitions)
                if st.nodes == 1
                else topic_create_args(st.topic, st.partitions, st.replication, st.topic_config())
            )
            self.must(f"creating topic {st.topic}", self.exec("kafka", kt + args, env=KAFKA_TOOL_ENV))
            copies = f", replication {st.replication}, min.insync.replicas {HA_MIN_INSYNC}" if st.nodes > 1 else ""
            self.say(f"  topic {st.topic}: created ({st.partitions} partitions{copies}, no retention)")
            self.topic_created = True
            return True
        if st.nodes > 1:
            self.check_topic_replication(kt)
        kc = [
            "/opt/kafka/bin/kafka-configs.sh",
            "--bootstrap-server",
            "kafka:29092",
            "--entity-type",
            "topics",
            "--entity-name",
            self.stack.topic,
        ]
        described = self.must(
            f"reading the config of topic {self.stack.topic}",
            self.exec("kafka", kc + ["--describe"], env=KAFKA_TOOL_ENV),
        )
        wrong = topic_config_problems(described.out, self.stack.topic_config())
        if not wrong:
            self.say(f"  topic {self.stack.topic}: exists, config as wanted")
            return False
        self.must(
            f"correcting the config of topic {self.stack.topic}",
            self.exec(
                "kafka",
                kc + ["--alter", "--add-config", ",".join(f"{k}={v}" for k, v in wrong.items())],
                env=KAFKA_TOOL_ENV,
            ),
        )
        self.say(f"  topic {self.stack.topic}: exists; corrected " + ", ".join(f"{k}={v}" for k, v in wrong.items()))
        return True

    def ensure_schema(self) -> bool:
        q = "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'vendlab'"
        r = self.must("reading the Cassandra schema", self.exec("cassandra1", ["cqlsh", "-e", q]))
        have = {w for w in r.out.split()}
        if self.stack.nodes > 1 and have:
            self.check_keyspace_replication()
        if set(TABLES) <= have and not self.dry:
            self.say("  Cassandra keyspace vendlab: exists")
            return False
        self.must(
            "creating the Cassandra keyspace and tables",
            self.exec("cassandra1", ["cqlsh"], input=schema_cql(replication=self.stack.replication)),
        )
        copies = f", replication {self.stack.replication}" if self.stack.nodes > 1 else ""
        self.say(f"  Cassandra keyspace vendlab: created ({len(TABLES)} tables{copies})")
        return True

    def start_over_hint(self) -> str:
        name = self.stack.name
        files = " ".join(f"-f {f.name}" for f in self.files)
        return (
            f"a stack started with another --nodes left its volumes: start over with "
            f"cd {name} && docker compose {files} --profile {JOBS_PROFILE} down -v (drops the log and the views), "
            f"then ./{name}/start_{name}.py --nodes {self.stack.nodes}"
        )

    def check_topic_replication(self, kt: list[str]) -> None:
        """On three brokers an existing topic must have 3 replicas: one made by a single-broker start has 1, and
        with the brokers' min.insync.replicas=2 every acks=all write to it would fail (NOT_ENOUGH_REPLICAS)."""
        r = self.must(
            f"describing topic {self.stack.topic}",
            self.exec("kafka", kt + ["--describe", "--topic", self.stack.topic], env=KAFKA_TOOL_ENV),
        )
        rf = topic_replication(r.out)
        if rf is not None and rf < self.stack.replication:
            raise OrchestrateError(
                f"the topic {self.stack.topic} has replication factor {rf}; the {self.stack.nodes}-broker stack "
                f"needs {self.stack.replication} (min.insync.replicas {HA_MIN_INSYNC}): {self.start_over_hint()}",
                2,
            )

    def check_keyspace_replication(self) -> None:
        q = "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'vendlab'"
        r = self.must("reading the keyspace's replication", self.exec("cassandra1", ["cqlsh", "-e", q]))
        rf = keyspace_replication(r.out)
        if rf is not None and rf != self.stack.replication:
            raise OrchestrateError(
                f"the Cassandra keyspace vendlab has replication factor {rf}; the {self.stack.nodes}-node stack "
                f"needs {self.stack.replication} (LOCAL_QUORUM = 2 of 3): {self.start_over_hint()}",
                2,
            )

    def cql(self, query: str) -> list[str]:
        """cqlsh -e in cassandra1; on three nodes at QUORUM (cqlsh reads at ONE by default: one replica, which
        may not have a write the jobs made at LOCAL_QUORUM yet)."""
        return ["cqlsh", "-e", (f"CONSISTENCY QUORUM; {query}" if self.stack.nodes > 1 else query)]

    def ensure_hdfs(self) -> bool:
        # After a restart the namenode stays in safe mode until the datanodes have reported their blocks.
        self.must(
            "waiting for HDFS to leave safe mode",
            self.exec("namenode", ["hdfs", "dfsadmin", "-safemode", "wait"], env=HADOOP_TOOL_ENV),
        )
        # -ls -d exits non-zero when one of the folders is missing
        test = self.exec("namenode", ["hdfs", "dfs", "-ls", "-d", *HDFS_DIRS], env=HADOOP_TOOL_ENV)
        if test.code == 0:
            self.say("  HDFS folders: exist")
            return False
        self.must(
            "creating HDFS folders",
            self.exec("namenode", ["hdfs", "dfs", "-mkdir", "-p", *HDFS_DIRS], env=HADOOP_TOOL_ENV),
        )
        self.must(
            "opening HDFS folders",
            self.exec(
                "namenode", ["hdfs", "dfs", "-chmod", "-R", "777", "/vendlab", "/user/hadoop"], env=HADOOP_TOOL_ENV
            ),
        )
        self.say("  HDFS folders: created " + " ".join(HDFS_DIRS))
        return True

    # -- jobs -------------------------------------------------------------------------------
    def running_jobs(self) -> set[str]:
        ps = self.services()
        return {j for j in self.stack.jobs if ps.get(j, {}).get("State") in ("running", "restarting")}

    def start_job(self, p: Process) -> None:
        lim = self.limits()
        self.say(f"  {p.name}: limit {lim.get(p.name, 0)} MiB ({p.memory})")
        self.must(
            f"starting {p.name}", self.runner.run(self.jobs_compose + ["up", "-d", "--no-deps", p.name], timeout=600)
        )
        if not self.dry:
            self.say(f"  {p.name}: started (log: cd {self.stack.name} && docker compose logs -f {p.name})")

    def stop_job(self, name: str) -> None:
        self.must(f"stopping {name}", self.runner.run(self.jobs_compose + ["stop", name], timeout=300))

    def check_stream_settings(self) -> None:
        """Refuse, before any job starts, stream settings other than the ones the topic's stream was made
        with (the previous start's, in DIR/.env), unless this start created the topic: the generator
        would refuse them at each of compose's restarts. DIR/.env gets the stream's settings back."""
        if self.dry or self.topic_created or "generator" in self.running_jobs():
            return
        new = self.s.env()
        changed = {
            k: (self.previous_env[k], new[k])
            for k in STREAM_SETTINGS
            if k in self.previous_env and k in new and self.previous_env[k] != new[k]
        }
        if not changed:
            return
        ensure_env_file(self.dir, StackSettings.from_env({**new, **{k: old for k, (old, _) in changed.items()}}))
        flag = {var: "--" + k.replace("_", "-") for k, var in StackSettings.ENV.items()}
        was = " ".join(f"{flag[k]} {old}" for k, (old, _) in changed.items())
        asked = " ".join(f"{flag[k]} {v}" for k, (_, v) in changed.items())
        name = self.stack.name
        raise OrchestrateError(
            f"the topic {self.stack.topic} holds a stream made with {was}; a restarted generator continues that "
            f"stream with the same settings and would refuse {asked} (exit 2) at every restart.\n"
            f"  to continue the stream: ./{name}/start_{name}.py {was}\n"
            f"  to start a new stream with {asked} (a new log, the views from zero): "
            f"cd {name} && docker compose --profile {JOBS_PROFILE} down -v, then ./{name}/start_{name}.py {asked}",
            2,
        )

    def check_jobs_stay_up(self) -> None:
        """Wait JOB_SETTLE_S, then every job must be running and not restarted since its start (compose
        restarts a failing job: running alone does not show it); else name them with their last lines."""
        if self.dry:
            return
        before = self.restart_counts()
        self.say(f"  checking that the jobs stay up ({JOB_SETTLE_S:.0f} s)")
        self.runner.sleep(JOB_SETTLE_S)
        ps = self.services()
        after = self.restart_counts(ps)
        bad = {}
        for j in self.stack.jobs:
            state = ps.get(j, {}).get("State", "missing")
            if state != "running":
                bad[j] = state
            elif after.get(j, 0) > before.get(j, 0):
                bad[j] = f"restarted {after[j] - before.get(j, 0)} time(s)"
        if not bad:
            return
        logs = self.runner.run(self.jobs_compose + ["logs", "--tail", "15", *bad], timeout=60)
        raise OrchestrateError(
            "these jobs did not stay up: "
            + ", ".join(f"{j} ({why})" for j, why in bad.items())
            + f"\n  their last lines (cd {self.stack.name} && docker compose logs JOB for more):\n"
            + (logs.out or logs.err).rstrip(),
            1,
        )

    def restart_counts(self, ps: dict[str, dict] | None = None) -> dict[str, int]:
        """Each job container's restart count (``docker inspect``), for the containers ps names."""
        ps = self.services() if ps is None else ps
        names = {ps[j]["Name"]: j for j in self.stack.jobs if ps.get(j, {}).get("Name")}
        if not names:
            return {}
        r = self.runner.run(["docker", "inspect", "--format", "{{.Name}} {{.RestartCount}}", *names], timeout=60)
        out = {}
        for line in r.out.splitlines() if r.code == 0 else []:
            name, _, count = line.strip().lstrip("/").partition(" ")
            if name in names and count.isdigit():
                out[names[name]] = int(count)
        return out

    def start_jobs(self) -> None:
        running = set() if self.dry else self.running_jobs()
        for p in self.stack.processes(self.s):
            if p.name in running:
                self.say(f"  {p.name}: already running (to change its settings: --stop, then start again)")
                continue
            self.start_job(p)

    # -- drain: the jobs take the generator's end marker --------------------------------------
    def end_markers(self, job: str) -> set[str]:
        """The end markers (``end-<seed>-<ms>``, one per generator stop) ``job`` has recorded in Cassandra."""
        q = (
            f"SELECT marker_id FROM vendlab.markers WHERE job = '{job}' "
            f"AND marker_id >= '{END_PREFIX}' AND marker_id < '{END_PREFIX[:-1]}.'"
        )
        r = self.exec("cassandra1", self.cql(q))
        return set(re.findall(rf"(?<![\w-]){END_PREFIX}[\w-]+", r.out)) if r.code == 0 else set()

    def newest_batch(self, job: str) -> int | None:
        q = f"SELECT batch_id FROM vendlab.applied WHERE job = '{job}' ORDER BY batch_id DESC LIMIT 1"
        r = self.exec("cassandra1", self.cql(q))
        ids = re.findall(r"^\s*(\d+)\s*$", r.out, re.M) if r.code == 0 else []
        return int(ids[0]) if ids else None

    def drain(self, before: set[str], jobs: list[str]) -> bool:
        """After the generator stopped: wait until the validation consumer has its new end marker (it records
        it once every partition delivered its copy), every streaming job in ``jobs`` has it too, and each of
        those jobs' newest applied micro-batch stayed the same over two more polls (a job records the marker
        with its first copy; the copies of the other partitions come in its next micro-batch)."""
        deadline = self.runner.now() + self.s.drain_timeout
        last, stable = None, 0
        self.say(
            f"  draining: waiting for validation{''.join(', ' + j for j in jobs)} to take the generator's "
            f"end marker (up to {self.s.drain_timeout:g} s)"
        )
        while True:
            new = self.end_markers(VALIDATION_JOB) - before
            missing = [VALIDATION_JOB] if not new else [j for j in jobs if max(new) not in self.end_markers(j)]
            if not missing:
                applied = tuple(self.newest_batch(j) for j in jobs)
                stable = stable + 1 if applied == last else 0
                last = applied
                if stable >= 2:
                    self.say(f"  drained: every job has the end marker {max(new)}")
                    return True
            if self.runner.now() >= deadline:
                self.say(
                    f"  not drained after {self.s.drain_timeout:g} s (still without the end marker: "
                    f"{', '.join(missing) or 'none; their micro-batches still change'}); stopping anyway"
                )
                return False
            if missing:
                self.say("  waiting for: " + ", ".join(missing))
            self.runner.sleep(self.s.poll_interval)

    # -- what differs between compose and a local stack (vendlab.localstack.start overrides these) --
    def prepare_run(self) -> None:
        """Step 0: the run settings the job services read (compose: DIR/.env)."""
        if self.dry:
            self.say(
                f"[0/6] {self.dir / ENV_FILE}: Grafana password if missing, run settings "
                + " ".join(f"{k}={v}" for k, v in self.s.env().items())
            )
        else:
            self.previous_env = read_env_file(self.dir / ENV_FILE)
        if not self.dry and ensure_env_file(self.dir, self.s):
            self.say(f"created {self.dir / ENV_FILE} with a random Grafana admin password")
        self.prepare_topology()

    def prepare_topology(self) -> None:
        """--nodes / --spark-workers: the extra workers' compose file, and the topology in DIR/.env."""
        st = self.stack
        if st.compose_files() == ("docker-compose.yml",) and not recorded_topology(self.dir):
            return
        files = " + ".join(st.compose_files())
        if self.dry:
            self.say(
                f"  topology: {st.nodes} Kafka broker(s) and Cassandra node(s), {st.spark_workers} Spark workers: {files}"
                + (
                    f" ({WORKERS_FILE} written: spark-worker-3 ... {worker_name(st.spark_workers)})"
                    if WORKERS_FILE in files
                    else ""
                )
            )
            return
        if st.spark_workers > BASE_WORKERS:
            (self.dir / WORKERS_FILE).write_text(workers_overlay(st, self.file.read_text()))
        if record_topology(self.dir, st):
            self.say(f"  {ENV_FILE}: the topology ({files}; {COMPOSE_FILE_VAR} for plain `docker compose`)")

    def platform_title(self) -> str:
        return "Docker, Compose v2 and Docker's memory"

    def check_platform(self) -> None:
        self.check_docker()
        self.check_memory()

    def check_reachable(self) -> None:
        """Before --status / --stop: the platform answers (and the extra workers' file, which every docker
        compose call names, is there)."""
        if self.stack.spark_workers > BASE_WORKERS and not self.dry and not (self.dir / WORKERS_FILE).exists():
            (self.dir / WORKERS_FILE).write_text(workers_overlay(self.stack, self.file.read_text()))
        self.check_docker()

    def infra_title(self) -> str:
        return "docker compose up -d"

    def infra_up(self) -> None:
        self.compose_up()

    def after_jobs(self) -> None:
        if self.dry:
            self.say(
                f"  {self.dir / ENV_FILE}: {PROFILES_VAR}={JOBS_PROFILE} (plain `docker compose up -d` / `down` "
                "include the jobs from now on)"
            )
        elif enable_jobs_profile(self.dir):
            self.say(
                f"  {ENV_FILE}: {PROFILES_VAR}={JOBS_PROFILE}: from now on plain `docker compose up -d` and "
                "`docker compose down` include the jobs"
            )
        self.check_jobs_stay_up()

    def states(self) -> dict[str, str]:
        """Each infrastructure service and job -> its state, for --status."""
        ps = self.services()
        out = {}
        for s in self.stack.services + self.stack.jobs:
            st = ps.get(s)
            out[s] = (
                f"{st.get('State', '?')} {st.get('Health', '')}".rstrip()
                if st
                else ("missing" if s in self.stack.services else "stopped")
            )
        return out

    def stopped_hint(self) -> str:
        return f"stop it with: ./{self.stack.name}/start_{self.stack.name}.py --down"

    def infra_down(self) -> None:
        self.must("docker compose down", self.runner.run(self.jobs_compose + ["down"], timeout=600, stream=True))
        self.say(
            f"the {self.stack.name} stack is down; its volumes (Kafka log, Cassandra, HDFS, Grafana) are kept. "
            f"Drop them with: cd {self.stack.name} && docker compose --profile {JOBS_PROFILE} down -v"
        )

    # -- commands: the one list of steps ------------------------------------------------------
    def start(self) -> int:
        n = 6
        if self.dry:
            self.say(
                f"Dry run: the commands a start of the {self.stack.name} stack runs, in order "
                f"(nothing is run; answers assumed: the stack not yet set up)"
            )
        self.prepare_run()
        t = self._step(None, f"[1/{n}] {self.platform_title()}")
        self.check_platform()
        t = self._step(t, f"[2/{n}] the {self.stack.name} stack's infrastructure: {self.infra_title()}")
        self.infra_up()
        t = self._step(t, f"[3/{n}] waiting for every service to be healthy")
        self.wait_healthy()
        t = self._step(t, f"[4/{n}] Kafka topic, Cassandra tables" + (", HDFS folders" if self.stack.hdfs else ""))
        self.ensure_topic()
        self.ensure_schema()
        if self.stack.hdfs:
            self.ensure_hdfs()
        t = self._step(t, f"[5/{n}] the jobs (profile {JOBS_PROFILE}): " + ", ".join(self.stack.jobs))
        self.check_stream_settings()
        self.start_jobs()
        self.after_jobs()
        self._step(t, f"[6/{n}] open")
        self.print_urls()
        return 0

    def _step(self, started: float | None, title: str) -> float:
        """Print the next step's title, after the time the previous one took (when a second or more: a
        half-minute step should say so, not leave the user wondering); returns the new step's start."""
        now = self.runner.now()
        if started is not None and not self.dry and now - started >= 1:
            self.say(f"  (took {now - started:.0f} s)")
        self.say(title)
        return now

    def status(self) -> int:
        self.check_reachable()
        self.say(f"{self.stack.name} services:")
        for s, state in self.states().items():
            self.say(f"  {s:16} {state}")
        self.print_urls()
        return 0

    def stop(self) -> int:
        """The generator first (it writes its end marker), then, once the jobs have drained it, the others in
        reverse start order."""
        self.check_reachable()
        running = self.running_jobs()
        order = [j for j in self.stack.jobs if j == "generator"] + [
            j for j in reversed(self.stack.jobs) if j != "generator"
        ]
        drain = "generator" in running and "validation" in running
        before = self.end_markers(VALIDATION_JOB) if drain else set()
        drained = True
        markers = marker_jobs()
        for j in order:
            if j not in running:
                self.say(f"  {j}: not running")
                continue
            self.stop_job(j)
            self.say(f"  {j}: stopped")
            if j == "generator" and drain:
                drained = self.drain(before, [markers[p] for p in self.stack.jobs if p in markers and p in running])
        self.say(f"jobs stopped; the infrastructure still runs ({self.stopped_hint()})")
        return 0 if drained else 1

    def down(self) -> int:
        code = self.stop()
        self.infra_down()
        return code

    def print_urls(self) -> None:
        self.say("URLs:")
        for what, url in self.stack.urls:
            self.say(f"  {url:24} {what.format(dir=self.stack.name)}")


def main(
    stack_name: str,
    argv: list[str] | None = None,
    runner: CommandRunner | None = None,
    directory: Path | None = None,
    out=sys.stdout,
) -> int:
    stack = STACKS[stack_name]
    ap = argparse.ArgumentParser(
        prog=f"start_{stack_name}.py",
        description=f"Bring up the {stack_name} stack (docker compose), set it up and start "
        f"its jobs; safe to re-run. With --local DIR: the same steps on a local "
        f"stack (vendlab stack up --stack {stack_name} --dir DIR).",
    )
    g = ap.add_mutually_exclusive_group()
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print every command of a start, in order, with its memory; run none (needs no Docker)",
    )
    g.add_argument("--status", action="store_true", help="show what runs, and the URLs")
    g.add_argument(
        "--stop",
        action="store_true",
        help="stop the generator, let the jobs drain its end marker, then stop them (the infrastructure keeps running)",
    )
    g.add_argument("--down", action="store_true", help="stop the jobs, then the whole stack (volumes are kept)")
    ap.add_argument(
        "--local",
        type=Path,
        metavar="DIR",
        help=f"run the steps on the local stack in DIR (started with `vendlab stack up --stack "
        f"{stack_name} --dir DIR`) instead of docker compose; needs the project's venv",
    )
    ap.add_argument("--rate", type=float, default=StackSettings.rate, help="generator events per second (default 2000)")
    ap.add_argument("--seed", type=int, default=StackSettings.seed)
    ap.add_argument("--bad-rate", type=float, default=StackSettings.bad_rate)
    ap.add_argument("--dup-rate", type=float, default=StackSettings.dup_rate)
    ap.add_argument(
        "--timeout",
        type=float,
        default=StackSettings.health_timeout,
        help=f"seconds to wait for the services to be healthy (default {StackSettings.health_timeout:g})",
    )
    ap.add_argument(
        "--drain-timeout",
        type=float,
        default=StackSettings.drain_timeout,
        help=f"--stop: seconds to wait for the jobs to drain (default {StackSettings.drain_timeout:g})",
    )
    ap.add_argument(
        "--skip-memory-check",
        action="store_true",
        help="start even if Docker has less memory than the stack's limits add up to",
    )
    ap.add_argument(
        "--nodes",
        type=int,
        metavar="N",
        help="Kafka brokers and Cassandra nodes: 1 (default) or 3 (docker-compose.ha.yml: replication 3, "
        "min.insync.replicas 2, QUORUM); kept in .env for the next --status/--stop/--down",
    )
    ap.add_argument(
        "--spark-workers",
        type=int,
        metavar="N",
        help=f"Spark workers spark-worker-1 ... -N, {WORKERS_ALLOWED.start} (default) to {WORKERS_ALLOWED.stop - 1}; "
        f"those above 2 from {WORKERS_FILE}, written by the start; kept in .env like --nodes",
    )
    if architectures.get(stack_name).job(BATCH) is not None:
        ap.add_argument(
            "--batch-interval",
            type=float,
            default=StackSettings.batch_interval,
            help=f"seconds between batch runs (default {StackSettings.batch_interval:g})",
        )
    args = ap.parse_args(argv)
    if args.local is not None and args.dry_run:
        ap.error("--dry-run prints a compose start's commands; it does not combine with --local")
    if args.local is not None and (args.nodes is not None or args.spark_workers is not None):
        ap.error(
            "--nodes and --spark-workers choose the compose files; with --local the topology is the local "
            "stack's (vendlab stack up ... --dir DIR)"
        )
    settings = StackSettings(
        rate=args.rate,
        seed=args.seed,
        bad_rate=args.bad_rate,
        dup_rate=args.dup_rate,
        batch_interval=getattr(args, "batch_interval", StackSettings.batch_interval),
        health_timeout=args.timeout,
        drain_timeout=args.drain_timeout,
    )
    compose_dir = directory or Path(__file__).resolve().parents[1] / stack_name
    try:
        if args.local is None:
            recorded = recorded_topology(compose_dir)  # the last start's, unless given again
            stack = scaled(
                stack,
                recorded.get("nodes", 1) if args.nodes is None else args.nodes,
                recorded.get("spark_workers", BASE_WORKERS) if args.spark_workers is None else args.spark_workers,
            )
        if args.dry_run:
            runner = DryRunner(stack, out)
        if args.local is not None:
            try:
                from vendlab.localstack.start import LocalOrchestrator
            except ImportError as e:
                raise OrchestrateError(
                    f"--local needs the project's Python environment ({e}): run the script with "
                    f"its venv, e.g. .venv/bin/python {stack_name}/start_{stack_name}.py --local "
                    f"{args.local} (make test / scripts/bootstrap.sh create it)",
                    2,
                ) from e
            orch = LocalOrchestrator(stack, compose_dir, args.local, settings, out)
        else:
            orch = Orchestrator(stack, compose_dir, runner, settings, out, memory_check=not args.skip_memory_check)
        if args.status:
            return orch.status()
        if args.stop:
            return orch.stop()
        if args.down:
            return orch.down()
        return orch.start()
    except OrchestrateError as e:
        print(f"start_{stack_name}: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"start_{stack_name}: interrupted", file=sys.stderr)
        return 130


# -- inside a job container -------------------------------------------------------------------
def job_process(name: str, settings: StackSettings) -> Process:
    for stack in STACKS.values():
        for p in stack.processes(settings):
            if p.name == name:
                return p
    allowed = sorted({p.name for st in STACKS.values() for p in st.processes(settings)})
    raise OrchestrateError(f"unknown job {name!r}: allowed are {', '.join(allowed)}", 2)


def exec_main(argv: list[str]) -> int:
    """``python -m vendlab.orchestrate exec NAME``: the job service's PID 1 becomes the job's command."""
    if len(argv) != 2 or argv[0] != "exec":
        print(
            "usage: python -m vendlab.orchestrate exec JOB   (run by the job services of the compose files)",
            file=sys.stderr,
        )
        return 2
    try:
        p = job_process(argv[1], StackSettings.from_env())
    except OrchestrateError as e:
        print(f"vendlab.orchestrate: {e}", file=sys.stderr)
        return e.code
    print(f"vendlab.orchestrate: {p.name}: {shlex.join(p.command)}", file=sys.stderr, flush=True)
    os.execvp(p.command[0], p.command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(exec_main(sys.argv[1:]))
