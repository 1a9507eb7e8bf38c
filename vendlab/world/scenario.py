"""Seeded scenarios for the owner's models: a finished log, with its catalog and manifest, long
enough in simulated time to hold breakdowns and sell-outs (tests, docs/questions.md).

``write_scenario`` writes DIR/catalog.json, DIR/log/, DIR/manifest.json like ``vendlab generate``
(``vendlab.finished_log``);
``with_validation_views`` adds DIR/views.sqlite with the validation consumer's views (plain Python,
no Spark), enough for ``vendlab answer --source validation``.
"""

from __future__ import annotations

from pathlib import Path

from vendlab.finished_log import write_log
from vendlab.world.catalog import Catalog, make_catalog
from vendlab.world.generator import Generator, Manifest

# About 5.8 simulated days in 150 000 events: a slot every 3.6 simulated seconds.
DAYS_RATE, DAYS_TIME_SCALE = 1000.0, 3600.0


def write_scenario(
    data_dir: Path,
    seed: int = 3,
    events: int = 150_000,
    rate: float = DAYS_RATE,
    time_scale: float = DAYS_TIME_SCALE,
    machines: int = 20,
    bad_rate: float = 0.0,
    dup_rate: float = 0.0,
    segment_lines: int = 50_000,
) -> tuple[Catalog, Manifest]:
    catalog = make_catalog(seed, machines=machines)
    gen = Generator(catalog, seed, rate, time_scale, bad_rate=bad_rate, dup_rate=dup_rate)
    return catalog, write_log(Path(data_dir), gen, events, segment_lines).manifest


def with_validation_views(data_dir: Path, catalog: Catalog) -> None:
    from vendlab.oracle import Validator
    from vendlab.store.sqlite import SqliteStore

    store = SqliteStore(Path(data_dir) / "views.sqlite")
    try:
        Validator(Path(data_dir) / "log", catalog, store).poll()
    finally:
        store.close()
