"""Runs the lab in embedded mode: generator -> log -> pipelines + validation -> summary.

One generator writes one log; every pipeline asked for (kappa, lambda) reads it, and so does
the validation consumer, so all views are computed from the very same events. After the
duration the generator writes a final *end marker*; the run drains until every pipeline and
the validation view have made that marker visible (or a time-out passes), then stops every
query and the JVM and reports.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vendlab import architectures, datadir, invariants
from vendlab.config import BATCH_INTERVAL_S, Profile, open_store
from vendlab.eventlog import SegmentWriter, list_segments
from vendlab.oracle import Validator
from vendlab.store import base
from vendlab.world.catalog import Catalog, make_catalog
from vendlab.world.generator import Generator, Manifest, marker_line, wall_ms

MARKER_INTERVAL_S = 0.1
TICK_S = 0.05
# The feeder takes at most this many events from the generator at once: its memory is bounded
# by this chunk, whatever the rate (a second's worth at 10M events/s would be ~2 GB of lines).
MAX_CHUNK_EVENTS = 100_000
# A run that generated less than this share of rate x duration fell behind its schedule (warning).
SCHEDULE_SHARE = 0.95


class RunError(Exception):
    """A problem the user can fix (bad data dir...); the CLI prints it and exits 2."""


@dataclass
class RunSettings:
    """One embedded run (`vendlab run` / `demo`): rate, duration, faults, pacing. Where things live is
    the ``config.Profile``; a compose stack's settings are ``orchestrate.StackSettings``."""

    duration: float
    rate: float
    seed: int = 1
    bad_rate: float = 0.0
    dup_rate: float = 0.0
    time_scale: float = 60.0
    batch_interval: float = BATCH_INTERVAL_S
    machines: int = 20
    drain_timeout: float | None = None
    roll_seconds: float = 0.5
    ui: bool = False
    dashboard_port: int | None = None  # serve the dashboard during the run (demo)
    keep_dashboard: bool = False  # leave it serving after the run; the caller stops it (runner.dashboard_stop)
    sample_interval: float = 0.5  # seconds between exactness samples
    # Run the validation consumer (the plain-Python oracle). The benchmark's rate sweep turns it
    # off so that it measures the pipelines, not the oracle; the views are then checked against
    # the generator's manifest only.
    validation: bool = True
    # Warm the JVM before the clock starts: every job runs once on this many throw-away events
    # (vendlab/warmup.py; nothing reaches the run's views). 0: no warm-up (tests, the bench's
    # workers, which warm up once per JVM).
    warmup_events: int = 0


