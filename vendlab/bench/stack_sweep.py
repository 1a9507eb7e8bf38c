"""Kappa on a local stack (``vendlab stack up``): the cluster-mode kappa job at a sweep of rates,
measured as the embedded sweep is.

Each rate gets its own topic, keyspace and checkpoint, and its own run of the cluster's kappa job
(``spark-submit ... submit.py job kappa`` to the stack's Spark standalone master, through
:class:`vendlab.localstack.jobs.LocalRunner`: Spark's Kafka source, the Cassandra view store). The
generator runs in this process as in the embedded sweep, with the cluster's Kafka feeder
(``kafka_log.make_feeder``, the code of ``vendlab produce``), same seed and same duplicate and
malformed shares, so both sweeps see the same events at a given rate.

A rate's run: a warm-up at that rate (the job's JVM starts cold, its executors start, its first
micro-batches plan the query: the embedded workers warm up before timing too), drained; then the
timed part, which continues the same stream; drained again. The verdict is :func:`measure.judge`'s,
on samples of the same shape (:class:`StackSampler`): the generator's lines and schedule from the
feeder, the lines the job read from its applied micro-batches in Cassandra (the job's driver is
another process: its ``recentProgress`` is not reachable from here, so per-batch durations are not
known), and CPU of the whole stack (Kafka, Cassandra, Spark master, workers, the job's driver and
executors) as the pipeline's. Then the job is stopped and the validation consumer (``vendlab
validate``) reads the topic: the run is exact when the kappa views equal validation's and the
generator's manifest.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil

from vendlab.bench.measure import Sampler, point_line, sweep_point
from vendlab.store import base

DUP_RATE = 0.01  # the embedded sweep's (vendlab.bench.worker)
BAD_RATE = 0.001
WARMUP_DRAIN_TIMEOUT_S = 600.0  # the job's start on a busy machine included: a hang guard
VALIDATION_TIMEOUT_S = 900.0
# Views compared with the manifest and with validation.
EXACT_VIEWS = (
    (base.ITEMS_BY_PRODUCT, "items_by_product"),
    (base.ITEMS_BY_CATEGORY, "items_by_category"),
    (base.REVENUE_BY_CATEGORY, "revenue_cents_by_category"),
)


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class StackSampler(Sampler):
    """:class:`measure.Sampler` for a job in other processes: its progress is the micro-batches it
    applied to the view store (batch id, when, input rows), its CPU that of every process of the stack."""

    def __init__(self, feeder, store, pids, interval: float = 0.5):
        super().__init__(SimpleNamespace(feeder=feeder, pipelines=[]), interval)
        self.store = store
        self.pids = pids  # () -> the stack's process ids (services, the job's driver)
        self.jvm = None
        self.procs: dict[int, psutil.Process] = {}

    def collect_progress(self) -> None:
        try:
            applied = self.store.micro_batches(base.KAPPA)
        except Exception as e:
            if not self.store.is_transient(e):
                raise
            return  # Cassandra busy (a time-out): keep what we have, the next sample reads again
        mine = self.progress.setdefault(base.KAPPA, {})
        for batch, applied_ms, rows in applied:
            mine[batch] = {
                "batch": batch,
                "timestamp": applied_ms,
                "rows": rows,
                "input_rps": None,
                "processed_rps": None,
                "duration_ms": {},
            }

    def generated(self) -> int:
        """Lines written as the view store counts a micro-batch's rows: after deduplication, so without
        the duplicate deliveries (every one is dropped: they come within the jobs' dedup delay)."""
        m = self.runner.feeder.gen.manifest
        return m.events + m.markers - m.duplicates

    def pipeline_cpu(self) -> tuple[float, int] | None:
        """CPU and RSS of the stack's processes and all their children (executors, Python workers)."""
        seen = set()
        cpu, rss = 0.0, 0
        for pid in self.pids():
            try:
                root = psutil.Process(pid)
                tree = [root] + root.children(recursive=True)
            except psutil.Error:
                continue
            for p in tree:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                known = self.procs.setdefault(p.pid, p)
                try:
                    cpu += known.cpu_percent(None)  # a new process: 0.0 on its first reading
                    rss += known.memory_info().rss
                except psutil.Error:
                    continue
        return (cpu, round(rss / 2**20)) if seen else None


def _stack_pids(stack, runner) -> list[int]:
    pids = [s.get("pid") for s in stack.state.get("services", {}).values()]
    return [p for p in pids + [runner.pid("kappa")] if p]


def run_rate(stack, rate: float, duration: float, warmup_s: float, seed: int, work: Path, cores: int = 2) -> dict:
    """One point of the local-stack sweep (see the module doc)."""
    from confluent_kafka import Consumer, Producer

    from vendlab.config import compose
    from vendlab.kafka_log import consumer_config, make_feeder, producer_config
    from vendlab.localstack.jobs import LocalRunner
    from vendlab.store.cassandra import CassandraStore
    from vendlab.world.catalog import make_catalog

    tag = f"r{int(rate)}-{int(time.time())}"  # a new topic, keyspace and checkpoint for every run
    env = stack.env()
    topic, keyspace = f"vendlab-bench-{tag}", "vendlab_bench_" + tag.replace("-", "_")
    data = work / f"stack-{tag}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    runner = LocalRunner(
        stack,
        {
            "VENDLAB_TOPIC": topic,
            "VENDLAB_KEYSPACE": keyspace,
            "VENDLAB_CHECKPOINTS": f"{env['VENDLAB_CHECKPOINTS']}/bench-{tag}",
        },
        tag=f"bench-{tag}-",
    )
    profile = compose(data).with_(
        kafka_bootstrap=env["VENDLAB_KAFKA"],
        topic=topic,
        keyspace=keyspace,
        cassandra_hosts=tuple(env["VENDLAB_CASSANDRA"].split(",")),
    )
    runner.ensure_topic()
    runner.ensure_schema()
    store = CassandraStore(profile.cassandra_hosts, keyspace)
    seed_args = ["--profile", "compose", "--seed", str(seed), "--data-dir", str(data)]
    catalog = make_catalog(seed)
    catalog.save(profile.catalog_path)
    sampler = None
    try:
        log(
            f"local stack: kappa job (spark-submit, {cores} cores) on topic {topic}, keyspace {keyspace}; "
            f"log {runner.log('kappa')}"
        )
        runner.launch("kappa", runner.submit("kappa", cores, "job", "kappa", *seed_args))

        def feed(seconds: float):
            # the timed part continues the warm-up's stream (kafka_log.continue_in_topic)
            producer = Producer(producer_config(profile.kafka_bootstrap))
            reader = Consumer(consumer_config(profile.kafka_bootstrap, **{"group.id": f"bench-{tag}"}))
            try:
                return make_feeder(
                    producer,
                    topic,
                    catalog,
                    seed,
                    rate,
                    seconds,
                    profile.manifest_path,
                    reader=reader,
                    bad_rate=BAD_RATE,
                    dup_rate=DUP_RATE,
                )
            finally:
                reader.close()

        def drained(feeder, timeout: float, what: str) -> bool:
            """The job made the feeder's end marker visible and read every line written."""
            m = feeder.gen.manifest
            deadline = time.monotonic() + timeout
            last_say = time.monotonic()
            while time.monotonic() < deadline:
                if not runner.running("kappa"):
                    raise RuntimeError(f"the kappa job stopped during {what}: see {runner.log('kappa')}")
                rows = sum(r for _, _, r in store.micro_batches(base.KAPPA))  # without duplicates
                if rows >= m.events + m.markers - m.duplicates and store.has_marker(base.KAPPA, feeder.end_marker):
                    return True
                if time.monotonic() - last_say > 15:
                    log(
                        f"  {what}: the job counted {rows:,} of {m.events + m.markers - m.duplicates:,} lines "
                        f"(duplicates dropped) ..."
                    )
                    last_say = time.monotonic()
                time.sleep(0.5)
            return False

        log(f"local stack: warm-up at {rate:,.0f} events/s for {warmup_s:g} s (the job starts meanwhile) ...")
        t0 = time.monotonic()
        w = feed(warmup_s)
        w.start()
        w.join()
        if w.error:
            raise RuntimeError(f"the generator failed: {w.error}")
        if not drained(w, WARMUP_DRAIN_TIMEOUT_S, "warm-up"):
            raise RuntimeError(
                f"the kappa job did not drain the warm-up within {WARMUP_DRAIN_TIMEOUT_S:g} s: see "
                f"{runner.log('kappa')}"
            )
        log(f"  warm-up drained {time.monotonic() - t0:.0f} s after it started")
        before, markers_before = w.gen.manifest.events, w.gen.manifest.markers
        log(f"sweep kappa on the local stack at {rate:,.0f} events/s for {duration:g} s")
        feeder = feed(duration)
        sampler = StackSampler(feeder, store, lambda: _stack_pids(stack, runner))
        sampler.start()
        feeder.start()
        feeder.join()
        if feeder.error:
            raise RuntimeError(f"the generator failed: {feeder.error}")
        ok = drained(feeder, max(90.0, 3 * duration), "drain")
        sampler.stop()
        sampler.collect_progress()
        m = feeder.gen.manifest
        markers = [x for x in store.marker_latencies(base.KAPPA) if x[0] >= feeder.started_ms]
        kappa_views = {v: store.read_view(base.KAPPA, v) for v, _ in EXACT_VIEWS}
        kappa_dead = store.read_view(base.KAPPA, base.DEAD_LETTERS)
        runner.signal("kappa")  # the job's cores back before the validation consumer reads

        log(f"  exactness: validation consumer over the topic ({m.events + m.markers:,} lines) ...")
        runner.launch("validation", runner.cli("validate", *seed_args))
        deadline = time.monotonic() + VALIDATION_TIMEOUT_S
        while not store.has_marker(base.VALIDATION, feeder.end_marker):
            if not runner.running("validation"):
                raise RuntimeError(f"the validation consumer stopped: see {runner.log('validation')}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the validation consumer did not reach the end marker within "
                    f"{VALIDATION_TIMEOUT_S:g} s: see {runner.log('validation')}"
                )
            time.sleep(1)
        validation = {v: store.read_view(base.VALIDATION, v) for v, _ in EXACT_VIEWS}
        runner.signal("validation")
        expected = {v: {k: n for k, n in getattr(m, field).items() if n} for v, field in EXACT_VIEWS}
        exact_manifest = ok and kappa_views == expected and kappa_dead == dict(m.malformed_by_reason)
        exact_validation = ok and kappa_views == validation
        end = max(markers, default=None)
        seconds = (end[1] - feeder.started_ms) / 1000 if end else None
        timed = m.events - before
        v = sweep_point(
            rate,
            duration,
            markers,
            feeder.started_ms,
            sampler,
            base.KAPPA,
            ok,
            m.events,
            m.markers,
            duplicates=m.duplicates,
            exact=exact_manifest and exact_validation,
            exact_manifest=exact_manifest,
            exact_validation=exact_validation,
            validation_equals_manifest=validation == expected,
            max_overcount=None,
            timed_events=timed,
            warmup_events=before,
            timed_markers=m.markers - markers_before,
            throughput_eps=round(timed / seconds, 1) if seconds else None,
            offered_eps=round(timed / duration, 1),
            topic=topic,
            keyspace=keyspace,
        )
        log(point_line(v))
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop_event.set()
        runner.stop_all()
        store.close()
        _remove_run(stack, runner, profile, keyspace, topic, data)
    return v


