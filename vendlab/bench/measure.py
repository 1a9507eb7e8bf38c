"""What the benchmark observes during one run, and how it judges it.

A :class:`Sampler` thread runs beside a :class:`vendlab.runner.Runner` (started by its
``on_start`` hook) and records, every ``interval`` seconds:

* the generator: lines written so far and how far it is behind its schedule (``behind_s``);
* every streaming query's progress (``query.recentProgress``, kept by batch id so nothing
  is lost when Spark's ring of 100 updates turns over): input rows, ``durationMs`` parts
  (``addBatch``, ``queryPlanning``, ``walCommit``...), input vs processed rows per second;
* the view jobs' sink timings (Spark plan vs store write, ``vendlab.jobs.streaming.SINK_TIMINGS``);
* CPU (psutil): the Spark JVM, this Python process (generator, sink callbacks, sampler), the
  whole machine (so what other programs took is visible too), and the JVM's memory.

:func:`judge` turns one run's samples and marker latencies into the verdict the benchmark
vocabulary asks for: sustainable (latency bounded, backlog not growing, the generator kept its
rate, drained), and if not, which part saturated, named from these numbers.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import psutil

from vendlab.bench.timeparts import table as time_parts

# A run is sustainable when, over its second half: marker latency grows by less than this many
# seconds per second of run, the backlog grows by less than this fraction of the input rate per
# second, and the generator never fell more than GENERATOR_SLACK_S behind its schedule.
# Micro-batches take seconds here, so backlog and latency move in steps: a trend counts only when,
# over the second half of the run, it adds up to more than GROWTH_FLOOR_S seconds of latency or
# of input.
LATENCY_SLOPE_MAX = 0.05
BACKLOG_SLOPE_MAX = 0.05
GROWTH_FLOOR_S = 2.0
GENERATOR_SLACK_S = 1.0
# A run that misses a criterion while other programs took at least this much CPU (percent of one
# core) is *inconclusive*, not a stall: on 2 cores another program's share is taken from the
# pipeline, and this run cannot tell its own limit from that contention (a quick run on a loaded
# machine called kappa stalled at 5,000 events/s, where the full run on a quiet one sustains 80,000).
BUSY_OTHER_PCT = 50.0
# What the bench keeps of a progress's stateOperators (Spark's StateOperatorProgress fields).
STATE_KEYS = (
    "numRowsTotal",
    "numRowsUpdated",
    "allUpdatesTimeMs",
    "allRemovalsTimeMs",
    "commitTimeMs",
    "memoryUsedBytes",
)


def spark_jvm() -> psutil.Process | None:
    """The JVM that PySpark started (a child of this process), if any."""
    for c in psutil.Process().children(recursive=True):
        try:
            if "java" in c.name():
                return c
        except psutil.Error:
            continue
    return None


class Sampler(threading.Thread):
    def __init__(self, runner, interval: float = 0.5):
        super().__init__(name="bench-sampler", daemon=True)
        self.runner = runner
        self.interval = interval
        self.stop_event = threading.Event()
        self.samples: list[dict] = []
        self.progress: dict[str, dict[int, dict]] = {}  # query name -> batch id -> progress
        self.error: BaseException | None = None
        self.jvm = spark_jvm()
        self.me = psutil.Process()
        self.t0 = time.monotonic()

    def queries(self):
        for p in self.runner.pipelines:
            for q in [p.query] if hasattr(p, "query") else list(getattr(p, "queries", [])):
                if q is not None:
                    yield q

    def collect_progress(self) -> None:
        for q in self.queries():
            try:
                name = q.name
                for pr in q.recentProgress:
                    self.progress.setdefault(name, {})[int(pr["batchId"])] = {
                        "batch": int(pr["batchId"]),
                        "timestamp": pr["timestamp"],
                        "rows": int(pr["numInputRows"]),
                        "input_rps": pr.get("inputRowsPerSecond"),
                        "processed_rps": pr.get("processedRowsPerSecond"),
                        "duration_ms": dict(pr.get("durationMs") or {}),
                        # the state store's own timings (ms) per stateful operator (vendlab.bench.timeparts)
                        "state": [{k: so.get(k) for k in STATE_KEYS} for so in (pr.get("stateOperators") or [])],
                    }
            except Exception:  # a query that just stopped: keep what we have
                continue

    def run(self) -> None:
        try:
            psutil.cpu_percent(None)
            self.pipeline_cpu()  # the first reading of a process's CPU only starts its clock
            self.me.cpu_percent(None)
            while not self.stop_event.wait(self.interval):
                self.sample()
        except BaseException as e:  # reported, never fatal to the run
            self.error = e

    def sample(self) -> None:
        f = self.runner.feeder
        self.collect_progress()
        processed = {name: sum(b["rows"] for b in batches.values()) for name, batches in self.progress.items()}
        s = {
            "t": round(time.monotonic() - self.t0, 2),
            "generated": self.generated(),
            "behind_s": round(f.behind_s, 3) if f else 0.0,
            "processed": processed,
            "cpu_machine": psutil.cpu_percent(None) * psutil.cpu_count(),  # percent of one core
            "cpu_python": self.me.cpu_percent(None),
            "load1": round(os.getloadavg()[0], 2),  # the machine's 1-minute load average (shared machines)
        }
        cpu = self.pipeline_cpu()
        if cpu is not None:
            s["cpu_jvm"], s["jvm_rss_mb"] = cpu
        self.samples.append(s)

    def generated(self) -> int:
        """Lines the generator has written so far, as the query's progress counts them (every line)."""
        f = self.runner.feeder
        return (f.gen.manifest.events + f.gen.manifest.markers) if f else 0

    def pipeline_cpu(self) -> tuple[float, int] | None:
        """(CPU % of one core, RSS MB) of the pipeline's JVM since the last call (None: unknown)."""
        if not self.jvm:
            return None
        try:
            return self.jvm.cpu_percent(None), round(self.jvm.memory_info().rss / 2**20)
        except psutil.Error:
            return None

    def stop(self, settle_s: float = 10.0) -> None:
        """Stop sampling; wait (up to ``settle_s``) until every query's progress reports all the
        lines written: a micro-batch's progress arrives just after its effect became visible."""
        self.stop_event.set()
        self.join(timeout=5)
        total = self.generated()
        deadline = time.monotonic() + settle_s
        while True:
            self.collect_progress()
            names = [q.name for q in self.queries()]
            done = all(sum(b["rows"] for b in self.progress.get(n, {}).values()) >= total for n in names)
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.1)

    def rows_read(self, name: str) -> int:
        return sum(b["rows"] for b in self.progress.get(name, {}).values())

    def batches(self, name: str) -> list[dict]:
        return [self.progress[name][k] for k in sorted(self.progress.get(name, {}))]


def slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0:
        return 0.0
    return float(np.polyfit(x, y, 1)[0])


def judge(
    rate: float,
    duration: float,
    markers: list[tuple[int, int]],
    started_ms: int,
    sampler: Sampler,
    query: str,
    drained: bool,
    sink_timings: list[tuple] | None = None,
    drain_s: float | None = None,
) -> dict:
    """Verdict of one run of one architecture at one input rate (see the module doc)."""
    lat = [(c - started_ms) / 1000 for c, v in markers], [(v - c) / 1000 for c, v in markers]
    created, latency = np.asarray(lat[0]), np.asarray(lat[1])
    half = created >= duration / 2
    lat_slope = slope(created[half], latency[half]) if half.sum() >= 3 else 0.0
    samples = [s for s in sampler.samples if s["t"] <= duration]
    t = [s["t"] for s in samples]
    backlog = [s["generated"] - s["processed"].get(query, 0) for s in samples]
    second = [i for i, x in enumerate(t) if x >= duration / 2]
    bl_slope = slope([t[i] for i in second], [backlog[i] for i in second]) if len(second) >= 3 else 0.0
    behind = max((s["behind_s"] for s in samples), default=0.0)
    batches = sampler.batches(query)
    busy = [b for b in batches if b["rows"] > 0]
    steady = busy[1:] if len(busy) > 2 else busy  # the first micro-batch carries JIT/planning warm-up

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return round(float(np.mean(xs)), 3) if xs else None

    cpu = {
        k: mean([s.get(k) for s in samples if s["t"] >= duration / 4]) for k in ("cpu_machine", "cpu_jvm", "cpu_python")
    }
    parts = {}
    for b in steady:
        for k, v in b["duration_ms"].items():
            parts.setdefault(k, []).append(v)
    parts = {k: round(float(np.mean(v)) / 1000, 3) for k, v in parts.items()}
    sink = [x for x in (sink_timings or []) if x[0] in {b["batch"] for b in steady}]
    out = {
        "rate": rate,
        "latency_ms": _pct(latency * 1000),
        "latency_slope": round(lat_slope, 3),
        "backlog_end": int(backlog[-1]) if backlog else None,
        "backlog_max": int(max(backlog)) if backlog else None,
        "backlog_slope_eps": round(bl_slope, 1),
        "generator_behind_max_s": round(behind, 3),
        "drained": drained,
        "drain_s": drain_s,
        "batches": len(busy),
        "rows_per_batch": mean([b["rows"] for b in steady]),
        "batch_s": parts.get("triggerExecution"),
        "batch_parts_s": parts,
        # rows / busy time; unknown when the progress has no durations (a job in another process:
        # vendlab.bench.stack_sweep reads its applied micro-batches from the view store)
        "busy_rps": round(
            sum(b["rows"] for b in steady) / (sum(b["duration_ms"].get("triggerExecution", 0) for b in steady) / 1000),
            1,
        )
        if steady and all(b["duration_ms"].get("triggerExecution") for b in steady)
        else None,
        "input_rps": mean([b["input_rps"] for b in steady]),
        "processed_rps": mean([b["processed_rps"] for b in steady]),
        "sink_compute_s": mean([x[1] for x in sink]),
        "sink_write_s": mean([x[2] for x in sink]),
        "cpu_pct": cpu,
        "jvm_rss_mb_max": max((s.get("jvm_rss_mb", 0) for s in samples), default=None),
    }
    reasons = []
    if not drained:
        reasons.append("not drained before the time-out")
    if behind > GENERATOR_SLACK_S:
        reasons.append(f"generator fell {behind:.1f} s behind its schedule")
    if lat_slope > LATENCY_SLOPE_MAX and lat_slope * duration / 2 > GROWTH_FLOOR_S:
        reasons.append(f"latency grows {lat_slope:.2f} s per s")
    if bl_slope > BACKLOG_SLOPE_MAX * rate and bl_slope * duration / 2 > GROWTH_FLOOR_S * rate:
        reasons.append(f"backlog grows {bl_slope:,.0f} events/s")
    other = max(0.0, (cpu["cpu_machine"] or 0) - (cpu["cpu_jvm"] or 0) - (cpu["cpu_python"] or 0))
    # where each micro-batch's time goes, part by part (vendlab.bench.timeparts)
    out["time_parts"] = time_parts(sampler.batches(query), sink_timings)
    out["cpu_other_pct"] = round(other, 1)
    out["sustainable"] = not reasons
    out["why_not"] = reasons
    out["saturated"] = stall_cause(out) if reasons else None
    if reasons and other >= BUSY_OTHER_PCT:
        out["sustainable"] = None  # inconclusive: neither sustained nor a stall of its own
        out["saturated"] = (
            f"inconclusive: other programs on the machine took {other:.0f}% of a core during this "
            f"run, so its misses ({'; '.join(reasons)}) cannot be told from contention; run the "
            f"bench on a quiet machine. " + out["saturated"]
        )
    return out


