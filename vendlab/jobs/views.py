"""The additive views, computed from parsed rows: one definition for every job.

``view_deltas(df, bucket_ms)`` turns a frame of parsed, deduplicated rows (a micro-batch of
the kappa job or of lambda's speed job, or lambda's whole master dataset in the batch job)
into rows ``(view, key, bucket, value)``. With ``bucket_ms`` the sale views are bucketed by
event time (lambda's speed layer, so a batch cutoff can retire whole buckets); without, every
row is bucket 0.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from vendlab import schema
from vendlab.jobs.parse import union_all
from vendlab.store import base

# view name -> (key column, value column) over valid sales
SALE_VIEWS = {
    base.ITEMS_BY_PRODUCT: ("product", "quantity"),
    base.ITEMS_BY_CATEGORY: ("category", "quantity"),
    base.REVENUE_BY_CATEGORY: ("category", "revenue_cents"),
}


def bucket_of(event_ms, bucket_ms: int | None):
    return F.lit(0).cast("long") if not bucket_ms else F.floor(event_ms / F.lit(bucket_ms)).cast("long")


def view_deltas(df: DataFrame, bucket_ms: int | None = None) -> DataFrame:
    sales = df.filter(F.col("kind") == schema.SALE).withColumn("bucket", bucket_of(F.col("event_ms"), bucket_ms))
    parts = [
        sales.groupBy(F.col(key).alias("key"), "bucket").agg(F.sum(val).cast("long").alias("value"))
        .select(F.lit(view).alias("view"), "key", "bucket", "value")
        for view, (key, val) in SALE_VIEWS.items()
    ]
    parts.append(
        df.filter(F.col("kind") == "dead").groupBy(F.col("reason").alias("key")).agg(F.count("*").alias("value"))
        .select(F.lit(base.DEAD_LETTERS).alias("view"), "key", F.lit(0).cast("long").alias("bucket"), "value"))
    return union_all(parts)
