"""Kappa on real Spark: the streaming view job over a finished log, checked against the
independent validation view and the generator's manifest; crashes and restarts from the checkpoint."""

import pytest

from vendlab.config import embedded
from vendlab.jobs.streaming import start_view_job
from vendlab.oracle import Validator
from vendlab.store import base
from vendlab.store.sqlite import SqliteStore


class Crash(RuntimeError):
    pass


def _run(spark, profile, catalog, hook=None):
    q = start_view_job(spark, profile, catalog, base.KAPPA, fault_hook=hook, available_now=True)
    try:
        q.awaitTermination()
    finally:
        q.stop()
    return q


def _check_exact(profile, catalog, manifest):
    store = SqliteStore(profile.sqlite_path)
    Validator(profile.log_dir, catalog, store).poll()
    expected = {k: v for k, v in manifest.items_by_product.items() if v}
    assert store.read_view(base.KAPPA, base.ITEMS_BY_PRODUCT) == expected
    assert store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == expected
    assert store.read_view(base.KAPPA, base.ITEMS_BY_CATEGORY) == {
        k: v for k, v in manifest.items_by_category.items() if v
    }
    assert (
        store.read_view(base.KAPPA, base.REVENUE_BY_CATEGORY)
        == store.read_view(base.VALIDATION, base.REVENUE_BY_CATEGORY)
        == {k: v for k, v in manifest.revenue_cents_by_category.items() if v}
    )
    assert store.read_view(base.KAPPA, base.DEAD_LETTERS) == manifest.malformed_by_reason
    assert store.read_view(base.VALIDATION, base.DEAD_LETTERS) == manifest.malformed_by_reason
    return store


def test_kappa_is_exact_with_malformed_and_duplicate_events(spark, tmp_path, log_factory):
    catalog, manifest = log_factory(tmp_path, seed=11, events=24_000, segment_lines=6_000, bad_rate=0.02, dup_rate=0.02)
    assert manifest.malformed > 0 and manifest.duplicates > 0
    profile = embedded(tmp_path)
    _run(spark, profile, catalog)
    store = _check_exact(profile, catalog, manifest)
    dead = store.dead_letters(base.KAPPA, limit=100_000)
    assert len(dead) == manifest.malformed
    assert all(pos.startswith("seg-") for _, _, pos in dead)


@pytest.mark.parametrize("stage", ["before_apply", "after_apply"])
def test_query_killed_mid_run_restarts_from_checkpoint_exactly(spark, tmp_path, log_factory, stage):
    catalog, manifest = log_factory(tmp_path, seed=12, events=12_000, segment_lines=3_000, dup_rate=0.03)
    profile = embedded(tmp_path, max_files_per_trigger=1)  # one segment per micro-batch: 4 batches

    def crash_on_batch_2(job, batch_id, at):
        if batch_id == 2 and at == stage:
            raise Crash(f"killed at {at} of batch {batch_id}")

    with pytest.raises(Exception, match="killed at"):
        _run(spark, profile, catalog, crash_on_batch_2)
    store = SqliteStore(profile.sqlite_path)
    # the crash left batch 2 applied (after_apply) or not (before_apply); Spark did not commit it
    assert store.last_batch_id(base.KAPPA) == (2 if stage == "after_apply" else 1)
    _run(spark, profile, catalog)  # restart from the checkpoint: batch 2 is replayed
    assert store.last_batch_id(base.KAPPA) == 3
    _check_exact(profile, catalog, manifest)


@pytest.mark.spark  # a vendlab command in a subprocess runs the jobs
def test_kappa_run_is_never_ahead_of_the_generator_nor_behind_validation(tmp_path):
    """Sampled every 0.25 s during a run (vendlab.invariants): the real-time view never holds more
    than had been generated, nor less than validation had at the log position of its last applied
    micro-batch."""
    from vendlab.runner import Runner, RunSettings

    settings = RunSettings(duration=8, rate=1500, seed=31, bad_rate=0.01, dup_rate=0.02, sample_interval=0.25)
    result = Runner(embedded(tmp_path), ["kappa"], settings).run()["kappa"]
    assert result["drained"] and result["exact"], result["views"]
    samples = result["samples"]
    assert result["max_overcount"] <= 0 and all(s["over_generated"] <= 0 for s in samples)
    assert result["max_undercount"] <= 0 and all(s["under_validation"] <= 0 for s in samples)
    # not vacuous: the last sample (after the drain) had a floor, what validation had counted before
    # the end marker was written
    assert samples[-1]["validation_floor"] > 0


def test_view_expressions_are_built_once_per_process_and_per_kind_of_job(spark):
    """The warm-up's view job builds the plan that the run's job, and every batch run, then reuse
    (building it is ~4,000 py4j calls); a bucketed or side-output-free job gets its own."""
    from vendlab.jobs.views import view_plan

    kappa = view_plan(None)
    assert view_plan(None) is kappa
    assert view_plan(60_000) is view_plan(60_000) is not kappa
    assert view_plan(None, with_side_outputs=False) is not kappa
