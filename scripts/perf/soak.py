"""A soak of a local stack (issue 25): hours at a steady rate, with a stall and a job crash in the middle, and
what a user's laptop would feel along the way: the dashboards' panel query times, the event-to-view latency,
each service's memory and disk; exactness at the end.

    PYTHONPATH=. python scripts/perf/soak.py --stack kappa --dir D [--nodes 1] [--hours 2] [--rate 2000]
        [--stall-at 0.4] [--stall-min 10] [--crash-at 0.7] [--sample-s 60] [--out docs/img/soak/kappa]

It starts the local stack in D if it is not running (``vendlab stack up``: the compose file's services as local
processes), runs the stack's start script as a user does (``./STACK/start_STACK.py --local D --rate R``), and
every ``--sample-s`` seconds records:
- every query of the stack's Grafana dashboard (grafana_templates/dashboards/STACK.json), filled as the plugin
  fills it (the variables from their own queries, the time range the last hour) and timed on Cassandra; a query
  that fails or takes more than the dashboard's refresh (5 s) is counted as such;
- the latest event-to-view latency (the generator's markers, as the benchmark reads them);
- each service's and job's resident memory (its process and every child: a Spark worker's executors, YARN's
  containers, a job's driver JVM) and each service's data folder on disk.
At ``--stall-at`` of the run the view job (kappa-job, or lambda-speed) is stopped on purpose for ``--stall-min``
minutes (a backlog, as a job outage makes one) and started again; at ``--crash-at`` it is killed (SIGKILL) and
its supervisor restarts it (the restart policy). At the end ``--stop`` drains, and the view (kappa's, or lambda's
batch + speed) must equal validation and the generator's manifest. The JSON and the plots are rewritten at every
sample, so a run stopped by hand keeps what it measured.

The dashboards' queries are filled by tests/grafana_cql.py, the project's one model of how the Cassandra plugin
and Grafana fill a query (read from their sources: see that module); this script imports it from there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # grafana_cql, grafana_frames: the plugin's model (see the docstring)

from grafana_cql import fill, targets, variable_values  # noqa: E402

from vendlab import architectures  # noqa: E402
from vendlab.bench.node_loss import MANIFEST  # noqa: E402
from vendlab.bench.stack_run import final_views, run_start_script  # noqa: E402
from vendlab.localstack.jobs import LocalRunner  # noqa: E402
from vendlab.localstack.stack import LocalStack, pid_alive  # noqa: E402
from vendlab.store.cassandra import CassandraStore  # noqa: E402

REFRESH_S = 5.0  # the dashboards' refresh (grafana_templates/make_dashboards.py)
VIEW_JOB = {"kappa": "kappa-job", "lambda": "lambda-speed"}  # the job a stall and a crash take away


def tree_rss(pid: int | None) -> int:
    """Resident bytes of a process and all its children (0 if it is gone)."""
    if not pid:
        return 0
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def disk_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def time_panels(store: CassandraStore, dashboard: dict) -> dict:
    """Every query of the dashboard, filled for the last hour, timed once: {seconds: {panel/ref: s}, failed: [...]}."""
    now = int(time.time() * 1000)
    out: dict = {"seconds": {}, "failed": []}
    try:
        variables = variable_values(dashboard, store.session)
    except Exception as e:  # noqa: BLE001 - a failing variable query is a result of the soak, not its end
        out["failed"].append(f"variables: {str(e)[:200]}")
        return out
    for title, t in targets(dashboard):
        cql = fill(t["target"], variables, now - 3_600_000, now + 60_000)
        name = f"{title} ({t['refId']})"
        t0 = time.perf_counter()
        try:
            store.session.execute(cql, timeout=60)
        except Exception as e:  # noqa: BLE001 - see above
            out["failed"].append(f"{name}: {str(e)[:200]}")
            continue
        out["seconds"][name] = time.perf_counter() - t0
    return out


def sample(stack: LocalStack, runner: LocalRunner, store: CassandraStore, dashboard: dict, job: str) -> dict:
    services = stack.state.get("services", {})
    mem = {
        n: tree_rss(r.get("pid") if r.get("pid") and pid_alive(r["pid"], str(stack.dir)) else None)
        for n, r in services.items()
    }
    for j in runner.names():
        mem[j] = tree_rss((runner.status(j) or {}).get("pid"))
    disk = {n: disk_bytes(stack.service_data(n)) for n in services}
    disk["checkpoints and volumes"] = disk_bytes(stack.data("volumes"))
    disk["logs"] = disk_bytes(stack.dir / "logs")
    panels = time_panels(store, dashboard)
    latest = sorted(store.marker_latencies(job), key=lambda m: m[0])[-20:]
    st = runner.status(VIEW_JOB[stack.stack]) or {}
    (live,) = store.session.execute(  # the panel's partition: compaction keeps it small
        "SELECT count(*) FROM view_rows WHERE job = %s AND view_name = 'items_by_product'", (job,), timeout=60
    ).one()
    return {
        "view_rows_items_by_product": live,
        "t": time.time(),
        "latency_s": statistics.median(v - c for c, v in latest) / 1000 if latest else None,
        "panel_s": panels["seconds"],
        "panel_failed": panels["failed"],
        "rss_bytes": mem,
        "disk_bytes": disk,
        "view_job_restarts": st.get("restarts", 0),
        "load_average_1m": os.getloadavg()[0],
    }


def marker_phases(markers: list[tuple[int, int]], result: dict) -> dict:
    """Every marker's event-to-view latency by when it was made: before the stall, while the view job was stopped,
    from its start again to the crash, after the crash (median and max, seconds). The samples' latency (the newest
    20 markers shown) stands still while nothing new is shown; these are what each marker waited."""
    t = {e["what"].split(" ")[1]: e["t"] * 1000 for e in result["events"]}  # stopped, started, killed
    edges = [("before the stall", 0), ("during the stall", t.get("stopped")), ("after the stall", t.get("started"))]
    edges.append(("after the crash", t.get("killed")))
    edges = [(n, e) for n, e in edges if e is not None] + [("", float("inf"))]
    out = {}
    for (name, lo), (_n, hi) in zip(edges, edges[1:]):
        lat = [(v - c) / 1000 for c, v in markers if lo <= c < hi and c >= result["started"] * 1000]
        out[name] = {
            "markers": len(lat),
            "median_s": statistics.median(lat) if lat else None,
            "max_s": max(lat) if lat else None,
        }
    return out


def markers_path(prefix: Path) -> Path:
    """OUT-markers.json: every marker of the run, [created, visible] in ms."""
    return prefix.with_name(prefix.name + "-markers.json")


def record_markers(store: CassandraStore, job: str, result: dict, out: Path) -> None:
    """After the drain: every marker [created, visible] (ms) to OUT-markers.json, and the phases into the result
    (``markers_file`` says the file is this run's: until then one of an earlier run may lie there)."""
    markers = [(c, v) for c, v in store.marker_latencies(job) if c >= result["started"] * 1000]
    path = markers_path(out)
    path.write_text(json.dumps(markers) + "\n")
    result["marker_latency"] = marker_phases(markers, result)
    result["markers_file"] = path.name


def plot(result: dict, prefix: Path) -> None:
    from vendlab.bench.plots import plt

    pts = result["samples"]
    if not pts:
        return
    t0 = result["started"]
    x = [(p["t"] - t0) / 60 for p in pts]
    marks = [(e["t"] - t0) / 60 for e in result["events"]]

    def mark(ax):
        for m, e in zip(marks, result["events"]):
            ax.axvline(m, color="tab:red", lw=0.8, ls=":")
            ax.text(m, ax.get_ylim()[1], e["what"], fontsize=6, rotation=90, va="top", ha="right")

    fig, ax = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    worst = [max(p["panel_s"].values(), default=0) for p in pts]
    med = [statistics.median(p["panel_s"].values()) if p["panel_s"] else 0 for p in pts]
    ax[0].plot(x, worst, label="slowest panel query")
    ax[0].plot(x, med, label="median panel query")
    ax[0].axhline(REFRESH_S, color="gray", ls="--", lw=0.8, label="refresh (5 s)")
    ax[0].set_ylabel("seconds")
    ax[0].set_yscale("log")
    ax[0].legend(fontsize=7)
    ax[0].grid(True, which="both", alpha=0.3)
    mark(ax[0])
    ax[1].plot(x, [p["latency_s"] for p in pts], label="event-to-view latency (median of the newest 20 markers shown)")
    mfile = markers_path(prefix)
    if result.get("markers_file") and mfile.exists():
        ms = json.loads(mfile.read_text())
        ax[1].scatter(
            [(c / 1000 - t0) / 60 for c, _v in ms],
            [max((v - c) / 1000, 0.01) for c, v in ms],
            s=2,
            color="tab:orange",
            label="each marker, at the time it was made",
        )
    ax[1].set_ylabel("seconds")
    ax[1].set_yscale("log")
    ax[1].set_xlabel("minutes since the start script ran")
    ax[1].legend(fontsize=7)
    ax[1].grid(True, which="both", alpha=0.3)
    mark(ax[1])
    exact = {True: "exact", False: "NOT exact", None: "running"}[result.get("exact")]
    fig.suptitle(f"{result['stack']} soak, {result['rate']} events/s: panel queries and latency ({exact})")
    fig.tight_layout()
    fig.savefig(prefix.with_name(prefix.name + "-panels.png"), dpi=100)
    plt.close(fig)

    for key, title, fname in (("rss_bytes", "resident memory", "memory"), ("disk_bytes", "data on disk", "disk")):
        fig, ax = plt.subplots(figsize=(9, 4.5))
        names = sorted({n for p in pts for n in p[key]})
        for n in names:
            ax.plot(x, [p[key].get(n, 0) / 2**20 for p in pts], label=n)
        ax.set_ylabel("MiB")
        ax.set_xlabel("minutes since the start script ran")
        ax.set_title(f"{result['stack']} soak: {title} of each service and job")
        ax.legend(fontsize=6, ncol=3)
        ax.grid(True, alpha=0.3)
        mark(ax)
        fig.tight_layout()
        fig.savefig(prefix.with_name(f"{prefix.name}-{fname}.png"), dpi=100)
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from vendlab.architectures.spec import BATCH
    from vendlab.world.generator import Manifest

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack", choices=sorted(VIEW_JOB), required=True)
    ap.add_argument("--dir", type=Path, required=True, help="the local stack's folder (started if not running)")
    ap.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=25)
    ap.add_argument("--stall-at", type=float, default=0.4, help="fraction of the run at which the view job stops")
    ap.add_argument("--stall-min", type=float, default=10.0, help="minutes it stays stopped")
    ap.add_argument("--crash-at", type=float, default=0.7, help="fraction of the run at which it is killed")
    ap.add_argument("--sample-s", type=float, default=60.0)
    ap.add_argument("--batch-interval", type=int, default=300, help="lambda: seconds between batch runs")
    ap.add_argument("--out", type=Path, help="prefix of the JSON and plots (default docs/img/soak/STACK)")
    a = ap.parse_args(argv)
    for flag, v in (("--stall-at", a.stall_at), ("--crash-at", a.crash_at)):
        if not 0 < v < 1:
            raise SystemExit(f"{flag} {v}: allowed is a fraction of the run between 0 and 1")
    if a.crash_at * a.hours * 3600 < a.stall_at * a.hours * 3600 + a.stall_min * 60:
        raise SystemExit(  # the crash is of the job the stall started again
            f"--crash-at {a.crash_at}: allowed is a moment after the stall's end ({a.stall_at} of the run plus "
            f"--stall-min {a.stall_min:g} minutes)"
        )
    out = a.out or ROOT / "docs" / "img" / "soak" / a.stack
    out.parent.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(a.dir, a.stack, nodes=a.nodes)
    if not all(s["running"] for s in stack.status()["services"].values()) or not stack.state.get("services"):
        print(f"{time.strftime('%H:%M:%S')} starting the {a.stack} stack in {a.dir}", flush=True)
        stack.up(timeout=900)
    arch = architectures.get(a.stack)
    has_batch = arch.job(BATCH) is not None
    dashboard = json.loads((ROOT / "grafana_templates" / "dashboards" / f"{a.stack}.json").read_text())
    args = ["--rate", str(a.rate), "--seed", str(a.seed)]
    if has_batch:
        args += ["--batch-interval", str(a.batch_interval)]
    result: dict = {"stack": a.stack, "nodes": stack.nodes, "rate": a.rate, "hours": a.hours, "events": []}
    result["started"] = time.time()
    run_start_script(a.stack, a.dir, *args)
    runner = LocalRunner(stack)
    store = CassandraStore(tuple(stack.env()["VENDLAB_CASSANDRA"].split(",")), "vendlab")
    view_job = VIEW_JOB[a.stack]
    end = result["started"] + a.hours * 3600
    stall_t = result["started"] + a.stall_at * a.hours * 3600
    crash_t = result["started"] + a.crash_at * a.hours * 3600
    stalled_until = None
    samples: list = []
    result["samples"] = samples

    def save():
        (out.with_suffix(".json")).write_text(json.dumps(result, indent=1) + "\n")
        plot(result, out)

    try:
        while time.time() < end:
            now = time.time()
            if stalled_until is None and now >= stall_t:
                stack.stop([view_job])
                stalled_until = now + a.stall_min * 60
                result["events"].append({"t": now, "what": f"{view_job} stopped ({a.stall_min:g} min)"})
            elif stalled_until and now >= stalled_until:
                stack.start([view_job])
                stalled_until = 0
                result["events"].append({"t": now, "what": f"{view_job} started"})
            if crash_t and now >= crash_t and stalled_until == 0:
                pid = (runner.status(view_job) or {}).get("pid")
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    result["events"].append({"t": now, "what": f"{view_job} killed (pid {pid})"})
                    crash_t = 0
            samples.append(sample(stack, runner, store, dashboard, arch.latency_job))
            p = samples[-1]
            slow = max(p["panel_s"].values(), default=0)
            print(
                f"{time.strftime('%H:%M:%S')} {(now - result['started']) / 60:.0f} min: latency "
                f"{p['latency_s'] if p['latency_s'] is None else round(p['latency_s'], 1)} s, slowest panel "
                f"{slow:.2f} s, {len(p['panel_failed'])} failed, memory {sum(p['rss_bytes'].values()) / 2**30:.1f} GiB, "
                f"disk {sum(p['disk_bytes'].values()) / 2**30:.2f} GiB, load {p['load_average_1m']:.1f}",
                flush=True,
            )
            save()
            time.sleep(max(0.0, a.sample_s - (time.time() - now)))
        t = time.monotonic()
        run_start_script(a.stack, a.dir, "--stop")
        result["drain_s"] = time.monotonic() - t
        view, validation = final_views(store, a.stack)
        manifest = Manifest.load(a.dir / MANIFEST)
        want = {k: n for k, n in manifest.items_by_product.items() if n}
        result["exact"] = manifest.complete and view == validation == want
        result["totals"] = {
            "view": sum(view.values()),
            "validation": sum(validation.values()),
            "manifest": sum(want.values()),
            "sales": manifest.sales,
        }
        result["batch_runs"] = len(store.batch_history()) if has_batch else None
        record_markers(store, arch.latency_job, result, out)
        save()
    finally:
        store.close()
    print(
        f"{'exact' if result['exact'] else 'NOT EXACT'}: {result['totals']}; wrote {out.with_suffix('.json')} "
        f"and its plots"
    )
    return 0 if result["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
