"""The event contract, checked in plain Python (no Spark): the specification is ``vendlab.schema``.

Used by the validation consumer and by tests; the Spark jobs implement the same checks in
``vendlab.jobs.parse``. Returns ``(event, None)`` for a valid event or ``(None, reason)``.
"""

from __future__ import annotations

import json
import math
import re
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
        bits = 32 if kind == "int" else 64
        return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)
    if kind == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "stock":
        return isinstance(value, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) and -schema.INT32_MAX - 1 <= v <= schema.INT32_MAX
            for v in value.values()
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
        return 1 <= ev["quantity"] <= (schema.MAX_SALE_QUANTITY if ev["type"] == schema.SALE else schema.INT32_MAX)
    if check == "bad_price":
        return 0 < ev["unit_price"] <= schema.MAX_UNIT_PRICE
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


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _int(digits: str):
    # Beyond Python's 4300-digit limit for int(): a number too big for any kind (as in Spark).
    return int(digits) if len(digits) <= 300 else float(digits)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(v: Any) -> bool:
    if isinstance(v, str):
        return _SURROGATE.search(v) is not None
    if isinstance(v, dict):
        return any(_has_surrogate(k) or _has_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_surrogate(x) for x in v)
    return False


def _loads(text: str):
    """Strict JSON (RFC 8259) as Spark's reader takes it; raises ValueError."""
    try:
        return orjson.loads(text)  # refuses unpaired surrogate escapes ("\ud800") itself
    except orjson.JSONDecodeError:
        # orjson also refuses what JSON allows and Spark reads: a number beyond a double
        # (1e400 -> inf), nesting past 1024 levels.
        try:
            ev = json.loads(text, parse_constant=_reject_constant, parse_int=_int)
        except RecursionError as e:
            raise ValueError("nested too deep") from e
        if _has_surrogate(ev):
            raise ValueError("unpaired surrogate escape: no Unicode text") from None
        return ev


def _too_deep(text: str) -> bool:
    """Objects/arrays nested deeper than MAX_JSON_DEPTH (text is valid JSON)."""
    if text.count("[") + text.count("{") <= schema.MAX_JSON_DEPTH:
        return False  # the common case: too few brackets to be that deep
    depth = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > schema.MAX_JSON_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def validate_line(line: bytes | str, machines: set[str], products: set[str]) -> tuple[dict | None, str | None]:
    utf8 = True
    if isinstance(line, bytes):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text, utf8 = line.decode("utf-8", errors="replace"), False
    else:
        text = line
    text = text.rstrip("\n")  # a "\r" stays, as in Spark's value (the log's lines end with "\n")
    # a line that is not UTF-8 has no characters: its bytes count (see the contract)
    if (len(text) if utf8 else len(line.rstrip(b"\n"))) > schema.MAX_LINE_CHARS:
        return None, "line_too_long"
    if not utf8:
        return None, "not_json_object"
    try:
        ev = _loads(text)
    except ValueError:
        return None, "not_json_object"
    if not isinstance(ev, dict) or _too_deep(text):
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
