"""vendlab.bench.node_loss's latency phases and recovery time, on made-up markers."""

from vendlab.bench.node_loss import phases


def test_phases_split_by_the_outage_and_recovery_from_healthy_again():
    # 200 ms before; up to 9 s during the outage (10_000..20_000); after healthy (20_000) the backlog drains:
    # the last marker above the threshold (max(2 * 200, 200 + 1000) = 1200 ms) is created at 23_000
    markers = [(t, t + 200) for t in range(0, 10_000, 100)]
    markers += [(t, 21_000) for t in range(10_000, 20_000, 100)]
    markers += [(t, t + 1500) for t in range(20_000, 23_100, 100)]
    markers += [(t, t + 250) for t in range(23_100, 30_000, 100)]
    p = phases(markers, 10_000, 20_000)
    assert p["before"] == {"markers": 100, "median_ms": 200, "p95_ms": 200, "max_ms": 200}
    assert p["during"]["markers"] == 100 and p["during"]["max_ms"] == 11_000
    assert p["threshold_ms"] == 1200
    assert p["recovery_s"] == 3.0
    assert p["after"]["markers"] == 31 + 69


def test_no_late_marker_is_recovered_at_once_and_no_baseline_says_none():
    assert phases([(t, t + 100) for t in range(0, 5000, 100)], 1000, 2000)["recovery_s"] == 0.0
    assert phases([(5000, 5100)], 1000, 2000)["recovery_s"] is None
