"""The log on Kafka (compose profile): producer, feeder and validation consumer, with confluent-kafka.

Producer
    One record per event line. Key = the line's ``machine_id``, so every event of a machine
    lands in one partition, in the order the generator made them (a line without a machine,
    such as a latency marker or a truncated line, has no key and goes to any partition).
    Record timestamp = the chunk's simulated time (``Chunk.first_ms``), the counterpart of the
    embedded segment's first-event time: Spark's watermark for duplicates runs on it. The
    simulated clock runs ``time_scale`` times faster than the wall clock, so the topic is
    created with ``message.timestamp.after.max.ms`` raised (Kafka 4 rejects records more than
    1 h in the future by default). Idempotent producer (no duplicates from retries, order kept
    per partition), lingering and lz4 compression for throughput.

    End markers (event id ``end-...``, written last by ``vendlab.runner.LogFeeder``) go to
    *every* partition after a flush, so a reader that has seen the end marker in all
    partitions has seen every event before it.

Feeder
    ``LogFeeder`` (vendlab.runner) drives the generator at a rate with latency markers; here it
    writes through ``KafkaLogWriter``, which has the embedded ``SegmentWriter``'s interface.

Validation consumer
    ``KafkaValidator``: a plain ``Consumer`` (no Spark) that reads every partition and writes
    the same views as ``vendlab.oracle.Validator`` (whose line logic it reuses) into the
    store, exactly once across restarts:

    - the consumed position of each partition is part of the view store: the view
      ``log_offsets`` (job ``validation``, key = partition) holds, as an additive view, the
      next offset to read; every store batch adds its offset advance in the same
      ``apply_batch`` as its counts, so counts and positions move together or not at all;
    - batch id = the sum over partitions of the batch's start offsets (records before it):
      a batch retried after a crash starts from the same stored offsets, so it has the same
      id and the store applies it at most once; ids grow with every batch;
    - on start (and after any failed apply) the consumer reads its offsets from the store,
      re-reads the last window of log time before them to rebuild its seen event ids (a window
      of ``Profile.validation_window_ms``, as in embedded mode: ``vendlab.oracle.SeenIds``),
      and continues from there;
    - it never skips a record: a stored position below a partition's first offset (records
      deleted by retention), records deleted inside the window it re-reads, or an offset reset
      while reading (``auto.offset.reset=error``) stop it with ``LostRecordsError``.

Producer restarts
    ``continue_in_topic``: a producer started again continues the stream in the topic (the
    topic's last events are the truth of where it stands; see docs/architecture.md).

    Offsets are also committed to Kafka (group ``vendlab-validation``), only so the Kafka UI
    can show the consumer's lag; the store's offsets are the ones that count.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from vendlab import schema
from vendlab.store import base

if TYPE_CHECKING:  # kept out of the import: the start scripts import this module with the stdlib only
    from vendlab.store.base import ViewStore
    from vendlab.world.catalog import Catalog

DEFAULT_TOPIC = "vendlab-events"
DEFAULT_PARTITIONS = 6
# Record timestamps are simulated time (from 2026-01-05, 60x the wall clock): months *behind* the wall clock
# when a run starts, catching up at 59x and then ahead of it. Kafka's time retention compares the wall clock
# with the newest timestamp of each segment (7 days by default, checked every 5 minutes): it would delete the
# whole log at once. No retention of any kind may delete our records (the views are exact only over the whole
# log, and replay needs it), and no timestamp may be rejected, behind (before.max.ms) or ahead (after.max.ms,
# 1 h by default in Kafka 4). The compose files set the same values broker-wide (KAFKA_LOG_*), and the start
# scripts check an existing topic's config against this one and correct it.
MAX_TIMESTAMP_AHEAD_MS = 2**63 - 1
TOPIC_CONFIG = {
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "message.timestamp.type": "CreateTime",
    "message.timestamp.before.max.ms": str(MAX_TIMESTAMP_AHEAD_MS),
    "message.timestamp.after.max.ms": str(MAX_TIMESTAMP_AHEAD_MS),
}
# On three brokers (docker-compose.ha.yml, `--nodes 3`) each partition has three replicas and a write
# acknowledged under the producer's acks=all is on at least two: one broker may go, nothing is lost.
HA_MIN_INSYNC = 2


def topic_config(nodes: int = 1) -> dict[str, str]:
    """The topic's config on a stack of ``nodes`` brokers: TOPIC_CONFIG, and min.insync.replicas on more than one."""
    return {**TOPIC_CONFIG, "min.insync.replicas": str(HA_MIN_INSYNC)} if nodes > 1 else dict(TOPIC_CONFIG)


