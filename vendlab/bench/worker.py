"""One benchmark worker: a fresh Python process with its own Spark JVM, so that the master
(``local[1]``/``local[2]``) and the driver memory of each configuration are real settings of a
real JVM (a JVM's heap cannot change once it runs).

    python -m vendlab.bench.worker SPEC.json RESULT.json

SPEC: {"master", "driver_memory", "work_dir", "seed", "steps": [{"kind": ..., ...}, ...]}.
Kinds: ``sweep`` (each architecture alone at rising rates), ``exactness`` (both side by side
with the validation consumer), ``replay`` (kappa: the whole log into a new view version),
``line_cost`` (where a replayed line's JVM CPU goes, step by step: vendlab.bench.linecost),
``history`` (lambda: batch run time as the master dataset grows). Progress goes to stderr.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from vendlab import architectures
from vendlab.bench.measure import Sampler, point_line, sweep_point
from vendlab.config import embedded, open_store
from vendlab.finished_log import FinishedLog
from vendlab.store import base
from vendlab.world.catalog import make_catalog
from vendlab.world.generator import Generator, Manifest

DUP_RATE = 0.01
BAD_RATE = 0.001


def query_jobs() -> dict[str, str]:
    """Architecture -> the store job (query) whose markers measure its latency (vendlab.architectures)."""
    return {a.name: a.latency_job for a in architectures.ARCHITECTURES}


def sink_timings() -> dict:
    """The view jobs' per-batch (plan, store write) timings, where the sink records them."""
    from vendlab.jobs import streaming

    return getattr(streaming, "SINK_TIMINGS", {})


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Worker:
    def __init__(self, spec: dict):
        self.spec = spec
        self.work = Path(spec["work_dir"])
        self.work.mkdir(parents=True, exist_ok=True)
        self.master = spec.get("master", "local[2]")
        self.conf = {"spark.driver.memory": spec.get("driver_memory", "2g")}
        self.conf.update(spec.get("spark_conf", {}))
        self.seed = int(spec.get("seed", 1))
        self.spark = None

    def profile(self, d: Path, **kw):
        return embedded(d, spark_master=self.master, spark_conf=self.conf, **kw)

    def start_spark(self):
        from vendlab.spark import get_spark

        self.spark = get_spark(self.profile(self.work / "spark"), app="vendlab-bench")
        return self.spark

    # -- one live run ---------------------------------------------------------------------
    def live_run(
        self, archs: list[str], rate: float, duration: float, d: Path, validation: bool, batch_interval: float
    ) -> tuple[dict, Sampler, object]:
        from vendlab.runner import Runner, RunSettings

        if d.exists():
            shutil.rmtree(d)
        settings = RunSettings(
            duration=duration,
            rate=rate,
            seed=self.seed,
            dup_rate=DUP_RATE,
            bad_rate=BAD_RATE,
            batch_interval=batch_interval,
            validation=validation,
            drain_timeout=max(90.0, 3 * duration),
        )
        runner = Runner(self.profile(d), archs, settings, progress=sys.stderr)
        holder = {}

        def on_start(r):
            holder["sampler"] = s = Sampler(r)
            s.start()

        def on_stop(r):
            holder["sampler"].stop()

        runner.on_start, runner.on_stop = on_start, on_stop
        for q in query_jobs().values():
            sink_timings().pop(q, None)
        result = runner.run()
        if "sampler" not in holder:
            raise RuntimeError("the run stopped before it started")
        return result, holder["sampler"], runner

    def sweep(self, step: dict) -> dict:
        from vendlab.store.sqlite import SqliteStore

        out = {}
        for arch in step["archs"]:
            points = []
            for rate in step["rates"]:
                d = self.work / f"sweep-{arch}-{int(rate)}"
                log(
                    f"sweep {arch} at {rate:,.0f} events/s for {step['duration']} s ({self.master}, "
                    f"{self.conf['spark.driver.memory']})"
                )
                res, sampler, runner = self.live_run(
                    [arch], rate, step["duration"], d, validation=False, batch_interval=step.get("batch_interval", 10.0)
                )
                r = res[arch]
                query = query_jobs()[arch]
                store = SqliteStore(d / "views.sqlite")
                markers = store.marker_latencies(query)
                store.close()
                manifest = Manifest.load(d / "manifest.json")
                v = sweep_point(
                    rate,
                    step["duration"],
                    markers,
                    runner.feeder.started_ms,
                    sampler,
                    query,
                    r["drained"],
                    manifest.events,
                    manifest.markers,
                    list(sink_timings().get(query, [])),
                    exact=r["exact"],
                    max_overcount=r["max_overcount"],
                    throughput_eps=r["throughput_eps"],
                    offered_eps=round(r["generated"]["events"] / step["duration"], 1),
                )
                ingest_job = architectures.get(arch).job(architectures.INGEST)
                if ingest_job is not None:  # the master dataset's backlog and the batch runs (lambda)
                    ingest = [s["processed"].get(ingest_job.store_job, 0) for s in sampler.samples]
                    v["ingest_backlog_end"] = int(sampler.samples[-1]["generated"] - ingest[-1]) if ingest else None
                    v["batch_runs"] = r.get("batch_runs", [])
                points.append(v)
                log(point_line(v))
                if not step.get("keep_logs"):
                    shutil.rmtree(d, ignore_errors=True)
                if not v["sustainable"] and step.get("stop_after_unsustainable", True):
                    break
            out[arch] = points
        return out

    def exactness(self, step: dict) -> dict:
        d = self.work / "exactness"
        log(
            f"exactness: {' and '.join(architectures.names())} side by side with the validation consumer, "
            f"{step['rate']:,.0f} events/s for {step['duration']} s"
        )
        res, sampler, runner = self.live_run(
            list(architectures.names()),
            step["rate"],
            step["duration"],
            d,
            validation=True,
            batch_interval=step.get("batch_interval", 10.0),
        )
        out = {"rate": step["rate"], "duration": step["duration"]}
        for arch, r in res.items():
            out[arch] = {
                k: r[k]
                for k in ("exact", "drained", "max_overcount", "latency_ms", "throughput_eps", "samples", "generated")
            }
            out[arch]["max_minus_validation"] = max((s["minus_validation"] for s in r["samples"]), default=None)
            out[arch]["final_minus_validation"] = r["samples"][-1]["minus_validation"] if r["samples"] else None
            view = r["views"][architectures.get(arch).view_name]
            out[arch]["final_view_minus_validation"] = sum(view.values()) - sum(r["views"]["validation"].values())
            if architectures.get(arch).job(architectures.BATCH) is not None:
                out[arch]["handoffs"] = r.get("handoffs")
                out[arch]["batch_runs"] = r.get("batch_runs")
        shutil.rmtree(d, ignore_errors=True)
        return out

    # -- logs written as fast as possible -------------------------------------------------
    def new_log(self, d: Path, segment_lines: int = 200_000) -> FinishedLog:
        gen = Generator(make_catalog(self.seed), self.seed, 20_000, bad_rate=BAD_RATE, dup_rate=DUP_RATE)
        return FinishedLog(d, gen, segment_lines)

    def generate(self, d: Path, events: int, flog: FinishedLog | None = None) -> FinishedLog:
        """Append ``events`` lines to the finished log of ``d`` (a new log unless ``flog`` is given)."""
        flog = flog or self.new_log(d)
        flog.write(events)
        return flog

    def replay(self, step: dict) -> dict:
        """Kappa reprocessing: the whole log into a new view version (new job name, new checkpoint),
        with the code of ``vendlab replay`` (vendlab.replay.replay_view)."""
        from vendlab.replay import replay_view
        from vendlab.world.catalog import Catalog

        d = Path(step["log_dir"])
        m = Manifest.load(d / "manifest.json")
        catalog = Catalog.load(d / "catalog.json")
        job = step.get("job", "kappa_v2")
        p = self.profile(d, max_files_per_trigger=step.get("max_files_per_trigger", 10))
        store = open_store(p)
        log(f"replay: {m.events:,} events into a new view version '{job}' (checkpoint {p.checkpoint(job)})")
        from vendlab.bench.measure import spark_jvm

        jvm = spark_jvm()
        c0 = sum(jvm.cpu_times()[:2]) if jvm else None
        r = replay_view(self.spark, p, catalog, store, job, log=log)
        cpu = sum(jvm.cpu_times()[:2]) - c0 if jvm else None
        view = store.read_view(job, base.ITEMS_BY_PRODUCT)
        expected = {k: v for k, v in m.items_by_product.items() if v}
        out = {
            "events": m.events,
            "rows_read": r["rows_read"],
            "seconds": r["seconds"],
            "replay_eps": round(m.events / r["seconds"], 1),
            "batches": r["batches"],
            "exact": {k: v for k, v in view.items() if v} == expected,
            "job": job,
            "jvm_cpu_s": round(cpu, 2) if cpu is not None else None,
            "jvm_cpu_us_per_event": round(cpu / m.events * 1e6, 2) if cpu is not None else None,
        }
        log(f"  -> {out['replay_eps']:,.0f} events/s, {r['seconds']:.1f} s, exact={out['exact']}")
        return out

    def line_cost(self, step: dict) -> dict:
        """Where a replayed line's cost goes (vendlab.bench.linecost), over the replay log: checkpoints
        in this worker's scratch folder, the last cut's view rows dropped from the log's store after."""
        from vendlab.bench.linecost import run_line_cost
        from vendlab.bench.measure import spark_jvm
        from vendlab.world.catalog import Catalog

        d = Path(step["log_dir"])
        m = Manifest.load(d / "manifest.json")
        scratch = self.work / "linecost-checkpoints"
        shutil.rmtree(scratch, ignore_errors=True)
        p = self.profile(d, max_files_per_trigger=step.get("max_files_per_trigger", 10))
        p = p.with_(checkpoint_dir=str(scratch))
        jvm = spark_jvm()
        if jvm is None:
            log("line cost: no Spark JVM process found to measure; skipped")
            return {"events": m.events, "steps": [], "complete": False, "skipped": "no Spark JVM process found"}
        log(f"line cost: kappa's replay plan cut after each step, over {m.events:,} events ...")
        store = open_store(p)
        try:
            catalog = Catalog.load(d / "catalog.json")
            r = run_line_cost(self.spark, p, catalog, store, m.events, jvm, step.get("rounds", 3), log=log)
        finally:  # the cuts' view rows and checkpoints go, whatever happened
            store.drop_jobs([j for j in store.jobs() if j.startswith("linecost_")])
            store.close()
            shutil.rmtree(scratch, ignore_errors=True)
        log("  -> " + ", ".join(f"{s['step']} {s['us_per_event']:.2f}" for s in r["steps"]) + " us per event")
        return r

    def history(self, step: dict) -> dict:
        """Lambda's batch layer as history grows: batch seconds by master-dataset size."""
        from vendlab.jobs.batch import run_batch
        from vendlab.jobs.ingest import start_ingest_job
        from vendlab.world.catalog import Catalog

        d = self.work / "history"
        shutil.rmtree(d, ignore_errors=True)
        flog = None
        q = None
        out = {
            "sizes": [],
            "batch_seconds_by_history": {},
            "ingest_eps": {},
            "batch_eps": {},
            "batch_jvm_cpu_us_per_event": {},
        }
        from vendlab.bench.measure import spark_jvm

        jvm = spark_jvm()
        from vendlab.architectures.lambda_ import batch_session

        # the batch layer alone, on every core (as on the cluster, where it is its own application);
        # a live run shares the cores with the streaming queries (Profile.shared_batch_tasks)
        bspark = batch_session(self.spark)
        try:
            done = 0
            for size in step["sizes"]:
                flog = self.generate(d, size - done, flog)
                catalog = Catalog.load(d / "catalog.json")
                p = self.profile(d, max_files_per_trigger=step.get("max_files_per_trigger", 10))
                t0 = time.time()
                log(f"history: ingesting events {done:,}..{size:,} into the master dataset ...")
                # A fresh run of the ingest query per size (same checkpoint: it goes on where it
                # stopped), so that its progress counts only the new events.
                q = start_ingest_job(self.spark, p, catalog=catalog)
                while q.isActive and sum(pr["numInputRows"] for pr in q.recentProgress) < size - done:
                    time.sleep(0.2)
                if q.exception():
                    raise RuntimeError(f"ingest failed: {q.exception()}")
                q.stop()
                q = None
                ingest_s = time.time() - t0
                store = open_store(p)
                log(f"history: batch run over {size:,} events ...")
                c0 = sum(jvm.cpu_times()[:2]) if jvm else None
                t0 = time.time()
                info = run_batch(bspark, p, catalog, store)
                secs = time.time() - t0
                if jvm and info.events:
                    out["batch_jvm_cpu_us_per_event"][str(size)] = round(
                        (sum(jvm.cpu_times()[:2]) - c0) / info.events * 1e6, 2
                    )
                out["sizes"].append(size)
                out["batch_seconds_by_history"][str(size)] = round(secs, 2)
                out["batch_eps"][str(size)] = round(info.events / secs, 1) if secs else None
                out["ingest_eps"][str(size)] = round((size - done) / ingest_s, 1)
                done = size
                log(f"  -> batch {secs:.1f} s over {info.events:,} master rows ({info.events / secs:,.0f} events/s)")
        finally:
            if q is not None and q.isActive:
                q.stop()
        if not step.get("keep"):
            shutil.rmtree(d, ignore_errors=True)
        return out

    def floor(self, step: dict) -> dict:
        """Spark's own floor on the same log, in this JVM (vendlab.bench.spark_floor)."""
        from vendlab.bench.measure import spark_jvm
        from vendlab.bench.spark_floor import run_floor

        log(f"Spark's floor (plain Spark, JSON reader with a schema) over {step['log_dir']} ...")
        r = run_floor(self.spark, Path(step["log_dir"]), jvm=spark_jvm())
        log(
            f"  -> {r['spark_floor_eps']:,.0f} events/s, {r['jvm_cpu_us_per_event']} us of JVM CPU per event, "
            f"exact={r['exact']}"
        )
        return r

    def make_log(self, step: dict) -> dict:
        """The replay log, written as ``vendlab generate`` writes one (vendlab.finished_log): its
        rate is the generator's, in events/s of wall time and CPU seconds per million events."""
        d = Path(step["log_dir"])
        shutil.rmtree(d, ignore_errors=True)
        flog = self.new_log(d)
        c0, t0 = time.process_time(), time.time()  # as `vendlab generate` times itself: the writing
        flog.write(step["events"])
        secs, cpu = time.time() - t0, time.process_time() - c0
        events = flog.manifest.events
        log(
            f"wrote a log of {events:,} events to {d} in {secs:.1f} s: {events / secs:,.0f} events/s "
            f"(generator and writer, {cpu / events * 1e6:.2f} CPU-s per million events)"
        )
        return {
            "events": events,
            "log_dir": str(d),
            "seconds": round(secs, 3),
            "generate_eps": round(events / secs, 1),
            "cpu_s_per_million": round(cpu / events * 1e6, 3),
        }

    def warmup(self, step: dict) -> dict:
        """Run every job once on a small throw-away log (vendlab.warmup, as `vendlab run` does), so
        that the JVM's JIT and Spark's code-generation cache are warm before anything is timed (the
        first micro-batches of a cold JVM take seconds that no later batch pays)."""
        from vendlab.warmup import warm_up

        r = warm_up(
            self.spark,
            make_catalog(self.seed),
            step.get("archs", list(architectures.names())),
            step.get("events", 30_000),
            progress=log,
            scratch_root=self.work,
        )
        log(f"warm-up: {r['seconds']:.1f} s ({', '.join(r['jobs'])})")
        return r

    def run(self) -> dict:
        results = {"master": self.master, "driver_memory": self.conf["spark.driver.memory"], "steps": []}
        self.start_spark()
        try:
            for step in self.spec["steps"]:
                t0 = time.time()
                r = getattr(self, step["kind"])(step)
                results["steps"].append(
                    {
                        "kind": step["kind"],
                        "name": step.get("name", step["kind"]),
                        "seconds": round(time.time() - t0, 1),
                        "result": r,
                    }
                )
        finally:
            self.spark.stop()
        return results


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    from vendlab.cli import stdout_to_stderr

    with stdout_to_stderr():
        result = Worker(spec).run()
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
