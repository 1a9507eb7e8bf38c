"""Lambda's ingest job: log -> master dataset, with Spark's own Parquet file sink.

The master dataset holds every line of the log exactly as it arrived (malformed lines and
duplicate deliveries included: it is the immutable record of facts the batch layer recomputes
from), with its log position, partitioned by the event's date. Spark's file sink commits each
micro-batch in ``_spark_metadata``; a batch read of the folder lists only committed files, so
the batch layer never sees a half-written micro-batch, and a replayed micro-batch is not
written twice.

Beside the raw line, each row carries what the contract made of it (``vendlab.jobs.parse``:
typed fields, ``kind``, ``reason``, ``event_ms``...) and ``parsed_by``, the version of the contract
that did (``parse.contract_version``): a batch run is then a scan of the columns it needs, not a
JSON parse of every line of history at every run (the batch layer's cost grew with history at
the parse's ~10 us per line). The raw line stays the fact: rows parsed by another version of the
contract (or written without parsed columns) are parsed again from ``value`` by the batch layer,
so a fixed contract applies to all of history at the next run (``vendlab.jobs.batch``).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from vendlab import schema
from vendlab.config import Profile
from vendlab.jobs import parse, sources

INGEST = "lambda_ingest"

# The log envelope: the columns every master row has, whatever wrote it.
ENVELOPE_SCHEMA = T.StructType(
    [
        T.StructField("value", T.StringType()),
        T.StructField("log_partition", T.IntegerType()),
        T.StructField("log_offset", T.LongType()),
        T.StructField("log_ts", T.TimestampType()),
        T.StructField("position", T.StringType()),
    ]
)
ENVELOPE = tuple(ENVELOPE_SCHEMA.fieldNames())
# The master dataset's raw columns: the log envelope plus the partition column.
MASTER_SCHEMA = "value STRING, log_partition INT, log_offset BIGINT, log_ts TIMESTAMP, position STRING, date STRING"
PARSED_BY = "parsed_by"


def with_date(df: DataFrame) -> DataFrame:
    """Partition column: the event's date (yyyy-MM-dd), or the log time's date for a line whose
    event_time cannot be read (the parsed ``event_time`` when the frame has it: no second parse)."""
    t = F.col("event_time") if "event_time" in df.columns else F.get_json_object(F.col("value"), "$.event_time")
    return df.withColumn(
        "date",
        F.when(t.rlike(schema.TIME_REGEX), F.substring(t, 1, 10)).otherwise(
            F.date_format(F.col("log_ts"), "yyyy-MM-dd")
        ),
    )


def master_rows(raw: DataFrame, catalog=None) -> DataFrame:
    """Log envelope -> master rows: with a catalog, the raw line plus what the contract made of it
    (``parsed_by``: which contract); without, the raw envelope only (parsed by the batch layer)."""
    if catalog is None:
        return with_date(raw)
    machines, products = sorted(catalog.machine_ids), sorted(catalog.product_names)
    # dedup_key is per delivery (a key of its own for a malformed line): the batch layer deduplicates by event_id
    parsed = parse.parse(raw, machines, products).drop("dedup_key")
    return with_date(parsed.withColumn(PARSED_BY, F.lit(parse.contract_version(machines, products))))


def start_ingest_job(
    spark: SparkSession, profile: Profile, trigger_seconds: float = 0.0, available_now: bool = False, catalog=None
):
    w = (
        master_rows(sources.read_log_stream(spark, profile, profile.max_offsets_per_trigger), catalog)
        .writeStream.queryName(INGEST)
        .format("parquet")
        .partitionBy("date")
        .option("path", profile.master_path)
        .option("checkpointLocation", profile.checkpoint(INGEST))
    )
    return sources.start_query(spark, INGEST, w, trigger_seconds, available_now)
