"""``vendlab answer``: the owner's six questions, answered from a data dir's views.

1. Which machines lose money?   revenue - cost of the goods sold - rent and energy, per machine
2. Where do people buy?         items (and revenue) per place, and each place's busiest hour
3. Healthy or unhealthy?        share of items and of revenue
4. What sells out next?         current stock and forecast sell-out time per machine x product
5. Which machine breaks next?   breakdown risk per machine over the next hours
6. What sells?                  items per product

Everything is read from one architecture's views (kappa's real-time view, lambda's serving view
or the validation view: ``--source``), in one snapshot of the store, and the model step
(``vendlab.models``) runs on them at read time. ``--evaluate`` grades the forecasts and the risk
model against the generator's manifest. See docs/questions.md.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from vendlab.catalog import Catalog
from vendlab.models import defs
from vendlab.models import forecast as forecast_model
from vendlab.models import risk as risk_model
from vendlab.models import stock as stock_model
from vendlab.models.hourly import HOUR_MS, Hourly
from vendlab.store import base

COMMANDS = ("answer",)
DAY_MS = 24 * HOUR_MS


def add_commands(sub) -> None:
    p = sub.add_parser("answer", help="the owner's questions answered from a data dir's views (table or JSON)")
    p.add_argument("--data-dir", type=Path, required=True, help="a data dir written by vendlab run / demo")
    p.add_argument("--source", choices=("auto", "kappa", "lambda", "validation"), default="auto",
                   help="whose views to read: kappa's real-time view, lambda's serving view or validation "
                        "(default: the first present, in that order)")
    p.add_argument("--top", type=int, default=5, help="rows per answer (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--evaluate", action="store_true",
                   help="also grade the sell-out forecasts and the breakdown risk against manifest.json")
    p.add_argument("--statsmodels", action="store_true",
                   help="with --evaluate: also grade statsmodels' Holt-Winters forecast (slow)")


def run(args) -> int:
    data_dir: Path = args.data_dir
    path = data_dir / "views.sqlite"
    if not path.is_file():
        print(f"vendlab: no views in {data_dir} (no views.sqlite): run `vendlab run` or `vendlab demo` "
              f"with --data-dir {data_dir} first", file=sys.stderr)
        return 2
    if not (data_dir / "catalog.json").is_file():
        print(f"vendlab: no catalog.json in {data_dir}: it is written by `vendlab run` / `vendlab demo`",
              file=sys.stderr)
        return 2
    if args.top < 1:
        print("vendlab: --top must be >= 1", file=sys.stderr)
        return 2
    from vendlab.store.sqlite import SqliteStore

    catalog = Catalog.load(data_dir / "catalog.json")
    manifest = _read_manifest(data_dir)
    if args.evaluate and not (manifest and "stockouts" in manifest):
        print(f"vendlab: --evaluate needs the generator's manifest.json (with its ground truth) in {data_dir}",
              file=sys.stderr)
        return 2
    store = SqliteStore(path, readonly=True)
    try:
        try:
            result = compute(store, catalog, manifest, source=args.source, top=args.top, evaluate=args.evaluate,
                             statsmodels=args.statsmodels)
        except NoViews as e:
            print(f"vendlab: {e}", file=sys.stderr)
            return 2
    finally:
        store.close()
    result["data_dir"] = str(data_dir)
    print(json.dumps(result) if args.json else format_answers(result))
    return 0


class NoViews(Exception):
    pass


def _read_manifest(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _eur(cents: float) -> float:
    return round(float(cents) / 100, 2)


def volume_factor(catalog: Catalog, manifest: dict | None) -> tuple[float, str]:
    """How many real machines' worth of sales one simulated machine makes (rent scales with it)."""
    econ = (manifest or {}).get("economics") or {}
    if "volume_factor" in econ:
        return float(econ["volume_factor"]), "manifest"
    settings = (manifest or {}).get("settings") or {}
    if "rate" in settings:
        from vendlab.generator import Generator

        g = Generator(catalog, int((manifest or {}).get("seed", 0)), float(settings["rate"]),
                      float(settings.get("time_scale", 60.0)))
        return g.volume_factor, "generator settings"
    return 1.0, "none (no manifest): fixed costs at the reference volume"


def load_hourly(store, catalog: Catalog, source: str = "auto") -> tuple[Hourly, str, callable]:
    """The owner's views of ``source`` as hourly arrays (call inside a store snapshot)."""
    from vendlab.serving import sources_present, view_reader

    present = sources_present(store)
    if source == "auto":
        if not present:
            raise NoViews("the store holds no views yet: run a pipeline (vendlab run / demo) first")
        source = present[0]
    elif source not in present:
        raise NoViews(f"the store has no {source} views (it has: {', '.join(present) or 'none'})")
    read = view_reader(store, source)
    return Hourly.from_views(read, catalog), source, read


