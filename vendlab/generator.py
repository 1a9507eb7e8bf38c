"""Event generator: vectorised with NumPy and Arrow, reproducible from a seed.

Events are made in fixed blocks of ``BLOCK`` events, block ``b`` drawn from
``numpy.random.default_rng([seed, b])``, so the stream depends only on the seed and the
settings, never on how a caller slices it or how fast it runs. Lines are built column-wise
with Arrow string kernels and handed out as one ``bytes`` of JSON lines per chunk.

The generator keeps the ground truth (a :class:`Manifest`): items per product over valid,
unique sales, and a count of everything it injected (malformed lines by reason, duplicates).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from vendlab import schema
from vendlab.catalog import Catalog

BLOCK = 4096
DEFAULT_START = "2026-01-05T06:00:00Z"
TYPE_WEIGHTS = {schema.SALE: 0.90, schema.TELEMETRY: 0.08, schema.RESTOCK: 0.02}

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
        dt = dt.replace(tzinfo=timezone.utc)
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

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def save(self, path: Path) -> None:
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        return cls(**json.loads(path.read_text()))

    # A manifest consistent with the log, across a crash of the writer: before a segment is
    # renamed into place the manifest that covers it is written as PENDING; after the rename it
    # replaces manifest.json. On recovery a pending manifest is promoted only if its segment
    # exists (the rename happened), else dropped.
    @staticmethod
    def pending_path(path: Path) -> Path:
        return path.with_name(".pending-" + path.name)

    @classmethod
    def recover(cls, path: Path, segment_exists) -> "Manifest | None":
        pending = cls.pending_path(path)
        if pending.exists():
            m = cls.load(pending)
            if segment_exists(m.segments - 1):
                pending.replace(path)
            else:
                pending.unlink()
        return cls.load(path) if path.exists() else None


@dataclass
class Chunk:
    data: bytes  # JSON lines, each ending with "\n"
    lines: int
    first_ms: int  # nominal (simulated) time of the chunk's first event


class _Block:
    """One generated block: the lines as an Arrow array plus per-line facts for the manifest."""

    def __init__(self, lines: pa.StringArray, product: np.ndarray, qty: np.ndarray, revenue: np.ndarray,
                 kind: np.ndarray, bad: np.ndarray, first_ms: int):
        self.lines = lines
        self.product = product  # product index for valid unique sales, -1 otherwise
        self.qty = qty
        self.revenue = revenue
        self.kind = kind  # 0 sale, 1 telemetry, 2 restock, 3 malformed, 4 duplicate
        self.bad = bad  # index into BAD_KINDS, -1 otherwise
        self.first_ms = first_ms


class Generator:
    def __init__(self, catalog: Catalog, seed: int, rate: float, time_scale: float = 60.0,
                 start: str = DEFAULT_START, bad_rate: float = 0.0, dup_rate: float = 0.0):
        if rate <= 0:
            raise ValueError("rate must be > 0")
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
        self.manifest = Manifest(
            seed=seed,
            settings=dict(rate=rate, time_scale=time_scale, start=start, bad_rate=bad_rate, dup_rate=dup_rate),
            malformed_by_reason={},
            items_by_product={p.product: 0 for p in catalog.products},
            items_by_category={c: 0 for c in schema.CATEGORIES},
            revenue_cents_by_category={c: 0 for c in schema.CATEGORIES},
        )
        m = catalog.machines
        self._m_prefix = pa.array([f'","machine_id":"{_esc(x.machine_id)}","place":"{_esc(x.place)}"' for x in m])
        self._m_weights = np.array([x.footfall for x in m]) / sum(x.footfall for x in m)
        p = catalog.products
        self._p_part = pa.array([f',"product":"{x.product}","category":"{x.category}","quantity":' for x in p])
        self._p_price = pa.array([f',"unit_price":{x.price_cents / 100:.2f},"customer_id":"C' for x in p])
        self._price_cents = np.array([x.price_cents for x in p], dtype=np.int64)
        self._cat_healthy = np.array([x.category == "healthy" for x in p])
        # Popularity: unhealthy snacks sell a bit more, as in most fleets.
        w = np.array([1.2 if x.category == "unhealthy" else 0.9 for x in p])
        self._p_weights = w / w.sum()

    # -- block generation -------------------------------------------------------------
    def _make_block(self, b: int) -> _Block:
        rng = np.random.default_rng([self.seed, 1000 + b])
        n = BLOCK
        seq = np.arange(b * n, (b + 1) * n, dtype=np.int64)
        ms = (self.start_ms + seq * self.ms_per_event).astype(np.int64)
        types = rng.choice(3, size=n, p=list(TYPE_WEIGHTS.values()))
        mach = rng.choice(len(self.catalog.machines), size=n, p=self._m_weights)
        prod = rng.choice(len(self.catalog.products), size=n, p=self._p_weights)
        qty = rng.choice([1, 2, 3], size=n, p=[0.75, 0.18, 0.07]).astype(np.int64)
        cust = rng.integers(1, self.catalog.customers + 1, size=n)
        bad = np.where(rng.random(n) < self.bad_rate, rng.integers(len(BAD_KINDS), size=n), -1)
        dup = (rng.random(n) < self.dup_rate) & (bad < 0)
        temps = rng.normal(5.0, 0.6, size=n)
        errors = np.where(rng.random(n) < 0.01, rng.integers(1, 6, size=n), 0)

        eid = pc.binary_join_element_wise("{\"event_id\":\"e", pa.array(np.full(n, f"{self.seed}-")),
                                          pc.cast(pa.array(seq), pa.string()), "")
        ts = pc.strftime(pa.array(ms.astype("datetime64[ms]")), format="%Y-%m-%dT%H:%M:%SZ", locale="C")
        sale = pc.binary_join_element_wise(
            eid, '","type":"sale', self._m_prefix.take(pa.array(mach)), self._p_part.take(pa.array(prod)),
            pc.cast(pa.array(qty), pa.string()), self._p_price.take(pa.array(prod)),
            pc.cast(pa.array(cust), pa.string()), '","event_time":"', ts, '"}\n', "")
        # Telemetry, restock and malformed lines are rare enough to build one by one; they
        # replace their row through an index into [sale lines..., other lines...].
        other: list[str] = []
        pick = np.arange(n)
        rare = np.flatnonzero((types != 0) | (bad >= 0))
        if len(rare):
            ts_list = pc.take(ts, pa.array(rare)).to_pylist()
            stocks = rng.integers(0, 20, size=(len(rare), len(self.catalog.products)))
            restock_qty = rng.integers(5, 20, size=len(rare))
            names = [p.product for p in self.catalog.products]
            for j, i in enumerate(rare):
                if bad[i] >= 0 and types[i] == 0:
                    line = self._corrupt(sale[int(i)].as_py(), BAD_KINDS[bad[i]], int(i))
                else:
                    line = self._other(types[i], int(seq[i]), mach[i], prod[i], ts_list[j], temps[i], errors[i],
                                       dict(zip(names, stocks[j].tolist())), int(restock_qty[j]))
                    if bad[i] >= 0:
                        line = self._corrupt(line, BAD_KINDS[bad[i]], int(i))
                other.append(line)
                pick[i] = n + j
        all_lines = pa.concat_arrays([sale, pa.array(other, type=pa.string())]) if other else sale

        # Duplicate deliveries: an exact copy of the line, a few lines later.
        idx = np.flatnonzero(dup)
        pos = np.concatenate([np.arange(n, dtype=np.float64), idx + rng.uniform(0.5, 40.0, size=len(idx))])
        order = np.argsort(pos, kind="stable")
        src = np.concatenate([np.arange(n), idx])[order]
        is_copy = np.concatenate([np.zeros(n, bool), np.ones(len(idx), bool)])[order]

        kind = np.where(bad >= 0, 3, types)[src]
        kind = np.where(is_copy, 4, kind)
        valid_sale = (kind == 0)
        product = np.where(valid_sale, prod[src], -1)
        revenue = np.where(valid_sale, qty[src] * self._price_cents[prod[src]], 0)
        out = all_lines.take(pa.array(pick[src]))
        return _Block(out, product, qty[src], revenue, kind, np.where(is_copy, -1, bad[src]), int(ms[0]))

    def _other(self, etype, seq, mach, prod, ts, temp, error, stock, restock_qty) -> str:
        mid = self.catalog.machines[mach].machine_id
        if etype == 1:
            ev = {"event_id": f"e{self.seed}-{seq}", "type": "telemetry", "machine_id": mid, "event_time": ts,
                  "temperature": round(float(temp), 2), "error_code": int(error), "stock": stock}
        else:
            ev = {"event_id": f"e{self.seed}-{seq}", "type": "restock", "machine_id": mid,
                  "product": self.catalog.products[prod].product, "quantity": restock_qty, "event_time": ts}
        return orjson.dumps(ev).decode() + "\n"

    def _corrupt(self, line: str, kind: str, i: int) -> str:
        body = line.rstrip("\n")
        if kind == "not_json_object":
            return body[: len(body) // 2] + "\n"  # a truncated line
        ev = orjson.loads(body)
        ev["type"] = "sale"  # corrupt a sale-shaped event so the reason is the intended one
        for f, _ in schema.FIELDS[schema.SALE]:
            ev.setdefault(f, {"place": "unknown", "category": "unhealthy", "unit_price": 1.5,
                              "customer_id": "C1", "quantity": 1}.get(f, ev.get(f, "chocolate_bar")))
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
        parts: list[pa.StringArray] = []
        first_ms = None
        left = n
        while left > 0:
            if self._block is None or self._pos >= len(self._block.lines):
                self._block = self._make_block(self._block_no)
                self._block_no += 1
                self._pos = 0
            blk = self._block
            k = min(left, len(blk.lines) - self._pos)
            sl = slice(self._pos, self._pos + k)
            if first_ms is None:
                first_ms = blk.first_ms + int(self._pos * self.ms_per_event)
            parts.append(blk.lines.slice(self._pos, k))
            self._account(blk, sl)
            self._pos += k
            left -= k
        data = b"".join(_string_bytes(p) for p in parts)
        return Chunk(data=data, lines=n, first_ms=first_ms if first_ms is not None else self.now_ms())

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

    def now_ms(self) -> int:
        """Simulated time of the next event."""
        return int(self.start_ms + (self._block_no - 1) * BLOCK * self.ms_per_event + self._pos * self.ms_per_event) \
            if self._block is not None else self.start_ms


def _string_bytes(arr: pa.StringArray) -> bytes:
    """The concatenated UTF-8 bytes of an Arrow string array, without a Python loop."""
    if len(arr) == 0:
        return b""
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    return arr.buffers()[2].to_pybytes()[offsets[0]: offsets[-1]]


def marker_line(marker_id: str, created_ms: int) -> bytes:
    """A latency marker: carries its wall-clock creation time through the pipeline."""
    return orjson.dumps({"event_id": marker_id, "type": schema.MARKER, "created_ms": created_ms}) + b"\n"


def wall_ms() -> int:
    return int(time.time() * 1000)
