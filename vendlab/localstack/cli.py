"""``vendlab stack``: the compose stacks' services as local processes (loaded by vendlab.cli).

vendlab stack up --stack kappa|lambda --dir DIR [--nodes 1|3] [--spark-workers N]
vendlab stack status --dir DIR [--json]
vendlab stack stop --dir DIR SERVICE [SERVICE...]    (a service of stack.json or a job: on purpose, not restarted)
vendlab stack start --dir DIR SERVICE [SERVICE...]   (again, waited for until healthy; a job under its supervisor)
vendlab stack down --dir DIR [--purge]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COMMANDS = ("stack",)


def add_commands(sub) -> None:
    p = sub.add_parser("stack", help="run a compose stack's services as local processes (no Docker)")
    ss = p.add_subparsers(dest="stack_command", required=True, metavar="up|status|stop|start|down")
    up = ss.add_parser("up", help="start Kafka, Cassandra, (lambda: HDFS, YARN) and Spark on 127.0.0.1")
    up.add_argument("--stack", required=True, choices=("kappa", "lambda"), help="which compose stack")
    up.add_argument("--dir", type=Path, required=True, help="folder for the stack's state, logs and data")
    up.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for health (default 300; 600 with --nodes 3)"
    )
    up.add_argument(
        "--nodes",
        type=int,
        choices=(1, 3),
        default=None,
        help="1: one Kafka broker and one Cassandra node (docker-compose.yml, the default); 3: three of each "
        "(with docker-compose.ha.yml: replication 3, min.insync.replicas 2, QUORUM)",
    )
    up.add_argument(
        "--spark-workers",
        type=_workers,
        default=None,
        metavar="N",
        help="Spark workers (default: the compose file's spark-worker-1 and -2)",
    )
    st = ss.add_parser(
        "status", help="each service's address, pid, version and health; each job's state, restarts, last exit code"
    )
    st.add_argument("--dir", type=Path, required=True)
    st.add_argument("--json", action="store_true", help="one JSON object on stdout")
    stop = ss.add_parser(
        "stop",
        help="stop services or jobs on purpose (a job's restart policy does not restart it), by their status names",
    )
    stop.add_argument("--dir", type=Path, required=True)
    stop.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before SIGKILL (default 60: the jobs' stop_grace_period)"
    )
    stop.add_argument("names", nargs="+", metavar="SERVICE", help="e.g. kafka, cassandra1, spark-worker-1, kappa-job")
    start = ss.add_parser(
        "start", help="start stopped services (waited for until healthy, as up does) or jobs (under their supervisor)"
    )
    start.add_argument("--dir", type=Path, required=True)
    start.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for health (default 300)")
    start.add_argument("names", nargs="+", metavar="SERVICE", help="e.g. kafka, cassandra1, spark-worker-1, kappa-job")
    dn = ss.add_parser("down", help="stop what `up` started (by pid); data kept unless --purge")
    dn.add_argument("--dir", type=Path, required=True)
    dn.add_argument("--purge", action="store_true", help="also remove the data, configuration and logs")


def _workers(text: str) -> int:
    """The start scripts' rule for --spark-workers (vendlab.orchestrate.WORKERS_ALLOWED), one place."""
    import argparse

    from vendlab.orchestrate import WORKERS_ALLOWED

    try:
        n = int(text)
    except ValueError:
        n = 0
    if n not in WORKERS_ALLOWED:
        raise argparse.ArgumentTypeError(
            f"{text!r}: allowed are {WORKERS_ALLOWED.start} to {WORKERS_ALLOWED.stop - 1} (the jobs take 2 cores, "
            "one per worker)"
        )
    return n


def run(args) -> int:
    from vendlab.localstack.composefile import ComposeError
    from vendlab.localstack.maven import ToolMissing
    from vendlab.localstack.stack import LocalStack, StackError

    try:
        if args.stack_command == "up":
            stack = LocalStack(args.dir, args.stack, nodes=args.nodes, spark_workers=args.spark_workers)
            status = stack.up(timeout=args.timeout or (600.0 if stack.nodes > 1 else 300.0))
            print_status(status)
            return 0
        if not (args.dir / "stack.json").exists():
            print(
                f"vendlab: no local stack in {args.dir} (no stack.json): start one with "
                f"`vendlab stack up --stack kappa|lambda --dir {args.dir}`",
                file=sys.stderr,
            )
            return 2
        stack = LocalStack(args.dir)
        if args.stack_command == "status":
            status = stack.status()
            if args.json:
                print(json.dumps(status))
            else:
                print_status(status)
            return 0 if all(s["healthy"] for s in status["services"].values()) else 1
        if args.stack_command in ("stop", "start"):
            getattr(stack, args.stack_command)(args.names, timeout=args.timeout)
            print_status(stack.status(), only=args.names)
            return 0
        stack.down(purge=args.purge)
        return 0
    except (StackError, ComposeError, ToolMissing) as e:
        print(f"vendlab: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # Maven could not resolve
        print(f"vendlab: {e}", file=sys.stderr)
        return 2


def print_status(status: dict, only: list[str] | None = None) -> None:
    """The status as text; ``only``: just those services and jobs (after stop/start), no environment."""
    if only is not None:
        status = {
            **status,
            "services": {n: s for n, s in status["services"].items() if n in only},
            "jobs": {n: j for n, j in (status.get("jobs") or {}).items() if n in only},
            "env": {},
        }
    print(f"{status['stack']} stack in {status['dir']}")
    for name, s in status["services"].items():
        state = "healthy" if s["healthy"] else "running, not healthy" if s["running"] else "stopped"
        print(f"  {name:16} {state:22} {s['address']:32} pid {s['pid'] or '-':<8} {s['version']}")
    jobs = status.get("jobs") or {}
    if jobs:
        from vendlab.localstack.supervise import describe_exit

        print("jobs (restarted by their compose service's restart policy):")
        for name, j in jobs.items():
            state = "running" if j["running"] and j["state"] == "running" else j["state"] or "?"
            print(
                f"  {name:16} {state:22} restart {j['restart']:<14} restarts {j['restarts']:<4} "
                f"last exit {describe_exit(j['last_exit_code']):<12} pid {j['pid'] or '-':<8} log {j['log']}"
            )
        lost = sorted(n for n, j in jobs.items() if j["state"] in ("orphaned", "killed", "unknown"))
        if lost:
            print(
                f"  ({', '.join(lost)}: the supervisor was killed and could not record the job's end. orphaned: "
                f"the job still runs and nothing restarts it (`vendlab stack stop --dir {status['dir']} NAME`, "
                f"then `start`, supervises it again); killed: the job is gone too (`start` starts it again); "
                f"unknown: cannot be told)"
            )
    env = status.get("env") or {}
    if env:
        print("client environment (export these to run vendlab produce/validate/job against it):")
        for k, v in env.items():
            print(f"  {k}={v}")
