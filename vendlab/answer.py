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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from vendlab.models import defs
from vendlab.models import forecast as forecast_model
from vendlab.models import risk as risk_model
from vendlab.models import stock as stock_model
from vendlab.models.hourly import HOUR_MS, Hourly
from vendlab.store import base
from vendlab.world.catalog import REFERENCE_ITEMS_PER_MACHINE_DAY, Catalog

COMMANDS = ("answer",)
DAY_MS = 24 * HOUR_MS


def add_commands(sub) -> None:
    from vendlab import architectures
    from vendlab.serving import sources

    p = sub.add_parser("answer", help="the owner's questions answered from a data dir's views (table or JSON)")
    p.add_argument("--data-dir", type=Path, required=True, help="a data dir written by vendlab run / demo")
    p.add_argument(
        "--source",
        choices=("auto", *sources()),
        default="auto",
        help="whose views to read: "
        + ", ".join(a.view_title for a in architectures.ARCHITECTURES)
        + " or validation (default: the first present, in that order)",
    )
    p.add_argument("--top", type=int, default=5, help="rows per answer (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="also grade the sell-out forecasts and the breakdown risk against manifest.json",
    )
    p.add_argument(
        "--statsmodels",
        action="store_true",
        help="with --evaluate: also grade statsmodels' Holt-Winters forecast (slow)",
    )


def run(args) -> int:
    data_dir: Path = args.data_dir
    path = data_dir / "views.sqlite"
    if not path.is_file():
        print(
            f"vendlab: no views in {data_dir} (no views.sqlite): run `vendlab run` or `vendlab demo` "
            f"with --data-dir {data_dir} first",
            file=sys.stderr,
        )
        return 2
    if not (data_dir / "catalog.json").is_file():
        print(
            f"vendlab: no catalog.json in {data_dir}: it is written by `vendlab run` / `vendlab demo`", file=sys.stderr
        )
        return 2
    if args.top < 1:
        print("vendlab: --top must be >= 1", file=sys.stderr)
        return 2
    from vendlab.store.sqlite import SqliteStore

    catalog = Catalog.load(data_dir / "catalog.json")
    manifest = _read_manifest(data_dir)
    if args.evaluate and not (manifest and "stockouts" in manifest):
        print(
            f"vendlab: --evaluate needs the generator's manifest.json (with its ground truth) in {data_dir}",
            file=sys.stderr,
        )
        return 2
    store = SqliteStore(path, readonly=True)
    try:
        try:
            result = compute(
                store,
                catalog,
                manifest,
                source=args.source,
                top=args.top,
                evaluate=args.evaluate,
                statsmodels=args.statsmodels,
            )
        except NoViews as e:
            print(f"vendlab: {e}", file=sys.stderr)
            return 2
    finally:
        store.close()
    result["data_dir"] = str(data_dir)
    return write_stdout(json.dumps(result) if args.json else format_answers(result))


def write_stdout(text: str) -> int:
    """Print ``text``; a reader that closed the pipe early (``| head``) is not an error: exit 0, no traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        import os

        # Python would report the broken pipe again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


class NoViews(Exception):
    pass


def _read_manifest(data_dir: Path) -> dict | None:
    try:
        return json.loads((data_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def _eur(cents: float) -> float:
    return round(float(cents) / 100, 2)


def volume_factor(catalog: Catalog, manifest: dict | None) -> tuple[float, str]:
    """How many real machines' worth of sales one simulated machine makes (rent scales with it)."""
    econ = (manifest or {}).get("economics") or {}
    if "volume_factor" in econ:
        return float(econ["volume_factor"]), "manifest"
    settings = (manifest or {}).get("settings") or {}
    if "rate" in settings:
        from vendlab.world.generator import Generator

        g = Generator(
            catalog,
            int((manifest or {}).get("seed", 0)),
            float(settings["rate"]),
            float(settings.get("time_scale", 60.0)),
        )
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


