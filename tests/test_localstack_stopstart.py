"""Stopping and starting one service or job of a local stack on purpose (``vendlab stack stop|start``), what
``vendlab stack status`` says of them, ``vendlab stack down``'s order (jobs first), and the truth about a job
whose supervisor was killed: small fake services and jobs (python -c), no Java, no real service."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest
import yaml
from test_localstack_restart import SLEEPER, gone, job, wait_for

from vendlab.cli import main
from vendlab.localstack import supervise
from vendlab.localstack.jobs import LocalRunner
from vendlab.localstack.stack import LocalStack

SERVICES = {"flaky": {"image": "x:1", "restart": "on-failure"}, "plain": {"image": "x:1"}}


@pytest.fixture
def runner(tmp_path):
    root = tmp_path / "repo"
    (root / "kappa").mkdir(parents=True)
    (root / "kappa" / "docker-compose.yml").write_text(yaml.safe_dump({"services": SERVICES}))
    d = tmp_path / "stack"
    d.mkdir()
    (d / "stack.json").write_text(json.dumps({"stack": "kappa", "services": {}, "ports": {}, "client_env": {}}))
    r = LocalRunner(LocalStack(d, root=root))
    yield r
    r.stop_all()


# -- the supervisor killed with kill -9 ------------------------------------------------------------------
def test_a_killed_supervisor_leaves_an_orphaned_job_that_status_names_and_nothing_starts_twice(runner, capsys):
    """Before: status said `killed` (pid -) while the job ran on, a launch started a second copy and a
    stop left the first one running."""
    assert runner.launch("flaky", job(SLEEPER))
    st = runner.status("flaky")
    first = st["pid"]
    assert st["pid_start"] == supervise.proc_start(first)
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    wait_for(lambda: not supervise.alive(st["supervisor_pid"]), 10, "the supervisor's end")
    assert not gone(first), "the job died with its supervisor (this test needs it to run on)"

    seen = runner.observe("flaky")
    assert (seen["running"], seen["state"], seen["pid"], seen["supervised"]) == (True, "orphaned", first, False)
    assert runner.status("flaky")["state"] == "running", "the stale record this test is about"
    assert runner.running("flaky")
    assert not runner.launch("flaky", job(SLEEPER)), "a second copy next to the orphaned job"

    assert main(["stack", "status", "--dir", str(runner.stack.dir), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)["jobs"]["flaky"]
    assert (j["running"], j["state"], j["pid"], j["supervisor_pid"], j["supervised"]) == (
        True,
        "orphaned",
        first,
        None,
        False,
    )
    main(["stack", "status", "--dir", str(runner.stack.dir)])
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("flaky"))
    assert "orphaned" in line and str(first) in line, text
    assert "the supervisor was killed" in text

    assert runner.signal("flaky", signal.SIGTERM, wait=10)
    assert gone(first), "the orphaned job was left running by a stop"
    assert not runner.running("flaky") and runner.observe("flaky")["state"] == "stopped"


def test_a_killed_supervisor_and_job_is_killed_not_running(runner):
    assert runner.launch("flaky", job(SLEEPER))
    st = runner.status("flaky")
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    os.kill(st["pid"], signal.SIGKILL)
    wait_for(lambda: gone(st["pid"]) and not supervise.alive(st["supervisor_pid"]), 10, "both ends")
    seen = runner.observe("flaky")
    assert (seen["running"], seen["state"], seen["pid"]) == (False, "killed", None)
    assert not runner.running("flaky")


def test_the_start_scripts_status_shows_an_orphaned_job(runner):
    """./kappa/start_kappa.py --local D --status (LocalOrchestrator.states) read the stale record too."""
    from vendlab.localstack.start import LocalOrchestrator

    o = LocalOrchestrator.__new__(LocalOrchestrator)
    o._local, o.stack = runner, type("S", (), {"jobs": ("flaky",)})()
    assert runner.launch("flaky", job(SLEEPER))
    st = runner.status("flaky")
    assert o.states()["flaky"].startswith(f"running  pid {st['pid']}")
    os.kill(st["supervisor_pid"], signal.SIGKILL)
    wait_for(lambda: not supervise.alive(st["supervisor_pid"]), 10, "the supervisor's end")
    assert o.states()["flaky"].startswith(f"orphaned  pid {st['pid']}"), o.states()
    os.kill(st["pid"], signal.SIGKILL)
    wait_for(lambda: gone(st["pid"]), 10, "the job's end")
    assert o.states()["flaky"].startswith("killed"), o.states()


def test_observe_without_the_jobs_start_time_cannot_tell():
    """A record of an older supervisor (no pid_start) whose pid exists: unknown, not running."""
    st = {"supervisor_pid": 2**22 + 7, "state": "running", "pid": os.getpid()}
    assert supervise.observe(st)["state"] == "unknown"
    assert supervise.observe({**st, "pid_start": supervise.proc_start(os.getpid())})["state"] == "orphaned"
    assert supervise.observe({**st, "pid_start": 1})["state"] == "killed", "a reused pid is not the job"
    assert supervise.observe({**st, "state": "stopped"})["state"] == "stopped"
    assert supervise.observe({**st, "state": "restarting"})["state"] == "killed"


# -- vendlab stack stop|start on fake services and jobs ----------------------------------------------------
# a service: listens on its port (argv[1]) after FAKE_DELAY seconds, notes FAKE_VAR, ends on SIGTERM; its
# command line names the stack's folder (argv[2]), as every real service's does
SERVICE = (
    "import os, signal, socket, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    "time.sleep(float(os.environ.get('FAKE_DELAY', '0')))\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "open('env-seen', 'w').write(os.environ.get('FAKE_VAR', '-'))\n"
    "while True: time.sleep(1)\n"
)
# a job: counts its runs and notes FAKE_JOB_VAR (in its cwd, the stack's folder); on SIGINT it notes whether
# the service datanode1 still runs (stack down must stop the jobs first), then exits 130
JOB = (
    "import json, os, pathlib, signal, sys, time\n"
    "p = pathlib.Path('job-runs'); n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1))\n"
    "pathlib.Path(f'job-env-{n}').write_text(os.environ.get('FAKE_JOB_VAR', '-'))\n"
    "def stop(*_):\n"
    "    pid = json.loads(pathlib.Path('stack.json').read_text())['services'].get('datanode1', {}).get('pid')\n"
    "    try:\n"
    "        os.kill(pid, 0); st = pathlib.Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0]\n"
    "        seen = 'running' if st != 'Z' else 'gone'\n"
    "    except (TypeError, OSError):\n"
    "        seen = 'gone'\n"
    "    pathlib.Path('job-saw').write_text(seen); sys.exit(130)\n"
    "signal.signal(signal.SIGINT, stop)\n"
    "while True: time.sleep(0.1)\n"
)


@pytest.fixture
def stack(tmp_path):
    """A kappa stack folder with two fake services (not started) and a compose file with one job service."""
    from vendlab.localstack.stack import free_port

    root = tmp_path / "repo"
    (root / "kappa").mkdir(parents=True)
    (root / "kappa" / "docker-compose.yml").write_text(yaml.safe_dump({"services": SERVICES}))
    d = (tmp_path / "stack").resolve()
    d.mkdir()
    services = {}
    for name, role, delay in (("datanode1", "data", "0"), ("spark-worker-1", "webui", "1.0")):
        port = free_port()
        services[name] = {
            "compose": name,
            "pid": None,
            "address": f"127.0.0.1:{port}",
            "ports": {role: port},
            "version": "test",
            "log": str(d / "logs" / f"{name}.log"),
            "argv": [sys.executable, "-c", SERVICE, str(port), str(d)],
            "extra": {},
            "env": {"FAKE_VAR": f"{name}-env", "FAKE_DELAY": delay},
            "env_unset": [],
        }
    (d / "stack.json").write_text(json.dumps({"stack": "kappa", "services": services, "ports": {}, "client_env": {}}))
    yield LocalStack(d, root=root)
    s = LocalStack(d, root=root)
    LocalRunner(s).stop_all(wait=5)
    for name in services:
        s.stop_service(name, timeout=5)


def cli(capfd, *args: str) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr (LocalStack's progress lines)."""
    code = main(["stack", *args])
    out = capfd.readouterr()
    return code, out.out, out.err


