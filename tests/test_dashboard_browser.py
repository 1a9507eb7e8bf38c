"""The dashboard in a real browser (Debian's headless Chromium): the page, served from a store that
a thread keeps writing to, shows the store's current numbers in every panel and refreshes itself.

No Spark here: the writer applies micro-batches with known contents, so the expected numbers of
any store state follow from the batch ids the page says it drew (body[data-snapshot])."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from vendlab.store import base
from vendlab.store.base import BatchViewInfo
from vendlab.store.sqlite import SqliteStore

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (Debian: apt-get install -y chromium, or scripts/bootstrap.sh --test)",
    ),
]

ITEMS = base.ITEMS_BY_PRODUCT
PRODUCTS = ["apple_chips", "cola", "water"]
PUBLISH_EVERY = 10  # the writer publishes batch view v after speed batch 10 v, covering buckets < 10 v - 5
LAG = 2  # lambda and validation apply batch i after kappa applied batch i + LAG: kappa is always ahead


def qty(batch: int, j: int) -> int:
    return (batch * 7 + j * 3) % 11 + 1


def total(j: int, upto: int, since: int = 0) -> int:
    """Items of product j in batches since..upto (inclusive)."""
    return sum(qty(i, j) for i in range(since, upto + 1))


def cutoff_of(version: int) -> int:
    return PUBLISH_EVERY * version - 5


class Writer(threading.Thread):
    """Applies kappa, lambda and validation batches every few ms, as running pipelines would;
    lambda and validation run LAG batches behind kappa, so kappa's view differs from validation's
    while lambda's mostly equals it (both badge states are on the page)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.store = SqliteStore(path)
        self.stop_event = threading.Event()
        self.applied = -1
        self.error = None

    def run(self):
        try:
            i = 0
            while not self.stop_event.is_set() and i < 3000:
                self.batch(i)
                self.applied = i
                i += 1
                time.sleep(0.004)
        except BaseException as e:
            self.error = e

    def batch(self, k: int) -> None:
        now = int(time.time() * 1000)

        def content(i):
            sales = [(ITEMS, p, 0, qty(i, j)) for j, p in enumerate(PRODUCTS)]
            cats = [(base.ITEMS_BY_CATEGORY, "healthy", 0, 1)]
            dead = [(base.DEAD_LETTERS, "not_json_object", 0, 1)] if i % 3 == 0 else []
            return sales, cats, dead, [(f"mk{i}", now - 40 - i % 30)]

        s = self.store
        sales, cats, dead, marker = content(k)
        s.apply_batch(base.KAPPA, k, sales + cats + dead, markers=marker, rows=100 + k)
        i = k - LAG
        if i < 0:
            return
        sales, cats, dead, marker = content(i)
        # the speed job buckets by event time: batch i lands in bucket i
        s.apply_batch(
            base.LAMBDA_SPEED, i, [(v, k, i, n) for v, k, _, n in sales] + cats + dead, markers=marker, rows=100 + i
        )
        if i and i % PUBLISH_EVERY == 0:
            v = i // PUBLISH_EVERY
            c = cutoff_of(v)
            s.publish_batch_view(
                BatchViewInfo(v, c, now, events=c * 100, seconds=0.1 * v),
                [(ITEMS, p, total(j, c - 1)) for j, p in enumerate(PRODUCTS)],
            )
        s.apply_batch(base.VALIDATION, i, sales + cats + dead, markers=marker, rows=100 + i)


class Dom(HTMLParser):
    """Just enough of a DOM: elements with attributes, children and text."""

    VOID = {
        "meta",
        "link",
        "br",
        "img",
        "input",
        "hr",
        "col",
        "source",
        "path",
        "rect",
        "line",
        "circle",
        "stop",
        "use",
        "image",
    }

    def __init__(self, html: str):
        super().__init__()
        self.root = {"tag": "#root", "attrs": {}, "children": [], "text": ""}
        self.stack = [self.root]
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = {"tag": tag, "attrs": dict(attrs), "children": [], "text": ""}
        self.stack[-1]["children"].append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1]["children"].append({"tag": tag, "attrs": dict(attrs), "children": [], "text": ""})

    def handle_endtag(self, tag):
        for k in range(len(self.stack) - 1, 0, -1):
            if self.stack[k]["tag"] == tag:
                del self.stack[k:]
                break

    def handle_data(self, data):
        self.stack[-1]["text"] += data

    def all(self, pred, node=None):
        node = node or self.root
        out = [node] if pred(node) else []
        for c in node["children"]:
            out += self.all(pred, c)
        return out

    def by_id(self, id_):
        found = self.all(lambda n: n["attrs"].get("id") == id_)
        assert found, f"no element #{id_}"
        return found[0]

    @staticmethod
    def text(node) -> str:
        return (node["text"] + "".join(Dom.text(c) for c in node["children"])).strip()

    def has_class(self, node, cls) -> list:
        return self.all(lambda n: cls in n["attrs"].get("class", "").split(), node)


