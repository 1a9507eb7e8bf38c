"""The owner's-question panels in a real browser (headless Chromium): drawn, filled with the
answers of `vendlab answer`, no script error, and every card fits a 1280 px and a 1920 px wide
window without scrolling sideways; a short run's cards carry its caveats."""

from __future__ import annotations

import json
import re

import pytest
from test_dashboard_browser import CHROMIUM, Dom, load_page

from vendlab.answer import compute
from vendlab.dashboard import start_dashboard_in_thread
from vendlab.store.sqlite import SqliteStore
from vendlab.world.scenario import with_validation_views, write_scenario

pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("owner") / "run"
    catalog, manifest = write_scenario(d, seed=6, events=40_000)
    with_validation_views(d, catalog)
    return d, catalog, manifest


def _fits(dom: Dom) -> None:
    """No card, owner panel or table in it needs a horizontal scrollbar (the page measures them)."""
    nodes = dom.all(lambda n: "data-overflow-x" in n["attrs"])
    assert len(nodes) >= 10  # the cards, the owner panels and their tables were measured
    wide = {
        n["attrs"].get("id") or n["attrs"].get("class"): n["attrs"]["data-overflow-x"]
        for n in nodes
        if n["attrs"]["data-overflow-x"] != "0"
    }
    assert wide == {}, f"scrolls sideways by px: {wide}"


@pytest.mark.parametrize("width", [1280, 1920])
def test_owner_panels_are_drawn_with_the_answers_and_fit_the_window(tmp_path, run_dir, width):
    d, catalog, manifest = run_dir
    store = SqliteStore(d / "views.sqlite", readonly=True)
    expected = compute(store, catalog, manifest.to_dict(), top=10)
    store.close()
    url, stop = start_dashboard_in_thread(d, port=0)
    try:
        dom = Dom(load_page(url, tmp_path, budget_ms=8000, width=width, height=3000))
    finally:
        stop()
    _fits(dom)
    body = dom.all(lambda n: n["tag"] == "body")[0]["attrs"]
    assert json.loads(body.get("data-errors", "[]")) == []
    for chart in ("panel-body-profit_per_machine", "panel-body-sales_per_place_hour"):
        node = dom.by_id(chart)
        assert int(node["attrs"].get("data-traces", 0)) >= 1, chart
        assert dom.has_class(node, "main-svg") and (dom.has_class(node, "point") or dom.has_class(node, "js-line"))
    assert len(dom.has_class(dom.by_id("panel-body-profit_per_machine"), "point")) >= len(catalog.machines)
    for table, first in (
        ("next_sellouts", expected["next_sellouts"][0]["machine_id"]),
        ("breakdown_risk", expected["breakdown_risk"]["machines"][0]["machine_id"]),
    ):
        node = dom.by_id(f"panel-{table}")
        assert node["attrs"].get("data-error", "") == ""
        cells = [Dom.text(c) for c in dom.all(lambda n: n["tag"] == "td", node)]
        assert cells and first in cells[:2], table
    # what each answer rests on is printed in its card
    notes = Dom.text(dom.by_id("panel-notes-next_sellouts"))
    assert notes.startswith("Rests on:") and "restock visits every 12 h" in notes
    # the hourly chart has a readable time axis: whole hours, no seconds
    ticks = [Dom.text(t) for t in dom.has_class(dom.by_id("panel-body-sales_per_place_hour"), "xtick")]
    assert ticks and not [t for t in ticks if re.search(r"\d:\d\d:\d\d|\.\d", t)], ticks


def test_a_short_run_shows_its_caveats_in_the_cards(tmp_path):
    d = tmp_path / "short"
    catalog, _ = write_scenario(d, seed=4, events=20_000, rate=10_000, time_scale=60.0)
    with_validation_views(d, catalog)
    url, stop = start_dashboard_in_thread(d, port=0)
    try:
        dom = Dom(load_page(url, tmp_path, budget_ms=6000, width=1280, height=3000))
    finally:
        stop()
    assert json.loads(dom.all(lambda n: n["tag"] == "body")[0]["attrs"].get("data-errors", "[]")) == []
    _fits(dom)
    for pid in ("profit_per_machine", "sales_per_place_hour", "next_sellouts", "breakdown_risk"):
        node = dom.by_id(f"panel-{pid}")
        assert int(node["attrs"].get("data-caveats", "0")) >= 1, pid
        assert "--time-scale" in Dom.text(dom.by_id(f"panel-notes-{pid}")), pid
    risk = dom.by_id("panel-breakdown_risk")
    assert "not a probability" in Dom.text(risk) and "%" not in Dom.text(dom.by_id("panel-body-breakdown_risk"))
    # an hour of data: ticks are whole hours, e.g. 06:00, not 05:59:59.9995
    ticks = [Dom.text(t) for t in dom.has_class(dom.by_id("panel-body-sales_per_place_hour"), "xtick")]
    assert ticks and all(t.endswith(":00") for t in ticks), ticks
