"""What the dashboard shows, as plain dicts (the JSON of ``/api/views`` and ``/api/metrics``).

Everything here reads a ``ViewStore`` through its interface (plus ``snapshot()`` where the store
has one, so the numbers of one answer come from one consistent state of the store) and the
generator's ``manifest.json`` (ground truth, optional). Nothing here writes.

A data dir may hold only some of the jobs (a kappa-only run has no ``lambda_speed`` rows and no
batch view) or nothing yet: absent parts come back as ``None`` / empty lists, never as errors.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from vendlab import architectures
from vendlab.store import base
from vendlab.store.base import ViewStore


# Which job stands for which architecture (its latency job), and which of its views must equal validation;
# read from the registry (vendlab.architectures) at each call.
def arch_jobs() -> dict[str, str]:
    return {a.name: a.latency_job for a in architectures.ARCHITECTURES}


def exact_view() -> dict[str, str]:
    return {a.name: a.view_name for a in architectures.ARCHITECTURES}


def metric_jobs() -> tuple[str, ...]:
    return (*arch_jobs().values(), base.VALIDATION)


# Longest series sent to the page; longer ones are thinned evenly (the last point is kept).
MAX_POINTS = 1500


def snapshot(store: ViewStore):
    """The store's consistent-read context if it has one (SQLite), else a no-op."""
    snap = getattr(store, "snapshot", None)
    return snap() if snap is not None else contextlib.nullcontext()


