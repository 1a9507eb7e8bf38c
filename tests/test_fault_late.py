"""Duplicates, out-of-order and late events (minutes late in simulated time), on both sides of
each architecture's bound (docs/reliability.md, "Later than the watermark"):

- kappa drops a duplicate delivery while its first delivery is in the dedup state, which holds an
  event id until the watermark (newest *log* time minus ``Profile.dedup_delay``) passes its first
  delivery + the delay, about 2 x ``dedup_delay`` of log time; a duplicate delivered later than that
  is counted twice. A late event (old event time, delivered now) is counted: kappa has no
  event-time cutoff.
- lambda's batch cutoff assumes an event is at most ``Profile.lateness_ms`` late: a later one is
  missing from serving until the next batch run, which counts it; it is never counted twice, and
  neither is a duplicate delivered long after its original. A valid sale dated 2099 does not move
  the cutoff into the future (its time counts as at most log time + ``Profile.event_time_skew_ms``
  there): later events are still served at once by the speed layer.

The logs are written segment by segment with SegmentWriter, each segment stamped with its log
time (as a generator would), so the watermark on log time moves as in a real run.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
from conftest import iso, record, sale_line

from vendlab.architectures.lambda_ import read_parts as lambda_views
from vendlab.config import embedded
from vendlab.eventlog import SegmentWriter
from vendlab.jobs import sources
from vendlab.jobs.batch import run_batch
from vendlab.jobs.ingest import INGEST, with_date
from vendlab.jobs.streaming import start_view_job
from vendlab.oracle import Validator
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore
from vendlab.world.catalog import make_catalog
from vendlab.world.generator import Generator, parse_start

T0 = parse_start("2026-01-05T06:00:00Z")
MIN = 60_000


class Sales:
    """Valid sale lines of a catalog, with chosen ids, products, quantities and event times."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.n = 0

    def line(self, eid: str, i: int, qty: int, at_ms: int) -> bytes:
        return sale_line(self.catalog, eid, i, qty, iso(at_ms))

    def fresh(self, k: int, at_ms: int) -> list[bytes]:
        out = []
        for _ in range(k):
            self.n += 1
            out.append(self.line(f"f{self.n}", self.n, 1 + self.n % 3, at_ms + self.n))
        return out


_MTIME = [1_700_000_000]


def write(writer: SegmentWriter, lines: list[bytes], log_ms: int) -> None:
    writer.append(b"".join(lines), len(lines), log_ms)
    seg = writer.roll()
    # Spark's file source takes files in modification-time order; segments written within one
    # tick of the file system's clock tie, and their order is then the directory's. These tests
    # need one segment per micro-batch in log order, so each segment gets its own second.
    _MTIME[0] += 1
    os.utime(seg.path, (_MTIME[0], _MTIME[0]))


def views(store, job):
    return store.read_view(job, base.ITEMS_BY_PRODUCT)