def _snapshot(store):
    import contextlib

    snap = getattr(store, "snapshot", None)
    return snap() if snap is not None else contextlib.nullcontext()


def compute(store, catalog: Catalog, manifest: dict | None, source: str = "auto", top: int = 5,
            evaluate: bool = False, statsmodels: bool = False) -> dict:
    with _snapshot(store):
        d, source, read = load_hourly(store, catalog, source)
        items_by_product = read(base.ITEMS_BY_PRODUCT)
        items_by_category = read(base.ITEMS_BY_CATEGORY)
        revenue_by_category = read(base.REVENUE_BY_CATEGORY)
    out = answers(d, catalog, manifest, items_by_product, items_by_category, revenue_by_category, top)
    out["source"] = source
    if evaluate and manifest is not None:
        out["evaluation"] = evaluation(d, catalog, manifest, statsmodels=statsmodels)
    return out


def answers(d: Hourly, catalog: Catalog, manifest: dict | None, items_by_product: dict, items_by_category: dict,
            revenue_by_category: dict, top: int = 5) -> dict:
    machines = {m.machine_id: m for m in catalog.machines}
    cost = np.array([p.cost_cents for p in catalog.products], dtype=float)
    out: dict = {"period": None}
    if d.empty:
        return out | {"least_profitable": [], "losing_machines": 0, "top_places": [], "healthy_vs_unhealthy": {},
                      "next_sellouts": [], "sold_out_now": [], "breakdown_risk": {"machines": []},
                      "items_per_product": dict(sorted(items_by_product.items()))}
    start, now = float(d.hour_ms(0)), d.now_ms()
    days = (now - start) / DAY_MS
    factor, factor_from = volume_factor(catalog, manifest)
    out["period"] = {"from": _iso(start), "to": _iso(now), "hours": round((now - start) / HOUR_MS, 2)}

    # 1. profit per machine over the period (and per day, in the JSON)
    revenue = d.revenue.sum(axis=1)
    goods = (d.items * cost[None, :, None]).sum(axis=(1, 2))
    fixed = np.array([machines[m].fixed_cost_cents_per_day for m in d.machines]) * factor * days
    profit = revenue - goods - fixed
    rows = []
    for i, m in enumerate(d.machines):
        rows.append({"machine_id": m, "place": machines[m].place, "revenue_eur": _eur(revenue[i]),
                     "goods_eur": _eur(goods[i]), "fixed_eur": _eur(fixed[i]), "profit_eur": _eur(profit[i]),
                     "margin_pct": round(100 * profit[i] / revenue[i], 1) if revenue[i] > 0 else None})
    rows.sort(key=lambda r: r["profit_eur"])
    out["least_profitable"] = rows[:top]
    out["profit_eur_by_machine"] = {m: _eur(profit[i]) for i, m in enumerate(d.machines)}
    out["losing_machines"] = int((profit < 0).sum())
    out["machines"] = len(d.machines)
    out["fixed_costs"] = {"volume_factor": round(factor, 3), "from": factor_from,
                          "note": "rent and energy per simulated day = catalog cost per day x volume factor"}
    day = (d.h0 + np.arange(d.H)) // 24
    per_day = {}
    for i, m in enumerate(d.machines):
        per_day[m] = {}
        for dy in np.unique(day):
            sel = day == dy
            span = min(now, (dy + 1) * DAY_MS) - max(start, dy * DAY_MS)
            pc = (d.revenue[i, sel].sum() - (d.items[i][:, sel] * cost[:, None]).sum()
                  - machines[m].fixed_cost_cents_per_day * factor * span / DAY_MS)
            per_day[m][_iso(dy * DAY_MS)[:10]] = _eur(pc)
    out["profit_eur_by_machine_day"] = per_day

    # 2. where people buy
    place_items = d.place_items.sum(axis=1)
    place_rev = {machines[m].place: revenue[i] for i, m in enumerate(d.machines)}
    hod = d.hour_of_day()
    places = []
    for j in np.argsort(-place_items)[:top]:
        by_hod = np.bincount(hod, weights=d.place_items[j], minlength=24)
        places.append({"place": d.places[j], "items": int(place_items[j]),
                       "revenue_eur": _eur(place_rev.get(d.places[j], 0)),
                       "busiest_hour": f"{int(np.argmax(by_hod)):02d}:00" if by_hod.sum() else None})
    out["top_places"] = places
    hours = [defs.hour_text(d.h0 + h) for h in range(d.H)]
    out["items_by_place_hour"] = {d.places[j]: {hours[h]: int(d.place_items[j, h]) for h in range(d.H)}
                                  for j in np.argsort(-place_items)[:top]}

    # 3. healthy vs unhealthy
    it = {c: int(items_by_category.get(c, 0)) for c in ("healthy", "unhealthy")}
    rv = {c: int(revenue_by_category.get(c, 0)) for c in ("healthy", "unhealthy")}
    ti, tr = sum(it.values()), sum(rv.values())
    out["healthy_vs_unhealthy"] = {
        "items": it, "revenue_eur": {c: _eur(v) for c, v in rv.items()},
        "items_share_pct": {c: round(100 * v / ti, 1) if ti else None for c, v in it.items()},
        "revenue_share_pct": {c: round(100 * v / tr, 1) if tr else None for c, v in rv.items()},
    }

    # 4. next sell-outs
    stock, _ = stock_model.estimate(d)
    when, _ = forecast_model.sellout(d, catalog, stock)
    soon, empty = [], []
    for i, m in enumerate(d.machines):
        for j, p in enumerate(d.products):
            if not np.isfinite(stock[i, j]):
                continue
            row = {"machine_id": m, "place": machines[m].place, "product": p, "stock": int(round(stock[i, j]))}
            if row["stock"] <= 0:
                empty.append(row)
            elif np.isfinite(when[i, j]):
                soon.append(row | {"sells_out_at": _iso(when[i, j]), "in_hours": round((when[i, j] - now) / HOUR_MS, 2)})
    soon.sort(key=lambda r: r["in_hours"])
    out["next_sellouts"] = soon[:top]
    out["sellouts_within_horizon"] = len(soon)
    out["sold_out_now"] = empty
    out["forecast"] = {"horizon_h": forecast_model.HORIZON_H,
                       "model": "pooled daily profile per kind of place x smoothed level per machine and product"}

    # 5. breakdown risk
    risk, broken, model = risk_model.current_risk(d)
    ranked = [i for i in np.argsort(-np.nan_to_num(risk, nan=-1.0)) if np.isfinite(risk[i])]
    out["breakdown_risk"] = {
        "lead_h": model.lead_h, "model": model.kind, "trained_on_breakdowns": model.breakdowns_seen,
        "machines": [{"machine_id": d.machines[i], "place": machines[d.machines[i]].place,
                      "risk": round(float(risk[i]), 3)} for i in ranked[:top]],
        "out_of_service_now": [{"machine_id": m, "place": machines[m].place}
                               for i, m in enumerate(d.machines) if broken[i]],
    }

    # 6. items per product
    out["items_per_product"] = dict(sorted(items_by_product.items(), key=lambda kv: -kv[1]))
    return out