def status_json(capfd, d) -> dict:
    code, out, _ = cli(capfd, "status", "--dir", str(d), "--json")
    return {"code": code, **json.loads(out)}


def test_stop_and_start_parse_and_name_errors(stack, capfd):
    d = str(stack.dir)
    for sub in ("stop", "start"):
        with pytest.raises(SystemExit) as e:
            main(["stack", sub, "--dir", d])  # no name
        assert e.value.code == 2
        assert "SERVICE" in capfd.readouterr().err
        code, _, err = cli(capfd, sub, "--dir", d, "datanode1", "kafka2", "nope")
        assert code == 2
        assert "no service or job named kafka2, nope" in err
        assert "services: datanode1, spark-worker-1; jobs: (none launched)" in err, err
        code, _, err = cli(capfd, sub, "--dir", str(stack.dir.parent / "elsewhere"), "kafka")
        assert code == 2 and "no local stack" in err
    assert all(not s["running"] for s in status_json(capfd, d)["services"].values()), "an error started something"


@pytest.mark.slow
def test_start_waits_for_health_with_progress_then_stop_shows_stopped(stack, capfd):
    d = str(stack.dir)
    code, out, err = cli(capfd, "start", "--dir", d, "spark-worker-1")
    assert code == 0, err
    assert "spark-worker-1: started (pid" in err and "waiting for spark-worker-1" in err, err
    assert err.index("waiting for") < err.index("spark-worker-1: healthy"), err
    assert "spark-worker-1" in out and "healthy" in out and "datanode1" not in out, out
    st = status_json(capfd, d)
    w = st["services"]["spark-worker-1"]
    assert (w["running"], w["healthy"]) == (True, True) and w["pid"]
    assert (stack.dir / "data" / "spark-worker-1" / "env-seen").read_text() == "spark-worker-1-env", (
        "started without the environment up gave it"
    )
    assert st["code"] == 1, "datanode1 is not running: status exits 1"
    pid = w["pid"]

    code, out, err = cli(capfd, "stop", "--dir", d, "spark-worker-1")
    assert code == 0 and f"spark-worker-1: stopped (pid {pid}, SIGTERM)" in err, err
    assert not supervise.alive(pid, d)
    st = status_json(capfd, d)
    w = st["services"]["spark-worker-1"]
    assert (w["running"], w["healthy"], w["pid"]) == (False, False, None)
    assert {"address", "pid", "version", "healthy", "running", "log"} <= set(w), "a status field went missing"
    _, text, _ = cli(capfd, "status", "--dir", d)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("spark-worker-1"))
    assert " stopped " in line, text
    assert json.loads((stack.dir / "stack.json").read_text())["services"]["spark-worker-1"]["pid"] is None

    code, _, err = cli(capfd, "stop", "--dir", d, "spark-worker-1")
    assert code == 0 and "spark-worker-1: not running" in err
    code, _, err = cli(capfd, "start", "--dir", d, "spark-worker-1", "datanode1")
    assert code == 0, err
    assert err.index("datanode1: started") < err.index("spark-worker-1: started"), "not in the stack's order"
    assert all(s["healthy"] for s in status_json(capfd, d)["services"].values())
    code, _, err = cli(capfd, "start", "--dir", d, "datanode1")
    assert code == 0 and "datanode1: already running" in err