def load_page(url: str, tmp_path: Path, budget_ms: int = 6000, width: int = 1400, height: int = 2000) -> str:
    """The DOM after the page ran for budget_ms of (virtual) time: timers and fetches included."""
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0 and "<body" in out.stdout, out.stderr[-2000:]
    return out.stdout


def number(text: str) -> int:
    return int(text.replace(",", "").replace("+", ""))


def test_the_page_shows_the_current_numbers_of_a_store_being_written(tmp_path, serve):
    writer = Writer(tmp_path / "views.sqlite")
    writer.start()
    try:
        while writer.applied < 25 + LAG and writer.error is None:  # at least two batch views published
            time.sleep(0.01)
        before = writer.applied
        url = serve(tmp_path)
        dom = Dom(load_page(url, tmp_path))
    finally:
        writer.stop_event.set()
        writer.join(10)
    assert writer.error is None, writer.error
    body = dom.all(lambda n: n["tag"] == "body")[0]["attrs"]
    assert json.loads(body.get("data-errors", "[]")) == [], body.get("data-errors")
    assert int(body["data-refreshes"]) >= 3, "the page did not refresh itself"
    snap, first = json.loads(body["data-snapshot"]), json.loads(body["data-first-snapshot"])
    # live: the last drawing is of a later store state than the first, and not older than the page
    assert snap["kappa"] > first["kappa"] >= before
    assert dom.by_id("status")["attrs"]["data-state"] == "live"

    # the table holds exactly the store's numbers at that snapshot, product by product
    K, V, L, ver = snap["kappa"], snap["validation"], snap["lambda_speed"], snap["batch_version"]
    assert ver is not None and ver >= 2
    cut = cutoff_of(ver)
    rows = {
        r["attrs"]["data-product"]: {c["attrs"]["data-col"]: Dom.text(c) for c in r["children"]}
        for r in dom.all(lambda n: n["tag"] == "tr" and "data-product" in n["attrs"])
    }
    assert set(rows) == set(PRODUCTS) | {"__total__"}
    for j, p in enumerate(PRODUCTS):
        cells = {k: number(v) for k, v in rows[p].items() if k != "product"}
        assert cells == {
            "kappa_realtime": total(j, K),
            "validation": total(j, V),
            "lambda_batch": total(j, cut - 1),
            "lambda_realtime": total(j, L, since=cut),
            "lambda_serving": total(j, L),
            "kappa_diff": total(j, K) - total(j, V),
            "lambda_diff": total(j, L) - total(j, V),
        }, p
    assert number(rows["__total__"]["kappa_realtime"]) == sum(total(j, K) for j in range(len(PRODUCTS)))

    # the exactness badges say the same
    assert K > V and dom.by_id("badge-kappa")["attrs"]["data-state"] == "in_flight"
    for arch, n in (("kappa", K), ("lambda", L)):
        badge = dom.by_id(f"badge-{arch}")
        diff = sum(abs(total(j, n) - total(j, V)) for j in range(len(PRODUCTS)))
        if diff == 0:
            assert (badge["attrs"]["data-state"], Dom.text(badge)) == ("exact", "EXACT")
        else:
            assert (badge["attrs"]["data-state"], Dom.text(badge)) == ("in_flight", f"differs by {diff:,}")

    # every chart is drawn by plotly with data in it
    for chart in (
        "chart-items-kappa",
        "chart-items-lambda",
        "chart-diff",
        "chart-latency",
        "chart-throughput",
        "chart-dead",
        "chart-batches",
        "panel-body-healthy_vs_unhealthy_items",
    ):
        node = dom.by_id(chart)
        assert int(node["attrs"].get("data-traces", 0)) >= 1, chart
        assert dom.has_class(node, "main-svg"), f"{chart} is not drawn"
        assert dom.has_class(node, "point") or dom.has_class(node, "js-line"), f"{chart} has no marks"
    bars = dom.has_class(dom.by_id("chart-items-kappa"), "point")
    assert len(bars) >= len(PRODUCTS)
    assert "p50" in Dom.text(dom.by_id("latency-summary"))
    # /api/metrics is read in its own snapshot, a moment after /api/views: at least as new
    runs = int(Dom.text(dom.by_id("batch-summary")).split(" runs")[0])
    assert runs >= ver
    assert dom.all(lambda n: n["attrs"].get("data-version") == str(runs))


def test_the_page_waits_for_a_store_that_does_not_exist_yet(tmp_path, serve):
    url = serve(tmp_path / "not-yet")
    dom = Dom(load_page(url, tmp_path, budget_ms=2500))
    body = dom.all(lambda n: n["tag"] == "body")[0]["attrs"]
    assert json.loads(body.get("data-errors", "[]")) == []
    assert int(body["data-refreshes"]) >= 2
    assert dom.by_id("status")["attrs"]["data-state"] == "waiting"
    assert "views.sqlite" in Dom.text(dom.by_id("status"))
    assert Dom.text(dom.by_id("badge-kappa")) == "no views yet"
