"""Lambda's ingest job: log -> master dataset, with Spark's own Parquet file sink.

The master dataset holds every line of the log exactly as it arrived (malformed lines and
duplicate deliveries included: it is the immutable record of facts the batch layer recomputes
from), with its log position, partitioned by the event's date. Spark's file sink commits each
micro-batch in ``_spark_metadata``; a batch read of the folder lists only committed files, so
the batch layer never sees a half-written micro-batch, and a replayed micro-batch is not
written twice.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from vendlab import schema
from vendlab.config import Profile
from vendlab.jobs import sources

INGEST = "lambda_ingest"

# The master dataset's columns: the log envelope plus the partition column.
MASTER_SCHEMA = ("value STRING, log_partition INT, log_offset BIGINT, log_ts TIMESTAMP, position STRING, "
                 "date STRING")


def with_date(df: DataFrame) -> DataFrame:
    """Partition column: the event's date (yyyy-MM-dd), or the log time's date for a line whose
    event_time cannot be read."""
    t = F.get_json_object(F.col("value"), "$.event_time")
    return df.withColumn("date", F.when(t.rlike(schema.TIME_REGEX), F.substring(t, 1, 10)).otherwise(
        F.date_format(F.col("log_ts"), "yyyy-MM-dd")))


def start_ingest_job(spark: SparkSession, profile: Profile, trigger_seconds: float = 0.0,
                     available_now: bool = False):
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", INGEST)
    try:
        df = with_date(sources.read_log_stream(spark, profile))
        w = (df.writeStream.queryName(INGEST).format("parquet")
             .partitionBy("date")
             .option("path", profile.master_path)
             .option("checkpointLocation", profile.checkpoint(INGEST)))
        if available_now:  # ingest what the log holds now, then stop (the warm-up)
            w = w.trigger(availableNow=True)
        elif trigger_seconds > 0:
            w = w.trigger(processingTime=f"{trigger_seconds} seconds")
        return w.start()
    finally:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)