class LogFeeder(threading.Thread):
    """Feeds the generator's events into the log at the target rate, with latency markers."""

    def __init__(self, gen: Generator, writer, rate: float, duration: float, manifest_path: Path | None):
        super().__init__(name="log-feeder", daemon=True)
        self.gen, self.writer, self.rate, self.duration = gen, writer, rate, duration
        self.manifest_path = manifest_path
        # A segment writer saves the manifest with each segment; other logs (Kafka) have no
        # segments, so the manifest is saved every second and at the end.
        self.save_by_roll = manifest_path is not None and hasattr(writer, "on_roll")
        if self.save_by_roll:
            writer.on_roll = self._on_roll
        self.stop_event = threading.Event()
        self.started_ms = 0
        self.end_marker = f"end-{gen.seed}-{wall_ms()}"
        self.error: BaseException | None = None
        self.behind_s = 0.0  # how far the generator fell behind its schedule (saturation)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by the runner, never swallowed
            self.error = e

    def _on_roll(self, phase: str, number: int) -> None:
        """Keep manifest.json consistent with the complete segments (see Manifest.recover)."""
        m = self.gen.manifest
        pending = Manifest.pending_path(self.manifest_path)
        if phase == "prepare":
            m.segments = number + 1
            m.save(pending)
        else:
            pending.replace(self.manifest_path)

    def _run(self) -> None:
        m = self.gen.manifest
        t0 = time.monotonic()
        self.started_ms = wall_ms()
        produced = 0
        next_marker = t0
        next_save = t0 + 1.0
        n_marker = 0
        while not self.stop_event.is_set():
            now = time.monotonic()
            elapsed = now - t0
            if elapsed >= self.duration:
                break
            target = int(self.rate * elapsed)
            if target > produced:
                n = min(target - produced, max(1, int(self.rate * TICK_S * 4)), MAX_CHUNK_EVENTS)
                chunk = self.gen.take(n)
                self.writer.append(chunk.data, chunk.lines, chunk.first_ms)
                produced += n
                self.behind_s = max(0.0, (target - produced) / self.rate)
            if now >= next_marker:
                n_marker += 1
                m.markers += 1
                self.writer.append(
                    marker_line(f"mk-{self.gen.seed}-{n_marker}-{wall_ms()}", wall_ms()), 1, self.gen.now_ms()
                )
                next_marker = now + MARKER_INTERVAL_S
            if self.writer.due():
                self.writer.roll()
            if not self.save_by_roll and self.manifest_path is not None and now >= next_save:
                m.save(self.manifest_path)
                next_save = now + 1.0
            # Sleep until at least half a tick of events is due: taking whatever became due while
            # the last chunk was made (a few events) would call the generator hundreds of times a
            # second, each call with its fixed cost, and the Python process would spend most of a core
            # on it (docs/history/results-2026-11.md, performance history).
            if int(self.rate * (time.monotonic() - t0)) - produced < max(1.0, self.rate * TICK_S / 2):
                time.sleep(TICK_S / 2)
        m.markers += 1
        m.complete = True
        self.writer.append(marker_line(self.end_marker, wall_ms()), 1, self.gen.now_ms())
        self.writer.close()
        if not self.save_by_roll and self.manifest_path is not None:
            m.save(self.manifest_path)


def recover_manifest(profile: Profile) -> Manifest | None:
    """The manifest of the log in ``profile.log_dir``, consistent with its complete segments
    (``Manifest.recover``); None if the log has no segments or there is no manifest."""
    segs = {s.number for s in list_segments(profile.log_dir)}
    if not segs:
        return None
    return Manifest.recover(profile.manifest_path, lambda n: n in segs)


def continue_generator(catalog: Catalog, m: Manifest, settings: dict | None = None) -> Generator:
    """A generator continuing the stream of manifest ``m`` (the one mechanism behind
    ``vendlab run --resume`` and a restarted ``vendlab produce``): next event id, simulated time
    after the last event, counts going on from the manifest's. With ``settings`` (seed, rate,
    time_scale, bad_rate, dup_rate asked for now) they must be those of ``m`` (ValueError)."""
    m.complete = False
    if settings is not None:
        Generator(catalog, **settings).check_continues(m)
    return Generator.from_manifest(catalog, m)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    a = np.asarray(values, dtype=float)
    return {f"p{p}": round(float(np.percentile(a, p)), 1) for p in (50, 95, 99)}


def with_all_keys(view: dict[str, int], keys) -> dict[str, int]:
    return {k: int(view.get(k, 0)) for k in sorted(set(keys) | set(view))}


