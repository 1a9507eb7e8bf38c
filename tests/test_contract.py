"""The event contract is implemented twice (Spark: vendlab.jobs.parse; Python: vendlab.contract):
both must give every line the same verdict and the same dead-letter reason."""

import pytest
from conftest import parse_segment

from vendlab.contract import validate_line
from vendlab.jobs import parse
from vendlab.world import corpus
from vendlab.world.catalog import make_catalog

CAT = make_catalog(1)
SALE = (
    '{"event_id":"e1","type":"sale","machine_id":"VM-001","place":"P","product":"cola","category":"unhealthy",'
    '"quantity":2,"unit_price":1.9,"customer_id":"C1","event_time":"2026-01-05T06:00:00.000Z"}'
)

CASES = [
    (SALE, None),
    ("not json at all", "not_json_object"),
    (SALE[: len(SALE) // 2], "not_json_object"),
    ("[1, 2]", "not_json_object"),
    ("{}", "missing_field:event_id"),
    ('{"event_id":"e2"}', "missing_field:type"),
    ('{"event_id":"e3","type":"coupon"}', "unknown_type"),
    (SALE.replace('"quantity":2,', ""), "missing_field:quantity"),
    (SALE.replace('"quantity":2', '"quantity":"two"'), "wrong_type:quantity"),
    (SALE.replace('"quantity":2', '"quantity":2.5'), "wrong_type:quantity"),
    (SALE.replace('"quantity":2', '"quantity":true'), "wrong_type:quantity"),
    (SALE.replace('"quantity":2', '"quantity":0'), "bad_quantity"),
    (SALE.replace('"quantity":2', '"quantity":-3'), "bad_quantity"),
    (SALE.replace('"unit_price":1.9', '"unit_price":0'), "bad_price"),
    (SALE.replace('"cola"', '"caviar"'), "unknown_product"),
    (SALE.replace('"VM-001"', '"VM-404"'), "unknown_machine"),
    (SALE.replace('"unhealthy"', '"tasty"'), "bad_category"),
    (SALE.replace("2026-01-05T06:00:00.000Z", "yesterday"), "bad_time"),
    (SALE.replace("2026-01-05T06:00:00.000Z", "2026-13-45T06:00:00.000Z"), "bad_time"),
    (SALE.replace("2026-01-05T06:00:00.000Z", "1970-01-01T00:00:00.000Z"), "bad_time"),
    (SALE.replace('"P"', '"' + "x" * 20_000 + '"'), "line_too_long"),
    (
        '{"event_id":"t1","type":"telemetry","machine_id":"VM-002","event_time":"2026-01-05T06:00:00.000Z",'
        '"temperature":5.1,"error_code":0,"stock":{"cola":3}}',
        None,
    ),
    (
        '{"event_id":"t2","type":"telemetry","machine_id":"VM-002","event_time":"2026-01-05T06:00:00.000Z",'
        '"temperature":5.1,"error_code":0,"stock":{"cola":"many"}}',
        "wrong_type:stock",
    ),
    ('{"event_id":"m1","type":"marker","created_ms":1767592800000}', None),
]


@pytest.mark.parametrize("line,reason", CASES)
def test_python_validator(line, reason):
    ev, got = validate_line(line, CAT.machine_ids, CAT.product_names)
    assert got == reason
    assert (ev is None) == (reason is not None)


def test_spark_gives_the_same_verdicts(spark):
    raw = spark.createDataFrame([(line, i) for i, (line, _) in enumerate(CASES)], "value string, i int")
    raw = raw.selectExpr(
        "value",
        "0 as log_partition",
        "cast(null as long) as log_offset",
        "timestamp_millis(0) as log_ts",
        "'test' as position",
        "i",
    )
    out = parse.parse(raw, sorted(CAT.machine_ids), sorted(CAT.product_names))
    got = {r["i"]: r["reason"] for r in out.select("i", "reason").collect()} if "i" in out.columns else None
    if got is None:  # parse keeps the envelope columns only: join back by value
        got_by_value = {r["value"]: r["reason"] for r in out.select("value", "reason").collect()}
        got = {i: got_by_value[line] for i, (line, _) in enumerate(CASES)}
    assert {i: r for i, (_, r) in enumerate(CASES)} == got
    sale = out.filter("reason is null and kind = 'sale'").first()
    assert (sale["quantity"], sale["price_cents"], sale["revenue_cents"]) == (2, 190, 380)
    assert sale["event_ms"] == 1767592800000


# -- several checks broken at once -------------------------------------------------------------------
# The contract's order as docs/architecture.md writes it ("The contract's order"), copied here by hand:
# a change of the order in vendlab/schema.py must change the docs and this list too.
CONTRACT_ORDER = {
    "sale": [
        "line_too_long",
        "not_json_object",
        "event_id",
        "type",
        "unknown_type",
        "machine_id",
        "place",
        "product",
        "category",
        "quantity",
        "unit_price",
        "customer_id",
        "event_time",
        "unknown_machine",
        "unknown_product",
        "bad_category",
        "bad_quantity",
        "bad_price",
        "bad_time",
    ],
    "telemetry": [
        "line_too_long",
        "not_json_object",
        "event_id",
        "type",
        "unknown_type",
        "machine_id",
        "event_time",
        "temperature",
        "error_code",
        "stock",
        "unknown_machine",
        "bad_time",
    ],
    "restock": [
        "line_too_long",
        "not_json_object",
        "event_id",
        "type",
        "unknown_type",
        "machine_id",
        "product",
        "quantity",
        "event_time",
        "unknown_machine",
        "unknown_product",
        "bad_quantity",
        "bad_time",
    ],
    "marker": ["line_too_long", "not_json_object", "event_id", "type", "unknown_type", "created_ms"],
}


# the field a semantic check (or unknown_type) reads
FIELD_OF = {
    "unknown_type": "type",
    "unknown_machine": "machine_id",
    "unknown_product": "product",
    "bad_category": "category",
    "bad_quantity": "quantity",
    "bad_price": "unit_price",
    "bad_time": "event_time",
}


def _rank(etype: str, reason: str) -> int:
    """Position of a reason in CONTRACT_ORDER (missing_field:f and wrong_type:f are field f's check)."""
    return CONTRACT_ORDER[etype].index(reason.split(":", 1)[-1])


MULTI = corpus.multi_error_cases(CAT)


def test_schema_states_the_documented_order():
    from vendlab import schema

    for etype, order in CONTRACT_ORDER.items():
        names = list(dict.fromkeys(r.split(":", 1)[-1] for r in schema.check_order(etype)))
        assert names == order, etype


def test_multi_error_cases_cover_every_pair_of_checks_of_every_type():
    from itertools import combinations

    pairs = {(c.name.split("+")[0], frozenset(c.breaks)) for c in MULTI if len(c.breaks) == 2}
    for etype, order in CONTRACT_ORDER.items():
        for a, b in combinations(order, 2):
            if FIELD_OF.get(a, a) == FIELD_OF.get(b, b):
                continue  # checks of one field cannot fail together (missing, or of an unknown value)
            broken = {(r.split(":", 1)[-1], r) for c in MULTI if c.name.startswith(etype + "+") for r in c.breaks}
            for ra in [r for n, r in broken if n == a]:
                for rb in [r for n, r in broken if n == b]:
                    assert (etype, frozenset((ra, rb))) in pairs, (etype, ra, rb)
    # each case's verdict is the first broken check in the documented order
    for c in MULTI:
        etype = c.name.split("+")[0]
        if etype in CONTRACT_ORDER:
            assert c.reason == min(c.breaks, key=lambda r: _rank(etype, r)), c.name
    # the corpus (injected into the fault tests' logs) holds multi-error lines of every type
    assert {c.name.split("+")[0] for c in corpus.cases(CAT) if c.family == "multi_error"} >= set(CONTRACT_ORDER)


@pytest.mark.parametrize("case", MULTI, ids=[c.name for c in MULTI])
def test_python_gives_the_first_broken_check(case):
    ev, got = validate_line(case.make(1), CAT.machine_ids, CAT.product_names)
    assert ev is None and got == case.reason


def test_spark_gives_the_first_broken_check(spark, tmp_path):
    """Every multi-error line as a log segment through the jobs' text source and parse: the same
    reason as the Python implementation and the contract, line by line."""
    rows = parse_segment(spark, tmp_path, [c.make(1) for c in MULTI], CAT).select("reason", "kind").collect()
    assert len(rows) == len(MULTI)
    got = {c.name: r["reason"] for c, r in zip(MULTI, rows)}
    assert got == {c.name: c.reason for c in MULTI}
    assert all(r["kind"] == "dead" for r in rows)
