"""The validation view: an independent consumer of the same log, in plain Python (no Spark).

It reads every complete segment in order, validates each line with ``vendlab.validate``,
drops repeated event ids (an exact, unbounded set: the truth, not a bounded approximation),
and writes the same additive views as the jobs under job ``validation``, one store batch per
segment (batch id = segment number, so re-reading a segment after a restart is harmless).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from vendlab import schema
from vendlab.catalog import Catalog
from vendlab.eventlog import list_segments
from vendlab.models import defs
from vendlab.store import base
from vendlab.store.base import ViewStore
from vendlab.validate import price_cents, validate_line


def add_owner_sale(views: dict, ev: dict, revenue: int) -> None:
    """The owner's views of one valid sale (definitions: vendlab.models.defs)."""
    hour = defs.hour_of(ev["event_time"])
    q = ev["quantity"]
    views[(defs.REVENUE_BY_MACHINE_HOUR, defs.key(ev["machine_id"], hour))] += revenue
    views[(defs.ITEMS_BY_PLACE_HOUR, defs.key(ev["place"], hour))] += q
    views[(defs.ITEMS_BY_MACHINE_PRODUCT_HOUR, defs.key(ev["machine_id"], ev["product"], hour))] += q


def centi_degrees(temperature: float) -> int:
    """Temperature in 1/100 degree, clamped to defs.TEMP_RANGE, rounded half up (away from zero)."""
    lo, hi = defs.TEMP_RANGE
    t = min(max(float(temperature), lo), hi) * 100
    return int(Decimal(repr(t)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def add_owner_telemetry(views: dict, ev: dict) -> None:
    """The owner's views of one valid telemetry reading."""
    t = ev["event_time"]
    hour = defs.hour_of(t)
    m = ev["machine_id"]
    c = centi_degrees(ev["temperature"])
    code = ev["error_code"]
    stats = {"readings": 1, "temp_centi": c, "temp_centi_sq": c * c,
             "faults": int(code not in (0, defs.OUT_OF_SERVICE)), "out_of_service": int(code == defs.OUT_OF_SERVICE),
             # ms since the hour, from the text itself: mm, ss and mmm of "....T06:mm:ss.mmmZ"
             "offset_ms": int(t[14:16]) * 60_000 + int(t[17:19]) * 1000 + int(t[20:23])}
    for stat, v in stats.items():
        views[(defs.TELEMETRY_BY_MACHINE_HOUR, defs.key(m, hour, stat))] += v
    for product, units in ev["stock"].items():
        views[(defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR, defs.key(m, product, hour))] += units


class Validator:
    def __init__(self, log_dir: Path, catalog: Catalog, store: ViewStore, job: str = base.VALIDATION):
        self.log_dir = Path(log_dir)
        self.machines = catalog.machine_ids
        self.products = catalog.product_names
        self.store = store
        self.job = job
        self.seen: set[str] = set()
        self.last_segment = -1
        self.lines = 0

    def deltas_for(self, data: bytes) -> tuple[list[base.Delta], list[base.Marker], int]:
        views: dict[tuple[str, str], int] = defaultdict(int)
        markers = []
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for line in lines:
            ev, reason = validate_line(line, self.machines, self.products)
            if ev is None:
                views[(base.DEAD_LETTERS, reason)] += 1
                continue
            eid = str(ev["event_id"])
            if eid in self.seen:
                continue
            self.seen.add(eid)
            t = ev["type"]
            if t == schema.SALE:
                q = ev["quantity"]
                revenue = q * price_cents(ev["unit_price"])
                views[(base.ITEMS_BY_PRODUCT, ev["product"])] += q
                views[(base.ITEMS_BY_CATEGORY, ev["category"])] += q
                views[(base.REVENUE_BY_CATEGORY, ev["category"])] += revenue
                add_owner_sale(views, ev, revenue)
            elif t == schema.RESTOCK:
                hour = defs.hour_of(ev["event_time"])
                views[(defs.RESTOCKED_BY_MACHINE_PRODUCT_HOUR, defs.key(ev["machine_id"], ev["product"], hour))] += \
                    ev["quantity"]
            elif t == schema.TELEMETRY:
                add_owner_telemetry(views, ev)
            elif t == schema.MARKER:
                markers.append((eid, ev["created_ms"]))
        return [(v, k, 0, n) for (v, k), n in views.items()], markers, len(lines)

    def poll(self) -> int:
        """Consume every new complete segment; returns how many."""
        segs = list_segments(self.log_dir, after=self.last_segment)
        for seg in segs:
            deltas, markers, n = self.deltas_for(seg.path.read_bytes())
            self.store.apply_batch(self.job, seg.number, deltas, markers, rows=n)
            self.last_segment = seg.number
            self.lines += n
        return len(segs)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        while not stop.is_set():
            if not self.poll():
                stop.wait(interval)
        self.poll()
