"""The owner's-question panels (``/api/panels``): one small function each.

To add a panel, write a function that takes a ``Sources`` and returns its data, and decorate
it with ``@panel(...)``; the page draws it on its next refresh, in the "Owner's questions"
section, in the order of this file. Nothing else changes (no HTML, no JavaScript).

Kinds of panel and what the function returns:

- ``"bar"``   ``{series: {key: number}}``  grouped bars, one colour per series
               (e.g. ``src.per_architecture(view)`` gives series kappa / lambda / validation)
- ``"line"``  ``{series: {x: number}}``    one line per series, x sorted (numbers or ISO times)
- ``"table"`` ``{"columns": [...], "rows": [[...], ...]}``

``scale`` multiplies every number before it is drawn (0.01 turns cents into euros); ``unit``
labels the axis. A function may return an empty dict when there is nothing to show yet.
``question`` names the question of ``vendlab answer`` the panel shows (profit, places, healthy,
sellouts, breakdowns, products): the panel then carries that answer's ``basis`` (what it rests on)
and ``caveats`` (why it may not answer yet, and what would), and the page prints them in the card.

Example (the view ``revenue_cents_by_machine_hour`` of ``vendlab.models.defs``, folded over hours)::

    @panel("revenue_per_machine", "Revenue per machine", unit="EUR", scale=0.01)
    def revenue_per_machine(src):
        out = {}
        for series, rows in src.per_architecture(defs.REVENUE_BY_MACHINE_HOUR).items():
            per_machine = out.setdefault(series, {})
            for key, cents in rows.items():
                machine = key.split(defs.SEP)[0]
                per_machine[machine] = per_machine.get(machine, 0) + cents
        return out
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vendlab.store import base
from vendlab.store.base import ViewStore

KINDS = ("bar", "line", "table")


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    kind: str
    unit: str
    scale: float
    help: str
    compute: Callable[[Sources], dict]
    question: str | None = None


PANELS: list[Panel] = []


def panel(
    id: str,
    title: str,
    kind: str = "bar",
    unit: str = "",
    scale: float = 1.0,
    help: str = "",
    question: str | None = None,
):
    """Register an owner's-question panel (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown panel kind {kind!r}: allowed are {', '.join(KINDS)}")

    def register(fn: Callable[[Sources], dict]):
        if any(p.id == id for p in PANELS):
            raise ValueError(f"panel id {id!r} is used twice")
        PANELS.append(Panel(id, title, kind, unit, scale, help or (fn.__doc__ or "").strip(), fn, question))
        return fn

    return register


class Sources:
    """What a panel function may read: the store (inside one snapshot) and the manifest."""

    def __init__(self, store: ViewStore, manifest: dict | None):
        self.store = store
        self.manifest = manifest

    def view(self, job: str, view: str) -> dict[str, int]:
        """One job's additive view (job: kappa, lambda_speed, validation)."""
        return self.store.read_view(job, view)

    def per_architecture(self, view: str) -> dict[str, dict[str, int]]:
        """The view as each architecture serves it, plus validation: {kappa, lambda, validation},
        leaving out an architecture that is not in this data dir."""
        from vendlab import architectures
        from vendlab.dashboard.data import has_job

        out = {a.name: a.read(self.store, view) for a in architectures.ARCHITECTURES if a.present(self.store)}
        if has_job(self.store, base.VALIDATION):
            out["validation"] = self.view(base.VALIDATION, view)
        return out


def panels_payload(store: ViewStore, manifest: dict | None = None) -> list[dict]:
    from vendlab.dashboard.data import snapshot

    src = Sources(store, manifest)
    out = []
    with snapshot(store):
        for p in PANELS:
            try:
                data, error = p.compute(src), None
            except Exception as e:  # one broken panel must not blank the page: show why instead
                data, error = {}, f"{type(e).__name__}: {e}"
            basis, caveats = None, []
            if p.question:
                try:
                    a = owner_answers(src)
                except Exception:  # the panel itself reports the error
                    a = None
                if a:
                    basis = (a.get("basis") or {}).get(p.question)
                    caveats = (a.get("caveats") or {}).get(p.question, [])
            out.append(
                {
                    "id": p.id,
                    "title": p.title,
                    "kind": p.kind,
                    "unit": p.unit,
                    "scale": p.scale,
                    "help": p.help,
                    "data": data,
                    "error": error,
                    "question": p.question,
                    "basis": basis,
                    "caveats": caveats,
                }
            )
    return out


# -- the owner's questions ------------------------------------------------------------------
# Add new panels below; they appear on the page in this order.


@panel("healthy_vs_unhealthy_items", "Healthy vs unhealthy: items sold", unit="items", question="healthy")
def healthy_vs_unhealthy_items(src: Sources) -> dict:
    """Items sold per category, as each architecture serves it and as validation counts it."""
    return src.per_architecture(base.ITEMS_BY_CATEGORY)


@panel("healthy_vs_unhealthy_revenue", "Healthy vs unhealthy: revenue", unit="EUR", scale=0.01, question="healthy")
def healthy_vs_unhealthy_revenue(src: Sources) -> dict:
    """Revenue per category in euros (the views hold cents)."""
    return src.per_architecture(base.REVENUE_BY_CATEGORY)


