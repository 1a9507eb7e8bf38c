"""The ``vendlab`` command line.

Exit codes: 0 done, 1 a run (or replay) that finished but is not exact or not drained, 2 a wrong
flag, value, environment or data dir (the message says what is wrong and what to do next), 3 a
run that is exact but not what was asked (its ``warnings`` say why: the generator fell behind its
schedule, a workload without sales), 130 interrupted (Ctrl-C or SIGTERM; ``--resume`` continues).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from vendlab import answer, architectures, cluster
from vendlab.bench import cli as bench_cli
from vendlab.cli_args import (
    MAX_DURATION,
    RATE_HELP,
    SCALE_HELP,
    SEED_HELP,
    batch_interval_type,
    check_time_per_event,
    data_dir_type,
    duration_type,
    events_type,
    fraction,
    number,
    rate_type,
    seed_type,
    segment_lines_type,
    time_scale_type,
)
from vendlab.config import BATCH_INTERVAL_S
from vendlab.dashboard import cli as dashboard_cli
from vendlab.localstack import cli as localstack_cli
from vendlab.project_venv import vendlab_command


def _add_run_flags(p: argparse.ArgumentParser, demo: bool = False) -> None:
    p.add_argument(
        "--data-dir",
        type=data_dir_type,
        required=not demo,
        default=None,
        help="folder for the log, views, checkpoints and manifest; one writer at a time (locked)"
        + (" (default: data/demo, emptied first)" if demo else ""),
    )
    p.add_argument(
        "--duration",
        type=duration_type,
        default=120.0 if demo else None,
        help=f"seconds of event generation, (0, {MAX_DURATION:,}]"
        + (" (default 120)" if demo else " (required unless --resume)"),
    )
    # The demo runs both architectures and the validation consumer at once: 5000/s is an eighth of what
    # lambda sustains alone on 2 cores (40,000 events/s, docs/results.md), so both stay well inside it.
    rate = 5_000 if demo else 20_000
    p.add_argument("--rate", type=rate_type, default=rate, help=f"{RATE_HELP} (default {rate})")
    p.add_argument("--seed", type=seed_type, default=1, help=SEED_HELP)
    # The demo shows dead letters and deduplication at work: 1 % of each by default (--bad-rate 0 --dup-rate 0
    # turns them off).
    bad = 0.01 if demo else 0.0
    p.add_argument(
        "--bad-rate",
        type=fraction,
        default=bad,
        help=f"fraction of malformed lines to inject, [0, 1) (default {bad:g}{'; 0 turns it off' if demo else ''})",
    )
    p.add_argument(
        "--dup-rate",
        type=fraction,
        default=bad,
        help=f"fraction of events delivered twice, [0, 1) (default {bad:g}{'; 0 turns it off' if demo else ''})",
    )
    p.add_argument("--time-scale", type=time_scale_type, default=60.0, help=SCALE_HELP)
    p.add_argument(
        "--batch-interval",
        type=batch_interval_type,
        default=BATCH_INTERVAL_S,
        help=f"lambda: seconds between batch runs, [0.1, 3600] (default {BATCH_INTERVAL_S:g})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    p.add_argument("--ui", action="store_true", help="keep Spark's web UI on (http://127.0.0.1:4040)")
    p.add_argument(
        "--no-warmup",
        action="store_true",
        help="start the clock on a cold JVM (by default every job first runs on throw-away events)",
    )


def build_parser() -> argparse.ArgumentParser:
    from vendlab.serving import view_names

    ap = argparse.ArgumentParser(prog="vendlab", description="Lambda vs kappa on a fleet of vending machines.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one architecture (plus validation) in embedded mode")
    run.add_argument("--arch", required=True, choices=architectures.names(), help=" or ".join(architectures.names()))
    _add_run_flags(run)
    run.add_argument(
        "--resume",
        action="store_true",
        help="restart the pipelines of an interrupted run from their checkpoints and drain its log",
    )

    demo = sub.add_parser("demo", help="both architectures side by side on the same events, then a comparison")
    _add_run_flags(demo, demo=True)
    demo.add_argument(
        "--port",
        type=number(int, lo=1, hi=65535, what="a TCP port"),
        default=8050,
        help="port of the dashboard on 127.0.0.1 (default 8050)",
    )
    demo.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")

    views = sub.add_parser(
        "views",
        help="print the current views of a data dir (items sold per product)",
        description="Items sold per product in each view of a data dir: "
        + ", ".join(view_names())
        + " (those present); each name means the same in every data dir.",
    )
    views.add_argument("--data-dir", type=data_dir_type, default=None, help="the data dir (embedded profile)")
    views.add_argument(
        "--profile",
        choices=("embedded", "compose"),
        default="embedded",
        help="compose: read Cassandra (VENDLAB_CASSANDRA/VENDLAB_KEYSPACE, or --stack-dir's)",
    )
    views.add_argument(
        "--stack-dir",
        type=Path,
        default=None,
        help="with --profile compose: the folder of `vendlab stack up`, whose Cassandra to read",
    )
    views.add_argument(
        "--job",
        action="append",
        metavar="NAME",
        help="print the view of this job instead (e.g. kappa_v2, a kappa replay); repeatable",
    )
    views.add_argument(
        "--json", action="store_true", help="print one JSON object: {view or job name: {product: items}}"
    )

    gen = sub.add_parser("generate", help="write events into a log folder as fast as possible")
    gen.add_argument("--data-dir", type=data_dir_type, required=True)
    gen.add_argument("--events", type=events_type, required=True, help="events to write, 1..1,000,000,000")
    gen.add_argument("--seed", type=seed_type, default=1, help=SEED_HELP)
    gen.add_argument(
        "--rate",
        type=rate_type,
        default=20_000,
        help=f"nominal events/s, sets the simulated time between events: {RATE_HELP} (default 20000)",
    )
    gen.add_argument("--bad-rate", type=fraction, default=0.0, help="fraction of malformed lines, [0, 1)")
    gen.add_argument("--dup-rate", type=fraction, default=0.0, help="fraction of events delivered twice, [0, 1)")
    gen.add_argument("--time-scale", type=time_scale_type, default=60.0, help=SCALE_HELP)
    gen.add_argument(
        "--segment-lines",
        type=segment_lines_type,
        default=100_000,
        help="lines per log segment (and per chunk in memory), 1..1,000,000 (default 100000)",
    )

    rep = sub.add_parser(
        "replay",
        help="kappa's reprocessing: rebuild the views from the log into a new view version, check it, report events/s",
    )
    rep.add_argument(
        "--data-dir", type=data_dir_type, required=True, help="a data dir written by vendlab run, demo or generate"
    )
    rep.add_argument(
        "--json",
        action="store_true",
        help="one JSON object on stdout: events, seconds, replay_eps, exact, version, ...",
    )
    rep.add_argument(
        "--replace",
        action="store_true",
        help="make the rebuilt version the served view (what views, answer, dashboard and run --resume "
        "use), and rebuild lambda's master dataset and views if the data dir has them: the "
        "repair for checkpoints and a store that disagree",
    )
    for ext in EXTENSIONS:
        ext.add_commands(sub)
    return ap


# Command groups that live in their own modules: each has COMMANDS, add_commands(subparsers) and
# run(args) -> exit code, and handles the commands it added.
EXTENSIONS = (cluster, dashboard_cli, bench_cli, answer, localstack_cli)

# Each command imports what it runs (the runner, the jobs, the stores...) inside its function: the
# parser and the other commands do not load it.


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to fd 1 (the JVM's and libraries' chatter included) to stderr,
    and yield a writer for the real stdout, so --json prints exactly one object there."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(os.dup(saved), "w")
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        real.flush()
        real.close()


def cmd_run(args, archs: list[str], data_dir: Path) -> int:
    from vendlab.config import embedded
    from vendlab.run_summary import format_comparison
    from vendlab.runner import Runner, RunSettings
    from vendlab.warmup import WARMUP_EVENTS

    resume = getattr(args, "resume", False)
    dashboard = None if args.command != "demo" or args.no_dashboard else args.port
    # An interactive demo leaves the dashboard up after the comparison, until Ctrl-C.
    keep = dashboard is not None and not args.json and sys.stdin.isatty()
    settings = RunSettings(
        duration=args.duration,
        rate=args.rate,
        seed=args.seed,
        bad_rate=args.bad_rate,
        dup_rate=args.dup_rate,
        time_scale=args.time_scale,
        batch_interval=args.batch_interval,
        ui=args.ui,
        dashboard_port=dashboard,
        keep_dashboard=keep,
        warmup_events=0 if args.no_warmup else WARMUP_EVENTS,
    )
    runner = Runner(embedded(data_dir), archs, settings, resume=resume)
    with stdout_to_stderr() as out:
        result = runner.run()
        doc = result[archs[0]] if args.command == "run" else result
        if args.json:
            out.write(json.dumps(doc) + "\n")
        else:
            out.write(format_comparison(result) + "\n")
            out.write(
                f"\nviews: vendlab views --data-dir {data_dir};  dashboard: vendlab dashboard --data-dir {data_dir}\n"
            )
    ok = all(r["exact"] for r in result.values())
    warned = any(r.get("warnings") for r in result.values())
    if keep and runner.dashboard_stop is not None:
        print(
            f"\nvendlab: the dashboard stays on {runner.dashboard_url} (reading {data_dir}); press Ctrl-C to stop it",
            file=sys.stderr,
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            runner.dashboard_stop()
    return 1 if not ok else 3 if warned else 0


def cmd_views(args) -> int:
    import sqlite3

    from vendlab.datadir import processed_checkpoints, rebuild_command
    from vendlab.serving import UnknownJob, current_views

    if args.profile == "compose":
        return cmd_views_compose(args)
    d = args.data_dir
    if d is None:
        print("vendlab: views needs --data-dir DIR (embedded), or --profile compose [--stack-dir DIR]", file=sys.stderr)
        return 2
    if not (d / "views.sqlite").exists():
        if processed_checkpoints(d):
            print(
                f"vendlab: {d} has checkpoints that processed its log but no views.sqlite (the view store was "
                f"deleted or moved away): rebuild the views from the log with `{rebuild_command(d)}`",
                file=sys.stderr,
            )
        else:
            print(
                f"vendlab: no views in {d} (no views.sqlite): run `vendlab run` or `vendlab demo` "
                f"with --data-dir {d} first",
                file=sys.stderr,
            )
        return 2
    try:
        views = current_views(d, jobs=args.job)
        missing = [q for q in processed_checkpoints(d) if q in stream_jobs() and not applied_batches(d, q)]
    except UnknownJob as e:
        print(f"vendlab: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:
        print(f"vendlab: the view store {d / 'views.sqlite'} cannot be read ({e}); {store_hint(e, d)}", file=sys.stderr)
        return 2
    if missing:
        print(
            f"vendlab: the view store of {d} holds nothing of {', '.join(missing)}, whose checkpoints have processed "
            f"the log (the store was deleted or replaced): its views would read 0. Rebuild them from the log with "
            f"`{rebuild_command(d)}`",
            file=sys.stderr,
        )
        return 2
    return print_views(views, args.json)


def print_views(views: dict, as_json: bool) -> int:
    from vendlab.answer import write_stdout

    if as_json:
        return write_stdout(json.dumps(views))
    width = max(map(len, views), default=0)
    return write_stdout(
        "\n".join(f"{name:>{width}}: " + ", ".join(f"{k}={n}" for k, n in v.items()) for name, v in views.items())
    )


def stream_jobs() -> list[str]:
    """The view jobs whose rows views.sqlite must hold (vendlab.architectures)."""
    return [j.store_job for _, j in architectures.all_jobs() if j.kind == architectures.VIEW]


def applied_batches(d: Path, job: str) -> bool:
    from vendlab.store.sqlite import SqliteStore

    store = SqliteStore(d / "views.sqlite", readonly=True)
    try:
        return store.last_batch_id(job) >= 0
    finally:
        store.close()


def cmd_views_compose(args) -> int:
    """The views in Cassandra: a local stack's (--stack-dir) or the one VENDLAB_CASSANDRA names."""
    from vendlab.serving import views_of

    env = dict(os.environ)
    if args.stack_dir is not None:
        from vendlab.localstack.stack import LocalStack, StackError

        try:
            env.update(LocalStack(args.stack_dir).env())
        except StackError as e:
            print(f"vendlab: {e}", file=sys.stderr)
            return 2
    hosts = env.get("VENDLAB_CASSANDRA", "cassandra1")
    keyspace = env.get("VENDLAB_KEYSPACE", "vendlab")
    try:
        from vendlab.store.cassandra import CassandraStore

        store = CassandraStore(tuple(hosts.split(",")), keyspace)
    except Exception as e:  # no host, no keyspace
        where = f"the local stack in {args.stack_dir}" if args.stack_dir else f"VENDLAB_CASSANDRA={hosts}"
        print(
            f"vendlab: cannot read keyspace {keyspace!r} on Cassandra at {hosts} ({where}): "
            f"{str(e)[:200]}. Start it with `{vendlab_command()} stack up --stack kappa|lambda --dir DIR` "
            f"(or the compose stack), and its jobs",
            file=sys.stderr,
        )
        return 2
    try:
        views = views_of(store)
    finally:
        store.close()
    return print_views(views, args.json)


