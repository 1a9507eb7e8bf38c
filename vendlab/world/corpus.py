"""A corpus of bad (and oddly shaped but valid) input lines, each with the verdict the event
contract in ``vendlab.schema`` gives it: the dead-letter reason, or ``None`` for a valid event.

Both implementations of the contract (``vendlab.jobs.parse`` on Spark, ``vendlab.contract`` in
plain Python) must give every line of the corpus exactly this verdict; the fault tests inject
the corpus into a log (``mix``, ``write_log``) and check that every bad line lands in the dead
letters with its reason, that the counts match, and that the valid views stay exact.

A case is a *template*: ``case.make(n)`` gives its line for the n-th injection, with a fresh
``event_id`` where the line has one, so that a valid edge case counts every time it is
injected (a repeat is not a duplicate delivery) and equal malformed lines stay possible.

Families (``Case.family``): not_json, truncated, missing_field, wrong_type, bad_quantity,
bad_price, unknown_product, unknown_machine, bad_category, unknown_type, bad_time, huge_line,
invalid_utf8, valid_edge, multi_error (a line that breaks several checks at once: its verdict is the
first of them in the contract's order, ``schema.check_order``).

``multi_error_cases`` is the full set of such lines: for every event type, every pair of checks
that can fail together, each broken once (plus a few triples); the corpus holds a selection.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vendlab import schema
from vendlab.world.catalog import Catalog

FAMILIES = (
    "not_json",
    "truncated",
    "missing_field",
    "wrong_type",
    "bad_quantity",
    "bad_price",
    "unknown_product",
    "unknown_machine",
    "bad_category",
    "unknown_type",
    "bad_time",
    "huge_line",
    "invalid_utf8",
    "valid_edge",
    "multi_error",
)

TIME = "2026-01-05T06:00:00.000Z"


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    reason: str | None  # the contract's dead-letter reason; None: a valid event
    build: Callable[[str], bytes]  # event_id -> the line, without its trailing newline
    # For a valid sale: (product, category, quantity, price_cents) it adds to the views.
    sale: tuple[str, str, int, int] | None = None
    # multi_error: every check the line breaks (its reason is the first of them in the contract's order)
    breaks: tuple[str, ...] = ()

    def make(self, n: int) -> bytes:
        return self.build(f"corpus-{self.name}-{n}")


def _dumps(ev: dict) -> bytes:
    return json.dumps(ev, separators=(",", ":"), ensure_ascii=False).encode()


class _Templates:
    """Valid events of the catalog, to be broken one way at a time."""

    def __init__(self, catalog: Catalog):
        p = catalog.products[0]
        self.product, self.category, self.price_cents = p.product, p.category, p.price_cents
        self.machine = catalog.machines[0].machine_id
        self.place = catalog.machines[0].place
        self.other_category = next(c for c in schema.CATEGORIES if c != p.category)

    def sale(self, eid: str, **over) -> dict:
        ev = {
            "event_id": eid,
            "type": schema.SALE,
            "machine_id": self.machine,
            "place": self.place,
            "product": self.product,
            "category": self.category,
            "quantity": 2,
            "unit_price": self.price_cents / 100,
            "customer_id": "C42",
            "event_time": TIME,
        }
        for k, v in over.items():
            if v is _DROP:
                ev.pop(k)
            else:
                ev[k] = v
        return ev

    def telemetry(self, eid: str, **over) -> dict:
        ev = {
            "event_id": eid,
            "type": schema.TELEMETRY,
            "machine_id": self.machine,
            "event_time": TIME,
            "temperature": 4.5,
            "error_code": 0,
            "stock": {self.product: 7},
        }
        ev.update(over)
        return {k: v for k, v in ev.items() if v is not _DROP}

    def restock(self, eid: str, **over) -> dict:
        ev = {
            "event_id": eid,
            "type": schema.RESTOCK,
            "machine_id": self.machine,
            "product": self.product,
            "quantity": 12,
            "event_time": TIME,
        }
        ev.update(over)
        return {k: v for k, v in ev.items() if v is not _DROP}


_DROP = object()


def cases(catalog: Catalog) -> list[Case]:
    """Every case of the corpus for this catalog (machine, product and price come from it)."""
    t = _Templates(catalog)
    out: list[Case] = []

    def add(name, family, reason, build, sale=None):
        out.append(Case(name, family, reason, build, sale))

    def sale_line(**over):
        return lambda eid: _dumps(t.sale(eid, **over))

    # -- not JSON, or not exactly one JSON object -----------------------------------------------
    nj = "not_json_object"
    add("plain_text", "not_json", nj, lambda eid: b"machine VM-001 sold 2 cola")
    add("empty_line", "not_json", nj, lambda eid: b"")
    add("blank_line", "not_json", nj, lambda eid: b"   \t ")
    add("json_null", "not_json", nj, lambda eid: b"null")
    add("json_number", "not_json", nj, lambda eid: b"42")
    add("json_string", "not_json", nj, lambda eid: b'"a sale"')
    add("json_array", "not_json", nj, lambda eid: b"[1,2,3]")
    add("array_of_sale", "not_json", nj, lambda eid: b"[" + _dumps(t.sale(eid)) + b"]")
    add("single_quotes", "not_json", nj, lambda eid: _dumps(t.sale(eid)).replace(b'"', b"'"))
    add("nan_literal", "not_json", nj, lambda eid: _dumps(t.sale(eid, unit_price=1.5)).replace(b"1.5", b"NaN"))
    add(
        "infinity_literal", "not_json", nj, lambda eid: _dumps(t.sale(eid, unit_price=1.5)).replace(b"1.5", b"Infinity")
    )
    add("trailing_garbage", "not_json", nj, lambda eid: _dumps(t.sale(eid)) + b" ok")
    add("two_objects_one_line", "not_json", nj, lambda eid: _dumps(t.sale(eid)) + _dumps(t.sale(eid + "b")))
    add("trailing_comma", "not_json", nj, lambda eid: _dumps(t.sale(eid))[:-1] + b",}")
    add("unquoted_keys", "not_json", nj, lambda eid: b'{event_id:"' + eid.encode() + b'",type:"sale"}')
    add("comment", "not_json", nj, lambda eid: b"/* sale */" + _dumps(t.sale(eid)))
    add("byte_order_mark", "not_json", nj, lambda eid: b"\xef\xbb\xbf" + _dumps(t.sale(eid)))
    add("nul_byte", "not_json", nj, lambda eid: _dumps(t.sale(eid)).replace(b'"C42"', b'"C\x0042"'))
    add("raw_tab_in_string", "not_json", nj, lambda eid: _dumps(t.sale(eid)).replace(b'"C42"', b'"C\t42"'))
    add("stray_carriage_return", "not_json", nj, lambda eid: _dumps(t.sale(eid)).replace(b'"C42"', b'"C\r42"'))
    add(
        "leading_zero",
        "not_json",
        nj,
        lambda eid: _dumps(t.sale(eid, quantity=2)).replace(b'"quantity":2', b'"quantity":02'),
    )
    for label, esc in (("high", b"\\ud800"), ("low", b"\\udc00x"), ("swapped", b"\\udc00\\ud800")):
        add(
            f"lone_surrogate_{label}",
            "not_json",
            nj,  # an unpaired surrogate escape is no Unicode text
            lambda eid, e=esc: _dumps(t.sale(eid, place="PLACEHOLDER")).replace(b"PLACEHOLDER", e),
        )
    add(
        "too_deep",
        "not_json",
        nj,
        lambda eid: (
            _dumps(t.sale(eid))[:-1] + b',"x":' + b"[" * schema.MAX_JSON_DEPTH + b"]" * schema.MAX_JSON_DEPTH + b"}"
        ),
    )
    # -- truncated lines (a writer that died mid-line) ------------------------------------------
    for frac in (0.1, 0.5, 0.9):
        add(
            f"truncated_{int(frac * 100)}",
            "truncated",
            nj,
            lambda eid, f=frac: (lambda s: s[: int(len(s) * f)])(_dumps(t.sale(eid))),
        )
    add("truncated_last_brace", "truncated", nj, lambda eid: _dumps(t.sale(eid))[:-1])
    # -- missing fields, in the contract's order --------------------------------------------------
    add("empty_object", "missing_field", "missing_field:event_id", lambda eid: b"{}")
    add("no_type", "missing_field", "missing_field:type", lambda eid: _dumps({"event_id": eid}))
    for f, _ in schema.FIELDS[schema.SALE]:
        add(f"sale_without_{f}", "missing_field", f"missing_field:{f}", sale_line(**{f: _DROP}))
    add("sale_without_event_id", "missing_field", "missing_field:event_id", sale_line(event_id=_DROP))
    # the key is absent but its name appears as a value: still missing
    add(
        "quantity_only_as_a_value",
        "missing_field",
        "missing_field:quantity",
        sale_line(quantity=_DROP, place="quantity"),
    )
    add(
        "telemetry_without_stock",
        "missing_field",
        "missing_field:stock",
        lambda eid: _dumps(t.telemetry(eid, stock=_DROP)),
    )
    add(
        "restock_without_product",
        "missing_field",
        "missing_field:product",
        lambda eid: _dumps(t.restock(eid, product=_DROP)),
    )
    add(
        "marker_without_created_ms",
        "missing_field",
        "missing_field:created_ms",
        lambda eid: _dumps({"event_id": eid, "type": schema.MARKER}),
    )
    # -- wrong types -------------------------------------------------------------------------------
    for label, v in (
        ("string", "2"),
        ("float", 2.5),
        ("bool", True),
        ("null", None),
        ("int64", 3_000_000_000),
        ("array", [2]),
        ("object", {"n": 2}),
        ("exponent", 2e0),
    ):
        add(f"quantity_{label}", "wrong_type", "wrong_type:quantity", sale_line(quantity=v))
    for label, v in (("string", "1.50"), ("bool", False), ("null", None), ("nan_string", "NaN")):
        add(f"unit_price_{label}", "wrong_type", "wrong_type:unit_price", sale_line(unit_price=v))
    add("event_id_null", "wrong_type", "wrong_type:event_id", sale_line(event_id=None))
    add("type_null", "wrong_type", "wrong_type:type", sale_line(type=None))
    add("event_time_null", "wrong_type", "wrong_type:event_time", sale_line(event_time=None))
    add(
        "created_ms_string",
        "wrong_type",
        "wrong_type:created_ms",
        lambda eid: _dumps({"event_id": eid, "type": schema.MARKER, "created_ms": "1767592800000"}),
    )
    add("stock_list", "wrong_type", "wrong_type:stock", lambda eid: _dumps(t.telemetry(eid, stock=[7])))
    add(
        "stock_string_count",
        "wrong_type",
        "wrong_type:stock",
        lambda eid: _dumps(t.telemetry(eid, stock={t.product: "seven"})),
    )
    add(
        "stock_null_count",
        "wrong_type",
        "wrong_type:stock",
        lambda eid: _dumps(t.telemetry(eid, stock={t.product: None})),
    )
    add(
        "temperature_string",
        "wrong_type",
        "wrong_type:temperature",
        lambda eid: _dumps(t.telemetry(eid, temperature="cold")),
    )
    add("error_code_float", "wrong_type", "wrong_type:error_code", lambda eid: _dumps(t.telemetry(eid, error_code=1.5)))
    # -- quantity and price out of range -----------------------------------------------------------
    for label, q in (
        ("zero", 0),
        ("negative", -1),
        ("int32_min", -(2**31)),
        ("above_max", schema.MAX_SALE_QUANTITY + 1),
    ):
        add(f"quantity_{label}", "bad_quantity", "bad_quantity", sale_line(quantity=q))
    add("restock_quantity_zero", "bad_quantity", "bad_quantity", lambda eid: _dumps(t.restock(eid, quantity=0)))
    for label, p in (("zero", 0), ("negative", -1.5), ("above_max", schema.MAX_UNIT_PRICE + 0.01), ("huge", 1e300)):
        add(f"price_{label}", "bad_price", "bad_price", sale_line(unit_price=p))
    add(
        "price_beyond_double",
        "bad_price",
        "bad_price",
        lambda eid: _dumps(t.sale(eid, unit_price=1.5)).replace(b"1.5", b"1e400"),
    )
    # -- unknown product, machine, category, type -----------------------------------------------------
    for label, v in (
        ("name", "unobtainium"),
        ("empty", ""),
        ("case", t.product.upper()),
        ("number", 7),
        ("padded", " " + t.product),
    ):
        add(f"product_{label}", "unknown_product", "unknown_product", sale_line(product=v))
    add(
        "restock_unknown_product",
        "unknown_product",
        "unknown_product",
        lambda eid: _dumps(t.restock(eid, product="unobtainium")),
    )
    for label, v in (("name", "VM-999"), ("case", t.machine.lower()), ("number", 1)):
        add(f"machine_{label}", "unknown_machine", "unknown_machine", sale_line(machine_id=v))
    add(
        "telemetry_unknown_machine",
        "unknown_machine",
        "unknown_machine",
        lambda eid: _dumps(t.telemetry(eid, machine_id="VM-999")),
    )
    add("category_tasty", "bad_category", "bad_category", sale_line(category="tasty"))
    add("category_case", "bad_category", "bad_category", sale_line(category=t.category.upper()))
    add("type_coupon", "unknown_type", "unknown_type", sale_line(type="coupon"))
    add("type_upper", "unknown_type", "unknown_type", sale_line(type="SALE"))
    # -- absurd timestamps ------------------------------------------------------------------------------
    for label, v in (
        ("words", "yesterday at noon"),
        ("empty", ""),
        ("epoch", "1970-01-01T00:00:00.000Z"),
        ("year_9999", "9999-12-31T23:59:59.999Z"),
        ("year_1999", "1999-12-31T23:59:59.999Z"),
        ("year_2100", "2100-01-01T00:00:00.000Z"),
        ("feb_30", "2026-02-30T12:00:00.000Z"),
        ("hour_25", "2026-01-05T25:00:00.000Z"),
        ("month_13", "2026-13-01T00:00:00.000Z"),
        ("no_millis", "2026-01-05T06:00:00Z"),
        ("space", "2026-01-05 06:00:00.000Z"),
        ("offset", "2026-01-05T06:00:00.000+01:00"),
        ("number", 1767592800000),
    ):
        add(f"time_{label}", "bad_time", "bad_time", sale_line(event_time=v))
    # -- huge lines --------------------------------------------------------------------------------------
    add("long_place", "huge_line", "line_too_long", sale_line(place="x" * schema.MAX_LINE_CHARS))
    add(
        "one_char_too_long",
        "huge_line",
        "line_too_long",
        lambda eid: _pad(_dumps(t.sale(eid)), schema.MAX_LINE_CHARS + 1),
    )
    add("megabyte", "huge_line", "line_too_long", lambda eid: b"{" + b" " * (1 << 20) + b"}")
    add("deep_and_long", "huge_line", "line_too_long", lambda eid: b"[" * 100_000)
    # -- invalid UTF-8 (not a JSON text, RFC 8259 section 8.1) ---------------------------------------
    for label, raw in (
        ("ff_byte", b"\xff"),
        ("cut_sequence", b"\xc3"),
        ("overlong", b"\xc0\xaf"),
        ("surrogate", b"\xed\xa0\x80"),
        ("latin1", b"caf\xe9"),
    ):
        add(
            f"utf8_{label}_in_place",
            "invalid_utf8",
            nj,
            lambda eid, r=raw: _dumps(t.sale(eid, place="PLACEHOLDER")).replace(b"PLACEHOLDER", r),
        )
    add(
        "utf8_bad_in_product",
        "invalid_utf8",
        nj,
        lambda eid: _dumps(t.sale(eid)).replace(t.product.encode(), t.product.encode()[:-1] + b"\xff"),
    )
    # -- valid, though oddly shaped: must be counted ------------------------------------------------------
    ok = (t.product, t.category, 2, t.price_cents)
    add("fields_reordered", "valid_edge", None, lambda eid: _dumps(dict(reversed(list(t.sale(eid).items())))), ok)
    add("extra_fields", "valid_edge", None, sale_line(note="2 for 1", tags=["a", {"b": None}]), ok)
    add(
        "escaped_keys_and_values",
        "valid_edge",
        None,
        lambda eid: (
            _dumps(t.sale(eid))
            .replace(b'"quantity"', b'"quantit\\u0079"')
            .replace(t.product.encode(), _escape_first(t.product))
        ),
        ok,
    )
    add(
        "spaces_and_newline_escapes",
        "valid_edge",
        None,
        lambda eid: json.dumps(t.sale(eid, place="Line\nTwo \u00e9\U0001f36b")).encode(),
        ok,
    )
    add(
        "numeric_event_id",
        "valid_edge",
        None,
        lambda eid: _dumps(t.sale(eid)).replace(f'"{eid}"'.encode(), b"9" + eid.rsplit("-", 1)[1].encode()),
        ok,
    )
    add(
        "integer_price",
        "valid_edge",
        None,
        sale_line(unit_price=t.price_cents // 100 or 1),
        (t.product, t.category, 2, (t.price_cents // 100 or 1) * 100),
    )
    add(
        "max_quantity",
        "valid_edge",
        None,
        sale_line(quantity=schema.MAX_SALE_QUANTITY),
        (t.product, t.category, schema.MAX_SALE_QUANTITY, t.price_cents),
    )
    add("exactly_max_line", "valid_edge", None, lambda eid: _pad(_dumps(t.sale(eid)), schema.MAX_LINE_CHARS), ok)
    add("carriage_return_ending", "valid_edge", None, lambda eid: _dumps(t.sale(eid)) + b"\r", ok)
    add(
        "escaped_backslash_u",
        "valid_edge",
        None,  # the text \ud800, no escape: valid
        lambda eid: _dumps(t.sale(eid, place="PLACEHOLDER")).replace(b"PLACEHOLDER", b"\\\\ud800"),
        ok,
    )
    add(
        "sql_and_html_in_text",
        "valid_edge",
        None,
        sale_line(place="'); DROP TABLE agg; --", customer_id="<script>alert(1)</script>{{7*7}}${7*7}"),
        ok,
    )
    add(
        "duplicate_key_last_wins",
        "valid_edge",
        None,
        lambda eid: _dumps(t.sale(eid, quantity=1))[:-1] + b',"quantity":2}',
        ok,
    )
    add(
        "deep_but_allowed",
        "valid_edge",
        None,
        lambda eid: (
            _dumps(t.sale(eid))[:-1]
            + b',"x":'
            + b"[" * (schema.MAX_JSON_DEPTH - 1)
            + b"]" * (schema.MAX_JSON_DEPTH - 1)
            + b"}"
        ),
        ok,
    )
    # -- several checks broken at once: a selection of multi_error_cases -----------------------------
    out += [c for c in multi_error_cases(catalog) if c.name in _MULTI_IN_CORPUS or _all_semantic(c)]
    return out


# -- lines that break several checks at once --------------------------------------------------------


def _breakers(t: _Templates, etype: str) -> list[tuple[str, str | None, dict]]:
    """(reason, field, overrides) for each way to break one check of an ``etype`` event; the
    line-level checks (line_too_long, not_json_object) have no field and are applied to the line."""
    out: list[tuple[str, str | None, dict]] = [("line_too_long", None, {}), ("not_json_object", None, {})]
    wrong = {"str": None, "int": "2", "long": "1767592800000", "num": "1.5", "stock": [7]}
    for name, kind in schema.required_fields(etype):
        out.append((f"missing_field:{name}", name, {name: _DROP}))
        out.append((f"wrong_type:{name}", name, {name: wrong[kind]}))
        if name == "type":
            out.append(("unknown_type", name, {name: "coupon"}))
    bad = {
        "unknown_machine": ("machine_id", "VM-999"),
        "unknown_product": ("product", "unobtainium"),
        "bad_category": ("category", "tasty"),
        "bad_quantity": ("quantity", 0),
        "bad_price": ("unit_price", 0),
        "bad_time": ("event_time", "yesterday"),
    }
    for check in schema.SEMANTIC_CHECKS[etype]:
        name, value = bad[check]
        out.append((check, name, {name: value}))
    return out


def _template(t: _Templates, etype: str, eid: str) -> dict:
    if etype == schema.SALE:
        return t.sale(eid)
    if etype == schema.TELEMETRY:
        return t.telemetry(eid)
    if etype == schema.RESTOCK:
        return t.restock(eid)
    return {"event_id": eid, "type": schema.MARKER, "created_ms": 1767592800000}


def _broken_line(t: _Templates, etype: str, breakers, eid: str) -> bytes:
    ev = _template(t, etype, eid)
    reasons = {r for r, _, _ in breakers}
    for _, _, over in breakers:
        ev.update(over)
    line = _dumps({k: v for k, v in ev.items() if v is not _DROP})
    if "line_too_long" in reasons:
        line = _pad(line, schema.MAX_LINE_CHARS + 1)
    if "not_json_object" in reasons:
        line += b" and more"
    return line


def _first(etype: str, reasons) -> str:
    order = schema.check_order(etype)
    return min(reasons, key=order.index)


def multi_error_cases(catalog: Catalog) -> list[Case]:
    """For every event type, one line per pair of checks that can fail together (two checks of one
    field cannot), plus every semantic check of a type at once and a few triples; each case's
    reason is the first broken check in the contract's order (``schema.check_order``)."""
    from itertools import combinations

    t = _Templates(catalog)
    out: list[Case] = []

    def add(etype: str, chosen) -> None:
        reasons = tuple(r for r, _, _ in chosen)
        out.append(
            Case(
                f"{etype}+" + "+".join(reasons),
                "multi_error",
                _first(etype, reasons),
                lambda eid, e=etype, b=tuple(chosen): _broken_line(t, e, b, eid),
                breaks=reasons,
            )
        )

    for etype in schema.EVENT_TYPES:
        breakers = _breakers(t, etype)
        for a, b in combinations(breakers, 2):
            if a[1] is None or a[1] != b[1]:  # two checks of one field cannot fail together
                add(etype, (a, b))
        semantic = [b for b in breakers if b[0] in schema.SEMANTIC_CHECKS[etype]]
        if len(semantic) > 2:
            add(etype, semantic)
    by = {(e, r): b for e in schema.EVENT_TYPES for b in _breakers(t, e) for r in [b[0]]}
    for etype, reasons in (
        (schema.SALE, ("unknown_machine", "unknown_product", "bad_quantity")),
        (schema.SALE, ("line_too_long", "missing_field:event_time", "bad_price")),
        (schema.RESTOCK, ("wrong_type:quantity", "unknown_product", "bad_time")),
    ):
        add(etype, [by[(etype, r)] for r in reasons])
    # not UTF-8 and longer than the limit in bytes, not in characters: the cut sequence is one
    # character to Spark's length() and a different count to Python's decoder; the contract counts
    # the bytes of a line that is not UTF-8
    for label, cut, extra, reason in (
        ("cut2_one_byte_over", b"\xc3", 1, "line_too_long"),
        ("cut3_one_byte_over", b"\xe2\x82", 1, "line_too_long"),
        ("cut2_at_the_limit", b"\xc3", 0, "not_json_object"),
    ):
        out.append(
            Case(
                f"not_utf8_{label}",
                "multi_error",
                reason,
                lambda eid, c=cut, x=extra: _pad(
                    _dumps(t.sale(eid, place="PLACEHOLDER")), schema.MAX_LINE_CHARS + x
                ).replace(b"PLACEHOLDER", c + b"p" * (11 - len(c))),
                breaks=(("line_too_long",) if extra else ()) + ("not_json_object",),
            )
        )
    return out


