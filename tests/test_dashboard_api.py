"""The dashboard's JSON API returns what the view store holds (no Spark: a small store in tmp_path)."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.error
import urllib.request

import pytest

from vendlab.dashboard import panels
from vendlab.dashboard.data import metrics_payload, views_payload
from vendlab.store import base
from vendlab.store.base import BatchViewInfo
from vendlab.store.sqlite import SqliteStore

ITEMS = base.ITEMS_BY_PRODUCT


def get(url: str) -> tuple[int, dict | bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status, body, kind = r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, body, kind = e.code, e.read(), e.headers.get("content-type", "")
    return status, (json.loads(body) if kind.startswith("application/json") else body)


def write_both(store: SqliteStore) -> None:
    """kappa, lambda (speed + one batch view) and validation, with known numbers."""
    store.apply_batch(
        base.KAPPA,
        0,
        [(ITEMS, "cola", 0, 5), (ITEMS, "water", 0, 2), (base.DEAD_LETTERS, "not_json_object", 0, 3)],
        markers=[("m1", 1_000)],
        rows=100,
        visible_ms=1_250,
    )
    store.apply_batch(
        base.KAPPA,
        1,
        [(ITEMS, "cola", 0, 1), (base.ITEMS_BY_CATEGORY, "unhealthy", 0, 6), (base.DEAD_LETTERS, "bad_quantity", 0, 1)],
        markers=[("m2", 2_000)],
        rows=50,
        visible_ms=2_500,
    )
    # lambda speed view in event-time buckets 3, 4, 5; the batch view covers buckets < 4
    store.apply_batch(
        base.LAMBDA_SPEED,
        0,
        [
            (ITEMS, "cola", 3, 4),
            (ITEMS, "cola", 4, 2),
            (ITEMS, "water", 5, 2),
            (base.DEAD_LETTERS, "not_json_object", 0, 3),
        ],
        markers=[("m1", 1_000)],
        rows=100,
        visible_ms=1_100,
    )
    store.publish_batch_view(
        BatchViewInfo(version=1, cutoff_bucket=4, published_ms=3_000, events=90, seconds=1.5), [(ITEMS, "cola", 4)]
    )
    store.apply_batch(
        base.VALIDATION,
        0,
        [
            (ITEMS, "cola", 0, 6),
            (ITEMS, "water", 0, 2),
            (base.ITEMS_BY_CATEGORY, "unhealthy", 0, 6),
            (base.DEAD_LETTERS, "not_json_object", 0, 3),
            (base.DEAD_LETTERS, "bad_quantity", 0, 1),
        ],
        markers=[("m1", 1_000), ("m2", 2_000)],
        rows=160,
        visible_ms=2_100,
    )


def test_views_api_returns_the_store_contents(tmp_path, serve):
    store = SqliteStore(tmp_path / "views.sqlite")
    write_both(store)
    url = serve(tmp_path)
    status, v = get(url + "api/views")
    assert status == 200 and v["store"] == "ok"
    assert v["products"] == ["cola", "water"]
    assert v["views"]["kappa"] == {"realtime": {"cola": 6, "water": 2}}
    # serving = batch view (cola 4) + speed buckets >= cutoff 4 (cola 2, water 2); bucket 3 is the batch's
    assert v["views"]["lambda"] == {
        "batch": {"cola": 4},
        "realtime": {"cola": 2, "water": 2},
        "serving": {"cola": 6, "water": 2},
        "cutoff_bucket": 4,
    }
    assert v["views"]["validation"] == {"cola": 6, "water": 2}
    assert v["snapshot"] == {"kappa": 1, "lambda_speed": 0, "validation": 0, "batch_version": 1}
    assert v["exactness"]["kappa"]["state"] == "exact" and v["exactness"]["kappa"]["differs_by"] == 0
    assert v["exactness"]["lambda"]["state"] == "exact"
    assert v["differences"][0] == {
        "product": "cola",
        "validation": 6,
        "manifest": None,
        "kappa_realtime": 6,
        "kappa_diff": 0,
        "lambda_batch": 4,
        "lambda_realtime": 2,
        "lambda_serving": 6,
        "lambda_diff": 0,
    }

    # more kappa sales that validation has not seen: the difference shows, per product
    store.apply_batch(base.KAPPA, 2, [(ITEMS, "water", 0, 3)])
    _, v = get(url + "api/views")
    k = v["exactness"]["kappa"]
    assert (k["state"], k["differs_by"], k["products_differing"], k["diff"]) == (
        "in_flight",
        3,
        1,
        {"cola": 0, "water": 3},
    )
    assert [r["kappa_diff"] for r in v["differences"]] == [0, 3]
    assert v["exactness"]["lambda"]["state"] == "exact"


def test_a_difference_after_the_run_drained_is_reported_as_real(tmp_path, serve):
    store = SqliteStore(tmp_path / "views.sqlite")
    write_both(store)
    store.apply_batch(base.KAPPA, 2, [(ITEMS, "water", 0, -1)], markers=[("end", 9_000)])
    store.apply_batch(base.VALIDATION, 1, [], markers=[("end", 9_000)])
    (tmp_path / "manifest.json").write_text(
        json.dumps({"complete": True, "events": 10, "items_by_product": {"cola": 6, "water": 2}})
    )
    url = serve(tmp_path)
    _, v = get(url + "api/views")
    assert v["exactness"]["kappa"]["state"] == "differs" and v["exactness"]["kappa"]["differs_by"] == 1
    assert v["views"]["manifest"] == {"cola": 6, "water": 2}
    assert v["run"]["complete"] is True
    # lambda's newest marker (m1) is behind validation's (end): still catching up, not settled
    assert v["exactness"]["lambda"]["settled"] is False


def test_metrics_api(tmp_path, serve):
    store = SqliteStore(tmp_path / "views.sqlite")
    write_both(store)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"complete": False, "malformed_by_reason": {"not_json_object": 3}})
    )
    url = serve(tmp_path)
    status, m = get(url + "api/metrics")
    assert status == 200
    assert m["t0_ms"] == 1_000
    kappa = m["jobs"]["kappa"]
    assert kappa["latency"] == {"t": [0.0, 1.0], "ms": [250, 500]}
    assert kappa["latency_ms"]["p50"] == 375 and kappa["latency_ms"]["max"] == 500
    # throughput: batch 1 brought 50 rows 1.25 s after batch 0
    assert kappa["throughput"] == {"t": [1.5], "eps": [40.0], "batch_id": [1], "rows": [50]}
    assert kappa["micro_batches"] == 2 and kappa["rows_total"] == 150
    assert kappa["dead_letters"] == {"bad_quantity": 1, "not_json_object": 3}
    assert m["jobs"]["lambda_speed"]["dead_letters"] == {"not_json_object": 3}
    assert m["jobs"]["validation"]["latency"]["ms"] == [1100, 100]
    assert m["batch_runs"] == [
        {
            "version": 1,
            "cutoff_bucket": 4,
            "cutoff_ms": 4 * m["bucket_ms"],
            "published_ms": 3_000,
            "published_s": 2.0,
            "events": 90,
            "seconds": 1.5,
        }
    ]
    assert m["expected_dead_letters"] == {"not_json_object": 3}


def test_kappa_only_and_empty_data_dirs(tmp_path, serve):
    empty = tmp_path / "empty"
    empty.mkdir()
    SqliteStore(empty / "views.sqlite")
    url = serve(empty)
    _, v = get(url + "api/views")
    assert v["products"] == [] and v["views"]["kappa"] is None and v["views"]["lambda"] is None
    assert {a: e["state"] for a, e in v["exactness"].items()} == {"kappa": "absent", "lambda": "absent"}
    _, m = get(url + "api/metrics")
    assert m["t0_ms"] is None and m["batch_runs"] == []
    assert all(not j["present"] for j in m["jobs"].values())
    _, p = get(url + "api/panels")
    assert all(x["data"] == {} and x["error"] is None for x in p["panels"])

    kappa_only = tmp_path / "kappa"
    kappa_only.mkdir()
    store = SqliteStore(kappa_only / "views.sqlite")
    store.apply_batch(base.KAPPA, 0, [(ITEMS, "cola", 0, 2)], markers=[("m1", 1)], rows=3)
    store.apply_batch(base.VALIDATION, 0, [(ITEMS, "cola", 0, 2)], markers=[("m1", 1)], rows=3)
    url = serve(kappa_only)
    _, v = get(url + "api/views")
    assert v["views"]["lambda"] is None and v["exactness"]["lambda"]["state"] == "absent"
    assert v["exactness"]["kappa"]["state"] == "exact"
    assert "lambda_diff" not in v["differences"][0]
    _, m = get(url + "api/metrics")
    assert m["jobs"]["lambda_speed"] == {"present": False} and m["batch_runs"] == []


def test_the_store_may_appear_after_the_server_started(tmp_path, serve):
    """`vendlab demo` starts the dashboard before the run has made its store."""
    data_dir = tmp_path / "not-yet"
    url = serve(data_dir)
    status, v = get(url + "api/views")
    assert status == 503 and v["store"] == "waiting" and "views.sqlite" in v["error"]
    data_dir.mkdir()
    store = SqliteStore(data_dir / "views.sqlite")
    store.apply_batch(base.KAPPA, 0, [(ITEMS, "cola", 0, 7)])
    status, v = get(url + "api/views")
    assert status == 200 and v["views"]["kappa"]["realtime"] == {"cola": 7}
    # a new run replaces the file: the server follows it
    store.close()
    for f in data_dir.iterdir():
        f.unlink()
    store = SqliteStore(data_dir / "views.sqlite")
    store.apply_batch(base.KAPPA, 0, [(ITEMS, "water", 0, 1)])
    _, v = get(url + "api/views")
    assert v["views"]["kappa"]["realtime"] == {"water": 1}


def test_the_dashboard_reads_the_store_read_only(tmp_path):
    from vendlab.dashboard.server import StoreReader

    store = SqliteStore(tmp_path / "views.sqlite")
    write_both(store)
    reader = StoreReader(tmp_path)
    ro = reader.get()
    assert ro.readonly
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.apply_batch(base.KAPPA, 9, [(ITEMS, "cola", 0, 1)])
    assert views_payload(ro)["views"]["kappa"]["realtime"] == {"cola": 6, "water": 2}
    reader.close()


def test_owner_panels_read_the_store_and_a_broken_panel_stays_contained(tmp_path, serve):
    store = SqliteStore(tmp_path / "views.sqlite")
    write_both(store)

    @panels.panel("test_broken", "Broken on purpose")
    def broken(src):
        raise KeyError("no such view")

    try:
        url = serve(tmp_path)
        _, p = get(url + "api/panels")
    finally:
        panels.PANELS[:] = [x for x in panels.PANELS if x.id != "test_broken"]
    by_id = {x["id"]: x for x in p["panels"]}
    assert by_id["healthy_vs_unhealthy_items"]["data"] == {
        "kappa": {"unhealthy": 6},
        "lambda": {},
        "validation": {"unhealthy": 6},
    }
    assert by_id["test_broken"]["data"] == {} and "KeyError" in by_id["test_broken"]["error"]


def test_the_page_and_its_scripts_are_served_locally(tmp_path, serve):
    SqliteStore(tmp_path / "views.sqlite")
    url = serve(tmp_path)
    status, page = get(url)
    assert status == 200
    html = page.decode()
    srcs = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert "/static/plotly.min.js" in srcs and "/static/dashboard.js" in srcs
    assert not [s for s in srcs if "//" in s], f"external resources: {srcs}"
    for s in srcs:
        status, body = get(url + s.lstrip("/"))
        assert status == 200 and len(body) > 500, s
    _, plotly_js = get(url + "static/plotly.min.js")
    assert len(plotly_js) > 1_000_000 and b"plotly" in plotly_js[:2000].lower()
    js = (get(url + "static/dashboard.js")[1]).decode()
    assert "http://" not in js and "https://" not in js


def test_payload_functions_read_one_snapshot(tmp_path):
    """views_payload reads inside store.snapshot(): a batch committed meanwhile is not half-seen."""
    store = SqliteStore(tmp_path / "views.sqlite")
    write_both(store)
    reader = SqliteStore(tmp_path / "views.sqlite", readonly=True)
    writer = SqliteStore(tmp_path / "views.sqlite")

    class Interleaving:
        """Delegates to the reader; commits a writer batch after the first read of the snapshot."""

        def __init__(self):
            self.done = False

        def __getattr__(self, name):
            attr = getattr(reader, name)
            if name in ("snapshot",) or not callable(attr):
                return attr

            def call(*a, **kw):
                out = attr(*a, **kw)
                if not self.done:
                    self.done = True
                    writer.apply_batch(base.KAPPA, 5, [(ITEMS, "cola", 0, 100)])
                    writer.apply_batch(base.VALIDATION, 5, [(ITEMS, "cola", 0, 100)])
                return out

            return call

    v = views_payload(Interleaving())
    assert v["snapshot"]["kappa"] == 1 and v["views"]["kappa"]["realtime"]["cola"] == 6
    assert v["views"]["validation"]["cola"] == 6
    v = views_payload(reader)
    assert v["snapshot"]["kappa"] == 5 and v["views"]["kappa"]["realtime"]["cola"] == 106
    m = metrics_payload(reader)
    assert m["jobs"]["kappa"]["micro_batches"] == 3
