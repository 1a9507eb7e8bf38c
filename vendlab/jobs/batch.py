"""Lambda's batch layer: the master dataset up to a cutoff -> the batch view.

The hand-off to the speed layer is by **event time**, in buckets of ``profile.bucket_ms``:

* the batch reads one snapshot of the master dataset and, per log partition, the newest event
  time in it, each event's time capped at its log time + ``profile.event_time_skew_ms`` (so a
  valid event stamped far in the future cannot drag the cutoff there);
  ``cutoff = min over partitions(newest) - lateness``, rounded down to a bucket;
* it counts the unique valid events with event time < cutoff (every copy of an event carries
  the same event time, so a duplicate delivery is on the same side of the cutoff as its
  original, whichever copy each layer happens to keep);
* serving = batch view + speed rows in buckets >= cutoff.

An event not yet in the snapshot is, by the lateness bound, at or after the cutoff, so the
speed view counts it (the cap only lowers ``newest``, so it keeps this true); an event later than
the bound is missing from serving until the next batch run picks it up from the master dataset:
serving can lag, never double count.
"""

from __future__ import annotations

import time

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from vendlab.config import Profile
from vendlab.jobs import parse
from vendlab.jobs.ingest import ENVELOPE, ENVELOPE_SCHEMA, PARSED_BY
from vendlab.jobs.views import BUCKETED_VIEWS, bucket_of, rollup, view_plan
from vendlab.store.base import BatchViewInfo
from vendlab.world.catalog import Catalog


def master_exists(spark: SparkSession, profile: Profile) -> bool:
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(profile.master_path + "/_spark_metadata")
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    return fs.exists(path)


def master_schema(spark: SparkSession, machines: list[str], products: list[str]) -> T.StructType:
    """Every column a master row may have: the raw envelope, the parsed columns, ``parsed_by``, date."""
    parsed = parse.parse(spark.createDataFrame([], ENVELOPE_SCHEMA), machines, products).drop("dedup_key")
    return T.StructType(
        parsed.schema.fields + [T.StructField(PARSED_BY, T.StringType()), T.StructField("date", T.StringType())]
    )


def read_parsed(spark: SparkSession, profile: Profile, catalog: Catalog) -> tuple[DataFrame, DataFrame]:
    """(the master dataset, its rows as the contract parses them). Rows the current contract parsed
    at ingest are read from their columns (a column scan); any other row (another contract's
    version, or written without parsed columns) is parsed again from its raw line."""
    machines, products = sorted(catalog.machine_ids), sorted(catalog.product_names)
    version = parse.contract_version(machines, products)
    master = spark.read.schema(master_schema(spark, machines, products)).parquet(profile.master_path).drop("date")
    by = F.col(PARSED_BY)
    stored = master.filter(by == F.lit(version)).drop(PARSED_BY)
    again = parse.parse(master.filter(by.isNull() | (by != F.lit(version))).select(*ENVELOPE), machines, products)
    return master, stored.unionByName(again.drop("dedup_key"))


def compute_batch_view(spark: SparkSession, profile: Profile, catalog: Catalog):
    """(rows [(view, key, value)], cutoff_bucket, master rows read)."""
    if not master_exists(spark, profile):
        return [], 0, 0
    _, parsed = read_parsed(spark, profile, catalog)
    return _batch_view(parsed, profile)


def batch_view_of(master: DataFrame, profile: Profile, catalog: Catalog):
    """(rows, cutoff_bucket, rows read) of one snapshot of the master dataset given as any frame with
    the log envelope (``vendlab.jobs.sources``), parsed here, so tests can hand in a log of several
    partitions."""
    parsed = parse.parse(master, sorted(catalog.machine_ids), sorted(catalog.product_names))
    return _batch_view(parsed, profile)


ROWS_PER_TASK = 100_000  # master rows per deduplication task (see _batch_view)

# A session setting (architectures.lambda_.batch_session): at most this many tasks of the batch
# layer at a time, 0 or unset for no cap.
MAX_TASKS_CONF = "vendlab.batch.maxTasks"


def max_tasks(df: DataFrame) -> int:
    return int(df.sparkSession.conf.get(MAX_TASKS_CONF, "0") or 0)