def compute(
    store,
    catalog: Catalog,
    manifest: dict | None,
    source: str = "auto",
    top: int = 5,
    evaluate: bool = False,
    statsmodels: bool = False,
) -> dict:
    with _snapshot(store):
        d, source, read = load_hourly(store, catalog, source)
        items_by_product = read(base.ITEMS_BY_PRODUCT)
        items_by_category = read(base.ITEMS_BY_CATEGORY)
        revenue_by_category = read(base.REVENUE_BY_CATEGORY)
    import warnings

    # numpy's RuntimeWarnings ("Mean of empty slice", "All-NaN slice") on hours or pairs without data are
    # expected here: the models treat NaN as "unknown" on purpose, and the caveats say what is missing.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        out = answers(d, catalog, manifest, items_by_product, items_by_category, revenue_by_category, top)
        out["source"] = source
        if evaluate and manifest is not None:
            out["evaluation"] = evaluation(d, catalog, manifest, statsmodels=statsmodels)
    return out


QUESTIONS = ("profit", "places", "healthy", "sellouts", "breakdowns", "products")
# How much simulated history each answer needs before it can be trusted (see _caveats).
FULL_DAY_H = 24.0
FORECAST_MIN_H = 3  # complete hours: the stock estimate and the forecast's level need a few before "now"
RISK_RUN_H = 48  # simulated hours in which a fleet of 20 usually has the breakdowns a model learns from


def human_duration(ms: float) -> str:
    """A span of simulated time as a person reads it: "under a minute", "4 min", "1 h 05 min", "2 d 3 h"."""
    if not np.isfinite(ms):
        return "—"
    minutes = int(round(max(ms, 0.0) / 60_000))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    h, mm = divmod(minutes, 60)
    if h < 48:
        return f"{h} h {mm:02d} min" if mm else f"{h} h"
    d, hh = divmod(h, 24)
    return f"{d} d {hh} h" if hh else f"{d} d"


