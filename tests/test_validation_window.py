"""The validation consumer's seen ids are bounded by a window of log time (issue 13, symptom 6),
and the Kafka validation consumer never skips records silently (lost records stop it).

The rule (docs/architecture.md, "Duplicates"): a copy delivered at most ``window_ms`` of log time
after the previous copy of its id is dropped; one more than ``window_ms`` + one bucket later is
counted again. Memory holds the ids of one window plus a bucket, however long the log."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition
from conftest import sale_line

from vendlab.config import VALIDATION_WINDOW_MS, duration_ms, embedded
from vendlab.eventlog import SegmentWriter
from vendlab.kafka_log import KafkaLogWriter, KafkaValidator, LostRecordsError, consumer_config, topic_partitions
from vendlab.oracle import SeenIds, Validator
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore
from vendlab.world.catalog import make_catalog

MIN = 60_000
T0 = 1_767_592_800_000  # 2026-01-05T06:00:00Z


def test_the_default_window_covers_how_long_the_jobs_keep_an_id():
    """Spark keeps an id until the log has moved about 2 x dedup_delay past it (docs/reliability.md): a
    window below that would count copies the jobs drop, and is refused with what it must be."""
    p = embedded("/tmp/unused-vendlab")
    delay = duration_ms(p.dedup_delay)
    assert p.validation_window_ms == VALIDATION_WINDOW_MS >= 2 * delay
    for window in (delay - 1, delay, 2 * delay - 1):
        with pytest.raises(ValueError, match=rf"at least twice the jobs' dedup_delay .*{2 * delay} ms"):
            embedded("/tmp/unused-vendlab", validation_window_ms=window)
    assert embedded("/tmp/unused-vendlab", validation_window_ms=2 * delay).validation_window_ms == 2 * delay


def test_seen_ids_rule_and_bounded_memory_over_a_long_log():
    window, bucket = 10 * MIN, MIN
    seen = SeenIds(window, bucket)
    per_min = 50  # new ids per minute of log time
    counted = Counter()
    copies = []  # (due_ms, id, kind)
    delivered = {"within": set(), "beyond": set()}
    n = 0
    for minute in range(2_000):  # 200 windows
        t = T0 + minute * MIN
        seen.advance(t)
        for k in range(per_min):
            eid = f"e{n}"
            n += 1
            counted[eid] += seen.add(eid, t + k)
            if k == 0:
                copies.append((t + window, eid, "within"))  # exactly a window later: dropped
            elif k == 1:
                copies.append((t + window + bucket + 1, eid, "beyond"))  # later than window + bucket: counted
        for due, eid, kind in [c for c in copies if c[0] <= t + per_min]:
            seen.advance(due)
            counted[eid] += seen.add(eid, due)
            delivered[kind].add(eid)
        copies = [c for c in copies if c[0] > t + per_min]
        assert len(seen) <= per_min * (window + 2 * bucket) // MIN  # the window and a bucket, not the run
    doubles = {eid for eid, c in counted.items() if c == 2}
    assert len(delivered["within"]) > 1_900 and len(delivered["beyond"]) > 1_900
    assert doubles == delivered["beyond"]  # every copy a window later dropped, every later one counted
    assert seen.evicted > 0.9 * n and seen.most <= per_min * (window + 2 * bucket) // MIN


def test_a_copy_refreshes_its_id():
    """Kept from the *last* copy: what is kept at a horizon depends only on the log after
    replay_from_ms(horizon), which is what a restarted consumer re-reads."""
    seen = SeenIds(10 * MIN, MIN)
    assert seen.add("a", T0)
    seen.advance(T0 + 9 * MIN)
    assert not seen.add("a", T0 + 9 * MIN)
    seen.advance(T0 + 18 * MIN)
    assert "a" in seen and not seen.add("a", T0 + 18 * MIN)  # 9 min after the previous copy
    seen.advance(T0 + 30 * MIN)
    assert "a" not in seen
    assert seen.replay_from_ms(T0 + 30 * MIN) == T0 + 20 * MIN


def long_log(catalog, segments: int, per_segment: int, window: int):
    """Segments one minute of log time apart; every event delivered twice, the copy up to a
    window of log time later. Yields (log_ms, lines) and the exact truth (each id once)."""
    truth = Counter()
    later: dict[int, list[bytes]] = {}
    out = []
    for s in range(segments):
        lines = later.pop(s, [])
        for k in range(per_segment):
            eid, qty = f"s{s}-{k}", 1 + (s + k) % 3
            line = sale_line(catalog, eid, qty, qty)
            lines.append(line)
            truth[json.loads(line)["product"]] += qty
            later.setdefault(s + 1 + (k % (window // MIN)), []).append(line)  # 1..window minutes later
        out.append((T0 + s * MIN, lines))
    return out, dict(truth)


def test_embedded_validator_exact_bounded_and_resumes_from_the_window(tmp_path):
    catalog = make_catalog(5)
    window = 10 * MIN
    log, truth = long_log(catalog, segments=240, per_segment=40, window=window)
    w = SegmentWriter(tmp_path / "log")
    for t, lines in log[:150]:
        w.append(b"".join(lines), len(lines), t)
        w.roll()
    store = SqliteStore(tmp_path / "v.sqlite")
    v = Validator(tmp_path / "log", catalog, store, window_ms=window)
    v.poll()
    # the ids delivered in one window and a bucket of log time (a segment: 40 new ids, 40 copies),
    # whatever the length of the log (240 windows' worth of segments)
    bound = 2 * 40 * (window // MIN + 2)
    assert v.seen.most <= bound and v.seen.evicted > 0

    # a new process: re-reads only the last window's segments, then goes on exactly
    for t, lines in log[150:]:
        w.append(b"".join(lines), len(lines), t)
        w.roll()
    v2 = Validator(tmp_path / "log", catalog, store, window_ms=window)
    v2.poll()
    assert 0 < v2.replayed_segments <= window // MIN + 2
    assert store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == truth
    assert v2.seen.most <= bound


def produce_log(producer, topic, log):
    w = KafkaLogWriter(producer, topic)
    for t, lines in log:
        w.append(b"".join(lines), len(lines), t)
    w.flush()


def drain(v: KafkaValidator, topic, consumer) -> None:
    deadline = time.monotonic() + 60
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in topic_partitions(consumer, topic)
    }
    while v.stored_offsets() != {p: e for p, e in ends.items() if e}:
        assert time.monotonic() < deadline, "validation never reached the end of the topic"
        v.poll()


@pytest.mark.slow
def test_kafka_validator_exact_bounded_and_replays_only_the_window(cluster, tmp_path):
    producer, bootstrap = cluster
    catalog = make_catalog(6)
    window = 10 * MIN
    log, truth = long_log(catalog, segments=120, per_segment=30, window=window)
    topic = "t-window"
    produce_log(producer, topic, log[:80])
    store = SqliteStore(tmp_path / "v.sqlite")
    c1 = Consumer(consumer_config(bootstrap))
    v1 = KafkaValidator(c1, topic, catalog, store, max_batch=500, batch_wait_s=0.2, window_ms=window)
    drain(v1, topic, c1)
    # the window and a bucket, + the skew allowed between partitions (a quarter window: partitions
    # ahead are paused) + one store batch (the window moves after each batch); the log: 80 minutes
    bound = 2 * 30 * (window // MIN + 2 + window // 4 // MIN + 1) + 500
    assert v1.validator.seen.most <= bound
    counted = sum(v1.stored_offsets().values())
    c1.close()

    produce_log(producer, topic, log[80:])
    c2 = Consumer(consumer_config(bootstrap))
    v2 = KafkaValidator(c2, topic, catalog, store, max_batch=500, batch_wait_s=0.2, window_ms=window)
    v2.start()
    # the restart re-read the last window of log time (plus a bucket), not the whole topic
    assert 0 < v2.replayed <= 2 * 30 * (window // MIN + 2) < counted
    drain(v2, topic, c2)
    assert store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == truth
    assert v2.validator.seen.most <= bound
    c2.close()


def test_consumer_never_resets_to_the_earliest_offset():
    assert consumer_config("k:9092")["auto.offset.reset"] == "error"


class LowWatermarkAbove:
    """A real consumer whose partitions report a low watermark of ``low`` (records deleted by
    retention: the mock cluster cannot delete records, AdminClient.delete_records is unsupported)."""

    def __init__(self, consumer, low: int, partition: int | None = None):
        self.c, self.low, self.partition = consumer, low, partition

    def __getattr__(self, name):
        return getattr(self.c, name)

    def get_watermark_offsets(self, tp, *a, **kw):
        lo, hi = self.c.get_watermark_offsets(tp, *a, **kw)
        if self.partition is not None and tp.partition != self.partition:
            return lo, hi
        return max(lo, min(self.low, hi)), hi


def test_records_deleted_before_they_were_counted_stop_validation(cluster, tmp_path):
    producer, bootstrap = cluster
    catalog = make_catalog(6)
    log, _ = long_log(catalog, segments=4, per_segment=30, window=2 * MIN)
    produce_log(producer, "t-lost", log)
    c = Consumer(consumer_config(bootstrap))
    v = KafkaValidator(LowWatermarkAbove(c, 5), "t-lost", catalog, SqliteStore(tmp_path / "v.sqlite"))
    with pytest.raises(LostRecordsError, match=r"partition \d+: offsets 0\.\.4 were deleted .*retention") as e:
        v.poll()
    assert e.value.first == 0 and e.value.low == 5
    c.close()


def test_records_deleted_after_a_restart_position_stop_validation(cluster, tmp_path):
    producer, bootstrap = cluster
    catalog = make_catalog(6)
    log, _ = long_log(catalog, segments=4, per_segment=30, window=2 * MIN)
    produce_log(producer, "t-lost2", log[:2])
    store = SqliteStore(tmp_path / "v.sqlite")
    c = Consumer(consumer_config(bootstrap))
    v = KafkaValidator(c, "t-lost2", catalog, store, batch_wait_s=0.2)
    drain(v, "t-lost2", c)
    c.close()
    stored = v.stored_offsets()
    produce_log(producer, "t-lost2", log[2:])
    c2 = Consumer(consumer_config(bootstrap))
    # a partition that got at least 3 records after the stored position (which one: the machines' key hashes)
    high = {q: c2.get_watermark_offsets(TopicPartition("t-lost2", q), timeout=10)[1] for q in stored}
    p, pos = max(((q, o) for q, o in stored.items() if high[q] >= o + 3), key=lambda x: x[1])
    v2 = KafkaValidator(LowWatermarkAbove(c2, pos + 3, partition=p), "t-lost2", catalog, store)
    with pytest.raises(LostRecordsError, match=f"offsets {pos}\\.\\.{pos + 2} were deleted"):
        v2.poll()
    c2.close()


@pytest.mark.slow
def test_an_offset_reset_while_reading_is_lost_records_not_a_skip(cluster, tmp_path):
    """The broker answers "offset out of range" (the position's records were deleted under the
    running consumer); with auto.offset.reset=error librdkafka reports it instead of jumping."""
    producer, bootstrap = cluster
    catalog = make_catalog(6)
    log, _ = long_log(catalog, segments=2, per_segment=30, window=2 * MIN)
    produce_log(producer, "t-reset", log)
    c = Consumer(consumer_config(bootstrap))
    v = KafkaValidator(c, "t-reset", catalog, SqliteStore(tmp_path / "v.sqlite"), batch_wait_s=0.5)
    v.start()
    p = next(q for q in v.partitions if c.get_watermark_offsets(TopicPartition("t-reset", q), timeout=10)[1])
    high = c.get_watermark_offsets(TopicPartition("t-reset", p), timeout=10)[1]
    v.position[p] = high + 100
    c.assign([TopicPartition("t-reset", q, v.position[q]) for q in v.partitions])
    with pytest.raises(LostRecordsError, match=f"partition {p}: records from offset {high + 100}"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            v.poll()
    c.close()


class FakePartitions:
    """Watermarks and pause/resume of a consumer, for the window's alignment logic alone."""

    def __init__(self, highs):
        self.highs, self.paused = highs, set()

    def get_watermark_offsets(self, tp, cached=False, timeout=None):
        return 0, self.highs[tp.partition]

    def pause(self, tps):
        self.paused |= {tp.partition for tp in tps}

    def resume(self, tps):
        self.paused -= {tp.partition for tp in tps}


def test_the_window_waits_for_a_partition_read_behind_and_the_ones_ahead_pause():
    c = FakePartitions({0: 100, 1: 100})
    v = KafkaValidator(c, "t", make_catalog(6), store=None, window_ms=60 * MIN)
    v.validator, v.partitions, v.log_ms, v.newest_ms, v.paused = v._make_validator(), [0, 1], {}, None, set()
    v.position = {0: 50, 1: 10}
    v.validator.seen.add("early-in-1", T0)
    v._advance({0: T0 + 90 * MIN, 1: T0})
    # partition 1 still has records at T0: nothing of its window is dropped, partition 0 (90 min
    # ahead, more than the 15-minute skew) waits
    assert v.validator.seen.horizon_ms == T0 and "early-in-1" in v.validator.seen and c.paused == {0}
    v.position = {0: 50, 1: 100}  # partition 1 read to its end: no longer holds anything back
    v._advance({1: T0 + 20 * MIN})
    assert c.paused == set() and v.validator.seen.horizon_ms == T0 + 90 * MIN
    assert "early-in-1" not in v.validator.seen
