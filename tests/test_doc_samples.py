"""The sample outputs in README.md and docs/ are what their commands print (scripts/samples.py makes
them): the samples without machine-dependent numbers are re-run and compared line by line; for the
timed ones ("varies": events generated, latency) the parts that do not vary are checked."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("samples", ROOT / "scripts" / "samples.py")
samples = importlib.util.module_from_spec(_spec)
sys.modules["samples"] = samples  # dataclasses look their module up there
_spec.loader.exec_module(samples)

ALL = samples.find()
EXACT = [s for s in ALL if not s.varies]
VARIES = {s.command: s for s in ALL if s.varies}
DEMO = "vendlab demo"


def test_the_docs_have_samples_of_both_kinds():
    assert len(EXACT) >= 2 and len(VARIES) >= 2
    assert DEMO in VARIES  # the README's comparison table


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.name)
def test_each_sample_shows_its_command_and_the_doc_shows_every_command_it_ran(s):
    assert s.body.startswith(f"$ {s.command}\n"), "run scripts/samples.py: the block does not show its command"
    text = samples.MARKER.sub("", s.path.read_text())  # the text a reader sees, without the samples
    for cmd in s.commands:
        assert cmd in text, f"{s.name}: `{cmd}` ran for the sample but the document does not show it"


@pytest.mark.slow
def test_exact_samples_match_what_their_commands_print(tmp_path):
    runner = samples.Runner(tmp_path)
    stale = {s.name: s for s in EXACT if runner.output(s) != s.body}
    assert not stale, f"stale samples (python scripts/samples.py --exact-only rewrites them): {sorted(stale)}"


def test_the_script_rewrites_a_stale_sample_and_keeps_the_rest(tmp_path):
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "README.md"
    doc.write_text("Say hi:\n\n```\necho hi\n```\n\n<!-- sample: echo hi -->\n```\n$ echo hi\nold\n```\n\nend\n")
    found = samples.find(tmp_path)
    assert [s.commands for s in found] == [["echo hi"]]
    assert samples.rewrite(found, samples.Runner(tmp_path / "w"), check=True, root=tmp_path) == ["README.md: echo hi"]
    assert "old" in doc.read_text()  # --check writes nothing
    samples.rewrite(found, samples.Runner(tmp_path / "w"), root=tmp_path)
    assert (
        doc.read_text() == "Say hi:\n\n```\necho hi\n```\n\n<!-- sample: echo hi -->\n```\n$ echo hi\nhi\n```\n\nend\n"
    )


# -- the parts of the timed samples that do not vary --------------------------------------------
def _rows(body: str) -> dict[str, list[str]]:
    """The comparison table: label -> the cells of each architecture."""
    out = {}
    for line in body.splitlines()[2:]:
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) >= 2:  # a lambda-only row (batch view, hand-offs) has one cell
            out[parts[0]] = parts[1:]
    return out


def _n(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_the_readme_demo_table_is_exact_and_shows_the_default_bad_and_duplicate_input():
    from vendlab.cli import build_parser

    body = VARIES[DEMO].body
    header = body.splitlines()[1].split()
    assert header == ["kappa", "lambda"]
    rows = _rows(body)
    for label in (
        "events generated",
        "of which malformed / duplicates",
        "items sold (manifest)",
        "items in validation view",
        "items in serving view",
        "EXACT (view == validation == manifest)",
        "event-to-view latency p50",
        "throughput",
        "dead letters (by the job)",
    ):
        assert label in rows, label
    assert rows["EXACT (view == validation == manifest)"] == ["yes", "yes"]
    events = [_n(c) for c in rows["events generated"]]
    assert events[0] == events[1] > 0  # one log, both architectures
    defaults = build_parser().parse_args(["demo"])
    for cell in rows["of which malformed / duplicates"]:
        bad, dup = (_n(x) for x in cell.split(" / "))
        assert 0.5 * defaults.bad_rate <= bad / events[0] <= 1.5 * defaults.bad_rate
        assert 0.5 * defaults.dup_rate <= dup / events[0] <= 1.5 * defaults.dup_rate
    sold = rows["items sold (manifest)"]
    assert rows["items in validation view"] == sold and rows["items in serving view"] == [sold[1]]
    assert rows["items in realtime view"][0] == sold[0]  # kappa's realtime view is its answer
    assert _n(rows["dead letters (by the job)"][0]) > 0


def test_the_short_run_sample_carries_the_caveats_of_too_little_history():
    (cmd,) = [c for c in VARIES if "data/short" in c]
    caveats = json.loads(VARIES[cmd].body.split("\n", 1)[1])
    assert set(caveats) == {"profit", "places", "healthy", "sellouts", "breakdowns", "products"}
    for q in ("profit", "places", "sellouts", "breakdowns"):
        assert caveats[q] and all("--time-scale" in c for c in caveats[q]), q
    assert caveats["products"] == []
