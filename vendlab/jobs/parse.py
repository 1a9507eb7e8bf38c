"""Spark implementation of the event contract (``vendlab.schema``): raw log lines -> typed rows.

Input: a DataFrame with the log envelope (see ``vendlab.jobs.sources``):
``value`` (the line), ``log_partition``, ``log_offset`` (null in embedded mode), ``log_ts``
(the log's own timestamp: Kafka record time, or the segment's first-event time), ``position``.

Output adds the typed fields, ``reason`` (dead-letter reason, null when valid), ``kind``
(``sale`` | ``telemetry`` | ``restock`` | ``marker`` | ``dead``), ``event_ms``,
``price_cents``, ``revenue_cents`` and ``dedup_key``.
"""

from __future__ import annotations

import hashlib
import sys
from functools import cache
from pathlib import Path

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
# Strict JSON, as the contract reads it: Spark's reader would also take NaN/Infinity and 'single quotes'.
JSON_OPTIONS = {"allowNonNumericNumbers": "false", "allowSingleQuotes": "false"}


_KINDS = dict(schema.ALL_FIELDS)
_MAP = T.MapType(T.StringType(), T.StringType())
# The line is wrapped as [line,{"\u0000end":1}]: exactly one JSON object in the line parses as
# an array of two objects, the second the sentinel (from_json alone reads the first value of
# '{...}{...}' or '{...}garbage' and ignores the rest). Objects are read as structs with the one
# sentinel field, so the line's own fields are skipped, not copied.
_SENTINEL = "\u0000end"
_WRAP_TAIL = ',{"\\u0000end":1}]'
# Performance: the wrapped line is the only JSON parse of a line. Its elements are read as the
# event's struct plus the sentinel field, so element 1 *is* the typed event (the same partial
# result per field as a parse of the bare line: a wrong-typed field is null, the others are
# kept), and element 2 proves that nothing follows the object. Parsing the line twice (once
# bare, once wrapped) cost a third of the job's CPU per line (docs/history/results-2026-11.md, performance history).
_WRAP = T.ArrayType(T.StructType(EVENT_STRUCT.fields + [T.StructField(_SENTINEL, T.IntegerType())]))


