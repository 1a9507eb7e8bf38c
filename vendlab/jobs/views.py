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


# Step 1 of view_rows: every input row becomes a few *fine* entries, at the finest grain any view
# needs, and these are summed. Families and their key parts (k1..k5) and values (v0..v5):
SALE, RESTOCK, TELEMETRY, DEAD, DEAD_ROW, MARKER, OTHER = "S", "R", "T", "D", "X", "M", "O"
#   S  machine, product, hour, place, category   quantity, revenue
#   R  machine, product, hour                    quantity
#   T  machine, product (one per stock entry), hour
#                                                stock; and once per reading the stats of defs.TELEMETRY_STATS
#   D  reason                                    1          X  dead row (reason, position, key, line)   1
#   M  marker id                                 created_ms
FINE_KEYS = ("k1", "k2", "k3", "k4", "k5")
FINE_VALUES = ("v0", "v1", "v2", "v3", "v4", "v5")
STOCK_TYPE = "map<string,int>"


def _fine(fam: str, bucket: Column, keys: list[Column], values: list[Column], stock: Column | None = None) -> Column:
    none_s, zero = F.lit(None).cast("string"), F.lit(0).cast("long")
    keys = keys + [none_s] * (len(FINE_KEYS) - len(keys))
    values = values + [zero] * (len(FINE_VALUES) - len(values))
    return F.struct(F.lit(fam).alias("fam"), *[k.cast("string").alias(a) for k, a in zip(keys, FINE_KEYS)],
                    bucket.alias("bucket"), *[v.cast("long").alias(a) for v, a in zip(values, FINE_VALUES)],
                    (stock if stock is not None else F.lit(None).cast(STOCK_TYPE)).alias("stock"))


def _telemetry_stats() -> list[Column]:
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
    return [stats[s] for s in defs.TELEMETRY_STATS]


def _entries(bucket_ms: int | None, with_side_outputs: bool) -> Column:
    """Each input row's fine entries (an array; a telemetry entry still holds its stock map)."""
    kind = F.col("kind")
    bucket = bucket_of(F.col("event_ms"), bucket_ms)
    zero = F.lit(0).cast("long")
    hour = F.substring(F.col("event_time"), 1, defs.HOUR_CHARS)
    mach, prod = F.col("machine_id"), F.col("product")
    dead = [_fine(DEAD, zero, [F.col("reason")], [F.lit(1)])]
    if with_side_outputs:
        dead.append(_fine(DEAD_ROW, zero, [F.concat_ws(SEP, "reason", "position", "dedup_key", "value")], [F.lit(1)]))
    entries = (
        F.when(kind == schema.SALE, F.array(_fine(SALE, bucket, [mach, prod, hour, F.col("place"), F.col("category")],
                                                  [F.col("quantity"), F.col("revenue_cents")])))
        .when(kind == schema.RESTOCK, F.array(_fine(RESTOCK, bucket, [mach, prod, hour], [F.col("quantity")])))
        .when(kind == schema.TELEMETRY, F.array(_fine(TELEMETRY, bucket, [mach, F.lit(None), hour],
                                                      _telemetry_stats(), stock=F.col("stock"))))
        .when(kind == "dead", F.array(*dead)))
    if with_side_outputs:
        entries = (entries.when(kind == schema.MARKER, F.array(
            _fine(MARKER, zero, [F.col("event_id")], [F.col("created_ms")]))).otherwise(F.array(_fine(OTHER, zero, [], []))))
    return entries


def _stock_exploded() -> list[Column]:
    """Fine entries with their stock map exploded -> the columns summed by (family, keys, bucket).

    The reading's stats go with its first stock entry, a stock entry with the product as k2; a
    row counts as input once (n), on the first row of its entry."""
    first = F.col("pos").isNull() | (F.col("pos") == 0)
    is_tel = F.col("fam") == TELEMETRY
    out = [F.col("fam"), F.col("k1"), F.when(is_tel, F.col("sp")).otherwise(F.col("k2")).alias("k2"),
           F.col("k3"), F.col("k4"), F.col("k5"), F.col("bucket")]
    # s0: a stock entry's value (telemetry), else v0 (the rollup reads the stats from v0..v5)
    out += [F.when(is_tel, F.col("sv").cast("long")).otherwise(F.col("v0")).alias("s0")]
    out += [F.when(first, F.col(v)).otherwise(F.lit(0).cast("long")).alias(v) for v in FINE_VALUES]
    out += [F.when(first, F.lit(1)).otherwise(F.lit(0)).cast("long").alias("n")]
    return out