def read_manifest(data_dir: Path | None) -> dict | None:
    """The generator's ground truth (DIR/manifest.json), or None if absent or unreadable."""
    if data_dir is None:
        return None
    try:
        return json.loads((Path(data_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def has_job(store: ViewStore, job: str) -> bool:
    return store.last_batch_id(job) >= 0


def _sum(view: dict[str, int] | None) -> int:
    return sum(view.values()) if view else 0


def _newest_marker_ms(store: ViewStore, job: str) -> int | None:
    lat = store.marker_latencies(job)
    return max((c for c, _ in lat), default=None)


def _exactness(
    arch: str,
    view: dict[str, int] | None,
    validation: dict[str, int],
    products: list[str],
    newest: int | None,
    newest_validation: int | None,
    manifest: dict | None,
) -> dict:
    """Is the architecture's user-facing view equal to the validation view, product by product?

    ``state``: ``absent`` (no such job in this data dir), ``empty`` (nothing counted yet),
    ``exact``, ``in_flight`` (differs while the run is still going or the view is still catching
    up with validation: expected mid-run), ``differs`` (differs after the run ended and the view
    saw the same newest latency marker as validation: a real error).
    """
    out = {"arch": arch, "view": architectures.get(arch).view_name, "present": view is not None}
    if view is None:
        return out | {"state": "absent"}
    diff = {p: view.get(p, 0) - validation.get(p, 0) for p in products}
    differs_by = sum(abs(d) for d in diff.values())
    out |= {
        "total": _sum(view),
        "validation_total": _sum(validation),
        "differs_by": differs_by,
        "products_differing": sum(1 for d in diff.values() if d),
        "diff": diff,
    }
    run_over = bool(manifest and manifest.get("complete"))
    caught_up = newest is not None and newest == newest_validation
    out["settled"] = run_over and caught_up
    if not view and not validation:
        out["state"] = "empty"
    elif differs_by == 0:
        out["state"] = "exact"
    else:
        out["state"] = "differs" if out["settled"] else "in_flight"
    if newest is not None and newest_validation is not None:
        out["behind_validation_ms"] = max(0, newest_validation - newest)
    return out


def views_payload(store: ViewStore, manifest: dict | None = None, view: str = base.ITEMS_BY_PRODUCT) -> dict:
    """Items per product in every view, and each architecture's difference to validation,
    all read in one snapshot of the store."""
    archs = architectures.ARCHITECTURES
    jobs = metric_jobs()
    with snapshot(store):
        snap = {job: store.last_batch_id(job) for job in jobs}
        info = store.current_batch()
        snap["batch_version"] = info.version if info else None
        # each architecture's views ({part: {key: value}}), None when the store does not hold it
        parts = {a.name: a.views(store, view) if a.present(store) else None for a in archs}
        shown = {a.name: a.view_json(store, parts[a.name]) if parts[a.name] is not None else None for a in archs}
        validation = store.read_view(base.VALIDATION, view)
        newest = {job: _newest_marker_ms(store, job) for job in jobs}
    expected = (manifest or {}).get("items_by_product") if view == base.ITEMS_BY_PRODUCT else None
    products = sorted(
        set(validation)
        | set(expected or {})
        | set().union(*(k for p in parts.values() if p is not None for k in p.values()))
    )
    views = {**shown, "validation": validation, "manifest": expected}
    user_view = {a.name: parts[a.name][a.view_name] if parts[a.name] is not None else None for a in archs}
    exactness = {
        a.name: _exactness(
            a.name, user_view[a.name], validation, products, newest[a.latency_job], newest[base.VALIDATION], manifest
        )
        for a in archs
    }
    rows = []
    for p in products:
        row = {
            "product": p,
            "validation": validation.get(p, 0),
            "manifest": expected.get(p, 0) if expected is not None else None,
        }
        for a in archs:
            if parts[a.name] is None:
                continue
            for part, v in parts[a.name].items():
                row[f"{a.name}_{part}"] = v.get(p, 0)
            row[f"{a.name}_diff"] = user_view[a.name].get(p, 0) - validation.get(p, 0)
        rows.append(row)
    present = {a.name: parts[a.name] is not None for a in archs}
    return {
        "view": view,
        "generated_ms": int(time.time() * 1000),
        "snapshot": snap,
        "present": {**present, "validation": snap[base.VALIDATION] >= 0},
        "run": _run_state(manifest),
        "products": products,
        "views": views,
        "differences": rows,
        "exactness": exactness,
    }


def _run_state(manifest: dict | None) -> dict | None:
    if manifest is None:
        return None
    return {k: manifest.get(k) for k in ("complete", "events", "sales", "malformed", "duplicates", "markers")}


def thin(seq: list, max_points: int = MAX_POINTS) -> list:
    """Every k-th item so that at most max_points remain, always keeping the last one."""
    if len(seq) <= max_points:
        return seq
    step = -(-len(seq) // max_points)
    out = seq[::step]
    if out[-1] is not seq[-1]:
        out.append(seq[-1])
    return out


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def metrics_payload(store: ViewStore, manifest: dict | None = None, bucket_ms: int | None = None) -> dict:
    """Latency and throughput over time, dead letters and lambda batch runs, per job.

    Times are sent as seconds since ``t0_ms`` (the earliest time in any series), so both
    architectures share one time axis.
    """
    with snapshot(store):
        raw = {
            job: (store.marker_latencies(job), store.micro_batches(job), store.read_view(job, base.DEAD_LETTERS))
            for job in metric_jobs()
        }
        runs = store.batch_history()
    starts = [lat[0][0] for lat, _, _ in raw.values() if lat] + [mb[0][1] for _, mb, _ in raw.values() if mb]
    t0 = min(starts, default=None)
    jobs = {}
    for job, (lat, mbs, dead) in raw.items():
        if not lat and not mbs and not dead:
            jobs[job] = {"present": False}
            continue
        lat_ms = sorted(v - c for c, v in lat)
        pts = thin(lat)
        tp = []  # events/s of each micro-batch: its rows over the time since the previous one
        for (_, prev_ms, _), (bid, ms, rows) in zip(mbs, mbs[1:]):
            if ms > prev_ms:
                tp.append((ms, rows * 1000 / (ms - prev_ms), bid, rows))
        tp = thin(tp)
        jobs[job] = {
            "present": True,
            "latency": {"t": [(c - t0) / 1000 for c, _ in pts], "ms": [v - c for c, v in pts]},
            "latency_ms": {
                "p50": percentile(lat_ms, 50),
                "p95": percentile(lat_ms, 95),
                "p99": percentile(lat_ms, 99),
                "max": lat_ms[-1] if lat_ms else None,
                "markers": len(lat_ms),
            },
            "throughput": {
                "t": [(ms - t0) / 1000 for ms, _, _, _ in tp],
                "eps": [round(e, 1) for _, e, _, _ in tp],
                "batch_id": [b for _, _, b, _ in tp],
                "rows": [r for _, _, _, r in tp],
            },
            "micro_batches": len(mbs),
            "rows_total": sum(r for _, _, r in mbs),
            "dead_letters": dead,
        }
    batch_runs = [
        {
            "version": r.version,
            "cutoff_bucket": r.cutoff_bucket,
            "cutoff_ms": r.cutoff_bucket * bucket_ms if bucket_ms else None,
            "published_ms": r.published_ms,
            "published_s": (r.published_ms - t0) / 1000 if t0 is not None else None,
            "events": r.events,
            "seconds": r.seconds,
        }
        for r in runs
    ]
    return {
        "generated_ms": int(time.time() * 1000),
        "t0_ms": t0,
        "jobs": jobs,
        "batch_runs": batch_runs,
        "bucket_ms": bucket_ms,
        "expected_dead_letters": (manifest or {}).get("malformed_by_reason"),
    }
