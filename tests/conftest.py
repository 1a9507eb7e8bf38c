"""Shared fixtures: one local SparkSession for the whole test session (local[2], 2 shuffle partitions);
one local stack (vendlab stack up) per test module that asks for kappa_stack or lambda_stack."""

from __future__ import annotations

import sys

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


def _local_stack(tmp_path_factory, name: str, timeout: float):
    """A local stack for one test module, stopped by pid at the end (every job of every run first);
    its logs stay in the printed folder."""
    from vendlab.localstack.jobs import LocalRunner
    from vendlab.localstack.stack import LocalStack

    d = tmp_path_factory.mktemp(f"localstack-{name}")
    stack = LocalStack(d, name)
    print(f"\nlocal {name} stack in {d} (logs: {d / 'logs'})", file=sys.stderr)
    try:
        stack.up(timeout=timeout)
        yield stack
    finally:
        if (d / "jobs").exists():
            LocalRunner(stack).stop_all()
        stack.down()
        print(f"\nlocal {name} stack stopped; logs kept in {d / 'logs'}", file=sys.stderr)


@pytest.fixture(scope="module")
def kappa_stack(tmp_path_factory):
    yield from _local_stack(tmp_path_factory, "kappa", 600)


@pytest.fixture(scope="module")
def lambda_stack(tmp_path_factory):
    yield from _local_stack(tmp_path_factory, "lambda", 900)
