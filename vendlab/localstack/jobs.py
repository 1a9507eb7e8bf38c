"""A local command runner for a local stack: the set-up steps and the long-running processes of a start
script (topic, Cassandra schema, HDFS folders; validation consumer, generator, Spark jobs), run as
local processes against the services of ``vendlab stack up`` instead of inside containers.

Every process is tracked by a pid file in DIR/jobs/<name>.pid, logs to DIR/logs/job-<name>.log, and is
stopped by its pid (SIGINT first: the generator writes its end marker, the Spark drivers stop their
queries). The commands are the cluster's: ``vendlab produce|validate`` and ``spark-submit ... submit.py
job NAME`` with the memory flags of the compose stacks' submits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from vendlab.localstack import supervise
from vendlab.localstack.stack import REPO, LocalStack, StackError, pid_alive

SUBMIT = REPO / "docker" / "spark" / "submit.py"
# the apache/kafka image's scripts -> LocalStack.tool names (same classes, same jars)
CONTAINER_TOOLS = {"/opt/kafka/bin/kafka-topics.sh": "kafka-topics", "/opt/kafka/bin/kafka-configs.sh": "kafka-configs"}
# the addresses in a start script's container commands: the jobs' variables of the compose file that hold them
ADDRESS_VARS = ("VENDLAB_KAFKA",)
LAUNCH_WAIT_S = 30.0  # for a job's supervisor to start it (a Python start-up, under load)
KILL_WAIT_S = 5.0  # for a job to end after SIGKILL (the supervisor reaps it and writes its status)


# ``CONSISTENCY LEVEL; query`` as cqlsh -e takes it
_CONSISTENCY = re.compile(r"\s*CONSISTENCY\s+(\w+)\s*;\s*(.*)", re.IGNORECASE | re.DOTALL)


class LocalRunner:
    def __init__(self, stack: LocalStack, extra_env: dict[str, str] | None = None, tag: str = ""):
        self.stack = stack
        self.extra_env = dict(extra_env or {})
        self.tag = tag  # keeps the pid files of several runs on one stack apart
        self._cql = None  # a driver session, made by the first cql()
        (stack.dir / "jobs").mkdir(parents=True, exist_ok=True)

    # -- environment ----------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.stack.env(), **self.extra_env}
        # pip's pyspark has no python/lib/pyspark.zip for YARN containers: they import pyspark from the
        # venv (PYSPARK_PYTHON) and vendlab from this checkout, put on their PYTHONPATH here
        env.setdefault("PYSPARK_ARCHIVES_PATH", f"local:{REPO}")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO)]
        )
        return env

    def run(self, argv: list[str], input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=self.env())

    # -- set-up steps ---------------------------------------------------------------------------------
    def ensure_topic(self) -> bool:
        from vendlab.kafka_log import DEFAULT_PARTITIONS, topic_config, topic_create_args

        env = self.env()
        topic = env.get("VENDLAB_TOPIC", "vendlab-events")
        kt = self.stack.tool("kafka-topics") + ["--bootstrap-server", env["VENDLAB_KAFKA"]]
        listed = self.run(kt + ["--list"])
        _must("listing Kafka topics", listed)
        if topic in listed.stdout.split():
            return False
        nodes = self.stack.nodes  # one copy per broker, as the start scripts create it
        args = topic_create_args(topic, DEFAULT_PARTITIONS, nodes, topic_config(nodes))
        _must(f"creating topic {topic}", self.run(kt + args))
        return True

    def ensure_schema(self) -> None:
        from vendlab.store.cassandra import CassandraStore

        env = self.env()
        store = CassandraStore(
            tuple(env["VENDLAB_CASSANDRA"].split(",")),
            env.get("VENDLAB_KEYSPACE", "vendlab"),
            create_schema=True,
            replication=self.stack.nodes,
        )
        store.close()

    def ensure_hdfs(self, dirs=("/vendlab/master", "/vendlab/checkpoints", "/user/hadoop")) -> None:
        hdfs = self.stack.tool("hdfs")
        _must("creating HDFS folders", self.run(hdfs + ["-mkdir", "-p", *dirs]))
        _must(
            "opening HDFS folders",
            self.run(hdfs + ["-chmod", "-R", "777", *sorted({"/" + d.split("/")[1] for d in dirs})]),
        )

    # -- a start script's commands inside a compose service, run here ----------------------------------
    def exec(self, service: str, argv: list[str], input: str | None = None, timeout: float = 300):
        """The command ``docker compose exec SERVICE argv`` of a start script (vendlab.orchestrate), run on this
        stack: the image's tool by the same tool at the same version (``LocalStack.tool``), compose addresses
        by the local ones, ``cqlsh`` by the official Python driver. An orchestrate.Result."""
        from vendlab.orchestrate import Result

        if argv[:1] == ["cqlsh"]:
            return self.cql(argv, input)
        if argv[0] in CONTAINER_TOOLS:
            local = self.stack.tool(CONTAINER_TOOLS[argv[0]]) + argv[1:]
        elif argv[:1] == ["hdfs"] and len(argv) > 1 and argv[1] in ("dfs", "dfsadmin"):
            local = self.stack.tool("hdfs" if argv[1] == "dfs" else "dfsadmin") + argv[2:]
        else:
            raise StackError(
                f"no local equivalent of {service}'s command {argv[0]} (known: cqlsh, hdfs dfs, "
                f"hdfs dfsadmin, {', '.join(CONTAINER_TOOLS)})"
            )
        local = [self.relocate(a) for a in local]
        try:
            r = self.run(local, input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Result(124, "", f"timed out after {timeout} s")
        return Result(r.returncode, r.stdout, r.stderr)

    def relocate(self, arg: str) -> str:
        """Compose addresses (the jobs' VENDLAB_* values in the compose file) -> this stack's."""
        from vendlab.localstack import composefile as cf

        compose_env = cf.load(self.stack.stack, self.stack.root).environment("spark-master")
        for var in ADDRESS_VARS:
            local, compose_value = self.env().get(var), compose_env.get(var)
            if local and compose_value:
                arg = re.sub(rf"(?<![\w.-]){re.escape(compose_value)}(?![\w.-])", local, arg)
        return arg

    def cql(self, argv: list[str], input: str | None = None):
        """cqlsh -e QUERY (rows printed one a line, values separated by ' | ') or cqlsh < FILE."""
        from vendlab.orchestrate import Result
        from vendlab.store.cassandra import _split_host, connect

        consistency = None
        if "-e" in argv:
            query = argv[argv.index("-e") + 1]
            # cqlsh's own CONSISTENCY command before the query (the start scripts read at QUORUM on three
            # nodes): a shell command, not CQL, so it sets the level of the statement here
            m = _CONSISTENCY.match(query)
            if m:
                consistency, query = m.group(1).upper(), m.group(2)
            statements = [query]
        else:
            lines = [ln.split("--", 1)[0] for ln in (input or "").splitlines()]
            statements = [st.strip() for st in "\n".join(lines).split(";") if st.strip()]
        try:
            from cassandra import ConsistencyLevel
            from cassandra.query import SimpleStatement

            if consistency is not None and consistency not in ConsistencyLevel.name_to_value:
                return Result(1, "", f"Improper CONSISTENCY command: {consistency} is not a consistency level")
            if self._cql is None:
                names, port = _split_host(self.env()["VENDLAB_CASSANDRA"].split(","))
                self._cql = connect(names, port)
            out = []
            for st in statements:
                stmt = (
                    SimpleStatement(st, consistency_level=ConsistencyLevel.name_to_value[consistency])
                    if consistency
                    else st
                )
                out += [" | ".join(str(v) for v in row) for row in self._cql.execute(stmt)]
        except Exception as e:  # what cqlsh would print: the server's or the driver's error
            return Result(1, "", f"{type(e).__name__}: {e}")
        return Result(0, "".join(ln + "\n" for ln in out))

    def close(self) -> None:
        if self._cql is not None:
            self._cql.cluster.shutdown()
            self._cql = None

    # -- processes ------------------------------------------------------------------------------------
    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "vendlab.cli", *args]

    def localize(self, argv: list[str]) -> list[str]:
        """A start script's container command (vendlab.orchestrate) with this machine's paths and the
        local stack's addresses: the same flags, memory and confs as on compose."""
        from vendlab import orchestrate
        from vendlab.localstack.stack import java_home, spark_home

        env = self.env()
        conf = env.get("HADOOP_CONF_DIR", "")
        swap = {
            "/opt/spark/bin/spark-submit": self.stack.tool("spark-submit")[0],
            orchestrate.SUBMIT: str(SUBMIT),
            orchestrate.PYTHON: sys.executable,
            "spark://spark-master:7077": env["VENDLAB_SPARK_MASTER"],
        }
        out = []
        for a in argv:
            a = swap.get(a, a)
            a = a.replace("/opt/hadoop-conf", conf).replace("/opt/java17", java_home(self.stack.java_path()))
            out.append(a)
        if "yarn" in out:
            # the nodemanager runs here: containers use pyspark's jars in place (the image bakes Spark in)
            i = out.index(str(SUBMIT))
            out[i:i] = ["--conf", f"spark.yarn.jars=local:{spark_home() / 'jars'}/*"]
        return out

    def submit(self, name: str, cores: int, *args: str) -> list[str]:
        """spark-submit to the local standalone master: the compose start script's command."""
        from vendlab import orchestrate

        return self.localize(orchestrate.standalone_submit(name, cores)) + list(args)

    def yarn_submit(self, name: str, *args: str) -> list[str]:
        """spark-submit to the local YARN (client mode): the compose start script's batch command."""
        from vendlab import orchestrate

        return self.localize(orchestrate.yarn_submit(name)) + list(args)

    def _pid_file(self, name: str) -> Path:
        return self.stack.dir / "jobs" / f"{self.tag}{name}.pid"

    def log(self, name: str) -> Path:
        return self.stack.dir / "logs" / f"job-{self.tag}{name}.log"

    def pid(self, name: str) -> int | None:
        """The job's own pid (the supervisor rewrites it at each restart): the process a test kills."""
        f = self._pid_file(name)
        try:
            return int(f.read_text())
        except (OSError, ValueError):
            return None

    def _status_file(self, name: str) -> Path:
        return supervise.status_path(self._pid_file(name))

    def status(self, name: str) -> dict | None:
        """The supervisor's record of a job: restart policy, restarts, last exit code, state, log (None:
        never launched here)."""
        return supervise.read_status(self._status_file(name))

    def _supervisor(self, name: str) -> int | None:
        st = self.status(name)
        return st.get("supervisor_pid") if st else None

    def restart_policy(self, service: str) -> str:
        """The compose service's ``restart`` value (``no`` for a name that is not a service there)."""
        from vendlab.localstack import composefile as cf

        services = cf.load(self.stack.stack, self.stack.root).services
        value = (services.get(service) or {}).get("restart")
        return "no" if value in (None, False) else str(value)

    @staticmethod
    def _reap(pid: int) -> int | None:
        """The exit status of a finished child of this process (None: not ours, or still running)."""
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        return os.waitstatus_to_exitcode(status) if done else None

    def observe(self, name: str) -> dict | None:
        """The job's state now (supervise.observe: ``orphaned`` when its supervisor was killed and the job
        still runs, ``killed`` when both are gone), None: never launched here."""
        st = self.status(name)
        if st is None:
            return None
        if st.get("supervisor_pid"):
            self._reap(st["supervisor_pid"])
        return supervise.observe(st)

    def running(self, name: str) -> bool:
        """The job runs, or its supervisor waits to restart it (compose's "restarting" state); a job whose
        supervisor was killed and that still runs (orphaned) runs too: nothing starts it twice."""
        seen = self.observe(name)
        if seen is not None and self._supervisor(name) is not None:
            return seen["running"]
        pid = self.pid(name)  # a job launched without a supervisor (before there was one)
        if pid is None:
            return False
        self._reap(pid)
        return pid_alive(pid, "vendlab")

    def launch(self, name: str, argv: list[str], service: str | None = None, restart: str | None = None) -> bool:
        """Start ``argv`` unless a process of that name runs (nothing starts twice), under a supervisor
        (vendlab.localstack.supervise) applying the restart policy ``restart``, by default the compose
        service ``service``'s (default: ``name``; a name that is no compose service gets ``no``)."""
        if self.running(name):
            return False
        policy = restart if restart is not None else self.restart_policy(service or name)
        try:
            supervise.parse_policy(policy)
        except supervise.PolicyError as e:
            raise StackError(f"the compose service {service or name} of the {self.stack.stack} stack: {e}") from e
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        pid_file, status_file = self._pid_file(name), self._status_file(name)
        pid_file.unlink(missing_ok=True)
        status_file.unlink(missing_ok=True)
        sup_argv = [
            sys.executable,
            "-m",
            supervise.MARKER,
            "--name",
            f"{self.tag}{name}",
            "--pid-file",
            str(pid_file),
            "--restart",
            policy,
            "--log",
            str(self.log(name)),
            *(["--extra-env", json.dumps(self.extra_env)] if self.extra_env else []),
            "--",
            *argv,
        ]
        with open(self.log(name), "ab") as log:
            p = subprocess.Popen(
                sup_argv,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the command that launched it
                cwd=self.stack.dir,
            )
        # the job's pid is known once the supervisor has started it (callers print it at once)
        deadline = time.monotonic() + LAUNCH_WAIT_S
        while time.monotonic() < deadline:
            st = self.status(name)
            if st and (st.get("pid") or st.get("state") != "starting"):
                break
            if p.poll() is not None:
                if not self.status(name):
                    raise StackError(f"the supervisor of {name} exited {p.returncode}: see {self.log(name)}")
                break
            time.sleep(0.02)
        else:
            raise StackError(f"the supervisor of {name} did not start it within {LAUNCH_WAIT_S:g} s: {self.log(name)}")
        return True

    def relaunch(self, name: str) -> bool:
        """Start a stopped job again (``vendlab stack start``) under a new supervisor, with what its status
        file records: the command, the restart policy and the variables its launcher added; False: it
        runs (or is orphaned: its supervisor was killed and it runs on)."""
        st = self.status(name)
        if not st or not st.get("argv"):
            raise StackError(f"{self.tag}{name}: no recorded command in {self._status_file(name)}")
        again = LocalRunner(self.stack, {**self.extra_env, **st.get("extra_env", {})}, self.tag)
        return again.launch(name, st["argv"], restart=st.get("restart", "no"))

    def signal(self, name: str, sig: int = signal.SIGINT, wait: float = 60.0) -> bool:
        """Stop a job on purpose (never restarted): ``sig`` to its supervisor, which forwards it to the job
        and ends with it; SIGKILL to the job after ``wait`` seconds."""
        sup = self._supervisor(name)
        if sup is None:
            return self._signal_unsupervised(name, sig, wait)
        if not self.running(name):
            self._pid_file(name).unlink(missing_ok=True)  # it ended by itself: the file names no process now
            return False
        if not supervise.alive(sup):  # orphaned: the supervisor was killed, the job runs on; stop it by its pid
            stopped = self._signal_unsupervised(name, sig, wait)
            supervise.update_status(
                self._status_file(name), state="stopped", pid=None, last_exit_at=supervise.now_iso()
            )
            return stopped
        try:
            if sig in supervise.FORWARDED:
                os.kill(sup, sig)
            else:  # SIGKILL (or any other): the supervisor first, so that nothing restarts the job
                os.kill(sup, signal.SIGKILL)
                self._kill_job(name, sig)
        except ProcessLookupError:
            pass
        if not self._ended(name, wait):
            self._kill_job(name, signal.SIGKILL)  # the supervisor, stopping, ends with it
            if not self._ended(name, KILL_WAIT_S):
                os.kill(sup, signal.SIGKILL)
                self._ended(name, KILL_WAIT_S)
        self._pid_file(name).unlink(missing_ok=True)
        return True

    def _ended(self, name: str, timeout: float, poll: float = 0.1) -> bool:
        """Wait up to ``timeout`` seconds for the job (and its supervisor) to end; whether it did."""
        end = time.monotonic() + timeout
        while self.running(name):
            if time.monotonic() >= end:
                return False
            time.sleep(poll)
        return True

    def _kill_job(self, name: str, sig: int) -> None:
        pid = self.pid(name)
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _signal_unsupervised(self, name: str, sig: int, wait: float) -> bool:
        pid = self.pid(name)
        if pid is None or not self.running(name):
            self._pid_file(name).unlink(missing_ok=True)  # it ended by itself: the file names no process now
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            self._pid_file(name).unlink(missing_ok=True)
            return False
        if not self._ended(name, wait):
            self._kill_job(name, signal.SIGKILL)
            self._ended(name, KILL_WAIT_S)
        self._pid_file(name).unlink(missing_ok=True)
        return True

    def wait(self, name: str, timeout: float) -> int | None:
        """Wait for a job to end by itself, restarts included (an on-failure job that fails is restarted:
        it has ended once it exits 0 or its supervisor gives up); its last exit code (negative: killed by
        that signal), None: still running at the time-out."""
        sup = self._supervisor(name)
        if sup is None:
            return self._wait_unsupervised(name, timeout)
        end = time.monotonic() + timeout
        while True:
            code = self._reap(sup)
            if code is not None or not self.running(name):
                break
            if time.monotonic() >= end:
                return None
            time.sleep(0.5)
        self._pid_file(name).unlink(missing_ok=True)
        st = self.status(name) or {}
        if st.get("last_exit_code") is not None:
            return st["last_exit_code"]
        return code if code is not None else 0

    def _wait_unsupervised(self, name: str, timeout: float) -> int | None:
        pid = self.pid(name)
        end = time.monotonic() + timeout
        while pid is not None and time.monotonic() < end:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    self._pid_file(name).unlink(missing_ok=True)
                    return os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                if not pid_alive(pid, "vendlab"):
                    return 0
            time.sleep(0.5)
        return None

    def names(self) -> list[str]:
        """Every job launched here (a pid file or a status file in DIR/jobs), without the tag."""
        jobs = self.stack.dir / "jobs"
        names = {f.stem for f in jobs.glob(f"{self.tag}*.pid")}
        # a job waiting for its restart, whatever its pid file says
        names |= {f.name[: -len(supervise.STATUS_SUFFIX)] for f in jobs.glob(f"{self.tag}*{supervise.STATUS_SUFFIX}")}
        return sorted(stem[len(self.tag) :] for stem in names)

    def stop_all(self, wait: float = 30.0) -> list[str]:
        """Stop every job on purpose (SIGINT; SIGKILL after ``wait`` s); the names of those that ran."""
        return [name for name in self.names() if self.signal(name, signal.SIGINT, wait=wait)]


def _must(what: str, r: subprocess.CompletedProcess) -> None:
    if r.returncode != 0:
        tail = "\n  ".join((r.stderr or r.stdout).strip().splitlines()[-6:])
        raise StackError(f"{what} failed (exit {r.returncode}):\n  {tail}")
