"""The serving layer: what a user reads. For lambda, serving = batch view + speed view after
the batch view's cutoff, read in one consistent snapshot of the store."""

from __future__ import annotations

from pathlib import Path

from vendlab.store import base
from vendlab.store.base import ViewStore


def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(set(a) | set(b))}


def lambda_views(store: ViewStore, view: str = base.ITEMS_BY_PRODUCT) -> dict[str, dict[str, int]]:
    """{"batch", "realtime", "serving"}: realtime is the speed view's part after the cutoff."""
    info = store.current_batch()
    batch = store.read_batch_view(info.version, view) if info else {}
    realtime = store.read_view(base.LAMBDA_SPEED, view, min_bucket=info.cutoff_bucket if info else None)
    return {"batch": batch, "realtime": realtime, "serving": add(batch, realtime)}


SOURCES = ("kappa", "lambda", "validation")


def sources_present(store: ViewStore) -> list[str]:
    """The architectures (and validation) whose views this store holds, in SOURCES order."""
    out = []
    if store.last_batch_id(base.KAPPA) >= 0:
        out.append("kappa")
    if store.last_batch_id(base.LAMBDA_SPEED) >= 0 or store.current_batch() is not None:
        out.append("lambda")
    if store.last_batch_id(base.VALIDATION) >= 0:
        out.append("validation")
    return out


def view_reader(store: ViewStore, source: str):
    """A function view name -> {key: value} reading what ``source`` serves: kappa's real-time
    view, lambda's serving view (batch + speed after the cutoff) or the validation view.
    Call it inside one store snapshot so that every view comes from the same state."""
    if source == "kappa":
        return lambda view: store.read_view(base.KAPPA, view)
    if source == "lambda":
        info = store.current_batch()
        return lambda view: add(store.read_batch_view(info.version, view) if info else {},
                                store.read_view(base.LAMBDA_SPEED, view,
                                                min_bucket=info.cutoff_bucket if info else None))
    if source == "validation":
        return lambda view: store.read_view(base.VALIDATION, view)
    raise ValueError(f"unknown source {source!r}: allowed are {', '.join(SOURCES)}")


def current_views(data_dir: Path, view: str = base.ITEMS_BY_PRODUCT) -> dict[str, dict[str, int]]:
    from vendlab.store.sqlite import SqliteStore

    store = SqliteStore(Path(data_dir) / "views.sqlite", readonly=True)
    try:
        with store.snapshot():
            return views_of(store, view)
    finally:
        store.close()


def views_of(store: ViewStore, view: str = base.ITEMS_BY_PRODUCT) -> dict[str, dict[str, int]]:
    """The views a user reads, in the JSON shape of ``vendlab views``: realtime (kappa), lambda's
    batch/serving (and its realtime part), validation. Any store: SQLite (inside a snapshot) or Cassandra."""
    out: dict[str, dict[str, int]] = {}
    has_kappa = store.last_batch_id(base.KAPPA) >= 0
    has_lambda = store.last_batch_id(base.LAMBDA_SPEED) >= 0 or store.current_batch() is not None
    if has_kappa or not has_lambda:
        out["realtime"] = store.read_view(base.KAPPA, view)
    if has_lambda:
        lam = lambda_views(store, view)
        out["lambda_realtime" if has_kappa else "realtime"] = lam["realtime"]
        out["batch"] = lam["batch"]
        out["serving"] = lam["serving"]
    out["validation"] = store.read_view(base.VALIDATION, view)
    return out
