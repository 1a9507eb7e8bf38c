"""The registry of the architectures the lab compares: the only place that lists them.

Each architecture is one object (``spec.Architecture``) declared in its own module:
``kappa.py`` (one streaming job -> real-time view) and ``lambda_.py`` (batch + speed layers, the
hand-off, serving). The CLI's ``--arch`` and ``answer --source`` choices, the runner, serving,
the dashboard, the bench, ``vendlab job`` and the compose start scripts all read them from here;
docs/architecture.md ("Adding a third architecture") says what a new one needs.
"""

from __future__ import annotations

from vendlab.architectures.kappa import KAPPA
from vendlab.architectures.lambda_ import LAMBDA
from vendlab.architectures.spec import BATCH, INGEST, VIEW, Architecture, Job, PipelineFailed

__all__ = [
    "ARCHITECTURES",
    "all_jobs",
    "BATCH",
    "INGEST",
    "VIEW",
    "Architecture",
    "Job",
    "PipelineFailed",
    "get",
    "names",
]

ARCHITECTURES: tuple[Architecture, ...] = (KAPPA, LAMBDA)


def names() -> tuple[str, ...]:
    """The architectures' names, in registry order (the CLI's choices)."""
    return tuple(a.name for a in ARCHITECTURES)


def get(name: str) -> Architecture:
    for a in ARCHITECTURES:
        if a.name == name:
            return a
    raise ValueError(f"unknown architecture {name!r}: allowed are {', '.join(names())}")


def all_jobs() -> list[tuple[Architecture, Job]]:
    """Every job of every architecture, in registry and start order."""
    return [(a, j) for a in ARCHITECTURES for j in a.jobs]
