"""Bad input: the corpus of vendlab.world.corpus (not JSON, truncated, missing fields, wrong types, bad
quantities and prices, unknown product or machine, absurd timestamps, huge lines, invalid UTF-8,
plus oddly shaped valid events) through both implementations of the contract, then injected at
1% into a log that also has 1% duplicate deliveries: every bad line is a dead letter with the
contract's reason, the counts match what was injected, the valid views stay exact, no job stops."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import parse_segment, record

from vendlab import schema
from vendlab.config import embedded
from vendlab.contract import validate_line
from vendlab.jobs.streaming import start_view_job
from vendlab.oracle import Validator
from vendlab.store import base
from vendlab.store.sqlite import DEAD_LETTER_RAW_CHARS, SqliteStore
from vendlab.world import corpus
from vendlab.world.catalog import make_catalog

CATALOG = make_catalog(5)
CASES = corpus.cases(CATALOG)


def test_the_corpus_covers_every_family_the_issue_names():
    assert {c.family for c in CASES} == set(corpus.FAMILIES)
    assert len({c.name for c in CASES}) == len(CASES)
    reasons = {c.reason for c in CASES if c.reason}
    assert reasons <= set(schema.all_reasons())
    # every static reason of the contract is exercised
    assert {
        "line_too_long",
        "not_json_object",
        "unknown_type",
        "bad_time",
        "bad_quantity",
        "bad_price",
        "unknown_product",
        "unknown_machine",
        "bad_category",
    } <= reasons


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_python_gives_the_contract_verdict(case):
    ev, reason = validate_line(case.make(1), CATALOG.machine_ids, CATALOG.product_names)
    assert reason == case.reason
    if case.sale:
        product, category, qty, cents = case.sale
        assert (ev["product"], ev["category"], ev["quantity"]) == (product, category, qty)


def test_spark_gives_the_contract_verdict_through_the_log_source(spark, tmp_path):
    """The lines as a segment file, read by the text source the jobs use (lineSep included)."""
    parsed = parse_segment(spark, tmp_path, [c.make(1) for c in CASES], CATALOG)
    rows = parsed.select("reason", "kind", "quantity", "price_cents", "revenue_cents").collect()
    assert len(rows) == len(CASES)  # no line split or merged
    got = {c.name: r["reason"] for c, r in zip(CASES, rows)}
    assert got == {c.name: c.reason for c in CASES}
    for c, r in zip(CASES, rows):
        if c.sale:
            assert (r["kind"], r["quantity"], r["price_cents"]) == ("sale", c.sale[2], c.sale[3]), c.name
        else:
            assert r["kind"] == "dead" and r["revenue_cents"] is None, c.name


def test_injector_mixes_at_the_rate_and_keeps_every_generated_line():
    inj = corpus.Injector(CATALOG, rate=0.01, seed=3)
    data = b"".join(b'{"n":%d}\n' % i for i in range(50_000))
    mixed, n = inj.mix(data)
    lines = mixed.split(b"\n")[:-1]
    assert n == len(lines) == 50_000 + inj.injected.lines
    assert 350 <= inj.injected.lines <= 650
    assert [x for x in lines if x.startswith(b'{"n":')] == data.split(b"\n")[:-1]  # order kept
    assert sum(inj.injected.reasons.values()) == len(inj.injected.bad_lines) < inj.injected.lines
    assert {c.name for c in CASES} == {c.name for c in inj.cases}


def _expected(manifest, injected):
    return corpus.expected_views(manifest, injected)


def test_kappa_and_validation_with_the_corpus_at_one_percent(spark, tmp_path):
    catalog, manifest, injected = corpus.write_log(
        tmp_path, seed=5, events=24_000, segment_lines=6_000, corpus_rate=0.01, dup_rate=0.01
    )
    assert injected.lines > 150 and manifest.duplicates > 150
    assert set(injected.reasons) >= {"not_json_object", "line_too_long", "bad_time", "wrong_type:quantity"}
    # a writer that died mid-segment left its temporary file: nobody may read it
    (tmp_path / "log" / ".seg-000000000004-1767600000000.jsonl.tmp").write_bytes(
        b'{"event_id":"half","type":"sale","machine_id":"VM-001","pla'
    )
    expected = _expected(manifest, injected)
    profile = embedded(tmp_path, max_files_per_trigger=2)  # two micro-batches

    q = start_view_job(spark, profile, catalog, base.KAPPA, available_now=True)
    q.awaitTermination()
    assert q.exception() is None  # no job stopped
    store = SqliteStore(profile.sqlite_path)
    Validator(profile.log_dir, catalog, store).poll()

    for job in (base.KAPPA, base.VALIDATION):
        for view in (base.ITEMS_BY_PRODUCT, base.ITEMS_BY_CATEGORY, base.REVENUE_BY_CATEGORY, base.DEAD_LETTERS):
            assert store.read_view(job, view) == expected[view], (job, view)
    # the dead-letters table: one row per bad line, with the contract's reason
    rows = store.dead_letters(base.KAPPA, limit=10**6)
    assert Counter(r for r, _, _ in rows) == Counter(expected["dead_letters"])

    # ... and the line itself (the first DEAD_LETTER_RAW_CHARS characters)
    # (a line that is not UTF-8 is shown with replacement characters; Java and Python place
    # them differently, so those compare by reason only)
    def text(line: bytes) -> str:
        try:
            return line.decode()[:DEAD_LETTER_RAW_CHARS]
        except UnicodeDecodeError:
            return "(not UTF-8)"

    assert Counter((r, "(not UTF-8)" if "\ufffd" in raw else raw) for r, raw, _ in rows) == Counter(
        (r, text(line)) for r, line in injected.bad_lines
    )
    assert all(pos.startswith("seg-") for _, _, pos in rows)
    record(
        "corpus_at_1_percent",
        lines=manifest.events + injected.lines,
        corpus_lines=injected.lines,
        bad_lines=len(injected.bad_lines),
        dead_letters_by_reason=dict(expected["dead_letters"]),
        duplicates=manifest.duplicates,
        kappa_dead_letter_rows=len(rows),
        job_stopped=False,
        exact=True,
    )
    assert "half" not in {raw[:60] for _, raw, _ in rows}
