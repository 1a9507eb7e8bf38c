"""Where a micro-batch's time goes, from Spark's own metrics and the sink's timings.

Spark reports each micro-batch's ``durationMs`` (``StreamingQueryProgress``): ``latestOffset``
(the source lists what is new), ``getBatch`` (the source plans the batch's input),
``queryPlanning`` (the incremental plan), ``addBatch`` (the sink: here the Python
``foreachBatch`` callback), ``walCommit`` (the offset log entry written before the batch runs),
``commitOffsets`` (the commit log entry written after it) and ``triggerExecution`` (all of it).
The view jobs' sink (``vendlab.jobs.streaming.BatchSink``) splits ``addBatch`` further: the Spark
plan up to the collected view rows (the deduplication's state store included: its commit, from
the progress's ``stateOperators``, is shown apart) and the store write; what is left of
``addBatch`` is the callback's round trip (py4j: Spark calling Python and back).

    python -m vendlab.bench.timeparts --arch kappa --rate 5000 --duration 30 --data-dir DIR

runs one live run (as ``vendlab run``: warm-up, validation) and prints the table, with the
event-to-view latency; ``--conf key=value`` sets a Spark setting for that run (to measure one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from vendlab import architectures

# The rows of the table: (key, label); "addBatch" parts are indented under it.
PARTS = (
    ("latestOffset", "latestOffset (source lists new input)"),
    ("getBatch", "getBatch (source plans the input)"),
    ("queryPlanning", "queryPlanning (incremental plan)"),
    ("walCommit", "walCommit (offset log)"),
    ("addBatch", "addBatch (the foreachBatch sink)"),
    ("plan", "  Spark plan + collect (parse, dedup, views)"),
    ("state_commit", "    of which state store commit"),
    ("store", "  store write (apply_batch)"),
    ("callback", "  callback round trip (py4j, Python)"),
    ("commitOffsets", "commitOffsets (commit log)"),
    ("other", "other (trigger bookkeeping)"),
    ("triggerExecution", "micro-batch total (triggerExecution)"),
)
SPARK_PARTS = ("latestOffset", "getBatch", "queryPlanning", "walCommit", "addBatch", "commitOffsets")


def batch_parts(batch: dict, sink: tuple | None) -> dict:
    """One micro-batch's parts in ms (``batch``: a progress as the bench's Sampler keeps it;
    ``sink``: its (batch_id, plan_s, store_s) from the sink's timings, if any)."""
    d = batch.get("duration_ms") or {}
    out = {k: float(d.get(k, 0.0)) for k in SPARK_PARTS}
    total = float(d.get("triggerExecution", 0.0))
    out["triggerExecution"] = total
    out["other"] = max(0.0, total - sum(out[k] for k in SPARK_PARTS))
    out["state_commit"] = float(sum(s.get("commitTimeMs", 0) or 0 for s in batch.get("state", [])))
    if sink is not None:
        out["plan"], out["store"] = sink[1] * 1000, sink[2] * 1000
        out["callback"] = max(0.0, out["addBatch"] - out["plan"] - out["store"])
    return out


def table(batches: list[dict], sink_timings: list[tuple] | None = None, skip_first: int = 1) -> dict:
    """The parts over a run's micro-batches that read input (the first ``skip_first`` left out: a
    cold plan): {"batches", "rows_per_batch", "parts": {key: {"mean_ms", "p50_ms", "share"}}}."""
    sinks = {s[0]: s for s in sink_timings or []}
    busy = [b for b in batches if b.get("rows", 0) > 0]
    busy = busy[skip_first:] if len(busy) > skip_first + 1 else busy
    rows = [batch_parts(b, sinks.get(b["batch"])) for b in busy]
    if not rows:
        return {"batches": 0, "rows_per_batch": None, "parts": {}}
    total = float(np.mean([r["triggerExecution"] for r in rows])) or 1.0
    parts = {}
    for key, _ in PARTS:
        vals = [r[key] for r in rows if key in r]
        if vals:
            m = float(np.mean(vals))
            parts[key] = {
                "mean_ms": round(m, 1),
                "p50_ms": round(float(np.median(vals)), 1),
                "share": round(m / total, 3),
            }
    return {"batches": len(rows), "rows_per_batch": round(float(np.mean([b["rows"] for b in busy])), 1), "parts": parts}


