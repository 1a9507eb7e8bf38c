"""A job's supervisor on the local stack: compose's restart policy for a plain process.

    python -m vendlab.localstack.supervise --name NAME --pid-file F --status F --restart POLICY -- ARGV...

``vendlab.localstack.jobs.LocalRunner.launch`` starts one per job, detached (its own session), so it
outlives the command that launched it (``start_kappa.py --local DIR`` returns). It runs ARGV as its child
and applies the job's compose ``restart`` policy the way Docker's restart manager does
(moby/moby restartmanager/restartmanager.go):

- ``no``: never restarted; ``on-failure[:N]``: restarted when it exits non-zero (a signal counts as a
  failure: ``kill -9`` of the job is a crash), at most N times if N is given; ``always`` and
  ``unless-stopped``: restarted whatever the exit code.
- A stop on purpose is never restarted: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 or SIGUSR2 sent to the
  supervisor (``LocalRunner.signal``/``stop_all``, as ``docker compose stop`` sends the stop signal) is
  forwarded to the job, and the supervisor ends when the job does.
- Back-off: 100 ms before the first restart, doubled at each next one, reset to 100 ms when the job had
  run for 10 s or more (Docker's rule); capped at ``MAX_BACKOFF_S`` (Docker caps at 1 minute: a lab wants
  a job back within seconds of its service's return, and at most 6 restarts a minute stay visible).

The job's pid goes to the pid file at each (re)start (the pid a test kills to simulate a crash is the
job's, not the supervisor's); the status file (JSON, next to the pid file) holds the supervisor's pid,
the policy, the restart count, the job's last exit code (negative: killed by that signal, as
``subprocess`` reports it) and its state. Each exit and restart is one line in the job's log (the
supervisor's stdout and stderr are the job's). The supervisor exits with the job's last exit code
(128 + N for a signal N, as a shell does).

Kept light (the standard library only): it starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

INITIAL_BACKOFF_S = 0.1  # Docker's defaultTimeout
BACKOFF_MULTIPLIER = 2  # Docker's backoffMultiplier
MAX_BACKOFF_S = 10.0  # Docker: 1 minute (see the module's text)
RESET_AFTER_S = 10.0  # Docker: a run of 10 s or more resets the back-off
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
POLICIES = ("no", "on-failure", "always", "unless-stopped")
MARKER = "vendlab.localstack.supervise"  # in every supervisor's command line (a reused pid is not one)
STATUS_SUFFIX = ".status.json"


class PolicyError(ValueError):
    pass


def parse_policy(text: str | None) -> tuple[str, int]:
    """A compose ``restart`` value -> (policy, max retries; 0: no bound). Missing: ``no``."""
    if text is None or text is False:  # YAML reads a bare `no` as False
        return "no", 0
    name, _, count = str(text).strip().partition(":")
    if name not in POLICIES:
        raise PolicyError(f"unknown restart policy {text!r} (known: {', '.join(POLICIES)}, on-failure:N)")
    if count and (name != "on-failure" or not count.isdigit()):
        raise PolicyError(f"restart policy {text!r}: only on-failure takes a count (on-failure:N, N >= 0)")
    return name, int(count or 0)


def should_restart(policy: str, max_retries: int, restarts: int, code: int) -> bool:
    """After a job's exit that was not a stop on purpose (Docker's ShouldRestart)."""
    if policy in ("always", "unless-stopped"):
        return True
    if policy == "on-failure":
        return code != 0 and (max_retries == 0 or restarts < max_retries)
    return False


def next_backoff(previous: float, ran_s: float, cap: float = MAX_BACKOFF_S) -> float:
    if ran_s >= RESET_AFTER_S or previous <= 0:
        return INITIAL_BACKOFF_S
    return min(previous * BACKOFF_MULTIPLIER, cap)


def shell_code(code: int) -> int:
    return 128 - code if code < 0 else min(code, 255)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "-"
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"{code} (signal {-code})"
    return str(code)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def status_path(pid_file: Path) -> Path:
    return pid_file.with_name(pid_file.name[: -len(".pid")] + STATUS_SUFFIX)


def read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def alive(pid: int | None, marker: str = MARKER) -> bool:
    """The process runs (not a zombie) and its command line names ``marker``."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ProcessLookupError):
        return False
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z" and marker in cmd


