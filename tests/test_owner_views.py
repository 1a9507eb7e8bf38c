"""The owner's views on real Spark: kappa's real-time view, lambda's serving view (batch + speed
after the cutoff) and the validation view each equal an independent recomputation of the
definitions in vendlab/models/defs.py from the log (pandas here), on a seeded run with
malformed lines and duplicate deliveries that spans a simulated day, sell-outs and breakdowns."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest

from vendlab.architectures.lambda_ import read_parts as lambda_views
from vendlab.config import embedded
from vendlab.contract import validate_line
from vendlab.jobs.batch import run_batch
from vendlab.jobs.ingest import start_ingest_job
from vendlab.jobs.streaming import start_view_job
from vendlab.jobs.views import BUCKETED_VIEWS
from vendlab.models import defs
from vendlab.oracle import Validator
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore
from vendlab.world.scenario import write_scenario

EVENTS = 30_000  # a slot every 3.6 simulated seconds: 30 simulated hours


def recompute(log_dir, catalog) -> dict[str, dict[str, int]]:
    """The owner's views from the log's lines, written from the definitions (not from the code)."""
    rows, seen = [], set()
    for seg in sorted(log_dir.glob("seg-*.jsonl")):
        for line in seg.read_bytes().split(b"\n")[:-1]:
            ev, _ = validate_line(line, catalog.machine_ids, catalog.product_names)
            if ev is None or ev["event_id"] in seen:
                continue
            seen.add(ev["event_id"])
            rows.append(ev)
    df = pd.DataFrame(rows)
    df["hour"] = df["event_time"].str.slice(0, 13)
    out: dict[str, dict[str, int]] = {}

    def put(view, frame, keys, value):
        g = frame.groupby(keys)[value].sum()
        out[view] = {"|".join(k if isinstance(k, tuple) else (k,)): int(v) for k, v in g.items()}

    sales = df[df.type == "sale"].copy()
    sales["cents"] = sales.quantity * sales.unit_price.map(
        lambda p: int(Decimal(repr(p * 100)).quantize(Decimal(1), ROUND_HALF_UP))
    )
    put(defs.REVENUE_BY_MACHINE_HOUR, sales, ["machine_id", "hour"], "cents")
    put(defs.ITEMS_BY_PLACE_HOUR, sales, ["place", "hour"], "quantity")
    put(defs.ITEMS_BY_MACHINE_PRODUCT_HOUR, sales, ["machine_id", "product", "hour"], "quantity")
    put(defs.RESTOCKED_BY_MACHINE_PRODUCT_HOUR, df[df.type == "restock"], ["machine_id", "product", "hour"], "quantity")
    tel = df[df.type == "telemetry"].copy()
    stock = pd.DataFrame(
        [(m, p, h, n) for m, h, s in zip(tel.machine_id, tel.hour, tel.stock) for p, n in s.items()],
        columns=["machine_id", "product", "hour", "units"],
    )
    put(defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR, stock, ["machine_id", "product", "hour"], "units")
    t = tel.temperature.clip(*defs.TEMP_RANGE) * 100
    tel["temp_centi"] = t.map(lambda x: int(Decimal(repr(x)).quantize(Decimal(1), ROUND_HALF_UP)))
    tel["temp_centi_sq"] = tel.temp_centi**2
    tel["readings"] = 1
    tel["faults"] = (~tel.error_code.isin([0, 9])).astype(int)
    tel["out_of_service"] = (tel.error_code == 9).astype(int)
    ts = pd.to_datetime(tel.event_time, format="%Y-%m-%dT%H:%M:%S.%fZ")
    tel["offset_ms"] = (ts.dt.minute * 60_000 + ts.dt.second * 1000 + ts.dt.microsecond // 1000).astype(int)
    long = tel.melt(id_vars=["machine_id", "hour"], value_vars=list(defs.TELEMETRY_STATS), var_name="stat")
    put(defs.TELEMETRY_BY_MACHINE_HOUR, long, ["machine_id", "hour", "stat"], "value")
    return out


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    d = tmp_path_factory.mktemp("owner")
    catalog, manifest = write_scenario(d, seed=8, events=EVENTS, bad_rate=0.01, dup_rate=0.02, segment_lines=10_000)
    # lambda: the batch view covers event times up to 6 simulated hours before the newest event
    profile = embedded(d, lateness_ms=6 * 3_600_000, bucket_ms=15 * 60_000)
    q = start_view_job(spark, profile, catalog, base.KAPPA, available_now=True)
    q.awaitTermination()
    ingest = start_ingest_job(spark, profile)
    ingest.processAllAvailable()
    ingest.stop()
    store = SqliteStore(profile.sqlite_path)
    info = run_batch(spark, profile, catalog, store)
    q = start_view_job(spark, profile, catalog, base.LAMBDA_SPEED, bucket_ms=profile.bucket_ms, available_now=True)
    q.awaitTermination()
    Validator(profile.log_dir, catalog, store).poll()
    return {
        "store": store,
        "info": info,
        "catalog": catalog,
        "manifest": manifest,
        "expected": recompute(profile.log_dir, catalog),
    }


def test_the_scenario_has_what_the_views_are_about(run):
    m, e = run["manifest"], run["expected"]
    assert m.stockouts and m.breakdowns and m.restock_visits and m.malformed > 0 and m.duplicates > 0
    hours = {k.rsplit("|", 1)[1] for k in e[defs.REVENUE_BY_MACHINE_HOUR]}
    assert len(hours) >= 30
    stats = e[defs.TELEMETRY_BY_MACHINE_HOUR]
    assert sum(v for k, v in stats.items() if k.endswith("|out_of_service")) > 0
    assert sum(v for k, v in stats.items() if k.endswith("|faults")) > 0
    assert set(BUCKETED_VIEWS) >= set(defs.OWNER_VIEWS)  # the speed layer retires them at hand-off


@pytest.mark.parametrize("view", defs.OWNER_VIEWS)
def test_each_view_equals_the_recomputation_in_every_architecture(run, view):
    store, expected = run["store"], run["expected"][view]
    assert expected
    assert store.read_view(base.KAPPA, view) == expected
    assert store.read_view(base.VALIDATION, view) == expected
    lam = lambda_views(store, view)
    assert lam["serving"] == expected
    # the hand-off really split the data between the batch view and the speed view
    assert sum(lam["batch"].values()) > 0 and sum(lam["realtime"].values()) > 0


def test_healthy_vs_unhealthy_views_match_the_manifest(run):
    store, m = run["store"], run["manifest"]
    for job_view in (lambda v: store.read_view(base.KAPPA, v), lambda v: lambda_views(store, v)["serving"]):
        assert job_view(base.ITEMS_BY_CATEGORY) == {k: v for k, v in m.items_by_category.items() if v}
        assert job_view(base.REVENUE_BY_CATEGORY) == {k: v for k, v in m.revenue_cents_by_category.items() if v}


def test_answer_reads_the_same_numbers_from_each_architecture(run):
    from vendlab.answer import compute

    out = {
        src: compute(run["store"], run["catalog"], run["manifest"].to_dict(), source=src, top=20)
        for src in ("kappa", "lambda", "validation")
    }
    strip = lambda a: json.dumps({k: v for k, v in a.items() if k != "source"}, sort_keys=True)  # noqa: E731
    assert strip(out["kappa"]) == strip(out["lambda"]) == strip(out["validation"])


AWKWARD = [  # valid events at the edges of the owner's definitions
    '{"event_id":"a1","type":"telemetry","machine_id":"VM-002","event_time":"2026-01-05T06:59:59.999Z",'
    '"temperature":-12.125,"error_code":9,"stock":{"cola":3,"water":2,"cola":4}}',  # product twice: last wins
    '{"event_id":"a2","type":"telemetry","machine_id":"VM-002","event_time":"2026-01-05T07:00:00.000Z",'
    '"temperature":1e300,"error_code":-4,"stock":{}}',  # clamped to 100 C; a negative code is a fault
    '{"event_id":"a3","type":"telemetry","machine_id":"VM-003","event_time":"2026-01-05T07:30:00.500Z",'
    '"temperature":0.125,"error_code":0,"stock":{"not|a|product":7}}',  # any name, "|" inside
    '{"event_id":"a4","type":"sale","machine_id":"VM-001","place":"Gate | 3","product":"cola","category":"unhealthy",'
    '"quantity":1000,"unit_price":10000,"customer_id":"C1","event_time":"2026-01-05T23:59:59.999Z"}',
    '{"event_id":"a5","type":"restock","machine_id":"VM-001","product":"water","quantity":1000,'
    '"event_time":"2026-01-06T00:00:00.000Z"}',
]


def test_spark_and_validation_agree_on_awkward_events(spark):
    from vendlab.jobs import parse
    from vendlab.jobs.views import view_rows
    from vendlab.models.hourly import views_from_lines
    from vendlab.world.catalog import make_catalog

    cat = make_catalog(1)
    raw = spark.createDataFrame([(x,) for x in AWKWARD], "value string").selectExpr(
        "value",
        "0 as log_partition",
        "cast(null as long) as log_offset",
        "timestamp_millis(0) as log_ts",
        "'test' as position",
    )
    rows = view_rows(parse.parse(raw, sorted(cat.machine_ids), sorted(cat.product_names)))
    got: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.view in defs.OWNER_VIEWS:
            got.setdefault(r.view, {})[r.key] = got.get(r.view, {}).get(r.key, 0) + r.value
    py = {v: k for v, k in views_from_lines("\n".join(AWKWARD).encode() + b"\n", cat).items() if v in defs.OWNER_VIEWS}
    assert got == py
    tel = py[defs.TELEMETRY_BY_MACHINE_HOUR]
    assert py[defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR]["VM-002|cola|2026-01-05T06"] == 4
    assert tel["VM-002|2026-01-05T06|temp_centi"] == -1213  # half up, away from zero
    assert tel["VM-002|2026-01-05T07|temp_centi"] == 10_000 and tel["VM-002|2026-01-05T07|faults"] == 1
    assert tel["VM-002|2026-01-05T06|offset_ms"] == 3_599_999 and tel["VM-003|2026-01-05T07|temp_centi"] == 13
    assert py[defs.ITEMS_BY_PLACE_HOUR] == {"Gate | 3|2026-01-05T23": 1000}