OFFSETS_VIEW = "log_offsets"
CONSUMER_GROUP = "vendlab-validation"
END_PREFIX = "end-"
REPLAY_IDLE_TIMEOUT_S = 60.0

_MACHINE = b'"machine_id":"'
_END = b'{"event_id":"' + END_PREFIX.encode()
_MARKER_TYPE = b'"type":"' + schema.MARKER.encode() + b'"'


class KafkaLogError(RuntimeError):
    pass


class LostRecordsError(KafkaLogError):
    """Records the validation consumer needed were deleted from the topic (retention, or by hand)."""

    def __init__(self, topic: str, partition: int, first: int | None, low: int | None, when: str):
        self.topic, self.partition, self.first, self.low = topic, partition, first, low
        where = (
            f"offsets {first}..{low - 1}"
            if first is not None and low is not None and low > first
            else f"records from offset {first}"
            if first is not None
            else "records"
        )
        super().__init__(
            f"records lost: topic {topic!r} partition {partition}: {where} were deleted {when}"
            + (f"; the partition now starts at offset {low}" if low is not None else "")
            + ". The validation view can no longer be exact for this topic, so the consumer stops rather "
            "than skip them. Make the topic keep its records (retention.ms=-1 and retention.bytes=-1, "
            "docs/compose.md), then start over on a new topic with empty views."
        )


def producer_config(bootstrap: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "client.id": "vendlab-producer",
        "enable.idempotence": True,  # implies acks=all and at most 5 requests in flight, order kept
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "batch.num.messages": 100_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }
    conf.update(extra)
    return conf


def consumer_config(bootstrap: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": CONSUMER_GROUP,
        "client.id": "vendlab-validation",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # Never jump over records: a position outside the log is an error (records were deleted),
        # which KafkaValidator reports, instead of a silent skip to the earliest offset.
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
    }
    conf.update(extra)
    return conf


def topic_create_args(
    topic: str = DEFAULT_TOPIC, partitions: int = DEFAULT_PARTITIONS, replication: int = 1, config: dict | None = None
) -> list[str]:
    """Arguments of kafka-topics.sh that create the topic as the producer expects it (``config``: the topic
    config, TOPIC_CONFIG unless given; the scaled-out stacks add min.insync.replicas)."""
    args = ["--create", "--topic", topic, "--partitions", str(partitions), "--replication-factor", str(replication)]
    for k, v in (TOPIC_CONFIG if config is None else config).items():
        args += ["--config", f"{k}={v}"]
    return args


def machine_key(line: bytes) -> bytes | None:
    """The value of the line's machine_id (the record key), None if the line has none."""
    i = line.find(_MACHINE)
    if i < 0:
        return None
    i += len(_MACHINE)
    j = line.find(b'"', i)
    return line[i:j] if j > i else None


def is_end_marker(line: bytes) -> bool:
    return line.startswith(_END) and _MARKER_TYPE in line


def topic_partitions(client, topic: str, timeout: float = 10.0) -> list[int]:
    """Partition numbers of ``topic`` (empty if it does not exist)."""
    md = client.list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return []
    return sorted(t.partitions)


