"""The two compose files are made from docker/compose/ (shared services written once): they are current, each
stack takes every shared fragment, and the maker refuses a placeholder without a value."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_SERVICES

ROOT = Path(__file__).resolve().parents[1]
MAKER = ROOT / "docker" / "compose" / "make_stacks.py"


def maker() -> dict:
    return runpy.run_path(str(MAKER))


def test_the_compose_files_are_what_docker_compose_sources_make():
    for path, text in maker()["expected"]().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: python3 docker/compose/make_stacks.py"
    r = subprocess.run([sys.executable, str(MAKER), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_both_stacks_take_every_shared_service_from_one_place():
    m = maker()
    shared = m["fragments"]()
    assert {"kafka", "spark-cassandra-grafana", "jobs", "x-spark", "x-job"} <= set(shared)
    ha = {name for name in shared if name.startswith("ha-")}  # the scaled-out overlays' (<stack>.ha.in.yml)
    assert ha == {"ha-clients", "ha-kafka", "ha-spark-cassandra-grafana", "ha-jobs"}
    for stack in m["STACKS"]:
        for source_name, fragments in ((f"{stack}.in.yml", set(shared) - ha), (f"{stack}.ha.in.yml", ha)):
            source = (ROOT / "docker" / "compose" / source_name).read_text()
            included = [line.split()[1] for line in source.splitlines() if line.startswith("#@include ")]
            assert sorted(included) == sorted(fragments), source_name
            assert "{{" not in m["render"](stack, source_name), source_name
        source = (ROOT / "docker" / "compose" / f"{stack}.in.yml").read_text()
        text = m["render"](stack)
        for service in SHARED_SERVICES:
            assert f"\n  {service}:\n" in text, (stack, service)
            assert f"\n  {service}:\n" not in source, f"{stack}.in.yml defines {service} again"
        assert "{{" not in text, stack


def test_a_placeholder_without_a_value_is_refused(tmp_path, monkeypatch):
    m = maker()
    render = m["render"]
    fragments = m["fragments"]
    monkeypatch.setitem(render.__globals__, "fragments", lambda: {**fragments(), "kafka": "  x: {{nope}}\n"})
    with pytest.raises(SystemExit, match=r"\{\{nope\}\} has no value for kappa"):
        render("kappa")


def test_the_stacks_default_batch_interval_is_the_one_of_vendlab_config():
    from vendlab.config import BATCH_INTERVAL_S

    for path, text in maker()["expected"]().items():
        if path.name != "docker-compose.yml":
            continue  # the overlays leave the run settings to the file they extend
        assert f"VENDLAB_BATCH_INTERVAL: ${{VENDLAB_BATCH_INTERVAL:-{BATCH_INTERVAL_S:g}}}" in text
