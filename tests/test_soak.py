"""scripts/perf/soak.py's own arithmetic (the soak itself is hours on a local stack, not a test): each marker's
latency split by the stall and the crash, and the plot drawn from a recorded run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def soak():
    pytest.importorskip("psutil")
    spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "perf" / "soak.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(start=1000.0):
    events = [
        {"t": start + 100, "what": "kappa-job stopped (10 min)"},
        {"t": start + 700, "what": "kappa-job started"},
        {"t": start + 1000, "what": "kappa-job killed (pid 7)"},
    ]
    return {"stack": "kappa", "rate": 2000, "started": start, "events": events, "samples": []}


def ms(t):
    return int(t * 1000)


def test_each_marker_counts_in_the_phase_it_was_made_in(soak):
    r = run()
    markers = [
        (ms(990), ms(991)),  # before the run: left out
        (ms(1050), ms(1051)),  # before the stall: 1 s
        (ms(1150), ms(1720)),  # made in the stall, shown after it: 570 s
        (ms(1650), ms(1730)),  # 80 s
        (ms(1800), ms(1802)),  # after the stall: 2 s
        (ms(2050), ms(2110)),  # after the crash: 60 s
    ]
    got = soak.marker_phases(markers, r)
    assert got["before the stall"] == {"markers": 1, "median_s": 1.0, "max_s": 1.0}
    assert got["during the stall"] == {"markers": 2, "median_s": 325.0, "max_s": 570.0}
    assert got["after the stall"] == {"markers": 1, "median_s": 2.0, "max_s": 2.0}
    assert got["after the crash"] == {"markers": 1, "median_s": 60.0, "max_s": 60.0}


def test_a_run_without_a_crash_has_no_crash_phase(soak):
    r = run()
    r["events"] = r["events"][:2]
    got = soak.marker_phases([(ms(2050), ms(2051))], r)
    assert list(got) == ["before the stall", "during the stall", "after the stall"]
    assert got["after the stall"]["markers"] == 1 and got["during the stall"]["median_s"] is None


def test_the_plots_are_drawn_from_a_recorded_run_with_its_markers(soak, tmp_path):
    r = run()
    r["samples"] = [
        {
            "t": 1000 + 60 * i,
            "panel_s": {"a (A)": 0.1 * (i + 1)},
            "latency_s": 1.0,
            "rss_bytes": {"kafka": 2**28},
            "disk_bytes": {"kafka": 2**20 * i},
        }
        for i in range(20)
    ]
    prefix = tmp_path / "kappa"
    (tmp_path / "kappa-markers.json").write_text(json.dumps([[ms(1050), ms(1051)], [ms(1150), ms(1720)]]))
    r["markers_file"] = "kappa-markers.json"
    soak.plot(r, prefix)
    for name in ("kappa-panels.png", "kappa-memory.png", "kappa-disk.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