def _pct(a) -> dict:
    a = np.asarray(a, float)
    if not len(a):
        return {"p50": None, "p95": None, "p99": None}
    return {f"p{p}": round(float(np.percentile(a, p)), 1) for p in (50, 95, 99)}


def stall_cause(r: dict) -> str:
    """Name the part that saturates, from the evidence of one unsustainable run."""
    cpu = r["cpu_pct"]
    machine, jvm, py = cpu.get("cpu_machine") or 0, cpu.get("cpu_jvm") or 0, cpu.get("cpu_python") or 0
    cores = psutil.cpu_count() * 100
    ev = []
    if r["generator_behind_max_s"] > GENERATOR_SLACK_S:
        ev.append(
            f"the generator (Python) fell {r['generator_behind_max_s']:.1f} s behind: the offered rate "
            f"was not even written"
        )
    if r.get("busy_rps"):
        ev.append(
            f"Spark processes {r['busy_rps']:,.0f} lines/s while busy (lines / micro-batch time) against "
            f"{r['rate']:,.0f} offered"
        )
    if r["batch_s"]:
        parts = r["batch_parts_s"]
        top = sorted(((v, k) for k, v in parts.items() if k != "triggerExecution"), reverse=True)[:2]
        ev.append(
            f"micro-batch {r['batch_s']:.2f} s for {r['rows_per_batch'] or 0:,.0f} rows ("
            + ", ".join(f"{k} {v:.2f} s" for v, k in top)
            + ")"
        )
    if r["sink_compute_s"] is not None:
        ev.append(f"inside addBatch: Spark plan {r['sink_compute_s']:.2f} s, sink write {r['sink_write_s']:.3f} s")
    cpu_bound = machine >= 0.9 * cores
    ev.append(
        f"CPU {machine:.0f}% of {cores}% (Spark JVM {jvm:.0f}%, Python {py:.0f}%, other "
        f"{max(0.0, machine - jvm - py):.0f}%)"
    )
    other = max(0.0, machine - jvm - py)
    if r["generator_behind_max_s"] > GENERATOR_SLACK_S and py >= 90:
        head = "the generator (one Python thread at its limit)"
    elif r["sink_compute_s"] is not None and r["sink_write_s"] is not None and r["sink_write_s"] > r["sink_compute_s"]:
        head = "the view store write"
    elif cpu_bound and jvm >= py:
        head = "Spark's micro-batch processing, CPU-bound (the cores are saturated)"
    elif cpu_bound:
        head = "the Python side (generator + sink callbacks), CPU-bound"
    else:
        head = "Spark's micro-batch processing (cores not saturated: per-batch latency)"
    if other >= 50:
        head += f"; other programs on the machine took {other:.0f}% of a core"
    return head + ". Evidence: " + "; ".join(ev)


