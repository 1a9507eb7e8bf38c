"""``vendlab bench --profile local-stack``: kappa on Kafka + Cassandra next to embedded kappa.

Two sweeps at the same rates, durations and seed, in one run:

1. embedded kappa (files, SQLite, Spark local mode) in a benchmark worker, as the embedded bench's
   main sweep measures it (vendlab.bench.worker, warm-up included);
2. the cluster-mode kappa job on a local stack (vendlab.bench.stack_sweep): Kafka 4.1 (KRaft),
   Spark's Kafka source, Cassandra 5.0, the job submitted to the stack's Spark standalone master.

The embedded sweep runs first, before a stack is started (a stack given with --stack-dir idles
meanwhile, and its CPU shows as other programs'). Both are judged by vendlab.bench.measure.judge and
summarized by vendlab.bench.cli.summarize. The machine's 1-minute load average is sampled with every
point (the machine may be shared): the report states it.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path


def run_local_stack(args) -> int:
    import sys

    from vendlab.bench import plan as plans
    from vendlab.bench.cli import machine_info, run_worker, say, scratch_dir, summarize
    from vendlab.bench.plots import stack_plots
    from vendlab.bench.report import write_local_stack_report
    from vendlab.bench.stack_sweep import sweep as stack_sweep
    from vendlab.localstack.composefile import ComposeError
    from vendlab.localstack.maven import ToolMissing
    from vendlab.localstack.stack import LocalStack, StackError
    from vendlab.spark import check_java

    check_java()
    plan = plans.LOCAL_STACK_QUICK if args.quick else plans.LOCAL_STACK_FULL
    given = args.stack_dir
    if given is not None:
        problem = _check_stack(given)
        if problem:
            print(f"vendlab: {problem}", file=sys.stderr)
            return 2
    t_start = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work, tmp = scratch_dir(args.work_dir)
    stack = None
    load = {}
    try:
        sweep = plan["sweep"]
        say(
            f"local-stack {'quick' if args.quick else 'full'} run: embedded kappa, then kappa on a local stack "
            f"(Kafka + Cassandra), at {', '.join(f'{r:,.0f}' for r in sweep['rates'])} events/s for "
            f"{sweep['duration']:g} s each; scratch folder {work}"
        )
        load["start"] = _load()
        warm = [{"kind": "warmup", "events": plan["warmup"], "archs": ["kappa"]}] if plan["warmup"] else []
        spec = {
            **plan["main"],
            "work_dir": str(work / "embedded"),
            "seed": args.seed,
            "steps": warm + [{"kind": "sweep", "archs": ["kappa"], **sweep}],
        }
        embedded = run_worker(spec, work, "embedded")
        emb_points = embedded["steps"][-1]["result"]["kappa"]
        load["after_embedded"] = _load()

        if given is not None:
            stack = LocalStack(given)
            say(f"local stack: using the kappa stack in {given}")
        else:
            stack = LocalStack(work / "stack", "kappa")
            say(f"local stack: starting a kappa stack in {stack.dir} (logs in {stack.dir / 'logs'}) ...")
            stack.up(timeout=600)
        status = stack.status()
        t0 = time.time()
        stack_points = stack_sweep(stack, sweep["rates"], sweep["duration"], plan["stack_warmup_s"], args.seed, work)
        stack_seconds = round(time.time() - t0, 1)
        load["end"] = _load()

        top = max(sweep["rates"])
        doc = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "profile": "local-stack",
            "mode": "quick" if args.quick else "full",
            "machine": machine_info(),
            "plan": plan,
            "embedded": {
                **summarize("kappa", emb_points, top),
                "sweep": emb_points,
                "warmup_s": (embedded["steps"][0]["result"] or {}).get("seconds") if warm else None,
            },
            "local_stack": {
                **summarize("kappa", stack_points, top),
                "sweep": stack_points,
                "seconds": stack_seconds,
                "services": {
                    n: {"version": s["version"], "address": s["address"]} for n, s in status["services"].items()
                },
                "stack_dir": str(stack.dir),
                "started_here": given is None,
            },
            "load_average": load,
            "load1_during": {"embedded": _load_stats(emb_points), "local_stack": _load_stats(stack_points)},
        }
        doc["duration_s"] = round(time.time() - t_start, 1)
        doc["plots"] = stack_plots(doc, out)
        (out / "results.json").write_text(json.dumps(doc, indent=1))
        write_local_stack_report(doc, out / "report.md")
        say(
            f"done in {doc['duration_s']:.0f} s: {out / 'report.md'}, {out / 'results.json'}, {len(doc['plots'])} plots"
        )
        return 0
    except (StackError, ComposeError, ToolMissing) as e:
        print(f"vendlab: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # a job, the generator or the validation consumer failed: the message names its log
        print(f"vendlab: bench --profile local-stack failed: {e}", file=sys.stderr)
        return 1
    finally:
        if stack is not None and given is None:
            say("local stack: stopping it and removing its data")
            stack.down(purge=True)
        if tmp is not None:
            tmp.cleanup()


def _check_stack(d: Path) -> str | None:
    """Why the stack in ``d`` cannot be used (None: it can)."""
    from vendlab.localstack.stack import LocalStack, StackError

    hint = (
        f"start one with `vendlab stack up --stack kappa --dir {d}`, or leave --stack-dir out (the bench then "
        f"starts one for the run)"
    )
    if not (d / "stack.json").exists():
        return f"--stack-dir {d}: no local stack there (no stack.json); {hint}"
    try:
        stack = LocalStack(d)
    except StackError as e:
        return f"--stack-dir {d}: {e}"
    if stack.stack != "kappa":
        return f"--stack-dir {d} holds a {stack.stack} stack; the bench measures kappa: {hint}"
    down = [n for n, s in stack.status()["services"].items() if not s["healthy"]]
    if down:
        return f"--stack-dir {d}: not healthy: {', '.join(down)} (see {d / 'logs'}); {hint}"
    return None


def _load() -> dict:
    one, five, fifteen = os.getloadavg()
    return {
        "load1": round(one, 2),
        "load5": round(five, 2),
        "load15": round(fifteen, 2),
        "cores": os.cpu_count(),
        "at": datetime.now(UTC).strftime("%H:%M:%S"),
    }


def _load_stats(points: list[dict]) -> dict:
    xs = [s["load1"] for p in points for s in p["samples"] if "load1" in s]
    if not xs:
        return {"min": None, "mean": None, "max": None}
    return {"min": min(xs), "mean": round(sum(xs) / len(xs), 2), "max": max(xs)}