# The panels below show `vendlab answer`'s answers (vendlab/answer.py): the owner's views of the
# first architecture present (kappa, else lambda, else validation) and the model step over them
# (stock, sell-out forecasts, breakdown risk). The model step is not free (a second or so on days
# of data), so one answer serves every panel and every refresh for ANSWER_TTL_S seconds.
ANSWER_TTL_S = 10.0
ANSWER_ROWS = 10
PLACE_LINES = 5  # more lines than this on one small chart are a tangle
_answers: dict[str, tuple[tuple, float, dict | None]] = {}
_answers_lock = threading.Lock()


def owner_answers(src: Sources) -> dict | None:
    """The answers for this data dir (None without a catalog.json or any owner's view yet)."""
    from vendlab.answer import NoViews, compute
    from vendlab.world.catalog import Catalog

    path = getattr(src.store, "path", None)
    if path is None:
        return None
    catalog_path = Path(path).parent / "catalog.json"
    if not catalog_path.is_file():
        return None
    info = src.store.current_batch()
    from vendlab.dashboard.data import metric_jobs

    state = tuple(src.store.last_batch_id(j) for j in metric_jobs()) + (info.version if info else None,)
    with _answers_lock:
        hit = _answers.get(str(path))
        if hit and (hit[0] == state or time.monotonic() - hit[1] < ANSWER_TTL_S):
            return hit[2]
        try:
            a = compute(src.store, Catalog.load(catalog_path), src.manifest, top=ANSWER_ROWS)
        except NoViews:
            a = None
        if a is not None and a.get("period") is None:
            a = None
        _answers[str(path)] = (state, time.monotonic(), a)
        return a


@panel(
    "profit_per_machine",
    "Profit per machine and simulated day (revenue - goods - rent & energy)",
    unit="EUR per simulated day",
    scale=0.01,
    question="profit",
)
def profit_per_machine(src: Sources) -> dict:
    """Profit over the simulated time the data covers, divided by the days it covers; rent and energy
    scale with the simulated volume (the card's "rests on" line says by how much)."""
    a = owner_answers(src)
    if not a:
        return {}
    return {
        f"profit per day ({a['source']})": {m: round(v * 100) for m, v in a["profit_eur_per_day_by_machine"].items()}
    }


@panel(
    "sales_per_place_hour",
    "Where people buy: items per place and hour (top places)",
    kind="line",
    unit="items per hour",
    question="places",
)
def sales_per_place_hour(src: Sources) -> dict:
    """Items sold per simulated hour at the busiest places (x: the start of each UTC hour)."""
    a = owner_answers(src)
    if not a:
        return {}
    # "2026-01-05T06" -> "2026-01-05 06:00", which the page's time axis reads as a date
    return {
        place: {f"{h[:10]} {h[11:13]}:00": n for h, n in hours.items()}
        for place, hours in list(a["items_by_place_hour"].items())[:PLACE_LINES]
    }


@panel("next_sellouts", "Next sell-outs before the next restock visit (forecast)", kind="table", question="sellouts")
def next_sellouts(src: Sources) -> dict:
    """Current stock (last telemetry + restocks - sales since) and when it runs out, if that comes before
    the machine's next restock visit (as the visits in the data show it; simulated UTC times)."""
    a = owner_answers(src)
    if not a or not (a["next_sellouts"] or a["sold_out_now"]):
        return {}
    rows = [
        [r["machine_id"], r["place"], r["product"], r["stock"], r["at"], r["in"], r.get("next_visit") or "unknown"]
        for r in a["next_sellouts"]
    ]
    by_machine: dict[str, list[dict]] = {}
    for r in a["sold_out_now"]:
        by_machine.setdefault(r["machine_id"], []).append(r)
    for m, rs in list(by_machine.items())[:ANSWER_ROWS]:
        rows.append(
            [
                m,
                rs[0]["place"],
                ", ".join(r["product"] for r in rs),
                0,
                "sold out",
                "now",
                rs[0].get("next_visit") or "unknown",
            ]
        )
    return {"columns": ["machine", "place", "product", "stock", "sells out", "in", "next visit"], "rows": rows}


@panel("breakdown_risk", "Breakdown risk (next hours)", kind="table", question="breakdowns")
def breakdown_risk(src: Sources) -> dict:
    """Machines ranked by their risk of going out of service within the warning lead time, from the fleet's
    telemetry history: a probability when a model could be trained (calibration measured by
    vendlab answer --evaluate), else a rank by a fixed rule; machines out of service now are listed as such."""
    a = owner_answers(src)
    if not a:
        return {}
    br = a["breakdown_risk"]
    calibrated = br.get("calibrated", False)
    rows = [
        [
            m.get("rank", k + 1),
            m["machine_id"],
            m["place"],
            f"{100 * m['risk']:.0f} %" if calibrated else f"score {m['risk']:.2f}",
        ]
        for k, m in enumerate(br["machines"])
    ]
    rows += [["—", m["machine_id"], m["place"], "out of service now"] for m in br["out_of_service_now"]]
    last = f"chance within {br['lead_h']} h" if calibrated else "rank score (not a probability)"
    return {"columns": ["rank", "machine", "place", last], "rows": rows} if rows else {}
