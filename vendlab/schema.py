"""The event contract: one place that says what a valid event is.

Both the Spark jobs (``vendlab.jobs.parse``) and the independent validation consumer
(``vendlab.oracle``) implement the checks below; they share this *specification*,
not code, so that a bug in one implementation shows up as a difference against the other
and against the generator's manifest.

Checks run in one order and the first failing one is the dead-letter reason. The order is
written down once, in docs/architecture.md ("The contract's order"); ``check_order(type)`` states
it in code, from the tuples below: line, JSON object, the common fields, the type, the type's
fields in FIELDS order, the semantic checks in SEMANTIC_CHECKS order. A line that breaks several
checks gets the first one's reason from both implementations (tests/test_contract.py).

``not_json_object`` is a line that is not exactly one JSON object: not UTF-8, not JSON (RFC 8259:
no NaN/Infinity, no 'single quotes', nothing after the object), not an object, nested deeper than
MAX_JSON_DEPTH, or a string with an unpaired surrogate escape (\\ud800). ``line_too_long`` counts
characters; a line that is not UTF-8 has no characters, its bytes are counted. ``bad_quantity`` is
a quantity < 1 (a sale's: outside [1, MAX_SALE_QUANTITY]), ``bad_price`` a unit price outside
(0, MAX_UNIT_PRICE]: the bounds keep every sum of a view far from 64-bit overflow (Spark in ANSI
mode fails a job on overflow), whatever the input.
"""

from __future__ import annotations

import re

SALE = "sale"
TELEMETRY = "telemetry"
RESTOCK = "restock"
MARKER = "marker"
EVENT_TYPES = (SALE, TELEMETRY, RESTOCK, MARKER)

CATEGORIES = ("healthy", "unhealthy")

MAX_LINE_CHARS = 16_384
INT32_MAX = 2**31 - 1
# Deepest nesting of objects/arrays accepted (the line's object is level 1): Spark's JSON reader
# stops at 1000 levels and the Spark implementation wraps the line in one more to check that
# nothing follows the object.
MAX_JSON_DEPTH = 999
MAX_SALE_QUANTITY = 1_000  # items in one sale (a restock's quantity has no upper bound but int32)
MAX_UNIT_PRICE = 10_000.0  # price of one item

# Field kinds: "str" (JSON string), "int" (JSON integer, not bool, fits in 32 bits),
# "long" (JSON integer, 64 bits), "num" (JSON number), "time" (string, TIME_REGEX),
# "stock" (JSON object of product -> int).
COMMON = (("event_id", "str"), ("type", "str"))
FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    SALE: (
        ("machine_id", "str"),
        ("place", "str"),
        ("product", "str"),
        ("category", "str"),
        ("quantity", "int"),
        ("unit_price", "num"),
        ("customer_id", "str"),
        ("event_time", "str"),
    ),
    TELEMETRY: (
        ("machine_id", "str"),
        ("event_time", "str"),
        ("temperature", "num"),
        ("error_code", "int"),
        ("stock", "stock"),
    ),
    RESTOCK: (
        ("machine_id", "str"),
        ("product", "str"),
        ("quantity", "int"),
        ("event_time", "str"),
    ),
    MARKER: (("created_ms", "long"),),
}

# Semantic checks per type, in order. Each name is also the dead-letter reason.
SEMANTIC_CHECKS: dict[str, tuple[str, ...]] = {
    SALE: ("unknown_machine", "unknown_product", "bad_category", "bad_quantity", "bad_price", "bad_time"),
    TELEMETRY: ("unknown_machine", "bad_time"),
    RESTOCK: ("unknown_machine", "unknown_product", "bad_quantity", "bad_time"),
    MARKER: (),
}

# event_time: UTC, millisecond precision, e.g. 2026-01-05T06:00:00.123Z, years 2000-2099.
TIME_REGEX = r"^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z$"
TIME_PATTERN = re.compile(TIME_REGEX)
SPARK_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"

ALL_FIELDS: tuple[tuple[str, str], ...] = tuple(
    dict.fromkeys(COMMON + tuple(f for fields in FIELDS.values() for f in fields)).keys()
)

STATIC_REASONS = ("line_too_long", "not_json_object", "unknown_type") + tuple(
    sorted({c for checks in SEMANTIC_CHECKS.values() for c in checks})
)


def check_order(event_type: str) -> tuple[str, ...]:
    """The reasons a line of ``event_type`` can get, in the order the checks run (the first failing
    check is the reason). ``missing_field:f`` and ``wrong_type:f`` are one check of field f."""
    fields = [f"{why}:{n}" for n, _ in FIELDS[event_type] for why in ("missing_field", "wrong_type")]
    common = [f"{why}:{n}" for n, _ in COMMON for why in ("missing_field", "wrong_type")]
    return ("line_too_long", "not_json_object", *common, "unknown_type", *fields, *SEMANTIC_CHECKS[event_type])


def all_reasons() -> list[str]:
    """Every dead-letter reason a job can emit (for documentation and dashboards)."""
    names = sorted({name for name, _ in ALL_FIELDS})
    return list(STATIC_REASONS) + [f"missing_field:{n}" for n in names] + [f"wrong_type:{n}" for n in names]


def required_fields(event_type: str) -> tuple[tuple[str, str], ...]:
    return COMMON + FIELDS[event_type]