def cmd_generate(args) -> int:
    from vendlab import datadir
    from vendlab.eventlog import list_segments
    from vendlab.finished_log import write_log
    from vendlab.world.catalog import make_catalog
    from vendlab.world.generator import Generator

    d = args.data_dir
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise datadir.DataDirError(
            f"cannot create the data dir {d} ({e.strerror}); choose a writable --data-dir"
        ) from None
    with datadir.hold(d, "vendlab generate"):
        if list_segments(d / "log"):
            raise datadir.DataDirError(f"data dir {d} already holds a log; use a new --data-dir or remove this one")
        datadir.relocate(d)
        gen = Generator(
            make_catalog(args.seed),
            args.seed,
            args.rate,
            args.time_scale,
            bad_rate=args.bad_rate,
            dup_rate=args.dup_rate,
        )

        def progress(done: int, total: int) -> None:
            print(f"\rgenerated {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

        t0 = time.monotonic()
        log = write_log(d, gen, args.events, args.segment_lines, progress=progress)
        seconds = time.monotonic() - t0
    print(
        f"\nwrote {log.writer.segments_written} segments to {d / 'log'}: {args.events:,} events in {seconds:.2f} s, "
        f"{args.events / max(seconds, 1e-9):,.0f} events/s",
        file=sys.stderr,
    )
    if not gen.manifest.sales:
        print(
            "vendlab: WARNING: the log has no valid sales (simulated time per event, --time-scale / --rate, is "
            "too fine for the fleet to sell): keep --time-scale near its default 60",
            file=sys.stderr,
        )
        return 3
    return 0


def cmd_replay(args) -> int:
    from vendlab import datadir
    from vendlab.config import embedded
    from vendlab.eventlog import list_segments
    from vendlab.replay import run_replay
    from vendlab.spark import check_java

    d = args.data_dir
    if not d.is_dir():
        raise datadir.DataDirError(
            f"no data dir {d} (no such folder): give the folder of a run or of `vendlab generate`"
        )
    if not (d / "catalog.json").exists() or not list_segments(d / "log"):
        raise datadir.DataDirError(
            f"{d} holds no log to replay (no catalog.json or no log segments): give the "
            f"folder of a run or of `vendlab generate`"
        )
    check_java()
    profile = embedded(d)
    with datadir.hold(profile.data_dir, "vendlab replay" + (" --replace" if args.replace else "")):
        datadir.relocate(profile.data_dir)
        with stdout_to_stderr() as out:
            doc = run_replay(profile, replace=args.replace)
            if args.json:
                out.write(json.dumps(doc) + "\n")
            else:
                out.write(
                    f"replayed {doc['events']:,} events into view version {doc['version']} ({doc['job']}) in "
                    f"{doc['seconds']:.1f} s: {doc['replay_eps']:,.0f} events/s\n"
                    f"items {doc['items']:,} (manifest {doc['expected_items']:,}); matches the manifest: "
                    f"{'yes' if doc['matches_manifest'] else 'NO'}; matches the validation view: "
                    f"{ {True: 'yes', False: 'NO', None: '- (it has not read the whole log)'}[doc['matches_validation']] }\n"
                )
                if "lambda" in doc:
                    out.write(
                        f"lambda rebuilt: master dataset, speed view, batch view v{doc['lambda']['batch_version']}"
                        f" ({doc['lambda']['seconds']:.1f} s); serving matches the manifest: "
                        f"{'yes' if doc['lambda']['exact'] else 'NO'}\n"
                    )
                out.write(
                    f"EXACT: {'yes' if doc['exact'] else 'NO'}"
                    + ("; now served as kappa's view" if doc["replaced"] else "")
                    + "\n"
                )
    if args.replace and not doc["exact"]:
        print(
            "vendlab: the rebuilt view is not exact, so it was not made the served view; nothing else changed "
            "in kappa's views",
            file=sys.stderr,
        )
    return 0 if doc["exact"] else 1


def store_hint(e: Exception, d: Path) -> str:
    """The next step for a view store SQLite cannot use."""
    from vendlab.datadir import rebuild_command

    m = str(e).lower()
    if "unable to open" in m or "readonly" in m or "read-only" in m:
        return (
            f"SQLite in WAL mode must write {d / 'views.sqlite-shm'} even to read: if the folder is read-only "
            f"(a read-only copy or mount), copy the data dir somewhere writable and read that copy"
        )
    if "locked" in m:
        return "another process holds the store's write lock: try again in a moment"
    return f"if it is damaged, rebuild it from the log: `{rebuild_command(d)}`"


def _sigterm(signum, frame):
    raise KeyboardInterrupt  # stopped like Ctrl-C: queries, JVM, then the --resume hint


def _resume_hint(args) -> str:
    d = getattr(args, "data_dir", None)
    if args.command == "run":
        return f"; continue with `vendlab run --arch {args.arch} --data-dir {d} --resume`"
    if args.command == "demo":
        d = d or Path("data/demo")
        return (
            f"; continue with `vendlab run --arch kappa --data-dir {d} --resume` (and --arch lambda, "
            f"one after the other)"
        )
    if args.command == "replay":
        return f"; run `vendlab replay --data-dir {d}{' --replace' if args.replace else ''}` again"
    return ""


def _os_error(e: OSError, args) -> str:
    d = getattr(args, "data_dir", None)
    where = f" ({e.filename})" if e.filename else ""
    if e.errno == errno.ENOSPC:
        nxt = "free some space on that disk" + (
            _resume_hint(args) if args.command in ("run", "demo") else ", then run the command again"
        )
        return f"the disk is full{where}: nothing half-written is kept as complete; {nxt}"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where}: {e.strerror}; choose a writable --data-dir (now {d})"
    if e.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"{e.strerror}{where}: --data-dir must be a folder (or a path where one can be made), not a file"
    return f"{e.strerror or e}{where}: check the disk and --data-dir ({d})"


