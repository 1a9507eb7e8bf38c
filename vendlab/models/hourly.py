"""The owner's views as hourly arrays: what the model step (stock, forecasts, risk) reads.

``Hourly.from_views(read, catalog)`` turns the additive views (``vendlab.models.defs``), read
from any source (kappa's real-time view, lambda's serving view, validation, or views computed in
memory), into dense arrays indexed by machine, product and hour. ``until(h)`` gives the data as
it stood at the start of hour ``h`` (views are sums per event hour, so dropping later hours is
exactly "what was known then"): the evaluation replays history with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from vendlab.models import defs
from vendlab.world.catalog import Catalog

HOUR_MS = defs.HOUR_MS

ViewReader = Callable[[str], dict]


@dataclass
class Hourly:
    machines: list[str]
    products: list[str]
    places: list[str]
    h0: int  # hour index (hours since the epoch) of column 0
    items: np.ndarray  # (M, P, H) items sold
    restocked: np.ndarray  # (M, P, H) units restocked
    stock_sum: np.ndarray  # (M, P, H) sum of reported stock over the hour's readings
    revenue: np.ndarray  # (M, H) cents
    tel: dict[str, np.ndarray]  # stat -> (M, H)
    place_items: np.ndarray  # (places, H)
    partial_last: bool = True  # the last hour may still be filling (live data)

    # -- building -------------------------------------------------------------------------
    @classmethod
    def from_views(cls, read: ViewReader, catalog: Catalog) -> Hourly:
        machines = [m.machine_id for m in catalog.machines]
        products = [p.product for p in catalog.products]
        mi = {m: i for i, m in enumerate(machines)}
        pi = {p: i for i, p in enumerate(products)}
        raw = {v: read(v) for v in defs.OWNER_VIEWS}
        hours: set[str] = set()
        parsed: dict[str, list] = {}
        for v, rows in raw.items():
            out = []
            for k, value in rows.items():
                if v == defs.ITEMS_BY_PLACE_HOUR:
                    place, hour = k.rsplit(defs.SEP, 1)
                    out.append((place, hour, value))
                elif v == defs.TELEMETRY_BY_MACHINE_HOUR:
                    m, hour, stat = k.rsplit(defs.SEP, 2)
                    out.append((m, hour, stat, value))
                elif v == defs.REVENUE_BY_MACHINE_HOUR:
                    m, hour = k.rsplit(defs.SEP, 1)
                    out.append((m, hour, value))
                else:  # machine|product|hour (a reported stock may name any product: keep it whole)
                    m, rest = k.split(defs.SEP, 1)
                    p, hour = rest.rsplit(defs.SEP, 1)
                    out.append((m, p, hour, value))
                hours.add(out[-1][-2] if v != defs.TELEMETRY_BY_MACHINE_HOUR else out[-1][1])
            parsed[v] = out
        idx = {h: defs.hour_index(h) for h in hours}
        h0 = min(idx.values()) if idx else 0
        H = (max(idx.values()) - h0 + 1) if idx else 0
        M, P = len(machines), len(products)
        places = sorted({r[0] for r in parsed[defs.ITEMS_BY_PLACE_HOUR]})
        pl = {p: i for i, p in enumerate(places)}
        a3 = lambda: np.zeros((M, P, H))  # noqa: E731
        items, restocked, stock_sum = a3(), a3(), a3()
        revenue = np.zeros((M, H))
        tel = {s: np.zeros((M, H)) for s in defs.TELEMETRY_STATS}
        place_items = np.zeros((len(places), H))
        for target, v in (
            (items, defs.ITEMS_BY_MACHINE_PRODUCT_HOUR),
            (restocked, defs.RESTOCKED_BY_MACHINE_PRODUCT_HOUR),
            (stock_sum, defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR),
        ):
            for m, p, hour, value in parsed[v]:
                if m in mi and p in pi:
                    target[mi[m], pi[p], idx[hour] - h0] += value
        for m, hour, value in parsed[defs.REVENUE_BY_MACHINE_HOUR]:
            if m in mi:
                revenue[mi[m], idx[hour] - h0] += value
        for m, hour, stat, value in parsed[defs.TELEMETRY_BY_MACHINE_HOUR]:
            if m in mi and stat in tel:
                tel[stat][mi[m], idx[hour] - h0] += value
        for place, hour, value in parsed[defs.ITEMS_BY_PLACE_HOUR]:
            place_items[pl[place], idx[hour] - h0] += value
        return cls(machines, products, places, h0, items, restocked, stock_sum, revenue, tel, place_items)

    # -- time -----------------------------------------------------------------------------
    @property
    def H(self) -> int:
        return self.items.shape[2]

    @property
    def empty(self) -> bool:
        return self.H == 0

    def hour_ms(self, h: int | np.ndarray) -> np.ndarray | int:
        """Start of column h, in epoch ms."""
        return (self.h0 + h) * HOUR_MS

    def now_ms(self) -> float:
        """When the data ends: the end of the last hour if it is complete, else estimated from the
        readings of the last hour (telemetry arrives evenly: their mean offset is half the span)."""
        if self.empty:
            return float("nan")
        last = self.H - 1
        start = float(self.hour_ms(last))
        if not self.partial_last:
            return start + HOUR_MS
        n = self.tel["readings"][:, last].sum()
        if n <= 0:
            return start + HOUR_MS / 2
        return start + min(HOUR_MS, 2 * self.tel["offset_ms"][:, last].sum() / n)

    def until(self, h: int) -> Hourly:
        """The data as known at the start of column h (hours < h; the last one complete)."""
        h = max(0, min(h, self.H))
        return replace(
            self,
            items=self.items[:, :, :h],
            restocked=self.restocked[:, :, :h],
            stock_sum=self.stock_sum[:, :, :h],
            revenue=self.revenue[:, :h],
            tel={k: v[:, :h] for k, v in self.tel.items()},
            place_items=self.place_items[:, :h],
            partial_last=False,
        )

    # -- derived per hour ---------------------------------------------------------------------
    def readings(self) -> np.ndarray:
        return self.tel["readings"]

    def out_of_service(self) -> np.ndarray:
        """(M, H) bool: some reading of the hour said out of service."""
        return self.tel["out_of_service"] > 0

    def mean_temp(self) -> np.ndarray:
        n = self.tel["readings"]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.tel["temp_centi"] / np.maximum(n, 1) / 100.0, np.nan)

    def temp_std(self) -> np.ndarray:
        n = np.maximum(self.tel["readings"], 1)
        mean = self.tel["temp_centi"] / n
        var = np.maximum(self.tel["temp_centi_sq"] / n - mean**2, 0.0)
        return np.where(self.tel["readings"] > 0, np.sqrt(var) / 100.0, np.nan)

    def fault_rate(self, window: int = 1) -> np.ndarray:
        n = _rolling_sum(self.tel["readings"], window)
        f = _rolling_sum(self.tel["faults"], window)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, f / np.maximum(n, 1), np.nan)

    def hour_of_day(self) -> np.ndarray:
        return (self.h0 + np.arange(self.H)) % 24


def _rolling_sum(a: np.ndarray, window: int) -> np.ndarray:
    """Sum over the last ``window`` columns (fewer at the start), along the last axis."""
    if window <= 1:
        return a
    c = np.cumsum(a, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    return out


def views_from_lines(data: bytes, catalog: Catalog) -> dict[str, dict[str, int]]:
    """Every view computed in memory from JSON lines, with the validation consumer's code (tests,
    evaluation scenarios without Spark)."""
    from vendlab.oracle import Validator

    v = Validator(".", catalog, store=None)  # type: ignore[arg-type]
    deltas, _, _ = v.deltas_for(data)
    out: dict[str, dict[str, int]] = {}
    for view, k, _, n in deltas:
        out.setdefault(view, {})[k] = out.get(view, {}).get(k, 0) + n
    return out