class Runner:
    """Embedded run of one or more architectures on one log."""

    def __init__(self, profile: Profile, archs: list[str], settings: RunSettings, resume: bool = False, progress=None):
        self.profile = profile
        self.archs = archs
        self.s = settings
        self.resume = resume
        self.out = progress
        self.pipelines: list = []
        self.spark = None
        self.samples: list[dict] = []
        self.validation_history = invariants.ValidationHistory()
        self.dashboard_stop = None
        self.dashboard_url: str | None = None
        self.feeder: LogFeeder | None = None  # the running feeder (for observers: behind_s, manifest)
        self.warmup: dict | None = None  # what the warm-up did and how long it took (vendlab.warmup)
        # Observer hooks (the benchmark): on_start(runner) once the pipelines and the feeder run,
        # on_stop(runner) after the drain, before the queries stop (their progress is still there).
        self.on_start = None
        self.on_stop = None

    # -- set-up ---------------------------------------------------------------------------
    def prepare_dir(self) -> Catalog:
        """Lock the data dir (before anything is written), move its checkpoints along if it was
        moved, and check that it holds what the run needs (vendlab.datadir)."""
        d = self.profile.data_dir
        if self.resume and not d.is_dir():
            raise RunError(f"nothing to resume in {d}: no such folder (check the --data-dir path)")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"data dir {d} is not writable ({e.strerror}); choose a writable --data-dir") from e
        datadir.acquire(
            d, " ".join(["vendlab", "run --resume" if self.resume else "run", "--arch", ",".join(self.archs)])
        )
        self._locked = True
        try:
            probe = d / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise RunError(f"data dir {d} is not writable ({e.strerror}); choose a writable --data-dir") from e
        if self.resume:
            if not self.profile.catalog_path.exists():
                raise RunError(f"nothing to resume in {d}: no catalog.json (start a run there first)")
            if not self.profile.manifest_path.exists():
                raise RunError(
                    f"nothing to resume in {d}: no manifest.json (the run's ground truth); "
                    f"start a new run in a new --data-dir"
                )
            datadir.relocate(d, self.log)
            return load_json_file(Catalog.load, self.profile.catalog_path)
        if list_segments(self.profile.log_dir):
            raise RunError(
                f"data dir {d} already holds a run (its log has segments); use a new --data-dir, "
                f"remove this one, or add --resume to finish processing it"
            )
        datadir.relocate(d, self.log)
        self.profile.log_dir.mkdir(exist_ok=True)
        catalog = make_catalog(self.s.seed, machines=self.s.machines)
        catalog.save(self.profile.catalog_path)
        return catalog

    def bind(self, store) -> None:
        """Each query's checkpoint and the store (and lambda's master dataset) must belong
        together; refused with the rebuild command otherwise (vendlab.datadir)."""
        if self.profile.name != "embedded":
            return
        d = self.profile.data_dir
        for arch in self.archs:
            for job in architectures.get(arch).jobs:
                ckpt = Path(self.profile.checkpoint(job.store_job))
                if job.kind == architectures.INGEST:
                    datadir.bind_master(d, ckpt, Path(self.profile.master_path))
                elif job.kind == architectures.VIEW:
                    datadir.bind_stream(d, ckpt, job.store_job, store, job.title)

    def make_generator(self, catalog: Catalog) -> tuple[Generator, float]:
        """The generator and how long to run it; on --resume, no new events: the recovered
        manifest (consistent with the complete segments) and only a new end marker."""
        if not self.resume:
            gen = Generator(
                catalog, self.s.seed, self.s.rate, self.s.time_scale, bad_rate=self.s.bad_rate, dup_rate=self.s.dup_rate
            )
            return gen, self.s.duration
        m = load_json_file(lambda _p: recover_manifest(self.profile), self.profile.manifest_path)
        if m is None:
            raise RunError(f"nothing to resume in {self.profile.data_dir}: no manifest.json")
        return continue_generator(catalog, m), 0.0

    def log(self, msg: str) -> None:
        print(msg, file=self.out or sys.stderr, flush=True)

    # -- the run --------------------------------------------------------------------------
    def run(self) -> dict:
        from vendlab.spark import check_java

        check_java()  # before touching the data dir
        self._locked = False
        try:
            catalog = self.prepare_dir()
            if self.resume:
                self.make_generator(catalog)  # a missing or damaged manifest: said before anything else
                if self.profile.store == "sqlite" and not self.profile.sqlite_path.exists():
                    datadir.check_store_present(self.profile.data_dir)
            store = open_checked_store(self.profile)
            self.bind(store)
            return self._run(catalog, store)
        finally:
            if self._locked:
                datadir.release(self.profile.data_dir)

    def _run(self, catalog: Catalog, store) -> dict:
        from vendlab.spark import get_spark

        self.log(f"vendlab: data dir {self.profile.data_dir}; starting Spark ({self.profile.spark_master}) ...")
        from pyspark.sql import SparkSession

        self.own_spark = SparkSession.getActiveSession() is None  # else: a caller's session, left running
        stop_validation = threading.Event()
        feeder = None
        try:
            if self.s.dashboard_port is not None:
                from vendlab.dashboard import start_dashboard_in_thread

                self.dashboard_url, self.dashboard_stop = start_dashboard_in_thread(
                    self.profile.data_dir, port=self.s.dashboard_port
                )
                self.log(f"vendlab: dashboard on {self.dashboard_url}")
            self.spark = get_spark(self.profile, ui=self.s.ui)
            if self.s.warmup_events:
                self._warm_up(catalog)
            self.pipelines = [
                architectures.get(a).pipeline(self.spark, self.profile, catalog, self.s) for a in self.archs
            ]
            for p in self.pipelines:
                p.start()
            validator = Validator(
                self.profile.log_dir, catalog, open_store(self.profile), window_ms=self.profile.validation_window_ms
            )
            vthread = threading.Thread(target=validator.run, args=(stop_validation,), name="validation", daemon=True)
            if self.s.validation:
                vthread.start()
            gen, duration = self.make_generator(catalog)
            writer = SegmentWriter(self.profile.log_dir, roll_seconds=self.s.roll_seconds)
            feeder = LogFeeder(gen, writer, self.s.rate, duration, self.profile.manifest_path)
            if self.resume:
                self.log(
                    f"vendlab: resuming from the checkpoints in {self.profile.data_dir} "
                    f"({len(list_segments(self.profile.log_dir))} segments in the log, no new events)"
                )
            else:
                self.log(
                    f"vendlab: generating {self.s.rate:,.0f} events/s for {duration:g} s "
                    f"({', '.join(self.archs)}{' + validation' if self.s.validation else ''}) ..."
                )
            feeder.start()
            self.feeder = feeder
            if self.on_start:
                self.on_start(self)
            self._watch(feeder, store, until=lambda: not feeder.is_alive())
            if feeder.error:
                raise feeder.error
            self.log("vendlab: generator done; draining (waiting for every view to see the end marker) ...")
            jobs = [j for p in self.pipelines for j in p.latency_jobs] + (
                [base.VALIDATION] if self.s.validation else []
            )
            timeout = self.s.drain_timeout if self.s.drain_timeout is not None else 120 + (self.s.duration or 0)
            deadline = time.monotonic() + timeout
            drained = self._watch(
                feeder,
                store,
                until=lambda: all(store.has_marker(j, feeder.end_marker) for j in jobs),
                deadline=deadline,
            )
            self._sample(feeder, store)  # the drained views, checked like the others
            for p in self.pipelines:
                p.finish(drained)
            if self.on_stop:
                self.on_stop(self)
            stop_validation.set()
            if vthread.is_alive():
                vthread.join(timeout=30)
            return self.summary(feeder, store, catalog, drained)
        finally:
            stop_validation.set()
            if feeder is not None:
                feeder.stop_event.set()
            self.shutdown()

    def _warm_up(self, catalog: Catalog) -> None:
        from vendlab.warmup import warm_up

        self.log(
            f"vendlab: warming up Spark on {self.s.warmup_events:,} throw-away events in a scratch folder "
            f"(they never reach the views) ..."
        )
        self.warmup = warm_up(
            self.spark,
            catalog,
            self.archs,
            self.s.warmup_events,
            bucket_ms=self.profile.bucket_ms,
            progress=lambda m: self.log(f"vendlab: {m}"),
        )
        self.log(f"vendlab: warm-up done in {self.warmup['seconds']:.1f} s; the clock starts now")

    def _watch(self, feeder: LogFeeder, store, until, deadline: float | None = None) -> bool:
        last = last_sample = 0.0
        while not until():
            for p in self.pipelines:
                p.check()
            if deadline is not None and time.monotonic() > deadline:
                return False
            if time.monotonic() - last_sample >= self.s.sample_interval:
                last_sample = time.monotonic()
                self._sample(feeder, store)
            if time.monotonic() - last >= 2.0:
                last = time.monotonic()
                self.log(self._progress_line(feeder, store))
            time.sleep(0.05)
        return True

    def _sample(self, feeder: LogFeeder, store) -> None:
        """Exactness over time (``vendlab.invariants``): each pipeline's user-facing view against
        what had been generated *by then* (views are read first, then the generator's counts, which
        only grow), and against what validation had when the view's last applied micro-batch was
        read (never below it); ``minus_validation`` compares totals read at the same moment."""
        with store.snapshot():
            views = {p.name: p.views(store)[p.exact_views[0]] for p in self.pipelines}
            read_ms = {p.name: invariants.newest_marker_ms(store, p.latency_jobs) for p in self.pipelines}
            validation = store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT)
            validation_ms = invariants.newest_marker_ms(store, [base.VALIDATION])
        if validation_ms is not None:  # how far validation had read the log (its newest marker)
            self.validation_history.add(validation_ms, validation)
        generated = dict(feeder.gen.manifest.items_by_product)
        t = round((wall_ms() - feeder.started_ms) / 1000, 2) if feeder.started_ms else 0.0
        sample = {"t": t, "generated": sum(generated.values()), "validation": sum(validation.values())}
        for name, v in views.items():
            floor = self.validation_history.at_or_before(read_ms[name])
            sample[name] = {
                "items": sum(v.values()),
                "over_generated": invariants.excess(v, generated),
                "under_validation": invariants.shortfall(v, floor) if floor is not None else 0,
                "validation_floor": sum(floor.values()) if floor is not None else None,  # items of that floor
                "minus_validation": sum(v.values()) - sum(validation.values()),
            }
        if all(ms is not None for ms in read_ms.values()) and read_ms:
            self.validation_history.forget_before(min(read_ms.values()))
        self.samples.append(sample)

    def _progress_line(self, feeder: LogFeeder, store) -> str:
        m = feeder.gen.manifest
        el = max(1e-9, (wall_ms() - feeder.started_ms) / 1000)
        if self.resume:  # no new events: a rate would divide the old log by the seconds since the restart
            parts = [f"[{el:5.0f}s] log holds {m.events:,} events (resumed, none new)"]
        else:
            parts = [f"[{el:5.0f}s] generated {m.events:,} ({m.events / el:,.0f}/s)"]
        for p in self.pipelines:
            parts.append(p.progress(store))
        val = sum(store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT).values())
        parts.append(f"validation {val:,} items")
        return " | ".join(parts)

    def summary(self, feeder: LogFeeder, store, catalog: Catalog, drained: bool) -> dict:
        m = Manifest.load(self.profile.manifest_path)
        products = [p.product for p in catalog.products]
        expected = with_all_keys(m.items_by_product, products)
        validation = with_all_keys(store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT), products)
        total_lines = m.events + m.markers
        warnings = self.warnings(feeder, m)
        out = {}
        for p in self.pipelines:
            views = {k: with_all_keys(v, products) for k, v in p.views(store).items()}
            views["validation"] = validation
            lat = [vis - cre for j in p.latency_jobs for cre, vis in store.marker_latencies(j)]
            end_ms = max((vis for j in p.latency_jobs for _, vis in store.marker_latencies(j)), default=None)
            seconds = (end_ms - feeder.started_ms) / 1000 if end_ms else None
            res = {
                "arch": p.name,
                "generated": {
                    "events": m.events,
                    "sales": m.sales,
                    "malformed": m.malformed,
                    "duplicates": m.duplicates,
                },
                "views": views,
                "expected": expected,
                "exact": drained
                and all(views[k] == expected for k in p.exact_views + (["validation"] if self.s.validation else [])),
                "latency_ms": percentiles(lat),
                "throughput_eps": round(total_lines / seconds, 1) if seconds else None,
                "drained": drained,
                "warmup_s": self.warmup["seconds"] if self.warmup else None,
                "dead_letters": store.read_view(p.latency_jobs[0], base.DEAD_LETTERS),
                "expected_dead_letters": dict(m.malformed_by_reason),
            }
            res["max_overcount"] = max((x[p.name]["over_generated"] for x in self.samples), default=0)
            res["max_undercount"] = max((x[p.name]["under_validation"] for x in self.samples), default=0)
            res["samples"] = [
                {"t": x["t"], "generated": x["generated"], "validation": x["validation"], **x[p.name]}
                for x in self.samples
            ]
            res.update(p.extra_summary(store))
            res["warnings"] = warnings
            out[p.name] = res
        return out

    def warnings(self, feeder: LogFeeder, m: Manifest) -> list[str]:
        """What makes this run not the one that was asked for (reported, exit code 3)."""
        out = []
        if not self.resume and self.s.duration:
            asked = self.s.rate * self.s.duration
            made = m.events
            if made < SCHEDULE_SHARE * asked:
                out.append(
                    f"the generator fell behind its schedule: it wrote {made:,} events in {self.s.duration:g} s "
                    f"({made / self.s.duration:,.0f}/s) of the {asked:,.0f} asked ({self.s.rate:,.0f}/s); "
                    f"this machine could not generate (or write) faster, so the run measured a lower rate "
                    f"than asked: lower --rate"
                )
        if m.events and not m.sales:
            out.append(
                "the workload has no valid sales, so the items views are empty and their exactness says "
                "nothing: simulated time per event (--time-scale / --rate) is too coarse or too fine for the "
                "simulated fleet; keep --time-scale near its default 60"
            )
        return out

    def shutdown(self) -> None:
        for p in self.pipelines:
            try:
                p.stop()
            except Exception as e:  # keep stopping the others; say what failed
                self.log(f"vendlab: stopping {p.name} failed: {e}")
        if self.spark is not None and getattr(self, "own_spark", True):
            self.spark.stop()
        self.spark = None
        if self.dashboard_stop is not None and not self.s.keep_dashboard:
            self.dashboard_stop()
            self.dashboard_stop = None


