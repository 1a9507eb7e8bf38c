"""vendlab.bench.node_loss's latency phases and recovery time, on made-up markers."""

import pytest

from vendlab.bench.node_loss import parse_faults, phases


def test_phases_split_by_the_outage_and_recovery_from_healthy_again():
    # 200 ms before; up to 9 s during the outage (10_000..20_000); after healthy (20_000) the backlog drains:
    # the last marker above the threshold (max(2 * 200, 200 + 1000) = 1200 ms) is created at 23_000
    markers = [(t, t + 200) for t in range(0, 10_000, 100)]
    markers += [(t, 21_000) for t in range(10_000, 20_000, 100)]
    markers += [(t, t + 1500) for t in range(20_000, 23_100, 100)]
    markers += [(t, t + 250) for t in range(23_100, 30_000, 100)]
    p = phases(markers, 10_000, 20_000)
    # the two made in the last 200 ms before the loss became visible after it: the loss's, not before's
    assert p["before"] == {"markers": 98, "median_ms": 200, "p95_ms": 200, "max_ms": 200}
    assert p["during"]["markers"] == 102 and p["during"]["max_ms"] == 11_000
    assert p["threshold_ms"] == 1200
    assert p["recovery_s"] == 3.0
    assert p["after"]["markers"] == 31 + 69


def test_a_marker_made_before_a_kill_and_held_up_by_it_counts_during():
    markers = [(t, t + 100) for t in range(0, 9_900, 100)] + [(9_950, 40_000)]
    p = phases(markers, 10_000, 20_000)
    assert p["before"]["max_ms"] == 100 and p["during"] == {
        "markers": 1,
        "median_ms": 30_050,
        "p95_ms": 30_050,
        "max_ms": 30_050,
    }
    assert p["recovery_s"] == 0.0  # made before the services were back: nothing late after "back"


def test_no_late_marker_is_recovered_at_once_and_no_baseline_says_none():
    assert phases([(t, t + 100) for t in range(0, 5000, 100)], 1000, 2000)["recovery_s"] == 0.0
    assert phases([(5000, 5100)], 1000, 2000)["recovery_s"] is None


def test_a_fault_counts_only_the_markers_of_its_window():
    # two faults: the first's window ends where the second's starts (its caught-up time, 20_000)
    markers = [(t, t + 100) for t in range(0, 30_000, 100)]
    markers += [(t, t + 9000) for t in range(30_000, 31_000, 100)]  # the second fault's outage only
    first = phases(markers, 5_000, 8_000, since_ms=0, until_ms=20_000)
    assert first["before"]["markers"] == 49 and first["during"]["markers"] == 31 and first["after"]["markers"] == 120
    assert first["recovery_s"] == 0.0  # the second fault's late markers are not the first's
    second = phases(markers, 30_000, 31_000, since_ms=20_000)
    assert second["before"]["markers"] == 99 and second["during"]["max_ms"] == 9000
    assert second["recovery_s"] == 0.0 and second["above_threshold_markers"] == 10


def test_faults_from_stop_and_fault_flags_in_order_and_a_clear_error_without_either():
    assert parse_faults(["kafka2", "cassandra2"], ["spark-worker-1", "kafka2, kafka3"]) == [
        ["kafka2", "cassandra2"],
        ["spark-worker-1"],
        ["kafka2", "kafka3"],
    ]
    with pytest.raises(SystemExit, match="--stop SERVICE"):
        parse_faults(None, None)
    with pytest.raises(SystemExit, match="one service or job"):
        parse_faults(None, [" , "])


def test_the_report_of_a_recorded_run_on_a_stack_read_from_its_folder(tmp_path, monkeypatch):
    """The end of a run (markers and views read back, phases per fault, JSON and plot) on a LocalStack read
    from its folder as a later process reads it: a run's last step once failed there after 15 minutes."""
    import json
    import types

    from vendlab.bench import node_loss
    from vendlab.localstack.stack import LocalStack
    from vendlab.store import cassandra
    from vendlab.world import generator

    (tmp_path / "stack.json").write_text(
        json.dumps(
            {
                "stack": "kappa",
                "nodes": 3,
                "services": {n: {"pid": None} for n in ("kafka", "kafka2", "spark-worker-1", "spark-worker-2")},
                "client_env": {"VENDLAB_CASSANDRA": "127.0.0.1:9042"},
            }
        )
    )
    items = {"water": 7, "chips": 3}

    class Store:
        def __init__(self, hosts, keyspace):
            assert hosts == ("127.0.0.1:9042",)

        def marker_latencies(self, job):
            return [(t, t + 300) for t in range(0, 60_000, 100)]

        def read_view(self, job, view):
            return dict(items)

        def close(self):
            pass

    monkeypatch.setattr(cassandra, "CassandraStore", Store)
    manifest = types.SimpleNamespace(complete=True, items_by_product=items, sales=4)
    monkeypatch.setattr(generator.Manifest, "load", staticmethod(lambda path: manifest))
    fault = {"services": ["kafka2"], "signal": "kill", "steady_ms": 0, "stopped_ms": 20_000}
    fault.update(restarted_ms=30_000, healthy_ms=35_000, outage_s=10.0, back_after_s=15.0)
    out = tmp_path / "out" / "kappa-kafka2"
    result = node_loss.report(LocalStack(tmp_path), [fault], 0, 300, 12.5, out)
    assert result["exact"] and result["spark_workers"] == 2 and result["nodes"] == 3
    assert result["faults"][0]["phases"]["before"]["markers"] == 197  # made by 19_700 ms, visible by 20_000
    assert json.loads(out.with_suffix(".json").read_text())["totals"] == {"view": 10, "validation": 10, "manifest": 10}
    assert out.with_suffix(".png").stat().st_size > 0
    assert json.loads((out.parent / "kappa-kafka2-markers.json").read_text())[:2] == [[0, 300], [100, 400]]
    items_wrong = {"water": 6, "chips": 3}
    manifest.items_by_product = items_wrong  # the manifest disagrees: not exact
    assert not node_loss.report(LocalStack(tmp_path), [fault], 0, 300, None, out)["exact"]
