"""How long a Grafana view panel's query takes on Cassandra as a job's view rows pile up, with and without the
view store's compaction (vendlab.store.cassandra: ``compact`` every ``COMPACT_ROWS`` rows a job writes).

A kappa-shaped job writes micro-batches of KEYS rows (one per key, bucket 0) into one view, through
``CassandraStore.apply_batch`` (the jobs' own write path, compaction included when on). At each checkpoint of
rows written it times the dashboards' own query for that view (grafana_templates/make_dashboards.py
``view_sum``, what the panel sends through the plugin) ROUNDS times, counts the partition's live rows, and
checks the query's sum per key against the sum of what was written (exact, or the run stops). The JSON and
the plot are rewritten at every checkpoint, so a run stopped by hand keeps what it measured. The run without
compaction stops at its last checkpoint or when one query takes more than STOP_S seconds.

Cassandra: a running one (--hosts HOST:PORT) or, by default, cassandra1 of the kappa local stack started alone
in WORK (the compose file's settings, vendlab.localstack), stopped at the end. Writes a JSON and a plot:

    PYTHONPATH=. python scripts/perf/panel_query_time.py [--rows 100000,1000000,10000000] [--keys 200]
        [--uncompacted-rows 1000000] [--work DIR] [--hosts HOST:PORT] [--out docs/img/panel-query-time/panel_query_time]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from grafana_templates.make_dashboards import view_sum
from vendlab.store.cassandra import COMPACT_ROWS, CassandraStore

KEYSPACE = "vendlab_panelbench"
VIEW = "items_by_product"


def panel_query(job: str) -> str:
    return view_sum(job, "realtime", view=VIEW).replace("vendlab.", f"{KEYSPACE}.")


def time_query(store: CassandraStore, cql: str, rounds: int) -> tuple[list[float], dict[str, int]]:
    times, sums = [], {}
    for _ in range(rounds):
        t = time.perf_counter()
        rows = list(store.session.execute(cql, timeout=300))
        times.append(time.perf_counter() - t)
        sums = {}
        for key, value in rows:
            sums[key] = sums.get(key, 0) + int(value)
    return times, sums


def run(
    store: CassandraStore, job: str, checkpoints: list[int], keys: int, rounds: int, stop_s: float, out: list, save
) -> list:
    """Appends each checkpoint's point to ``out`` and calls ``save()`` (a run stopped by hand keeps its points)."""
    expected = {f"k{i:04d}": 0 for i in range(keys)}
    written, batch = 0, 0
    started = time.monotonic()
    for target in checkpoints:
        t0 = time.monotonic()
        while written < target:
            value = batch % 7 + 1
            store.apply_batch(job, batch, [(VIEW, k, 0, value) for k in expected], rows=keys)
            for k in expected:
                expected[k] += value
            written += keys
            batch += 1
            if batch % 500 == 0:
                rate = written / (time.monotonic() - started)
                print(f"  {job}: {written:,} rows written ({rate:,.0f} rows/s)", flush=True)
        write_s = time.monotonic() - t0
        times, sums = time_query(store, panel_query(job), rounds)
        if sums != expected:
            bad = sorted(k for k in expected if sums.get(k) != expected[k])[:5]
            raise SystemExit(f"{job} at {written:,} rows: the panel's sums differ from what was written, e.g. {bad}")
        t = time.perf_counter()
        view = store.read_view(job, VIEW)
        read_s = time.perf_counter() - t
        if view != expected:
            raise SystemExit(f"{job} at {written:,} rows: read_view differs from what was written")
        live = store.session.execute(
            f"SELECT COUNT(*) FROM {KEYSPACE}.view_rows WHERE job = %s AND view_name = %s", (job, VIEW), timeout=300
        ).one()[0]
        point = {
            "rows_written": written,
            "micro_batches": batch,
            "live_rows": int(live),
            "panel_query_s": {"median": statistics.median(times), "max": max(times), "rounds": times},
            "read_view_s": read_s,
            "write_s": write_s,
            "load_average_1m": os.getloadavg()[0],  # what else ran on the machine (2 cores)
            "exact": True,
        }
        out.append(point)
        save()
        print(
            f"{job}: {written:,} rows written, {live:,} live rows, panel query median "
            f"{point['panel_query_s']['median'] * 1000:,.0f} ms (max {max(times) * 1000:,.0f}), read_view "
            f"{read_s * 1000:,.0f} ms, exact, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        if max(times) > stop_s:
            print(f"{job}: a query took more than {stop_s:.0f} s: stopping this run", flush=True)
            break
    return out


def plot(result: dict, path: Path) -> None:
    from vendlab.bench.plots import plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in result["runs"].items():
        if points:
            xs = [p["rows_written"] for p in points]
            ax.plot(xs, [p["panel_query_s"]["median"] * 1000 for p in points], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("view rows written by the job")
    ax.set_ylabel("panel query, median (ms)")
    ax.set_title(f"Grafana view panel's CQL on Cassandra, {result['keys']} keys per micro-batch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="100000,1000000,10000000", help="checkpoints: rows written, comma-separated")
    ap.add_argument("--keys", type=int, default=200, help="keys per micro-batch (rows per micro-batch)")
    ap.add_argument("--uncompacted-rows", type=int, default=1_000_000, help="last checkpoint without compaction")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--stop-s", type=float, default=30.0)
    ap.add_argument("--hosts", help="a running Cassandra, HOST:PORT (default: start one in --work)")
    ap.add_argument("--work", type=Path, help="the local stack's folder when this script starts Cassandra")
    ap.add_argument(
        "--out", type=Path, default=Path("docs/img/panel-query-time/panel_query_time"), help="JSON and PNG prefix"
    )
    a = ap.parse_args(argv)
    checkpoints = sorted(int(x) for x in a.rows.split(","))
    stack = None
    if a.hosts:
        hosts = a.hosts.split(",")
    else:
        from vendlab.localstack.stack import LocalStack

        stack = LocalStack(a.work or Path(tempfile.mkdtemp(prefix="panelbench-")), "kappa")
        hosts = [stack.up(only=["cassandra1"])["services"]["cassandra1"]["address"]]
    try:
        result = {"keys": a.keys, "compact_rows": COMPACT_ROWS, "query": panel_query("JOB"), "runs": {}}
        admin = CassandraStore(hosts, KEYSPACE, create_schema=True, compact_rows=0)
        for job in ("uncompacted", "compacted"):
            admin.session.execute(f"DELETE FROM {KEYSPACE}.view_rows WHERE job = %s AND view_name = %s", (job, VIEW))
            admin.session.execute(f"DELETE FROM {KEYSPACE}.applied WHERE job = %s", (job,))
        uncompacted = CassandraStore(hosts, KEYSPACE, compact_rows=0)
        compacted = CassandraStore(hosts, KEYSPACE)  # the jobs' default
        result["runs"] = {"uncompacted": [], "compacted": []}

        def save():
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
            plot(result, a.out.with_suffix(".png"))

        upto = [c for c in checkpoints if c <= a.uncompacted_rows]
        run(uncompacted, "uncompacted", upto, a.keys, a.rounds, a.stop_s, result["runs"]["uncompacted"], save)
        run(compacted, "compacted", checkpoints, a.keys, a.rounds, a.stop_s, result["runs"]["compacted"], save)
        for s in (uncompacted, compacted, admin):
            s.close()
    finally:
        if stack is not None:
            stack.down()
    print(f"wrote {a.out.with_suffix('.json')} and {a.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
