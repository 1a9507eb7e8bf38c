"""Sizes of the benchmark: ``--quick`` (a smoke run, under 3 minutes) and the full run (13-17
minutes on a 2-core machine: 756 s and 991 s on 2026-11-29; docs/results.md states each run's duration)."""

from __future__ import annotations

QUICK = {
    # Events of the warm-up log each worker runs every job on before timing (vendlab/warmup.py): a
    # cold JVM's first micro-batches take seconds no later one pays, and a 5-second run is all first.
    "warmup": 20_000,
    "main": {"master": "local[2]", "driver_memory": "2g"},
    "sweep": {"rates": [5_000], "duration": 5.0, "batch_interval": 3.0},
    "exactness": {"rate": 5_000, "duration": 6.0, "batch_interval": 2.0},
    "replay_events": 60_000,
    "history": [30_000, 60_000],
    "ram_vs_cores": {"configs": [("local[1]", "1g")], "archs": ["kappa"], "rates": [5_000], "duration": 5.0},
}

FULL = {
    "warmup": 30_000,  # events of the warm-up log (see QUICK)
    "main": {"master": "local[2]", "driver_memory": "4g"},
    "sweep": {
        "rates": [1_000, 2_500, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 160_000],
        "duration": 20.0,
        "batch_interval": 10.0,
    },
    "exactness": {"rate": 5_000, "duration": 30.0, "batch_interval": 8.0},
    "replay_events": 1_000_000,
    "history": [200_000, 600_000, 1_200_000],
    "ram_vs_cores": {
        "configs": [("local[1]", "1g"), ("local[1]", "4g"), ("local[2]", "1g")],
        "archs": ["kappa"],
        "rates": [5_000, 20_000, 40_000, 60_000, 80_000],
        "duration": 15.0,
    },
}

# `vendlab bench --profile local-stack`: kappa on a local stack's Kafka + Cassandra (the cluster-mode job,
# vendlab/bench/stack_sweep.py) next to embedded kappa at the same rates, durations and seed. Each rate of the
# stack's sweep also starts its job (spark-submit) and warms it up for ``stack_warmup_s`` at that rate.
LOCAL_STACK_QUICK = {
    "warmup": 20_000,  # events of the embedded worker's warm-up log (see QUICK)
    "main": {"master": "local[2]", "driver_memory": "2g"},
    "sweep": {"rates": [500], "duration": 6.0, "batch_interval": 3.0},
    "stack_warmup_s": 5.0,
}

LOCAL_STACK_FULL = {
    "warmup": 30_000,
    "main": {"master": "local[2]", "driver_memory": "4g"},
    "sweep": {"rates": [1_000, 5_000, 10_000, 20_000, 40_000, 80_000], "duration": 15.0, "batch_interval": 10.0},
    "stack_warmup_s": 8.0,
}
