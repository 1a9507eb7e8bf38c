"""The oracle: the validation view, computed by an independent consumer of the same log in plain
Python (no Spark).

It reads every complete segment in order, validates each line with ``vendlab.contract``,
drops repeated event ids (``SeenIds``: every id seen within the last ``window_ms`` of log time,
see docs/architecture.md, "Duplicates"), and writes the same additive views as the jobs under
job ``validation``, one store batch per segment (batch id = segment number, so re-reading a
segment after a restart is harmless).

Memory is bounded by the window, not by the length of the run: ids are kept per bucket of log
time and a bucket is dropped once the newest log time is a window past its end. On a restart
the validator re-reads only the segments of the last window before the last segment the store
has applied (they rebuild the ids; the store skips their batches) and goes on from there.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from vendlab import schema
from vendlab.config import VALIDATION_WINDOW_MS
from vendlab.contract import price_cents, validate_line
from vendlab.eventlog import list_segments
from vendlab.models import defs
from vendlab.store import base
from vendlab.store.base import ViewStore
from vendlab.world.catalog import Catalog


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
    stats = {
        "readings": 1,
        "temp_centi": c,
        "temp_centi_sq": c * c,
        "faults": int(code not in (0, defs.OUT_OF_SERVICE)),
        "out_of_service": int(code == defs.OUT_OF_SERVICE),
        # ms since the hour, from the text itself: mm, ss and mmm of "....T06:mm:ss.mmmZ"
        "offset_ms": int(t[14:16]) * 60_000 + int(t[17:19]) * 1000 + int(t[20:23]),
    }
    for stat, v in stats.items():
        views[(defs.TELEMETRY_BY_MACHINE_HOUR, defs.key(m, hour, stat))] += v
    for product, units in ev["stock"].items():
        views[(defs.STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR, defs.key(m, product, hour))] += units


class SeenIds:
    """The event ids seen within the last ``window_ms`` of log time.

    Each id is kept in the bucket (``bucket_ms`` of log time) of the *last* time it was seen; a
    bucket is dropped when ``advance`` moves the horizon a whole window past the bucket's end.
    So a copy delivered at most ``window_ms`` of log time after the previous copy of its id is
    always recognised (as long as the horizon never runs ahead of the copy's own log time), and
    one delivered more than ``window_ms + bucket_ms`` later is counted again. The ids kept are
    those of the last window plus at most one bucket: memory is bounded by the window, not by
    the length of the run. What is kept at horizon T depends only on the ids seen at log times
    from ``replay_from_ms(T)`` on, which is what a restarted consumer re-reads.
    """

    def __init__(self, window_ms: int, bucket_ms: int | None = None):
        if window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {window_ms}")
        self.window_ms = int(window_ms)
        self.bucket_ms = int(bucket_ms or max(1, self.window_ms // WINDOW_BUCKETS))
        self._bucket_of: dict[str, int] = {}
        self._buckets: dict[int, list[str]] = {}
        self.horizon_ms: int | None = None
        self._keep_from: int | None = None  # lowest bucket kept
        self.evicted = 0  # ids dropped from memory so far
        self.most = 0  # the most ids held at once

    def __len__(self) -> int:
        return len(self._bucket_of)

    def __contains__(self, eid: str) -> bool:
        return eid in self._bucket_of

    def add(self, eid: str, log_ms: int) -> bool:
        """Record ``eid`` as seen at ``log_ms``; True if it was not seen within the window."""
        b = log_ms // self.bucket_ms
        old = self._bucket_of.get(eid)
        if old is None or b > old:
            self._bucket_of[eid] = b
            bucket = self._buckets.get(b)
            if bucket is None:
                self._buckets[b] = bucket = []
            bucket.append(eid)
            if old is None and len(self._bucket_of) > self.most:
                self.most = len(self._bucket_of)
        return old is None

    def keep_from(self, horizon_ms: int) -> int:
        """The first bucket kept at this horizon."""
        return (horizon_ms - self.window_ms) // self.bucket_ms

    def replay_from_ms(self, horizon_ms: int) -> int:
        """The log time from which a consumer must re-read to rebuild the ids kept at ``horizon_ms``."""
        return self.keep_from(horizon_ms) * self.bucket_ms

    def advance(self, horizon_ms: int) -> None:
        """Log time has reached ``horizon_ms`` (never moves back): drop the buckets a window behind."""
        if self.horizon_ms is not None and horizon_ms <= self.horizon_ms:
            return
        self.horizon_ms = horizon_ms
        keep = self.keep_from(horizon_ms)
        if self._keep_from is not None and keep <= self._keep_from:
            return
        self._keep_from = keep
        for b in [b for b in self._buckets if b < keep]:
            for eid in self._buckets.pop(b):
                if self._bucket_of.get(eid) == b:
                    del self._bucket_of[eid]
                    self.evicted += 1


WINDOW_BUCKETS = 12  # buckets per window: memory holds at most 1/12 of a window more than the window


class Validator:
    def __init__(
        self,
        log_dir: Path,
        catalog: Catalog,
        store: ViewStore,
        job: str = base.VALIDATION,
        window_ms: int = VALIDATION_WINDOW_MS,
    ):
        self.log_dir = Path(log_dir)
        self.machines = catalog.machine_ids
        self.products = catalog.product_names
        self.store = store
        self.job = job
        self.seen = SeenIds(window_ms)
        self.last_segment: int | None = None  # None: not started (first poll finds where to resume)
        self.lines = 0
        self.replayed_segments = 0  # segments re-read on start to rebuild the ids (already applied)
        self._applied_at_start = -1

    def deltas_for(self, data: bytes, log_ms: int | list[int] = 0) -> tuple[list[base.Delta], list[base.Marker], int]:
        """Views, markers and line count of JSON lines delivered at log time ``log_ms`` (one value
        for all lines, or one per line). Does not move the window's horizon: the caller does.
        Without log times (lines in memory, vendlab.models.hourly) all lines count as delivered
        at once: every repeated id is dropped."""
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        return self.count(lines, log_ms)

    def count(self, lines: list[bytes], log_ms: int | list[int]) -> tuple[list[base.Delta], list[base.Marker], int]:
        views: dict[tuple[str, str], int] = defaultdict(int)
        markers = []
        times = [log_ms] * len(lines) if isinstance(log_ms, int) else log_ms
        if len(times) != len(lines):
            raise ValueError(f"{len(lines)} lines but {len(times)} log times")
        add = self.seen.add
        for line, t in zip(lines, times):
            ev, reason = validate_line(line, self.machines, self.products)
            if ev is None:
                views[(base.DEAD_LETTERS, reason)] += 1
                continue
            eid = str(ev["event_id"])
            if not add(eid, t):
                continue
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
                views[(defs.RESTOCKED_BY_MACHINE_PRODUCT_HOUR, defs.key(ev["machine_id"], ev["product"], hour))] += ev[
                    "quantity"
                ]
            elif t == schema.TELEMETRY:
                add_owner_telemetry(views, ev)
            elif t == schema.MARKER:
                markers.append((eid, ev["created_ms"]))
        return [(v, k, 0, n) for (v, k), n in views.items()], markers, len(lines)

    def _resume_point(self) -> int:
        """The segment to start after: on a store that has applied segments up to N, re-read only
        the window of log time before N (segments are stamped in non-decreasing log time)."""
        applied = self._applied_at_start = self.store.last_batch_id(self.job)
        if applied < 0:
            return -1
        segs = list_segments(self.log_dir)
        done = [s for s in segs if s.number <= applied]
        if not done:
            return -1
        start_ms = self.seen.replay_from_ms(done[-1].first_ms)
        first = next(s for s in done if s.first_ms >= start_ms)
        return first.number - 1

    def poll(self) -> int:
        """Consume every new complete segment; returns how many."""
        if self.last_segment is None:
            self.last_segment = self._resume_point()
        segs = list_segments(self.log_dir, after=self.last_segment)
        for seg in segs:
            self.seen.advance(seg.first_ms)
            deltas, markers, n = self.deltas_for(seg.path.read_bytes(), seg.first_ms)
            self.store.apply_batch(self.job, seg.number, deltas, markers, rows=n)
            self.last_segment = seg.number
            self.lines += n
            if seg.number <= self._applied_at_start:
                self.replayed_segments += 1
        return len(segs)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        while not stop.is_set():
            if not self.poll():
                stop.wait(interval)
        self.poll()
