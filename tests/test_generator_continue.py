"""A restarted generator continues its stream (issue 13, symptom 7): new event ids, simulated
time after the last event, the manifest's counts going on (totals = the sum over the runs), and
the validation view exact over the whole log.

The one mechanism (vendlab.runner.continue_generator, also behind ``vendlab run --resume``): the
manifest carries the generator's position (Generator.resume_state) and a new generator resumes
from it. On Kafka the topic's end is the truth of where the stream stands: the manifest is used
when it ends where the topic ends, else the stream is regenerated up to the topic's last event
(a new container without the manifest, or a manifest saved before the last records)."""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from vendlab import cli
from vendlab.eventlog import list_segments
from vendlab.kafka_log import (
    KafkaLogError,
    KafkaValidator,
    consumer_config,
    last_generated,
    make_feeder,
    topic_partitions,
)
from vendlab.oracle import Validator
from vendlab.runner import continue_generator
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore
from vendlab.world.catalog import make_catalog
from vendlab.world.generator import BLOCK, Generator, Manifest

SEED = 7
RATE = 20_000.0
KW = dict(bad_rate=0.02, dup_rate=0.03)
EVENT = re.compile(rb'^\{"event_id":"e(\d+)-(\d+)"')
COUNTS = (
    "events",
    "sales",
    "telemetry",
    "restocks",
    "malformed",
    "duplicates",
    "items_by_product",
    "items_by_category",
    "revenue_cents_by_category",
    "malformed_by_reason",
    "stock",
    "lost_sales",
    "stockouts",
    "restock_visits",
    "breakdowns",
    "first_event_ms",
    "last_event_ms",
)


@pytest.fixture(scope="module")
def catalog():
    return make_catalog(SEED)


@pytest.mark.parametrize("first", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 777])
def test_a_resumed_generator_continues_the_very_same_stream(catalog, tmp_path, first):
    a = Generator(catalog, SEED, 2000, **KW)
    if first:
        a.take(first)
    a.manifest.save(tmp_path / "m.json")
    b = continue_generator(catalog, Manifest.load(tmp_path / "m.json"), dict(seed=SEED, rate=2000, time_scale=60, **KW))
    whole = Generator(catalog, SEED, 2000, **KW)
    if first:
        whole.take(first)
    nb, nw = b.take(9_000), whole.take(9_000)
    assert nb.data == nw.data and nb.first_ms == nw.first_ms  # same ids, same times, same world
    assert {k: getattr(b.manifest, k) for k in COUNTS} == {k: getattr(whole.manifest, k) for k in COUNTS}


def test_other_settings_cannot_continue_a_stream(catalog, tmp_path):
    a = Generator(catalog, SEED, 2000, **KW)
    a.take(100)
    with pytest.raises(ValueError, match=r"--rate 2000 \(now 3000\)"):
        continue_generator(catalog, a.manifest, dict(seed=SEED, rate=3000, time_scale=60, **KW))


def test_skip_past_rebuilds_the_manifest_from_the_stream_alone(catalog):
    a = Generator(catalog, SEED, 2000, **KW)
    data = a.take(3 * BLOCK + 500).data
    last_seq = max(int(m.group(2)) for m in map(EVENT.match, data.split(b"\n")) if m)
    b = Generator(catalog, SEED, 2000, **KW)
    line = b.skip_past(last_seq)
    assert EVENT.match(line).group(2) == str(last_seq).encode() and data.find(line) >= 0
    # up to the last original line: only duplicate copies after it may be left out
    assert 0 <= a.manifest.events - b.manifest.events <= 40 and b.manifest.sales == a.manifest.sales
    assert b.manifest.items_by_product == a.manifest.items_by_product


def ids_and_times(lines):
    out = []
    for x in lines:
        m = EVENT.match(x)
        if m and b'"event_time":"' in x:
            t = x[x.index(b'"event_time":"') + 14 :][:20]
            out.append((int(m.group(2)), t))
    return out


def is_marker(line: bytes) -> bool:
    return line.startswith(b'{"event_id":"mk-') or line.startswith(b'{"event_id":"end-')


