"""``vendlab bench [--quick] --out DIR``: the measured comparison of lambda and kappa.

Writes DIR/report.md, DIR/results.json and DIR/*.png; progress on stderr. Every Spark
measurement runs in a worker process of its own (``vendlab.bench.worker``), one per Spark
configuration, on logs made by the same generator with the same seed (so every architecture
sees the very same events at a given rate).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from vendlab.cli_args import seed_type

COMMANDS = ("bench",)
PROFILES = ("embedded", "local-stack")


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure lambda and kappa: throughput, latency, replay, batch cost, "
        "RAM vs cores, DuckDB reference; writes a report with plots",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for report.md, results.json and the plots")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small run (under 3 minutes; with --profile local-stack a few more) that checks the machinery",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="embedded",
        help="embedded: the full comparison of lambda and kappa in embedded mode (default); local-stack: "
        "kappa's cluster-mode job on Kafka + Cassandra of a local stack (vendlab stack) next to "
        "embedded kappa, at the same rates",
    )
    p.add_argument(
        "--stack-dir",
        type=Path,
        default=None,
        help="--profile local-stack: use the kappa stack running in this folder (vendlab stack up "
        "--stack kappa --dir DIR) instead of starting one for the run (started and removed after)",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="scratch folder for logs and checkpoints (default: a temporary folder, removed after)",
    )
    p.add_argument("--seed", type=seed_type, default=1, help="seed of the fleet and the events (default 1)")


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run_worker(spec: dict, work: Path, name: str) -> dict:
    spec_path = work / f"{name}.spec.json"
    out_path = work / f"{name}.result.json"
    spec_path.write_text(json.dumps(spec))
    say(
        f"worker {name}: {spec['master']}, driver memory {spec['driver_memory']}, "
        f"steps {', '.join(s['kind'] for s in spec['steps'])}"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "vendlab.bench.worker", str(spec_path), str(out_path)], stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"benchmark worker {name} failed (exit {proc.returncode}); its output is above")
    return json.loads(out_path.read_text())


def sustainable(points: list[dict]) -> tuple[float | None, dict | None, dict | None]:
    """(highest rate sustained with every lower rate sustained too, its point, first point not
    sustained: a stall, or an inconclusive run (``sustainable`` None, measure.BUSY_OTHER_PCT))."""
    best = None
    for p in points:
        if not p["sustainable"]:
            return (best["rate"] if best else None), best, p
        best = p
    return (best["rate"] if best else None), best, None


def machine_info() -> dict:
    import psutil

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    import pyspark

    return {
        "cores": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "spark": pyspark.__version__,
        "java": java[0] if java else None,
        "os": platform.platform(),
    }


def summarize(arch: str, points: list[dict], top_rate: float) -> dict:
    rate, best, stalled = sustainable(points)
    out = {
        "sustainable_eps": rate,
        "latency_ms": (best or {}).get("latency_ms", {"p50": None, "p95": None, "p99": None}),
        "exact_at_sustainable": (best or {}).get("exact"),
        "stall_cause": stalled["saturated"]
        if stalled
        else f"none up to {top_rate:,.0f} events/s (the sweep's highest rate)",
        "stalled_at_eps": stalled["rate"] if stalled and stalled["sustainable"] is False else None,
        "inconclusive_at_eps": stalled["rate"] if stalled and stalled["sustainable"] is None else None,
        "stall_evidence": {
            k: stalled.get(k)
            for k in (
                "why_not",
                "batch_s",
                "batch_parts_s",
                "rows_per_batch",
                "busy_rps",
                "input_rps",
                "processed_rps",
                "sink_compute_s",
                "sink_write_s",
                "cpu_pct",
                "generator_behind_max_s",
                "latency_ms",
                "backlog_slope_eps",
            )
        }
        if stalled
        else None,
    }
    return out


def scratch_dir(work_dir: Path | None) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """The bench's scratch folder: ``work_dir`` (created if missing) or a new temporary folder, returned
    with its handle so that the caller removes it at the end."""
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="vendlab-bench-")
        return Path(tmp.name), tmp
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir, None


def run(args) -> int:
    if args.stack_dir is not None and args.profile != "local-stack":
        print(
            "vendlab: --stack-dir is for --profile local-stack only (the embedded bench starts no services)",
            file=sys.stderr,
        )
        return 2
    if args.profile == "local-stack":
        from vendlab.bench.local_stack import run_local_stack

        return run_local_stack(args)
    from vendlab.bench import plan as plans
    from vendlab.bench.complexity import complexity
    from vendlab.bench.duckdb_ref import run_reference
    from vendlab.bench.plots import all_plots
    from vendlab.bench.report import write_report
    from vendlab.spark import check_java

    check_java()
    plan = plans.QUICK if args.quick else plans.FULL
    t_start = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work, tmp = scratch_dir(args.work_dir)
    try:
        say(f"{'quick' if args.quick else 'full'} run; scratch folder {work}")
        replay_dir = work / "replay-log"
        sweep = plan["sweep"]
        warm = [{"kind": "warmup", "events": plan["warmup"]}] if plan["warmup"] else []
        main_spec = {
            **plan["main"],
            "work_dir": str(work / "main"),
            "seed": args.seed,
            "steps": warm
            + [
                {"kind": "sweep", "archs": ["kappa", "lambda"], **sweep},
                {"kind": "exactness", **plan["exactness"]},
                {"kind": "make_log", "log_dir": str(replay_dir), "events": plan["replay_events"]},
                {"kind": "floor", "log_dir": str(replay_dir)},
                {"kind": "replay", "log_dir": str(replay_dir)},
                {"kind": "line_cost", "log_dir": str(replay_dir)},
                {"kind": "history", "sizes": plan["history"]},
            ],
        }
        main = run_worker(main_spec, work, "main")
        steps = {s["name"]: s for s in main["steps"]}
        say("DuckDB reference over the replay log ...")
        duck = run_reference(replay_dir)
        say(f"  -> {duck['duckdb_eps']:,.0f} events/s, exact={duck['exact']}")
        floor = steps["floor"]["result"]

        rvc_plan = plan["ram_vs_cores"]
        ram_rows = []
        main_sweep = steps["sweep"]["result"]
        for arch in rvc_plan["archs"]:
            rate, best, _ = sustainable(main_sweep[arch])
            ram_rows.append(
                {
                    "arch": arch,
                    "master": plan["main"]["master"],
                    "cores": 2,
                    "driver_memory": plan["main"]["driver_memory"],
                    "sustainable_eps": rate,
                    "latency_ms": (best or {}).get("latency_ms"),
                    "source": "main sweep",
                    "rates_tried": [p["rate"] for p in main_sweep[arch]],
                    "jvm_rss_mb_max": max((p.get("jvm_rss_mb_max") or 0) for p in main_sweep[arch]),
                }
            )
        for i, (master, mem) in enumerate(rvc_plan["configs"]):
            spec = {
                "master": master,
                "driver_memory": mem,
                "work_dir": str(work / f"rvc{i}"),
                "seed": args.seed,
                "steps": warm
                + [
                    {
                        "kind": "sweep",
                        "archs": rvc_plan["archs"],
                        "rates": rvc_plan["rates"],
                        "duration": rvc_plan["duration"],
                        "batch_interval": sweep["batch_interval"],
                    }
                ],
            }
            res = run_worker(spec, work, f"rvc{i}")["steps"][-1]["result"]
            for arch in rvc_plan["archs"]:
                rate, best, stalled = sustainable(res[arch])
                ram_rows.append(
                    {
                        "arch": arch,
                        "master": master,
                        "cores": int(master.removeprefix("local").strip("[]") or 1),
                        "driver_memory": mem,
                        "sustainable_eps": rate,
                        "latency_ms": (best or {}).get("latency_ms"),
                        "source": "own sweep",
                        "rates_tried": [p["rate"] for p in res[arch]],
                        "stalled_at": stalled["rate"] if stalled and stalled["sustainable"] is False else None,
                        "stall_cpu_pct": stalled["cpu_pct"] if stalled else None,
                        "jvm_rss_mb_max": max((p["jvm_rss_mb_max"] or 0) for p in res[arch]),
                    }
                )
        ram_rows.sort(key=lambda r: (r["arch"], r["cores"], int(r["driver_memory"].rstrip("g"))))

        top = max(sweep["rates"])
        kappa = summarize("kappa", main_sweep["kappa"], top)
        lam = summarize("lambda", main_sweep["lambda"], top)
        replay = steps["replay"]["result"]
        history = steps["history"]["result"]
        kappa["replay_eps"] = replay["replay_eps"]
        kappa["replay"] = replay
        if kappa["sustainable_eps"] and replay["replay_eps"] > kappa["sustainable_eps"]:
            kappa["catch_up_s_per_hour_of_history_at_sustainable"] = round(
                3600 * kappa["sustainable_eps"] / (replay["replay_eps"] - kappa["sustainable_eps"]), 1
            )
        lam["batch_seconds_by_history"] = history["batch_seconds_by_history"]
        lam["batch_eps_by_history"] = history["batch_eps"]
        lam["ingest_eps_by_history"] = history["ingest_eps"]
        biggest = str(max(int(k) for k in history["batch_eps"]))
        lam["batch_eps"] = history["batch_eps"][biggest]
        lam["batch_jvm_cpu_us_per_event_by_history"] = history.get("batch_jvm_cpu_us_per_event", {})
        doc = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "mode": "quick" if args.quick else "full",
            "machine": machine_info(),
            "plan": plan,
            "kappa": kappa,
            "lambda": lam,
            "duckdb_eps": duck["duckdb_eps"],
            "duckdb": duck,
            "ratios_to_duckdb": {
                "kappa_sustainable": _ratio(kappa["sustainable_eps"], duck["duckdb_eps"]),
                "kappa_replay": _ratio(replay["replay_eps"], duck["duckdb_eps"]),
                "lambda_sustainable": _ratio(lam["sustainable_eps"], duck["duckdb_eps"]),
                "lambda_batch": _ratio(lam["batch_eps"], duck["duckdb_eps"]),
            },
            # Plain Spark (no project code) on the same log, in the main worker's JVM: the floor
            # every pipeline is also reported against (vendlab/bench/spark_floor.py).
            "spark_floor_eps": floor["spark_floor_eps"],
            "spark_floor": floor,
            "ratios_to_spark_floor": {
                "kappa_sustainable": _ratio(kappa["sustainable_eps"], floor["spark_floor_eps"]),
                "kappa_replay": _ratio(replay["replay_eps"], floor["spark_floor_eps"]),
                "lambda_sustainable": _ratio(lam["sustainable_eps"], floor["spark_floor_eps"]),
                "lambda_batch": _ratio(lam["batch_eps"], floor["spark_floor_eps"]),
            },
            "spark_floor_to_duckdb": _ratio(floor["spark_floor_eps"], duck["duckdb_eps"]),
            # where a replayed line's JVM CPU goes, step by step (vendlab/bench/linecost.py)
            "line_cost": steps["line_cost"]["result"],
            # The replay log is written by vendlab.finished_log, as `vendlab generate` writes one.
            "generator": steps["make_log"]["result"],
            "warmup": steps["warmup"]["result"] if "warmup" in steps else None,
            "ram_vs_cores": ram_rows,
            "exactness": steps["exactness"]["result"],
            "sweep": main_sweep,
            "complexity": complexity(),
            "step_seconds": {s["name"]: s["seconds"] for s in main["steps"]},
        }
        doc["duration_s"] = round(time.time() - t_start, 1)
        doc["plots"] = all_plots(doc, out)
        (out / "results.json").write_text(json.dumps(doc, indent=1))
        write_report(doc, out / "report.md")
        say(
            f"done in {doc['duration_s']:.0f} s: {out / 'report.md'}, {out / 'results.json'}, {len(doc['plots'])} plots"
        )
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


def _ratio(a, b):
    return round(a / b, 4) if a and b else None
