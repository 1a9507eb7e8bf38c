"""Profiles: where the log, the master dataset, the checkpoints and the view store live.

The jobs are the same code in every mode; a profile is the only difference.

- ``embedded`` (default): everything under one data dir, no services.
      DIR/log/            segments of the log (*.jsonl)
      DIR/master/         lambda's master dataset (Parquet, partitioned by date)
      DIR/checkpoints/    Spark checkpoints, one folder per query
      DIR/views.sqlite    the view store
      DIR/manifest.json   the generator's ground truth
      DIR/catalog.json    the fleet (machines, places, products)
- ``compose``: Kafka, HDFS and Cassandra of the Docker Compose stacks (see docs/compose.md);
  values come from environment variables (VENDLAB_KAFKA, VENDLAB_TOPIC, VENDLAB_MASTER,
  VENDLAB_CHECKPOINTS, VENDLAB_CASSANDRA, VENDLAB_KEYSPACE, VENDLAB_SPARK_MASTER).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROFILES = ("embedded", "compose")

# The validation consumer recognises a duplicate delivered up to this much log time after the
# previous copy of its id (vendlab.oracle.SeenIds); it must be at least twice the jobs' dedup_delay,
# since Spark keeps an id until the log has moved about 2 x dedup_delay past its first delivery
# (vendlab.jobs.parse.deduplicate): a smaller window would count copies the jobs drop. Six times the
# default delay: kappa's out-of-contract duplicates (counted again after about 2 x its delay) stay
# visible as kappa - validation, and memory holds about rate x window / time_scale ids (at 60x
# and 2 000 events/s: 120 000 ids, about 15 MB).
VALIDATION_WINDOW_MS = 60 * 60_000

# Lambda's batch layer pauses this many seconds after each batch run before the next
# (architectures.lambda_.run_batch_loop), so a slow run never overlaps the next one. The one default of
# `vendlab run/demo --batch-interval`, RunSettings, `vendlab job lambda-batch` and the start scripts
# (the compose stacks' VENDLAB_BATCH_INTERVAL; tests/test_compose_shared.py checks it). 20 s: the
# 120-s demo shows several hand-offs and the speed layer holds few blocks after the cutoff; on a
# long cluster run the batch run itself (7.5 s over 1.2M events embedded here, docs/results.md, and growing
# with the history) soon outweighs the pause anyway.
BATCH_INTERVAL_S = 20.0

_UNITS_MS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}


def duration_ms(text: str) -> int:
    """A Spark-style delay such as "10 minutes" or "1 hour" in milliseconds."""
    parts = text.strip().split()
    unit = parts[1].lower().rstrip("s") if len(parts) == 2 else ""
    if unit not in _UNITS_MS:
        raise ValueError(f"delay {text!r}: expected '<number> <unit>' with a unit of {', '.join(_UNITS_MS)}")
    return int(float(parts[0]) * _UNITS_MS[unit])


@dataclass(frozen=True)
class Profile:
    name: str
    data_dir: Path
    spark_master: str = "local[2]"
    log: str = "files"  # "files" | "kafka"
    kafka_bootstrap: str = ""
    topic: str = "vendlab-events"
    master_path: str = ""
    checkpoint_dir: str = ""
    store: str = "sqlite"  # "sqlite" | "cassandra"
    cassandra_hosts: tuple[str, ...] = ()
    keyspace: str = "vendlab"
    # Duplicate deliveries are dropped within this much log time (Spark watermark delay).
    dedup_delay: str = "10 minutes"
    # The validation consumer's window of log time for duplicates (>= 2 x dedup_delay, see above).
    validation_window_ms: int = VALIDATION_WINDOW_MS
    # Lambda: an event is at most this late (event time behind the newest event before it in
    # its log partition); the batch view only covers event times older than newest - lateness.
    lateness_ms: int = 10 * 60_000
    # Lambda: how far an event's time may run ahead of its log time (segment time or Kafka record
    # time, both on the generator's simulated clock) and still move the batch cutoff: each event
    # counts as at most log_ts + this when the batch finds the newest event time, so one valid
    # sale stamped in 2099 cannot push the cutoff into the future. Counting stays on event time.
    event_time_skew_ms: int = 10 * 60_000
    # Lambda speed view: event-time bucket of its rows; the batch cutoff is a bucket boundary.
    bucket_ms: int = 60_000
    # Lambda's ingest job writes the master dataset once every this many seconds (Spark's
    # processing-time trigger), not as fast as it can: nothing reads the master dataset but the batch
    # layer, every BATCH_INTERVAL_S at most, while each micro-batch costs the same ~0.3-0.4 s of planning
    # and tasks however small it is, taken from the user-facing streaming views on the same cores, and
    # writes its own small files, which each batch run opens again (docs/history/results-2026-11.md, issue 15).
    ingest_trigger_s: float = 5.0
    # Lambda in embedded mode: the batch layer runs in the JVM of the streaming queries and runs at
    # most this many tasks at a time (0: as many as there are cores), so that the speed and kappa
    # views keep a core while a batch run goes on (Spark's FAIR pools act only between tasks and have
    # no maximum share). On the cluster the batch layer is its own application with its own cores.
    shared_batch_tasks: int = 1
    max_files_per_trigger: int = 50
    # Kafka records per micro-batch of lambda's ingest job (no watermark there). The deduplicating view
    # jobs never cap their Kafka reads: a cap shared out by lag leaves partitions apart in log time
    # and the watermark would drop the lagging ones' events (vendlab.jobs.sources.read_log_stream).
    max_offsets_per_trigger: int = 2_000_000
    spark_conf: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.validation_window_ms < 2 * duration_ms(self.dedup_delay):
            raise ValueError(
                f"validation_window_ms ({self.validation_window_ms}) must be at least twice the jobs' "
                f"dedup_delay ({self.dedup_delay}, {2 * duration_ms(self.dedup_delay)} ms): the jobs keep an "
                f"event id until the log has moved about 2 x dedup_delay past it, and validation would count "
                f"duplicates the jobs drop"
            )

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "views.sqlite"

    @property
    def manifest_path(self) -> Path:
        return self.data_dir / "manifest.json"

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "catalog.json"

    def checkpoint(self, query: str) -> str:
        return f"{self.checkpoint_dir.rstrip('/')}/{query}"

    def with_(self, **kw) -> Profile:
        return replace(self, **kw)


def embedded(data_dir: Path | str, **overrides) -> Profile:
    d = Path(data_dir).resolve()
    return Profile(
        name="embedded", data_dir=d, master_path=str(d / "master"), checkpoint_dir=str(d / "checkpoints"), **overrides
    )


# The cluster's streaming state (the deduplication's event ids) in RocksDB, Spark's own provider, with
# bounded memory: an uncapped micro-batch after a long outage holds every event id of the backlog until
# the watermark moves past them, far more than the default provider keeps on a worker's heap (it keeps
# each state version whole in memory). Spark stores the provider in a query's checkpoint: a query
# started with the default provider keeps it. Changelog checkpointing writes only each batch's changes.
CLUSTER_STATE_CONF = {
    "spark.sql.streaming.stateStore.providerClass": (
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    ),
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    "spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage": "true",
    "spark.sql.streaming.stateStore.rocksdb.maxMemoryUsageMB": "256",
}


def compose(data_dir: Path | str, **overrides) -> Profile:
    env = os.environ.get
    overrides["spark_conf"] = {**CLUSTER_STATE_CONF, **overrides.get("spark_conf", {})}
    return Profile(
        name="compose",
        data_dir=Path(data_dir).resolve(),
        spark_master=env("VENDLAB_SPARK_MASTER", "spark://spark-master:7077"),
        log="kafka",
        kafka_bootstrap=env("VENDLAB_KAFKA", "kafka:29092"),
        topic=env("VENDLAB_TOPIC", "vendlab-events"),
        master_path=env("VENDLAB_MASTER", "hdfs://namenode:8020/vendlab/master"),
        checkpoint_dir=env("VENDLAB_CHECKPOINTS", "hdfs://namenode:8020/vendlab/checkpoints"),
        store="cassandra",
        cassandra_hosts=tuple(env("VENDLAB_CASSANDRA", "cassandra1").split(",")),
        keyspace=env("VENDLAB_KEYSPACE", "vendlab"),
        **overrides,
    )


def make_profile(name: str, data_dir: Path | str, **overrides) -> Profile:
    if name == "embedded":
        return embedded(data_dir, **overrides)
    if name == "compose":
        return compose(data_dir, **overrides)
    raise ValueError(f"unknown profile {name!r}: allowed are {', '.join(PROFILES)}")


def store_class(profile: Profile):
    """The ViewStore class the profile names (without connecting: e.g. for its ``is_transient``)."""
    if profile.store == "sqlite":
        from vendlab.store.sqlite import SqliteStore

        return SqliteStore
    if profile.store == "cassandra":
        from vendlab.store.cassandra import CassandraStore

        return CassandraStore
    raise ValueError(f"unknown store {profile.store!r}: allowed are sqlite, cassandra")


def open_store(profile: Profile, readonly: bool = False):
    """The view store the profile names."""
    if profile.store == "sqlite":
        from vendlab.store.sqlite import SqliteStore

        return SqliteStore(profile.sqlite_path, readonly=readonly)
    if profile.store == "cassandra":
        from vendlab.store.cassandra import CassandraStore  # added with the compose stacks

        return CassandraStore(profile.cassandra_hosts, profile.keyspace)
    raise ValueError(f"unknown store {profile.store!r}: allowed are sqlite, cassandra")