def sweep_point(
    rate: float,
    duration: float,
    markers: list[tuple[int, int]],
    started_ms: int,
    sampler: Sampler,
    query: str,
    drained: bool,
    events: int,
    n_markers: int,
    sink_timings: list[tuple] | None = None,
    **fields,
) -> dict:
    """One point of a rate sweep: the verdict (:func:`judge`) with what every sweep reports beside it
    (lines written, lines the query read, the marker latency series, the samples). ``markers``: the
    run's markers, its end marker last (its latency is the drain time)."""
    end = max(markers, default=None)
    v = judge(
        rate,
        duration,
        markers,
        started_ms,
        sampler,
        query,
        drained,
        sink_timings,
        drain_s=round((end[1] - end[0]) / 1000, 2) if end else None,
    )
    v.update(events=events, markers=n_markers, rows_read=sampler.rows_read(query), **fields)
    v["latency_series"] = [[round((c - started_ms) / 1000, 2), vis - c] for c, vis in markers]
    v["samples"] = sampler.samples
    return v


def point_line(v: dict) -> str:
    """The progress line of one sweep point."""
    verdict = (
        "sustainable"
        if v["sustainable"]
        else (("inconclusive" if v["sustainable"] is None else "NOT sustainable") + ": " + "; ".join(v["why_not"]))
    )
    return f"  -> p50 {v['latency_ms']['p50']} ms, p99 {v['latency_ms']['p99']} ms, {verdict}, exact={v['exact']}"
