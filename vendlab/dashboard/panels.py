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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
    compute: Callable[["Sources"], dict]


PANELS: list[Panel] = []


def panel(id: str, title: str, kind: str = "bar", unit: str = "", scale: float = 1.0, help: str = ""):
    """Register an owner's-question panel (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown panel kind {kind!r}: allowed are {', '.join(KINDS)}")

    def register(fn: Callable[["Sources"], dict]):
        if any(p.id == id for p in PANELS):
            raise ValueError(f"panel id {id!r} is used twice")
        PANELS.append(Panel(id, title, kind, unit, scale, help or (fn.__doc__ or "").strip(), fn))
        return fn

    return register


class Sources:
    """What a panel function may read: the store (inside one snapshot) and the manifest."""

    def __init__(self, store: ViewStore, manifest: dict | None):
        self.store = store
        self.manifest = manifest
        self._lambda: bool | None = None

    def view(self, job: str, view: str) -> dict[str, int]:
        """One job's additive view (job: kappa, lambda_speed, validation)."""
        return self.store.read_view(job, view)

    def lambda_serving(self, view: str) -> dict[str, int]:
        """Lambda's serving view: batch view + speed view after the cutoff."""
        from vendlab.serving import lambda_views

        return lambda_views(self.store, view)["serving"]

    def per_architecture(self, view: str) -> dict[str, dict[str, int]]:
        """The view as each architecture serves it, plus validation: {kappa, lambda, validation},
        leaving out an architecture that is not in this data dir."""
        from vendlab.dashboard.data import has_job, has_lambda

        out = {}
        if has_job(self.store, base.KAPPA):
            out["kappa"] = self.view(base.KAPPA, view)
        if has_lambda(self.store):
            out["lambda"] = self.lambda_serving(view)
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
            out.append({"id": p.id, "title": p.title, "kind": p.kind, "unit": p.unit, "scale": p.scale,
                        "help": p.help, "data": data, "error": error})
    return out


# -- the owner's questions ------------------------------------------------------------------
# Add new panels below; they appear on the page in this order.


@panel("healthy_vs_unhealthy_items", "Healthy vs unhealthy: items sold", unit="items")
def healthy_vs_unhealthy_items(src: Sources) -> dict:
    """Items sold per category, as each architecture serves it and as validation counts it."""
    return src.per_architecture(base.ITEMS_BY_CATEGORY)


@panel("healthy_vs_unhealthy_revenue", "Healthy vs unhealthy: revenue", unit="EUR", scale=0.01)
def healthy_vs_unhealthy_revenue(src: Sources) -> dict:
    """Revenue per category in euros (the views hold cents)."""
    return src.per_architecture(base.REVENUE_BY_CATEGORY)


# The panels below show `vendlab answer`'s answers (vendlab/answer.py): the owner's views of the
# first architecture present (kappa, else lambda, else validation) and the model step over them
# (stock, sell-out forecasts, breakdown risk). The model step is not free (a second or so on days
# of data), so one answer serves every panel and every refresh for ANSWER_TTL_S seconds.
ANSWER_TTL_S = 10.0
ANSWER_ROWS = 10
_answers: dict[str, tuple[tuple, float, dict | None]] = {}
_answers_lock = threading.Lock()


def owner_answers(src: Sources) -> dict | None:
    """The answers for this data dir (None without a catalog.json or any owner's view yet)."""
    from vendlab.answer import NoViews, compute
    from vendlab.catalog import Catalog

    path = getattr(src.store, "path", None)
    if path is None:
        return None
    catalog_path = Path(path).parent / "catalog.json"
    if not catalog_path.is_file():
        return None
    info = src.store.current_batch()
    state = tuple(src.store.last_batch_id(j) for j in (base.KAPPA, base.LAMBDA_SPEED, base.VALIDATION)) + (
        info.version if info else None,)
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


@panel("profit_per_machine", "Profit per machine (revenue - goods - rent & energy)", unit="EUR", scale=0.01)
def profit_per_machine(src: Sources) -> dict:
    """Over the simulated time the data covers; rent and energy scale with the simulated volume."""
    a = owner_answers(src)
    if not a:
        return {}
    return {f"profit ({a['source']})": {m: round(v * 100) for m, v in a["profit_eur_by_machine"].items()}}


@panel("sales_per_place_hour", "Where people buy: items per place and hour (top places)", kind="line",
       unit="items")
def sales_per_place_hour(src: Sources) -> dict:
    """Items sold per simulated hour at the busiest places (UTC hours)."""
    a = owner_answers(src)
    return a["items_by_place_hour"] if a else {}


@panel("next_sellouts", "Next sell-outs (forecast)", kind="table")
def next_sellouts(src: Sources) -> dict:
    """Current stock (last telemetry + restocks - sales since) and the forecast time it runs out."""
    a = owner_answers(src)
    if not a or not a["next_sellouts"]:
        return {}
    return {"columns": ["machine", "place", "product", "stock", "sells out at (UTC)", "in"],
            "rows": [[r["machine_id"], r["place"], r["product"], r["stock"], r["sells_out_at"],
                      f"{r['in_hours']:.1f} h"] for r in a["next_sellouts"]]}


@panel("breakdown_risk", "Breakdown risk (next hours)", kind="table")
def breakdown_risk(src: Sources) -> dict:
    """Chance that the machine goes out of service within the warning lead time, from a model trained
    on the fleet's telemetry history; machines out of service now are listed as such."""
    a = owner_answers(src)
    if not a:
        return {}
    br = a["breakdown_risk"]
    rows = [[m["machine_id"], m["place"], f"{100 * m['risk']:.0f} %", f"breaks within {br['lead_h']} h ({br['model']})"]
            for m in br["machines"]]
    rows += [[m["machine_id"], m["place"], "—", "out of service now"] for m in br["out_of_service_now"]]
    return {"columns": ["machine", "place", "risk", "of what"], "rows": rows} if rows else {}
