"""Lambda over a log of several partitions that advance unevenly (as Kafka's do): the batch cutoff
comes from the *least* advanced partition, and the hand-off stays exact.

The file log puts every line in partition 0, so there the cutoff is the same whichever way the
partitions are combined. Here the log is a synthetic envelope (``vendlab.jobs.sources``) with three
``log_partition`` values: per partition the events come in event-time order, one every 20 s of
simulated time for two hours, with duplicate deliveries and a malformed line. The batch layer reads
snapshots in which the partitions reached different times (the ingest of a lagging partition is
behind); the speed layer (the streaming job's sink, ``BatchSink``) has read at least as far.

Taking the most advanced partition for the cutoff would put events of the lagging partition that
the snapshot does not hold yet below the cutoff, outside both the batch view and serving: these
tests fail then. The hand-off test also checks the promise of ``run_batch`` after each run: a reader
that fetched the previous version's cutoff still completes it (batch view + speed rows at or after
that cutoff) to the same exact numbers.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import iso

from vendlab.architectures.lambda_ import add
from vendlab.architectures.lambda_ import read_parts as lambda_views
from vendlab.config import embedded
from vendlab.contract import validate_line
from vendlab.jobs import batch as jb
from vendlab.jobs import parse
from vendlab.jobs.streaming import BatchSink
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore
from vendlab.world.catalog import make_catalog

T0 = 1_767_592_800_000  # 2026-01-05T06:00:00Z
MIN = 60_000
STEP = 20_000  # an event every 20 s of simulated time, per partition
PARTITIONS = 3
LATENESS = 5 * MIN
CATALOG = make_catalog(1)


def partition_log(p: int) -> list[tuple[int, str]]:
    """(event time, line) of partition p in log order: two hours of sales in event-time order, every
    50th event followed by a second delivery of the event two before it (40 s behind: within the
    lateness bound), and one malformed line."""
    products = {x.product: x.category for x in CATALOG.products}
    names = sorted(products)
    out: list[tuple[int, str]] = []
    for i in range(120 * MIN // STEP + 1):
        t = T0 + i * STEP
        m = CATALOG.machines[(i + p) % len(CATALOG.machines)]
        product = names[(3 * i + p) % len(names)]
        ev = {
            "event_id": f"p{p}-e{i}",
            "type": "sale",
            "machine_id": m.machine_id,
            "place": m.place,
            "product": product,
            "category": products[product],
            "quantity": 1 + (i + p) % 3,
            "unit_price": 1.5,
            "customer_id": "C1",
            "event_time": iso(t),
        }
        out.append((t, json.dumps(ev, separators=(",", ":"))))
        if i % 50 == 0 and i > 0:
            out.append(out[-3])
        if i == 77:
            out.append((t, f'{{"event_id":"bad-{p}","type":"sale"'))
    return out


LOG = {p: partition_log(p) for p in range(PARTITIONS)}


def upto(levels_min: tuple[int, ...]) -> list[tuple[int, int, int, str]]:
    """(partition, offset, event time, line) of each partition's prefix up to its level (minutes of
    event time reached): what a consumer of that partition had read."""
    out = []
    for p, level in enumerate(levels_min):
        for off, (t, line) in enumerate(LOG[p]):
            if t > T0 + level * MIN:
                break
            out.append((p, off, t, line))
    return out


def envelope(spark, rows):
    """The log envelope of ``rows``: log_ts = the event time (a Kafka record's timestamp)."""
    data = [(line, p, off, t, f"vendlab-events-{p}@{off}") for p, off, t, line in rows]
    df = spark.createDataFrame(data, "value string, log_partition int, log_offset long, t long, position string")
    return df.selectExpr("value", "log_partition", "log_offset", "timestamp_millis(t) as log_ts", "position")


def items(rows, before_ms: int | None = None) -> dict[str, int]:
    """Items per product of the unique valid sales in ``rows`` (the contract in plain Python)."""
    seen, out = set(), Counter()
    for _, _, t, line in rows:
        ev, _ = validate_line(line, CATALOG.machine_ids, CATALOG.product_names)
        if ev is None or ev["event_id"] in seen or (before_ms is not None and t >= before_ms):
            continue
        seen.add(ev["event_id"])
        out[ev["product"]] += ev["quantity"]
    return dict(sorted(out.items()))


def cutoff_bucket(levels_min, profile) -> int:
    """The contract of the cutoff: the least advanced partition's newest event time, minus lateness."""
    return (T0 + min(levels_min) * MIN - profile.lateness_ms) // profile.bucket_ms


@pytest.fixture
def profile(tmp_path):
    return embedded(tmp_path, lateness_ms=LATENESS, bucket_ms=MIN)


def test_the_synthetic_log_has_partitions_that_advance_unevenly():
    for p in LOG:
        lines = [x for _, x in LOG[p]]
        assert len(lines) > 360 and len(lines) - len(set(lines)) >= 6  # duplicate deliveries
    snap = upto((100, 40, 70))
    newest = {p: max(t for q, _, t, _ in snap if q == p) for p in range(PARTITIONS)}
    assert newest == {0: T0 + 100 * MIN, 1: T0 + 40 * MIN, 2: T0 + 70 * MIN}


def test_batch_cutoff_is_the_least_advanced_partition_minus_lateness(spark, profile):
    levels = (100, 40, 70)  # partition 1 lags an hour behind partition 0
    snap = upto(levels)
    rows, cutoff, read = jb.batch_view_of(envelope(spark, snap), profile, CATALOG)
    assert read == len(snap)
    assert cutoff == cutoff_bucket(levels, profile) == (T0 + 35 * MIN) // MIN
    got = {k: v for view, k, v in rows if view == base.ITEMS_BY_PRODUCT}
    assert got == items(snap, before_ms=cutoff * MIN)
    # and a snapshot where another partition lags: the same rule, whichever partition it is
    levels = (30, 90, 60)
    rows, cutoff, _ = jb.batch_view_of(envelope(spark, upto(levels)), profile, CATALOG)
    assert cutoff == cutoff_bucket(levels, profile)


def test_handoffs_over_uneven_partitions_stay_exact_and_keep_the_previous_cutoff_readable(spark, profile, monkeypatch):
    """Three batch runs; before each, the speed layer has read each partition at least as far as
    the batch snapshot holds. After each run, serving = the unique valid sales the speed layer has
    read (the lagging partition's events past the snapshot included), and so does a reader that
    fetched the previous version's cutoff before the run."""
    store = SqliteStore(profile.sqlite_path)
    sink = BatchSink(profile, base.LAMBDA_SPEED, profile.bucket_ms)
    fed: list[tuple[int, int, int, str]] = []
    fed_ids: set[str] = set()
    plan = [  # (levels the speed layer has read, levels of the batch snapshot)
        ((100, 50, 80), (100, 40, 70)),
        ((120, 95, 115), (120, 90, 110)),
        ((120, 120, 120), (120, 120, 120)),
    ]
    snapshot = {}
    monkeypatch.setattr(
        jb,
        "compute_batch_view",
        lambda spark_, profile_, catalog_: jb.batch_view_of(snapshot["df"], profile_, catalog_),
    )
    previous = None
    for batch_id, (speed_levels, batch_levels) in enumerate(plan):
        # the speed layer's micro-batch: what it had not read yet (a copy of an event it read
        # in an earlier micro-batch is dropped, as the streaming job's deduplication state does)
        new = [r for r in upto(speed_levels) if r not in fed]
        frame = [r for r in new if _event_id(r[3]) not in fed_ids]
        fed += new
        fed_ids |= {_event_id(r[3]) for r in new}
        df = parse.parse(envelope(spark, frame), sorted(CATALOG.machine_ids), sorted(CATALOG.product_names))
        sink(df.dropDuplicates(["dedup_key"]), batch_id)

        snapshot["df"] = envelope(spark, upto(batch_levels))
        info = jb.run_batch(spark, profile, CATALOG, store)
        assert info.version == batch_id + 1
        expected = items(fed)
        with store.snapshot():
            assert lambda_views(store)["serving"] == expected, f"after batch run {info.version}"
            if previous is not None:  # a reader that fetched the previous cutoff before this run
                assert (
                    add(
                        store.read_batch_view(previous.version, base.ITEMS_BY_PRODUCT),
                        store.read_view(base.LAMBDA_SPEED, base.ITEMS_BY_PRODUCT, min_bucket=previous.cutoff_bucket),
                    )
                    == expected
                ), f"reader of version {previous.version} after batch run {info.version}"
        assert info.cutoff_bucket == cutoff_bucket(batch_levels, profile)
        previous = info
    assert sum(expected.values()) == sum(items(upto((120, 120, 120))).values())
    assert [r.cutoff_bucket for r in store.batch_history()] == sorted({r.cutoff_bucket for r in store.batch_history()})


def _event_id(line: str) -> str | None:
    ev, _ = validate_line(line, CATALOG.machine_ids, CATALOG.product_names)
    return None if ev is None else ev["event_id"]
