"""Shared fixtures: one local SparkSession for the whole test session (local[2], 2 shuffle partitions)."""

from __future__ import annotations

import pytest

from vendlab.catalog import make_catalog
from vendlab.eventlog import SegmentWriter
from vendlab.generator import Generator


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from vendlab.config import embedded
    from vendlab.spark import get_spark

    session = get_spark(embedded(tmp_path_factory.mktemp("spark")))
    yield session
    session.stop()


def write_log(data_dir, seed=3, events=20_000, segment_lines=5_000, rate=20_000, bad_rate=0.0, dup_rate=0.0,
              machines=20):
    """A finished log in ``data_dir`` (catalog.json, log/, manifest.json); returns (catalog, manifest)."""
    catalog = make_catalog(seed, machines=machines)
    data_dir.mkdir(parents=True, exist_ok=True)
    catalog.save(data_dir / "catalog.json")
    gen = Generator(catalog, seed, rate, bad_rate=bad_rate, dup_rate=dup_rate)
    writer = SegmentWriter(data_dir / "log", roll_seconds=1e9, roll_lines=segment_lines, fsync=False)
    left = events
    while left:
        n = min(left, segment_lines)
        c = gen.take(n)
        writer.append(c.data, c.lines, c.first_ms)
        left -= n
    writer.close()
    gen.manifest.complete = True
    gen.manifest.save(data_dir / "manifest.json")
    return catalog, gen.manifest


@pytest.fixture
def log_factory():
    return write_log
