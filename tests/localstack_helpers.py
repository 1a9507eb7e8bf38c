"""Helpers of the tests on a local stack (tests/test_localstack_*.py): the start scripts as a user runs
them, and an independent recount of the Kafka topic."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

from vendlab import schema
from vendlab.bench import stack_run


def start_script(stack: str, stack_dir: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``./STACK/start_STACK.py --local DIR ARGS`` as a user runs it (vendlab.bench.stack_run), its output in the
    test's captured stderr."""
    r = stack_run.start_script(stack, stack_dir, *args, timeout=timeout)
    print(
        f"$ start_{stack}.py --local {stack_dir} {' '.join(args)}  -> exit {r.returncode}\n{r.stdout}{r.stderr}",
        file=sys.stderr,
    )
    return r


def pids(stack_dir: Path) -> dict[str, int]:
    """The start script's jobs -> pid, from their pid files (DIR/jobs/NAME.pid)."""
    return {f.stem: int(f.read_text()) for f in (stack_dir / "jobs").glob("*.pid")}


# -- an independent recount of the topic, from the contract in vendlab/schema.py ----------------------
def _kind(value, kind: str) -> bool:
    if value is None:
        return False
    if kind == "str":
        return True
    if kind in ("int", "long"):
        bits = 32 if kind == "int" else 64
        return type(value) is int and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)
    if kind == "num":
        return type(value) in (int, float) and math.isfinite(value)
    return True  # other kinds are not in a sale


def _no_constant(name):
    raise ValueError(name)


def valid_sale(line: bytes, machines: set[str], products: set[str]) -> dict | None:
    """The sale a line is, if it is a valid one (schema.FIELDS, SEMANTIC_CHECKS and the bounds), else None."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) > schema.MAX_LINE_CHARS:
        return None
    try:
        ev = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(ev, dict) or ev.get("type") != schema.SALE:
        return None
    if not all(_kind(ev.get(name), kind) for name, kind in schema.COMMON + schema.FIELDS[schema.SALE]):
        return None
    t = ev["event_time"]
    try:
        time_ok = (
            isinstance(t, str)
            and bool(schema.TIME_PATTERN.match(t))
            and datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ") is not None
        )
    except ValueError:
        time_ok = False
    ok = (
        ev["machine_id"] in machines
        and ev["product"] in products
        and ev["category"] in schema.CATEGORIES
        and 1 <= ev["quantity"] <= schema.MAX_SALE_QUANTITY
        and 0 < ev["unit_price"] <= schema.MAX_UNIT_PRICE
        and time_ok
    )
    return ev if ok else None


def recount_items_by_product(bootstrap: str, topic: str, seed: int) -> dict[str, int]:
    """Every record of ``topic`` (a finished stream) read with confluent-kafka from the first offset to the
    last: items per product over the valid sales, each event id counted once."""
    from confluent_kafka import Consumer, TopicPartition

    from vendlab.world.catalog import make_catalog

    catalog = make_catalog(seed)
    machines, products = catalog.machine_ids, catalog.product_names
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"recount-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
        }
    )
    try:
        parts = sorted(c.list_topics(topic, timeout=30).topics[topic].partitions)
        marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in parts}
        assert all(low == 0 for low, _ in marks.values()), f"records deleted from {topic}: {marks}"
        left = {p: high for p, (low, high) in marks.items() if high > low}
        c.assign([TopicPartition(topic, p, 0) for p in left])
        seen: set[str] = set()
        counts: dict[str, int] = {}
        records = 0
        while left:
            msgs = c.consume(2000, timeout=10)
            assert msgs, f"no records from {topic} while waiting for {left}"
            for m in msgs:
                assert m.error() is None, m.error()
                p = m.partition()
                if p not in left or m.offset() >= left[p]:
                    continue
                records += 1
                if m.offset() + 1 >= left[p]:
                    del left[p]
                ev = valid_sale(m.value(), machines, products)
                if ev is None or ev["event_id"] in seen:
                    continue
                seen.add(ev["event_id"])
                counts[ev["product"]] = counts.get(ev["product"], 0) + ev["quantity"]
        assert records == sum(h for _, h in marks.values())
        return counts
    finally:
        c.close()
