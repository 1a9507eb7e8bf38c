"""The checks of vendlab.invariants on a real view store, without Spark: they hold for the hand-off
run_batch does, and they fail for the bugs they exist to catch."""

from vendlab.invariants import ReaderPromise, ValidationHistory, excess, shortfall
from vendlab.store import base
from vendlab.store.base import BatchViewInfo
from vendlab.store.sqlite import SqliteStore

V = base.ITEMS_BY_PRODUCT


def _speed(store, batch_id, rows):
    store.apply_batch(base.LAMBDA_SPEED, batch_id, [(V, k, b, n) for k, b, n in rows])


def _publish(store, version, cutoff, view):
    store.publish_batch_view(BatchViewInfo(version, cutoff, 0, 0, 0.0), [(V, k, n) for k, n in view.items()])


def test_shortfall_and_excess():
    assert shortfall({"a": 3, "b": 1}, {"a": 3, "b": 2}) == 1
    assert shortfall({"a": 3}, {}) == 0 and shortfall({}, {"a": 2}) == 2
    assert excess({"a": 5}, {"a": 3}) == 2 and excess({"a": 1}, {"a": 3}) == -2


def test_validation_history_gives_the_newest_sample_read_at_or_before_a_time():
    h = ValidationHistory()
    assert h.at_or_before(100) is None
    h.add(100, {"a": 1})
    h.add(200, {"a": 5})
    h.add(300, {"a": 9})
    assert h.at_or_before(99) is None and h.at_or_before(None) is None
    assert h.at_or_before(100) == {"a": 1} and h.at_or_before(299) == {"a": 5} and h.at_or_before(10**13) == {"a": 9}
    h.forget_before(250)  # later lookups are at or after 250: the sample of 200 is still needed
    assert h.at_or_before(260) == {"a": 5} and h.at_or_before(150) is None


def _handoff(store, version, cutoff, batch_view, retire_below):
    _publish(store, version, cutoff, batch_view)
    store.retire_buckets(base.LAMBDA_SPEED, retire_below, [V])


def test_reader_promise_holds_when_the_previous_cutoff_is_retired(tmp_path):
    store = SqliteStore(tmp_path / "views.sqlite")
    promise = ReaderPromise()
    _speed(store, 0, [("a", 10, 1), ("a", 11, 2), ("a", 12, 3), ("a", 13, 4)])
    _handoff(store, 1, 11, {"a": 1}, retire_below=0)  # v1 covers bucket 10
    promise.after_run(store)
    _speed(store, 1, [("a", 14, 5)])
    promise.fetch(store)  # a reader fetches v1 just before the next run
    _handoff(store, 2, 13, {"a": 6}, retire_below=11)  # v2 covers 10-12; retire below v1's cutoff
    promise.after_run(store)
    _handoff(store, 3, 14, {"a": 10}, retire_below=13)
    promise.after_run(store)
    assert promise.kept()
    # each version checked once, after the next run (the one after that no longer serves it)
    assert [(c["version"], c["after_version"]) for c in promise.checks] == [(1, 2), (2, 3)]


def test_reader_promise_fails_when_the_new_cutoff_is_retired(tmp_path):
    store = SqliteStore(tmp_path / "views.sqlite")
    promise = ReaderPromise()
    _speed(store, 0, [("a", 10, 1), ("a", 11, 2), ("a", 12, 3), ("a", 13, 4)])
    _handoff(store, 1, 11, {"a": 1}, retire_below=0)
    promise.after_run(store)
    _handoff(store, 2, 13, {"a": 6}, retire_below=13)  # the bug: the new cutoff
    promise.after_run(store)
    assert not promise.kept()
    assert promise.checks == [
        {"version": 1, "after_version": 2, "batch_view_kept": True, "speed_items": 9, "speed_shortfall": 3}
    ]