class KafkaLogWriter:
    """Writes generator chunks to a topic; same interface as ``eventlog.SegmentWriter``."""

    def __init__(self, producer, topic: str = DEFAULT_TOPIC, flush_timeout_s: float = 60.0):
        self.producer = producer
        self.topic = topic
        self.flush_timeout_s = flush_timeout_s
        self.lines_written = 0
        self.delivered = 0
        self.errors = 0
        self.first_error: str | None = None
        # No record is stamped before this log time (ms): the timestamps of a partition never go back,
        # also across a restart (set from the topic's newest record), where a chunk may start with the
        # re-sent duplicate copy of an event older than the last record the previous producer wrote.
        self.floor_ms = 0

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = str(err)
        else:
            self.delivered += 1

    def _produce(self, value: bytes, key: bytes | None, ts: int, partition: int | None = None) -> None:
        ts = self.floor_ms = max(ts, self.floor_ms)
        kw = {"partition": partition} if partition is not None else {}
        while True:
            try:
                self.producer.produce(
                    self.topic, value=value, key=key, timestamp=ts, on_delivery=self._on_delivery, **kw
                )
                return
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.05)

    def append(self, data: bytes, lines: int, first_ms: int) -> None:
        if self.first_error:
            raise KafkaLogError(f"delivery to topic {self.topic!r} failed: {self.first_error}")
        parts = data.split(b"\n")
        if parts and parts[-1] == b"":
            parts.pop()
        if len(parts) == 1 and is_end_marker(parts[0]):
            self._broadcast(parts[0], first_ms)
            return
        for line in parts:
            self._produce(line, machine_key(line), first_ms)
        self.lines_written += len(parts)
        self.producer.poll(0)

    def _broadcast(self, line: bytes, ts: int) -> None:
        """Flush, then one copy of the line in every partition (see the module doc)."""
        self.flush()
        parts = topic_partitions(self.producer, self.topic)
        if not parts:
            raise KafkaLogError(f"topic {self.topic!r} has no partitions")
        for p in parts:
            self._produce(line, None, ts, partition=p)
        self.lines_written += 1
        self.flush()

    def due(self) -> bool:
        self.producer.poll(0)  # serve delivery reports
        return False

    def roll(self) -> None:
        self.producer.poll(0)

    def flush(self) -> None:
        left = self.producer.flush(self.flush_timeout_s)
        if left:
            raise KafkaLogError(
                f"{left} records still undelivered to {self.topic!r} after "
                f"{self.flush_timeout_s:g} s: is the broker reachable?"
            )
        if self.first_error:
            raise KafkaLogError(f"delivery to topic {self.topic!r} failed: {self.first_error}")

    def close(self) -> None:
        self.flush()


_EVENT_ID = re.compile(rb'^\{"event_id":"e(\d+)-(\d+)"')
TAIL_RECORDS = 500  # records read back per partition: more than a duplicate's distance plus markers


def last_generated(consumer, topic: str, seed: int, tail: int = TAIL_RECORDS) -> tuple[int | None, bool, bytes | None]:
    """Where the topic's generator stream ends: the highest stream slot among the event ids
    (``e<seed>-<slot>``) of the last ``tail`` records of every partition (None if there are
    none), and whether the topic has ever held a record. A machine's events go to one partition
    in order, so the newest original line is among the last records of its partition (after it
    come at most the duplicate copies of the few lines before it, and markers). Third: that
    record's line."""
    from confluent_kafka import TopicPartition

    ranges = {}
    ever = False
    for p in topic_partitions(consumer, topic):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ever = ever or high > 0
        if high > low:
            ranges[p] = (max(low, high - tail), high)
    best, line = None, None
    if not ranges:
        return None, ever, None
    with closing(_read_ranges(consumer, topic, ranges, f"reading the end of topic {topic!r}")) as records:
        for m in records:
            found = _EVENT_ID.match(m.value() or b"")
            if found:
                if int(found.group(1)) != seed:
                    raise KafkaLogError(
                        f"topic {topic!r} holds events of seed {int(found.group(1))}: produce "
                        f"with --seed {int(found.group(1))} to continue it, or use a new topic"
                    )
                if best is None or int(found.group(2)) > best:
                    best, line = int(found.group(2)), m.value()
    return best, ever, line


