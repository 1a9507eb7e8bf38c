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
    the same views as ``vendlab.validation.Validator`` (whose line logic it reuses) into the
    store, exactly once across restarts:

    - the consumed position of each partition is part of the view store: the view
      ``log_offsets`` (job ``validation``, key = partition) holds, as an additive view, the
      next offset to read; every store batch adds its offset advance in the same
      ``apply_batch`` as its counts, so counts and positions move together or not at all;
    - batch id = the sum over partitions of the batch's start offsets (records before it):
      a batch retried after a crash starts from the same stored offsets, so it has the same
      id and the store applies it at most once; ids grow with every batch;
    - on start (and after any failed apply) the consumer reads its offsets from the store,
      re-reads the topic up to them to rebuild its set of seen event ids (duplicates are
      dropped exactly, as in embedded mode), and continues from there.

    Offsets are also committed to Kafka (group ``vendlab-validation``), only so the Kafka UI
    can show the consumer's lag; the store's offsets are the ones that count.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from typing import TYPE_CHECKING

from vendlab import schema
from vendlab.store import base

if TYPE_CHECKING:  # kept out of the import: the start scripts import this module with the stdlib only
    from vendlab.catalog import Catalog
    from vendlab.store.base import ViewStore

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
OFFSETS_VIEW = "log_offsets"
CONSUMER_GROUP = "vendlab-validation"
END_PREFIX = "end-"
REPLAY_IDLE_TIMEOUT_S = 60.0

_MACHINE = b'"machine_id":"'
_END = b'{"event_id":"' + END_PREFIX.encode()
_MARKER_TYPE = b'"type":"' + schema.MARKER.encode() + b'"'


class KafkaLogError(RuntimeError):
    pass


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
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    conf.update(extra)
    return conf


def topic_create_args(topic: str = DEFAULT_TOPIC, partitions: int = DEFAULT_PARTITIONS,
                      replication: int = 1) -> list[str]:
    """Arguments of kafka-topics.sh that create the topic as the producer expects it."""
    args = ["--create", "--topic", topic, "--partitions", str(partitions), "--replication-factor", str(replication)]
    for k, v in TOPIC_CONFIG.items():
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

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.errors += 1
            if self.first_error is None:
                self.first_error = str(err)
        else:
            self.delivered += 1

    def _produce(self, value: bytes, key: bytes | None, ts: int, partition: int | None = None) -> None:
        kw = {"partition": partition} if partition is not None else {}
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, timestamp=ts, on_delivery=self._on_delivery,
                                      **kw)
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
            raise KafkaLogError(f"{left} records still undelivered to {self.topic!r} after "
                                f"{self.flush_timeout_s:g} s: is the broker reachable?")
        if self.first_error:
            raise KafkaLogError(f"delivery to topic {self.topic!r} failed: {self.first_error}")

    def close(self) -> None:
        self.flush()


def make_feeder(producer, topic: str, catalog: Catalog, seed: int, rate: float, duration: float,
                manifest_path: Path, time_scale: float = 60.0, bad_rate: float = 0.0, dup_rate: float = 0.0):
    """A ``vendlab.runner.LogFeeder`` thread that feeds the generator into Kafka (call .start())."""
    from vendlab.generator import Generator
    from vendlab.runner import LogFeeder

    gen = Generator(catalog, seed, rate, time_scale, bad_rate=bad_rate, dup_rate=dup_rate)
    return LogFeeder(gen, KafkaLogWriter(producer, topic), rate, duration, manifest_path)