def _rollup() -> Column:
    """Step 2: a summed fine entry -> the view entries it feeds (view, key parts, bucket, value)."""
    fam = F.col("fam")
    k = {n: F.col(n) for n in FINE_KEYS}
    # the key parts by family (see the table above); D, X and M keep their one key in k1
    mach, prod, hour, place, cat = k["k1"], k["k2"], k["k3"], k["k4"], k["k5"]
    none = F.lit(None).cast("string")

    def entry(view: str, value: Column, *parts: Column) -> Column:
        parts = list(parts) + [none] * (3 - len(parts))
        return F.struct(F.lit(view).alias("view"), *[p.alias(f"p{i}") for i, p in enumerate(parts)],
                        F.col("bucket").alias("bucket"), value.alias("value"))

    qty, rev = F.col("v0"), F.col("v1")
    sale = [entry(base.ITEMS_BY_PRODUCT, qty, prod), entry(base.ITEMS_BY_CATEGORY, qty, cat),
            entry(base.REVENUE_BY_CATEGORY, rev, cat), entry(defs.REVENUE_BY_MACHINE_HOUR, rev, mach, hour),
            entry(defs.ITEMS_BY_PLACE_HOUR, qty, place, hour),
            entry(defs.ITEMS_BY_MACHINE_PRODUCT_HOUR, qty, mach, prod, hour)]
    tel = [entry(defs.TELEMETRY_BY_MACHINE_HOUR, F.col(v), mach, hour, F.lit(s))
           for v, s in zip(FINE_VALUES, defs.TELEMETRY_STATS)]
    stock = entry(defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR, F.col("s0"), mach, prod, hour)
    rows = entry(ROWS_VIEW, F.col("n"))
    return (F.when(fam == SALE, F.array(*sale, rows))
            .when(fam == RESTOCK, F.array(entry(defs.RESTOCKED_BY_MACHINE_PRODUCT_HOUR, qty, mach, prod, hour), rows))
            # a reading's stats are on its first stock entry's row (n > 0), zeros on the others
            .when((fam == TELEMETRY) & (F.col("n") > 0) & prod.isNotNull(), F.array(*tel, stock, rows))
            .when((fam == TELEMETRY) & prod.isNotNull(), F.array(stock))
            .when(fam == TELEMETRY, F.array(*tel, rows))  # a reading with an empty stock map
            .when(fam == DEAD, F.array(entry(base.DEAD_LETTERS, qty, mach), rows))
            .when(fam == DEAD_ROW, F.array(entry(DEAD_ROW_VIEW, qty, mach)))  # its row counts under D
            .when(fam == MARKER, F.array(entry(MARKER_VIEW, qty, mach), rows))
            .otherwise(F.array(rows)))


class ViewPlan:
    """``view_rows``' Spark expressions, built once and applied to any number of frames.

    Performance: building them is ~150 column expressions made one py4j call at a time, about
    0.5 s (more when the Python process is busy); a streaming job applies one plan to each of its
    micro-batches instead of building it again for each (expressions are unresolved, so they
    bind to each micro-batch's frame)."""

    def __init__(self, bucket_ms: int | None = None, with_side_outputs: bool = True):
        self.with_side_outputs = with_side_outputs
        self.entries = F.explode(_entries(bucket_ms, with_side_outputs)).alias("e")
        self.unstock = [F.col(f"e.{c}") for c in ("fam",) + FINE_KEYS + ("bucket",) + FINE_VALUES]
        self.stock = F.posexplode_outer("e.stock").alias("pos", "sp", "sv")
        self.fine = _stock_exploded()
        self.fine_keys = [F.col(c) for c in ("fam",) + FINE_KEYS + ("bucket",)]
        self.fine_sums = [F.sum(c).alias(c) for c in ("s0",) + FINE_VALUES + ("n",)]
        self.rollup = F.explode(_rollup()).alias("e")
        self.keys = [F.col(f"e.{c}").alias(c) for c in ("view", "p0", "p1", "p2", "bucket")]
        self.sum = F.sum(F.col("e.value")).alias("value")
        self.not_rows = F.col("view") != ROWS_VIEW
        self.out = [F.col("view"), F.concat_ws(defs.SEP, "p0", "p1", "p2").alias("key"), F.col("bucket"), F.col("value")]

    def rows(self, df: DataFrame) -> DataFrame:
        # Performance: two plain generators, both in generated code (a higher-order function such
        # as ``transform`` over the stock map would take the whole step out of code generation:
        # measured 2-3x the CPU per line).
        e = df.select(self.entries).select(*self.unstock, self.stock).select(*self.fine)
        fine = e.groupBy(*self.fine_keys).agg(*self.fine_sums)
        agg = fine.select(self.rollup).groupBy(*self.keys).agg(self.sum)
        if not self.with_side_outputs:
            agg = agg.filter(self.not_rows)
        return agg.select(*self.out)


def view_rows(df: DataFrame, bucket_ms: int | None = None, with_side_outputs: bool = True) -> DataFrame:
    """Parsed, deduplicated rows -> ``(view, key, bucket, value)``, summed: one scan of the input.

    Two sums: the input rows' fine entries (one to a few per row) by family, key parts and
    bucket; then the few summed fine entries, each rolled up into the views it feeds (a sale's
    one fine entry feeds six views), by view, key and bucket. For many frames, build a
    ``ViewPlan`` once."""
    return ViewPlan(bucket_ms, with_side_outputs).rows(df)


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