def main(argv: list[str] | None = None) -> int:
    import sqlite3

    from vendlab.architectures import PipelineFailed
    from vendlab.dashboard.server import DashboardError
    from vendlab.datadir import DataDirError
    from vendlab.runner import RunError
    from vendlab.spark import JavaMissing
    from vendlab.store.sqlite import StoreUnavailable

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and args.duration is None and not args.resume:
        parser.error("argument --duration is required (seconds of event generation), unless --resume")
    if args.command in ("run", "demo", "generate"):
        check_time_per_event(parser, args)
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        if args.command == "run":
            return cmd_run(args, [args.arch], args.data_dir)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "views":
            return cmd_views(args)
        if args.command == "generate":
            return cmd_generate(args)
        if args.command == "replay":
            return cmd_replay(args)
        for ext in EXTENSIONS:
            if args.command in getattr(ext, "COMMANDS", ()):
                return ext.run(args)
    except (RunError, JavaMissing, DashboardError, DataDirError, StoreUnavailable) as e:
        print(f"vendlab: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"vendlab: {_os_error(e, args)}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:
        d = getattr(args, "data_dir", None)
        print(
            f"vendlab: the view store{' in ' + str(d) if d else ''} failed: {e}; {store_hint(e, d or Path('DIR'))}",
            file=sys.stderr,
        )
        return 2
    except PipelineFailed as e:
        if "No space left on device" not in str(e):
            raise  # not the user's doing: the trace is for us
        print(
            f"vendlab: the disk is full (a Spark query could not write): free some space{_resume_hint(args)}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            "vendlab: interrupted; every query and the JVM were stopped, processed data is kept" + _resume_hint(args),
            file=sys.stderr,
        )
        return 130
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    return 2


def cmd_demo(args) -> int:
    from vendlab import datadir
    from vendlab.runner import empty_dir

    data_dir = args.data_dir or Path("data/demo")
    if args.data_dir is not None:
        return cmd_run(args, list(architectures.names()), data_dir)
    # The demo's own default folder starts clean each time, under its lock (a demo running there
    # is refused, not emptied under its feet).
    data_dir.mkdir(parents=True, exist_ok=True)
    with datadir.hold(data_dir, "vendlab demo"):
        empty_dir(data_dir)
        return cmd_run(args, list(architectures.names()), data_dir)


if __name__ == "__main__":
    sys.exit(main())
