"""`vendlab answer`: the six answers as a table and as JSON, from a data dir's views; numbers that
add up, name real machines and places, and agree with the generator's manifest; --evaluate; the
owner's-question panels of the dashboard read the same answers."""

from __future__ import annotations

import json

import pytest

from vendlab.answer import compute
from vendlab.cli import main
from vendlab.store.sqlite import SqliteStore
from vendlab.world.scenario import with_validation_views, write_scenario

SECTIONS = (
    "1. Least profitable machines",
    "2. Top places",
    "3. Healthy vs unhealthy",
    "4. Next sell-outs",
    "5. Machines most at risk",
    "6. Items sold per product",
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    d = tmp_path_factory.mktemp("answer")
    catalog, manifest = write_scenario(d, seed=4, events=100_000, bad_rate=0.005, dup_rate=0.005)
    with_validation_views(d, catalog)
    return d, catalog, manifest


def _plus_hour(iso: str) -> str:
    from datetime import datetime, timedelta

    t = datetime.strptime(iso, "%Y-%m-%dT%H:%MZ") + timedelta(hours=1)
    return t.strftime("%Y-%m-%dT%H:%MZ")


def _answer(capsys, *args) -> tuple[int, str]:
    rc = main(["answer", *args])
    return rc, capsys.readouterr().out


@pytest.mark.slow
def test_json_answers_name_real_machines_and_places_and_add_up(scenario, capsys):
    d, catalog, manifest = scenario
    rc, out = _answer(capsys, "--data-dir", str(d), "--json", "--top", "7")
    assert rc == 0
    a = json.loads(out)
    machines = {m.machine_id: m for m in catalog.machines}
    places = {m.place for m in catalog.machines}
    assert a["source"] == "validation" and a["period"]["hours"] > 90

    # 1. profit = revenue - goods - fixed, least profitable first; some machines lose money
    rows = a["least_profitable"]
    assert len(rows) == 7 and [r["profit_eur"] for r in rows] == sorted(r["profit_eur"] for r in rows)
    for r in rows:
        assert r["machine_id"] in machines and r["place"] == machines[r["machine_id"]].place
        assert abs(r["revenue_eur"] - r["goods_eur"] - r["fixed_eur"] - r["profit_eur"]) < 0.02
    assert 1 <= a["losing_machines"] < len(machines)
    days = a["profit_eur_by_machine_day"][rows[0]["machine_id"]]
    assert abs(sum(days.values()) - rows[0]["profit_eur"]) < 0.1  # the period split into days
    for r in rows:  # and per simulated day: the profit over the window / the days it covers
        assert r["profit_eur_per_day"] == pytest.approx(r["profit_eur"] / a["period"]["days"], abs=0.02)
    assert "150 items a day" in a["fixed_costs"]["explained"]

    # 2. top places: real places, most items first
    top = a["top_places"]
    assert [r["items"] for r in top] == sorted((r["items"] for r in top), reverse=True)
    assert {r["place"] for r in top} <= places and all(r["busiest_hour"] for r in top)

    # 3. healthy vs unhealthy = the manifest's ground truth (validation view of every valid sale)
    h = a["healthy_vs_unhealthy"]
    assert h["items"] == manifest.items_by_category
    assert abs(sum(h["items_share_pct"].values()) - 100) < 0.2

    # 4. next sell-outs: soonest first, after the end of the data, real pairs with stock left, each
    # before (or in the hour of) its machine's next restock visit as the data shows the visits
    so = a["next_sellouts"]
    assert so and [r["in_hours"] for r in so] == sorted(r["in_hours"] for r in so)
    assert a["restocks"]["interval_h"] == 12 and a["restocked_before_sellout"] > 0
    for r in so:
        assert r["machine_id"] in machines and r["product"] in catalog.product_names and r["stock"] > 0
        assert r["sells_out_at"] >= a["period"]["to"] and r["place"] == machines[r["machine_id"]].place
        assert r["next_visit_at"] is not None and r["sells_out_at"] < _plus_hour(r["next_visit_at"])
        assert "h" in r["in"] or "min" in r["in"] or r["in"] == "under a minute"
    # nothing needed a caveat: six days of history, a trained model
    assert a["caveats"] == {q: [] for q in ("profit", "places", "healthy", "sellouts", "breakdowns", "products")}
    assert set(a["basis"]) == set(a["caveats"]) and "12 h" in a["basis"]["sellouts"]

    # 5. breakdown risk: a trained model (a probability), riskiest first, ranked
    br = a["breakdown_risk"]
    assert br["model"] == "logistic regression" and br["trained_on_breakdowns"] >= 10 and br["calibrated"]
    assert [r["rank"] for r in br["machines"]] == list(range(1, len(br["machines"]) + 1))
    risks = [r["risk"] for r in br["machines"]]
    assert risks == sorted(risks, reverse=True) and all(0 <= x <= 1 for x in risks)
    assert {r["machine_id"] for r in br["machines"] + br["out_of_service_now"]} <= set(machines)

    # 6. items per product = the manifest
    assert a["items_per_product"] == {k: v for k, v in manifest.items_by_product.items() if v}


def test_table_answers_the_six_questions(scenario, capsys):
    d, catalog, _ = scenario
    rc, out = _answer(capsys, "--data-dir", str(d))
    assert rc == 0
    pos = [out.index(s) for s in SECTIONS]
    assert pos == sorted(pos)
    assert sum(m.machine_id in out for m in catalog.machines) >= 5
    assert sum(m.place in out for m in catalog.machines) >= 5
    assert "machines lose money" in out and "sells out (UTC)" in out and "Quality" not in out
    assert out.count("rests on:") == 6 and "caveat" not in out
    assert "chance within 6 h" in out and "profit/day EUR" in out


def test_evaluate_grades_forecasts_and_risk_against_the_manifest(scenario, capsys):
    d, _, _ = scenario
    rc, out = _answer(capsys, "--data-dir", str(d), "--json", "--evaluate")
    assert rc == 0
    e = json.loads(out)["evaluation"]
    assert e["stock"]["pairs"] == 200 and e["stock"]["mae_units"] < 2
    so = e["sellout"]
    assert so["pairs"] > 500 and so["model"]["mae_min"] < so["naive"]["mae_min"]
    assert so["oracle"]["mae_min"] <= so["model"]["mae_min"]
    b = e["breakdowns"]
    assert b["lead_h"] == 6 and b["precision"] > b["baseline_constant"]["precision"]
    assert 0 <= b["recall"] <= 1
    # calibration: the probabilities beat a constant one and bins hold what they predict, roughly
    cal = b["calibration"]
    assert b["calibrated"] and cal["brier"] < cal["brier_constant"]
    assert sum(r["rows"] for r in cal["reliability"]) == b["rows"]
    assert abs(cal["mean_risk"] - cal["observed"]) < 0.1
    rc, table = _answer(capsys, "--data-dir", str(d), "--evaluate")
    assert rc == 0 and "Quality against the simulator's truth" in table and "MAE min" in table
    assert "Brier score" in table and "predicted risk" in table


def test_refuses_what_it_cannot_answer(tmp_path, capsys, scenario):
    rc = main(["answer", "--data-dir", str(tmp_path)])
    assert rc == 2 and "no views.sqlite" in capsys.readouterr().err
    (tmp_path / "views.sqlite").touch()
    SqliteStore(tmp_path / "views.sqlite").close()
    rc = main(["answer", "--data-dir", str(tmp_path)])
    assert rc == 2 and "catalog.json" in capsys.readouterr().err
    _, catalog, _ = scenario
    catalog.save(tmp_path / "catalog.json")
    rc = main(["answer", "--data-dir", str(tmp_path)])
    assert rc == 2 and "no views yet" in capsys.readouterr().err
    rc = main(["answer", "--data-dir", str(tmp_path), "--evaluate"])
    assert rc == 2 and "manifest.json" in capsys.readouterr().err
    d, _, _ = scenario
    rc = main(["answer", "--data-dir", str(d), "--source", "kappa"])
    assert rc == 2 and "no kappa views" in capsys.readouterr().err


def test_dashboard_panels_show_the_answers(scenario):
    from vendlab.dashboard import panels

    d, catalog, manifest = scenario
    store = SqliteStore(d / "views.sqlite", readonly=True)
    try:
        by_id = {p["id"]: p for p in panels.panels_payload(store, manifest.to_dict())}
        expected = compute(store, catalog, manifest.to_dict(), top=10)
    finally:
        store.close()
    for pid in ("profit_per_machine", "sales_per_place_hour", "next_sellouts", "breakdown_risk"):
        assert by_id[pid]["error"] is None and by_id[pid]["data"], pid
    profit = by_id["profit_per_machine"]["data"]
    (series,) = profit.values()
    assert set(series) == {m.machine_id for m in catalog.machines}
    worst = expected["least_profitable"][0]
    assert series[worst["machine_id"]] == pytest.approx(worst["profit_eur_per_day"] * 100, abs=1)
    assert by_id["profit_per_machine"]["basis"] == expected["basis"]["profit"]
    table = by_id["next_sellouts"]["data"]
    assert table["rows"][0][0] == expected["next_sellouts"][0]["machine_id"]
    assert table["rows"][0][5] == expected["next_sellouts"][0]["in"]
    places = by_id["sales_per_place_hour"]["data"]
    assert set(places) <= {m.place for m in catalog.machines} and len(places) >= 3
    risk = by_id["breakdown_risk"]["data"]
    top = expected["breakdown_risk"]["machines"][0]
    assert risk["rows"][0][:2] == [1, top["machine_id"]] and risk["columns"][-1] == "chance within 6 h"
    assert risk["rows"][0][3] == f"{100 * top['risk']:.0f} %"


# -- answers on too little history say so, and what would answer them -------------------------
@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """About 40 simulated minutes at the generator's own 60x: what a default 40-second run covers."""
    d = tmp_path_factory.mktemp("short")
    catalog, manifest = write_scenario(d, seed=4, events=20_000, rate=10_000, time_scale=60.0)
    with_validation_views(d, catalog)
    return d, catalog, manifest


def test_a_short_run_carries_caveats_and_says_what_would_answer(short, capsys):
    d, _, _ = short
    rc, out = _answer(capsys, "--data-dir", str(d), "--json")
    assert rc == 0
    a = json.loads(out)
    assert a["period"]["hours"] < 1
    cav = a["caveats"]
    for q in ("profit", "places", "sellouts", "breakdowns"):
        assert cav[q], q
        assert any("--time-scale" in c for c in cav[q]), q  # what would answer it
    assert any("too little history to forecast" in c for c in cav["sellouts"])
    assert any("restock schedule is not known" in c for c in cav["sellouts"])
    assert cav["products"] == []  # exact counts need no history
    br = a["breakdown_risk"]
    assert br["model"] == "heuristic" and br["calibrated"] is False and "not a probability" in br["meaning"]
    assert any("a rank, not a probability" in c for c in cav["breakdowns"])
    rc, table = _answer(capsys, "--data-dir", str(d))
    assert rc == 0 and "score (not a probability)" in table and "chance within" not in table
    assert table.count("! caveat:") >= 5 and "history holds 0 breakdowns" in table


def test_the_answer_prints_no_warning(short, capfd):
    d, _, _ = short
    assert main(["answer", "--data-dir", str(d)]) == 0
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "ms,text",
    [
        (0, "under a minute"),
        (20_000, "under a minute"),
        (4 * 60_000, "4 min"),
        (65 * 60_000, "1 h 05 min"),
        (3 * 3_600_000, "3 h"),
        (51 * 3_600_000, "2 d 3 h"),
    ],
)
def test_durations_read_as_people_say_them(ms, text):
    from vendlab.answer import human_duration

    assert human_duration(ms) == text