def _all_semantic(case: Case) -> bool:
    return len(case.breaks) > 2 and all(any(r in c for c in schema.SEMANTIC_CHECKS.values()) for r in case.breaks)


# The pairs of multi_error_cases that the corpus (and so the injected logs) holds: per type, the
# semantic checks against each other and against a field, the type and the line checks.
_MULTI_IN_CORPUS = {
    "sale+unknown_machine+unknown_product",
    "sale+unknown_machine+bad_quantity",
    "sale+unknown_product+bad_category",
    "sale+bad_category+bad_quantity",
    "sale+bad_quantity+bad_price",
    "sale+bad_price+bad_time",
    "sale+unknown_machine+bad_time",
    "sale+missing_field:event_time+unknown_machine",
    "sale+wrong_type:quantity+unknown_product",
    "sale+missing_field:unit_price+bad_quantity",
    "sale+missing_field:event_id+bad_quantity",
    "sale+wrong_type:type+unknown_machine",
    "sale+unknown_type+bad_price",
    "sale+line_too_long+not_json_object",
    "sale+line_too_long+unknown_machine",
    "sale+not_json_object+bad_quantity",
    "sale+unknown_machine+unknown_product+bad_quantity",
    "sale+line_too_long+missing_field:event_time+bad_price",
    "telemetry+unknown_machine+bad_time",
    "telemetry+wrong_type:stock+unknown_machine",
    "telemetry+missing_field:machine_id+bad_time",
    "restock+unknown_machine+bad_quantity",
    "restock+unknown_product+bad_quantity",
    "restock+bad_quantity+bad_time",
    "restock+wrong_type:quantity+unknown_product+bad_time",
    "marker+missing_field:type+wrong_type:created_ms",
    "marker+unknown_type+missing_field:created_ms",
    "not_utf8_cut2_one_byte_over",
    "not_utf8_cut3_one_byte_over",
    "not_utf8_cut2_at_the_limit",
}


