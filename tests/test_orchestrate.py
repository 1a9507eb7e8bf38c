"""The start scripts' orchestration against a fake CommandRunner: a small simulated Docker host
(containers with health, a Kafka topic list, Cassandra tables, HDFS folders, pid files) and a
fake clock, so health waits and time-outs take no real time."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vendlab import orchestrate
from vendlab.orchestrate import PASSWORD_VAR, STACKS, Result, StackSettings, main
from vendlab.store.cassandra import TABLES

ROOT = Path(__file__).resolve().parents[1]


class FakeDocker:
    """A Docker host with one compose project: infrastructure containers with health, job containers
    (profile jobs), a Kafka topic with its config, Cassandra tables and HDFS folders."""

    def __init__(
        self,
        stack="lambda",
        docker=True,
        daemon=True,
        up=True,
        healthy_after=0.0,
        never_healthy=(),
        exited=(),
        mem_gib=16.0,
        topic_config=None,
        failing=(),
    ):
        self.stack = STACKS[stack]
        self.services = self.stack.services
        self.exited = set(exited)
        self.failing = set(failing)  # jobs that exit at once: compose restarts them (State "restarting")
        self.docker, self.daemon, self.up = docker, daemon, up
        self.healthy_after = healthy_after
        self.never_healthy = set(never_healthy)
        self.mem_bytes = int(mem_gib * 1024**3)
        self.clock = 1000.0
        self.t0 = self.clock
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []
        self.topics: dict[str, dict] = {}
        if topic_config is not None:
            self.topics["vendlab-events"] = dict(topic_config)
        self.tables: set[str] = set()
        self.hdfs: set[str] = set()
        self.jobs: set[str] = set()
        self.markers: dict[str, set[str]] = {}  # job -> end markers recorded (vendlab.markers)
        self.sleeps = 0

    # CommandRunner interface
    dry = False

    def which(self, name):
        return "/usr/bin/docker" if self.docker and name == "docker" else None

    def sleep(self, s):
        self.sleeps += 1
        self.clock += s

    def now(self):
        return self.clock

    def run(self, args, input=None, timeout=None, stream=False):
        self.calls.append(list(args))
        self.inputs.append(input)
        if args[:2] == ["docker", "info"]:
            if not self.daemon:
                return Result(1, "", "Cannot connect to the Docker daemon")
            return Result(0, str(self.mem_bytes) if "MemTotal" in args[-1] else "28.2.2")
        if args[:3] == ["docker", "compose", "version"]:
            return Result(0, "Docker Compose version v2.29.1")
        assert args[:3] == ["docker", "compose", "-f"], args
        sub = args[4:]
        if sub[:2] == ["--profile", "jobs"]:
            sub = sub[2:]
        if sub[0] == "up":
            if "--no-deps" in sub:
                job = sub[-1]
                assert job in self.stack.jobs, job
                self.jobs.add(job)
            else:
                # the infrastructure by name, never a bare `up -d`: .env may activate the profile jobs
                assert sub == ["up", "-d", *self.stack.services], sub
                self.up = True
            return Result(0)
        if sub[0] == "stop":
            self.jobs.discard(sub[1])
            if sub[1] == "generator":  # its end marker reaches every running consumer
                for job in ("validation", "kappa", "lambda_speed"):
                    self.markers.setdefault(job, set()).add(f"end-1-{len(self.calls)}")
            return Result(0)
        if sub[0] == "logs":
            return Result(0, "".join(f"{j}  | the log was produced with --rate 2000 (now 20000)\n" for j in sub[3:]))
        if sub[0] == "down":
            self.up = False
            self.jobs.clear()
            return Result(0)
        if sub[0] == "ps":
            if not self.up:
                return Result(0, "")
            lines = []
            for s in self.services:
                healthy = self.clock - self.t0 >= self.healthy_after and s not in self.never_healthy
                if s in self.exited:
                    lines.append(json.dumps({"Service": s, "State": "exited", "Health": ""}))
                    continue
                lines.append(
                    json.dumps({"Service": s, "State": "running", "Health": "healthy" if healthy else "starting"})
                )
            lines += [
                json.dumps({"Service": j, "State": "restarting" if j in self.failing else "running", "Health": ""})
                for j in sorted(self.jobs)
            ]
            return Result(0, "\n".join(lines) + "\n")
        assert sub[0] == "exec", sub
        rest = sub[1:]
        assert rest[0] == "-T"
        rest = rest[1:]
        env = {}
        while rest[0] == "-e":
            k, _, v = rest[1].partition("=")
            env[k] = v
            rest = rest[2:]
        service, cmd = rest[0], rest[1:]
        return self.exec(service, cmd, input, env)

    def exec(self, service, cmd, input, env):
        if cmd[0].endswith("kafka-topics.sh") or cmd[0].endswith("kafka-configs.sh"):
            assert env.get("KAFKA_HEAP_OPTS"), "a Kafka CLI tool in the broker's container needs its own heap"
        if cmd[0].startswith("hdfs") or "hdfs dfs" in " ".join(cmd):
            assert env.get("HADOOP_HEAPSIZE_MAX"), "an HDFS client in the namenode's container needs its own heap"
        if cmd[0].endswith("kafka-topics.sh"):
            if "--list" in cmd:
                return Result(0, "".join(t + "\n" for t in sorted(self.topics)))
            if "--create" in cmd:
                conf = dict(c.split("=", 1) for c in cmd[cmd.index("--create") :] if "=" in c)
                self.topics[cmd[cmd.index("--topic") + 1]] = conf
                return Result(0, "Created topic")
        if cmd[0].endswith("kafka-configs.sh"):
            topic = cmd[cmd.index("--entity-name") + 1]
            if "--describe" in cmd:
                conf = self.topics[topic]
                return Result(
                    0,
                    f"Dynamic configs for topic {topic} are:\n"
                    + "".join(
                        f"  {k}={v} sensitive=false synonyms={{DYNAMIC_TOPIC_CONFIG:{k}={v}}}\n"
                        for k, v in conf.items()
                    ),
                )
            if "--alter" in cmd:
                for kv in cmd[cmd.index("--add-config") + 1].split(","):
                    k, v = kv.split("=", 1)
                    self.topics[topic][k] = v
                return Result(0, "Completed updating config")
        if cmd[0] == "cqlsh":
            if "-e" in cmd and "vendlab.markers" in cmd[-1]:
                job = re.search(r"job = '(\w+)'", cmd[-1]).group(1)
                return Result(
                    0, "\n marker_id\n-----------\n" + "".join(f" {m}\n" for m in sorted(self.markers.get(job, ())))
                )
            if "-e" in cmd and "vendlab.applied" in cmd[-1]:
                return Result(0, "\n batch_id\n----------\n        7\n\n(1 rows)\n")
            if "-e" in cmd:
                return Result(0, "\n table_name\n------------\n" + "".join(f" {t}\n" for t in sorted(self.tables)))
            self.tables |= set(re.findall(r"CREATE TABLE IF NOT EXISTS vendlab\.(\w+)", input))
            return Result(0, "")
        if cmd[:3] == ["hdfs", "dfsadmin", "-safemode"]:
            return Result(0, "Safe mode is OFF")
        if cmd[:3] == ["hdfs", "dfs", "-mkdir"]:
            self.hdfs |= {d for d in cmd[3:] if d.startswith("/")}
            return Result(0)
        if cmd[:3] == ["hdfs", "dfs", "-chmod"]:
            return Result(0)
        if cmd[:4] == ["hdfs", "dfs", "-ls", "-d"]:
            return Result(0 if all(d in self.hdfs for d in cmd[4:]) else 1)
        raise AssertionError(f"unexpected command in {service}: {cmd}")

    # what happened
    def mutations(self):
        out = []
        for c in self.calls:
            text = " ".join(c)
            if (
                "--create" in c
                or "--alter" in c
                or "-mkdir" in c
                or "-chmod" in c
                or ("cqlsh" in c and "-e" not in c)
                or "--no-deps" in c
                or " stop " in text
            ):
                out.append(text)
        return out


def run(stack, fake, tmp_path, *argv):
    """main() of the stack on a copy of its compose file in tmp_path (where .env is written)."""
    compose = tmp_path / "docker-compose.yml"
    if not compose.exists():
        shutil.copy(ROOT / stack / "docker-compose.yml", compose)
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
    fake = FakeDocker("lambda", up=False)
    code, out, err = run("lambda", fake, tmp_path)
    assert code == 0, err
    order = [
        step_index(fake, lambda t: t.startswith("docker info --format {{.ServerVersion}}")),
        step_index(fake, lambda t: t.startswith("docker info --format {{.MemTotal}}")),
        step_index(fake, lambda t: "docker-compose.yml up -d kafka " in t),
        step_index(fake, lambda t: " ps " in t),
        step_index(fake, lambda t: "--create --topic vendlab-events" in t),
        step_index(fake, lambda t: t.endswith("exec -T cassandra1 cqlsh")),
        step_index(fake, lambda t: "-safemode wait" in t),
        step_index(fake, lambda t: "-mkdir -p /vendlab/master" in t),
        step_index(fake, lambda t: t.endswith("--no-deps validation")),
        step_index(fake, lambda t: t.endswith("--no-deps generator")),
        step_index(fake, lambda t: t.endswith("--no-deps lambda-ingest")),
        step_index(fake, lambda t: t.endswith("--no-deps lambda-speed")),
        step_index(fake, lambda t: t.endswith("--no-deps lambda-batch")),
    ]
    assert order == sorted(order)
    assert set(fake.topics) == {"vendlab-events"} and set(TABLES) <= fake.tables
    assert {"/vendlab/master", "/vendlab/checkpoints"} <= fake.hdfs
    assert fake.jobs == set(STACKS["lambda"].jobs)
    conf = fake.topics["vendlab-events"]
    assert conf["retention.ms"] == "-1" and conf["message.timestamp.after.max.ms"] == "9223372036854775807"
    for url in ("127.0.0.1:3000", "127.0.0.1:9021", "127.0.0.1:8080", "127.0.0.1:9870", "127.0.0.1:8088"):
        assert url in out
    env = (tmp_path / ".env").read_text()
    password = re.search(rf"^{PASSWORD_VAR}=(\S+)$", env, re.M).group(1)
    assert password != "admin" and len(password) >= 16
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert "VENDLAB_RATE=2000" in env


def test_start_kappa_has_no_hadoop(tmp_path):
    fake = FakeDocker("kappa")
    code, out, _ = run("kappa", fake, tmp_path)
    assert code == 0
    text = "\n".join(" ".join(c) for c in fake.calls)
    assert "hdfs" not in text and "yarn" not in text and "lambda" not in text
    assert fake.jobs == {"validation", "generator", "kappa-job"}
    assert "9870" not in out and "8088" not in out and "127.0.0.1:3000" in out


def test_second_run_changes_nothing(tmp_path):
    fake = FakeDocker("lambda")
    assert run("lambda", fake, tmp_path)[0] == 0
    env = (tmp_path / ".env").read_text()
    first = len(fake.mutations())
    assert first == 1 + 1 + 2 + 5  # topic, tables, mkdir+chmod, five jobs
    code, out, _ = run("lambda", fake, tmp_path)
    assert code == 0
    assert len(fake.mutations()) == first  # only checks the second time
    assert (tmp_path / ".env").read_text() == env
    assert "already running" in out and "exists" in out


def test_existing_topic_with_retention_is_corrected(tmp_path):
    """Symptom 1, for a topic made before this fix (or by hand): the start script reads its config and sets
    what is missing. Only a running broker shows the deletion itself (issue 14's real-service tests)."""
    fake = FakeDocker("kappa", topic_config={"message.timestamp.after.max.ms": "9223372036854775807"})
    code, out, err = run("kappa", fake, tmp_path)
    assert code == 0, err
    conf = fake.topics["vendlab-events"]
    assert conf["retention.ms"] == "-1" and conf["retention.bytes"] == "-1"
    assert conf["message.timestamp.before.max.ms"] == "9223372036854775807"
    assert "corrected" in out
    alters = [c for c in fake.calls if "--alter" in c]
    assert len(alters) == 1
    run("kappa", fake, tmp_path)
    assert len([c for c in fake.calls if "--alter" in c]) == 1  # right the second time: only read


def test_docker_with_too_little_memory_stops_before_anything_starts(tmp_path):
    """Symptom 9: the limits of lambda add up to more than Docker Desktop's default VM; the start script
    compares them with `docker info`'s MemTotal and says what to set before it starts anything."""
    fake = FakeDocker("lambda", mem_gib=7.6, up=False)
    code, out, err = run("lambda", fake, tmp_path)
    assert code == 2
    assert "Docker has 7.6 GiB" in err and "Settings > Resources > Memory" in err
    assert "[wsl2]" in err and ".wslconfig" in err  # WSL 2's VM is sized there, not in Docker Desktop
    assert not any("up" in c for c in fake.calls)
    code, _, _ = run("lambda", fake, tmp_path, "--skip-memory-check")
    assert code == 0


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
    assert 60 <= fake.clock - fake.t0 <= 60 + StackSettings.poll_interval
    assert not any("--create" in c for c in fake.calls)  # nothing is set up on an unhealthy stack


def test_grafana_without_its_plugin_is_named_with_the_reason(tmp_path):
    """Symptom 12: grafana's healthcheck passes only once the Cassandra plugin is loaded; the start script
    says so when it waits in vain (offline first start)."""
    fake = FakeDocker("kappa", never_healthy={"grafana"})
    code, _, err = run("kappa", fake, tmp_path, "--timeout", "30")
    assert code == 1 and "grafana (starting)" in err
    assert "hadesarchitect-cassandra-datasource" in err and "internet" in err


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
    assert (tmp_path / ".env").exists()  # ready for `docker compose up -d` on its own


def test_daemon_down_exits_2_with_start_command(tmp_path):
    code, _, err = run("lambda", FakeDocker(daemon=False), tmp_path)
    assert code == 2 and "systemctl start docker" in err


def test_env_file_is_written_before_compose_up(tmp_path):
    """Symptom 10: `docker compose up` needs the .env (Grafana password); one command writes it, then brings
    the stack up, so the README's command works the first time."""
    seen = {}

    class Probe(FakeDocker):
        def run(self, args, input=None, timeout=None, stream=False):
            if "up" in args and "--no-deps" not in args:
                seen["env"] = (tmp_path / ".env").exists()
            return super().run(args, input, timeout, stream)

    fake = Probe("kappa", up=False)
    code, _, _ = run("kappa", fake, tmp_path)
    assert code == 0 and seen == {"env": True}


def test_status_stop_and_down(tmp_path):
    fake = FakeDocker("lambda")
    run("lambda", fake, tmp_path)
    code, out, _ = run("lambda", fake, tmp_path, "--status")
    assert code == 0 and re.search(r"lambda-speed\s+running", out) and re.search(r"cassandra1\s+running healthy", out)
    code, out, _ = run("lambda", fake, tmp_path, "--stop")
    assert code == 0 and not fake.jobs
    stops = [c[-1] for c in fake.calls if "stop" in c]
    assert stops[0] == "generator"  # the generator stops first, the jobs then drain
    assert "drained: every job has the end marker" in out
    first_other = next(i for i, c in enumerate(fake.calls) if "stop" in c and c[-1] != "generator")
    assert any("vendlab.markers" in c[-1] and "lambda_speed" in c[-1] for c in fake.calls[:first_other])
    assert stops[1:] == ["lambda-batch", "lambda-speed", "lambda-ingest", "validation"]
    code, out, _ = run("lambda", fake, tmp_path, "--status")
    assert re.search(r"lambda-speed\s+stopped", out)
    run("lambda", fake, tmp_path)
    code, out, _ = run("lambda", fake, tmp_path, "--down")
    assert code == 0 and not fake.up and not fake.jobs
    assert fake.calls[-1][-3:] == ["--profile", "jobs", "down"] and "volumes" in out


class NoRunner:
    """A runner that fails the test if anything is run: --dry-run must use its own."""

    dry = False

    def run(self, *a, **k):
        raise AssertionError(f"--dry-run ran {a}")

    def which(self, name):
        raise AssertionError("--dry-run looked for Docker")


@pytest.mark.parametrize("stack", ["lambda", "kappa"])
def test_dry_run_prints_the_full_plan_and_runs_nothing(stack, tmp_path):
    code, out, err = run(stack, NoRunner(), tmp_path, "--dry-run")
    assert code == 0, err
    assert not (tmp_path / ".env").exists()
    cmds = [ln.strip()[2:] for ln in out.splitlines() if ln.strip().startswith("$ ")]
    text = "\n".join(cmds)
    plan = [
        "docker info --format '{{.MemTotal}}'",
        "up -d",
        " ps ",
        "kafka-topics.sh",
        "--create --topic",
        "cqlsh < vendlab/store/schema.cql",
    ]
    if stack == "lambda":
        plan += ["-safemode wait", "-mkdir -p /vendlab/master"]
    plan += [f"--no-deps {j}" for j in STACKS[stack].jobs]
    pos = [text.index(p) for p in plan]
    assert pos == sorted(pos), plan
    for j in STACKS[stack].jobs:  # each job with its memory
        assert re.search(rf"{j}: limit \d+ MiB \(", out), j
    assert re.search(r"limits add up to \d+ MiB", out)


def test_dry_run_without_docker_from_the_command_line(tmp_path):
    """The real script, in a subprocess with an empty PATH (no docker anywhere): full plan, exit 0."""
    script = ROOT / "kappa" / "start_kappa.py"
    r = subprocess.run(
        [sys.executable, str(script), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/nonexistent"},
    )
    assert r.returncode == 0, r.stderr
    assert "--no-deps kappa-job" in r.stdout and "[6/6]" in r.stdout


def test_job_exec_builds_the_command_from_the_environment():
    settings = StackSettings.from_env({"VENDLAB_RATE": "5000", "VENDLAB_SEED": "7", "VENDLAB_BATCH_INTERVAL": "30"})
    gen = orchestrate.job_process("generator", settings)
    assert gen.command[gen.command.index("--rate") + 1] == "5000"
    assert gen.command[gen.command.index("--seed") + 1] == "7"
    batch = orchestrate.job_process("lambda-batch", settings)
    assert batch.command[batch.command.index("--batch-interval") + 1] == "30" and "yarn" in batch.command
    with pytest.raises(orchestrate.OrchestrateError):
        orchestrate.job_process("lambda-serving", settings)


def test_parse_ps_both_formats():
    a = '[{"Service": "kafka", "State": "running", "Health": "healthy"}]'
    b = '{"Service": "kafka", "State": "running", "Health": "healthy"}\n{"Service": "grafana", "State": "exited"}\n'
    assert orchestrate.parse_ps(a)["kafka"]["Health"] == "healthy"
    assert set(orchestrate.parse_ps(b)) == {"kafka", "grafana"}
    assert orchestrate.parse_ps("") == {}


@pytest.mark.parametrize("stack", ["lambda", "kappa"])
def test_start_scripts_are_thin_executable_wrappers(stack):
    script = ROOT / stack / f"start_{stack}.py"
    assert f'main("{stack}"' in script.read_text()
    assert script.read_text().startswith("#!/usr/bin/env python3\n")
    mode = subprocess.run(["git", "ls-files", "-s", str(script)], cwd=ROOT, capture_output=True, text=True).stdout
    assert mode.startswith("100755"), f"{script} must be executable in git: {mode}"
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for flag in ("--status", "--stop", "--down", "--dry-run"):
        assert flag in r.stdout


def test_plain_compose_up_and_down_include_the_jobs_after_the_first_start(tmp_path):
    """Issue 13: after the first start `docker compose up -d` / `down` work on their own. Compose leaves services of
    an inactive profile out of `down` (docker/compose pkg/compose/down.go walks the project's enabled services;
    a job container is left running, the network "still in use", and the job crash-loops by restart: on-failure).
    The start script activates the profile in .env (COMPOSE_PROFILES, read from the project's .env: docker/compose
    e2e TestDotEnvProfileUsage) once the set-up exists, and starts the infrastructure by name itself."""
    fake = FakeDocker("kappa", up=False)
    code, out, err = run("kappa", fake, tmp_path)
    assert code == 0, err
    env = orchestrate.read_env_file(tmp_path / ".env")
    assert env["COMPOSE_PROFILES"] == "jobs" and env[PASSWORD_VAR]
    ups = [c for c in fake.calls if "up" in c and "--no-deps" not in c]
    assert ups and all(c[c.index("-d") + 1 :] == list(STACKS["kappa"].services) for c in ups)
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    text = (tmp_path / ".env").read_text()
    assert run("kappa", fake, tmp_path)[0] == 0 and (tmp_path / ".env").read_text() == text  # kept, once


def test_new_flags_replace_the_run_settings_in_env_in_place(tmp_path):
    """A start with other flags rewrites VENDLAB_* in .env where they are (the job services read them), keeps the
    password and COMPOSE_PROFILES, and adds no second line for a setting."""
    fake = FakeDocker("kappa", up=False)
    assert run("kappa", fake, tmp_path)[0] == 0
    before = orchestrate.read_env_file(tmp_path / ".env")
    assert run("kappa", fake, tmp_path, "--stop")[0] == 0
    fake.topics.clear()  # a new log (docker compose down -v): another rate is a new stream
    assert run("kappa", fake, tmp_path, "--rate", "5000")[0] == 0
    text = (tmp_path / ".env").read_text()
    after = orchestrate.read_env_file(tmp_path / ".env")
    assert after["VENDLAB_RATE"] == "5000" and text.count("VENDLAB_RATE=") == 1
    assert after[PASSWORD_VAR] == before[PASSWORD_VAR] and after["COMPOSE_PROFILES"] == "jobs"


def test_another_rate_on_an_existing_stream_is_refused_before_any_job_starts(tmp_path):
    """The generator continues the topic's stream and refuses other stream settings (exit 2), which compose's
    restart: on-failure would repeat for ever: the start script refuses them first, says both ways out, and
    leaves .env with the stream's settings (so the next plain start continues it)."""
    fake = FakeDocker("kappa", up=False)
    assert run("kappa", fake, tmp_path)[0] == 0
    assert run("kappa", fake, tmp_path, "--stop")[0] == 0
    started = len([c for c in fake.calls if "--no-deps" in c])
    code, out, err = run("kappa", fake, tmp_path, "--rate", "20000")
    assert code == 2
    assert "made with --rate 2000" in err and "would refuse --rate 20000" in err
    assert "./kappa/start_kappa.py --rate 2000" in err and "down -v" in err
    assert len([c for c in fake.calls if "--no-deps" in c]) == started, "a job was started"
    assert orchestrate.read_env_file(tmp_path / ".env")["VENDLAB_RATE"] == "2000"
    assert run("kappa", fake, tmp_path)[0] == 0  # the stream continues with its own settings


def test_a_new_topic_takes_any_rate(tmp_path):
    fake = FakeDocker("kappa", up=False)
    assert run("kappa", fake, tmp_path)[0] == 0
    assert run("kappa", fake, tmp_path, "--down")[0] == 0
    fake.topics.clear()  # docker compose down -v: a new log
    assert run("kappa", fake, tmp_path, "--rate", "20000")[0] == 0
    assert orchestrate.read_env_file(tmp_path / ".env")["VENDLAB_RATE"] == "20000"


def test_a_job_that_does_not_stay_up_fails_the_start_with_its_last_lines(tmp_path):
    fake = FakeDocker("kappa", up=False, failing={"generator"})
    code, out, err = run("kappa", fake, tmp_path)
    assert code == 1
    assert "did not stay up: generator (restarting)" in err and "--rate 2000 (now 20000)" in err
    assert "127.0.0.1:3000" not in out, "success printed for a failing job"
