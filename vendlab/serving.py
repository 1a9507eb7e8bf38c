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
        return lambda view: add(
            store.read_batch_view(info.version, view) if info else {},
            store.read_view(base.LAMBDA_SPEED, view, min_bucket=info.cutoff_bucket if info else None),
        )
    if source == "validation":
        return lambda view: store.read_view(base.VALIDATION, view)
    raise ValueError(f"unknown source {source!r}: allowed are {', '.join(SOURCES)}")


# The names `vendlab views` prints: each means the same thing in every data dir (a name is left out
# when its job is not in the store), so a script that reads "kappa_realtime" never gets lambda's.
VIEW_NAMES = {
    "kappa_realtime": "kappa's real-time view (job kappa)",
    "lambda_batch": "lambda's current batch view",
    "lambda_realtime": "lambda's speed view at or after the batch view's cutoff (job lambda_speed)",
    "lambda_serving": "lambda's serving view = lambda_batch + lambda_realtime",
    "validation": "the validation consumer's view (job validation)",
}


class UnknownJob(ValueError):
    pass


def current_views(
    data_dir: Path, view: str = base.ITEMS_BY_PRODUCT, jobs: list[str] | None = None
) -> dict[str, dict[str, int]]:
    """The views of a data dir, read in one snapshot, under the names of VIEW_NAMES; with ``jobs``,
    the view of each named job instead (e.g. ``kappa_v2``, a replay into a new view version), keyed
    by the job's name. UnknownJob (its message lists the jobs present) for a job the store lacks."""
    from vendlab.store.sqlite import SqliteStore

    store = SqliteStore(Path(data_dir) / "views.sqlite", readonly=True)
    try:
        with store.snapshot():
            if jobs:
                present = store.jobs()
                missing = [j for j in jobs if j not in present]
                if missing:
                    raise UnknownJob(
                        f"no job {', '.join(missing)} in {data_dir}: the jobs there are "
                        f"{', '.join(present) or 'none yet'}"
                    )
                return {j: store.read_view(j, view) for j in jobs}
            return views_of(store, view)
    finally:
        store.close()


def views_of(store: ViewStore, view: str = base.ITEMS_BY_PRODUCT) -> dict[str, dict[str, int]]:
    """The views under the names of VIEW_NAMES (those present), from any store: SQLite (inside a
    snapshot) or Cassandra (``vendlab views --profile compose``)."""
    out: dict[str, dict[str, int]] = {}
    if store.last_batch_id(base.KAPPA) >= 0:
        out["kappa_realtime"] = store.read_view(base.KAPPA, view)
    if store.last_batch_id(base.LAMBDA_SPEED) >= 0 or store.current_batch() is not None:
        lam = lambda_views(store, view)
        out["lambda_batch"] = lam["batch"]
        out["lambda_realtime"] = lam["realtime"]
        out["lambda_serving"] = lam["serving"]
    out["validation"] = store.read_view(base.VALIDATION, view)
    return out
