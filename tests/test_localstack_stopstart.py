"""Stopping and starting one service or job of a local stack on purpose (``vendlab stack stop|start``), what
``vendlab stack status`` says of them, ``vendlab stack down``'s order (jobs first), and the truth about a job
whose supervisor was killed: small fake services and jobs (python -c), no Java, no real service."""

from __future__ import annotations

import json
import os
import signal

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


def test_observe_without_the_jobs_start_time_cannot_tell():
    """A record of an older supervisor (no pid_start) whose pid exists: unknown, not running."""
    st = {"supervisor_pid": 2**22 + 7, "state": "running", "pid": os.getpid()}
    assert supervise.observe(st)["state"] == "unknown"
    assert supervise.observe({**st, "pid_start": supervise.proc_start(os.getpid())})["state"] == "orphaned"
    assert supervise.observe({**st, "pid_start": 1})["state"] == "killed", "a reused pid is not the job"
    assert supervise.observe({**st, "state": "stopped"})["state"] == "stopped"
    assert supervise.observe({**st, "state": "restarting"})["state"] == "killed"
