"""The serving layer: what a user reads, for every architecture of the registry
(``vendlab.architectures``: each says which store holds it and how to read it; lambda's serving =
batch view + speed view after the batch view's cutoff) and the validation view, read in one
consistent snapshot of the store."""

from __future__ import annotations

from pathlib import Path

from vendlab import architectures
from vendlab.store import base
from vendlab.store.base import ViewStore

VALIDATION = "validation"  # the source name of the validation consumer's view (job validation)


def sources() -> tuple[str, ...]:
    """What a reader can read: every architecture (registry order), then validation."""
    return (*architectures.names(), VALIDATION)


def sources_present(store: ViewStore) -> list[str]:
    """The architectures (and validation) whose views this store holds, in ``sources()`` order."""
    out = [a.name for a in architectures.ARCHITECTURES if a.present(store)]
    if store.last_batch_id(base.VALIDATION) >= 0:
        out.append(VALIDATION)
    return out


def view_reader(store: ViewStore, source: str):
    """A function view name -> {key: value} reading what ``source`` serves: an architecture's
    user-facing view (kappa's real-time view, lambda's serving view) or the validation view.
    Call it inside one store snapshot so that every view comes from the same state."""
    if source == VALIDATION:
        return lambda view: store.read_view(base.VALIDATION, view)
    try:
        arch = architectures.get(source)
    except ValueError:
        raise ValueError(f"unknown source {source!r}: allowed are {', '.join(sources())}") from None
    return arch.reader(store)


def view_names() -> dict[str, str]:
    """The names `vendlab views` prints (ARCH_PART for each part of each architecture's views, then
    validation): each means the same thing in every data dir (a name is left out when its job is not
    in the store), so a script that reads "kappa_realtime" never gets lambda's."""
    out = {f"{a.name}_{part}": what for a in architectures.ARCHITECTURES for part, what in a.parts.items()}
    out[VALIDATION] = "the validation consumer's view (job validation)"
    return out


class UnknownJob(ValueError):
    pass


def current_views(
    data_dir: Path, view: str = base.ITEMS_BY_PRODUCT, jobs: list[str] | None = None
) -> dict[str, dict[str, int]]:
    """The views of a data dir, read in one snapshot, under the names of view_names(); with ``jobs``,
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
    """The views under the names of view_names() (those present), from any store: SQLite (inside a
    snapshot) or Cassandra (``vendlab views --profile compose``)."""
    out: dict[str, dict[str, int]] = {}
    for a in architectures.ARCHITECTURES:
        if a.present(store):
            out.update({f"{a.name}_{part}": v for part, v in a.views(store, view).items()})
    out[VALIDATION] = store.read_view(base.VALIDATION, view)
    return out
