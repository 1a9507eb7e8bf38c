from collections import Counter

import orjson

from vendlab import schema
from vendlab.contract import validate_line
from vendlab.eventlog import SegmentWriter, list_segments
from vendlab.world.catalog import make_catalog
from vendlab.world.generator import BAD_KINDS, Generator, Manifest


def _lines(gen, n, step):
    out = b""
    while n:
        k = min(n, step)
        out += gen.take(k).data
        n -= k
    return out


def test_same_seed_same_events_however_sliced():
    cat = make_catalog(5)
    a = _lines(Generator(cat, 5, 1000, bad_rate=0.02, dup_rate=0.02), 10_000, 10_000)
    b = _lines(Generator(cat, 5, 1000, bad_rate=0.02, dup_rate=0.02), 10_000, 333)
    c = _lines(Generator(cat, 6, 1000, bad_rate=0.02, dup_rate=0.02), 10_000, 10_000)
    assert a == b
    assert a != c


def test_catalog_is_reproducible_and_has_both_categories():
    a, b = make_catalog(9), make_catalog(9)
    assert a == b
    assert len(a.products) >= 8
    assert {p.category for p in a.products} == set(schema.CATEGORIES)
    assert len({m.place for m in a.machines}) == len(a.machines)


def test_events_follow_the_contract_and_counts_match_the_manifest():
    cat = make_catalog(2)
    gen = Generator(cat, 2, 5000, bad_rate=0.03, dup_rate=0.02)
    data = _lines(gen, 30_000, 7_000)
    lines = data.split(b"\n")[:-1]
    m = gen.manifest
    assert len(lines) == m.events == 30_000
    reasons = Counter()
    seen, items, types, dups = set(), Counter(), Counter(), 0
    for line in lines:
        ev, reason = validate_line(line, cat.machine_ids, cat.product_names)
        if ev is None:
            reasons[reason] += 1
            continue
        if ev["event_id"] in seen:
            dups += 1
            continue
        seen.add(ev["event_id"])
        types[ev["type"]] += 1
        if ev["type"] == schema.SALE:
            items[ev["product"]] += ev["quantity"]
            assert ev["category"] == next(p.category for p in cat.products if p.product == ev["product"])
    assert dict(reasons) == m.malformed_by_reason
    assert sum(reasons.values()) == m.malformed > 0
    assert set(reasons) <= set(BAD_KINDS)
    assert dups == m.duplicates > 0
    assert types[schema.SALE] == m.sales
    assert types[schema.TELEMETRY] == m.telemetry > 0
    assert types[schema.RESTOCK] == m.restocks > 0
    assert {k: v for k, v in items.items()} == {k: v for k, v in m.items_by_product.items() if v}


def test_event_times_follow_the_simulated_clock():
    cat = make_catalog(1)
    gen = Generator(cat, 1, rate=100, time_scale=60)
    lines = gen.take(300).data.split(b"\n")[:-1]
    times = [orjson.loads(line)["event_time"] for line in lines]
    assert times[0] == "2026-01-05T06:00:00.000Z"
    # 100 events/s at 60x: 0.6 simulated seconds between events, 300 events = 3 simulated minutes
    assert times[-1] == "2026-01-05T06:02:59.400Z"


def test_segments_are_atomic_and_numbered(tmp_path):
    w = SegmentWriter(tmp_path, roll_seconds=1e9, roll_lines=3, fsync=False)
    w.append(b"a\nb\n", 2, 1000)
    assert list_segments(tmp_path) == []  # not complete yet: nothing visible
    assert not list(tmp_path.glob("*.tmp"))  # still in memory
    w.append(b"c\n", 1, 1001)
    segs = list_segments(tmp_path)
    assert [s.number for s in segs] == [0] and segs[0].first_ms == 1000
    assert segs[0].path.read_bytes() == b"a\nb\nc\n"
    (tmp_path / ".seg-000000000001-5.jsonl.tmp").write_bytes(b"half")  # a crashed writer's leftover
    w2 = SegmentWriter(tmp_path, fsync=False)
    assert not list(tmp_path.glob(".*.tmp"))
    assert w2.next_number == 1


def test_manifest_recovery_keeps_it_consistent_with_the_log(tmp_path):
    path = tmp_path / "manifest.json"
    Manifest(seed=1, settings={}, events=10, segments=1).save(path)
    pending = Manifest.pending_path(path)
    Manifest(seed=1, settings={}, events=20, segments=2).save(pending)
    # the crash came before segment 1 was renamed into place: the pending manifest is dropped
    m = Manifest.recover(path, lambda n: n < 1)
    assert (m.events, m.segments) == (10, 1) and not pending.exists()
    Manifest(seed=1, settings={}, events=20, segments=2).save(pending)
    # the crash came after the rename: the pending manifest is the right one
    m = Manifest.recover(path, lambda n: n < 2)
    assert (m.events, m.segments) == (20, 2)