def clock(ms: float, now_ms: float) -> str:
    """A simulated time as "18:04" on the day of "now", "Tue 06:00" on another day (UTC)."""
    t = datetime.fromtimestamp(ms / 1000, tz=UTC)
    same_day = int(ms // DAY_MS) == int(now_ms // DAY_MS)
    return t.strftime("%H:%M" if same_day else "%a %H:%M")


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _more_history(need_h: float, have_h: float, manifest: dict | None) -> str:
    """What would give ``need_h`` simulated hours: a longer run, or a faster simulated clock.

    Simulated time = run duration x time scale while the generator keeps up with --rate (on a loaded
    machine it falls behind and covers less), so both suggestions are stated for a run that keeps up."""
    settings = (manifest or {}).get("settings") or {}
    ts = float(settings.get("time_scale") or 0)
    one_minute = int(np.ceil(need_h * 60))  # the --time-scale that covers need_h in a 60-second run
    if ts <= 0:
        return f"to answer it, cover at least {need_h:g} simulated hours, e.g. --duration 60 --time-scale {one_minute}"
    return (
        f"to answer it, cover {need_h:g} simulated h (this data covers {_n(have_h)} h): --duration "
        f"{int(np.ceil(need_h * 3600 / ts))} at --time-scale {ts:g}, or --duration 60 --time-scale {one_minute}"
    )


def _n(x: float) -> str:
    """A number for a sentence: 3 significant digits, thousands separated, never in e-notation."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def answers(
    d: Hourly,
    catalog: Catalog,
    manifest: dict | None,
    items_by_product: dict,
    items_by_category: dict,
    revenue_by_category: dict,
    top: int = 5,
) -> dict:
    machines = {m.machine_id: m for m in catalog.machines}
    cost = np.array([p.cost_cents for p in catalog.products], dtype=float)
    out: dict = {"period": None}
    if d.empty:
        none = "no sales, restocks or telemetry in the views yet"
        return out | {
            "least_profitable": [],
            "losing_machines": 0,
            "top_places": [],
            "healthy_vs_unhealthy": {},
            "next_sellouts": [],
            "sold_out_now": [],
            "breakdown_risk": {"machines": []},
            "items_per_product": dict(sorted(items_by_product.items())),
            "basis": {q: none for q in QUESTIONS},
            "caveats": {q: [none] for q in QUESTIONS},
        }
    start, now = float(d.hour_ms(0)), d.now_ms()
    hours = (now - start) / HOUR_MS
    days = (now - start) / DAY_MS
    complete = d.H - 1 if d.partial_last else d.H
    factor, factor_from = volume_factor(catalog, manifest)
    out["period"] = {
        "from": _iso(start),
        "to": _iso(now),
        "hours": round(hours, 2),
        "days": round(days, 3),
        "complete_hours": int(complete),
    }
    basis: dict[str, str] = {}
    caveats: dict[str, list[str]] = {q: [] for q in QUESTIONS}
    window = f"{_iso(start)} → {_iso(now)} ({_n(hours)} simulated h)"
    part_of_day = hours < FULL_DAY_H
    hours_seen = sorted({int(h) for h in d.hour_of_day()})
    seen_text = (
        f"{hours_seen[0]:02d}:00-{(hours_seen[-1] + 1) % 24:02d}:00 UTC"
        if hours_seen == list(range(hours_seen[0], hours_seen[-1] + 1))
        else f"{len(hours_seen)} hours of the day"
    )

    # 1. profit per machine over the period, and per simulated day
    revenue = d.revenue.sum(axis=1)
    goods = (d.items * cost[None, :, None]).sum(axis=(1, 2))
    fixed_day = np.array([machines[m].fixed_cost_cents_per_day for m in d.machines]) * factor
    fixed = fixed_day * days
    profit = revenue - goods - fixed
    rows = []
    for i, m in enumerate(d.machines):
        rows.append(
            {
                "machine_id": m,
                "place": machines[m].place,
                "revenue_eur": _eur(revenue[i]),
                "goods_eur": _eur(goods[i]),
                "fixed_eur": _eur(fixed[i]),
                "profit_eur": _eur(profit[i]),
                "profit_eur_per_day": _eur(profit[i] / days) if days > 0 else None,
                "fixed_eur_per_day": _eur(fixed_day[i]),
                "margin_pct": round(100 * profit[i] / revenue[i], 1) if revenue[i] > 0 else None,
            }
        )
    rows.sort(key=lambda r: r["profit_eur"])
    out["least_profitable"] = rows[:top]
    out["profit_eur_by_machine"] = {m: _eur(profit[i]) for i, m in enumerate(d.machines)}
    out["profit_eur_per_day_by_machine"] = (
        {m: _eur(profit[i] / days) for i, m in enumerate(d.machines)} if days > 0 else {}
    )
    out["losing_machines"] = int((profit < 0).sum())
    out["machines"] = len(d.machines)
    ref = REFERENCE_ITEMS_PER_MACHINE_DAY
    out["fixed_costs"] = {
        "volume_factor": round(factor, 3),
        "from": factor_from,
        "note": "rent and energy per simulated day = catalog cost per day x volume factor",
        "explained": (
            f"Rent and energy are the catalog's daily costs for a machine selling {ref} items a day, "
            f"multiplied by {_n(factor)} because this run's machines sell {_n(factor)} times that "
            f"(the event rate is a throughput knob, so costs scale with the volume)"
            if factor_from != "none (no manifest): fixed costs at the reference volume"
            else f"Rent and energy are the catalog's daily costs for a machine selling {ref} items a day "
            f"(no manifest.json: the run's volume is unknown, so they are not scaled)"
        ),
    }
    day = (d.h0 + np.arange(d.H)) // 24
    per_day = {}
    for i, m in enumerate(d.machines):
        per_day[m] = {}
        for dy in np.unique(day):
            sel = day == dy
            span = min(now, (dy + 1) * DAY_MS) - max(start, dy * DAY_MS)
            pc = (
                d.revenue[i, sel].sum()
                - (d.items[i][:, sel] * cost[:, None]).sum()
                - machines[m].fixed_cost_cents_per_day * factor * span / DAY_MS
            )
            per_day[m][_iso(dy * DAY_MS)[:10]] = _eur(pc)
    out["profit_eur_by_machine_day"] = per_day
    basis["profit"] = (
        f"revenue and cost of goods of every valid sale in {window}; rent and energy for "
        f"{_n(days)} simulated days at the catalog's daily cost x volume factor {_n(factor)}"
    )
    if part_of_day:
        caveats["profit"].append(
            f"the data covers {_n(hours)} h of one day ({seen_text}): sales follow the daily rhythm of each place "
            f"while rent is charged evenly, so machines whose busy hours were not seen look unprofitable; "
            f"compare machines over whole days; {_more_history(FULL_DAY_H, hours, manifest)}"
        )

    # 2. where people buy
    place_items = d.place_items.sum(axis=1)
    place_rev = {machines[m].place: revenue[i] for i, m in enumerate(d.machines)}
    hod = d.hour_of_day()
    places = []
    for j in np.argsort(-place_items)[:top]:
        by_hod = np.bincount(hod, weights=d.place_items[j], minlength=24)
        places.append(
            {
                "place": d.places[j],
                "items": int(place_items[j]),
                "revenue_eur": _eur(place_rev.get(d.places[j], 0)),
                "busiest_hour": f"{int(np.argmax(by_hod)):02d}:00" if by_hod.sum() else None,
            }
        )
    out["top_places"] = places
    hours_txt = [defs.hour_text(d.h0 + h) for h in range(d.H)]
    out["items_by_place_hour"] = {
        d.places[j]: {hours_txt[h]: int(d.place_items[j, h]) for h in range(d.H)}
        for j in np.argsort(-place_items)[:top]
    }
    basis["places"] = f"items of every valid sale per place and simulated hour, {window}"
    if part_of_day:
        caveats["places"].append(
            f"only {len(hours_seen)} of the 24 hours of the day were seen ({seen_text}): the busiest hour is the "
            f"busiest of those; {_more_history(FULL_DAY_H, hours, manifest)}"
        )

    # 3. healthy vs unhealthy
    it = {c: int(items_by_category.get(c, 0)) for c in ("healthy", "unhealthy")}
    rv = {c: int(revenue_by_category.get(c, 0)) for c in ("healthy", "unhealthy")}
    ti, tr = sum(it.values()), sum(rv.values())
    out["healthy_vs_unhealthy"] = {
        "items": it,
        "revenue_eur": {c: _eur(v) for c, v in rv.items()},
        "items_share_pct": {c: round(100 * v / ti, 1) if ti else None for c, v in it.items()},
        "revenue_share_pct": {c: round(100 * v / tr, 1) if tr else None for c, v in rv.items()},
    }
    basis["healthy"] = f"every valid sale, exact counts, {window}"
    if part_of_day:
        caveats["healthy"].append(
            f"shares of the hours seen ({seen_text}): gyms, hospitals and universities sell more healthy snacks "
            f"and have their own busy hours, so the share over a whole day can differ"
        )

    # 4. next sell-outs, with the restock visits the data shows
    stock, _ = stock_model.estimate(d)
    when, _ = forecast_model.sellout(d, catalog, stock)
    sched = forecast_model.restock_schedule(d)
    next_visit = sched["next_ms"]
    soon, empty, visit_first = [], [], 0
    for i, m in enumerate(d.machines):
        nv = next_visit[i]
        # hour resolution: the visit is expected within [nv, nv + 1 h)
        visit = (
            {
                "next_visit_at": _iso(nv),
                "next_visit": f"{clock(nv, now)}-{clock(nv + HOUR_MS, now)}",
                "next_visit_in": "due now" if nv <= now else human_duration(nv - now),
                "next_visit_in_hours": round(max(nv - now, 0) / HOUR_MS, 2),
            }
            if np.isfinite(nv)
            else {"next_visit_at": None, "next_visit": None, "next_visit_in": None, "next_visit_in_hours": None}
        )
        for j, p in enumerate(d.products):
            if not np.isfinite(stock[i, j]):
                continue
            row = {"machine_id": m, "place": machines[m].place, "product": p, "stock": int(round(stock[i, j]))}
            if row["stock"] <= 0:
                empty.append(row | visit)
            elif np.isfinite(when[i, j]):
                if np.isfinite(nv) and when[i, j] >= nv + HOUR_MS:
                    visit_first += 1  # the operator comes before it runs out
                    continue
                soon.append(
                    row
                    | {
                        "sells_out_at": _iso(when[i, j]),
                        "in_hours": round((when[i, j] - now) / HOUR_MS, 2),
                        "in": human_duration(when[i, j] - now),
                        "at": clock(when[i, j], now),
                    }
                    | visit
                )
    soon.sort(key=lambda r: r["in_hours"])
    out["next_sellouts"] = soon[:top]
    out["sellouts_within_horizon"] = len(soon)
    out["restocked_before_sellout"] = visit_first
    out["sold_out_now"] = empty
    interval = sched["interval_h"]
    out["restocks"] = {
        "visits_seen": sched["visits_seen"],
        "interval_h": None if not np.isfinite(interval) else round(interval, 1),
        "machines_with_next_visit": int(np.isfinite(next_visit).sum()),
    }
    unc = forecast_model.uncensored(d)[:, :, :complete]
    out["forecast"] = {
        "horizon_h": forecast_model.HORIZON_H,
        "model": "pooled daily profile per kind of place x smoothed level per machine and product",
        "history_h": int(complete),
        "pair_hours_used": int(unc.sum()),
    }
    visits_txt = (
        f"restock visits every {interval:g} h as the data shows them ({_plural(sched['visits_seen'], 'visit')})"
        if np.isfinite(interval)
        else f"no restock schedule yet ({_plural(sched['visits_seen'], 'visit')} seen, no machine twice)"
    )
    basis["sellouts"] = (
        f"stock from the latest telemetry + restocks - sales since; demand from {complete} complete "
        f"simulated hours of sales ({int(unc.sum()):,} machine x product hours in stock and in "
        f"service); {visits_txt}; horizon {forecast_model.HORIZON_H} h"
    )
    if complete < FORECAST_MIN_H:
        caveats["sellouts"].append(
            f"too little history to forecast: {complete} complete simulated hours (the forecast needs "
            f"{FORECAST_MIN_H}); an empty table does not mean nothing sells out; {_more_history(FULL_DAY_H, hours, manifest)}"
        )
    elif hours < FULL_DAY_H:
        caveats["sellouts"].append(
            f"the daily rhythm is learnt from {complete} h only ({seen_text}): demand in the hours not seen yet is "
            f"assumed average; {_more_history(FULL_DAY_H, hours, manifest)}"
        )
    if not np.isfinite(interval):
        caveats["sellouts"].append(
            "the restock schedule is not known yet (it needs two visits of one machine, about 13 simulated hours "
            f"with visits every 12 h): each forecast assumes nobody comes; {_more_history(FULL_DAY_H, hours, manifest)}"
        )

    # 5. breakdown risk
    risk, broken, model = risk_model.current_risk(d)
    ranked = [i for i in np.argsort(-np.nan_to_num(risk, nan=-1.0)) if np.isfinite(risk[i])]
    out["breakdown_risk"] = {
        "lead_h": model.lead_h,
        "model": model.kind,
        "trained_on_breakdowns": model.breakdowns_seen,
        "calibrated": model.calibrated,
        "meaning": (
            f"probability that the machine goes out of service within {model.lead_h} h"
            if model.calibrated
            else "a rank score (warm and faulty machines first), not a probability"
        ),
        "machines": [
            {
                "machine_id": d.machines[i],
                "place": machines[d.machines[i]].place,
                "risk": round(float(risk[i]), 3),
                "rank": k + 1,
            }
            for k, i in enumerate(ranked[:top])
        ],
        "out_of_service_now": [
            {"machine_id": m, "place": machines[m].place} for i, m in enumerate(d.machines) if broken[i]
        ],
    }
    basis["breakdowns"] = (
        f"{model.kind} on {complete} complete simulated hours of telemetry (temperature, fault "
        f"codes) holding {_plural(model.breakdowns_seen, 'breakdown')}; lead time {model.lead_h} h"
    )
    if not model.calibrated:
        caveats["breakdowns"].append(
            f"{_plural(model.breakdowns_seen, 'breakdown')} in the history (a model needs {risk_model.MIN_BREAKDOWNS}): "
            f"the scores come from a fixed rule (warm and faulty first) and are a rank, not a probability; "
            f"{_more_history(RISK_RUN_H, hours, manifest)}"
        )
    elif model.breakdowns_seen < 10:
        caveats["breakdowns"].append(
            f"trained on only {_plural(model.breakdowns_seen, 'breakdown')}: the probabilities are rough; "
            f"{_more_history(RISK_RUN_H, hours, manifest)}"
        )

    # 6. items per product
    out["items_per_product"] = dict(sorted(items_by_product.items(), key=lambda kv: -kv[1]))
    basis["products"] = f"every valid sale (distinct event ids), exact, {window}"
    out["basis"] = basis
    out["caveats"] = caveats
    return out


def evaluation(d: Hourly, catalog: Catalog, manifest: dict, statsmodels: bool = False) -> dict:
    from vendlab.models import evaluate
    from vendlab.world.generator import Generator

    oracle = None
    settings = manifest.get("settings") or {}
    if "rate" in settings:
        g = Generator(
            catalog,
            int(manifest.get("seed", 0)),
            float(settings["rate"]),
            float(settings.get("time_scale", 60.0)),
            start=settings.get("start", "2026-01-05T06:00:00Z"),
        )
        oracle = g.expected_items_per_hour
    return {
        "stock": evaluate.evaluate_stock(d, manifest),
        "sellout": evaluate.evaluate_sellout(d, catalog, manifest, statsmodels=statsmodels, oracle=oracle),
        "breakdowns": evaluate.evaluate_risk(d, manifest),
    }


# -- the table -------------------------------------------------------------------------------
def _table(headers: list[str], rows: list[list], indent: str = "   ") -> str:
    cells = [[str(h) for h in headers]] + [["—" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        lines.append(
            indent
            + "  ".join(c.rjust(w) if k and _num(c) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        )
        if k == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(s: str) -> bool:
    try:
        float(s.replace(",", "").rstrip("%"))
        return True
    except ValueError:
        return False


def _notes(a: dict, q: str) -> list[str]:
    """The "rests on" line and the caveats of question ``q``, wrapped and indented."""
    import textwrap

    lines = []
    basis = (a.get("basis") or {}).get(q)
    if basis:
        lines += textwrap.wrap(f"rests on: {basis}", 110, initial_indent="   ", subsequent_indent="     ")
    for c in (a.get("caveats") or {}).get(q, []):
        lines += textwrap.wrap(f"caveat: {c}", 110, initial_indent="   ! ", subsequent_indent="     ")
    return lines


def format_answers(a: dict) -> str:
    import textwrap

    from vendlab import architectures

    out = []
    per = a.get("period")
    src = {
        **{
            arch.name: arch.view_title + (f" ({arch.view_detail})" if arch.view_detail else "")
            for arch in architectures.ARCHITECTURES
        },
        "validation": "the validation view",
    }.get(a.get("source"), a.get("source"))
    if per is None:
        return f"vendlab answer: {a.get('data_dir', '')}: no sales, restocks or telemetry in {src} yet"
    out.append(
        f"vendlab answer · {a.get('data_dir', '')} · {src}\n"
        f"simulated time {per['from']} → {per['to']} ({per['hours']:g} h)"
    )
    fc = a["fixed_costs"]
    out.append(
        f"\n1. Least profitable machines (revenue - goods - rent & energy over {per['hours']:g} h, and per "
        f"simulated day)"
    )
    out.extend(_notes(a, "profit"))
    out.append(
        _table(
            ["machine", "place", "revenue EUR", "goods EUR", "fixed EUR", "profit EUR", "profit/day EUR", "margin"],
            [
                [
                    r["machine_id"],
                    r["place"],
                    f"{r['revenue_eur']:,.2f}",
                    f"{r['goods_eur']:,.2f}",
                    f"{r['fixed_eur']:,.2f}",
                    f"{r['profit_eur']:,.2f}",
                    None if r.get("profit_eur_per_day") is None else f"{r['profit_eur_per_day']:,.2f}",
                    None if r["margin_pct"] is None else f"{r['margin_pct']}%",
                ]
                for r in a["least_profitable"]
            ],
        )
    )
    out.append(f"   {a['losing_machines']} of {a['machines']} machines lose money over this period.")
    out.extend(textwrap.wrap(fc["explained"] + ".", 110, initial_indent="   ", subsequent_indent="   "))
    out.append("\n2. Top places (items sold)")
    out.extend(_notes(a, "places"))
    out.append(
        _table(
            ["place", "items", "revenue EUR", "busiest hour (UTC)"],
            [[r["place"], f"{r['items']:,}", f"{r['revenue_eur']:,.2f}", r["busiest_hour"]] for r in a["top_places"]],
        )
    )
    h = a["healthy_vs_unhealthy"]
    out.append("\n3. Healthy vs unhealthy")
    out.extend(_notes(a, "healthy"))
    out.append(
        _table(
            ["category", "items", "share of items", "revenue EUR", "share of revenue"],
            [
                [
                    c,
                    f"{h['items'][c]:,}",
                    f"{h['items_share_pct'][c]}%",
                    f"{h['revenue_eur'][c]:,.2f}",
                    f"{h['revenue_share_pct'][c]}%",
                ]
                for c in ("healthy", "unhealthy")
            ],
        )
    )
    out.append(
        f"\n4. Next sell-outs before the next restock visit (forecast; {a['sellouts_within_horizon']} within "
        f"{a['forecast']['horizon_h']} h, {a.get('restocked_before_sellout', 0)} more restocked first)"
    )
    out.extend(_notes(a, "sellouts"))
    if a["next_sellouts"]:
        out.append(
            _table(
                ["machine", "place", "product", "stock", "sells out (UTC)", "in", "next visit (UTC)"],
                [
                    [
                        r["machine_id"],
                        r["place"],
                        r["product"],
                        f"{r['stock']:,}",
                        r["at"],
                        r["in"],
                        r.get("next_visit") or "unknown",
                    ]
                    for r in a["next_sellouts"]
                ],
            )
        )
    else:
        out.append("   no product is forecast to sell out before its next restock visit")
    if a["sold_out_now"]:
        by_machine: dict[str, list[dict]] = {}
        for r in a["sold_out_now"]:
            by_machine.setdefault(r["machine_id"], []).append(r)
        parts = []
        for m, rs in by_machine.items():
            visit = f"next visit {rs[0]['next_visit']}" if rs[0].get("next_visit") else "next visit unknown"
            parts.append(f"{m} {len(rs)} ({visit})")
        shown = "; ".join(parts[:6]) + (f"; and {len(parts) - 6} more machines" if len(parts) > 6 else "")
        out.extend(
            textwrap.wrap(
                f"sold out now: {_plural(len(a['sold_out_now']), 'product')} at "
                f"{_plural(len(by_machine), 'machine')}: {shown}",
                110,
                initial_indent="   ",
                subsequent_indent="     ",
            )
        )
    br = a["breakdown_risk"]
    out.append(
        f"\n5. Machines most at risk of breaking down within {br['lead_h']} h "
        f"({br['model']}, history holds {_plural(br['trained_on_breakdowns'], 'breakdown')})"
    )
    out.extend(_notes(a, "breakdowns"))
    if br.get("calibrated", True):
        out.append(
            _table(
                ["rank", "machine", "place", f"chance within {br['lead_h']} h"],
                [
                    [r.get("rank", k + 1), r["machine_id"], r["place"], f"{100 * r['risk']:.0f}%"]
                    for k, r in enumerate(br["machines"])
                ],
            )
        )
    else:
        out.append(
            _table(
                ["rank", "machine", "place", "score (not a probability)"],
                [
                    [r.get("rank", k + 1), r["machine_id"], r["place"], f"{r['risk']:.2f}"]
                    for k, r in enumerate(br["machines"])
                ],
            )
        )
    if br["out_of_service_now"]:
        out.append(
            "   out of service now: " + ", ".join(f"{r['machine_id']} ({r['place']})" for r in br["out_of_service_now"])
        )
    out.append("\n6. Items sold per product")
    out.extend(_notes(a, "products"))
    out.append(_table(["product", "items"], [[p, f"{n:,}"] for p, n in a["items_per_product"].items()]))
    if "evaluation" in a:
        out.append("\n" + format_evaluation(a["evaluation"]))
    return "\n".join(out)


def format_evaluation(e: dict) -> str:
    out = ["Quality against the simulator's truth (manifest.json)"]
    st = e["stock"]
    out.append(
        f"   current stock: mean abs error {st['mae_units']} units ({st['pairs']} machine x product pairs, "
        f"{(st['mae_share_of_capacity'] or 0) * 100:.2f}% of capacity)"
    )
    so = e["sellout"]
    out.append(
        f"   sell-out time, {so['pairs']} true sell-outs within {so['horizon_h']} h of {so['origins']} "
        f"hourly forecast origins:"
    )
    rows = []
    for name, label in (
        ("model", "model"),
        ("naive", "naive: last hour's rate"),
        ("statsmodels", "statsmodels Holt-Winters (top-down)"),
        ("oracle", "oracle: the simulator's true demand rates"),
    ):
        if name in so:
            r = so[name]
            rows.append([label, r["mae_min"], r["median_abs_min"], r["within_60_min"]])
    out.append(_table(["forecast", "MAE min", "median abs min", "share within 60 min"], rows, indent="     "))
    b = e["breakdowns"]
    if "precision" in b:
        out.append(
            f"   breakdowns, warning lead time {b['lead_h']} h ({b['model']}; trained on the first "
            f"{b['train_hours']} h, {b['breakdowns_in_training']} breakdowns; tested on the next "
            f"{b['test_hours']} h, {b['breakdowns']} breakdowns):"
        )
        c = b["baseline_constant"]
        out.append(
            _table(
                ["risk", "precision", "recall", "average precision", "ROC AUC"],
                [
                    [
                        f"model (threshold {b['threshold']:.2f})",
                        b["precision"],
                        b["recall"],
                        b["average_precision"],
                        b["roc_auc"],
                    ],
                    ["constant risk (alarm always)", c["precision"], c["recall"], c["average_precision"], c["roc_auc"]],
                ],
                indent="     ",
            )
        )
        cal = b.get("calibration")
        if cal:
            out.append(
                f"   calibration on the same test rows ({'a probability' if b.get('calibrated') else 'a score, not a probability'}): "
                f"Brier score {cal['brier']} (constant risk {cal['constant_risk']}: {cal['brier_constant']}; "
                f"lower is better); mean risk {cal['mean_risk']}, observed rate {cal['observed']}"
            )
            out.append(
                _table(
                    ["predicted risk", "rows", "mean predicted", "observed"],
                    [
                        [f"{r['from']:.2f}-{r['to']:.2f}", r["rows"], r["mean_risk"], r["observed"]]
                        for r in cal["reliability"]
                    ],
                    indent="     ",
                )
            )
    else:
        out.append(f"   breakdowns: {b.get('note', 'not enough history')}")
    return "\n".join(out)
