"""Event generator: vectorised with NumPy and Arrow, reproducible from a seed.

Events are made in fixed blocks of ``BLOCK`` events, block ``b`` drawn from
``numpy.random.default_rng([seed, b])``, so the stream depends only on the seed and the
settings, never on how a caller slices it or how fast it runs. Lines are built column-wise
with Arrow string kernels and handed out as one ``bytes`` of JSON lines per chunk.

The events come from a simulated world (docs/questions.md, "The simulator"): demand per place
and hour of the day, stock per machine and product that sales deplete and scheduled restocks
refill, machines that degrade (warming, fault codes) and break. Everything random is drawn per
block or, for the machines' breakdown timelines, per machine in simulated time; the state carried
from block to block (stock, restock visits not finished) depends on the blocks before only.

The generator keeps the ground truth (a :class:`Manifest`): items per product over valid,
unique sales, a count of everything it injected (malformed lines by reason, duplicates), and the
world's truth: stock-outs, restock visits, breakdowns, stock, capacity, the volume factor.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from vendlab import schema
from vendlab.models.defs import OUT_OF_SERVICE  # error_code of every reading of a broken machine
from vendlab.world.catalog import HEALTHY_KINDS, HOURLY_PROFILE, REFERENCE_ITEMS_PER_MACHINE_DAY, Catalog

BLOCK = 4096
# Simulated seconds per event (time_scale / rate). Above the maximum a block of events spans
# weeks of machine life (restock visits and breakdowns per block grow with it, and so did memory:
# 24 GB for --rate 1e-9); below the minimum a block lasts less than a millisecond and the world
# has no time to sell anything. The default (60 / 20,000) is 0.003 s.
MAX_SIM_S_PER_EVENT = 60.0
MIN_SIM_S_PER_EVENT = 1e-5
DEFAULT_START = "2026-01-05T06:00:00Z"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# -- the simulated world (see docs/questions.md, "The simulator") ---------------------------
# Every event slot of the stream is a sale with probability SALE_SHARE_PEAK x (fleet demand at
# that hour of the day / fleet demand at the busiest hour), else a telemetry reading; restock
# events take slots when a machine's scheduled visit comes. A would-be sale at a broken machine
# or of a sold-out product is lost: its slot becomes a telemetry reading.
SALE_SHARE_PEAK = 0.92
QUANTITIES = ((1, 0.75), (2, 0.18), (3, 0.07))
RESTOCK_INTERVAL_MS = 12 * HOUR_MS  # each machine is visited every 12 simulated hours
RESTOCK_MAX = 1_000  # units in one restock line (the contract bounds a sale's quantity, not a restock's)
CAPACITY_INTERVALS = (0.6, 1.6)  # capacity of a slot = this many intervals of its mean demand
ERROR_CODES = (1, 2, 3, 4, 5)  # minor faults: coin mechanism, door, cooling, motor, network
TEMP_BASE = (3.5, 6.5)  # degrees C, per machine
TEMP_NOISE = 0.35
ERROR_BASE = 0.01  # probability that a healthy machine's reading carries a minor fault
MTBF_MEDIAN_MS = int(2.5 * DAY_MS)  # per machine: lognormal around this, sigma MTBF_SIGMA
MTBF_SIGMA = 0.5
DEGRADE_MS = (3 * HOUR_MS, 8 * HOUR_MS)  # precursors start this long before a breakdown...
SUDDEN_SHARE = 0.15  # ...except for this share of breakdowns, which warn only briefly:
SUDDEN_MS = (HOUR_MS // 4, HOUR_MS)
DRIFT_C = (2.5, 5.0)  # temperature rise reached at the breakdown
ERROR_AT_FAILURE = (0.15, 0.35)  # fault probability of a reading reached at the breakdown
DOWNTIME_MS = (2 * HOUR_MS, 6 * HOUR_MS)
BROKEN_WARMING_C_PER_H = 2.0  # cooling off: the machine warms towards the room
EPISODES_PER_DAY = 1.0  # harmless warm spells (door left open, sun): false alarms for a model
EPISODE_MS = (HOUR_MS, 4 * HOUR_MS)
EPISODE_C = (1.0, 3.0)
EPISODE_ERROR = 0.02
NUM_TABLE = 10_000  # numbers up to 10 million are two pieces of text from tables, not formatted
TEMP_TABLE = 5_000  # temperatures up to 50 degrees, likewise (the text of Arrow's cast)
TEXT_THREADS = 2  # threads making blocks' text while the generator simulates the next ones
_CHUNK = 64  # breakdown cycles / episodes drawn per machine at a time
_BIG = 10**13  # > any epoch-ms time here: separates machines in flattened timelines

# Malformed lines the generator injects with --bad-rate, cycling through these kinds; each
# yields exactly the dead-letter reason named here.
BAD_KINDS = (
    "not_json_object",
    "missing_field:quantity",
    "wrong_type:quantity",
    "bad_quantity",
    "unknown_product",
    "unknown_machine",
    "bad_time",
)


def parse_start(text: str) -> int:
    """ISO-8601 UTC time -> epoch milliseconds."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _esc(s: str) -> str:
    return orjson.dumps(s).decode()[1:-1]


@dataclass
class Manifest:
    """Ground truth of what was generated (written as DIR/manifest.json)."""

    seed: int
    settings: dict
    events: int = 0  # lines of generated events, including duplicates and malformed lines
    sales: int = 0  # valid unique sales
    telemetry: int = 0
    restocks: int = 0
    malformed: int = 0
    duplicates: int = 0
    markers: int = 0
    malformed_by_reason: dict = field(default_factory=dict)
    items_by_product: dict = field(default_factory=dict)
    items_by_category: dict = field(default_factory=dict)
    revenue_cents_by_category: dict = field(default_factory=dict)
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    segments: int = 0  # complete log segments these counts cover
    complete: bool = False
    # -- the simulated world's truth (physical: a sale whose line was corrupted still happened) --
    # [machine_id, product, ms]: the sale that emptied the product at the machine
    stockouts: list = field(default_factory=list)
    # [machine_id, ms]: a restock visit (its first restock line), every product filled to capacity
    restock_visits: list = field(default_factory=list)
    # {machine_id, degrading_ms, failed_ms, repaired_ms}: breakdowns with failed_ms <= last_event_ms
    breakdowns: list = field(default_factory=list)
    stock: dict = field(default_factory=dict)  # machine_id -> product -> units after the last event
    capacity: dict = field(default_factory=dict)  # machine_id -> product -> units after a restock
    lost_sales: dict = field(default_factory=dict)  # would-be sales lost: sold_out, out_of_service
    economics: dict = field(default_factory=dict)  # volume_factor, fixed costs per simulated day
    # Where the generator stands after the last line these counts cover (Generator.resume_state):
    # a restarted generator continues from here (Generator.resume) instead of replaying the past.
    resume: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def save(self, path: Path) -> None:
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls(**json.loads(path.read_text()))

    # A manifest consistent with the log, across a crash of the writer: before a segment is
    # renamed into place the manifest that covers it is written as PENDING; after the rename it
    # replaces manifest.json. On recovery a pending manifest is promoted only if its segment
    # exists (the rename happened), else dropped.
    @staticmethod
    def pending_path(path: Path) -> Path:
        return path.with_name(".pending-" + path.name)

    @classmethod
    def recover(cls, path: Path, segment_exists) -> Manifest | None:
        pending = cls.pending_path(path)
        if pending.exists():
            m = cls.load(pending)
            if segment_exists(m.segments - 1):
                pending.replace(path)
            else:
                pending.unlink()
        return cls.load(path) if path.exists() else None


