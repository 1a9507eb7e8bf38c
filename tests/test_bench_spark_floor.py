"""Spark's floor (the bench's plain-Spark reference) measures a full run every time."""

from __future__ import annotations

from conftest import write_log

from vendlab.bench.spark_floor import run_floor


def test_every_floor_run_reads_and_parses_the_log(spark, tmp_path):
    write_log(tmp_path, events=6_000, segment_lines=2_000, dup_rate=0.02, bad_rate=0.01)
    r = run_floor(spark, tmp_path, runs=3)
    assert r["exact"] and r["events"] == 6_000
    # Collecting one DataFrame again would skip its map stages (their shuffle files exist), timing the
    # last stage alone: every run must run the same stages, the scan and parse included.
    first, *rest = r["stages_per_run"]
    assert first >= 2 and rest == [first] * len(rest), r["stages_per_run"]