def make_feeder(
    producer,
    topic: str,
    catalog: Catalog,
    seed: int,
    rate: float,
    duration: float,
    manifest_path: Path,
    time_scale: float = 60.0,
    bad_rate: float = 0.0,
    dup_rate: float = 0.0,
    reader=None,
    say=None,
):
    """A ``vendlab.runner.LogFeeder`` thread that feeds the generator into Kafka (call .start()).

    A generator started again continues the stream in the topic (``continue_in_topic``): with
    ``reader`` (a Consumer) the topic's end is the truth of where the stream stands, else the
    manifest alone. Raises ValueError when the settings differ from the stream's."""
    from vendlab.runner import LogFeeder

    gen = continue_in_topic(
        catalog,
        topic,
        seed,
        dict(rate=rate, time_scale=time_scale, bad_rate=bad_rate, dup_rate=dup_rate),
        manifest_path,
        reader,
        say,
    )
    writer = KafkaLogWriter(producer, topic)
    if reader is not None:
        writer.floor_ms = newest_timestamp(reader, topic)
    return LogFeeder(gen, writer, rate, duration, manifest_path)


def newest_timestamp(consumer, topic: str) -> int:
    """The newest record timestamp (ms) among the last record of every partition (0 if none)."""
    from confluent_kafka import TopicPartition

    ranges = {}
    for p in topic_partitions(consumer, topic):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ranges[p] = (high - 1, high)
    with closing(_read_ranges(consumer, topic, ranges, f"reading the last records of topic {topic!r}")) as records:
        return max((m.timestamp()[1] for m in records), default=0)


def _read_ranges(consumer, topic: str, ranges: dict[int, tuple[int, int]], what: str):
    """Yield the records of each partition's offsets [lo, hi) of ``topic``, then unassign. A record
    error, or partitions that do not reach ``hi`` within REPLAY_IDLE_TIMEOUT_S, is a KafkaLogError
    that starts with ``what``."""
    from confluent_kafka import TopicPartition

    if not ranges:
        return
    consumer.assign([TopicPartition(topic, p, lo) for p, (lo, _) in ranges.items()])
    left = {p: hi for p, (_, hi) in ranges.items()}
    deadline = time.monotonic() + REPLAY_IDLE_TIMEOUT_S
    try:
        while left:
            if time.monotonic() > deadline:
                raise KafkaLogError(
                    f"{what}: partitions {sorted(left)} did not answer within {REPLAY_IDLE_TIMEOUT_S:g} s"
                )
            for m in consumer.consume(1000, 1.0):
                if m.error():
                    raise KafkaLogError(f"{what}: {m.error().str()}")
                yield m
                p = m.partition()
                if p in left and m.offset() + 1 >= left[p]:
                    del left[p]
    finally:
        consumer.unassign()