def check_continued(lines_per_run, manifests):
    """Event ids new in each run and after the previous run's, their times too (a duplicate copy
    of one of the last lines before a stop may come after it, as it would without the stop);
    manifests going on from each other."""
    seen, prev_max, prev_t = set(), -1, b""
    for k, lines in enumerate(lines_per_run):
        it = ids_and_times(lines)
        copies = {s for s, _ in it} & seen
        assert all(s > prev_max - 100 for s in copies) and len(copies) <= 5, (
            f"run {k + 1} re-emitted event ids of an earlier run: {sorted(copies)[:10]}"
        )
        new = [(s, t) for s, t in it if s not in copies]
        assert new and min(s for s, _ in new) > prev_max
        assert min(t for _, t in new if t.startswith(b"20")) >= prev_t
        seen |= {s for s, _ in it}
        prev_max = max(s for s, _ in it)
        prev_t = max(t for _, t in it if t.startswith(b"20"))
    for before, after in zip(manifests, manifests[1:]):
        assert after.events > before.events
        assert all(after.items_by_product[p] >= n for p, n in before.items_by_product.items())
        assert after.first_event_ms == manifests[0].first_event_ms and after.last_event_ms > before.last_event_ms


def produce_embedded(data_dir, duration: float, *flags: str) -> list[str]:
    """``vendlab produce`` on the embedded profile at 20,000 events/s for ``duration`` seconds."""
    run = ["--rate", "20000", "--duration", str(duration), *flags]
    return ["produce", "--profile", "embedded", "--data-dir", str(data_dir), "--seed", str(SEED), *run]


def test_embedded_produce_started_three_times_continues(catalog, tmp_path):
    d = tmp_path / "d"
    argv = produce_embedded(d, 0.25, "--bad-rate", "0.02", "--dup-rate", "0.03")
    runs, manifests, done = [], [], set()
    for _ in range(3):
        assert cli.main(argv) == 0
        segs = [s for s in list_segments(d / "log") if s.number not in done]
        done |= {s.number for s in segs}
        runs.append([x for s in segs for x in s.path.read_bytes().split(b"\n") if x])
        manifests.append(Manifest.load(d / "manifest.json"))
    check_continued(runs, manifests)
    m = manifests[-1]
    assert m.events == sum(1 for r in runs for x in r if not is_marker(x))  # totals = the sum of the runs
    assert m.markers == sum(1 for r in runs for x in r if is_marker(x))
    store = SqliteStore(tmp_path / "v.sqlite")
    Validator(d / "log", catalog, store).poll()
    assert store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == {k: n for k, n in m.items_by_product.items() if n}
    assert store.read_view(base.VALIDATION, base.DEAD_LETTERS) == m.malformed_by_reason


def test_a_new_log_sets_an_old_manifest_aside(catalog, tmp_path):
    d = tmp_path / "d"
    argv = produce_embedded(d, 0.1)
    assert cli.main(argv) == 0
    old = Manifest.load(d / "manifest.json")
    for s in list_segments(d / "log"):
        s.path.unlink()
    assert cli.main(argv) == 0
    kept = list(d.glob("manifest.before-*.json"))
    assert len(kept) == 1 and Manifest.load(kept[0]).events == old.events
    assert Manifest.load(d / "manifest.json").first_event_ms == old.first_event_ms  # a new stream, from the start


# -- Kafka (confluent-kafka's mock cluster) ------------------------------------------------------


def read_all(bootstrap, topic):
    c = Consumer(consumer_config(bootstrap, **{"group.id": f"r-{topic}-{time.monotonic()}"}))
    parts = topic_partitions(c, topic)
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, deadline = [], time.monotonic() + 30
    while len(out) < sum(ends.values()) and time.monotonic() < deadline:
        out += [m for m in c.consume(10_000, 0.5) if not m.error()]
    c.close()
    return out


def produce(cluster, catalog, topic, manifest_path, duration=0.25, say=None, rate=RATE, **kw):
    producer, bootstrap = cluster
    reader = Consumer(consumer_config(bootstrap, **{"group.id": "vendlab-producer"}))
    try:
        feeder = make_feeder(
            producer, topic, catalog, SEED, rate, duration, manifest_path, reader=reader, say=say, **{**KW, **kw}
        )
    finally:
        reader.close()
    feeder.start()
    feeder.join(60)
    assert not feeder.is_alive() and feeder.error is None, feeder.error
    return feeder


def validate_all(bootstrap, topic, catalog, store, end_marker):
    c = Consumer(consumer_config(bootstrap, **{"group.id": f"v-{topic}"}))
    v = KafkaValidator(c, topic, catalog, store, batch_wait_s=0.2)
    deadline = time.monotonic() + 60
    while not store.has_marker(base.VALIDATION, end_marker):
        assert time.monotonic() < deadline, "validation never saw the end marker"
        v.poll()
    c.close()


def offsets_now(bootstrap, topic):
    c = Consumer(consumer_config(bootstrap, **{"group.id": "o"}))
    out = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in topic_partitions(c, topic)}
    c.close()
    return out