def evaluation(d: Hourly, catalog: Catalog, manifest: dict, statsmodels: bool = False) -> dict:
    from vendlab.generator import Generator
    from vendlab.models import evaluate

    oracle = None
    settings = manifest.get("settings") or {}
    if "rate" in settings:
        g = Generator(catalog, int(manifest.get("seed", 0)), float(settings["rate"]),
                      float(settings.get("time_scale", 60.0)), start=settings.get("start", "2026-01-05T06:00:00Z"))
        oracle = g.expected_items_per_hour
    return {"stock": evaluate.evaluate_stock(d, manifest),
            "sellout": evaluate.evaluate_sellout(d, catalog, manifest, statsmodels=statsmodels, oracle=oracle),
            "breakdowns": evaluate.evaluate_risk(d, manifest)}


# -- the table -------------------------------------------------------------------------------
def _table(headers: list[str], rows: list[list], indent: str = "   ") -> str:
    cells = [[str(h) for h in headers]] + [["—" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        lines.append(indent + "  ".join(c.rjust(w) if k and _num(c) else c.ljust(w)
                                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if k == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(s: str) -> bool:
    try:
        float(s.replace(",", "").rstrip("%"))
        return True
    except ValueError:
        return False


def format_answers(a: dict) -> str:
    out = []
    per = a.get("period")
    src = {"kappa": "kappa's real-time view", "lambda": "lambda's serving view (batch + speed)",
           "validation": "the validation view"}.get(a.get("source"), a.get("source"))
    if per is None:
        return f"vendlab answer: {a.get('data_dir', '')}: no sales, restocks or telemetry in {src} yet"
    out.append(f"vendlab answer · {a.get('data_dir', '')} · {src}\n"
               f"simulated time {per['from']} → {per['to']} ({per['hours']} h)")
    fc = a["fixed_costs"]
    out.append(f"\n1. Least profitable machines (revenue - goods - rent & energy over {per['hours']} h; "
               f"fixed costs x{fc['volume_factor']} volume)")
    out.append(_table(["machine", "place", "revenue EUR", "goods EUR", "fixed EUR", "profit EUR", "margin"],
                      [[r["machine_id"], r["place"], f"{r['revenue_eur']:,.2f}", f"{r['goods_eur']:,.2f}",
                        f"{r['fixed_eur']:,.2f}", f"{r['profit_eur']:,.2f}",
                        None if r["margin_pct"] is None else f"{r['margin_pct']}%"] for r in a["least_profitable"]]))
    out.append(f"   {a['losing_machines']} of {a['machines']} machines lose money over this period.")
    out.append("\n2. Top places (items sold)")
    out.append(_table(["place", "items", "revenue EUR", "busiest hour (UTC)"],
                      [[r["place"], f"{r['items']:,}", f"{r['revenue_eur']:,.2f}", r["busiest_hour"]]
                       for r in a["top_places"]]))
    h = a["healthy_vs_unhealthy"]
    out.append("\n3. Healthy vs unhealthy")
    out.append(_table(["category", "items", "share of items", "revenue EUR", "share of revenue"],
                      [[c, f"{h['items'][c]:,}", f"{h['items_share_pct'][c]}%", f"{h['revenue_eur'][c]:,.2f}",
                        f"{h['revenue_share_pct'][c]}%"] for c in ("healthy", "unhealthy")]))
    out.append(f"\n4. Next sell-outs (forecast, stock derived from telemetry + restocks - sales; "
               f"{a['sellouts_within_horizon']} within {a['forecast']['horizon_h']} h)")
    out.append(_table(["machine", "place", "product", "stock", "sells out at", "in"],
                      [[r["machine_id"], r["place"], r["product"], f"{r['stock']:,}", r["sells_out_at"],
                        f"{r['in_hours']} h"] for r in a["next_sellouts"]]))
    if a["sold_out_now"]:
        shown = ", ".join(f"{r['product']} at {r['machine_id']}" for r in a["sold_out_now"][:8])
        more = len(a["sold_out_now"]) - 8
        out.append(f"   sold out now: {shown}" + (f" and {more} more" if more > 0 else ""))
    br = a["breakdown_risk"]
    out.append(f"\n5. Machines most at risk of breaking down within {br['lead_h']} h "
               f"({br['model']}, history holds {br['trained_on_breakdowns']} breakdowns)")
    out.append(_table(["machine", "place", "risk"], [[r["machine_id"], r["place"], f"{r['risk']:.2f}"]
                                                    for r in br["machines"]]))
    if br["out_of_service_now"]:
        out.append("   out of service now: " + ", ".join(f"{r['machine_id']} ({r['place']})"
                                                         for r in br["out_of_service_now"]))
    out.append("\n6. Items sold per product")
    out.append(_table(["product", "items"], [[p, f"{n:,}"] for p, n in a["items_per_product"].items()]))
    if "evaluation" in a:
        out.append("\n" + format_evaluation(a["evaluation"]))
    return "\n".join(out)


def format_evaluation(e: dict) -> str:
    out = ["Quality against the simulator's truth (manifest.json)"]
    st = e["stock"]
    out.append(f"   current stock: mean abs error {st['mae_units']} units ({st['pairs']} machine x product pairs, "
               f"{(st['mae_share_of_capacity'] or 0) * 100:.2f}% of capacity)")
    so = e["sellout"]
    out.append(f"   sell-out time, {so['pairs']} true sell-outs within {so['horizon_h']} h of {so['origins']} "
               f"hourly forecast origins:")
    rows = []
    for name, label in (("model", "model"), ("naive", "naive: last hour's rate"),
                        ("statsmodels", "statsmodels Holt-Winters (top-down)"),
                        ("oracle", "oracle: the simulator's true demand rates")):
        if name in so:
            r = so[name]
            rows.append([label, r["mae_min"], r["median_abs_min"], r["within_60_min"]])
    out.append(_table(["forecast", "MAE min", "median abs min", "share within 60 min"], rows, indent="     "))
    b = e["breakdowns"]
    if "precision" in b:
        out.append(f"   breakdowns, warning lead time {b['lead_h']} h ({b['model']}; trained on the first "
                   f"{b['train_hours']} h, {b['breakdowns_in_training']} breakdowns; tested on the next "
                   f"{b['test_hours']} h, {b['breakdowns']} breakdowns):")
        c = b["baseline_constant"]
        out.append(_table(["risk", "precision", "recall", "average precision", "ROC AUC"],
                          [["model (threshold %.2f)" % b["threshold"], b["precision"], b["recall"],
                            b["average_precision"], b["roc_auc"]],
                           ["constant risk (alarm always)", c["precision"], c["recall"], c["average_precision"],
                            c["roc_auc"]]], indent="     "))
    else:
        out.append(f"   breakdowns: {b.get('note', 'not enough history')}")
    return "\n".join(out)
