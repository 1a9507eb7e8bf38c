"""Spark implementation of the event contract (``vendlab.schema``): raw log lines -> typed rows.

Input: a DataFrame with the log envelope (see ``vendlab.jobs.sources``):
``value`` (the line), ``log_partition``, ``log_offset`` (null in embedded mode), ``log_ts``
(the log's own timestamp: Kafka record time, or the segment's first-event time), ``position``.

Output adds the typed fields, ``reason`` (dead-letter reason, null when valid), ``kind``
(``sale`` | ``telemetry`` | ``restock`` | ``marker`` | ``dead``), ``event_ms``,
``price_cents``, ``revenue_cents`` and ``dedup_key``.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from vendlab import schema

_KIND_TYPES = {
    "str": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "num": T.DoubleType(),
    "stock": T.MapType(T.StringType(), T.IntegerType()),
}

EVENT_STRUCT = T.StructType([T.StructField(n, _KIND_TYPES[k]) for n, k in schema.ALL_FIELDS])


def _field_check(name: str) -> tuple[Column, Column]:
    """(field is null, reason): missing when the key does not appear in the line, else wrong type."""
    col = F.col(f"j.{name}")
    reason = F.when(F.instr(F.col("value"), f'"{name}"') == 0, F.lit(f"missing_field:{name}")).otherwise(
        F.lit(f"wrong_type:{name}"))
    return col.isNull(), reason


def _semantic(check: str, machines: list[str], products: list[str]) -> Column:
    """A column that is true when the check FAILS."""
    j = lambda n: F.col(f"j.{n}")  # noqa: E731
    if check == "unknown_machine":
        return ~j("machine_id").isin(machines)
    if check == "unknown_product":
        return ~j("product").isin(products)
    if check == "bad_category":
        return ~j("category").isin(list(schema.CATEGORIES))
    if check == "bad_quantity":
        return j("quantity") < 1
    if check == "bad_price":
        return j("unit_price") <= 0
    if check == "bad_time":
        return ~j("event_time").rlike(schema.TIME_REGEX) | F.to_timestamp(
            j("event_time"), schema.SPARK_TIME_FORMAT).isNull()
    raise ValueError(check)


def reason_column(machines: list[str], products: list[str]) -> Column:
    """The dead-letter reason of each row (null if valid), checks in the contract's order."""
    etype = F.col("j.type")
    rules: list[tuple[Column, Column]] = [
        (F.length("value") > schema.MAX_LINE_CHARS, F.lit("line_too_long")),
        (F.col("j.event_id").isNull() & F.col("j.type").isNull()
         & F.from_json("value", T.MapType(T.StringType(), T.StringType())).isNull(), F.lit("not_json_object")),
    ]
    rules += [_field_check(n) for n, _ in schema.COMMON]
    rules.append((~etype.isin(list(schema.EVENT_TYPES)), F.lit("unknown_type")))
    for t, fields in schema.FIELDS.items():
        for n, _ in fields:
            is_null, reason = _field_check(n)
            rules.append(((etype == t) & is_null, reason))
    for t, checks in schema.SEMANTIC_CHECKS.items():
        for c in checks:
            rules.append(((etype == t) & _semantic(c, machines, products), F.lit(c)))
    first, *rest = rules
    expr = F.when(*first)
    for cond, val in rest:
        expr = expr.when(cond, val)
    return expr


def parse(raw: DataFrame, machines: list[str], products: list[str]) -> DataFrame:
    """Typed, validated rows; malformed lines stay in the frame with ``kind = 'dead'``."""
    df = raw.withColumn("j", F.from_json("value", EVENT_STRUCT))
    df = df.withColumn("reason", reason_column(machines, products))
    ok = F.col("reason").isNull()
    cols = [F.col(f"j.{n}").alias(n) for n, _ in schema.ALL_FIELDS]
    price_cents = F.round(F.col("unit_price") * 100).cast("long")
    out = df.select("value", "log_partition", "log_offset", "log_ts", "position", "reason", *cols)
    out = out.withColumn("kind", F.when(ok, F.col("type")).otherwise(F.lit("dead")))
    out = out.withColumn("event_ms", F.when(ok & F.col("event_time").isNotNull(), F.unix_millis(
        F.to_timestamp("event_time", schema.SPARK_TIME_FORMAT))))
    out = out.withColumn("price_cents", F.when(ok, price_cents))
    out = out.withColumn("revenue_cents", F.when(ok & (F.col("type") == schema.SALE),
                                                 price_cents * F.col("quantity")))
    # Valid events are deduplicated by event_id; every malformed line is kept (a fresh key).
    out = out.withColumn("dedup_key", F.when(ok, F.col("event_id")).otherwise(F.concat(F.lit("!"), F.col("position"), F.lit(":"), F.xxhash64("value").cast("string"))))
    return out


def deduplicate(parsed: DataFrame, delay: str) -> DataFrame:
    """Drop repeated deliveries of an event, keeping state for ``delay`` of log time."""
    return parsed.withWatermark("log_ts", delay).dropDuplicatesWithinWatermark(["dedup_key"])


def union_all(frames: list[DataFrame]) -> DataFrame:
    return reduce(DataFrame.unionByName, frames)