def proc_stat(pid: int | None) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (the state first, the start time at index 19),
    None when there is no such process. The name is cut off at its last ")": it may hold spaces and ")"."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return fields or None


def proc_start(pid: int | None) -> int | None:
    """When the process started (clock ticks since boot, /proc/PID/stat field 22): with the pid, which
    process it is (a reused pid, or one a job's exec turned into java, is told apart by it)."""
    stat = proc_stat(pid)
    try:
        return int(stat[19]) if stat else None
    except (IndexError, ValueError):
        return None


def job_alive(st: dict) -> bool | None:
    """The job of a status record still runs (True), does not (False), or cannot be told (None: a record
    written before the job's start time was recorded, and a process with its pid exists)."""
    pid = st.get("pid")
    started = proc_start(pid)
    if started is None:
        return False
    if st.get("pid_start") is None:
        return None
    stat = proc_stat(pid)
    return stat is not None and started == st["pid_start"] and stat[0] != "Z"


def observe(st: dict) -> dict:
    """What a job's status record means now: ``running`` (the job runs or waits for its restart),
    ``state``, ``pid``, ``supervisor_pid``, ``supervised``. The record is the supervisor's: while it is
    alive it tells the truth. After it died without writing (``kill -9``), a record saying ``running``
    or ``restarting`` is stale; then the job's own pid decides: ``orphaned`` (the job still runs, nothing
    restarts it), ``killed`` (gone too), ``unknown`` (cannot be told)."""
    sup = st.get("supervisor_pid")
    if alive(sup):
        return {
            "running": True,
            "state": st.get("state"),
            "pid": st.get("pid"),
            "supervisor_pid": sup,
            "supervised": True,
        }
    state = st.get("state")
    if state not in ("starting", "running", "restarting"):
        return {"running": False, "state": state, "pid": None, "supervisor_pid": None, "supervised": False}
    job = job_alive(st) if state == "running" else False
    return {
        "running": bool(job),
        "state": "orphaned" if job else "unknown" if job is None else "killed",
        "pid": st.get("pid") if job is not False else None,
        "supervisor_pid": None,
        "supervised": False,
    }


def jobs_status(jobs_dir: Path) -> dict[str, dict]:
    """Every job with a status file in ``jobs_dir`` (DIR/jobs) -> its status: the record as ``observe``
    reads it now, with its restart policy, restarts, last exit and log."""
    out = {}
    for f in sorted(Path(jobs_dir).glob("*" + STATUS_SUFFIX)):
        st = read_status(f)
        if st is None:
            continue
        out[f.name[: -len(STATUS_SUFFIX)]] = {
            **observe(st),
            "restart": st.get("restart", "no"),
            "restarts": st.get("restarts", 0),
            "last_exit_code": st.get("last_exit_code"),
            "last_exit_at": st.get("last_exit_at"),
            "started_at": st.get("started_at"),
            "log": st.get("log", ""),
        }
    return out


def update_status(path: Path, status: dict | None = None, **changes) -> dict:
    """Write a job's status record (atomically): ``status`` (default: the file's) with ``changes``."""
    status = dict(status if status is not None else read_status(path) or {})
    status.update(changes)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status, indent=1))
    tmp.replace(path)
    return status