def cutoff_and_rows(parsed: DataFrame, profile: Profile) -> tuple[int | None, int]:
    """(the newest event time of the snapshot as the cutoff rule takes it, rows read): one scan of a
    few columns, one aggregate per log partition.

    ``newest`` is the least advanced partition's newest valid event time, each event's time capped
    at its log time + the allowed skew: a valid sale dated 2099 must not move the cutoff (and with it
    every later event out of the speed layer) to 2099. It is taken over every valid line, duplicate
    deliveries included: the copies of an event carry its event time, so the uncapped newest is the
    same with or without them, and the capped one is never above the uncapped one (the no-loss
    argument of docs/lambda.md holds unchanged); no deduplication is needed for it."""
    capped = F.least(F.col("event_ms"), F.unix_millis(F.col("log_ts")) + F.lit(profile.event_time_skew_ms))
    timed = (F.col("kind") != "dead") & F.col("event_ms").isNotNull()
    per_partition = (
        parsed.groupBy("log_partition")
        .agg(F.count(F.lit(1)).alias("rows"), F.max(F.when(timed, capped)).alias("newest"))
        .collect()
    )
    newest = [r["newest"] for r in per_partition if r["newest"] is not None]
    return (min(newest) if newest else None), sum(r["rows"] for r in per_partition)


def _batch_view(parsed: DataFrame, profile: Profile):
    """(rows, cutoff_bucket, rows read) from a snapshot's rows as the contract parsed them.

    Performance (docs/history/results-2026-11.md, issue 15: lambda's batch layer): two Spark jobs over the columns
    they need, no cache. The first finds the cutoff and counts the rows; the second keeps the valid
    events before the cutoff, deduplicates them and sums their fine entries by view key. The filter
    on the bucket runs before the deduplication: every copy of an event carries the same event time,
    so a copy is below the cutoff exactly when its original is (the same premise as the hand-off)."""
    cap = max_tasks(parsed)
    if cap:  # every stage in at most ``cap`` tasks (the session's shuffle partitions are set to it too)
        parsed = parsed.coalesce(cap)
    newest, events = cutoff_and_rows(parsed, profile)
    if newest is None:
        return [], 0, events
    cutoff_bucket = (newest - profile.lateness_ms) // profile.bucket_ms
    before = parsed.filter(
        (F.col("kind") != "dead") & (bucket_of(F.col("event_ms"), profile.bucket_ms) < F.lit(cutoff_bucket))
    )
    if cap:
        # into the session's shuffle partitions (= cap); an explicit repartition would make Spark
        # drop the coalesce above (adjacent repartitions collapse) and scan in as many tasks as files
        unique = before.dropDuplicates(["event_id"])
    else:
        # Deduplicate in tasks of ~ROWS_PER_TASK rows, not in spark.sql.shuffle.partitions (2) tasks over
        # half of history each: Spark does not preempt a running task, so the speed layer's micro-batches
        # wait for a core until one ends (the pools of vendlab/fairscheduler.xml act only between tasks).
        # Partitioned by event_id already, the deduplication adds no shuffle and sorts once.
        tasks = max(2, -(-events // ROWS_PER_TASK))
        unique = before.repartition(tasks, "event_id").dropDuplicates(["event_id"])
    fine = view_plan(profile.bucket_ms, with_side_outputs=False).rows(unique, before_bucket=cutoff_bucket)
    deltas, _, _, _ = rollup(fine.collect())
    return [(view, key, value) for view, key, _, value in deltas], int(cutoff_bucket), events


def run_batch(spark: SparkSession, profile: Profile, catalog: Catalog, store) -> BatchViewInfo:
    """One batch run: compute the view, publish it with its cutoff, retire covered speed rows."""
    from vendlab.store.base import LAMBDA_SPEED

    t0 = time.time()
    previous = store.current_batch()
    rows, cutoff, events = compute_batch_view(spark, profile, catalog)
    if previous is not None and cutoff < previous.cutoff_bucket:
        # Never move the cutoff back (speed rows below the old cutoff may be retired already):
        # keep serving the previous view.
        return previous
    info = BatchViewInfo(
        version=(previous.version + 1) if previous else 1,
        cutoff_bucket=cutoff,
        published_ms=int(time.time() * 1000),
        events=events,
        seconds=round(time.time() - t0, 3),
    )
    store.publish_batch_view(info, rows)
    # Retire speed rows the *previous* view already covered, so that a reader that fetched the
    # previous cutoff a moment ago still finds every speed row it needs.
    if previous is not None:
        store.retire_buckets(LAMBDA_SPEED, previous.cutoff_bucket, BUCKETED_VIEWS)
    return info