# An escape \uD800-\uDFFF (at a place where the backslash is not itself escaped) that is not
# one half of a surrogate pair: such a string is no Unicode text.
_LONE_SURROGATE = (
    r"(?<!\\)(?:\\\\)*(?:\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def _wrapped() -> Column:
    """The line parsed as [line,{sentinel}] (see _WRAP)."""
    return F.from_json(F.concat(F.lit("["), F.col("value"), F.lit(_WRAP_TAIL)), _WRAP, JSON_OPTIONS)


def _one_json_object() -> Column:
    """True when the line is valid UTF-8 and exactly one JSON object (see the contract)."""
    w = F.col("w")
    one = (F.size(w) == 2) & F.try_element_at(w, F.lit(1)).isNotNull() & (F.try_element_at(w, F.lit(2))[_SENTINEL] == 1)
    # contains() compares bytes; instr() walks the characters (docs/history/results-2026-11.md, performance history)
    surrogate = F.col("value").contains("\\u") & F.col("value").rlike(_LONE_SURROGATE)
    return F.is_valid_utf8("value") & F.coalesce(one, F.lit(False)) & ~surrogate


# A null field is missing or of the wrong type; which one needs the object's keys, a second JSON
# parse of the line. The reason CASE gives NULL_FIELD + name, and ``_resolve_null_field`` parses
# only those lines again. Performance: from_json runs without generated code, and inside the
# CASE it would take the whole reason step out of it (docs/history/results-2026-11.md, performance history).
NULL_FIELD = "\u0000null:"


def _field_check(name: str) -> tuple[Column, Column]:
    """(field is null, reason): missing when the object has no such key, else wrong type (resolved
    in ``_resolve_null_field``)."""
    col = F.col(f"j.{name}")
    is_null = col.isNull()
    if _KINDS[name] == "stock":  # an object of product -> int: a null count is a wrong type too
        # sorted ascending, a null comes first (a higher-order function such as exists() would
        # also take the reason step out of generated code)
        is_null = is_null | (F.try_element_at(F.sort_array(F.map_values(col)), F.lit(1)).isNull() & (F.size(col) > 0))
    return is_null, F.lit(NULL_FIELD + name)


def _resolve_null_field(reason: Column) -> Column:
    """NULL_FIELD + name -> missing_field:name or wrong_type:name; any other reason unchanged."""
    name = F.substring(reason, len(NULL_FIELD) + 1, 1000)
    present = F.coalesce(F.map_contains_key(F.from_json("value", _MAP, JSON_OPTIONS), name), F.lit(False))
    return F.when(
        F.startswith(reason, F.lit(NULL_FIELD)),
        F.concat(F.when(present, F.lit("wrong_type:")).otherwise(F.lit("missing_field:")), name),
    ).otherwise(reason)


def _semantic(check: str, machines: list[str], products: list[str], etype: str) -> Column:
    """A column that is true when the check FAILS."""
    j = lambda n: F.col(f"j.{n}")  # noqa: E731
    if check == "unknown_machine":
        return ~j("machine_id").isin(machines)
    if check == "unknown_product":
        return ~j("product").isin(products)
    if check == "bad_category":
        return ~j("category").isin(list(schema.CATEGORIES))
    if check == "bad_quantity":
        top = schema.MAX_SALE_QUANTITY if etype == schema.SALE else schema.INT32_MAX
        return (j("quantity") < 1) | (j("quantity") > top)
    if check == "bad_price":
        return ~((j("unit_price") > 0) & (j("unit_price") <= schema.MAX_UNIT_PRICE))
    if check == "bad_time":
        return ~j("event_time").rlike(schema.TIME_REGEX) | F.col("ts").isNull()
    raise ValueError(check)


def _timestamp(col: Column) -> Column:
    """Event time as a timestamp, null if it is no date (2026-02-30): to_timestamp would fail the job (ANSI)."""
    return F.try_to_timestamp(col, F.lit(schema.SPARK_TIME_FORMAT))


def reason_column(machines: list[str], products: list[str]) -> Column:
    """The dead-letter reason of each row (null if valid), checks in the contract's order; a null
    field gives NULL_FIELD + its name (see ``_resolve_null_field``)."""
    etype = F.col("j.type")
    rules: list[tuple[Column, Column]] = [
        # characters <= bytes: the byte count (constant time) spares most lines the character count;
        # a line that is not UTF-8 has no characters, its bytes count (Spark's length() and Python's
        # decoder count its invalid sequences differently)
        (
            (F.octet_length("value") > schema.MAX_LINE_CHARS)
            & (~F.is_valid_utf8("value") | (F.length("value") > schema.MAX_LINE_CHARS)),
            F.lit("line_too_long"),
        ),
        (~_one_json_object(), F.lit("not_json_object")),
    ]
    rules += [_field_check(n) for n, _ in schema.COMMON]
    rules.append((~etype.isin(list(schema.EVENT_TYPES)), F.lit("unknown_type")))
    for t, fields in schema.FIELDS.items():
        for n, _ in fields:
            is_null, reason = _field_check(n)
            rules.append(((etype == t) & is_null, reason))
    for t, checks in schema.SEMANTIC_CHECKS.items():
        for c in checks:
            rules.append(((etype == t) & _semantic(c, machines, products, t), F.lit(c)))
    first, *rest = rules
    expr = F.when(*first)
    for cond, val in rest:
        expr = expr.when(cond, val)
    return expr


def parse(raw: DataFrame, machines: list[str], products: list[str]) -> DataFrame:
    """Typed, validated rows; malformed lines stay in the frame with ``kind = 'dead'``."""
    # One JSON parse per line (w), its first element is the event (j); the event time is
    # parsed once (ts), for the bad_time check and for event_ms.
    df = raw.withColumn("w", _wrapped())
    df = df.withColumn("j", F.try_element_at(F.col("w"), F.lit(1)))
    df = df.withColumn("ts", _timestamp(F.col("j.event_time")))
    df = df.withColumn("reason", reason_column(machines, products))
    df = df.withColumn("reason", _resolve_null_field(F.col("reason")))
    ok = F.col("reason").isNull()
    cols = [F.col(f"j.{n}").alias(n) for n, _ in schema.ALL_FIELDS if n != "stock"]
    # A product named twice in a reading counts once, with its last value (as a JSON object read in
    # Python): from_json keeps both entries, map_from_entries keeps the last under the session's
    # spark.sql.mapKeyDedupPolicy=LAST_WIN (vendlab.spark; the default policy fails the job).
    cols.append(F.map_from_entries(F.map_entries(F.col("j.stock"))).alias("stock"))
    price_cents = F.round(F.col("unit_price") * 100).try_cast("long")
    out = df.select("value", "log_partition", "log_offset", "log_ts", "position", "reason", "ts", *cols)
    out = out.withColumn("kind", F.when(ok, F.col("type")).otherwise(F.lit("dead")))
    out = out.withColumn("event_ms", F.when(ok & F.col("event_time").isNotNull(), F.unix_millis(F.col("ts"))))
    out = out.withColumn("price_cents", F.when(ok, price_cents))
    out = out.withColumn("revenue_cents", F.when(ok & (F.col("type") == schema.SALE), price_cents * F.col("quantity")))
    # Valid events are deduplicated by event_id; every malformed line is kept, under a key of its own.
    # A Kafka record's position (topic-partition@offset) is unique and the same if Spark runs a task
    # again (a lost executor on the cluster). A segment file's lines share their position (two equal
    # malformed lines in one segment both count), so a random part tells them apart: files are read
    # in local mode, which does not run a task again.
    # Performance: the random part is a Java UUID through reflect(), not Spark's uuid(). Spark gives
    # uuid() a new seed in every micro-batch and writes the seed into the generated code, so the
    # parse's last stage was compiled again for every micro-batch and ran cold (a fixed seed is
    # replaced too); reflect() has no generated code of its own, so the stage's code is the same in
    # every micro-batch and is compiled once (docs/history/results-2026-11.md, performance history).
    random_part = F.when(
        F.col("log_offset").isNull(), F.reflect(F.lit("java.util.UUID"), F.lit("randomUUID"))
    )  # null for Kafka: concat_ws skips it
    dead_key = F.concat_ws("#", F.lit("!"), F.col("position"), random_part)
    out = out.withColumn("dedup_key", F.when(ok, F.col("event_id")).otherwise(dead_key))
    return out.drop("ts")


def deduplicate(parsed: DataFrame, delay: str) -> DataFrame:
    """Drop repeated deliveries of an event. Spark keeps an id until the watermark (the newest log time read
    minus ``delay``) passes its first delivery + ``delay``: a copy within ``delay`` of log time is always
    dropped, one up to about 2 x ``delay`` later too (docs/reliability.md, "Later than the watermark")."""
    return parsed.withWatermark("log_ts", delay).dropDuplicatesWithinWatermark(["dedup_key"])


@cache
def _source_digest() -> bytes:
    """The bytes that define the contract's parse: the contract (vendlab.schema) and this module."""
    h = hashlib.sha256()
    for mod in (schema, sys.modules[__name__]):
        try:
            h.update(Path(mod.__file__).read_bytes())
        except (OSError, TypeError):  # no source file (a zipped deployment): the module's contents
            h.update(repr(sorted((k, repr(v)) for k, v in vars(mod).items() if k.isupper())).encode())
    return h.digest()


def contract_version(machines: list[str], products: list[str]) -> str:
    """Which contract parsed a row: a digest of the contract's code and of the fleet it checks
    against (a line's reason depends on both). Lambda's master dataset stores it with the parsed
    columns; the batch layer parses again every row another version parsed."""
    h = hashlib.sha256(_source_digest())
    h.update("\n".join(machines).encode() + b"\0" + "\n".join(products).encode())
    return h.hexdigest()[:16]