class KafkaValidator:
    """The validation consumer on Kafka (see the module doc for the exactly-once design)."""

    def __init__(self, consumer, topic: str, catalog: Catalog, store: ViewStore, job: str = base.VALIDATION,
                 max_batch: int = 50_000, batch_wait_s: float = 0.5, commit_to_kafka: bool = True):
        from vendlab.validation import Validator

        self.consumer = consumer
        self.topic = topic
        self.catalog = catalog
        self.store = store
        self.job = job
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.commit_to_kafka = commit_to_kafka
        self._make_validator = lambda: Validator(Path("."), catalog, store, job)
        self.lines = 0
        self.batches = 0
        self.restarts = 0
        self._started = False

    # -- state from the store ---------------------------------------------------------------
    def stored_offsets(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.store.read_view(self.job, OFFSETS_VIEW).items()}

    def start(self) -> None:
        """Positions from the store; replay the topic up to them to rebuild the dedup state."""
        from confluent_kafka import TopicPartition

        self.validator = self._make_validator()
        self.end_copies: dict[str, set[int]] = {}
        self.partitions = topic_partitions(self.consumer, self.topic)
        if not self.partitions:
            raise KafkaLogError(f"topic {self.topic!r} does not exist (yet): create it first "
                                f"(the start scripts do) or produce to it")
        stored = self.stored_offsets()
        self.position: dict[int, int] = {}
        replay: dict[int, tuple[int, int]] = {}
        for p in self.partitions:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            pos = stored.get(p, low)
            if pos > high:
                raise KafkaLogError(
                    f"the store says partition {p} was read up to offset {pos}, but the topic ends at {high}: "
                    f"the topic was recreated. Empty the validation rows of the store (or the keyspace) first.")
            self.position[p] = pos
            if pos > low:
                replay[p] = (low, pos)
        if replay:
            self._replay(replay)
        self.consumer.assign([TopicPartition(self.topic, p, self.position[p]) for p in self.partitions])
        self._started = True

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
                    raise KafkaLogError(f"replaying {self.topic!r} to rebuild the validation state: no record "
                                        f"for {REPLAY_IDLE_TIMEOUT_S:g} s, partitions {sorted(left)} unfinished")
                continue
            idle_since = time.monotonic()
            lines = []
            for m in msgs:
                if m.error():
                    raise KafkaLogError(str(m.error()))
                p, off = m.partition(), m.offset()
                if p in left and off < left[p]:
                    if is_end_marker(m.value()):
                        self._track_end(m.value(), p)
                    else:
                        lines.append(m.value())
                    if off + 1 >= left[p]:
                        del left[p]
            if lines:
                self.validator.deltas_for(b"\n".join(lines) + b"\n")  # only the seen-set matters here
        self.consumer.unassign()

    def _track_end(self, value: bytes, partition: int) -> str | None:
        """Record a copy of an end marker; its id once every partition has delivered one."""
        if not is_end_marker(value):
            return None
        from vendlab.validate import validate_line

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
                    raise KafkaLogError(str(m.error()))
            msgs += got
        if not msgs:
            return 0
        start = dict(self.position)
        end = dict(start)
        lines: list[bytes] = []
        markers: list[base.Marker] = []
        for m in msgs:
            p, off, value = m.partition(), m.offset(), m.value()
            if p not in end:  # a partition added while running: restart to include it cleanly
                self._restart()
                return 0
            if off < end[p]:
                continue  # already counted (can only happen after a re-assign)
            end[p] = off + 1
            if is_end_marker(value):
                done = self._track_end(value, p)
                if done:
                    markers.append((done, _created_ms(value)))
                continue
            lines.append(value)
        deltas, line_markers, n = self.validator.deltas_for(b"\n".join(lines) + b"\n" if lines else b"")
        deltas += [(OFFSETS_VIEW, str(p), 0, end[p] - start[p]) for p in end if end[p] != start[p]]
        batch_id = sum(start.values())
        try:
            applied = self.store.apply_batch(self.job, batch_id, deltas, line_markers + markers,
                                             rows=len(msgs), visible_ms=int(time.time() * 1000))
        except BaseException:
            self._started = False  # rebuild from the store before the next batch
            raise
        if not applied:  # another writer applied this id: our in-memory state is off; rebuild
            self._restart()
            return 0
        self.position = end
        self.lines += len(msgs)
        self.batches += 1
        if self.commit_to_kafka:
            self._commit(end)
        return len(msgs)

    def _commit(self, offsets: dict[int, int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        try:
            self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                                 asynchronous=True)
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