class Chunk:
    """Lines the generator handed out: ``parts``, buffers of JSON lines (each line ending with
    "\\n") to write in order, or ``data``, the same as one ``bytes`` (joined when first asked)."""

    def __init__(self, parts: list, lines: int, first_ms: int):
        self.parts = parts
        self.lines = lines
        self.first_ms = first_ms  # nominal (simulated) time of the chunk's first event

    @cached_property
    def data(self) -> bytes:
        return b"".join(self.parts)


class _Block:
    """One generated block: its lines (text made on a worker thread) plus per-line facts for the
    manifest."""

    def __init__(
        self,
        text: Future,
        lines: int,
        product: np.ndarray,
        qty: np.ndarray,
        revenue: np.ndarray,
        kind: np.ndarray,
        bad: np.ndarray,
        first_ms: int,
        slot: np.ndarray,
        phys: dict,
    ):
        self._text = text  # -> (buffer, byte offset of each line and of the end)
        self.lines = lines
        self.product = product  # product index for valid unique sales, -1 otherwise
        self.qty = qty
        self.revenue = revenue
        self.kind = kind  # 0 sale, 1 telemetry, 2 restock, 3 malformed, 4 duplicate
        self.bad = bad  # index into BAD_KINDS, -1 otherwise
        self.first_ms = first_ms
        self.slot = slot  # the line's slot in the block (-1 for a duplicate copy)
        self.phys = phys  # per-slot physics: machine, product, flow, stockout, visit, lost

    def __len__(self) -> int:
        return self.lines

    def text(self, a: int, b: int) -> memoryview:
        """The JSON lines [a, b) of the block."""
        buf, at = self._text.result()
        return buf[at[a] : at[b]]


class _Timeline:
    """Each machine's breakdowns and harmless warm spells, a pure function of (seed, machine):
    drawn in chunks from the machine's own random stream, so it never depends on the rate or on
    how far the stream has been read."""

    def __init__(self, seed: int, n_machines: int, start_ms: int):
        self.n = n_machines
        self.start_ms = start_ms
        rng = np.random.default_rng([seed, 7])
        self.mtbf = MTBF_MEDIAN_MS * np.exp(rng.normal(0.0, MTBF_SIGMA, n_machines))
        self.base_temp = rng.uniform(*TEMP_BASE, n_machines)
        self._rngs = [np.random.default_rng([seed, 8, m]) for m in range(n_machines)]
        self._ep_rngs = [np.random.default_rng([seed, 9, m]) for m in range(n_machines)]
        cols = ("fail", "repair", "degrade", "drift", "perr")
        self.cyc = {c: [np.empty(0) for _ in range(n_machines)] for c in cols}
        self.ep = {c: [np.empty(0) for _ in range(n_machines)] for c in ("start", "end", "amp")}
        self.horizon = -1
        self._flat: dict[str, np.ndarray] = {}

    def _more_cycles(self, m: int) -> None:
        rng, c = self._rngs[m], self.cyc
        k = _CHUNK
        sudden = rng.random(k) < SUDDEN_SHARE
        degrade = np.where(sudden, rng.uniform(*SUDDEN_MS, k), rng.uniform(*DEGRADE_MS, k))
        gap = rng.exponential(1.0, k) * self.mtbf[m]
        down = rng.uniform(*DOWNTIME_MS, k)
        drift = rng.uniform(*DRIFT_C, k)
        perr = rng.uniform(*ERROR_AT_FAILURE, k)
        first = not len(c["fail"][m])
        t = self.start_ms - DAY_MS if first else c["repair"][m][-1]
        fail, repair, deg = np.empty(k), np.empty(k), np.empty(k)
        for i in range(k):
            # failures are memoryless: the first comes Exp(MTBF) after the start (and not in the
            # first hour), the next Exp(MTBF) after the degradation that follows each repair
            f = self.start_ms + HOUR_MS + gap[i] if first and i == 0 else t + degrade[i] + gap[i]
            fail[i], repair[i], deg[i] = f, f + down[i], max(t, f - degrade[i])
            t = repair[i]
        for name, arr in (("fail", fail), ("repair", repair), ("degrade", deg), ("drift", drift), ("perr", perr)):
            c[name][m] = np.concatenate([c[name][m], arr])

    def _more_episodes(self, m: int) -> None:
        rng, e = self._ep_rngs[m], self.ep
        k = _CHUNK
        gaps = rng.exponential(DAY_MS / EPISODES_PER_DAY, k)
        t0 = e["end"][m][-1] if len(e["end"][m]) else self.start_ms - rng.uniform(0, DAY_MS)
        start = t0 + np.cumsum(gaps)
        dur = rng.uniform(*EPISODE_MS, k)
        amp = rng.uniform(*EPISODE_C, k)
        e["start"][m] = np.concatenate([e["start"][m], start])
        e["end"][m] = np.concatenate([e["end"][m], start + dur])
        e["amp"][m] = np.concatenate([e["amp"][m], amp])

    def cover(self, until_ms: int) -> None:
        """Make sure every machine's timeline reaches past ``until_ms``."""
        if until_ms < self.horizon:
            return
        for m in range(self.n):
            while not len(self.cyc["fail"][m]) or self.cyc["fail"][m][-1] <= until_ms:
                self._more_cycles(m)
            while not len(self.ep["start"][m]) or self.ep["start"][m][-1] <= until_ms:
                self._more_episodes(m)
        self.horizon = min(min(x[-1] for x in self.cyc["fail"]), min(x[-1] for x in self.ep["start"]))
        never = float(_BIG - 1)  # padding: a failure / warm spell that never comes

        def stack(arrs, pad):
            k = max(len(x) for x in arrs)
            return np.stack([np.concatenate([x, np.full(k - len(x), pad)]) for x in arrs])

        flat = {name: stack(arrs, never) for name, arrs in self.cyc.items()}
        flat |= {"ep_" + name: stack(arrs, 0.0 if name == "amp" else never) for name, arrs in self.ep.items()}
        flat["k"], flat["ke"] = flat["fail"].shape[1], flat["ep_start"].shape[1]
        off = (np.arange(self.n) * _BIG)[:, None]
        flat["fail_key"] = (flat["fail"] + off).ravel()
        flat["ep_key"] = (flat["ep_start"] + off).ravel()
        # One assignment: the text threads read the timeline (state) while this one extends it;
        # an extended timeline answers the same for every time the earlier one covered.
        self._flat = flat

    def state(self, mach: np.ndarray, t: np.ndarray):
        """Per (machine, time): broken, hours since the breakdown, degradation progress (0..1),
        drift and fault probability at failure, warm-spell amplitude."""
        f = self._flat
        k = np.searchsorted(f["fail_key"], mach * _BIG + t, side="right") - mach * f["k"]  # next failure
        prev = np.maximum(k - 1, 0)
        broken = (k > 0) & (t < f["repair"][mach, prev])
        since = np.where(broken, (t - f["fail"][mach, prev]) / HOUR_MS, 0.0)
        nxt = np.minimum(k, f["k"] - 1)
        ds, fl = f["degrade"][mach, nxt], f["fail"][mach, nxt]
        prog = np.clip((t - ds) / np.maximum(fl - ds, 1.0), 0.0, 1.0) * (~broken)
        ke = np.searchsorted(f["ep_key"], mach * _BIG + t, side="right") - mach * f["ke"] - 1
        kc = np.maximum(ke, 0)
        warm = np.where((ke >= 0) & (t < f["ep_end"][mach, kc]), f["ep_amp"][mach, kc], 0.0)
        return broken, since, prog, f["drift"][mach, nxt], f["perr"][mach, nxt], warm

    def broken(self, mach: np.ndarray, t: np.ndarray) -> np.ndarray:
        f = self._flat
        k = np.searchsorted(f["fail_key"], mach * _BIG + t, side="right") - mach * f["k"]
        prev = np.maximum(k - 1, 0)
        return (k > 0) & (t < f["repair"][mach, prev])

    def any_broken(self, lo_ms: float, hi_ms: float) -> bool:
        """Is some machine out of service at some time in [lo, hi]?"""
        f, m = self._flat, np.arange(self.n)
        k = np.searchsorted(f["fail_key"], m * _BIG + hi_ms, side="right") - m * f["k"] - 1
        kc = np.maximum(k, 0)
        return bool(np.any((k >= 0) & (f["repair"][m, kc] > lo_ms)))

    def failures_between(self, lo_ms: int, hi_ms: int) -> list[tuple[int, int, int, int]]:
        """(machine, degrading_ms, failed_ms, repaired_ms) of failures with lo < failed <= hi, by time
        (``hi_ms`` within the covered timeline)."""
        f = self._flat
        m, i = np.nonzero((f["fail"] > lo_ms) & (f["fail"] <= hi_ms))
        out = list(zip(m.tolist(), *(f[c][m, i].astype(np.int64).tolist() for c in ("degrade", "fail", "repair"))))
        return sorted(out, key=lambda x: (x[2], x[0]))