def _pad(line: bytes, chars: int) -> bytes:
    """The JSON object ``line`` with a padding field, ``chars`` characters long in all."""
    head = line[:-1] + b',"pad":"'
    return head + b"p" * (chars - len(head) - 2) + b'"}'


def _escape_first(word: str) -> bytes:
    return f"\\u{ord(word[0]):04x}{word[1:]}".encode()


# -- injecting the corpus into a log ----------------------------------------------------------------


@dataclass
class Injected:
    """What was injected: the bad lines by reason, and the valid edge sales."""

    reasons: Counter = field(default_factory=Counter)
    lines: int = 0
    items_by_product: Counter = field(default_factory=Counter)
    items_by_category: Counter = field(default_factory=Counter)
    revenue_cents_by_category: Counter = field(default_factory=Counter)
    bad_lines: list = field(default_factory=list)  # (reason, line) of every bad line injected

    def add(self, case: Case, line: bytes) -> None:
        self.lines += 1
        if case.reason is not None:
            self.bad_lines.append((case.reason, line))
        if case.reason is not None:
            self.reasons[case.reason] += 1
        elif case.sale is not None:
            product, category, qty, cents = case.sale
            self.items_by_product[product] += qty
            self.items_by_category[category] += qty
            self.revenue_cents_by_category[category] += qty * cents


