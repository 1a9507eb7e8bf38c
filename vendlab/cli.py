"""The ``vendlab`` command line.

Exit codes: 0 done, 1 a run that finished but is not exact or not drained, 2 a wrong flag,
value or environment (the message says what is wrong and what is allowed), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from pathlib import Path

from vendlab.pipelines import ARCHS


def _number(kind, lo=None, lo_open=False, hi=None, hi_open=False, what="value"):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise argparse.ArgumentTypeError(f"{text} is too small: {what} must be {'>' if lo_open else '>='} {lo}")
        if hi is not None and (v >= hi if hi_open else v > hi):
            raise argparse.ArgumentTypeError(f"{text} is too large: {what} must be {'<' if hi_open else '<='} {hi}")
        return v
    return parse


positive = _number(float, lo=0, lo_open=True, what="it")
fraction = _number(float, lo=0, hi=1, hi_open=True, what="a fraction in [0, 1)")
seed_type = _number(int, lo=0, what="a seed")


def _add_run_flags(p: argparse.ArgumentParser, demo: bool = False) -> None:
    p.add_argument("--data-dir", type=Path, required=not demo, default=None,
                   help="folder for the log, views, checkpoints and manifest" + (
                       " (default: data/demo, emptied first)" if demo else ""))
    p.add_argument("--duration", type=positive, default=120.0 if demo else None,
                   help="seconds of event generation" + (" (default 120)" if demo else " (required unless --resume)"))
    # The demo runs both architectures and the validation consumer at once: 5000/s is half of what
    # lambda sustains alone on 2 cores (docs/results.md).
    rate = 5_000 if demo else 20_000
    p.add_argument("--rate", type=positive, default=rate, help=f"events per second (default {rate})")
    p.add_argument("--seed", type=seed_type, default=1, help="seed of the fleet and the events (default 1)")
    p.add_argument("--bad-rate", type=fraction, default=0.0, help="fraction of malformed lines to inject")
    p.add_argument("--dup-rate", type=fraction, default=0.0, help="fraction of events delivered twice")
    p.add_argument("--time-scale", type=positive, default=60.0,
                   help="simulated seconds per wall second (default 60: a minute of machine life per second)")
    p.add_argument("--batch-interval", type=positive, default=20.0,
                   help="lambda: seconds between batch runs (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    p.add_argument("--ui", action="store_true", help="keep Spark's web UI on (http://127.0.0.1:4040)")
    p.add_argument("--no-warmup", action="store_true",
                   help="start the clock on a cold JVM (by default every job first runs on throw-away events)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vendlab", description="Lambda vs kappa on a fleet of vending machines.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one architecture (plus validation) in embedded mode")
    run.add_argument("--arch", required=True, choices=ARCHS, help="kappa or lambda")
    _add_run_flags(run)
    run.add_argument("--resume", action="store_true",
                     help="restart the pipelines of an interrupted run from their checkpoints and drain its log")

    demo = sub.add_parser("demo", help="both architectures side by side on the same events, then a comparison")
    _add_run_flags(demo, demo=True)
    demo.add_argument("--port", type=_number(int, lo=1, hi=65535, what="a TCP port"), default=8050,
                      help="port of the dashboard on 127.0.0.1 (default 8050)")
    demo.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")

    views = sub.add_parser("views", help="print the current views of a data dir")
    views.add_argument("--data-dir", type=Path, required=True)
    views.add_argument("--json", action="store_true")

    gen = sub.add_parser("generate", help="write events into a log folder as fast as possible")
    gen.add_argument("--data-dir", type=Path, required=True)
    gen.add_argument("--events", type=_number(int, lo=1, what="the number of events"), required=True)
    gen.add_argument("--seed", type=seed_type, default=1)
    gen.add_argument("--rate", type=positive, default=20_000,
                     help="nominal events/s, sets the simulated time between events (default 20000)")
    gen.add_argument("--bad-rate", type=fraction, default=0.0)
    gen.add_argument("--dup-rate", type=fraction, default=0.0)
    gen.add_argument("--time-scale", type=positive, default=60.0)
    gen.add_argument("--segment-lines", type=_number(int, lo=1, what="lines per segment"), default=100_000)
    for ext in _extensions():
        ext.add_commands(sub)
    return ap


# Command groups that live in their own modules: each has add_commands(subparsers) and
# run(args) -> exit code, and handles the commands it added.
EXTENSION_MODULES = ("vendlab.cluster", "vendlab.dashboard.cli", "vendlab.bench.cli", "vendlab.answer")


def _extensions():
    import importlib

    mods = []
    for name in EXTENSION_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                raise  # a real missing dependency inside the module: say so
    return mods


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
    from vendlab.report import format_comparison
    from vendlab.runner import Runner, RunSettings
    from vendlab.warmup import WARMUP_EVENTS

    resume = getattr(args, "resume", False)
    dashboard = None if args.command != "demo" or args.no_dashboard else args.port
    # An interactive demo leaves the dashboard up after the comparison, until Ctrl-C.
    keep = dashboard is not None and not args.json and sys.stdin.isatty()
    settings = RunSettings(duration=args.duration, rate=args.rate, seed=args.seed, bad_rate=args.bad_rate,
                           dup_rate=args.dup_rate, time_scale=args.time_scale, batch_interval=args.batch_interval,
                           ui=args.ui, dashboard_port=dashboard, keep_dashboard=keep,
                           warmup_events=0 if args.no_warmup else WARMUP_EVENTS)
    runner = Runner(embedded(data_dir), archs, settings, resume=resume)
    with stdout_to_stderr() as out:
        result = runner.run()
        doc = result[archs[0]] if args.command == "run" else result
        if args.json:
            out.write(json.dumps(doc) + "\n")
        else:
            out.write(format_comparison(result) + "\n")
            out.write(f"\nviews: vendlab views --data-dir {data_dir};  "
                      f"dashboard: vendlab dashboard --data-dir {data_dir}\n")
    ok = all(r["exact"] for r in result.values())
    if keep and runner.dashboard_stop is not None:
        print(f"\nvendlab: the dashboard stays on {runner.dashboard_url} (reading {data_dir}); "
              f"press Ctrl-C to stop it", file=sys.stderr, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            runner.dashboard_stop()
    return 0 if ok else 1


def cmd_views(args) -> int:
    from vendlab.serving import current_views

    if not (args.data_dir / "views.sqlite").exists():
        print(f"vendlab: no views in {args.data_dir} (no views.sqlite): run `vendlab run` or `vendlab demo` "
              f"with --data-dir {args.data_dir} first", file=sys.stderr)
        return 2
    views = current_views(args.data_dir)
    if args.json:
        print(json.dumps(views))
    else:
        for name, v in views.items():
            print(f"{name:>10}: " + ", ".join(f"{k}={n}" for k, n in v.items()))
    return 0


def cmd_generate(args) -> int:
    from vendlab.catalog import make_catalog
    from vendlab.eventlog import SegmentWriter
    from vendlab.generator import Generator

    args.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog(args.seed)
    catalog.save(args.data_dir / "catalog.json")
    gen = Generator(catalog, args.seed, args.rate, args.time_scale, bad_rate=args.bad_rate, dup_rate=args.dup_rate)
    writer = SegmentWriter(args.data_dir / "log", roll_seconds=1e9, roll_lines=args.segment_lines, fsync=False)
    left = args.events
    while left > 0:
        n = min(left, args.segment_lines)
        c = gen.take(n)
        writer.append(c.data, c.lines, c.first_ms)
        left -= n
        print(f"\rgenerated {args.events - left:,}/{args.events:,}", end="", file=sys.stderr, flush=True)
    writer.close()
    gen.manifest.complete = True
    gen.manifest.save(args.data_dir / "manifest.json")
    print(f"\nwrote {writer.segments_written} segments to {args.data_dir / 'log'}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from vendlab.dashboard.server import DashboardError
    from vendlab.runner import RunError
    from vendlab.spark import JavaMissing

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and args.duration is None and not args.resume:
        parser.error("argument --duration is required (seconds of event generation), unless --resume")
    try:
        if args.command == "run":
            return cmd_run(args, [args.arch], args.data_dir)
        if args.command == "demo":
            from vendlab.runner import reset_dir

            data_dir = args.data_dir or Path("data/demo")
            if args.data_dir is None:
                reset_dir(data_dir)  # the demo's own default folder starts clean each time
            return cmd_run(args, ["kappa", "lambda"], data_dir)
        if args.command == "views":
            return cmd_views(args)
        if args.command == "generate":
            return cmd_generate(args)
        for ext in _extensions():
            if args.command in getattr(ext, "COMMANDS", ()):
                return ext.run(args)
    except (RunError, JavaMissing, DashboardError) as e:
        print(f"vendlab: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vendlab: interrupted; every query and the JVM were stopped, processed data is kept",
              file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