class Supervisor:
    def __init__(
        self, name: str, argv: list[str], pid_file: Path, restart: str, log: str = "", extra_env: dict | None = None
    ):
        self.name = name
        self.argv = argv
        self.pid_file = pid_file
        self.status_file = status_path(pid_file)
        self.restart = restart or "no"
        self.policy, self.max_retries = parse_policy(restart)
        self.log = log
        self.child: subprocess.Popen | None = None
        self.stopping: int | None = None  # the signal of a stop on purpose
        self.status = {
            "name": name,
            "supervisor_pid": os.getpid(),
            "pid": None,
            "pid_start": None,
            "restart": self.restart,
            "max_retries": self.max_retries,
            "restarts": 0,
            "state": "starting",
            "last_exit_code": None,
            "last_exit_at": None,
            "started_at": None,
            "log": log,
            "argv": argv,
            "extra_env": dict(extra_env or {}),  # what the launcher added to the stack's environment
        }

    def say(self, msg: str) -> None:
        print(f"vendlab supervise {now_iso()}: {self.name}: {msg}", file=sys.stderr, flush=True)

    def write(self, **changes) -> None:
        self.status = update_status(self.status_file, self.status, **changes)

    def on_signal(self, sig, _frame) -> None:
        self.stopping = sig
        if self.child is not None and self.child.poll() is None:
            try:
                self.child.send_signal(sig)
            except ProcessLookupError:
                pass

    def start_child(self) -> bool:
        try:
            # its own session, as a job launched directly was: a group of its own, no terminal
            self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as e:
            self.say(f"cannot start {self.argv[0]}: {e}")
            self.write(state="exited", pid=None, last_exit_code=127, last_exit_at=now_iso())
            return False
        tmp = self.pid_file.with_name(self.pid_file.name + ".tmp")
        tmp.write_text(str(self.child.pid))
        tmp.replace(self.pid_file)
        self.write(state="running", pid=self.child.pid, pid_start=proc_start(self.child.pid), started_at=now_iso())
        if self.stopping is not None:  # a stop asked while it started
            self.on_signal(self.stopping, None)
        return True

    def run(self) -> int:
        for sig in FORWARDED:
            signal.signal(sig, self.on_signal)
        backoff = 0.0
        while True:
            if not self.start_child():
                return 127
            t0 = time.monotonic()
            code = self.child.wait()
            ran = time.monotonic() - t0
            self.write(last_exit_code=code, last_exit_at=now_iso())
            if self.stopping is not None:
                self.say(f"stopped on purpose ({signal.Signals(self.stopping).name}), exit {describe_exit(code)}")
                self.write(state="stopped")
                return shell_code(code)
            if not should_restart(self.policy, self.max_retries, self.status["restarts"], code):
                why = (
                    f"gave up after {self.status['restarts']} restart(s) (restart: {self.restart})"
                    if self.policy == "on-failure" and code != 0
                    else f"not restarted (restart: {self.restart})"
                )
                self.say(f"exited {describe_exit(code)} after {ran:.1f} s; {why}")
                self.write(state="gave-up" if "gave up" in why else "exited")
                return shell_code(code)
            backoff = next_backoff(backoff, ran)
            restarts = self.status["restarts"] + 1
            self.say(
                f"exited {describe_exit(code)} after {ran:.1f} s; restart {restarts} in {backoff:.1f} s "
                f"(restart: {self.restart})"
            )
            self.write(state="restarting", restarts=restarts)
            end = time.monotonic() + backoff
            while time.monotonic() < end and self.stopping is None:
                time.sleep(min(0.05, max(0.0, end - time.monotonic())))
            if self.stopping is not None:
                self.say(f"stopped on purpose ({signal.Signals(self.stopping).name}) while waiting to restart")
                self.write(state="stopped")
                return shell_code(code)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vendlab.localstack.supervise", description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--pid-file", type=Path, required=True, help="the job's pid, written at each (re)start")
    p.add_argument("--restart", default="no", help="compose's restart policy: no, on-failure[:N], always, ...")
    p.add_argument("--log", default="", help="the job's log (recorded in the status for `stack status`)")
    p.add_argument(
        "--extra-env",
        type=json.loads,
        default={},
        help="JSON: the variables the launcher added to the stack's environment (recorded, for `vendlab stack start`)",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- ARGV...")
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command to run (after --)")
    try:
        sup = Supervisor(a.name, command, a.pid_file, a.restart, a.log, a.extra_env)
    except PolicyError as e:
        p.error(str(e))
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())
