"""Lambda's batch view (``vendlab.jobs.batch``) equals a straightforward recomputation of it.

The batch layer's plan is tuned (docs/history/results-2026-11.md, issue 15: lambda's batch layer): the cutoff and
the row count come from one scan, and the valid events are filtered to the buckets below the cutoff
*before* the deduplication. The reference here is the plain definition: parse every line, keep the
valid ones, deduplicate by event_id, compute every view per bucket (``view_rows``) and sum the
buckets below the cutoff; the cutoff from the contract's rule, computed in Python from the lines
(per log partition the newest valid event time, capped at log time + skew; the least advanced
partition's, minus lateness).

The log: a seeded scenario (sales, restocks, telemetry with stock, duplicate deliveries, malformed
lines) spread over three log partitions by machine, one partition lagging behind the others; plus
duplicates delivered long after their original, an event later than the lateness bound, and a sale
stamped far in the future (its time capped at log time + skew for the cutoff).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime

import pytest
from conftest import iso

from vendlab.config import embedded
from vendlab.contract import validate_line
from vendlab.jobs import batch, parse
from vendlab.jobs.views import view_rows
from vendlab.world.scenario import write_scenario

pytestmark = pytest.mark.spark

PARTITIONS = 3
HOUR = 3_600_000


def _ms(event_time: str) -> int:
    return int(datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp() * 1000)


def scenario_log(tmp_path):
    """(catalog, [(partition, offset, log_ms, line)]): see the module's docstring."""
    catalog, manifest = write_scenario(
        tmp_path, seed=21, events=4_000, bad_rate=0.02, dup_rate=0.03, segment_lines=1_000
    )
    assert manifest.duplicates > 0 and manifest.malformed > 0
    lines = [ln for seg in sorted((tmp_path / "log").glob("seg-*.jsonl")) for ln in seg.read_text().splitlines()]
    parts: dict[int, list[tuple[int, str]]] = defaultdict(list)
    log_ms = 0
    for line in lines:
        try:
            ev = json.loads(line)
            log_ms = max(log_ms, _ms(ev["event_time"]))  # the log time: when the line arrived
            p = sum(map(ord, ev["machine_id"])) % PARTITIONS
        except (ValueError, KeyError, TypeError, AttributeError):
            p = 0  # a malformed line
        parts[p].append((log_ms, line))
    parts[1] = parts[1][: len(parts[1]) * 2 // 3]  # partition 1 lags behind
    first = json.loads(next(ln for _, ln in parts[2] if ln.startswith('{"event_id"')))
    end = parts[2][-1][0]
    parts[2] += [
        (end, parts[2][5][1]),  # a duplicate delivered long after its original
        (end, parts[2][6][1]),
        (end, json.dumps({**first, "event_id": "late-1", "event_time": iso(end - 5 * HOUR)})),  # beyond lateness
        (end, json.dumps({**first, "event_id": "future-1", "event_time": "2099-06-01T12:00:00.000Z"})),
    ]
    return catalog, [(p, off, t, ln) for p in sorted(parts) for off, (t, ln) in enumerate(parts[p])]


def envelope(spark, rows):
    data = [(line, p, off, t, f"vendlab-events-{p}@{off}") for p, off, t, line in rows]
    df = spark.createDataFrame(data, "value string, log_partition int, log_offset long, t long, position string")
    return df.selectExpr("value", "log_partition", "log_offset", "timestamp_millis(t) as log_ts", "position")


def reference_cutoff(rows, catalog, profile) -> int:
    newest: dict[int, int] = {}
    for p, _, log_ms, line in rows:
        ev, _ = validate_line(line, catalog.machine_ids, catalog.product_names)
        if ev is not None and ev.get("event_time"):
            t = min(_ms(ev["event_time"]), log_ms + profile.event_time_skew_ms)
            newest[p] = max(newest.get(p, t), t)
    return (min(newest.values()) - profile.lateness_ms) // profile.bucket_ms


def reference_view(spark, df, catalog, cutoff, profile) -> dict[tuple[str, str], int]:
    parsed = parse.parse(df, sorted(catalog.machine_ids), sorted(catalog.product_names))
    unique = parsed.filter("kind != 'dead'").dropDuplicates(["event_id"])
    out: dict[tuple[str, str], int] = defaultdict(int)
    for view, key, bucket, value in view_rows(unique, bucket_ms=profile.bucket_ms, with_side_outputs=False):
        if bucket < cutoff:
            out[(view, key)] += value
    return dict(out)


def test_batch_view_equals_the_plain_definition_over_partitions_duplicates_late_and_malformed_lines(spark, tmp_path):
    profile = embedded(tmp_path, lateness_ms=2 * HOUR, bucket_ms=15 * 60_000)
    catalog, rows = scenario_log(tmp_path)
    df = envelope(spark, rows)
    got, cutoff, read = batch.batch_view_of(df, profile, catalog)

    assert read == len(rows)
    assert cutoff == reference_cutoff(rows, catalog, profile)
    expected = reference_view(spark, df, catalog, cutoff, profile)
    assert len(got) == len({(v, k) for v, k, _ in got})  # one row per view and key
    assert {(v, k): n for v, k, n in got} == expected
    # what the log holds is there: several views, late and repeated events below the cutoff
    assert len({v for v, _ in expected}) >= 8
    late = json.loads(next(ln for *_, ln in rows if '"late-1"' in ln))
    assert (("items_by_product", late["product"]) in expected) and _ms(late["event_time"]) // profile.bucket_ms < cutoff


def test_a_batch_session_with_a_task_cap_gives_the_same_view_and_runs_at_most_that_many_tasks(spark, tmp_path):
    """Embedded lambda's batch layer shares the JVM with the streaming queries and runs at most
    ``Profile.shared_batch_tasks`` tasks at a time (``batch_session(spark, max_tasks)``): the same
    view, every stage of its jobs in at most that many tasks."""
    from vendlab.architectures.lambda_ import batch_session

    profile = embedded(tmp_path, lateness_ms=2 * HOUR, bucket_ms=15 * 60_000)
    catalog, rows = scenario_log(tmp_path)
    # the log as files, four of them (a scan of four tasks without the cap), like the master dataset
    envelope(spark, rows).repartition(4).write.parquet(str(tmp_path / "log.parquet"))
    free = batch.batch_view_of(spark.read.parquet(str(tmp_path / "log.parquet")), profile, catalog)
    capped_session = batch_session(spark, max_tasks=1)
    sc = spark.sparkContext
    group = "vendlab-test-batch-cap"
    sc.setJobGroup(group, "capped batch view")
    try:
        log = capped_session.read.parquet(str(tmp_path / "log.parquet"))
        capped = batch.batch_view_of(log, profile, catalog)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sorted(capped[0]) == sorted(free[0]) and capped[1:] == free[1:]
    tracker = sc.statusTracker()
    deadline = time.monotonic() + 30  # the tracker follows Spark's listener bus, which may lag behind
    while True:
        jobs = [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(group)]
        if (jobs and all(j and j.status == "SUCCEEDED" for j in jobs)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    stages = [tracker.getStageInfo(s) for j in jobs for s in j.stageIds]
    tasks = [st.numTasks for st in stages if st is not None]
    assert len(jobs) >= 2 and tasks and max(tasks) == 1, (len(jobs), tasks)
