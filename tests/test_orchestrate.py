"""The start scripts' orchestration against a fake CommandRunner: a small simulated Docker host
(containers with health, a Kafka topic list, Cassandra tables, HDFS folders, pid files) and a
fake clock, so health waits and time-outs take no real time."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vendlab import orchestrate
from vendlab.orchestrate import PASSWORD_VAR, STACKS, Result, Settings, main
from vendlab.store.cassandra import TABLES

ROOT = Path(__file__).resolve().parents[1]


class FakeDocker:
    def __init__(self, stack="lambda", docker=True, daemon=True, up=True, healthy_after=0.0, never_healthy=(),
                 exited=()):
        self.services = STACKS[stack].services
        self.exited = set(exited)
        self.docker, self.daemon, self.up = docker, daemon, up
        self.healthy_after = healthy_after
        self.never_healthy = set(never_healthy)
        self.clock = 1000.0
        self.t0 = self.clock
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []
        self.topics: set[str] = set()
        self.tables: set[str] = set()
        self.hdfs: set[str] = set()
        self.pids: set[str] = set()
        self.sleeps = 0

    # CommandRunner interface
    def which(self, name):
        return "/usr/bin/docker" if self.docker and name == "docker" else None

    def sleep(self, s):
        self.sleeps += 1
        self.clock += s

    def now(self):
        return self.clock

    def run(self, args, input=None, timeout=None):
        self.calls.append(list(args))
        self.inputs.append(input)
        if args[:2] == ["docker", "info"]:
            return Result(0, "28.2.2") if self.daemon else Result(1, "", "Cannot connect to the Docker daemon")
        if args[:3] == ["docker", "compose", "version"]:
            return Result(0, "Docker Compose version v2.29.1")
        assert args[:3] == ["docker", "compose", "-f"], args
        sub = args[4:]
        if sub[0] == "ps":
            if not self.up:
                return Result(0, "")
            lines = []
            for s in self.services:
                healthy = self.clock - self.t0 >= self.healthy_after and s not in self.never_healthy
                if s in self.exited:
                    lines.append(json.dumps({"Service": s, "State": "exited", "Health": ""}))
                    continue
                lines.append(json.dumps({"Service": s, "State": "running",
                                         "Health": "healthy" if healthy else "starting"}))
            return Result(0, "\n".join(lines) + "\n")
        assert sub[0] == "exec", sub
        rest = sub[1:]
        detach = rest[0] == "-d"
        rest = rest[1:] if detach else rest
        assert rest[0] == "-T"
        service, cmd = rest[1], rest[2:]
        return self.exec(service, cmd, input, detach)

    def exec(self, service, cmd, input, detach):
        if cmd[0].endswith("kafka-topics.sh"):
            if "--list" in cmd:
                return Result(0, "".join(t + "\n" for t in sorted(self.topics)))
            if "--create" in cmd:
                self.topics.add(cmd[cmd.index("--topic") + 1])
                return Result(0, "Created topic")
        if cmd[0] == "cqlsh":
            if "-e" in cmd:
                return Result(0, "\n table_name\n------------\n" + "".join(f" {t}\n" for t in sorted(self.tables)))
            self.tables |= set(re.findall(r"CREATE TABLE IF NOT EXISTS vendlab\.(\w+)", input))
            return Result(0, "")
        if cmd[:3] == ["hdfs", "dfs", "-mkdir"]:
            self.hdfs |= {d for d in cmd[3:] if d.startswith("/")}
            return Result(0)
        if cmd[:3] == ["hdfs", "dfs", "-chmod"]:
            return Result(0)
        if cmd[:2] == ["sh", "-c"]:
            script = cmd[2]
            if script.startswith("hdfs dfs -test"):
                dirs = re.findall(r"-test -d (\S+)", script)
                return Result(0 if all(d in self.hdfs for d in dirs) else 1)
            pid = re.search(r"/tmp/vendlab/([\w-]+)\.pid", script).group(1)
            if script.startswith("test -f"):
                return Result(0 if pid in self.pids else 1)
            if script.startswith("mkdir -p"):
                assert detach and "exec " in script
                self.pids.add(pid)
                return Result(0)
            if script.startswith("kill -INT"):
                self.pids.discard(pid)
                return Result(0)
        raise AssertionError(f"unexpected command in {service}: {cmd}")

    # what happened
    def mutations(self):
        out = []
        for c in self.calls:
            text = " ".join(c)
            if "--create" in c or "-mkdir" in c or "-chmod" in c or ("cqlsh" in c and "-e" not in c) \
                    or text.count("mkdir -p /tmp/vendlab") or "kill -INT" in text:
                out.append(text)
        return out


def run(stack, fake, tmp_path, *argv):
    out = io.StringIO()
    err = io.StringIO()
    old = sys.stderr
    sys.stderr = err
    try:
        code = main(stack, list(argv), runner=fake, directory=tmp_path, out=out)
    finally:
        sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def step_index(fake, pred) -> int:
    for i, c in enumerate(fake.calls):
        if pred(" ".join(c)):
            return i
    raise AssertionError("step not found")


def test_start_lambda_steps_in_order(tmp_path):
    fake = FakeDocker("lambda")
    code, out, err = run("lambda", fake, tmp_path)
    assert code == 0, err
    order = [
        step_index(fake, lambda t: t.startswith("docker info")),
        step_index(fake, lambda t: " ps " in t),
        step_index(fake, lambda t: "--create --topic vendlab-events" in t),
        step_index(fake, lambda t: t.endswith("exec -T cassandra1 cqlsh")),
        step_index(fake, lambda t: "-mkdir -p /vendlab/master" in t),
        step_index(fake, lambda t: "validation.pid" in t and "mkdir -p" in t),
        step_index(fake, lambda t: "generator.pid" in t and "mkdir -p" in t),
        step_index(fake, lambda t: "lambda-ingest.pid" in t and "mkdir -p" in t),
        step_index(fake, lambda t: "lambda-speed.pid" in t and "mkdir -p" in t),
        step_index(fake, lambda t: "lambda-batch.pid" in t and "mkdir -p" in t),
    ]
    assert order == sorted(order)
    assert fake.topics == {"vendlab-events"} and set(TABLES) <= fake.tables
    assert {"/vendlab/master", "/vendlab/checkpoints"} <= fake.hdfs
    create = next(c for c in fake.calls if "--create" in c)
    assert "message.timestamp.after.max.ms=9223372036854775807" in create
    batch = next(" ".join(c) for c in fake.calls if "lambda-batch.pid" in " ".join(c) and "mkdir" in " ".join(c))
    assert "--master yarn" in batch and "spark.executorEnv.JAVA_HOME=/opt/java17" in batch
    for url in ("127.0.0.1:3000", "127.0.0.1:9021", "127.0.0.1:8080", "127.0.0.1:9870", "127.0.0.1:8088"):
        assert url in out
    env = (tmp_path / ".env").read_text()
    password = re.search(rf"^{PASSWORD_VAR}=(\S+)$", env, re.M).group(1)
    assert password != "admin" and len(password) >= 16
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0


def test_start_kappa_has_no_hadoop(tmp_path):
    fake = FakeDocker("kappa")
    code, out, _ = run("kappa", fake, tmp_path)
    assert code == 0
    text = "\n".join(" ".join(c) for c in fake.calls)
    assert "hdfs" not in text and "yarn" not in text and "lambda" not in text
    assert "kappa.pid" in text and "--total-executor-cores 2" in text
    assert "9870" not in out and "8088" not in out and "127.0.0.1:3000" in out


def test_second_run_changes_nothing(tmp_path):
    fake = FakeDocker("lambda")
    assert run("lambda", fake, tmp_path)[0] == 0
    env = (tmp_path / ".env").read_text()
    first = len(fake.mutations())
    assert first == 1 + 1 + 2 + 5  # topic, tables, mkdir+chmod, five processes
    code, out, _ = run("lambda", fake, tmp_path)
    assert code == 0
    assert len(fake.mutations()) == first  # only checks the second time
    assert (tmp_path / ".env").read_text() == env
    assert "already running" in out and "exists" in out


def test_health_wait_polls_until_healthy(tmp_path):
    fake = FakeDocker("kappa", healthy_after=30)
    code, out, _ = run("kappa", fake, tmp_path)
    assert code == 0
    assert fake.sleeps >= 6 and "waiting for:" in out


def test_health_wait_times_out_with_a_clear_error(tmp_path):
    fake = FakeDocker("lambda", never_healthy={"cassandra1"})
    code, out, err = run("lambda", fake, tmp_path, "--timeout", "60")
    assert code == 1
    assert "time-out after 60 s" in err and "cassandra1 (starting)" in err
    assert "docker compose logs cassandra1" in err
    assert 60 <= fake.clock - fake.t0 <= 60 + Settings.poll_interval
    assert not any("--create" in c for c in fake.calls)  # nothing is set up on an unhealthy stack


def test_stopped_service_fails_fast_with_its_logs_command(tmp_path):
    fake = FakeDocker("lambda", exited={"namenode"})
    code, _, err = run("lambda", fake, tmp_path)
    assert code == 1 and "namenode (exited)" in err and "docker compose logs namenode" in err
    assert fake.sleeps == 0  # no point waiting for a stopped container


def test_no_docker_exits_2_with_install_command(tmp_path):
    fake = FakeDocker(docker=False)
    code, _, err = run("lambda", fake, tmp_path)
    assert code == 2
    assert "Docker is not installed" in err and "apt-get install -y docker.io" in err
    assert (tmp_path / ".env").exists()  # ready for the first `docker compose up`


def test_daemon_down_exits_2_with_start_command(tmp_path):
    code, _, err = run("lambda", FakeDocker(daemon=False), tmp_path)
    assert code == 2 and "systemctl start docker" in err


def test_stack_not_up_exits_2_with_compose_command(tmp_path):
    code, _, err = run("kappa", FakeDocker("kappa", up=False), tmp_path)
    assert code == 2 and "cd kappa && docker compose up -d" in err


def test_status_and_stop(tmp_path):
    fake = FakeDocker("lambda")
    run("lambda", fake, tmp_path)
    code, out, _ = run("lambda", fake, tmp_path, "--status")
    assert code == 0 and re.search(r"lambda-speed\s+running", out) and re.search(r"cassandra1\s+running healthy", out)
    code, out, _ = run("lambda", fake, tmp_path, "--stop")
    assert code == 0 and not fake.pids
    kills = [" ".join(c) for c in fake.calls if "kill -INT" in " ".join(c)]
    assert "generator.pid" in kills[0]  # the generator stops first, the jobs then drain
    code, out, _ = run("lambda", fake, tmp_path, "--status")
    assert re.search(r"lambda-speed\s+stopped", out)


def test_parse_ps_both_formats():
    a = '[{"Service": "kafka", "State": "running", "Health": "healthy"}]'
    b = '{"Service": "kafka", "State": "running", "Health": "healthy"}\n{"Service": "grafana", "State": "exited"}\n'
    assert orchestrate.parse_ps(a)["kafka"]["Health"] == "healthy"
    assert set(orchestrate.parse_ps(b)) == {"kafka", "grafana"}
    assert orchestrate.parse_ps("") == {}


@pytest.mark.parametrize("stack", ["lambda", "kappa"])
def test_start_scripts_are_thin_wrappers(stack):
    script = ROOT / stack / f"start_{stack}.py"
    assert f'main("{stack}"' in script.read_text()
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--status" in r.stdout and "--stop" in r.stdout
