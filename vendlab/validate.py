"""Plain-Python implementation of the event contract in ``vendlab.schema`` (no Spark).

Used by the validation consumer and by tests; the Spark jobs implement the same checks in
``vendlab.jobs.parse``. Returns ``(event, None)`` for a valid event or ``(None, reason)``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

from vendlab import schema


def _kind_ok(value: Any, kind: str) -> bool:
    if value is None:
        return False
    if kind == "str":
        # Spark reads any non-null JSON value into a string column (a number as its text);
        # a non-string then fails a semantic check (unknown product...). Mirror that.
        return True
    if kind in ("int", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return abs(value) <= (schema.INT32_MAX if kind == "int" else 2**63 - 1)
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "stock":
        return isinstance(value, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) and abs(v) <= schema.INT32_MAX for v in value.values()
        )
    raise ValueError(kind)


def _as_str(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _semantic(check: str, ev: dict, machines: set[str], products: set[str]) -> bool:
    if check == "unknown_machine":
        return _as_str(ev["machine_id"]) in machines
    if check == "unknown_product":
        return _as_str(ev["product"]) in products
    if check == "bad_category":
        return ev["category"] in schema.CATEGORIES
    if check == "bad_quantity":
        return ev["quantity"] >= 1
    if check == "bad_price":
        return ev["unit_price"] > 0
    if check == "bad_time":
        t = ev["event_time"]
        if not isinstance(t, str) or schema.TIME_PATTERN.match(t) is None:
            return False
        try:
            datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError:
            return False
        return True
    raise ValueError(check)


def validate_line(line: bytes | str, machines: set[str], products: set[str]) -> tuple[dict | None, str | None]:
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    text = text.rstrip("\r\n")
    if len(text) > schema.MAX_LINE_CHARS:
        return None, "line_too_long"
    try:
        ev = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, "not_json_object"
    if not isinstance(ev, dict):
        return None, "not_json_object"
    for name, kind in schema.COMMON:
        if name not in ev:
            return None, f"missing_field:{name}"
        if not _kind_ok(ev[name], kind):
            return None, f"wrong_type:{name}"
    etype = _as_str(ev["type"])
    if etype not in schema.FIELDS:
        return None, "unknown_type"
    for name, kind in schema.FIELDS[etype]:
        if name not in ev:
            return None, f"missing_field:{name}"
        if not _kind_ok(ev[name], kind):
            return None, f"wrong_type:{name}"
    for check in schema.SEMANTIC_CHECKS[etype]:
        if not _semantic(check, ev, machines, products):
            return None, check
    return ev, None


def event_ms(ev: dict) -> int:
    """Epoch milliseconds of a valid event's event_time."""
    dt = datetime.strptime(ev["event_time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return int((dt - _EPOCH).total_seconds() * 1000)


def price_cents(unit_price: float) -> int:
    """Unit price in cents, rounded half up (as Spark's round)."""
    return int(math.floor(unit_price * 100 + 0.5))


_EPOCH = datetime(1970, 1, 1)
