"""The additive views, computed from parsed rows: one definition for every job.

A frame of parsed, deduplicated rows (a micro-batch of the kappa job or of lambda's speed job, or
the master dataset in lambda's batch job) becomes view rows ``(view, key, bucket, value)`` in
two steps:

1. **Spark, one scan and one sum** (``ViewPlan.rows``): every input row becomes one to a few
   *fine* entries at the finest grain any view needs (a sale: machine, product, hour, place,
   category -> quantity, revenue; a telemetry reading: its stats and one entry per stock
   product), summed by family, key and bucket. A micro-batch's stateful plan therefore runs once
   (several actions on the batch frame would each run the deduplication again).
2. **Python, the roll-up** (``rollup``): each summed fine entry adds to the views it feeds (a
   sale's entry feeds six views). It works on a few thousand rows, not on the events.

With ``bucket_ms`` the views are bucketed by event time (lambda's speed layer, so a batch cutoff
can retire whole buckets); without, every row is bucket 0. The owner's views
(``vendlab.models.defs``) are fed by the same entries as the sale views.

Besides the views, a micro-batch also yields its latency markers (marker id, created_ms), its
dead-letter lines and its number of input rows; ``rollup`` returns them apart.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from vendlab import schema
from vendlab.models import defs
from vendlab.store import base

SALE_VIEWS = (base.ITEMS_BY_PRODUCT, base.ITEMS_BY_CATEGORY, base.REVENUE_BY_CATEGORY)
BUCKETED_VIEWS = SALE_VIEWS + defs.OWNER_VIEWS
SEP = "\u0001"  # separates the fields of a dead row's key (never in a reason or a position)


def bucket_of(event_ms: Column, bucket_ms: int | None) -> Column:
    return F.lit(0).cast("long") if not bucket_ms else F.floor(event_ms / F.lit(bucket_ms)).cast("long")


# Step 1: every input row becomes a few *fine* entries, at the finest grain any view
# needs, and these are summed. Each family keeps its fields in the generic columns k1..k5 (keys)
# and v0..v5 (values), so that one sum serves all; ``rollup`` reads them back under these names:
SALE, RESTOCK, TELEMETRY, DEAD, DEAD_ROW, MARKER, OTHER = "S", "R", "T", "D", "X", "M", "O"
#   S  machine, product, hour, place, category   quantity, revenue
#   R  machine, product, hour                    quantity
#   T  machine, product (one per stock entry), hour
#                                                the product's units (s0, once exploded); and once per
#                                                reading the stats of defs.TELEMETRY_STATS
#   D  reason                                    1 (a dead line)
#   X  dead row (reason, position, key, line)    1
#   M  marker id                                 created_ms
FINE_KEYS = ("k1", "k2", "k3", "k4", "k5")
FINE_VALUES = ("v0", "v1", "v2", "v3", "v4", "v5")
STOCK_TYPE = "map<string,int>"


def _fine(fam: str, bucket: Column, keys: list[Column], values: list[Column], stock: Column | None = None) -> Column:
    none_s, zero = F.lit(None).cast("string"), F.lit(0).cast("long")
    keys = keys + [none_s] * (len(FINE_KEYS) - len(keys))
    values = values + [zero] * (len(FINE_VALUES) - len(values))
    return F.struct(
        F.lit(fam).alias("fam"),
        *[k.cast("string").alias(a) for k, a in zip(keys, FINE_KEYS)],
        bucket.alias("bucket"),
        *[v.cast("long").alias(a) for v, a in zip(values, FINE_VALUES)],
        (stock if stock is not None else F.lit(None).cast(STOCK_TYPE)).alias("stock"),
    )


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
        F.when(
            kind == schema.SALE,
            F.array(
                _fine(
                    SALE,
                    bucket,
                    [mach, prod, hour, F.col("place"), F.col("category")],
                    [F.col("quantity"), F.col("revenue_cents")],
                )
            ),
        )
        .when(kind == schema.RESTOCK, F.array(_fine(RESTOCK, bucket, [mach, prod, hour], [F.col("quantity")])))
        .when(
            kind == schema.TELEMETRY,
            F.array(_fine(TELEMETRY, bucket, [mach, F.lit(None), hour], _telemetry_stats(), stock=F.col("stock"))),
        )
        .when(kind == "dead", F.array(*dead))
    )
    if with_side_outputs:
        entries = entries.when(
            kind == schema.MARKER, F.array(_fine(MARKER, zero, [F.col("event_id")], [F.col("created_ms")]))
        ).otherwise(F.array(_fine(OTHER, zero, [], [])))
    return entries


def _stock_exploded() -> list[Column]:
    """Fine entries with their stock map exploded -> the columns summed by (family, keys, bucket).

    The reading's stats go with its first stock entry, a stock entry with the product as k2; a
    row counts as input once (n), on the first row of its entry."""
    first = F.col("pos").isNull() | (F.col("pos") == 0)
    is_tel = F.col("fam") == TELEMETRY
    out = [
        F.col("fam"),
        F.col("k1"),
        F.when(is_tel, F.col("sp")).otherwise(F.col("k2")).alias("k2"),
        F.col("k3"),
        F.col("k4"),
        F.col("k5"),
        F.col("bucket"),
    ]
    # s0: a stock entry's value (telemetry), else v0 (the rollup reads the stats from v0..v5)
    out += [F.when(is_tel, F.col("sv").cast("long")).otherwise(F.col("v0")).alias("s0")]
    out += [F.when(first, F.col(v)).otherwise(F.lit(0).cast("long")).alias(v) for v in FINE_VALUES]
    # a dead line has two entries (D, X): it counts once, under D
    out += [F.when(first & (F.col("fam") != DEAD_ROW), F.lit(1)).otherwise(F.lit(0)).cast("long").alias("n")]
    return out


class ViewPlan:
    """Step 1's Spark expressions, built once and applied to any number of frames.

    Performance: building them is a few thousand py4j calls (one per column expression or
    operator), 0.5-1 s and more when the Python process is busy (docs/history/results-2026-11.md, performance history): a streaming job
    applies one plan to each of its micro-batches, and ``view_plan`` shares one plan between the
    jobs of a Python process (a run's jobs take the plan its warm-up built: expressions are
    unresolved, so they bind to each frame)."""

    def __init__(self, bucket_ms: int | None = None, with_side_outputs: bool = True):
        self.entries = F.explode(_entries(bucket_ms, with_side_outputs)).alias("e")
        self.unstock = [F.col(f"e.{c}") for c in ("fam",) + FINE_KEYS + ("bucket",) + FINE_VALUES]
        self.stock = F.posexplode_outer("e.stock").alias("pos", "sp", "sv")
        self.fine_columns = _stock_exploded()
        self.keys = [F.col(c) for c in ("fam",) + FINE_KEYS]
        self.bucket = F.col("bucket")
        self.sums = [F.sum(c).alias(c) for c in SUMS]

    def fine(self, df: DataFrame) -> DataFrame:
        """Each row of ``df`` as its fine entries, not yet summed (stateless: a streaming job
        applies it in its streaming plan, so that a micro-batch's callback only sums)."""
        # Performance: two plain generators, both in generated code (a higher-order function such
        # as ``transform`` over the stock map would take the whole step out of code generation:
        # docs/history/results-2026-11.md, performance history).
        return df.select(self.entries).select(*self.unstock, self.stock).select(*self.fine_columns)

    def summed(self, fine: DataFrame, before_bucket: int | None = None) -> DataFrame:
        """Fine entries (``fine``) summed by family, keys and bucket: columns ``FINE_COLUMNS``.
        With ``before_bucket``, only entries in earlier buckets, summed over their buckets
        (bucket null)."""
        if before_bucket is None:
            return fine.groupBy(*self.keys, self.bucket).agg(*self.sums)
        e = fine.filter(self.bucket < F.lit(before_bucket))
        return e.groupBy(*self.keys).agg(F.lit(None).cast("long").alias("bucket"), *self.sums)

    def rows(self, df: DataFrame, before_bucket: int | None = None) -> DataFrame:
        """The summed fine entries of ``df``: ``summed(fine(df))``."""
        return self.summed(self.fine(df), before_bucket)


_PLANS: dict[tuple, ViewPlan] = {}


def view_plan(bucket_ms: int | None = None, with_side_outputs: bool = True) -> ViewPlan:
    """The process's ViewPlan for these arguments, built on first use (see ``ViewPlan``)."""
    from pyspark import SparkContext

    key = (id(SparkContext._gateway), bucket_ms, with_side_outputs)  # expressions live in that JVM
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = ViewPlan(bucket_ms, with_side_outputs)
    return plan


SUMS = ("s0",) + FINE_VALUES + ("n",)
FINE_COLUMNS = ("fam",) + FINE_KEYS + ("bucket",) + SUMS


def rollup(fine_rows) -> tuple[list[base.Delta], list[base.Marker], list[base.DeadLetter], int]:
    """Step 2: summed fine entries (``ViewPlan.rows``, collected) -> the views' deltas
    (view, key, bucket, value), latency markers, dead-letter rows and the number of input rows.

    Each family's entry is read under its own names (the summed columns ``FINE_COLUMNS`` are
    ``fam, k1..k5, bucket, s0, v0..v5, n``; the table at ``SALE`` says what they hold) and adds
    to the views it feeds, as ``vendlab.oracle`` adds each event.

    Plain Python on a micro-batch's few hundred to few thousand summed entries: a Spark stage
    for it cost a fixed time in every micro-batch, whatever its size (docs/history/results-2026-11.md, performance history)."""
    key = defs.key
    sums: defaultdict[tuple[str, str, int], int] = defaultdict(int)
    markers: list[base.Marker] = []
    dead: list[base.DeadLetter] = []
    n = 0
    for entry in fine_rows:
        fam = entry[0]
        if fam == SALE:
            _, machine, product, hour, place, category, bucket, _, quantity, revenue, _, _, _, _, rows = entry
            b = bucket or 0
            sums[(base.ITEMS_BY_PRODUCT, product, b)] += quantity
            sums[(base.ITEMS_BY_CATEGORY, category, b)] += quantity
            sums[(base.REVENUE_BY_CATEGORY, category, b)] += revenue
            sums[(defs.REVENUE_BY_MACHINE_HOUR, key(machine, hour), b)] += revenue
            sums[(defs.ITEMS_BY_PLACE_HOUR, key(place, hour), b)] += quantity
            sums[(defs.ITEMS_BY_MACHINE_PRODUCT_HOUR, key(machine, product, hour), b)] += quantity
        elif fam == RESTOCK:
            _, machine, product, hour, _, _, bucket, _, quantity, _, _, _, _, _, rows = entry
            sums[(defs.RESTOCKED_BY_MACHINE_PRODUCT_HOUR, key(machine, product, hour), bucket or 0)] += quantity
        elif fam == TELEMETRY:
            # one entry per stock product of a reading (product, units); the reading's stats
            # (defs.TELEMETRY_STATS) on its first entry only, which is the one with rows > 0
            _, machine, product, hour, _, _, bucket, units, *stats, rows = entry
            b = bucket or 0
            if rows:
                for stat, value in zip(defs.TELEMETRY_STATS, stats):
                    sums[(defs.TELEMETRY_BY_MACHINE_HOUR, key(machine, hour, stat), b)] += value
            if product is not None:  # None: a reading with no stock
                sums[(defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR, key(machine, product, hour), b)] += units
        elif fam == DEAD:
            _, reason, _, _, _, _, _, _, lines, _, _, _, _, _, rows = entry
            sums[(base.DEAD_LETTERS, reason, 0)] += lines
        elif fam == DEAD_ROW:
            _, dead_row, _, _, _, _, _, _, _, _, _, _, _, _, rows = entry
            reason, position, _, line = dead_row.split(SEP, 3)
            dead.append((reason, line, position))
        elif fam == MARKER:
            _, marker_id, _, _, _, _, _, _, created_ms, _, _, _, _, _, rows = entry
            markers.append((marker_id, created_ms))
        else:
            rows = entry[-1]
        n += rows or 0
    deltas = [(view, k, bucket, value) for (view, k, bucket), value in sums.items()]
    return deltas, markers, dead, n


class ViewRow(NamedTuple):
    view: str
    key: str
    bucket: int
    value: int


def view_rows(df: DataFrame, bucket_ms: int | None = None, with_side_outputs: bool = True) -> list[ViewRow]:
    """Parsed, deduplicated rows -> their view rows ``(view, key, bucket, value)``: one scan of the
    input, one sum in Spark (step 1), the roll-up into the views in Python (step 2). For many
    frames, the plan is built once (``view_plan``) and ``rollup`` takes each frame's collected rows."""
    deltas, _, _, _ = rollup(view_plan(bucket_ms, with_side_outputs).rows(df).collect())
    return [ViewRow(*d) for d in deltas]
