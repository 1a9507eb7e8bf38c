"""The dashboards' table panels, evaluated from rows in Cassandra as the plugin and Grafana 12.2 shape them.

tests/grafana_frames.py models Cassandra's GROUP BY, the Cassandra plugin's frames (one frame per value of the
first column) and Grafana's merge / groupBy / filterByValue / calculateField / organize from their sources. The
rows are what the jobs write (vendlab/store/cassandra.py): view_rows has one row per (bucket, key, micro-batch);
lambda's speed layer buckets by event time, so a product has a row per bucket at or after the batch cutoff (and
rows below it until the next batch run retires them); kappa and validation write bucket 0 only. Each panel must
show the true numbers: serving = batch view + speed rows from the cutoff on, and serving - validation = 0.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import defaultdict
from pathlib import Path

import grafana_frames as gf
import pytest

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "grafana_templates" / "dashboards"
PRODUCTS = ["water", "chips", "apple", "cola", "nuts"]
ORDERS = [None, lambda ids: sorted(ids), lambda ids: sorted(ids, reverse=True)] + [
    (lambda seed: lambda ids: random.Random(seed).sample(ids, len(ids)))(s) for s in range(4)
]  # Go's map gives the frames in no fixed order
VERSION, CUTOFF = 7, 1000


def dashboard(name: str) -> dict:
    return json.loads((DASHBOARDS / f"{name}.json").read_text())


def owner_keys(view: str) -> list[str]:
    hours = ["2026-12-05T10", "2026-12-05T11"]
    if view == "telemetry_by_machine_hour":
        return [f"m{m}|{h}|{s}" for m in (1, 2) for h in hours for s in ("readings", "faults", "out_of_service")]
    if view == "items_by_machine_product_hour":
        return [f"m{m}|{p}|{h}" for m in (1, 2) for p in PRODUCTS[:2] for h in hours]
    if view.endswith("by_category"):
        return ["healthy", "unhealthy"]
    return [f"{'m' if 'machine' in view else 'place'}{i}|{h}" for i in (1, 2) for h in hours]


VIEWS = {"items_by_product": PRODUCTS, "dead_letters": ["bad_json", "unknown_product"]}
for _v in (
    "revenue_cents_by_machine_hour",
    "items_by_place_hour",
    "items_by_category",
    "revenue_cents_by_category",
    "telemetry_by_machine_hour",
    "items_by_machine_product_hour",
):
    VIEWS[_v] = owner_keys(_v)


def store(seed: int = 0, speed: bool = True, batch: bool = True):
    """(tables, truth): Cassandra's rows as the jobs write them, and each job's true view {job: {view: {key: n}}}."""
    rnd = random.Random(seed)
    rows, truth = [], defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    batch_views, batch_runs = [], []
    batch_id = defaultdict(int)

    def put(job, view, bucket, key, value):
        batch_id[job] += 1
        rows.append(
            {
                "job": job,
                "view_name": view,
                "bucket": bucket,
                "view_key": key,
                "batch_id": batch_id[job],
                "value": value,
            }
        )

    for view, keys in VIEWS.items():
        for key in keys:
            total = 0
            if batch:  # the batch view of VERSION (all buckets before CUTOFF) and a stale older version
                b = rnd.randint(5, 40)
                batch_views.append({"version": VERSION, "view_name": view, "view_key": key, "value": b})
                batch_views.append({"version": VERSION - 1, "view_name": view, "view_key": key, "value": b // 2})
                total += b
            for bucket in range(CUTOFF - 2, CUTOFF + 4):
                if not speed:
                    break
                for _ in range(rnd.randint(1, 3)):  # micro-batches in this bucket; values repeat across rows
                    v = rnd.randint(1, 3)
                    put("lambda_speed", view, bucket, key, v)
                    if bucket >= CUTOFF:
                        total += v
            truth["lambda"][view][key] = total
            left = total
            while left > 0:  # the validation consumer's micro-batches, bucket 0, same events
                v = min(left, rnd.randint(1, 9))
                put("validation", view, 0, key, v)
                left -= v
            truth["validation"][view][key] = total
            k = 0
            for _ in range(rnd.randint(1, 4)):  # kappa: bucket 0, several micro-batches
                v = rnd.randint(1, 3)
                put("kappa", view, 0, key, v)
                k += v
            truth["kappa"][view][key] = k
    for ver, cut in ((VERSION - 1, CUTOFF - 2), (VERSION, CUTOFF)):  # batch=False: a run that published no row
        batch_runs.append({"lab": "lambda", "version": ver, "cutoff_bucket": cut})
    tables = {"view_rows": rows, "batch_views": batch_views, "batch_runs": batch_runs}
    return tables, truth


def show(d: dict, panel: dict, tables, order=None) -> dict[str, dict]:
    variables = gf.fill_variables(d, tables)
    frames = gf.panel_frames(panel, tables, variables, order)
    return gf.table(gf.apply(panel["transformations"], frames))


def panels(d: dict) -> dict[int, dict]:
    return {p["id"]: p for p in d["panels"]}


def test_the_plugin_gives_several_rows_per_product_in_the_speed_query():
    """The premise: lambda's speed query gives a row per (bucket, product), so a product's frame has several."""
    d = dashboard("lambda")
    tables, _ = store()
    speed = panels(d)[1]["targets"][0]
    assert "lambda_speed" in speed["target"]
    cql = speed["target"].replace("${cutoff}", str(CUTOFF))
    frames = gf.plugin_frames("A", *gf.cql_rows(cql, tables))
    assert sorted(f["name"] for f in frames) == sorted(PRODUCTS)
    assert all(gf.length(f) > 1 for f in frames), [gf.length(f) for f in frames]


@pytest.mark.parametrize("order", range(len(ORDERS)))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lambda_items_panels_show_true_serving_and_zero_difference(seed, order):
    d = dashboard("lambda")
    tables, truth = store(seed)
    serving, val = truth["lambda"]["items_by_product"], truth["validation"]["items_by_product"]
    batch = {r["view_key"]: r["value"] for r in tables["batch_views"] if r["version"] == VERSION}
    batch = {k: v for k, v in batch.items() if k in serving}
    speed = {k: serving[k] - batch[k] for k in serving}
    t = show(d, panels(d)[1], tables, ORDERS[order])
    assert t["batch_view"] == batch
    assert t["realtime"] == speed
    assert t["validation"] == val
    assert t["serving"] == serving
    assert t["difference"] == {p: 0 for p in PRODUCTS}
    assert show(d, panels(d)[2], tables, ORDERS[order]) == {"difference": {p: 0 for p in PRODUCTS}}


@pytest.mark.parametrize("case", ["no speed rows", "empty batch view"])
def test_lambda_items_panels_when_one_layer_is_empty(case):
    """One query gives no frame at all: right after a hand-off (no speed row from the cutoff on), or a batch
    view with no row for this view."""
    d = dashboard("lambda")
    tables, truth = store(3, speed=case != "no speed rows", batch=case != "empty batch view")
    t = show(d, panels(d)[1], tables)
    assert t["serving"] == truth["lambda"]["items_by_product"]
    assert t["difference"] == {p: 0 for p in PRODUCTS}


@pytest.mark.parametrize("order", range(len(ORDERS)))
def test_kappa_items_panels_show_true_views_and_zero_difference(order):
    d = dashboard("kappa")
    tables, truth = store(4)
    kappa = truth["kappa"]["items_by_product"]
    # make the validation consumer agree with kappa (store() writes it for lambda's numbers)
    tables["view_rows"] = [r for r in tables["view_rows"] if r["job"] != "validation"] + [
        {"job": "validation", "view_name": "items_by_product", "bucket": 0, "view_key": k, "batch_id": i, "value": 1}
        for k, n in kappa.items()
        for i in range(n)
    ]
    t = show(d, panels(d)[1], tables, ORDERS[order])
    assert t["realtime"] == kappa and t["validation"] == kappa
    assert t["difference"] == {p: 0 for p in PRODUCTS}
    assert show(d, panels(d)[2], tables, ORDERS[order]) == {"difference": {p: 0 for p in PRODUCTS}}
    assert show(d, panels(d)[5], tables, ORDERS[order]) == {"dead_letters": dict(truth["kappa"]["dead_letters"])}


def _owner_expect(view: str, numbers: dict[str, int], alias: str, eur: bool) -> dict[str, dict]:
    if view == "telemetry_by_machine_hour":
        numbers = {k: v for k, v in numbers.items() if k.endswith(("|faults", "|out_of_service"))}
    return {f"{alias} EUR": {k: v / 100 for k, v in numbers.items()}} if eur else {alias: dict(numbers)}


@pytest.mark.parametrize("name", ["lambda", "kappa"])
@pytest.mark.parametrize("order", [0, 3, 5])
def test_owner_panels_show_the_true_views(name, order):
    d = dashboard(name)
    tables, truth = store(5)
    owner = [p for p in d["panels"] if p["title"].startswith("Owner:")]
    assert len(owner) == 6
    for p in owner:
        view = p["targets"][0]["target"].split("view_name = '")[1].split("'")[0]
        alias = next(t["options"]["alias"] for t in p["transformations"] if t["id"] == "calculateField")
        eur = any(t["id"] == "calculateField" and t["options"]["alias"].endswith(" EUR") for t in p["transformations"])
        got = show(d, p, tables, ORDERS[order])
        want = _owner_expect(view, truth[name][view], alias, eur)
        assert set(got) == set(want), (p["title"], got)
        for col in want:
            assert got[col].keys() == want[col].keys(), p["title"]
            for k, v in want[col].items():
                assert math.isclose(got[col][k], v), (p["title"], k, got[col][k], v)


def test_the_model_reproduces_the_multiplication_of_merge_then_group_by():
    """Grafana's merge joins a batch row into *every* speed row of its product: with k speed rows the batch
    and validation numbers count k times after the groupBy (the defect of issue 25, item 1)."""
    frames = [
        *gf.plugin_frames("A", ["view_key", "realtime"], [{"view_key": "chips", "realtime": v} for v in (1, 2, 3)]),
        *gf.plugin_frames("B", ["view_key", "batch_view"], [{"view_key": "chips", "batch_view": 10}]),
    ]
    merged = gf.merge(frames)
    grouped = gf.group_by(
        merged,
        {
            "fields": {
                "view_key": {"operation": "groupby", "aggregations": []},
                "realtime": {"operation": "aggregate", "aggregations": ["sum"]},
                "batch_view": {"operation": "aggregate", "aggregations": ["sum"]},
            }
        },
    )
    assert gf.table(grouped) == {"realtime (sum)": {"chips": 6}, "batch_view (sum)": {"chips": 30}}
    # rows with equal values in one frame collapse into one: realtime 2 + 2 shows as 2
    same = gf.plugin_frames("A", ["view_key", "realtime"], [{"view_key": "chips", "realtime": 2}] * 2)
    other = gf.plugin_frames("B", ["view_key", "batch_view"], [{"view_key": "chips", "batch_view": 10}])
    assert gf.table(gf.merge(same + other)) == {"realtime": {"chips": 2}, "batch_view": {"chips": 10}}


def test_the_cql_model_enforces_cassandras_group_by_rule():
    tables, _ = store()
    with pytest.raises(AssertionError):  # bucket is restricted by a range, not '=': it must be grouped
        gf.cql_rows(
            "SELECT view_key, sum(value) AS x FROM vendlab.view_rows WHERE job = 'kappa' "
            "AND view_name = 'items_by_product' AND bucket >= 3 GROUP BY view_key",
            tables,
        )


def _before_the_first_batch_run(seed: int):
    """(tables, speed totals): a fresh stack before the batch layer has published anything. batch_runs and
    batch_views are empty; the speed layer has rows in several buckets (none retired yet) and validation has
    counted the same events, so serving = the speed rows of every bucket."""
    rnd = random.Random(seed)
    rows, speed = [], defaultdict(lambda: defaultdict(int))
    batch_id = defaultdict(int)
    for view, keys in VIEWS.items():
        for key in keys:
            for bucket in range(CUTOFF - 2, CUTOFF + 3):
                for _ in range(rnd.randint(1, 3)):
                    v = rnd.randint(1, 3)
                    batch_id["lambda_speed"] += 1
                    rows.append(
                        {
                            "job": "lambda_speed",
                            "view_name": view,
                            "bucket": bucket,
                            "view_key": key,
                            "batch_id": batch_id["lambda_speed"],
                            "value": v,
                        }
                    )
                    speed[view][key] += v
            batch_id["validation"] += 1
            rows.append(
                {
                    "job": "validation",
                    "view_name": view,
                    "bucket": 0,
                    "view_key": key,
                    "batch_id": batch_id["validation"],
                    "value": speed[view][key],
                }
            )
    return {"view_rows": rows, "batch_views": [], "batch_runs": []}, speed


@pytest.mark.parametrize("order", [0, 3])
def test_lambda_panels_before_the_first_batch_run_show_the_speed_layer_only(order):
    """A first-time user opens the lambda dashboard before the first batch run has finished (minutes on a
    fresh stack): the variable queries on batch_runs find no run, and the variables take the value Grafana
    gives them then (tests/grafana_frames.py fill_variables). Every panel query must still be valid CQL, and
    the items panels must show serving = the speed layer alone (the batch view contributes 0) = validation.
    With variables that select a column from the newest row (no row: Grafana leaves them empty) the queries
    read `WHERE version =  AND ...` and `bucket >= ` and every lambda view panel errors."""
    d = dashboard("lambda")
    tables, speed = _before_the_first_batch_run(6)
    variables = gf.fill_variables(d, tables)
    for p in d["panels"]:  # every query of the dashboard as it is sent: the Cassandra model parses it
        for t in p["targets"]:
            cql = re.sub(r"\$\{(\w+)\}", lambda m: variables[m[1]], t["target"])
            if "$__time" not in cql:
                gf.cql_rows(cql, tables)
    want = dict(speed["items_by_product"])
    t = show(d, panels(d)[1], tables, ORDERS[order])
    assert t["serving"] == want == t["validation"]
    assert t["realtime"] == want
    assert all(not v for v in t.get("batch_view", {}).values())
    assert t["difference"] == {p: 0 for p in PRODUCTS}
    assert show(d, panels(d)[2], tables, ORDERS[order]) == {"difference": {p: 0 for p in PRODUCTS}}
    for p in d["panels"]:
        if not p["title"].startswith("Owner:"):
            continue
        view = p["targets"][0]["target"].split("view_name = '")[1].split("'")[0]
        alias = next(x["options"]["alias"] for x in p["transformations"] if x["id"] == "calculateField")
        eur = any(x["id"] == "calculateField" and x["options"]["alias"].endswith(" EUR") for x in p["transformations"])
        got = show(d, p, tables, ORDERS[order])
        want_owner = _owner_expect(view, speed[view], alias, eur)
        assert got.keys() == want_owner.keys(), p["title"]
        for col, values in want_owner.items():
            assert got[col].keys() == values.keys(), p["title"]
            assert all(math.isclose(got[col][k], v) for k, v in values.items()), p["title"]
