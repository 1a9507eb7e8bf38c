"""The local stack's restart policy (vendlab.localstack.supervise, through LocalRunner.launch): small fake
jobs (python -c) under a compose file of their own, no services. A job of a service with
``restart: on-failure`` is restarted when it exits non-zero or is killed, with Docker's back-off; an exit 0,
a stop on purpose (LocalRunner.signal / stop_all) and the end of ``on-failure:N``'s retries are not
restarted; ``vendlab stack status`` shows the restarts, the last exit code and the log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vendlab.localstack import supervise
from vendlab.localstack.jobs import LocalRunner
from vendlab.localstack.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]

SERVICES = {
    "flaky": {"image": "x:1", "restart": "on-failure"},
    "capped": {"image": "x:1", "restart": "on-failure:2"},
    "plain": {"image": "x:1"},
    "always": {"image": "x:1", "restart": "always"},
}
# exits 1 on its first two runs (a count in a file of the stack's folder, its cwd), then runs
FLAKY = (
    "import pathlib, sys, time\n"
    "p = pathlib.Path('flaky-runs'); n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1))\n"
    "print('run', n, flush=True)\n"
    "sys.exit(1) if n < 2 else time.sleep(120)\n"
)
SLEEPER = "import time; time.sleep(120)"


def job(code: str) -> list[str]:
    return [sys.executable, "-c", code, "vendlab-test"]


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


def wait_for(cond, timeout: float = 20.0, what: str = ""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def gone(pid: int) -> bool:
    """The test's process has exited: no /proc entry, a zombie (Z) or dead (X) one, or the pid reused by
    another command. Not ``not supervise.alive``: a process being killed shows an empty command line
    (its memory released) a moment before it turns Z, and the product (supervise.job_alive) still counts
    it as running then; that made a test see "gone" here and "orphaned" from the product (CI, stop 32)."""
    stat = supervise.proc_stat(pid)
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return stat is None or stat[0] in ("Z", "X") or (bool(cmd) and b"vendlab-test" not in cmd)


# -- the policy, as Docker's restart manager decides ---------------------------------------------------
def test_policy_parsing_and_decisions():
    assert supervise.parse_policy(None) == ("no", 0)
    assert supervise.parse_policy(False) == ("no", 0)  # YAML's bare `no`
    assert supervise.parse_policy("on-failure") == ("on-failure", 0)
    assert supervise.parse_policy("on-failure:3") == ("on-failure", 3)
    for bad in ("sometimes", "always:3", "on-failure:x"):
        with pytest.raises(supervise.PolicyError):
            supervise.parse_policy(bad)
    assert supervise.should_restart("on-failure", 0, 99, 2)
    assert not supervise.should_restart("on-failure", 0, 0, 0)
    assert supervise.should_restart("on-failure", 0, 0, -9)  # killed: a failure
    assert supervise.should_restart("on-failure", 3, 2, 1) and not supervise.should_restart("on-failure", 3, 3, 1)
    assert supervise.should_restart("always", 0, 5, 0) and supervise.should_restart("unless-stopped", 0, 5, 0)
    assert not supervise.should_restart("no", 0, 0, 1)


def test_back_off_doubles_from_100_ms_resets_after_10_s_and_is_capped():
    b, seen = 0.0, []
    for _ in range(9):
        b = supervise.next_backoff(b, ran_s=0.5)
        seen.append(b)
    assert seen[:4] == [0.1, 0.2, 0.4, 0.8]
    assert seen[-1] == supervise.MAX_BACKOFF_S and max(seen) == supervise.MAX_BACKOFF_S
    assert supervise.next_backoff(6.4, ran_s=10.0) == 0.1


def test_the_policy_is_read_from_the_compose_files():
    """The jobs' restart policy is the compose files' (x-job: restart: on-failure), not a copy."""
    for stack, jobs in (("kappa", ("validation", "generator", "kappa-job")), ("lambda", ("lambda-speed",))):
        doc = yaml.safe_load((ROOT / stack / "docker-compose.yml").read_text())
        r = LocalRunner.__new__(LocalRunner)
        r.stack = type("S", (), {"stack": stack, "root": ROOT})()
        for j in jobs:
            assert r.restart_policy(j) == str(doc["services"][j]["restart"]) == "on-failure"
        assert r.restart_policy("not-a-service") == "no"


# -- real processes --------------------------------------------------------------------------------------
def test_a_job_failing_twice_is_restarted_then_runs_and_a_stop_is_not_restarted(runner):
    assert runner.launch("flaky", job(FLAKY))
    st = wait_for(lambda: (s := runner.status("flaky")) and s["restarts"] == 2 and s["state"] == "running" and s, 20)
    assert st["last_exit_code"] == 1 and st["restart"] == "on-failure"
    pid = runner.pid("flaky")
    assert pid == st["pid"] and not gone(pid), "the pid file names the job's own (running) process"
    assert runner.running("flaky")
    assert not runner.launch("flaky", job(FLAKY)), "a supervised job was started twice"
    log = wait_for(lambda: "run 2" in (t := runner.log("flaky").read_text()) and t, 10, "the third run")
    assert "run 0" in log and "run 2" in log and "restart 2 in 0.2 s (restart: on-failure)" in log, log
    assert runner.signal("flaky", signal.SIGINT, wait=10)
    assert not runner.running("flaky") and runner.pid("flaky") is None and gone(pid)
    time.sleep(0.5)
    st = runner.status("flaky")
    assert st["state"] == "stopped" and st["restarts"] == 2 and st["last_exit_code"] != 0
    assert (runner.stack.dir / "flaky-runs").read_text() == "3", "restarted after a stop on purpose"


def test_a_job_exiting_0_is_not_restarted(runner):
    assert runner.launch("flaky", job("print('done')"))
    assert runner.wait("flaky", 20) == 0
    st = runner.status("flaky")
    assert st["restarts"] == 0 and st["state"] == "exited" and st["last_exit_code"] == 0
    assert not runner.running("flaky")


def test_a_stop_by_signal_is_not_restarted_but_a_kill_of_the_job_is(runner):
    """runner.signal (SIGTERM here) is a stop on purpose; kill -9 of the job's pid, as the crash tests do,
    is a failure the policy restarts."""
    assert runner.launch("flaky", job(SLEEPER))
    first = runner.pid("flaky")
    os.kill(first, signal.SIGKILL)
    st = wait_for(lambda: (s := runner.status("flaky")) and s["restarts"] == 1 and s["state"] == "running" and s)
    assert st["last_exit_code"] == -signal.SIGKILL and runner.pid("flaky") not in (None, first)
    assert runner.running("flaky")
    second = runner.pid("flaky")
    assert runner.signal("flaky", signal.SIGTERM, wait=10)
    time.sleep(0.5)
    st = runner.status("flaky")
    assert st["state"] == "stopped" and st["restarts"] == 1 and st["last_exit_code"] == -signal.SIGTERM
    assert gone(second) and not runner.running("flaky")


def test_on_failure_n_gives_up_after_n_restarts_and_status_shows_it(runner, capsys):
    """A job that exits 2 (a refused setting) for ever: on-failure:2 restarts it twice, then stops; status
    shows the restarts, the last exit code and the log."""
    assert runner.launch("capped", job("import sys; print('refused', flush=True); sys.exit(2)"))
    assert runner.wait("capped", 20) == 2
    st = runner.status("capped")
    assert st["restarts"] == 2 and st["state"] == "gave-up" and st["last_exit_code"] == 2
    assert runner.log("capped").read_text().count("refused") == 3
    assert "gave up after 2 restart(s) (restart: on-failure:2)" in runner.log("capped").read_text()

    from vendlab.cli import main

    d = str(runner.stack.dir)
    main(["stack", "status", "--dir", d, "--json"])
    status = json.loads(capsys.readouterr().out)
    assert {"stack", "dir", "services", "env"} <= set(status)
    j = status["jobs"]["capped"]
    assert (j["running"], j["state"], j["restarts"], j["last_exit_code"], j["restart"]) == (
        False,
        "gave-up",
        2,
        2,
        "on-failure:2",
    )
    assert j["log"] == str(runner.log("capped"))
    main(["stack", "status", "--dir", d])
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("capped"))
    assert "gave-up" in line and "restarts 2" in line and "last exit 2" in line and str(runner.log("capped")) in line


def test_a_job_of_no_restart_service_is_not_restarted(runner):
    assert runner.launch("plain", job("import sys; sys.exit(3)"))
    assert runner.wait("plain", 20) == 3
    assert runner.status("plain")["restarts"] == 0 and runner.status("plain")["restart"] == "no"


def test_stop_all_forgets_the_pid_file_of_a_job_that_ended_by_itself(runner):
    """A job that exited with nobody waiting for it leaves its pid file; stopping it (stop_all, the start
    script's --stop) removes the file, so that the folder names no process that is gone (a test or a start
    reading DIR/jobs/*.pid sees only what runs); its status, with the exit, stays."""
    assert runner.launch("plain", job("import sys; sys.exit(3)"))
    pid_file = runner.stack.dir / "jobs" / "plain.pid"
    wait_for(lambda: not runner.running("plain"), what="the job's exit")
    assert pid_file.exists()
    assert runner.stop_all() == []  # nothing was running
    assert not pid_file.exists()
    assert runner.status("plain")["last_exit_code"] == 3


def test_supervision_outlives_the_command_that_launched_it(runner):
    """As `start_kappa.py --local DIR` returns after the launch: the job is still restarted."""
    code = (
        "import sys\n"
        "from vendlab.localstack.jobs import LocalRunner\n"
        "from vendlab.localstack.stack import LocalStack\n"
        f"r = LocalRunner(LocalStack({str(runner.stack.dir)!r}, root=__import__('pathlib').Path({str(runner.stack.root)!r})))\n"
        f"assert r.launch('flaky', {job(FLAKY)!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)
    st = wait_for(lambda: (s := runner.status("flaky")) and s["restarts"] == 2 and s["state"] == "running" and s, 20)
    assert runner.running("flaky") and not gone(st["pid"])
    runner.stop_all()
    assert not runner.running("flaky") and runner.status("flaky")["state"] == "stopped"


def test_stop_all_stops_a_job_waiting_for_its_restart(runner):
    """always: restarted even after exit 0; a stop during the back-off ends it (no restart)."""
    assert runner.launch("always", job("import time; time.sleep(0.3)"))
    wait_for(lambda: (runner.status("always") or {}).get("restarts", 0) >= 3, 20, "three restarts")
    runner.stop_all()
    assert not runner.running("always")
    n = runner.status("always")["restarts"]
    time.sleep(1.0)
    assert runner.status("always")["restarts"] == n and runner.status("always")["state"] == "stopped"
