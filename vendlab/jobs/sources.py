"""Where the streaming jobs read the log (Spark's own file source or Kafka source), and how they
start (``start_query``).

Both give the same envelope: ``value`` (the line as text), ``log_partition``, ``log_offset``,
``log_ts`` (the log's timestamp: Kafka's record timestamp, or the segment's first-event time
from its file name) and ``position`` (a readable place: segment file, or topic-partition@offset).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from vendlab.config import Profile
from vendlab.eventlog import SEGMENT_GLOB


def start_query(
    spark: SparkSession,
    pool: str,
    w: DataStreamWriter,
    trigger_seconds: float = 0.0,
    available_now: bool = False,
) -> StreamingQuery:
    """Start the query of ``w`` in the fair scheduler's ``pool`` (the query's thread takes the
    caller's local properties when it starts; vendlab/fairscheduler.xml). ``available_now``: process
    what the log holds now, then stop (tests, replays, rebuilds, the warm-up); else a micro-batch
    every ``trigger_seconds``, or as soon as the previous one ends with 0."""
    sc = spark.sparkContext
    sc.setLocalProperty("spark.scheduler.pool", pool)
    try:
        if available_now:
            w = w.trigger(availableNow=True)
        elif trigger_seconds > 0:
            w = w.trigger(processingTime=f"{trigger_seconds} seconds")
        return w.start()
    finally:
        sc.setLocalProperty("spark.scheduler.pool", None)


def read_log_stream(spark: SparkSession, profile: Profile, max_offsets: int | None = None) -> DataFrame:
    """The log as a stream. ``max_offsets``: Spark's ``maxOffsetsPerTrigger`` for Kafka, only for a job
    without a watermark (lambda's ingest); a deduplicating job reads every partition to its newest record
    in each micro-batch (``None``).

    Why a deduplicating job must not cap: Spark's Kafka source shares a cap out among the partitions by
    their lag in records, not by log time (each partition moves on by the same fraction of its own lag),
    so after a backlog in partitions whose density varies over time in different ways (the places'
    hourly profiles) a capped micro-batch leaves one partition behind another in log time. The
    deduplication's watermark is one for the whole query (the newest log time read, minus
    ``Profile.dedup_delay``, as of the previous micro-batch), and ``dropDuplicatesWithinWatermark``
    drops every row at or below it: the lagging partition's valid events would be dropped for good while
    validation counts them. Uncapped, a micro-batch ends every partition at the same instant of the
    producer, whose partitions advance together in log time (it writes the chunks in log-time order),
    so no partition can fall behind another by more than what the producer has in flight
    (docs/architecture.md, "Deduplication after a backlog"). The file log has one partition: its cap
    (``maxFilesPerTrigger``, whole segments in log order) is safe."""
    if profile.log == "files":
        raw = (
            spark.readStream.format("text")
            .option("pathGlobFilter", SEGMENT_GLOB)
            .option("lineSep", "\n")  # as the writer and the validator: a stray "\r" splits no line
            .option("maxFilesPerTrigger", profile.max_files_per_trigger)
            .load(str(profile.log_dir))
        )
        return file_envelope(raw.select("value", F.col("_metadata.file_name").alias("file")))
    if profile.log == "kafka":
        raw = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", profile.kafka_bootstrap)
            .option("subscribe", profile.topic)
            .option("startingOffsets", "earliest")
            .option("failOnDataLoss", "true")
        )
        if max_offsets is not None:
            raw = raw.option("maxOffsetsPerTrigger", max_offsets)
        raw = raw.load()
        return kafka_envelope(raw)
    raise ValueError(f"unknown log {profile.log!r}: allowed are files, kafka")


def file_envelope(df: DataFrame) -> DataFrame:
    """``value`` + ``file`` (segment file name) -> the log envelope."""
    return df.select(
        "value",
        F.lit(0).alias("log_partition"),
        F.lit(None).cast("long").alias("log_offset"),
        F.timestamp_millis(F.regexp_extract("file", r"^seg-\d+-(\d+)\.jsonl$", 1).cast("long")).alias("log_ts"),
        F.col("file").alias("position"),
    )


def kafka_envelope(df: DataFrame) -> DataFrame:
    """Rows of Spark's Kafka source -> the log envelope."""
    return df.select(
        F.col("value").cast("string").alias("value"),
        F.col("partition").alias("log_partition"),
        F.col("offset").alias("log_offset"),
        F.col("timestamp").alias("log_ts"),
        F.concat(
            F.col("topic"), F.lit("-"), F.col("partition").cast("string"), F.lit("@"), F.col("offset").cast("string")
        ).alias("position"),
    )
