"""Start, inspect and stop a compose stack's jobs: the code behind lambda/start_lambda.py and
kappa/start_kappa.py. Standard library only (the start scripts run with any Python 3.10+).

    python start_lambda.py             set up and start everything (safe to re-run)
    python start_lambda.py --status    what runs, and the URLs
    python start_lambda.py --stop      stop the jobs and the generator (the containers keep running)

Steps of a start, each skipped when its result is already there:
 1. ``.env`` next to the compose file, with a random Grafana admin password, if missing;
 2. Docker, its daemon and Compose v2 are there, and the stack's containers run;
 3. every service is healthy (``docker compose ps --format json``), with a time-out;
 4. the Kafka topic (config from vendlab.kafka_log), the Cassandra keyspace and tables
    (vendlab/store/schema.cql piped into cqlsh), and on lambda the HDFS folders;
 5. the validation consumer and the generator, then the streaming jobs (spark-submit to the
    Spark master) and, on lambda, the batch layer (spark-submit to YARN), each a process in the
    spark-master container with a pid file in /tmp/vendlab/, so a re-run sees what runs;
 6. the URLs.

Every command goes through a ``CommandRunner``; the tests hand in a fake one.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vendlab.kafka_log import DEFAULT_PARTITIONS, DEFAULT_TOPIC, topic_create_args
from vendlab.spark import submit_confs
from vendlab.store.cassandra import TABLES, schema_cql

ENV_FILE = ".env"
PASSWORD_VAR = "GRAFANA_ADMIN_PASSWORD"
PID_DIR = "/tmp/vendlab"
SUBMIT = "/opt/vendlab/submit.py"  # launcher baked into the Spark image (docker/spark/submit.py)
PYTHON = "/opt/vendlab/venv/bin/python"
HDFS_DIRS = ("/vendlab/master", "/vendlab/checkpoints", "/user/hadoop")
DOCKER_INSTALL = ("Install Docker Engine with the Compose plugin (https://docs.docker.com/engine/install/; "
                  "on Debian/Ubuntu: sudo apt-get install -y docker.io docker-compose-v2), then start it "
                  "with: sudo systemctl start docker")


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

    def run(self, args: list[str], input: str | None = None, timeout: float | None = 300) -> Result:
        try:
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


@dataclass(frozen=True)
class Process:
    """A long-running process in a container, tracked by a pid file."""

    name: str
    command: list[str]
    service: str = "spark-master"


@dataclass
class Settings:
    rate: float = 2000.0
    seed: int = 1
    bad_rate: float = 0.01
    dup_rate: float = 0.01
    batch_interval: float = 60.0
    health_timeout: float = 420.0
    poll_interval: float = 5.0


@dataclass(frozen=True)
class Stack:
    name: str
    services: tuple[str, ...]
    urls: tuple[tuple[str, str], ...]
    hdfs: bool = False
    topic: str = DEFAULT_TOPIC
    partitions: int = DEFAULT_PARTITIONS
    extra: dict = field(default_factory=dict)

    def processes(self, s: Settings) -> list[Process]:
        cli = [PYTHON, "-m", "vendlab.cli"]
        seed = ["--profile", "compose", "--seed", str(s.seed)]
        procs = [
            Process("validation", cli + ["validate"] + seed),
            Process("generator", cli + ["produce"] + seed + ["--rate", f"{s.rate:g}", "--bad-rate", f"{s.bad_rate:g}",
                                                             "--dup-rate", f"{s.dup_rate:g}"]),
        ]
        if self.name == "kappa":
            procs.append(Process("kappa", standalone_submit("kappa", cores=2) + ["job", "kappa"] + seed))
        else:
            procs.append(Process("lambda-ingest", standalone_submit("lambda-ingest", cores=1)
                                 + ["job", "lambda-ingest"] + seed))
            procs.append(Process("lambda-speed", standalone_submit("lambda-speed", cores=1)
                                 + ["job", "lambda-speed"] + seed))
            procs.append(Process("lambda-batch", yarn_submit("lambda-batch")
                                 + ["job", "lambda-batch"] + seed + ["--batch-interval", f"{s.batch_interval:g}"]))
        return procs


def standalone_submit(name: str, cores: int) -> list[str]:
    return ["/opt/spark/bin/spark-submit", "--master", "spark://spark-master:7077", "--name", f"vendlab-{name}",
            "--driver-memory", "512m", "--executor-memory", "512m", "--total-executor-cores", str(cores),
            *submit_confs(), SUBMIT]


def yarn_submit(name: str) -> list[str]:
    """The batch layer on YARN: the nodemanager image carries Java 17 and the venv (see the Dockerfile)."""
    env = ["env", "VENDLAB_SPARK_MASTER=yarn", "HADOOP_CONF_DIR=/opt/hadoop-conf", "YARN_CONF_DIR=/opt/hadoop-conf"]
    return env + ["/opt/spark/bin/spark-submit", "--master", "yarn", "--deploy-mode", "client",
                  "--name", f"vendlab-{name}", "--driver-memory", "512m", "--executor-memory", "512m",
                  "--num-executors", "1", "--executor-cores", "1",
                  "--conf", "spark.yarn.appMasterEnv.JAVA_HOME=/opt/java17",
                  "--conf", "spark.executorEnv.JAVA_HOME=/opt/java17",
                  "--conf", f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={PYTHON}",
                  "--conf", f"spark.executorEnv.PYSPARK_PYTHON={PYTHON}",
                  "--conf", "spark.yarn.am.memory=512m", *submit_confs(),
                  SUBMIT]


COMMON_URLS = (
    ("Grafana (dashboards; user admin, password in {dir}/.env)", "http://127.0.0.1:3000"),
    ("Kafka UI (topic, partitions, consumer lag)", "http://127.0.0.1:9021"),
    ("Spark master (workers, running applications)", "http://127.0.0.1:8080"),
)
STACKS = {
    "lambda": Stack(
        name="lambda",
        services=("kafka", "kafka-ui", "namenode", "datanode1", "datanode2", "resourcemanager", "nodemanager",
                  "spark-master", "spark-worker-1", "spark-worker-2", "cassandra1", "grafana"),
        urls=COMMON_URLS + (("HDFS namenode (master dataset under /vendlab/master)", "http://127.0.0.1:9870"),
                            ("YARN resourcemanager (batch layer runs)", "http://127.0.0.1:8088")),
        hdfs=True,
    ),
    "kappa": Stack(
        name="kappa",
        services=("kafka", "kafka-ui", "spark-master", "spark-worker-1", "spark-worker-2", "cassandra1", "grafana"),
        urls=COMMON_URLS,
    ),
}


def ensure_env_file(directory: Path) -> bool:
    """Create DIR/.env with a random Grafana admin password if missing; True if created."""
    path = directory / ENV_FILE
    if path.exists() and PASSWORD_VAR in path.read_text():
        return False
    old = path.read_text() if path.exists() else ""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(old + ("" if not old or old.endswith("\n") else "\n")
                + f"# Grafana admin password, made by start_*.py (this file is git-ignored)\n"
                + f"{PASSWORD_VAR}={secrets.token_urlsafe(18)}\n")
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


class Orchestrator:
    def __init__(self, stack: Stack, directory: Path, runner: CommandRunner | None = None,
                 settings: Settings | None = None, out=sys.stdout):
        self.stack = stack
        self.dir = Path(directory)
        self.runner = runner or CommandRunner()
        self.s = settings or Settings()
        self.out = out
        self.compose = ["docker", "compose", "-f", str(self.dir / "docker-compose.yml")]

    def say(self, msg: str) -> None:
        print(msg, file=self.out, flush=True)

    # -- plumbing ---------------------------------------------------------------------------
    def exec(self, service: str, args: list[str], input: str | None = None, detach: bool = False) -> Result:
        return self.runner.run(self.compose + ["exec"] + (["-d"] if detach else []) + ["-T", service] + args,
                               input=input)

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
            raise OrchestrateError("Docker is installed but its daemon is not running or not reachable "
                                   f"({(r.err or r.out).strip()[:200]}). Start it with: sudo systemctl start docker "
                                   "(or open Docker Desktop); your user may need to be in the `docker` group.", 2)
        r = self.runner.run(["docker", "compose", "version"], timeout=30)
        if r.code != 0:
            raise OrchestrateError("Docker Compose v2 (`docker compose`) is missing. Install it with: "
                                   "sudo apt-get install -y docker-compose-v2 (or Docker's docker-compose-plugin)", 2)

    def services(self) -> dict[str, dict]:
        r = self.runner.run(self.compose + ["ps", "--all", "--format", "json"], timeout=60)
        if r.code != 0:
            raise OrchestrateError(f"`docker compose ps` failed: {(r.err or r.out).strip()[:300]}", 2)
        return parse_ps(r.out)

    def check_stack(self) -> None:
        ps = self.services()
        missing = [s for s in self.stack.services if s not in ps]
        if missing:
            raise OrchestrateError(
                f"the {self.stack.name} stack is not running (no container for: {', '.join(missing)}). "
                f"Start it with:\n  cd {self.stack.name} && docker compose up -d\n"
                f"(the first time builds the Spark image: about 10 minutes)", 2)

    def wait_healthy(self) -> None:
        deadline = self.runner.now() + self.s.health_timeout
        while True:
            ps = self.services()
            state = {s: (ps.get(s, {}).get("State", "missing"), ps.get(s, {}).get("Health", "")) for s in
                     self.stack.services}
            bad = {s: st for s, st in state.items() if st[1] != "healthy"}
            dead = {s: st for s, st in bad.items() if st[0] in ("exited", "dead", "missing")}
            if not bad:
                self.say(f"  all {len(state)} services healthy")
                return
            if dead:
                raise OrchestrateError(
                    "these services stopped: " + ", ".join(f"{s} ({st[0]})" for s, st in dead.items())
                    + f"\n  see why with: cd {self.stack.name} && docker compose logs "
                    + " ".join(dead) + f"\n  then: docker compose up -d", 1)
            if self.runner.now() >= deadline:
                raise OrchestrateError(
                    f"time-out after {self.s.health_timeout:g} s waiting for services to be healthy: "
                    + ", ".join(f"{s} ({st[1] or st[0]})" for s, st in sorted(bad.items()))
                    + f"\n  see why with: cd {self.stack.name} && docker compose logs " + " ".join(sorted(bad)), 1)
            self.say("  waiting for: " + ", ".join(f"{s} ({st[1] or st[0]})" for s, st in sorted(bad.items())))
            self.runner.sleep(self.s.poll_interval)

    # -- resources --------------------------------------------------------------------------
    def ensure_topic(self) -> bool:
        kt = ["/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server", "kafka:29092"]
        listed = self.must("listing Kafka topics", self.exec("kafka", kt + ["--list"]))
        if self.stack.topic in listed.out.split():
            self.say(f"  topic {self.stack.topic}: exists")
            return False
        self.must(f"creating topic {self.stack.topic}",
                  self.exec("kafka", kt + topic_create_args(self.stack.topic, self.stack.partitions)))
        self.say(f"  topic {self.stack.topic}: created ({self.stack.partitions} partitions)")
        return True

    def ensure_schema(self) -> bool:
        q = "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'vendlab'"
        r = self.must("reading the Cassandra schema", self.exec("cassandra1", ["cqlsh", "-e", q]))
        have = {w for w in r.out.split()}
        if set(TABLES) <= have:
            self.say("  Cassandra keyspace vendlab: exists")
            return False
        self.must("creating the Cassandra keyspace and tables", self.exec("cassandra1", ["cqlsh"], input=schema_cql()))
        self.say(f"  Cassandra keyspace vendlab: created ({len(TABLES)} tables)")
        return True

    def ensure_hdfs(self) -> bool:
        test = self.exec("namenode", ["sh", "-c", " && ".join(f"hdfs dfs -test -d {d}" for d in HDFS_DIRS)])
        if test.code == 0:
            self.say("  HDFS folders: exist")
            return False
        self.must("creating HDFS folders", self.exec("namenode", ["hdfs", "dfs", "-mkdir", "-p", *HDFS_DIRS]))
        self.must("opening HDFS folders", self.exec("namenode", ["hdfs", "dfs", "-chmod", "-R", "777", "/vendlab",
                                                                 "/user/hadoop"]))
        self.say("  HDFS folders: created " + " ".join(HDFS_DIRS))
        return True

    # -- processes --------------------------------------------------------------------------
    def running(self, p: Process) -> bool:
        pid = f"{PID_DIR}/{p.name}.pid"
        return self.exec(p.service, ["sh", "-c", f'test -f {pid} && kill -0 "$(cat {pid})"']).code == 0

    def launch(self, p: Process) -> bool:
        if self.running(p):
            self.say(f"  {p.name}: already running")
            return False
        pid, log = f"{PID_DIR}/{p.name}.pid", f"{PID_DIR}/{p.name}.log"
        script = f"mkdir -p {PID_DIR} && echo $$ > {pid} && exec {shlex.join(p.command)} >> {log} 2>&1"
        self.must(f"starting {p.name}", self.exec(p.service, ["sh", "-c", script], detach=True))
        self.say(f"  {p.name}: started (log: docker compose exec {p.service} tail -f {log})")
        return True

    def halt(self, p: Process) -> bool:
        if not self.running(p):
            self.say(f"  {p.name}: not running")
            return False
        pid = f"{PID_DIR}/{p.name}.pid"
        # SIGINT: the generator writes its end marker, the Spark drivers stop their queries.
        self.must(f"stopping {p.name}", self.exec(p.service, ["sh", "-c", f'kill -INT "$(cat {pid})" && rm -f {pid}']))
        self.say(f"  {p.name}: stopped")
        return True

    # -- commands ---------------------------------------------------------------------------
    def start(self) -> int:
        if ensure_env_file(self.dir):
            self.say(f"created {self.dir / ENV_FILE} with a random Grafana admin password; "
                     f"if the stack is already up, apply it with: cd {self.stack.name} && docker compose up -d")
        self.say(f"[1/5] checking Docker and the {self.stack.name} stack")
        self.check_docker()
        self.check_stack()
        self.say("[2/5] waiting for every service to be healthy")
        self.wait_healthy()
        self.say("[3/5] Kafka topic, Cassandra tables" + (", HDFS folders" if self.stack.hdfs else ""))
        self.ensure_topic()
        self.ensure_schema()
        if self.stack.hdfs:
            self.ensure_hdfs()
        self.say("[4/5] validation consumer, generator and jobs")
        for p in self.stack.processes(self.s):
            self.launch(p)
        self.say("[5/5] open")
        self.print_urls()
        return 0

    def status(self) -> int:
        self.check_docker()
        ps = self.services()
        self.say(f"{self.stack.name} services:")
        for s in self.stack.services:
            st = ps.get(s)
            self.say(f"  {s:16} " + (f"{st.get('State', '?')} {st.get('Health', '')}".rstrip() if st else "missing"))
        if all(s in ps for s in ("spark-master",)):
            self.say("processes:")
            for p in self.stack.processes(self.s):
                self.say(f"  {p.name:16} {'running' if self.running(p) else 'stopped'}")
        self.print_urls()
        return 0

    def stop(self) -> int:
        self.check_docker()
        self.check_stack()
        procs = self.stack.processes(self.s)
        order = [p for p in procs if p.name == "generator"] + [p for p in reversed(procs) if p.name != "generator"]
        for p in order:
            self.halt(p)
        self.say(f"jobs stopped; the containers still run (stop them with: cd {self.stack.name} && docker compose down)")
        return 0

    def print_urls(self) -> None:
        self.say("URLs:")
        for what, url in self.stack.urls:
            self.say(f"  {url:24} {what.format(dir=self.stack.name)}")


def main(stack_name: str, argv: list[str] | None = None, runner: CommandRunner | None = None,
         directory: Path | None = None, out=sys.stdout) -> int:
    stack = STACKS[stack_name]
    ap = argparse.ArgumentParser(prog=f"start_{stack_name}.py",
                                 description=f"Set up and start the {stack_name} architecture on its compose stack.")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--status", action="store_true", help="show what runs, and the URLs")
    g.add_argument("--stop", action="store_true", help="stop the jobs and the generator")
    ap.add_argument("--rate", type=float, default=Settings.rate, help="generator events per second (default 2000)")
    ap.add_argument("--seed", type=int, default=Settings.seed)
    ap.add_argument("--bad-rate", type=float, default=Settings.bad_rate)
    ap.add_argument("--dup-rate", type=float, default=Settings.dup_rate)
    ap.add_argument("--timeout", type=float, default=Settings.health_timeout,
                    help="seconds to wait for the services to be healthy (default 420)")
    if stack_name == "lambda":
        ap.add_argument("--batch-interval", type=float, default=Settings.batch_interval,
                        help="seconds between batch runs (default 60)")
    args = ap.parse_args(argv)
    settings = Settings(rate=args.rate, seed=args.seed, bad_rate=args.bad_rate, dup_rate=args.dup_rate,
                        batch_interval=getattr(args, "batch_interval", Settings.batch_interval),
                        health_timeout=args.timeout)
    orch = Orchestrator(stack, directory or Path(__file__).resolve().parents[1] / stack_name, runner, settings, out)
    try:
        if args.status:
            return orch.status()
        if args.stop:
            return orch.stop()
        return orch.start()
    except OrchestrateError as e:
        print(f"start_{stack_name}: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"start_{stack_name}: interrupted", file=sys.stderr)
        return 130
