"""Lambda on real Spark: batch + speed == validation == manifest across several hand-offs with
events arriving during each batch run; serving never ahead of what was generated nor behind what
validation had, and a reader of the previous cutoff can always complete it (vendlab.invariants)."""

from vendlab.config import embedded
from vendlab.runner import Runner, RunSettings
from vendlab.store.sqlite import SqliteStore


def test_serving_is_exact_across_handoffs_and_never_overcounts(spark, tmp_path):
    # 120x simulated time and a 2-minute lateness bound: the batch cutoff moves every run. 45 s: the
    # embedded batch layer runs one task at a time beside the streaming queries (Profile.shared_batch_tasks),
    # and a run over the young master dataset's many small files took 5-12 s here: room for >= 3 runs.
    profile = embedded(tmp_path, lateness_ms=120_000)
    settings = RunSettings(
        duration=45,
        rate=1500,
        seed=21,
        bad_rate=0.01,
        dup_rate=0.02,
        time_scale=120,
        batch_interval=2,
        sample_interval=0.25,
    )
    result = Runner(profile, ["lambda"], settings).run()["lambda"]

    assert result["drained"]
    # while it ran (checked first: an undercount during the run is the earlier symptom)
    runs = result["batch_runs"]
    samples = result["samples"]
    assert len(samples) > 20
    assert result["max_overcount"] <= 0  # serving never exceeded what had been generated
    assert all(s["over_generated"] <= 0 for s in samples)
    # ... nor below what validation had at the log position of the speed job's last applied micro-batch
    assert result["max_undercount"] <= 0
    assert all(s["under_validation"] <= 0 for s in samples)
    # not vacuous: the last sample (after the drain) had a floor, what validation had counted before
    # the end marker was written
    assert samples[-1]["validation_floor"] > 0
    # after each batch run, a reader that had fetched the previous (or the current) version's cutoff
    # still completed it: its batch view kept, no speed row at or after its cutoff gone
    checks = result["reader_checks"]
    assert all(c["batch_view_kept"] and c["speed_shortfall"] <= 0 for c in checks), checks
    previous = [c for c in checks if c["after_version"] == c["version"] + 1]
    assert {c["version"] for c in previous} >= {r["version"] for r in runs[:-1]}  # each, after the next run
    assert any(c["speed_items"] > 0 for c in previous)  # not vacuous: the reader had fetched speed rows
    assert result["exact"], result["views"]
    views = result["views"]
    assert views["serving"] == views["validation"] == result["expected"]
    assert sum(views["batch"].values()) > 0 and sum(views["realtime"].values()) > 0
    assert {k: views["batch"][k] + views["realtime"][k] for k in views["serving"]} == views["serving"]

    # At least two hand-offs: the checks above need a version followed by another. Three was asked here
    # once, but how many runs fit in 45 s is the machine's speed: a fresh-clone CI at full load had 2,
    # exact (2026-12-07). More than one distinct cutoff: the cutoff really moved.
    assert result["handoffs"] >= 2, f"{result['handoffs']} hand-off(s) in {settings.duration} s: {runs}"
    cutoffs = [r["cutoff_bucket"] for r in runs]
    assert cutoffs == sorted(cutoffs) and len(set(cutoffs)) >= 2, cutoffs
    # events kept arriving while the batch layer ran: the master dataset grew between runs
    assert len({r["events"] for r in runs}) == len(runs)

    assert result["dead_letters"] == result["expected_dead_letters"]
    assert result["latency_ms"]["p50"] > 0

    store = SqliteStore(profile.sqlite_path, readonly=True)
    info = store.current_batch()
    # retired speed rows: nothing left below the previous cutoff
    assert all(
        b >= runs[-2]["cutoff_bucket"]
        for (b,) in store._con().execute(
            "SELECT DISTINCT bucket FROM agg WHERE job='lambda_speed' AND view='items_by_product'"
        )
    )
    assert info.version == runs[-1]["version"]
