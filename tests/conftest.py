"""Shared fixtures: one local SparkSession for the whole test session (local[2], 2 shuffle partitions)."""

from __future__ import annotations

import pytest

from vendlab.models.scenario import write_scenario


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from vendlab.config import embedded
    from vendlab.spark import get_spark

    session = get_spark(embedded(tmp_path_factory.mktemp("spark")))
    yield session
    session.stop()


def write_log(data_dir, seed=3, events=20_000, segment_lines=5_000, rate=20_000, bad_rate=0.0, dup_rate=0.0,
              machines=20):
    """A finished log in ``data_dir`` (catalog.json, log/, manifest.json); returns (catalog, manifest).
    The generator's own time scale (60x), unlike a scenario's days."""
    return write_scenario(data_dir, seed=seed, events=events, rate=rate, time_scale=60.0, machines=machines,
                          bad_rate=bad_rate, dup_rate=dup_rate, segment_lines=segment_lines)


@pytest.fixture
def log_factory():
    return write_log
