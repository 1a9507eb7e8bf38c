"""What must hold at every moment of a run, not only after the drain: checked by the runner's
samples (``vendlab.runner``) and by lambda's batch loop after each run (``vendlab.architectures.lambda_``).

* **Never ahead of the generator** (``over_generated``): a user-facing view never holds more items
  of a product than had been generated when it was read.
* **Never behind validation** (``under_validation``): a user-facing view never holds fewer items of
  a product than the validation view had when it had read the log as far as the view's last applied
  micro-batch. Log positions are compared by latency marker (one every 0.1 s, in every segment): the
  view has read every segment up to the one holding the newest marker it made visible (the jobs read
  segments in order); validation reads whole segments in order too, so while its own newest marker is
  not newer, it had read no segment the view had not. The runner keeps the validation view it
  sampled with validation's newest marker (``ValidationHistory``); the floor of a view is the newest
  such sample at or before the view's newest marker. (A floor by wall-clock time instead, validation
  as it was when the marker was written, is also sound but lags by validation's own delay: planting
  a serving bug that drops one bucket showed it too loose to see it.)
* **A lambda reader can complete the cutoff it fetched** (``ReaderPromise``): serving is read as
  batch view *v* + speed rows at or after *v*'s cutoff. A reader that fetched version *v* just before
  the next batch run must still find, after that run, *v*'s batch view unchanged and every speed row
  at or after *v*'s cutoff that was there when it fetched it (speed rows only grow until retired).
  ``run_batch`` keeps two versions and retires speed rows below the *previous* cutoff so that this
  holds; retiring below the new cutoff would take rows from under such a reader.
"""

from __future__ import annotations

from bisect import bisect_right

from vendlab.store import base


def shortfall(view: dict, floor: dict) -> int:
    """The most items by which ``view`` is below ``floor`` on one key (0 or less: never below)."""
    return max((n - view.get(k, 0) for k, n in floor.items()), default=0)


def excess(view: dict[str, int], ceiling: dict[str, int]) -> int:
    """The most items by which ``view`` is above ``ceiling`` on one key (0 or less: never above)."""
    return max((n - ceiling.get(k, 0) for k, n in view.items()), default=0)


def newest_marker_ms(store: base.ViewStore, jobs) -> int | None:
    """Creation time (wall clock, ms) of the newest latency marker the jobs have made visible."""
    return max((created for j in jobs for created, _ in store.marker_latencies(j)), default=None)


class ValidationHistory:
    """The validation view as sampled during a run, keyed by the creation time of validation's newest
    latency marker in the same read: how far validation had read the log (non-decreasing)."""

    def __init__(self):
        self._t: list[int] = []
        self._views: list[dict[str, int]] = []

    def add(self, t_ms: int, view: dict[str, int]) -> None:
        if self._t and t_ms < self._t[-1]:
            t_ms = self._t[-1]  # keep the order
        self._t.append(t_ms)
        self._views.append(view)

    def at_or_before(self, t_ms: int | None) -> dict[str, int] | None:
        """The newest sample read at or before ``t_ms`` (None if there is none)."""
        if t_ms is None:
            return None
        i = bisect_right(self._t, t_ms) - 1
        return self._views[i] if i >= 0 else None

    def forget_before(self, t_ms: int) -> None:
        """Drop the samples no later lookup needs (lookups at or after ``t_ms``)."""
        i = bisect_right(self._t, t_ms) - 1
        if i > 0:
            del self._t[:i], self._views[:i]


class ReaderPromise:
    """Lambda's promise to a reader that fetched a batch version's cutoff: ``fetch`` plays the reader
    (the newest fetch of a version counts: speed rows only grow, so it is the strictest), ``after_run``
    checks after a batch run every version the store still serves (the current one and the one
    before) against its fetch, then fetches the new current version."""

    def __init__(self, view: str = base.ITEMS_BY_PRODUCT):
        self.view = view
        # version -> (cutoff, its batch view, speed rows per (key, bucket) at or after its cutoff), as
        # fetched: a speed row only grows until retired, so no row may be lower after a run (a sum
        # per key could hide a retired bucket behind rows added meanwhile)
        self.fetched: dict[int, tuple[int, dict[str, int], dict[tuple[str, int], int]]] = {}
        self.checks: list[dict] = []

    def fetch(self, store: base.ViewStore) -> None:
        with store.snapshot():
            current = store.current_batch()
            if current is not None:
                self.fetched[current.version] = (
                    current.cutoff_bucket,
                    store.read_batch_view(current.version, self.view),
                    store.read_view_buckets(base.LAMBDA_SPEED, self.view, current.cutoff_bucket),
                )

    def after_run(self, store: base.ViewStore) -> None:
        with store.snapshot():
            current = store.current_batch()
            if current is None:
                return
            for version, (cutoff, batch, speed) in sorted(self.fetched.items()):
                if version < current.version - 1:  # no longer served: nobody may fetch it any more
                    del self.fetched[version]
                    continue
                now_batch = store.read_batch_view(version, self.view)
                now_speed = store.read_view_buckets(base.LAMBDA_SPEED, self.view, cutoff)
                self.checks.append(
                    {
                        "version": version,
                        "after_version": current.version,
                        "batch_view_kept": now_batch == batch,
                        "speed_items": sum(speed.values()),  # what the reader had fetched
                        "speed_shortfall": shortfall(now_speed, speed),
                    }
                )
        self.fetch(store)

    def kept(self) -> bool:
        return all(c["batch_view_kept"] and c["speed_shortfall"] <= 0 for c in self.checks)