def markdown(columns: dict[str, dict]) -> list[str]:
    """A markdown table, one column per named ``table`` result (e.g. kappa, lambda speed)."""
    names = list(columns)
    out = [
        "| part of a micro-batch | " + " | ".join(f"{n} mean ms (share)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label in PARTS:
        cells = []
        for n in names:
            p = columns[n]["parts"].get(key)
            cells.append("-" if p is None else f"{p['mean_ms']:,.0f} ({p['share'] * 100:.0f}%)")
        if any(c != "-" for c in cells):
            out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append(
        "| micro-batches measured / rows per batch | "
        + " | ".join(f"{columns[n]['batches']} / {columns[n]['rows_per_batch'] or 0:,.0f}" for n in names)
        + " |"
    )
    return out


def report_section(sweep: dict) -> list[str]:
    """The bench report's "where the time goes" section: for each architecture's view job, the
    lowest rate of the sweep (a micro-batch's fixed cost) and the highest rate it sustained."""
    cols = {}
    for a in architectures.ARCHITECTURES:
        arch = a.name
        points = [p for p in sweep.get(arch, []) if p.get("time_parts", {}).get("batches")]
        if not points:
            continue
        ok = [p for p in points if p.get("sustainable")]
        for p in dict.fromkeys([points[0]["rate"]] + ([ok[-1]["rate"]] if ok else [])):
            point = next(x for x in points if x["rate"] == p)
            cols[f"{a.latency_label} @ {p:,.0f}/s"] = point["time_parts"]
    if not cols:
        return []
    return [
        "## Where the time goes\n",
        "Each part of a micro-batch of the view jobs in the rate sweep (mean over the micro-batches that read "
        "input, the first left out): Spark's own `durationMs` of each `StreamingQueryProgress`, `addBatch` "
        "split by the sink's timings, the state store's commit from the progress's `stateOperators`. At the "
        "lowest rate a micro-batch holds few lines, so what it costs there is its fixed cost. Before/after "
        "numbers of each change: docs/history/results-2026-11.md.\n",
        *markdown(cols),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vendlab.bench.timeparts", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=architectures.names(), required=True)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument(
        "--batch-interval",
        type=float,
        default=20.0,
        help="lambda: seconds between batch runs (default 20, as vendlab run)",
    )
    ap.add_argument("--no-validation", action="store_true")
    ap.add_argument("--conf", action="append", default=[], help="a Spark setting key=value for this run")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    conf = dict(c.split("=", 1) for c in args.conf)

    from vendlab.bench.measure import Sampler
    from vendlab.bench.worker import query_jobs, sink_timings
    from vendlab.config import embedded
    from vendlab.runner import Runner, RunSettings
    from vendlab.warmup import WARMUP_EVENTS

    d = Path(args.data_dir)
    settings = RunSettings(
        duration=args.duration,
        rate=args.rate,
        validation=not args.no_validation,
        batch_interval=args.batch_interval,
        warmup_events=WARMUP_EVENTS,
    )
    runner = Runner(embedded(d, spark_conf=conf), [args.arch], settings, progress=sys.stderr)
    holder = {}

    def on_start(r):
        holder["s"] = s = Sampler(r)
        s.start()

    runner.on_start, runner.on_stop = on_start, lambda r: holder["s"].stop()
    res = runner.run()[args.arch]
    s = holder["s"]
    query = query_jobs()[args.arch]
    out = {
        "arch": args.arch,
        "rate": args.rate,
        "duration": args.duration,
        "conf": conf,
        "latency_ms": res["latency_ms"],
        "exact": res["exact"],
        "warmup_s": res["warmup_s"],
        "load_avg": os.getloadavg(),
        "parts": {q: table(s.batches(q), list(sink_timings().get(q, []))) for q in s.progress},
    }
    print(
        f"{args.arch} at {args.rate:,.0f} events/s: latency p50/p95/p99 {res['latency_ms']} ms, exact "
        f"{res['exact']}, load {out['load_avg']}"
    )
    print("\n".join(markdown({q: out["parts"][q] for q in (query, *[k for k in out["parts"] if k != query])})))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0 if res["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