class Injector:
    """Mixes corpus lines into chunks of generated JSON lines, at ``rate`` per generated line,
    cycling through the cases in a seeded random order."""

    def __init__(self, catalog: Catalog, rate: float = 0.01, seed: int = 0, families: tuple[str, ...] = FAMILIES):
        self.cases = [c for c in cases(catalog) if c.family in families]
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self._order: Iterator[Case] = iter(())
        self._n = 0
        self.injected = Injected()

    def _next_case(self) -> Case:
        for c in self._order:
            return c
        self._order = iter([self.cases[i] for i in self.rng.permutation(len(self.cases))])
        return next(self._order)

    def mix(self, data: bytes) -> tuple[bytes, int]:
        """``data`` (JSON lines) with corpus lines inserted; returns (data, number of lines)."""
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        k = int(self.rng.binomial(len(lines), self.rate)) if self.rate > 0 else 0
        at = set(self.rng.choice(len(lines) + 1, size=k, replace=True).tolist()) if k else set()
        out: list[bytes] = []
        for i, line in enumerate(lines + [None]):
            if i in at:
                case = self._next_case()
                self._n += 1
                bad = case.make(self._n)
                out.append(bad)
                self.injected.add(case, bad)
            if line is not None:
                out.append(line)
        return b"".join(x + b"\n" for x in out), len(out)