def test_kappa_duplicates_within_and_beyond_the_dedup_delay_and_a_late_event(spark, tmp_path):
    profile = embedded(tmp_path, max_files_per_trigger=1)  # one segment per micro-batch
    assert profile.dedup_delay == "10 minutes"
    delay = 10 * MIN
    catalog = make_catalog(41)
    catalog.save(tmp_path / "catalog.json")
    s = Sales(catalog)
    w = SegmentWriter(profile.log_dir)
    a, b = s.line("A", 1, 2, T0), s.line("B", 2, 3, T0 + 1)
    # equal malformed lines in one segment are not duplicate deliveries: each is a dead letter
    same = [b"not json\n", b"\n", b"not json\n", b"\n", b"not json\n"]
    write(w, [a, b] + same + s.fresh(30, T0), T0)
    write(w, [a] + s.fresh(30, T0 + delay // 2), T0 + delay // 2)  # A again, within the delay: dropped
    write(w, s.fresh(30, T0 + 25 * MIN), T0 + 25 * MIN)  # log time moves on: watermark T0 + 15 min
    write(w, s.fresh(30, T0 + 26 * MIN), T0 + 26 * MIN)  # ... and A's and B's ids leave the state
    late = s.line("C", 3, 1, T0 - 120 * MIN)  # two hours late in event time, delivered now
    write(w, [b, late] + s.fresh(30, T0 + 27 * MIN), T0 + 27 * MIN)  # B again, 27 min later: counted twice

    q = start_view_job(spark, profile, catalog, base.KAPPA, available_now=True)
    q.awaitTermination()
    assert q.exception() is None
    store = SqliteStore(profile.sqlite_path)
    Validator(profile.log_dir, catalog, store).poll()
    kappa, truth = Counter(views(store, base.KAPPA)), Counter(views(store, base.VALIDATION))
    assert len(store.micro_batches(base.KAPPA)) == 5
    b_product = catalog.products[2].product
    # exactly B's second delivery differs: A's duplicate was dropped, the late C counted once
    assert kappa - truth == Counter({b_product: 3}) and truth - kappa == Counter()
    assert truth[catalog.products[3].product] >= 1
    assert (
        store.read_view(base.KAPPA, base.DEAD_LETTERS)
        == store.read_view(base.VALIDATION, base.DEAD_LETTERS)
        == {"not_json_object": 5}
    )
    record(
        "kappa_dedup_bound",
        duplicate_after_5_min="dropped",
        duplicate_after_27_min="counted twice",
        event_2h_late="counted once",
        kappa_minus_validation=dict(kappa - truth),
    )


def _ingest_available_now(spark, profile):
    """Lambda's ingest job (vendlab.jobs.ingest) run to the end of the log, then stopped."""
    q = (
        with_date(sources.read_log_stream(spark, profile))
        .writeStream.queryName(INGEST)
        .format("parquet")
        .partitionBy("date")
        .option("path", profile.master_path)
        .option("checkpointLocation", profile.checkpoint(INGEST))
        .trigger(availableNow=True)
        .start()
    )
    q.awaitTermination()
    assert q.exception() is None


def _speed_available_now(spark, profile, catalog):
    q = start_view_job(spark, profile, catalog, base.LAMBDA_SPEED, bucket_ms=profile.bucket_ms, available_now=True)
    q.awaitTermination()
    assert q.exception() is None


def out_of_order_log(profile, seed=43, events=3_000, segment_lines=500):
    """Generated events (1% duplicate deliveries) in segments of 5 simulated minutes; each
    segment shuffled, and the last 2 minutes of each moved partly into the next segment: events
    out of order, up to ~7 minutes late, within both bounds."""
    catalog = make_catalog(seed)
    catalog.save(profile.data_dir / "catalog.json")
    gen = Generator(catalog, seed, rate=100, time_scale=60, dup_rate=0.01)  # 600 ms per event
    rng = np.random.default_rng(seed)
    w = SegmentWriter(profile.log_dir)
    carry: list[bytes] = []
    for _ in range(events // segment_lines):
        chunk = gen.take(segment_lines)
        lines = [x + b"\n" for x in chunk.data.split(b"\n")[:-1]]
        late = rng.random(len(lines)) < 0.3
        late[:-200] = False  # only from the segment's last 2 simulated minutes
        here = carry + [x for x, m in zip(lines, late) if not m]
        rng.shuffle(here)
        carry = [x for x, m in zip(lines, late) if m]
        write(w, here, chunk.first_ms)
    write(w, carry, gen.now_ms())
    return catalog, gen.manifest, w


def test_lambda_out_of_order_duplicates_and_events_beyond_the_lateness_bound(spark, tmp_path):
    profile = embedded(tmp_path)
    assert profile.lateness_ms == 10 * MIN and profile.bucket_ms == MIN
    catalog, manifest, w = out_of_order_log(profile)
    truth = {k: v for k, v in manifest.items_by_product.items() if v}
    store = SqliteStore(profile.sqlite_path)

    _ingest_available_now(spark, profile)
    _speed_available_now(spark, profile, catalog)
    first = run_batch(spark, profile, catalog, store)
    assert first.cutoff_bucket * MIN > manifest.first_event_ms  # the batch view covers something
    assert lambda_views(store)["serving"] == truth  # out of order and duplicated: exact

    # late deliveries, log time one minute on:
    s = Sales(catalog)
    cutoff_ms = first.cutoff_bucket * MIN
    beyond = s.line("L1", 1, 3, cutoff_ms - 5 * MIN)  # ~15 min late: beyond the bound, before the cutoff
    within = s.line("L2", 2, 2, manifest.last_event_ms - 4 * MIN)  # 4 min late: within the bound
    seg0 = next(profile.log_dir.glob("seg-000000000000-*.jsonl")).read_bytes().split(b"\n")
    again = next(x for x in seg0 if b'"type":"sale"' in x) + b"\n"  # counted by the batch view;
    # delivered again ~30 min of log time later, past the speed layer's dedup delay
    write(w, [beyond, within, again], manifest.last_event_ms + MIN)
    p1, p2 = catalog.products[1].product, catalog.products[2].product

    _ingest_available_now(spark, profile)
    _speed_available_now(spark, profile, catalog)
    serving = Counter(lambda_views(store)["serving"])
    # the one beyond the bound is missing until the next batch run; nothing is counted twice
    assert serving == Counter(truth) + Counter({p2: 2})

    second = run_batch(spark, profile, catalog, store)
    assert second.version == first.version + 1
    assert lambda_views(store)["serving"] == dict(Counter(truth) + Counter({p1: 3, p2: 2}))
    Validator(profile.log_dir, catalog, store).poll()
    assert lambda_views(store)["serving"] == views(store, base.VALIDATION)
    record(
        "lambda_lateness_bound",
        cutoff_bucket=first.cutoff_bucket,
        event_15_min_late="missing until the next batch run, then counted once",
        event_4_min_late="counted at once",
        duplicate_30_min_later="not counted",
        out_of_order_and_1pct_duplicates="exact",
    )


def test_lambda_a_valid_sale_dated_2099_does_not_move_the_cutoff_into_the_future(spark, tmp_path):
    """A valid sale stamped far in the future (the contract allows years up to 2099), delivered at a
    normal log time: the batch cutoff stays near log time (each event counts as at most its log time
    + ``Profile.event_time_skew_ms`` when the batch finds the newest event), later normal events are
    served at once through the speed layer, and the 2099 sale is counted exactly once (speed side)."""
    profile = embedded(tmp_path)
    lateness, skew = profile.lateness_ms, profile.event_time_skew_ms
    assert lateness == 10 * MIN and skew == 10 * MIN
    catalog = make_catalog(44)
    catalog.save(tmp_path / "catalog.json")
    s = Sales(catalog)
    w = SegmentWriter(profile.log_dir)
    future_ms = parse_start("2099-06-01T12:00:00Z")
    future = s.line("FUTURE", 5, 7, future_ms)
    write(w, s.fresh(30, T0) + [future], T0)
    write(w, s.fresh(30, T0 + 20 * MIN), T0 + 20 * MIN)
    store = SqliteStore(profile.sqlite_path)
    p5 = catalog.products[5].product

    _ingest_available_now(spark, profile)
    _speed_available_now(spark, profile, catalog)
    first = run_batch(spark, profile, catalog, store)
    log_now = T0 + 20 * MIN
    # near log time (at most newest log time + skew - lateness), not in 2099; and it covers the first segment
    assert T0 // MIN < first.cutoff_bucket <= (log_now + skew - lateness) // MIN
    lam = lambda_views(store)
    assert lam["realtime"].get(p5, 0) >= 7  # the 2099 sale is in the speed view, after the cutoff
    Validator(profile.log_dir, catalog, store).poll()
    assert lam["serving"] == views(store, base.VALIDATION)

    # normal events a minute of log time later: served at once, through the speed layer
    later = s.fresh(12, log_now + MIN)
    write(w, later, log_now + MIN)
    _ingest_available_now(spark, profile)
    _speed_available_now(spark, profile, catalog)
    Validator(profile.log_dir, catalog, store).poll()
    truth = views(store, base.VALIDATION)
    added = Counter()
    for x in later:
        e = json.loads(x)
        added[e["product"]] += e["quantity"]
    serving = lambda_views(store)["serving"]
    assert Counter(serving) - Counter(lam["serving"]) == added  # exactly the new events, no batch run between
    assert serving == truth

    second = run_batch(spark, profile, catalog, store)
    assert second.version == first.version + 1
    assert first.cutoff_bucket <= second.cutoff_bucket <= (log_now + MIN + skew - lateness) // MIN
    lam = lambda_views(store)
    assert lam["serving"] == truth  # exact: the 2099 sale counted once, by the speed layer
    assert lam["batch"].get(p5, 0) + 7 <= truth[p5] and lam["realtime"].get(p5, 0) >= 7
    record(
        "lambda_future_event_time",
        cutoff_bucket=second.cutoff_bucket,
        sale_dated_2099="counted once by the speed layer; cutoff stays near log time",
        later_events="served at once",
    )