def continue_in_topic(
    catalog: Catalog, topic: str, seed: int, settings: dict, manifest_path: Path, reader=None, say=None
):
    """The generator for a (re)start of the producer on ``topic``:

    - the topic holds events of this stream and the manifest in the producer's data dir ends at
      the same one: continue from the manifest (immediate);
    - the topic holds events but the manifest is missing (a new container), behind (killed
      before its last save) or ahead (records lost in flight): regenerate the stream up to the
      topic's last event (the generator is deterministic: the manifest's counts come out exact;
      a few hundred thousand events a second, with progress);
    - no event in the topic: continue from the manifest if the topic once had records (they were
      deleted: the manifest is all that is left), else start afresh (a new topic; an earlier
      manifest is kept aside under another name).
    """
    from vendlab.runner import continue_generator
    from vendlab.world.generator import Generator, Manifest, set_aside

    say = say or (lambda msg: None)
    m = Manifest.load(manifest_path) if manifest_path.exists() else None
    fresh = Generator(catalog, seed, **settings)
    line = None
    if reader is None:
        last, ever = ((m.resume or {}).get("last_seq"), bool(m.events)) if m is not None else (None, False)
    else:
        last, ever, line = last_generated(reader, topic, seed)
    if last is None or last < 0:
        if m is not None and m.events and ever:
            say(f"topic {topic!r} holds none of the stream's events any more: continuing from {manifest_path}")
            return continue_generator(catalog, m, dict(settings, seed=seed))
        if m is not None and m.events:
            say(
                f"topic {topic!r} is new: {manifest_path} belongs to an earlier log, kept as "
                f"{set_aside(manifest_path).name}; starting a new stream"
            )
        return fresh
    if m is not None and m.resume is not None and m.resume.get("last_seq") == last:
        gen = continue_generator(catalog, m, dict(settings, seed=seed))
        say(f"continuing the stream after its {m.events:,} events (manifest {manifest_path}, the topic ends there)")
        return gen
    why = (
        "no manifest in the data dir"
        if m is None
        else f"the manifest ends at event e{seed}-{(m.resume or {}).get('last_seq')}, the topic at e{seed}-{last}"
    )
    if m is not None:
        fresh.check_continues(m)
    say(f"rebuilding the stream up to the topic's last event e{seed}-{last} ({why}): regenerating ...")
    t0 = time.monotonic()
    last_say = [t0]

    def progress(n: int) -> None:
        if time.monotonic() - last_say[0] >= 5:
            last_say[0] = time.monotonic()
            say(f"  regenerated {n:,} of about {last + 1:,} events")

    made = fresh.skip_past(last, progress)
    if line is not None and made.rstrip(b"\n") != line:
        raise ValueError(
            f"topic {topic!r} was produced with other settings: its event e{seed}-{last} is not "
            f"the one --rate {settings['rate']:g} --time-scale {settings['time_scale']:g} --bad-rate "
            f"{settings['bad_rate']:g} --dup-rate {settings['dup_rate']:g} make; use the settings it "
            f"was produced with, or a new topic"
        )
    if m is not None:
        fresh.manifest.markers = m.markers  # markers are not part of the stream (those after the save are not counted)
    say(f"rebuilt in {time.monotonic() - t0:.1f} s: {fresh.manifest.events:,} events; continuing after them")
    return fresh