class Generator:
    def __init__(
        self,
        catalog: Catalog,
        seed: int,
        rate: float,
        time_scale: float = 60.0,
        start: str = DEFAULT_START,
        bad_rate: float = 0.0,
        dup_rate: float = 0.0,
    ):
        if not (math.isfinite(rate) and rate > 0 and math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"rate and time_scale must be finite and > 0 (got {rate}, {time_scale})")
        per_event = time_scale / rate
        if not MIN_SIM_S_PER_EVENT <= per_event <= MAX_SIM_S_PER_EVENT:
            raise ValueError(
                f"simulated time per event (time_scale / rate = {per_event:.3g} s) must be in "
                f"[{MIN_SIM_S_PER_EVENT:g}, {MAX_SIM_S_PER_EVENT:g}] s"
            )
        if not 0 <= bad_rate < 1 or not 0 <= dup_rate < 1:
            raise ValueError("bad_rate and dup_rate must be in [0, 1)")
        self.catalog = catalog
        self.seed = seed
        self.rate = rate
        self.time_scale = time_scale
        self.start_ms = parse_start(start)
        self.bad_rate = bad_rate
        self.dup_rate = dup_rate
        self.ms_per_event = 1000.0 * time_scale / rate
        self._block_no = 0
        self._block: _Block | None = None
        self._pos = 0
        self._block_start: tuple | None = None  # (stock, pending) before the current block was made
        self._last_seq = -1  # stream slot of the last original (not a duplicate copy) line taken
        m, p = catalog.machines, catalog.products
        M, P = len(m), len(p)
        self.M, self.P = M, P
        self.manifest = Manifest(
            seed=seed,
            settings=dict(rate=rate, time_scale=time_scale, start=start, bad_rate=bad_rate, dup_rate=dup_rate),
            malformed_by_reason={},
            items_by_product={x.product: 0 for x in p},
            items_by_category={c: 0 for c in schema.CATEGORIES},
            revenue_cents_by_category={c: 0 for c in schema.CATEGORIES},
            lost_sales={"sold_out": 0, "out_of_service": 0},
        )
        self._price_cents = np.array([x.price_cents for x in p], dtype=np.int64)
        self._build_fragments()

        # Demand: machine m at hour-of-day h draws footfall_m x profile_kind(h); the share of sale
        # slots follows the fleet's total, so quiet hours are quiet everywhere.
        w = np.array([[x.footfall * HOURLY_PROFILE[x.place_kind][h] for x in m] for h in range(24)])
        fleet = w.sum(axis=1)
        self._p_sale = SALE_SHARE_PEAK * fleet / fleet.max()
        cdf = np.cumsum(w, axis=1) / fleet[:, None]
        cdf[:, -1] = 1.0
        self._m_cdf = (cdf + np.arange(24)[:, None]).ravel()
        healthy = np.array([x.category == "healthy" for x in p])
        pw = np.array([[(0.9 * HEALTHY_KINDS.get(x.place_kind, 1.0)) if h else 1.2 for h in healthy] for x in m])
        pcdf = np.cumsum(pw, axis=1) / pw.sum(axis=1)[:, None]
        pcdf[:, -1] = 1.0
        self._p_cdf = (pcdf + np.arange(M)[:, None]).ravel()
        # expected items per hour of (hour of day, machine, product), before stock-outs and breakdowns
        self.expected_items_per_hour = (
            (HOUR_MS / self.ms_per_event)
            * (w / fleet[:, None] * self._p_sale[:, None])[:, :, None]
            * (pw / pw.sum(axis=1)[:, None])[None, :, :]
            * float(np.dot(*zip(*QUANTITIES)))
        )
        q_vals, q_probs = zip(*QUANTITIES)
        self._q_vals, self._q_cdf = np.array(q_vals), np.cumsum(q_probs)
        self._q_cdf[-1] = 1.0
        mean_qty = float(np.dot(q_vals, q_probs))

        # Stock: a slot holds enough for CAPACITY_INTERVALS x its mean demand between two visits.
        rng = np.random.default_rng([seed, 5])
        slots_per_hour = HOUR_MS / self.ms_per_event
        share = w / fleet[:, None] * self._p_sale[:, None]  # (24, M): sale slots going to m
        per_hour = slots_per_hour * share.mean(axis=0)[:, None] * (pw / pw.sum(axis=1)[:, None]) * mean_qty
        demand = per_hour * (RESTOCK_INTERVAL_MS / HOUR_MS)
        self.capacity = np.maximum(3, np.round(demand * rng.uniform(*CAPACITY_INTERVALS, (M, P)))).astype(np.int64)
        self._stock = np.round(self.capacity * rng.uniform(0.3, 1.0, (M, P))).astype(np.int64)
        self._true_stock = self._stock.copy()
        self._chunks = -(-self.capacity // RESTOCK_MAX)  # restock lines a product may need
        self._visit_phase = (np.arange(M) * RESTOCK_INTERVAL_MS // M).astype(np.int64)
        self._pending: list[int] = []  # restock tasks (machine * (P + 1) + product|P) left by the last block
        self._timeline = _Timeline(seed, M, self.start_ms)
        self._failures_to = self.start_ms - 1

        items_day = slots_per_hour * float(self._p_sale.mean()) * 24 * mean_qty / M
        self.volume_factor = items_day / REFERENCE_ITEMS_PER_MACHINE_DAY
        ms = self.manifest
        ms.capacity = {
            x.machine_id: dict(zip((y.product for y in p), self.capacity[i].tolist())) for i, x in enumerate(m)
        }
        ms.economics = {
            "volume_factor": round(self.volume_factor, 6),
            "reference_items_per_machine_day": REFERENCE_ITEMS_PER_MACHINE_DAY,
            "fixed_cost_cents_per_sim_day": {
                x.machine_id: int(round(x.fixed_cost_cents_per_day * self.volume_factor)) for x in m
            },
            "restock_interval_ms": RESTOCK_INTERVAL_MS,
        }
        self._sync_stock()

    # -- the text of lines -------------------------------------------------------------
    def _build_fragments(self) -> None:
        """Every fixed piece of text a line can hold, in one Arrow array (``self._frag``), with the
        index of each family's first entry. A line is then a few of these fragments, a number or
        two and its time (see ``_lines``): no per-event joining of strings."""
        m, p = self.catalog.machines, self.catalog.products
        self._q_max = int(max(q for q, _ in QUANTITIES))
        stock_keys = [('"stock":{"' if j == 0 else ',"') + f'{x.product}":' for j, x in enumerate(p)]
        codes = range(max(ERROR_CODES + (OUT_OF_SERVICE, 0)) + 1)
        fams = {
            "lo": [str(i) for i in range(1000)],  # numbers: below a thousand
            "lo3": [f"{i:03d}" for i in range(1000)],  # ... their last three digits above
            "hi": [""] + [str(i) for i in range(1, NUM_TABLE)],  # ... and their thousands
            "temp": pc.cast(_arrow(np.arange(TEMP_TABLE) / 100.0), pa.string()).to_pylist(),  # centi-degrees
            # a sale up to its customer: per (machine, product, quantity sold)
            "sale": [
                f'","type":"sale","machine_id":"{_esc(mm.machine_id)}","place":"{_esc(mm.place)}"'
                f',"product":"{pp.product}","category":"{pp.category}","quantity":{q}'
                f',"unit_price":{pp.price_cents / 100:.2f},"customer_id":"C'
                for mm in m
                for pp in p
                for q in range(1, self._q_max + 1)
            ],
            "cust": [f'{c}","event_time":"' for c in range(1, self.catalog.customers + 1)],
            "ms_end": [f'.{i:03d}Z"}}\n' for i in range(1000)],  # milliseconds, then the end of a line
            "ms_tel": [f'.{i:03d}Z","temperature":' for i in range(1000)],
            "tel": [f'","type":"telemetry","machine_id":"{_esc(mm.machine_id)}","event_time":"' for mm in m],
            "code": [f',"error_code":{c},{stock_keys[0]}' for c in codes],
            "key": stock_keys[1:] or [""],
            "tel_end": ["}}\n"],
            "rst": [
                f'","type":"restock","machine_id":"{_esc(mm.machine_id)}","product":"{pp.product}","quantity":'
                for mm in m
                for pp in p
            ],
            "evt": [',"event_time":"'],
        }
        self._f = {}
        texts: list[str] = []
        for name, items in fams.items():
            self._f[name] = len(texts)
            texts += items
        self._frag = _strings(texts)

    # -- block generation -------------------------------------------------------------
    def _visits(self, lo_ms: float, hi_ms: float) -> list[tuple[float, int]]:
        """Restock visits (time, machine) with lo <= time < hi."""
        out = []
        rel_lo, rel_hi = lo_ms - self.start_ms - self._visit_phase, hi_ms - self.start_ms - self._visit_phase
        k_lo = np.ceil(rel_lo / RESTOCK_INTERVAL_MS).astype(np.int64)
        k_hi = np.ceil(rel_hi / RESTOCK_INTERVAL_MS).astype(np.int64)
        for m in np.flatnonzero(k_hi > k_lo):
            for k in range(max(k_lo[m], 0), k_hi[m]):
                out.append((self.start_ms + self._visit_phase[m] + k * RESTOCK_INTERVAL_MS, int(m)))
        return sorted(out)

    def _make_block(self, b: int) -> _Block:
        rng = np.random.default_rng([self.seed, 1000 + b])
        n, M, P = BLOCK, self.M, self.P
        seq = np.arange(b * n, (b + 1) * n, dtype=np.int64)
        ms = (self.start_ms + seq * self.ms_per_event).astype(np.int64)
        hour = (ms // HOUR_MS) % 24
        # Every draw is made for every slot, in a fixed order: the block depends on (seed, b) only.
        u_type, u_mach, u_prod, u_qty, u_err = (rng.random(n) for _ in range(5))
        cust = rng.integers(1, self.catalog.customers + 1, size=n)
        bad = np.where(rng.random(n) < self.bad_rate, rng.integers(len(BAD_KINDS), size=n), -1)
        dup = (rng.random(n) < self.dup_rate) & (bad < 0)
        tel_mach = rng.integers(M, size=n)
        noise = rng.normal(0.0, TEMP_NOISE, size=n)
        codes = np.asarray(ERROR_CODES)[rng.integers(len(ERROR_CODES), size=n)]
        dup_pos = rng.uniform(0.5, 40.0, size=n)

        kind = np.where(u_type < self._p_sale[hour], 0, 1)
        mach = np.searchsorted(self._m_cdf, u_mach + hour, side="right") - hour * M
        mach = np.minimum(mach, M - 1)
        prod = np.minimum(np.searchsorted(self._p_cdf, u_prod + mach, side="right") - mach * P, P - 1)
        qty = self._q_vals[np.searchsorted(self._q_cdf, u_qty, side="right")]
        machine = np.where(kind == 0, mach, tel_mach)
        product = prod.copy()

        # Restock visits take consecutive slots from their time on: restock lines for every
        # product (as many as its capacity may need, each of at most RESTOCK_MAX units), then the
        # machine's report (a telemetry reading); what does not fit waits for the next block.
        tasks = self._pending  # (machine, product or P for the report, first task of its visit)
        n_now = min(len(tasks), n)
        assigned = list(zip(range(n_now), tasks[:n_now]))
        left = tasks[n_now:]
        cursor = n_now
        for v_ms, m in self._visits(float(ms[0]), self.start_ms + (b + 1) * n * self.ms_per_event):
            if len(left) > 4 * n:
                continue  # visits come faster than the stream has slots: this one is skipped
            visit = [(m, j, j == 0 and c == 0) for j in range(P) for c in range(self._chunks[m, j])]
            visit.append((m, P, False))
            first = max(cursor, int(np.ceil((v_ms - ms[0]) / self.ms_per_event)))
            fit = 0 if left else max(0, min(len(visit), n - first))
            assigned += zip(range(first, first + fit), visit[:fit])
            left += visit[fit:]
            cursor = first + fit
        self._pending = left
        visit_first = np.zeros(n, bool)
        r_slots = np.empty(0, np.int64)
        if assigned:
            a_slot = np.array([x for x, _ in assigned], np.int64)
            a_m, a_j, a_first = (np.array(col) for col in zip(*(t for _, t in assigned)))
            machine[a_slot] = a_m
            kind[a_slot] = np.where(a_j < P, 2, 1)
            product[a_slot] = np.minimum(a_j, P - 1)
            visit_first[a_slot[a_first.astype(bool)]] = True
            r_slots = a_slot[a_j < P]

        t_all = ms.astype(np.float64)
        self._timeline.cover(int(ms[-1]) + DAY_MS)

        # Sales against the stock: a sale takes what is left of its product at its machine, a sale
        # that finds nothing (or a broken machine) is lost. Restocks add up to the capacity.
        gid = machine * P + product
        s_idx = np.flatnonzero(kind == 0)
        lost_oos = 0
        if self._timeline.any_broken(t_all[0], t_all[-1]):
            broken_s = self._timeline.broken(machine[s_idx], t_all[s_idx])
            lost_oos = int(broken_s.sum())
            s_idx = s_idx[~broken_s]
        stock0 = self._stock.ravel().copy()
        stock = stock0.copy()
        cap = self.capacity.ravel()
        sold = np.zeros(n, np.int64)
        flow = np.zeros(n, np.int64)
        stockout = np.zeros(n, bool)
        s_gid = gid[s_idx]
        r_gid = gid[r_slots]
        restocked = np.zeros(M * P, bool)
        restocked[r_gid] = True
        simple = ~restocked[s_gid]
        # (machine, product) pairs without a restock in this block: one vectorised pass
        si, sg = s_idx[simple], s_gid[simple]
        order = np.argsort(sg, kind="stable")
        si, sg = si[order], sg[order]
        got, empties = _take_stock(stock[sg], sg, qty[si])
        sold[si] = got
        stockout[si[empties]] = True
        stock -= np.bincount(sg, weights=got, minlength=M * P).astype(np.int64)
        # pairs with restocks: segment by segment, in slot order
        for g in np.unique(r_gid):
            ss = s_idx[s_gid == g]
            rs = r_slots[r_gid == g]
            level = int(stock[g])
            lo = 0
            for r in list(rs) + [n]:
                hi = lo + int(np.searchsorted(ss[lo:], r))
                seg = ss[lo:hi]
                if len(seg):
                    got, empties = _take_stock(np.full(len(seg), level), np.zeros(len(seg), np.int64), qty[seg])
                    sold[seg] = got
                    stockout[seg[empties]] = True
                    level -= int(got.sum())
                if r < n:
                    add = min(RESTOCK_MAX, int(cap[g]) - level)
                    flow[r] = add
                    level += add
                lo = hi
            stock[g] = level
        self._stock = stock.reshape(M, P)
        flow -= sold
        kind[r_slots[flow[r_slots] == 0]] = 1  # nothing to add: the slot is a reading instead
        lost = (kind == 0) & (sold == 0)
        lost_sold_out = int(lost.sum()) - lost_oos
        kind[lost] = 1
        machine[lost] = tel_mach[lost]

        t_idx = np.flatnonzero(kind == 1)  # readings (their values are made with the text)

        # Duplicate deliveries: an exact copy of the line, a few lines later.
        idx = np.flatnonzero(dup)
        pos = np.concatenate([np.arange(n, dtype=np.float64), idx + dup_pos[idx]])
        by_pos = np.argsort(pos, kind="stable")
        src = np.concatenate([np.arange(n), idx])[by_pos]
        is_copy = np.concatenate([np.zeros(n, bool), np.ones(len(idx), bool)])[by_pos]

        line_kind = np.where(bad >= 0, 3, kind)[src]
        line_kind = np.where(is_copy, 4, line_kind)
        valid_sale = line_kind == 0
        product_l = np.where(valid_sale, product[src], -1)
        qty_l = sold[src]
        revenue = np.where(valid_sale, qty_l * self._price_cents[product[src]], 0)
        # The text: a pure function of what the block simulated, so it is made on another thread
        # (Arrow and NumPy release the GIL) while this one simulates the next block.
        text = _text_pool().submit(
            self._text_of,
            seq,
            ms,
            machine,
            product,
            cust,
            np.flatnonzero(kind == 0),
            sold,
            t_idx,
            (t_all, noise, u_err, codes, stock0),
            np.flatnonzero(kind == 2),
            flow,
            bad,
            src if len(idx) else None,
        )
        phys = {
            "machine": machine,
            "product": product,
            "flow": flow,
            "stockout": stockout,
            "visit": visit_first,
            "ms": ms,
            "lost_sold_out": lost_sold_out,
            "lost_oos": lost_oos,
        }
        return _Block(
            text,
            len(src),
            product_l,
            qty_l,
            revenue,
            line_kind,
            np.where(is_copy, -1, bad[src]),
            int(ms[0]),
            np.where(is_copy, -1, src),
            phys,
        )

    def _text_of(
        self, seq, ms, machine, product, cust, sale_i, sold, t_idx, draws, r_i, flow, bad, src
    ) -> tuple[memoryview, np.ndarray]:
        """The block's JSON lines in output order (``src``: the slot of each line, None for
        each slot once, in order) as one buffer, and the byte offset of each line in it."""
        centi, code, st = self._readings(machine, product, t_idx, flow, *draws)
        pieces, order, start, count = self._lines(
            seq, ms, machine, product, cust, sale_i, sold, t_idx, centi, code, st, r_i, flow
        )
        buf, offsets = _text(pieces, order)  # every slot's good line, in slot order
        at = offsets[np.r_[start, len(order)]].astype(np.int64)
        bad_i = np.flatnonzero(bad >= 0)
        if src is None and not len(bad_i):
            return buf, at
        # Copies and malformed lines: the output is runs of consecutive slots of that text, and
        # the malformed lines, each made from its good line.
        n = len(seq)
        src = np.arange(n) if src is None else src
        own = {
            int(i): self._corrupt(bytes(buf[at[i] : at[i + 1]]).decode(), BAD_KINDS[bad[i]], int(i)).encode()
            for i in bad_i
        }
        is_bad = bad >= 0
        cut = np.flatnonzero((np.diff(src) != 1) | is_bad[src[1:]] | is_bad[src[:-1]]) + 1
        parts = []
        for a, b in zip(np.r_[0, cut].tolist(), np.r_[cut, len(src)].tolist()):
            first = int(src[a])
            parts.append(own[first] if is_bad[first] else buf[at[first] : at[src[b - 1] + 1]])
        size = np.diff(at)
        size[bad_i] = [len(own[int(i)]) for i in bad_i]
        return memoryview(b"".join(parts)), np.r_[0, np.cumsum(size[src])]

    def _readings(self, machine, product, t_idx, flow, t_all, noise, u_err, codes, stock0):
        """Telemetry readings: temperature (centi-degrees), fault code and the stock at that slot,
        from the timeline and the block's flows."""
        n, M, P = len(machine), self.M, self.P
        tm = machine[t_idx]
        broken, since, prog, drift, perr, warm = self._timeline.state(tm, t_all[t_idx])
        base_t = self._timeline.base_temp[tm]
        temp = base_t + drift * prog + warm + noise[t_idx]
        temp = np.where(broken, base_t + np.minimum(8.0, BROKEN_WARMING_C_PER_H * since) + noise[t_idx], temp)
        p_fault = ERROR_BASE + (perr - ERROR_BASE) * prog + np.where(warm > 0, EPISODE_ERROR, 0.0)
        code = np.where(broken, OUT_OF_SERVICE, np.where(u_err[t_idx] < p_fault, codes[t_idx], 0))
        centi = np.maximum(np.round(temp * 100), 1.0)
        # stock at a reading = stock at the block start + the machine's flows before that slot
        f_slots = np.flatnonzero(flow)
        f_key = machine[f_slots] * n + f_slots
        f_order = np.argsort(f_key, kind="stable")
        f_key = f_key[f_order]
        dense = np.zeros((len(f_slots) + 1, P), np.int64)
        dense[np.arange(1, len(f_slots) + 1), product[f_slots][f_order]] = flow[f_slots][f_order]
        cum = np.cumsum(dense, axis=0)
        first = np.searchsorted(f_key, np.arange(M) * n)  # each machine's first flow
        st = stock0.reshape(M, P)[tm] + cum[np.searchsorted(f_key, tm * n + t_idx)] - cum[first[tm]]
        return centi, code, st

    def _lines(self, seq, ms, machine, product, cust, sale_i, sold, t_idx, centi, code, st, r_i, flow):
        """The text of a block's lines (slot order) as pieces: returns (pieces, order, start,
        count), slot i being ``pieces.take(order[start[i]: start[i] + count[i]])`` joined.

        Almost every piece is a fixed fragment (``_build_fragments``); a number is two pieces, its
        thousands and its last three digits, both from tables, so nothing is formatted per event.
        A sale is 6 pieces: event id (2), everything from its type to its customer prefix (one
        fragment per machine, product and quantity sold), customer with the event-time key, the
        second, the millisecond with the line's end. A reading is 3P + 7, a restock 8."""
        f, n, P = self._f, len(seq), self.P
        dyn: list[pa.Array] = []  # the block's own pieces, after the fragments
        base = [len(self._frag)]

        def add(arr: pa.Array) -> int:
            dyn.append(arr)
            base.append(base[-1] + len(arr))
            return base[-2]

        sec = ms // 1000
        uniq, inv = _runs(sec)
        ts = add(pc.strftime(_arrow(uniq, pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S", locale="C")) + inv
        milli = ms - sec * 1000
        # the event id: prefix and thousands (a few per block), then the last three digits
        hi = seq // 1000
        hu, hinv = _runs(hi)
        eid_hi = (
            add(
                _strings(
                    [f'{{"event_id":"e{self.seed}-{h}' if h else f'{{"event_id":"e{self.seed}-' for h in hu.tolist()]
                )
            )
            + hinv
        )
        eid_lo = np.where(hi > 0, f["lo3"], f["lo"]) + seq % 1000

        def number(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Pieces of non-negative integers: thousands ("" below 1000) and last three digits."""
            h = v // 1000
            hi_i = f["hi"] + h
            big = h >= NUM_TABLE
            if big.any():
                hi_i[big] = add(pc.cast(_arrow(h[big]), pa.string())) + np.arange(int(big.sum()))
            return hi_i, np.where(h > 0, f["lo3"], f["lo"]) + v % 1000

        temp_i = f["temp"] + centi.astype(np.int64)
        hot = centi >= TEMP_TABLE
        if hot.any():
            temp_i[hot] = add(pc.cast(_arrow(centi[hot] / 100.0), pa.string())) + np.arange(int(hot.sum()))
        st_hi, st_lo = number(st)
        fl_hi, fl_lo = number(flow[r_i])
        pieces = pa.concat_arrays([self._frag] + dyn)

        count = np.full(n, 6, np.int64)
        count[t_idx] = 3 * P + 7
        count[r_i] = 8
        start = np.r_[0, np.cumsum(count)[:-1]]
        order = np.empty(int(count.sum()), np.int32)

        def put(rows: np.ndarray, mat: np.ndarray) -> None:
            order[(start[rows][:, None] + np.arange(mat.shape[1])).ravel()] = mat.ravel()

        mat = np.empty((len(sale_i), 6), np.int32)
        mat[:, 0], mat[:, 1] = eid_hi[sale_i], eid_lo[sale_i]
        mat[:, 2] = f["sale"] + (machine[sale_i] * P + product[sale_i]) * self._q_max + sold[sale_i] - 1
        mat[:, 3], mat[:, 4], mat[:, 5] = f["cust"] + cust[sale_i] - 1, ts[sale_i], f["ms_end"] + milli[sale_i]
        put(sale_i, mat)
        k = len(t_idx)
        mat = np.empty((k, 3 * P + 7), np.int32)
        mat[:, 0], mat[:, 1], mat[:, 2] = eid_hi[t_idx], eid_lo[t_idx], f["tel"] + machine[t_idx]
        mat[:, 3], mat[:, 4], mat[:, 5], mat[:, 6] = ts[t_idx], f["ms_tel"] + milli[t_idx], temp_i, f["code"] + code
        stock = mat[:, 6 : 6 + 3 * P].reshape(k, P, 3)  # [key, thousands, last digits] per product...
        stock[:, 1:, 0] = f["key"] + np.arange(P - 1)  # ...the first key is in the fault-code fragment
        stock[:, :, 1], stock[:, :, 2] = st_hi, st_lo
        mat[:, -1] = f["tel_end"]
        put(t_idx, mat)
        mat = np.empty((len(r_i), 8), np.int32)
        mat[:, 0], mat[:, 1], mat[:, 2] = eid_hi[r_i], eid_lo[r_i], f["rst"] + machine[r_i] * P + product[r_i]
        mat[:, 3], mat[:, 4], mat[:, 5] = fl_hi, fl_lo, f["evt"]
        mat[:, 6], mat[:, 7] = ts[r_i], f["ms_end"] + milli[r_i]
        put(r_i, mat)
        return pieces, order, start, count

    def _corrupt(self, line: str, kind: str, i: int) -> str:
        body = line.rstrip("\n")
        if kind == "not_json_object":
            return body[: len(body) // 2] + "\n"  # a truncated line
        ev = orjson.loads(body)
        ev["type"] = "sale"  # corrupt a sale-shaped event so the reason is the intended one
        for f, _ in schema.FIELDS[schema.SALE]:
            ev.setdefault(
                f,
                {
                    "place": "unknown",
                    "category": "unhealthy",
                    "unit_price": 1.5,
                    "customer_id": "C1",
                    "quantity": 1,
                }.get(f, ev.get(f, "chocolate_bar")),
            )
        ev["category"] = "unhealthy" if ev["category"] not in schema.CATEGORIES else ev["category"]
        ev["product"] = ev["product"] if ev["product"] in self.catalog.product_names else "chocolate_bar"
        ev.pop("stock", None), ev.pop("temperature", None), ev.pop("error_code", None)
        if kind == "missing_field:quantity":
            ev.pop("quantity")
        elif kind == "wrong_type:quantity":
            ev["quantity"] = "two"
        elif kind == "bad_quantity":
            ev["quantity"] = -1 if i % 2 else 0
        elif kind == "unknown_product":
            ev["product"] = "unobtainium"
        elif kind == "unknown_machine":
            ev["machine_id"] = "VM-999"
        elif kind == "bad_time":
            ev["event_time"] = "yesterday at noon"
        return orjson.dumps(ev).decode() + "\n"

    # -- handing out chunks -------------------------------------------------------------
    def take(self, n: int) -> Chunk:
        """The next ``n`` lines of the stream (as JSON lines) and the manifest updated for them."""
        parts: list[tuple[_Block, int, int]] = []
        first_ms = None
        left = n
        while left > 0:
            if self._block is None or self._pos >= len(self._block):
                self._block_start = (self._stock.copy(), list(self._pending))
                self._block = self._make_block(self._block_no)
                self._block_no += 1
                self._pos = 0
            blk = self._block
            k = min(left, len(blk) - self._pos)
            sl = slice(self._pos, self._pos + k)
            if first_ms is None:
                first_ms = blk.first_ms + int(self._pos * self.ms_per_event)
            parts.append((blk, self._pos, self._pos + k))
            self._account(blk, sl)
            self._pos += k
            left -= k
        self._sync_stock()
        self.manifest.resume = self.resume_state()
        text = [blk.text(a, b) for blk, a, b in parts]  # waits for the text of the last blocks
        return Chunk(text, n, first_ms if first_ms is not None else self.now_ms())

    def _account(self, blk: _Block, sl: slice) -> None:
        m = self.manifest
        kind, product = blk.kind[sl], blk.product[sl]
        m.events += len(kind)
        m.sales += int(np.count_nonzero(kind == 0))
        m.telemetry += int(np.count_nonzero(kind == 1))
        m.restocks += int(np.count_nonzero(kind == 2))
        m.malformed += int(np.count_nonzero(kind == 3))
        m.duplicates += int(np.count_nonzero(kind == 4))
        for r in blk.bad[sl][blk.bad[sl] >= 0]:
            m.malformed_by_reason[BAD_KINDS[r]] = m.malformed_by_reason.get(BAD_KINDS[r], 0) + 1
        valid = product >= 0
        items = np.bincount(product[valid], weights=blk.qty[sl][valid], minlength=len(self.catalog.products))
        rev = np.bincount(product[valid], weights=blk.revenue[sl][valid], minlength=len(self.catalog.products))
        for p, it, rv in zip(self.catalog.products, items, rev):
            m.items_by_product[p.product] += int(it)
            m.items_by_category[p.category] += int(it)
            m.revenue_cents_by_category[p.category] += int(rv)
        if len(kind):
            start = blk.first_ms + int(sl.start * self.ms_per_event)
            m.first_event_ms = m.first_event_ms if m.first_event_ms is not None else start
            m.last_event_ms = blk.first_ms + int((sl.stop - 1) * self.ms_per_event)
        # The physical world of the slots these lines carry (a duplicate copy carries none).
        ph = blk.phys
        slots = blk.slot[sl]
        slots = slots[slots >= 0]
        if not len(slots):
            return
        self._last_seq = (self._block_no - 1) * BLOCK + int(slots[-1])
        mach, prod, flow = ph["machine"][slots], ph["product"][slots], ph["flow"][slots]
        np.add.at(self._true_stock, (mach, prod), flow)
        names = self.catalog.machines
        pnames = self.catalog.products
        for s in slots[ph["stockout"][slots]]:
            m.stockouts.append([names[ph["machine"][s]].machine_id, pnames[ph["product"][s]].product, int(ph["ms"][s])])
        for s in slots[ph["visit"][slots]]:
            m.restock_visits.append([names[ph["machine"][s]].machine_id, int(ph["ms"][s])])
        if sl.start == 0:  # per-block counts, once per block
            m.lost_sales["sold_out"] += ph["lost_sold_out"]
            m.lost_sales["out_of_service"] += ph["lost_oos"]
        last = int(ph["ms"][slots.max()])
        if last > self._failures_to:
            for mi, deg, failed, repaired in self._timeline.failures_between(self._failures_to, last):
                m.breakdowns.append(
                    {
                        "machine_id": names[mi].machine_id,
                        "degrading_ms": deg,
                        "failed_ms": failed,
                        "repaired_ms": repaired,
                    }
                )
            self._failures_to = last

    def _sync_stock(self) -> None:
        ids = [x.machine_id for x in self.catalog.machines]
        pn = [x.product for x in self.catalog.products]
        self.manifest.stock = {mid: dict(zip(pn, row)) for mid, row in zip(ids, self._true_stock.tolist())}

    # -- continuing a stream (a restarted generator) ------------------------------------
    SETTINGS = ("rate", "time_scale", "start", "bad_rate", "dup_rate")

    def resume_state(self) -> dict:
        """What a new generator needs to continue this stream exactly after the last line taken
        (kept in the manifest): the block to regenerate, the world's state before it, the
        position in it. Small: the stock of every slot and the restock visits in progress."""
        if self._block is None:
            return {
                "lines": self.manifest.events,
                "block": 0,
                "pos": 0,
                "stock": None,
                "pending": [],
                "failures_to": self._failures_to,
                "last_seq": self._last_seq,
            }
        if self._pos >= len(self._block):  # the current block is used up: start at the next one
            block, pos, stock, pending = self._block_no, 0, self._stock, self._pending
        else:
            block, pos = self._block_no - 1, self._pos
            stock, pending = self._block_start
        return {
            "lines": self.manifest.events,
            "block": block,
            "pos": pos,
            "stock": stock.tolist(),
            "pending": [[int(m), int(j), bool(f)] for m, j, f in pending],
            "failures_to": int(self._failures_to),
            "last_seq": self._last_seq,
        }

    @classmethod
    def from_manifest(cls, catalog: Catalog, m: Manifest) -> Generator:
        """A generator with the settings of ``m``, continuing its stream (from a manifest written before
        generators could continue, only its counts go on)."""
        st = m.settings
        gen = cls(
            catalog,
            m.seed,
            st["rate"],
            st["time_scale"],
            start=st["start"],
            bad_rate=st["bad_rate"],
            dup_rate=st["dup_rate"],
        )
        if m.resume is None and m.events:
            gen.manifest = m
        else:
            gen.resume(m)
        return gen

    def check_continues(self, m: Manifest) -> None:
        """Raise ValueError, naming the difference, if ``m`` is not a stream of these settings."""
        ours = dict(self.manifest.settings, seed=self.seed)
        theirs = dict(m.settings, seed=m.seed)

        def show(v):
            return f"{v:g}" if isinstance(v, (int, float)) else str(v)

        diff = [
            f"--{k.replace('_', '-')} {show(theirs.get(k))} (now {show(ours[k])})"
            for k in ("seed",) + self.SETTINGS
            if theirs.get(k) != ours[k]
        ]
        if diff:
            raise ValueError(
                "the log was produced with " + ", ".join(diff) + ": a restarted generator continues "
                "the same stream, so use the same settings, or start a new log"
            )

    def resume(self, m: Manifest) -> None:
        """Continue the stream ``m`` describes (its counts go on adding up): the next line is the
        one after the last line ``m`` covers, with the world (stock, restock visits, breakdowns)
        as it was. Needs ``m.resume`` (written by ``take``)."""
        self.check_continues(m)
        st = m.resume
        if st is None or st["lines"] != m.events:
            if m.events:
                raise ValueError(
                    f"manifest of {m.events} lines has no generator position to continue from "
                    f"(made by an older version)"
                )
            self.manifest = m
            return
        if st["stock"] is not None:
            self._stock = np.asarray(st["stock"], dtype=np.int64).reshape(self.M, self.P)
            self._pending = [(m_, j, f) for m_, j, f in st["pending"]]
            self._block_start = (self._stock.copy(), list(self._pending))
            self._block = self._make_block(st["block"])
            self._block_no = st["block"] + 1
            self._pos = st["pos"]
        ids = {x.machine_id: i for i, x in enumerate(self.catalog.machines)}
        pn = [x.product for x in self.catalog.products]
        for mid, row in m.stock.items():
            self._true_stock[ids[mid]] = [row[p] for p in pn]
        self._failures_to = st["failures_to"]
        self._last_seq = st["last_seq"]
        self.manifest = m
        m.resume = self.resume_state()

    def skip_past(self, seq: int, progress=None) -> bytes:
        """Take (and count, without keeping) every line up to and including the original line of
        stream slot ``seq``: regenerates the stream from here, so it costs time in proportion (a
        few hundred thousand lines a second). For a log whose manifest is lost. Returns that line."""
        b, slot = divmod(seq, BLOCK)
        done = 0
        chunk = None
        while True:
            if self._block is None or self._pos >= len(self._block):
                if self._block_no > b:
                    raise ValueError(f"stream slot {seq} is behind the generator (block {self._block_no - 1})")
                chunk = self.take(1)
                done += 1
                continue
            if self._block_no - 1 > b:
                raise ValueError(f"stream slot {seq} is behind the generator (block {self._block_no - 1})")
            if self._block_no - 1 < b:
                n = len(self._block) - self._pos
            else:
                where = np.flatnonzero(self._block.slot == slot)
                n = int(where[0]) + 1 - self._pos
                if n <= 0:
                    if chunk is None:
                        raise ValueError(f"stream slot {seq} is behind the generator")
                    return chunk.data[chunk.data.rstrip(b"\n").rfind(b"\n") + 1 :]
            chunk = self.take(n)
            done += n
            if progress is not None:
                progress(done)

    def now_ms(self) -> int:
        """Simulated time of the next event."""
        return (
            int(self.start_ms + (self._block_no - 1) * BLOCK * self.ms_per_event + self._pos * self.ms_per_event)
            if self._block is not None
            else self.start_ms
        )


def _take_stock(level: np.ndarray, group: np.ndarray, qty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sales in slot order, sorted by ``group`` (a (machine, product) pair), each group starting
    with ``level`` units: what each sale gets (what it asked for, the rest of the stock, or 0),
    and which sale emptied its group."""
    if not len(qty):
        return qty.copy(), np.zeros(0, bool)
    cs = np.cumsum(qty)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(qty)]))
    before = cs - qty - (cs[first] - qty[first])
    got = np.clip(level - before, 0, qty)
    return got, (got > 0) & (before + got == level)


# Arrow arrays straight from buffers: pa.array() imports pandas on its first call (~0.3 s of a
# command's start-up), and the generator needs nothing from it.
_ARROW_TYPES = {np.dtype(np.int64): pa.int64(), np.dtype(np.int32): pa.int32(), np.dtype(np.float64): pa.float64()}


def _arrow(x: np.ndarray, type: pa.DataType | None = None) -> pa.Array:
    """A NumPy array of numbers as an Arrow array (``type``: another type over the same bytes)."""
    x = np.ascontiguousarray(x)
    return pa.Array.from_buffers(type or _ARROW_TYPES[x.dtype], len(x), [None, pa.py_buffer(x)])


def _strings(texts: list[str]) -> pa.StringArray:
    data = [t.encode() for t in texts]
    offsets = np.zeros(len(data) + 1, np.int32)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def _runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True)`` of a sorted array, without sorting it."""
    new = np.r_[True, x[1:] != x[:-1]]
    return x[new], np.cumsum(new) - 1


_POOL: list[ThreadPoolExecutor] = []


def _text_pool() -> ThreadPoolExecutor:
    """Threads that make blocks' text (shared by the generators of a process)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(TEXT_THREADS, thread_name_prefix="generator-text"))
    return _POOL[0]


def _text(pieces: pa.StringArray, order: np.ndarray) -> tuple[memoryview, np.ndarray]:
    """The pieces at ``order`` joined, and the offset of each piece in it: one Arrow take, whose
    data buffer is the text. The lines are never joined one by one: a block's pieces are every
    distinct piece of text its lines are made of (fragments, numbers, times), ``order`` the
    index of each piece of each line."""
    if not len(order):
        return memoryview(b""), np.zeros(1, np.int32)
    arr = pieces.take(_arrow(order))
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return memoryview(arr.buffers()[2])[: int(offsets[-1])], offsets


def set_aside(manifest_path: Path) -> Path:
    """Rename a manifest that belongs to an earlier log (the log is new), so it is not overwritten."""
    dest = manifest_path.with_name(f"{manifest_path.stem}.before-{wall_ms()}{manifest_path.suffix}")
    manifest_path.replace(dest)
    return dest


def marker_line(marker_id: str, created_ms: int) -> bytes:
    """A latency marker: carries its wall-clock creation time through the pipeline."""
    return orjson.dumps({"event_id": marker_id, "type": schema.MARKER, "created_ms": created_ms}) + b"\n"


def wall_ms() -> int:
    return int(time.time() * 1000)