def test_start_of_a_service_that_never_answers_is_exit_2_naming_its_log(stack, capfd):
    rec = stack.state["services"]["datanode1"]
    rec["env"]["FAKE_DELAY"] = "60"
    stack.write_state()
    code, _, err = cli(capfd, "start", "--dir", str(stack.dir), "--timeout", "1", "datanode1")
    assert code == 2 and "time-out waiting for datanode1 to be healthy" in err and rec["log"] in err, err


@pytest.mark.slow
def test_a_job_stopped_on_purpose_is_not_restarted_and_start_runs_its_recorded_command(stack, capfd):
    d = str(stack.dir)
    runner = LocalRunner(stack, extra_env={"FAKE_JOB_VAR": "from-the-launcher"})
    assert runner.launch("flaky", job(JOB))
    wait_for(lambda: (stack.dir / "job-env-0").exists(), 10, "the job's first run")
    first = runner.pid("flaky")

    code, out, err = cli(capfd, "stop", "--dir", d, "flaky")
    assert code == 0, err
    assert "flaky: stopped on purpose (exit 130); restart on-failure does not restart it" in err, err
    assert gone(first)
    time.sleep(1.0)  # a restart would come after 0.1 s
    assert (stack.dir / "job-runs").read_text() == "1", "restarted after a stop on purpose"
    j = status_json(capfd, d)["jobs"]["flaky"]
    assert (j["running"], j["state"], j["restarts"], j["pid"]) == (False, "stopped", 0, None)
    assert "flaky" in out and "stopped" in out
    code, _, err = cli(capfd, "stop", "--dir", d, "flaky")
    assert code == 0 and "flaky: not running (stopped)" in err

    code, out, err = cli(capfd, "start", "--dir", d, "flaky")
    assert code == 0 and "flaky: started (pid" in err and "restart on-failure" in err, err
    wait_for(lambda: (stack.dir / "job-env-1").exists(), 10, "the job's second run")
    assert (stack.dir / "job-env-1").read_text() == "from-the-launcher", "started without the launcher's variables"
    st = runner.status("flaky")
    assert st["argv"] == job(JOB) and st["state"] == "running" and st["restart"] == "on-failure"
    second = st["pid"]
    assert second != first and runner.running("flaky")
    code, _, err = cli(capfd, "start", "--dir", d, "flaky")
    assert code == 0 and f"flaky: already running (pid {second})" in err, err

    os.kill(second, signal.SIGKILL)  # the policy applies again: a crash is restarted
    wait_for(lambda: (s := runner.status("flaky")) and s["restarts"] == 1 and s["state"] == "running", 10, "restart")
    # the supervisor marks the job running when it spawns it; the job notes its run a moment later
    wait_for(lambda: (stack.dir / "job-runs").read_text() == "3", 10, "the third run noted by the job")