class KafkaValidator:
    """The validation consumer on Kafka (see the module doc for the exactly-once design)."""

    def __init__(
        self,
        consumer,
        topic: str,
        catalog: Catalog,
        store: ViewStore,
        job: str = base.VALIDATION,
        max_batch: int = 50_000,
        batch_wait_s: float = 0.5,
        commit_to_kafka: bool = True,
        window_ms: int | None = None,
    ):
        from vendlab.config import VALIDATION_WINDOW_MS
        from vendlab.oracle import Validator

        window_ms = window_ms or VALIDATION_WINDOW_MS
        self.consumer = consumer
        self.topic = topic
        self.catalog = catalog
        self.store = store
        self.job = job
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.commit_to_kafka = commit_to_kafka
        self._make_validator = lambda: Validator(Path("."), catalog, store, job, window_ms=window_ms)
        self.lines = 0
        self.batches = 0
        self.restarts = 0
        self.replayed = 0  # records re-read on the last start to rebuild the seen ids
        self.max_skew_ms = max(1, window_ms // 4)  # log time a partition may run ahead of the slowest
        self._started = False

    # -- state from the store ---------------------------------------------------------------
    def stored_offsets(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.store.read_view(self.job, OFFSETS_VIEW).items()}

    def start(self) -> None:
        """Positions from the store; replay the last window of the topic to rebuild the dedup state."""
        from confluent_kafka import TopicPartition

        self.validator = self._make_validator()
        self.end_copies: dict[str, set[int]] = {}
        self.partitions = topic_partitions(self.consumer, self.topic)
        if not self.partitions:
            raise KafkaLogError(
                f"topic {self.topic!r} does not exist (yet): create it first (the start scripts do) or produce to it"
            )
        stored = self.stored_offsets()
        self.position: dict[int, int] = {}
        bounds: dict[int, tuple[int, int]] = {}
        for p in self.partitions:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            pos = stored.get(p, 0)  # never read: from the topic's first offset, 0
            if pos > high:
                raise KafkaLogError(
                    f"the store says partition {p} was read up to offset {pos}, but the topic ends at {high}: "
                    f"the topic was recreated. Empty the validation rows of the store (or the keyspace) first."
                )
            if pos < low:
                raise LostRecordsError(self.topic, p, pos, low, "before the validation consumer read them")
            self.position[p] = pos
            bounds[p] = (low, high)
        # Log time: the newest record counted, and (partitions with more to read) the next one's.
        self.log_ms: dict[int, int] = {}  # per partition: a lower bound of its next record's log time
        newest = None
        for p, (low, high) in bounds.items():
            pos = self.position[p]
            if pos > low:
                t = self._timestamp_at(p, pos - 1)
                newest = t if newest is None else max(newest, t)
                self.log_ms[p] = t
            if pos < high:
                self.log_ms[p] = self._timestamp_at(p, pos)
        self.newest_ms = newest
        if newest is not None:
            horizon = self._horizon({p for p in self.partitions if self.position[p] < bounds[p][1]})
            since = self.validator.seen.replay_from_ms(horizon)
            replay = {}
            for p, (low, _high) in bounds.items():
                pos = self.position[p]
                if pos > low:
                    first = self._offset_at_time(p, since, low, pos)
                    if first == low and low > 0 and self._timestamp_at(p, low) > since:
                        raise LostRecordsError(
                            self.topic,
                            p,
                            0,
                            low,
                            "(some of them inside the window of log "
                            "time the validation consumer re-reads to know the ids it has seen)",
                        )
                    if first < pos:
                        replay[p] = (first, pos)
            self.replayed = sum(hi - lo for lo, hi in replay.values())
            if replay:
                self._replay(replay)
            self.validator.seen.advance(horizon)
        self.consumer.assign([TopicPartition(self.topic, p, self.position[p]) for p in self.partitions])
        self.paused: set[int] = set()
        self._started = True

    def _horizon(self, lagging) -> int:
        """How far log time has come for the seen-id window: the newest record counted, but no
        further than the log time of a partition that still has records to read (the consumer may
        read one partition ahead of another; a copy in the slower one must still be recognised)."""
        h = self.newest_ms
        for p in lagging:
            if p in self.log_ms:
                h = min(h, self.log_ms[p])
        return h

    def _timestamp_at(self, partition: int, offset: int) -> int:
        """The log time (record timestamp) of the first record at or after ``offset``."""
        from confluent_kafka import TopicPartition

        self.consumer.assign([TopicPartition(self.topic, partition, offset)])
        deadline = time.monotonic() + REPLAY_IDLE_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                for m in self.consumer.consume(1, 1.0):
                    if m.error():
                        raise self._error(m)
                    if m.partition() == partition and m.offset() >= offset:
                        return m.timestamp()[1]
        finally:
            self.consumer.unassign()
        raise KafkaLogError(
            f"reading {self.topic!r} partition {partition} at offset {offset}: no record for "
            f"{REPLAY_IDLE_TIMEOUT_S:g} s"
        )

    def _offset_at_time(self, partition: int, ts: int, low: int, high: int) -> int:
        """The first offset in [low, high) whose record is stamped at or after ``ts`` (high if none):
        the broker's time index (``offsets_for_times``), checked on the records next to its answer,
        else a binary search over the records (record time is non-decreasing in a partition, as
        the feeder writes it)."""
        from confluent_kafka import TopicPartition

        if low >= high:
            return high
        got = self.consumer.offsets_for_times([TopicPartition(self.topic, partition, ts)], timeout=10)[0]
        off = got.offset if got.error is None else -2
        off = high if off == -1 else off  # -1: no record that late
        if (
            low <= off <= high
            and (off == low or self._timestamp_at(partition, off - 1) < ts)
            and (off == high or self._timestamp_at(partition, off) >= ts)
        ):
            return off
        lo, hi = low, high  # the broker did not answer by time (librdkafka's mock cluster): search
        while lo < hi:
            mid = (lo + hi) // 2
            if self._timestamp_at(partition, mid) >= ts:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _error(self, m) -> KafkaLogError:
        """A consumer error as a KafkaLogError; an offset reset means records were lost."""
        from confluent_kafka import KafkaError

        err = m.error()
        if err.code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            p = m.partition()
            pos = self.position.get(p) if hasattr(self, "position") else None
            return LostRecordsError(
                self.topic,
                p,
                pos,
                None,
                f"or the topic recreated: the broker says the position is outside the partition's log ({err.str()})",
            )
        return KafkaLogError(f"consuming {self.topic!r}: {err.str()}")

    def _replay(self, ranges: dict[int, tuple[int, int]]) -> None:
        from confluent_kafka import TopicPartition

        self.consumer.assign([TopicPartition(self.topic, p, lo) for p, (lo, _) in ranges.items()])
        left = {p: hi for p, (_, hi) in ranges.items()}
        idle_since = time.monotonic()
        while left:
            msgs = self.consumer.consume(10_000, 1.0)
            if not msgs:
                # Offsets without a record (compaction, control records): done when the position is past.
                for tp in self.consumer.position([TopicPartition(self.topic, p) for p in list(left)]):
                    if tp.offset >= left[tp.partition]:
                        del left[tp.partition]
                if left and time.monotonic() - idle_since > REPLAY_IDLE_TIMEOUT_S:
                    raise KafkaLogError(
                        f"replaying {self.topic!r} to rebuild the validation state: no record "
                        f"for {REPLAY_IDLE_TIMEOUT_S:g} s, partitions {sorted(left)} unfinished"
                    )
                continue
            idle_since = time.monotonic()
            lines, times = [], []
            for m in msgs:
                if m.error():
                    raise self._error(m)
                p, off = m.partition(), m.offset()
                if p in left and off < left[p]:
                    if is_end_marker(m.value()):
                        self._track_end(m.value(), p)
                    else:
                        lines.append(m.value())
                        times.append(m.timestamp()[1])
                    if off + 1 >= left[p]:
                        del left[p]
            if lines:
                self.validator.count(lines, times)  # only the seen ids matter here
        self.consumer.unassign()

    def _track_end(self, value: bytes, partition: int) -> str | None:
        """Record a copy of an end marker; its id once every partition has delivered one."""
        if not is_end_marker(value):
            return None
        from vendlab.contract import validate_line

        ev, _ = validate_line(value, self.catalog.machine_ids, self.catalog.product_names)
        if ev is None:
            return None
        copies = self.end_copies.setdefault(ev["event_id"], set())
        if len(copies) == len(self.partitions):
            return None  # complete before (replay)
        copies.add(partition)
        return ev["event_id"] if len(copies) == len(self.partitions) else None

    # -- one store batch --------------------------------------------------------------------
    def poll(self) -> int:
        """Consume what arrives within ``batch_wait_s`` (up to ``max_batch``) as one store batch."""
        if not self._started:
            self.start()
        msgs = []
        deadline = time.monotonic() + self.batch_wait_s
        while len(msgs) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            got = self.consumer.consume(min(10_000, self.max_batch - len(msgs)), left)
            for m in got:
                if m.error():
                    raise self._error(m)
            msgs += got
        if not msgs:
            return 0
        start = dict(self.position)
        end = dict(start)
        lines: list[bytes] = []
        times: list[int] = []
        markers: list[base.Marker] = []
        newest: dict[int, int] = {}
        for m in msgs:
            p, off, value = m.partition(), m.offset(), m.value()
            if p not in end:  # a partition added while running: restart to include it cleanly
                self._restart()
                return 0
            if off < end[p]:
                continue  # already counted (can only happen after a re-assign)
            if off > end[p]:
                self._check_gap(p, end[p], off)
            end[p] = off + 1
            ts = m.timestamp()[1]
            newest[p] = max(ts, newest.get(p, ts))
            if is_end_marker(value):
                done = self._track_end(value, p)
                if done:
                    markers.append((done, _created_ms(value)))
                continue
            lines.append(value)
            times.append(ts)
        deltas, line_markers, n = self.validator.count(lines, times)
        deltas += [(OFFSETS_VIEW, str(p), 0, end[p] - start[p]) for p in end if end[p] != start[p]]
        batch_id = sum(start.values())
        try:
            applied = self.store.apply_batch(
                self.job, batch_id, deltas, line_markers + markers, rows=len(msgs), visible_ms=int(time.time() * 1000)
            )
        except BaseException:
            self._started = False  # rebuild from the store before the next batch
            raise
        if not applied:  # another writer applied this id: our in-memory state is off; rebuild
            self._restart()
            return 0
        self.position = end
        self.lines += len(msgs)
        self.batches += 1
        self._advance(newest)
        if self.commit_to_kafka:
            self._commit(end)
        return len(msgs)

    def _advance(self, newest: dict[int, int]) -> None:
        """Move the seen-id window after a batch (see ``_horizon``)."""
        from confluent_kafka import TopicPartition

        for p, t in newest.items():
            self.log_ms[p] = max(t, self.log_ms.get(p, t))
            self.newest_ms = t if self.newest_ms is None else max(self.newest_ms, t)
        if self.newest_ms is None:
            return
        lagging = set()
        for p in self.partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), cached=True) or (0, -1)
            if high < 0 or self.position[p] < high:  # unknown counts as behind
                lagging.add(p)
        self.validator.seen.advance(self._horizon(lagging))
        # Keep the partitions within max_skew_ms of log time of the slowest one that has records
        # to read (pause the ones ahead, as Flink's watermark alignment does): the window then
        # never holds more than window + skew of log time, even while catching up on a backlog.
        behind = [self.log_ms[p] for p in lagging if p in self.log_ms]
        ahead = set()
        if behind:
            slowest = min(behind)
            ahead = {p for p in self.partitions if self.log_ms.get(p, slowest) > slowest + self.max_skew_ms}
        if ahead != self.paused:
            if self.paused - ahead:
                self.consumer.resume([TopicPartition(self.topic, p) for p in self.paused - ahead])
            if ahead - self.paused:
                self.consumer.pause([TopicPartition(self.topic, p) for p in ahead - self.paused])
            self.paused = ahead

    def _check_gap(self, partition: int, expected: int, got: int) -> None:
        """Offsets skipped between two records: fine if the records are there (control records,
        compaction), records lost if the log now starts after the position."""
        from confluent_kafka import TopicPartition

        low, _ = self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=10)
        if low > expected:
            raise LostRecordsError(
                self.topic,
                partition,
                expected,
                low,
                f"while the validation consumer was reading (it received offset {got} next)",
            )

    def _commit(self, offsets: dict[int, int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()], asynchronous=True
            )
        except KafkaException:
            pass  # informational only (Kafka UI lag); the store holds the real positions

    def _restart(self) -> None:
        self.restarts += 1
        self.consumer.unassign()
        self.start()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll()
            except KafkaLogError:
                raise
            except Exception:
                if not self._started:  # apply failed: log, rebuild and go on
                    self.restarts += 1
                    stop.wait(1.0)
                    continue
                raise


def _created_ms(line: bytes) -> int:
    import orjson

    return int(orjson.loads(line)["created_ms"])