@pytest.mark.parametrize("manifest_between", ["kept", "lost", "stale"])
@pytest.mark.slow
def test_kafka_producer_started_again_continues_the_stream(cluster, catalog, tmp_path, manifest_between):
    """start, stop, start again; between the runs the producer's manifest is kept (continue from
    it), lost (a new container: rebuilt from the topic) or stale (saved before the last records:
    the topic wins)."""
    topic = f"t-continue-{manifest_between}"
    path = tmp_path / "manifest.json"
    said = []
    f1 = produce(cluster, catalog, topic, path)
    first = Manifest.load(path)
    stale = path.read_text() if manifest_between == "stale" else None
    if manifest_between == "stale":  # a manifest written when only part of the stream was there
        g = Generator(catalog, SEED, RATE, **KW)
        g.take(first.events // 2)
        g.manifest.save(path)
    mid = offsets_now(cluster[1], topic)
    if manifest_between == "lost":
        path.unlink()
    f2 = produce(cluster, catalog, topic, path, say=said.append)
    second = Manifest.load(path)
    f3 = produce(cluster, catalog, topic, path, say=said.append)
    third = Manifest.load(path)
    assert stale is None or stale != path.read_text()
    if manifest_between == "kept":
        assert any("continuing the stream after" in s for s in said)
    else:
        assert any("rebuilding the stream up to the topic's last event" in s for s in said)

    msgs = read_all(cluster[1], topic)
    split = [
        [m.value() for m in msgs if m.offset() < mid[m.partition()]],
        [m.value() for m in msgs if m.offset() >= mid[m.partition()]],
    ]
    check_continued(split, [first, third])
    in_topic = sum(1 for part in split for x in part if not is_marker(x))
    if manifest_between == "kept":
        assert third.events == in_topic and third.markers > first.markers
    else:  # rebuilt up to the last original line: the copies after it, if any, were sent again
        assert 0 <= in_topic - third.events <= 5
    # record timestamps (log time) never go back within a partition across the restarts
    last = {}
    for m in sorted(msgs, key=lambda m: (m.partition(), m.offset())):
        assert m.timestamp()[1] >= last.get(m.partition(), 0)
        last[m.partition()] = m.timestamp()[1]
    # a generator that never stopped makes the same stream: the manifest's totals add up exactly
    whole = Generator(catalog, SEED, RATE, **KW)
    whole.take(third.events)
    assert third.items_by_product == whole.manifest.items_by_product and third.sales == whole.manifest.sales
    assert second.events < third.events
    # the validation view of the whole topic equals the manifest
    store = SqliteStore(tmp_path / "v.sqlite")
    validate_all(cluster[1], topic, catalog, store, f3.end_marker)
    assert store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == {
        k: n for k, n in third.items_by_product.items() if n
    }
    assert store.read_view(base.VALIDATION, base.DEAD_LETTERS) == third.malformed_by_reason
    assert f1.end_marker != f2.end_marker != f3.end_marker


@pytest.mark.slow
def test_kafka_topic_end_read_back(cluster, catalog, tmp_path):
    topic = "t-tail"
    produce(cluster, catalog, topic, tmp_path / "m.json", duration=0.1)
    m = Manifest.load(tmp_path / "m.json")
    c = Consumer(consumer_config(cluster[1], **{"group.id": "tail"}))
    last, ever, line = last_generated(c, topic, SEED)
    assert last == m.resume["last_seq"] and ever and line.startswith(b'{"event_id":"e%d-%d"' % (SEED, last))
    with pytest.raises(KafkaLogError, match=f"holds events of seed {SEED}"):
        last_generated(c, topic, SEED + 1)
    assert last_generated(c, "t-tail-empty-never-made", SEED)[0] is None
    c.close()


@pytest.mark.slow
def test_kafka_producer_with_other_settings_is_refused(cluster, catalog, tmp_path):
    topic = "t-settings"
    produce(cluster, catalog, topic, tmp_path / "m.json", duration=0.1)
    with pytest.raises(ValueError, match=r"--rate 20000 \(now 40000\)"):
        produce(cluster, catalog, topic, tmp_path / "m.json", duration=0.1, rate=2 * RATE)
    (tmp_path / "m.json").unlink()  # no manifest: the regenerated last event differs from the topic's
    with pytest.raises(ValueError, match="produced with other settings"):
        produce(cluster, catalog, topic, tmp_path / "m.json", duration=0.1, rate=2 * RATE)
