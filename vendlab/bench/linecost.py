"""Where a replayed line's cost goes: kappa's streaming plan cut after each of its steps.

Each cut is a new ``availableNow`` streaming query over the same log, in the same JVM, that ends in
Spark's own ``noop`` sink (it runs the plan and writes nothing); the last cut is the replay itself
(``jobs.streaming.start_view_job``: the sums, the collect, the roll-up and the store write). The
JVM's CPU time of each cut, per event, minus the cut before it, is what that step costs per line:

* ``scan``: the file source reading the lines (the log envelope);
* ``contract``: ``jobs.parse.parse``, the JSON parse and every check of the contract;
* ``dedup``: the streaming deduplication with its state store;
* ``views``: every row as its fine entries (``ViewPlan.fine``);
* ``sink``: summing them, collecting, the roll-up in Python and the store write.

The bench runs it after Spark's floor on the replay log (``Worker.line_cost``), so the report can set
each step beside what plain Spark spends on the whole central view.

    python -m vendlab.bench.linecost LOG_DIR [--rounds N]

prints the profile of a log written by ``vendlab generate`` (or by the bench).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

STEPS = ("scan", "contract", "dedup", "views", "sink")
LABELS = {
    "scan": "read the lines (file source, log envelope)",
    "contract": "the contract (JSON parse, every check, dead-letter reasons)",
    "dedup": "deduplication (streaming state store)",
    "views": "fine entries of every view",
    "sink": "sums, collect, roll-up, store write",
}


def _cut(spark, profile, catalog, step: str):
    """The replay's streaming plan up to ``step`` (not ``sink``: that is the replay itself); the
    deduplicated and the fine streams are the view job's own (``jobs.streaming``)."""
    from vendlab.jobs import parse, sources, streaming

    if step == "scan":
        return sources.read_log_stream(spark, profile)
    if step == "contract":
        raw = sources.read_log_stream(spark, profile)
        return parse.parse(raw, sorted(catalog.machine_ids), sorted(catalog.product_names))
    if step == "dedup":
        return streaming.parsed_stream(spark, profile, catalog)
    return streaming.fine_stream(spark, profile, catalog, None)


def _cpu(jvm) -> float:
    t = jvm.cpu_times()
    return t.user + t.system


def run_line_cost(spark, profile, catalog, store, events: int, jvm, rounds: int = 3, log=None) -> dict:
    """JVM CPU per event of each cut of the replay plan over ``profile``'s log (``rounds`` interleaved
    rounds, the lowest kept), and each step's part of it; the last cut is ``vendlab replay``'s code
    (``replay.replay_view``) into ``store``."""
    from vendlab.jobs import sources
    from vendlab.replay import _wait, replay_view

    runs: dict[str, list[dict]] = {s: [] for s in STEPS}
    for r in range(rounds):
        for step in STEPS:
            job = f"linecost_{step}_{r}_{time.time_ns()}"
            c0, t0 = _cpu(jvm), time.perf_counter()
            if step == "sink":
                info = replay_view(spark, profile, catalog, store, job, log=lambda m: None)
            else:
                w = (
                    _cut(spark, profile, catalog, step)
                    .writeStream.format("noop")
                    .queryName(job)
                    .option("checkpointLocation", profile.checkpoint(job))
                )
                q = sources.start_query(spark, "linecost", w, available_now=True)  # one scheduler pool
                info = _wait(q, job, log=lambda m: None)
            cpu, secs = _cpu(jvm) - c0, time.perf_counter() - t0
            runs[step].append({"cpu_us": cpu / events * 1e6, "seconds": secs, "rows": info["rows_read"]})
            if log:
                log(f"  line cost, round {r + 1}: up to {step}: {cpu / events * 1e6:.2f} us of JVM CPU per event")
    # the least disturbed round of each cut: the first rounds still pay the JIT's compilation of the
    # new plans, and other programs only ever add CPU time
    cumulative = {s: min(x["cpu_us"] for x in runs[s]) for s in STEPS}
    out_steps, before = [], 0.0
    for s in STEPS:
        out_steps.append(
            {
                "step": s,
                "label": LABELS[s],
                "cumulative_us_per_event": round(cumulative[s], 2),
                "us_per_event": round(cumulative[s] - before, 2),
                "rounds_us_per_event": [round(x["cpu_us"], 2) for x in runs[s]],
                "rows_read": runs[s][-1]["rows"],
            }
        )
        before = cumulative[s]
    return {
        "events": events,
        "rounds": rounds,
        "measure": "JVM CPU (user + system) per event of each cut, the lowest of the rounds",
        "steps": out_steps,
        "total_us_per_event": round(cumulative[STEPS[-1]], 2),
        # every cut must have read every line of the log, or it measured less than the whole log
        "complete": all(x["rows"] >= events for s in STEPS for x in runs[s]),
    }


def report_section(lc: dict, floor: dict | None) -> list[str]:
    """The bench report's table: each step's JVM CPU per event, and its share of the replay's."""
    if not lc.get("steps"):
        return ["## Where a line's cost goes\n", f"Not measured: {lc.get('skipped', 'no result')}.\n"]
    total = lc["total_us_per_event"] or 1.0
    out = [
        "## Where a line's cost goes\n",
        f"Kappa's replay plan cut after each step, each cut a new streaming query over the same "
        f"{lc['events']:,}-event log in the same JVM, ending in Spark's `noop` sink (the last cut is the "
        f"replay itself); {lc['measure']} ({lc['rounds']} rounds). A step's cost is its cut minus the "
        "cut before it.\n",
        "| step | us of JVM CPU per event | share of the replay |",
        "|---|---:|---:|",
    ]
    for s in lc["steps"]:
        out.append(f"| {s['label']} | {s['us_per_event']:.2f} | {100 * s['us_per_event'] / total:.0f}% |")
    out.append(f"| **the replay** | **{lc['total_us_per_event']:.2f}** | 100% |")
    if floor and floor.get("jvm_cpu_us_per_event"):
        out.append(
            f"| Spark's floor, the whole central view (for reference) | {floor['jvm_cpu_us_per_event']:.2f} | "
            f"{100 * floor['jvm_cpu_us_per_event'] / total:.0f}% |"
        )
    if not lc.get("complete", True):
        out.append("\nSome cut did not read the whole log: the profile is incomplete.")
    out.append("")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vendlab.bench.linecost", description=__doc__.split("\n\n")[0])
    ap.add_argument("log_dir", help="a data dir with a finished log (catalog.json, manifest.json, log/)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    import shutil
    import tempfile

    from vendlab import datadir
    from vendlab.bench.worker import Worker

    d = Path(args.log_dir).resolve()
    work = Path(tempfile.mkdtemp(prefix="vendlab-linecost-"))
    # its last cut writes view rows (dropped after) into the data dir's store: one writer at a time
    with datadir.hold(d, "python -m vendlab.bench.linecost"):
        w = Worker({"work_dir": str(work), "driver_memory": "4g"})
        try:
            w.start_spark()
            w.warmup({"events": 20_000})
            r = w.line_cost({"log_dir": str(d), "rounds": args.rounds})
        finally:
            if w.spark is not None:
                w.spark.stop()
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(r))
    print("\n".join(report_section(r, None)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