def write_log(
    data_dir: Path,
    seed: int = 5,
    events: int = 20_000,
    segment_lines: int = 5_000,
    rate: float = 20_000,
    corpus_rate: float = 0.01,
    dup_rate: float = 0.0,
    bad_rate: float = 0.0,
    machines: int = 20,
):
    """A finished log in ``data_dir`` with the corpus mixed into the generated segments.

    Returns (catalog, manifest, injected): the generator's manifest counts the generated lines
    only; ``injected`` what the corpus added (dead letters by reason, valid edge sales).
    """
    from vendlab.finished_log import write_log as write_finished_log
    from vendlab.world.catalog import make_catalog
    from vendlab.world.generator import Generator

    catalog = make_catalog(seed, machines=machines)
    gen = Generator(catalog, seed, rate, bad_rate=bad_rate, dup_rate=dup_rate)
    inj = Injector(catalog, corpus_rate, seed)
    manifest = write_finished_log(Path(data_dir), gen, events, segment_lines, mix=inj.mix).manifest
    return catalog, manifest, inj.injected


def expected_views(manifest, injected: Injected) -> dict[str, dict[str, int]]:
    """The views a correct pipeline shows for a log written by ``write_log``."""

    def total(a: dict, b: Counter) -> dict[str, int]:
        out = Counter({k: int(v) for k, v in a.items()})
        out.update(b)
        return {k: v for k, v in sorted(out.items()) if v}

    return {
        "items_by_product": total(manifest.items_by_product, injected.items_by_product),
        "items_by_category": total(manifest.items_by_category, injected.items_by_category),
        "revenue_cents_by_category": total(manifest.revenue_cents_by_category, injected.revenue_cents_by_category),
        "dead_letters": total(manifest.malformed_by_reason, injected.reasons),
    }
