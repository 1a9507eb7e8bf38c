"""The additive views, computed from parsed rows: one definition for every job.

``view_rows(df, bucket_ms)`` turns a frame of parsed, deduplicated rows (a micro-batch of the
kappa job or of lambda's speed job, or the master dataset in lambda's batch job) into rows
``(view, key, bucket, value)`` with **one scan and one aggregation**: every input row is
exploded into the view entries it contributes to, then summed. A micro-batch's stateful plan
therefore runs once (several actions on the batch frame would each run the deduplication
again). With ``bucket_ms`` the sale views are bucketed by event time (lambda's speed layer, so
a batch cutoff can retire whole buckets); without, every row is bucket 0.

The owner's views (``vendlab.models.defs``: revenue per machine and hour, items per place and
hour, items and restocks per machine, product and hour, telemetry statistics and reported stock
per machine and hour) are entries of the same scan: a sale, a restock and a telemetry reading
each explode into the entries they contribute to.

Besides the additive views, a micro-batch also yields its latency markers (view
``_marker``: key = marker id, value = created_ms) and its dead-letter lines (view
``_dead_row``); ``split`` separates them.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vendlab import schema
from vendlab.models import defs
from vendlab.store import base

# view name -> (key column, value column) over valid sales
SALE_VIEWS = {
    base.ITEMS_BY_PRODUCT: ("product", "quantity"),
    base.ITEMS_BY_CATEGORY: ("category", "quantity"),
    base.REVENUE_BY_CATEGORY: ("category", "revenue_cents"),
}
BUCKETED_VIEWS = tuple(SALE_VIEWS) + defs.OWNER_VIEWS
MARKER_VIEW = "_marker"
ROWS_VIEW = "_rows"  # input rows of the frame, by kind
DEAD_ROW_VIEW = "_dead_row"
SEP = "\u0001"  # separates the fields of a dead row's key (never in a reason or a position)


def bucket_of(event_ms: Column, bucket_ms: int | None) -> Column:
    return F.lit(0).cast("long") if not bucket_ms else F.floor(event_ms / F.lit(bucket_ms)).cast("long")


def _entry(view: str, key: Column, bucket: Column, value: Column, *more: Column) -> Column:
    """One view entry. A key of several parts (machine, product, hour) is kept as parts through
    the aggregation and joined with ``defs.SEP`` after it: the strings are built per result row,
    not per entry."""
    none = F.lit(None).cast("string")
    k2, k3 = (list(more) + [none, none])[:2]
    return F.struct(F.lit(view).alias("view"), key.cast("string").alias("key"), k2.alias("k2"), k3.alias("k3"),
                    bucket.alias("bucket"), value.cast("long").alias("value"))


def _owner_entries(bucket: Column) -> tuple[list[Column], list[Column], Column]:
    """Entries of the owner's views: (sale entries, restock entries, telemetry entries array)."""
    hour = F.substring(F.col("event_time"), 1, defs.HOUR_CHARS)
    mach, prod = F.col("machine_id"), F.col("product")
    sale = [
        _entry(defs.REVENUE_BY_MACHINE_HOUR, mach, bucket, F.col("revenue_cents"), hour),
        _entry(defs.ITEMS_BY_PLACE_HOUR, F.col("place"), bucket, F.col("quantity"), hour),
        _entry(defs.ITEMS_BY_MACHINE_PRODUCT_HOUR, mach, bucket, F.col("quantity"), prod, hour),
    ]
    restock = [_entry(defs.RESTOCKED_BY_MACHINE_PRODUCT_HOUR, mach, bucket, F.col("quantity"), prod, hour)]
    lo, hi = defs.TEMP_RANGE
    centi = F.round(F.least(F.greatest(F.col("temperature"), F.lit(lo)), F.lit(hi)) * 100).cast("long")
    code = F.col("error_code")
    stats = {
        "readings": F.lit(1),
        "temp_centi": centi,
        "temp_centi_sq": centi * centi,
        "faults": F.when((code != 0) & (code != defs.OUT_OF_SERVICE), 1).otherwise(0),
        "out_of_service": F.when(code == defs.OUT_OF_SERVICE, 1).otherwise(0),
        "offset_ms": F.col("event_ms") % defs.HOUR_MS,
    }
    tel = F.array(*[_entry(defs.TELEMETRY_BY_MACHINE_HOUR, mach, bucket, stats[s], hour, F.lit(s))
                    for s in defs.TELEMETRY_STATS])
    # A product named twice in one reading counts once, with its last value (as a JSON object
    # read in Python): Spark's parsed map keeps both entries.
    entries = F.map_entries(F.col("stock"))
    stock = F.transform(F.array_distinct(F.map_keys(F.col("stock"))), lambda p: _entry(
        defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR, mach, bucket,
        F.element_at(F.filter(entries, lambda e: e["key"] == p), -1)["value"], p, hour))
    return sale, restock, F.concat(tel, stock)


def view_rows(df: DataFrame, bucket_ms: int | None = None, with_side_outputs: bool = True) -> DataFrame:
    kind = F.col("kind")
    bucket = bucket_of(F.col("event_ms"), bucket_ms)
    zero = F.lit(0).cast("long")
    owner_sale, owner_restock, owner_tel = _owner_entries(bucket)
    sale_entries = [_entry(v, F.col(k), bucket, F.col(val)) for v, (k, val) in SALE_VIEWS.items()] + owner_sale
    dead_entries = [_entry(base.DEAD_LETTERS, F.col("reason"), zero, F.lit(1))]
    if with_side_outputs:
        dead_entries.append(_entry(DEAD_ROW_VIEW, F.concat_ws(SEP, "reason", "position", "dedup_key", "value"),
                                   zero, F.lit(1)))
    restock_entries = list(owner_restock)
    if with_side_outputs:
        count = _entry(ROWS_VIEW, kind, zero, F.lit(1))
        sale_entries.append(count)
        dead_entries.append(count)
        restock_entries.append(count)
        owner_tel = F.concat(owner_tel, F.array(count))
    entries = (F.when(kind == schema.SALE, F.array(*sale_entries))
               .when(kind == "dead", F.array(*dead_entries))
               .when(kind == schema.RESTOCK, F.array(*restock_entries))
               .when(kind == schema.TELEMETRY, owner_tel))
    if with_side_outputs:
        entries = (entries.when(kind == schema.MARKER, F.array(
            _entry(MARKER_VIEW, F.col("event_id"), zero, F.col("created_ms")), count))
            .otherwise(F.array(count)))
    e = df.select(F.explode(entries).alias("e")).select("e.*")
    agg = e.groupBy("view", "key", "k2", "k3", "bucket").agg(F.sum("value").alias("value"))
    return agg.select("view", F.concat_ws(defs.SEP, "key", "k2", "k3").alias("key"), "bucket", "value")


def split(rows) -> tuple[list[base.Delta], list[base.Marker], list[base.DeadLetter], int]:
    """Collected view rows -> (deltas, markers, dead letters, number of input rows)."""
    deltas, markers, dead, n = [], [], [], 0
    for view, key, bucket, value in rows:
        if view == ROWS_VIEW:
            n += int(value)
        elif view == MARKER_VIEW:
            markers.append((key, int(value)))
        elif view == DEAD_ROW_VIEW:
            reason, position, _, raw = key.split(SEP, 3)
            dead.append((reason, raw, position))
        else:
            deltas.append((view, key, int(bucket), int(value)))
    return deltas, markers, dead, n
