"""Where a micro-batch's time goes (vendlab.bench.timeparts): parts from Spark's progress and the sink."""

from __future__ import annotations

from vendlab.bench import timeparts


def batch(i, rows, **ms):
    d = {
        "latestOffset": 10,
        "getBatch": 5,
        "queryPlanning": 40,
        "walCommit": 8,
        "addBatch": 300,
        "commitOffsets": 7,
        "triggerExecution": 380,
    }
    d.update(ms)
    return {"batch": i, "rows": rows, "duration_ms": d, "state": [{"commitTimeMs": 6}]}


def test_parts_split_addbatch_by_the_sink_and_name_what_is_left():
    batches = [batch(0, 900, addBatch=3000, triggerExecution=3100), batch(1, 0), batch(2, 1000), batch(3, 1200)]
    sinks = [(0, 2.9, 0.05), (2, 0.2, 0.01), (3, 0.25, 0.02)]
    t = timeparts.table(batches, sinks)
    p = t["parts"]
    # the first batch that read input (a cold plan) and the empty one are left out
    assert t["batches"] == 2 and t["rows_per_batch"] == 1100
    assert p["plan"]["mean_ms"] == 225 and p["store"]["mean_ms"] == 15
    assert p["callback"]["mean_ms"] == 300 - 225 - 15
    assert p["other"]["mean_ms"] == 380 - (10 + 5 + 40 + 8 + 300 + 7)
    assert p["state_commit"]["mean_ms"] == 6
    assert p["triggerExecution"]["share"] == 1.0


def test_markdown_and_report_section_show_every_column():
    t = timeparts.table([batch(i, 100) for i in range(4)], [(i, 0.2, 0.01) for i in range(4)])
    lines = timeparts.markdown({"kappa": t, "lambda speed": t})
    assert lines[0].count("mean ms") == 2
    assert any(line.startswith("| addBatch") and "300 (79%)" in line for line in lines)
    sweep = {
        "kappa": [
            {"rate": 1000, "sustainable": True, "time_parts": t},
            {"rate": 8000, "sustainable": True, "time_parts": t},
            {"rate": 16000, "sustainable": False, "time_parts": t},
        ],
        "lambda": [{"rate": 1000, "sustainable": False, "time_parts": t}],
    }
    section = "\n".join(timeparts.report_section(sweep))
    assert "## Where the time goes" in section
    assert "kappa @ 1,000/s" in section and "kappa @ 8,000/s" in section and "16,000" not in section
    assert "lambda speed @ 1,000/s" in section
    assert timeparts.report_section({"kappa": [], "lambda": []}) == []
