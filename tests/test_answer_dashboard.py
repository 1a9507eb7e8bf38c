"""The owner's-question panels in a real browser (headless Chromium): drawn, filled with the
answers of `vendlab answer`, no script error."""

from __future__ import annotations

import json

import pytest

from test_dashboard_browser import CHROMIUM, Dom, load_page
from vendlab.answer import compute
from vendlab.dashboard import start_dashboard_in_thread
from vendlab.models.scenario import with_validation_views, write_scenario
from vendlab.store.sqlite import SqliteStore

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def test_owner_panels_are_drawn_with_the_answers(tmp_path):
    d = tmp_path / "run"
    catalog, manifest = write_scenario(d, seed=6, events=40_000)
    with_validation_views(d, catalog)
    store = SqliteStore(d / "views.sqlite", readonly=True)
    expected = compute(store, catalog, manifest.to_dict(), top=10)
    store.close()
    url, stop = start_dashboard_in_thread(d, port=0)
    try:
        dom = Dom(load_page(url, tmp_path, budget_ms=8000))
    finally:
        stop()
    body = dom.all(lambda n: n["tag"] == "body")[0]["attrs"]
    assert json.loads(body.get("data-errors", "[]")) == []
    for chart in ("panel-body-profit_per_machine", "panel-body-sales_per_place_hour"):
        node = dom.by_id(chart)
        assert int(node["attrs"].get("data-traces", 0)) >= 1, chart
        assert dom.has_class(node, "main-svg") and (dom.has_class(node, "point") or dom.has_class(node, "js-line"))
    assert len(dom.has_class(dom.by_id("panel-body-profit_per_machine"), "point")) >= len(catalog.machines)
    for table, first in (("next_sellouts", expected["next_sellouts"][0]["machine_id"]),
                         ("breakdown_risk", expected["breakdown_risk"]["machines"][0]["machine_id"])):
        node = dom.by_id(f"panel-{table}")
        assert node["attrs"].get("data-error", "") == ""
        cells = [Dom.text(c) for c in dom.all(lambda n: n["tag"] == "td", node)]
        assert cells and cells[0] == first, table