@pytest.mark.slow
def test_down_stops_the_jobs_first_then_the_services(stack, capfd):
    d = str(stack.dir)
    assert cli(capfd, "start", "--dir", d, "datanode1")[0] == 0
    svc = stack.read_state()["services"]["datanode1"]["pid"]
    runner = LocalRunner(stack)
    assert runner.launch("flaky", job(JOB))
    wait_for(lambda: (stack.dir / "job-runs").exists(), 10, "the job's run")
    jpid = runner.pid("flaky")

    code, _, err = cli(capfd, "down", "--dir", d)
    assert code == 0, err
    assert (stack.dir / "job-saw").read_text() == "running", "the job was stopped after its service"
    assert err.index("flaky: stopped (job)") < err.index("datanode1: stopped"), err
    assert gone(jpid) and not supervise.alive(svc, d), "down left a process behind"
    time.sleep(0.5)
    assert (stack.dir / "job-runs").read_text() == "1" and runner.status("flaky")["state"] == "stopped"


def test_a_started_service_gets_the_environment_up_gave_it(tmp_path, monkeypatch):
    """stack.json records a service's environment as a difference from the shell's (env, env_unset), and
    start_service rebuilds it from the shell of then: added, changed and removed variables."""
    from vendlab.localstack.stack import Service, _service_env

    monkeypatch.setenv("KAFKA_HEAP_OPTS", "-Xmx9g")  # the shell's, dropped by up for the broker
    monkeypatch.setenv("SPARK_WORKER_CORES", "8")
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_HEAP_OPTS"}
    env |= {"SPARK_WORKER_CORES": "1", "SPARK_DAEMON_JAVA_OPTS": f"-Dvendlab.stack={tmp_path}"}
    (tmp_path / "stack.json").write_text(json.dumps({"stack": "kappa", "services": {}, "ports": {}}))
    s = Service("w", "w", ["x"], env, {}, "a", "v", health=lambda s: True)
    rec = LocalStack(tmp_path)._record(s)
    assert rec["env"] == {"SPARK_WORKER_CORES": "1", "SPARK_DAEMON_JAVA_OPTS": f"-Dvendlab.stack={tmp_path}"}
    assert rec["env_unset"] == ["KAFKA_HEAP_OPTS"]
    assert _service_env(json.loads(json.dumps(rec))) == env
    monkeypatch.setenv("VENDLAB_LATER", "1")  # the shell of `start` may differ: its variables pass through
    assert _service_env(rec) == env | {"VENDLAB_LATER": "1"}
    old = {k: v for k, v in rec.items() if k not in ("env", "env_unset")} | {"extra": {"conf": "/c"}}
    assert _service_env(old)["HADOOP_CONF_DIR"] == "/c", "a stack.json of before keeps working"