def _remove_run(stack, runner, profile, keyspace: str, topic: str, data: Path) -> None:
    """The stack's disk back after a point, also after a failed one (a stack kept with --stack-dir would
    collect one topic, keyspace and checkpoint per rate); what cannot be removed is said, not raised, so that
    it does not hide the point's own error."""
    from vendlab.store.cassandra import CassandraStore

    try:
        store = CassandraStore(profile.cassandra_hosts, "system_schema")
        try:
            store.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        finally:
            store.close()
        runner.run(
            stack.tool("kafka-topics") + ["--bootstrap-server", profile.kafka_bootstrap, "--delete", "--topic", topic]
        )
    except Exception as e:  # reported, not raised: the point's own outcome matters more
        log(f"  local stack: could not remove keyspace {keyspace} or topic {topic}: {e}")
    shutil.rmtree(data, ignore_errors=True)
    ckpt = runner.env()["VENDLAB_CHECKPOINTS"]
    if ckpt.startswith("file://"):
        shutil.rmtree(ckpt[len("file://") :], ignore_errors=True)


def sweep(stack, rates: list[float], duration: float, warmup_s: float, seed: int, work: Path) -> list[dict]:
    """The local-stack kappa sweep, stopping after the first rate that is not sustained (as the
    embedded sweep does)."""
    points = []
    for rate in rates:
        v = run_rate(stack, rate, duration, warmup_s, seed, work)
        points.append(v)
        if not v["sustainable"]:
            break
    return points
