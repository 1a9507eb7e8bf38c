"""The start scripts' ``--local DIR``: the same steps as on compose, executed on a local stack.

    vendlab stack up --stack lambda --dir DIR
    ./lambda/start_lambda.py --local DIR [--rate R ...]    topic, schema, HDFS folders, the jobs
    ./lambda/start_lambda.py --local DIR --status | --stop | --down

``LocalOrchestrator`` is ``vendlab.orchestrate.Orchestrator`` (its ``start``, ``stop``, ``status`` and the
set-up steps are the one list of steps) with only the primitives that execute replaced: a command
inside a compose service runs as the same tool here (``LocalRunner.exec``), a job is started as a local
process from the compose job's own command (``LocalRunner.localize``: this machine's paths, the local
stack's addresses; pid file in DIR/jobs/, log in DIR/logs/job-NAME.log), stopped by its pid (SIGINT,
as ``docker compose stop`` sends the jobs' stop signal), and the infrastructure is the local stack's
services (started by ``vendlab stack up``, checked here, not started).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from vendlab.localstack.jobs import LocalRunner
from vendlab.localstack.stack import STATE, LocalStack, StackError
from vendlab.orchestrate import CommandRunner, OrchestrateError, Orchestrator, Process, Stack, StackSettings

STOP_WAIT = 120.0  # seconds a job gets to stop after SIGINT before SIGKILL


class LocalOrchestrator(Orchestrator):
    def __init__(
        self,
        stack: Stack,
        compose_dir: Path,
        stack_dir: Path,
        settings: StackSettings | None = None,
        out=None,
        runner: CommandRunner | None = None,
    ):
        import json
        import sys

        from vendlab.orchestrate import BASE_WORKERS, scaled

        # the topology is the local stack's (`vendlab stack up --nodes 3 --spark-workers N`): the topic and
        # the keyspace get its replication, the health check its nodes
        state_file = Path(stack_dir) / STATE
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        stack = scaled(stack, state.get("nodes") or 1, state.get("spark_workers") or BASE_WORKERS)
        super().__init__(stack, compose_dir, runner or CommandRunner(), settings, out or sys.stdout)
        self.stack_dir = Path(stack_dir).resolve()
        self._local: LocalRunner | None = None

    # -- the local stack --------------------------------------------------------------------------
    @property
    def up_command(self) -> str:
        from vendlab.project_venv import vendlab_command

        return f"{vendlab_command()} stack up --stack {self.stack.name} --dir {self.stack_dir}"

    @property
    def local(self) -> LocalRunner:
        if self._local is None:
            if not (self.stack_dir / STATE).exists():
                raise OrchestrateError(
                    f"no local stack in {self.stack_dir} (no {STATE}): start one with: {self.up_command}", 2
                )
            try:
                self._local = LocalRunner(LocalStack(self.stack_dir, self.stack.name))
            except StackError as e:
                raise OrchestrateError(str(e), 2) from e
        return self._local

    def _must_local(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except StackError as e:
            raise OrchestrateError(str(e), 2) from e

    # -- primitives (see Orchestrator) -------------------------------------------------------------
    def prepare_run(self) -> None:
        self.say(
            "[0/6] run settings (given to the jobs' commands): " + " ".join(f"{k}={v}" for k, v in self.s.env().items())
        )

    def platform_title(self) -> str:
        return f"the local {self.stack.name} stack in {self.stack_dir}"

    def check_platform(self) -> None:
        self.say(f"  {self.stack_dir / STATE}: a {self.local.stack.stack} stack")

    check_reachable = check_platform

    def infra_title(self) -> str:
        return f"started by `{self.up_command}` (not started here)"

    def infra_up(self) -> None:
        pass

    def wait_healthy(self) -> None:
        """Every service of the local stack healthy; one that is stopped ends the start at once (exit 2),
        one that runs but is not healthy yet is waited for (up to --timeout)."""
        deadline = self.runner.now() + self.s.health_timeout
        while True:
            services = self.local.stack.status()["services"]
            bad = {n: s for n, s in services.items() if not s["healthy"]}
            if not bad:
                self.say(f"  all {len(services)} services healthy")
                return
            stopped = sorted(n for n, s in bad.items() if not s["running"])
            if stopped or self.runner.now() >= deadline:
                what = ", ".join(
                    f"{n} ({'stopped' if not s['running'] else 'running, not healthy'})" for n, s in sorted(bad.items())
                )
                raise OrchestrateError(
                    f"the local {self.stack.name} stack in {self.stack_dir} is not healthy: {what}\n"
                    f"  start it (again) with: {self.up_command}\n  logs: {self.stack_dir / 'logs'}/"
                    + (bad[stopped[0]].get("log", "").rsplit("/", 1)[-1] if stopped else ""),
                    2,
                )
            self.say("  waiting for: " + ", ".join(sorted(bad)))
            self.runner.sleep(self.s.poll_interval)

    def exec(self, service, args, input=None, env=None):
        return self._must_local(self.local.exec, service, args, input=input)

    def running_jobs(self) -> set[str]:
        return {j for j in self.stack.jobs if self.local.running(j)}

    def _restarts(self, name: str) -> int:
        return (self.local.status(name) or {}).get("restarts", 0)

    def start_jobs(self) -> None:
        # a job that fails at once is restarted by its supervisor (restart: on-failure), as by compose:
        # running alone does not show it, its restart count does (after_jobs)
        self._restarts_before = {j: self._restarts(j) for j in self.stack.jobs}
        super().start_jobs()

    def start_job(self, p: Process) -> None:
        argv = self._must_local(self.local.localize, p.command)
        self._must_local(self.local.launch, p.name, argv)
        self._restarts_before[p.name] = 0
        st = self.local.status(p.name) or {}
        self.say(
            f"  {p.name}: started, pid {self.local.pid(p.name)} ({p.memory}; restart: {st.get('restart', 'no')}; "
            f"log: {self.local.log(p.name)})"
        )

    def stop_job(self, name: str) -> None:
        self.local.signal(name, signal.SIGINT, wait=STOP_WAIT)

    def after_jobs(self) -> None:
        from vendlab.localstack.supervise import describe_exit

        time.sleep(2)  # a job that fails at once (bad flag, missing jar) shows here rather than in --status
        before = getattr(self, "_restarts_before", {})
        bad = {}
        for j in self.stack.jobs:
            st = self.local.status(j) or {}
            last = describe_exit(st.get("last_exit_code"))
            if not self.local.running(j):
                bad[j] = f"stopped, exit {last}"
            elif self._restarts(j) > before.get(j, 0):
                bad[j] = f"restarted {self._restarts(j) - before.get(j, 0)} time(s), last exit {last}"
        if bad:
            raise OrchestrateError(
                "these jobs did not stay up after their start: "
                + ", ".join(f"{j} ({why}; log: {self.local.log(j)})" for j, why in bad.items()),
                1,
            )

    def states(self) -> dict[str, str]:
        from vendlab.localstack.supervise import describe_exit

        out = {}
        for name, s in self.local.stack.status()["services"].items():
            out[name] = ("running healthy" if s["healthy"] else "running" if s["running"] else "stopped") + (
                f"  {s['address']}" if s["running"] else ""
            )
        for j in self.stack.jobs:
            st = self.local.status(j) or {}
            seen = self.local.observe(j) or {}
            if self.local.running(j):
                state = seen.get("state") or "running"
                out[j] = (
                    f"{state}  pid {self.local.pid(j)}"
                    if state in ("running", "orphaned")
                    else f"{state} (pid {self.local.pid(j)} exited)"
                )
            else:
                out[j] = "stopped" if seen.get("state") in (None, "stopped") else seen["state"]
            if st:
                out[j] += f"  restarts {st.get('restarts', 0)}, last exit {describe_exit(st.get('last_exit_code'))}"
        return out

    def stopped_hint(self) -> str:
        return f"stop it with: vendlab stack down --dir {self.stack_dir}"

    def infra_down(self) -> None:
        self.local.close()
        self._must_local(self.local.stack.down)
        self.say(
            f"the local {self.stack.name} stack is down; its data is kept in {self.stack_dir / 'data'} "
            f"(remove it with: vendlab stack down --dir {self.stack_dir} --purge)"
        )

    def print_urls(self) -> None:
        self.say("URLs and logs:")
        for name, rec in self.local.stack.state.get("services", {}).items():
            web = rec.get("extra", {}).get("webui") or (rec["address"] if rec["address"].startswith("http") else "")
            if name == "namenode":
                web = f"http://127.0.0.1:{rec['ports']['http']}"
            if web:
                self.say(f"  {web:32} {name}")
        self.say(f"  jobs' logs: {self.stack_dir / 'logs'}/job-*.log; services' logs: {self.stack_dir / 'logs'}/")