def reset_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def empty_dir(path: Path) -> None:
    """Remove everything in ``path`` but its lock file (the caller holds the lock)."""
    path.mkdir(parents=True, exist_ok=True)
    for p in path.iterdir():
        if p.name != datadir.LOCK_NAME:
            datadir.remove_tree(p)


def load_json_file(load, path: Path):
    """load(path), a damaged (cut, edited) JSON file said as such."""
    try:
        return load(path)
    except (ValueError, TypeError, KeyError) as e:
        raise RunError(
            f"{path} is damaged ({type(e).__name__}: {e}); it cannot be repaired from the log. "
            f"Read what is there with `vendlab views --data-dir {path.parent}`, and start a new run "
            f"in a new --data-dir"
        ) from e


def open_checked_store(profile: Profile):
    """The profile's store; a damaged SQLite file said with the rebuild command."""
    import sqlite3

    try:
        store = open_store(profile)
        if profile.store == "sqlite":
            store._con().execute("SELECT count(*) FROM applied").fetchone()
        return store
    except sqlite3.DatabaseError as e:
        if _transient(e):
            raise
        raise RunError(
            f"the view store {profile.sqlite_path} is damaged ({e}); rebuild it from the log: "
            f"`{datadir.rebuild_command(profile.data_dir)}` (it sets the damaged file aside)"
        ) from e


def _transient(e: BaseException) -> bool:
    from vendlab.store.sqlite import SqliteStore

    return SqliteStore.is_transient(e)
