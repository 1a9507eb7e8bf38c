"""A node-loss experiment on a scaled-out local stack (issue 24): what a broker's, a Cassandra node's or a Spark
worker's loss does to the event-to-view latency, how long the view takes to recover, and whether it is exact.

    vendlab stack up --stack kappa --dir D --nodes 3
    python -m vendlab.bench.node_loss --dir D --stop kafka2 [--stop cassandra2] [--signal kill]
        [--before 30] [--outage 30] [--after 60] [--rate 300] [--out docs/img/node-loss/NAME]
    python -m vendlab.bench.node_loss --dir D --signal kill --fault kafka2 --fault cassandra2 \\
        --fault spark-worker-1 --fault kafka2,kafka3 --fault kappa-job,cassandra1,cassandra2,cassandra3

It runs the stack's start script as a user does (``./STACK/start_STACK.py --local D --rate R``), then for each
fault: waits until the view has caught up (``--steady-ms``: with its start-up backlog first, then with the
previous fault's), lets it run ``--before`` seconds, takes the fault's services away (SIGTERM, or SIGKILL with
``--signal kill``; a job is stopped on purpose, as ``vendlab stack stop`` does, since a killed job would be
restarted at once), brings them back after ``--outage`` seconds in the order given (a service waited for until
healthy, a job launched: ``kappa-job,cassandra1`` starts the job while Cassandra is still away). After the last
fault it runs ``--after`` seconds, then stops the run with ``--stop`` (the generator stops and the jobs drain).
The latency is the generator's markers' (one every 0.1 s, wall clock to the micro-batch that made it visible: the
store's ``markers``), split per fault into before (from caught-up to the loss), during (until everything is back)
and after (until the next fault's caught-up); the recovery time is from "back" to the creation of the last marker
whose latency was above the threshold (twice the median before, and at least 1 s more). Exactness: the view
(kappa's, or lambda's batch + speed) == validation == the generator's manifest. Writes NAME.json and NAME.png
(latency over time, each outage shaded).
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

from vendlab import architectures
from vendlab.architectures.spec import BATCH
from vendlab.bench.stack_run import final_views, run_start_script

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = Path("data") / "cluster" / "manifest.json"  # the generator's (cwd: the stack's folder)


def phases(
    markers: list[tuple[int, int]],
    stopped_ms: int,
    healthy_ms: int,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict:
    """Latency statistics before, during and after one outage, and the recovery time. ``markers``: (created_ms,
    visible_ms); the outage runs from ``stopped_ms`` to ``healthy_ms`` (everything taken away is back); only the
    markers created in [``since_ms``, ``until_ms``) count (one fault's window in a sequence of them). Before: made
    visible before the loss; during: the rest of those created before everything was back; after: the others."""
    markers = [(c, v) for c, v in markers if (since_ms is None or c >= since_ms) and (until_ms is None or c < until_ms)]
    parts = {"before": [], "during": [], "after": []}
    for created, visible in markers:
        # before: what the view showed before the loss; during: every marker the loss held up or that was made
        # while it lasted (one made a second before a kill and visible a minute after it is the loss's)
        part = "before" if visible < stopped_ms else "during" if created < healthy_ms else "after"
        parts[part].append(visible - created)
    out: dict = {}
    for name, lat in parts.items():
        lat.sort()
        out[name] = {
            "markers": len(lat),
            "median_ms": statistics.median(lat) if lat else None,
            "p95_ms": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None,
            "max_ms": lat[-1] if lat else None,
        }
    base = out["before"]["median_ms"]
    if base is None:
        out["threshold_ms"] = out["recovery_s"] = None
        return out
    threshold = max(2 * base, base + 1000)
    late = [c for c, v in markers if v >= stopped_ms and v - c > threshold]
    out["threshold_ms"] = threshold
    out["recovery_s"] = max(0.0, (max(late) - healthy_ms) / 1000) if late else 0.0
    out["above_threshold_markers"] = len(late)
    return out


COLOURS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def plot(result: dict, markers: list[tuple[int, int]], path: Path) -> None:
    from vendlab.bench.plots import plt

    t0 = result["started_ms"]
    faults = result["faults"]
    fig, ax = plt.subplots(figsize=(9 if len(faults) > 1 else 8, 4.2))
    ax.plot([(c - t0) / 1000 for c, _ in markers], [(v - c) / 1000 for c, v in markers], ".", ms=2, label="marker")
    for i, f in enumerate(faults):
        colour = COLOURS[i % len(COLOURS)]
        ax.axvspan(
            (f["stopped_ms"] - t0) / 1000,
            (f["restarted_ms"] - t0) / 1000,
            color=colour,
            alpha=0.18,
            label=f"{', '.join(f['services'])} {'stopped' if f['signal'] == 'term' else 'killed'}",
        )
        ax.axvline((f["healthy_ms"] - t0) / 1000, color=colour, lw=1, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the start script ran (dotted: everything taken away is healthy again)")
    ax.set_ylabel("event-to-view latency (s)")
    exact = "exact" if result["exact"] else "NOT exact"
    what = (
        f"{', '.join(faults[0]['services'])} {faults[0]['signal']}ed for {faults[0]['outage_s']:.0f} s"
        if len(faults) == 1
        else f"{len(faults)} faults, one after the other"
    )
    ax.set_title(f"{result['stack']}, {result['nodes']} node(s), {result['rate']} events/s: {what} ({exact})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _take_away(stack, name: str, how: str) -> None:
    """Stop one service (SIGTERM and wait, or SIGKILL with ``how == "kill"``) or one job (on purpose, as
    ``vendlab stack stop`` does: a job killed would be restarted by its supervisor at once)."""
    from vendlab.localstack.stack import StackError, pid_alive

    services, jobs = stack.names()
    if name in jobs:
        stack.stop([name])
        return
    rec = stack.state.get("services", {}).get(name)
    if not rec or not rec.get("pid") or not pid_alive(rec["pid"], str(stack.dir)):
        raise StackError(
            f"{name} is not a running service or job of the stack in {stack.dir} (services: {', '.join(services)}; "
            f"jobs: {', '.join(jobs) or '(none launched)'})"
        )
    if how == "term":
        stack.stop_service(name)
        return
    os.kill(rec["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while pid_alive(rec["pid"], str(stack.dir)) and time.monotonic() < deadline:
        time.sleep(0.2)


def _wait_steady(stack, name: str, steady_ms: int, timeout: float, since_ms: int = 0) -> float:
    """Seconds until the view is caught up: the last 20 markers made visible, of those created from ``since_ms``
    on (after the previous fault was over), had latencies under ``steady_ms`` (a job starts with the backlog of its
    start-up, minutes on 2 cores; an outage measured in it says nothing)."""
    from vendlab.store.cassandra import CassandraStore

    job = architectures.get(name).latency_job
    t0 = time.monotonic()
    store = CassandraStore(tuple(stack.env()["VENDLAB_CASSANDRA"].split(",")), "vendlab")
    try:
        said = 0.0
        while True:
            last = sorted((m for m in store.marker_latencies(job) if m[0] >= since_ms), key=lambda m: m[1])[-20:]
            now = time.monotonic()
            if len(last) == 20 and all(v - c < steady_ms for c, v in last):
                print(f"{time.strftime('%H:%M:%S')} {job} caught up after {now - t0:.0f} s", flush=True)
                return now - t0
            if now - t0 > timeout:
                raise SystemExit(f"{job} did not catch up (latency under {steady_ms} ms) within {timeout:.0f} s")
            if now - said > 15:
                lat = f"{(last[-1][1] - last[-1][0]) / 1000:.0f} s" if last else "no marker yet"
                print(f"{time.strftime('%H:%M:%S')} waiting for {job} to catch up (latest latency {lat})", flush=True)
                said = now
            time.sleep(3)
    finally:
        store.close()


def report(stack, done: list[dict], started_ms: int, rate: int, drain_s: float | None, out: Path) -> dict:
    """Reads the markers and the views of the stack's store after the drain, splits the latency per fault, checks
    exactness, writes OUT.json and OUT.png; ``done``: each fault's services, signal and times (as ``main`` records
    them). Returns the result."""
    from vendlab.store.cassandra import CassandraStore
    from vendlab.world.generator import Manifest

    name = stack.stack
    arch = architectures.get(name)
    has_batch = arch.job(BATCH) is not None
    store = CassandraStore(tuple(stack.env()["VENDLAB_CASSANDRA"].split(",")), "vendlab")
    try:
        first = done[0]["steady_ms"]
        markers = [(c, v) for c, v in store.marker_latencies(arch.latency_job) if c >= first]  # after start-up
        view, validation = final_views(store, name)
        runs = len(store.batch_history()) if has_batch else None
    finally:
        store.close()
    for i, f in enumerate(done):
        until = done[i + 1]["steady_ms"] if i + 1 < len(done) else None  # the next fault's window starts there
        f["phases"] = phases(markers, f["stopped_ms"], f["healthy_ms"], since_ms=f["steady_ms"], until_ms=until)
    manifest = Manifest.load(stack.dir / MANIFEST)
    want = {k: n for k, n in manifest.items_by_product.items() if n}
    result = {
        "stack": name,
        "nodes": stack.nodes,
        "spark_workers": sum(1 for s in stack.state.get("services", {}) if s.startswith("spark-worker")),
        "rate": rate,
        "started_ms": started_ms,
        "faults": done,
        "drain_s": drain_s,
        "batch_runs": runs,
        "exact": manifest.complete and view == validation == want,
        "events": {"sales": manifest.sales, "items": sum(want.values())},
        "totals": {"view": sum(view.values()), "validation": sum(validation.values()), "manifest": sum(want.values())},
        "load_average_1m": os.getloadavg()[0],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    # every marker as [created_ms, visible_ms], one line: the phases and the plot again without the stack
    out.with_name(out.name + "-markers.json").write_text(json.dumps(markers, separators=(",", ":")) + "\n")
    plot(result, markers, out.with_suffix(".png"))
    for f in done:
        p = f["phases"]
        print(
            f"{', '.join(f['services'])}: latency median before {p['before']['median_ms']} ms, during "
            f"{p['during']['median_ms']} ms (max {p['during']['max_ms']}), after {p['after']['median_ms']} ms; "
            f"back after {f['back_after_s']:.0f} s, recovered {p['recovery_s']} s after that"
        )
    t = result["totals"]
    print(
        f"{'exact' if result['exact'] else 'NOT EXACT'} (view {t['view']}, validation {t['validation']}, manifest "
        f"{t['manifest']} items); wrote {out.with_suffix('.json')}"
    )
    return result


def parse_faults(stop: list[str] | None, fault: list[str] | None) -> list[list[str]]:
    """``--stop A --stop B`` is one fault (A and B together); each ``--fault A,B`` is one more, in order."""
    faults = [list(stop)] if stop else []
    for f in fault or []:
        names = [n.strip() for n in f.split(",") if n.strip()]
        if not names:
            raise SystemExit(f"--fault {f!r}: give one service or job, or several separated by commas")
        faults.append(names)
    if not faults:
        raise SystemExit("give what to take away: --stop SERVICE (repeat) or --fault SERVICE[,SERVICE...] (repeat)")
    return faults


def main(argv: list[str] | None = None) -> int:
    from vendlab.localstack.stack import LocalStack

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, required=True, help="a running local stack (vendlab stack up ... --nodes 3)")
    ap.add_argument("--stop", action="append", metavar="SERVICE", help="a service to stop (repeat: all at once)")
    ap.add_argument(
        "--fault",
        action="append",
        metavar="SERVICE[,SERVICE...]",
        help="one fault: these services and jobs taken away together, brought back in this order (repeat: "
        "one fault after the other, each once the view has caught up again)",
    )
    ap.add_argument("--signal", choices=("term", "kill"), default="term", help="how services are stopped")
    ap.add_argument("--steady-ms", type=int, default=5000, help="the latency the view must be under before a loss")
    ap.add_argument("--warm-timeout", type=float, default=900.0, help="seconds to wait for that, at most")
    ap.add_argument("--before", type=float, default=30.0)
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--after", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--batch-interval", type=int, default=30, help="lambda: seconds between batch runs")
    ap.add_argument("--out", type=Path, help="JSON and PNG prefix (default docs/img/node-loss/STACK-SERVICES)")
    a = ap.parse_args(argv)
    faults = parse_faults(a.stop, a.fault)
    stack = LocalStack(a.dir)
    name = stack.stack
    label = "-".join("+".join(f) for f in faults) if len(faults) < 3 else f"{len(faults)}-faults"
    out = a.out or ROOT / "docs" / "img" / "node-loss" / f"{name}-{label}-{a.signal}"
    args = ["--rate", str(a.rate), "--seed", str(a.seed)]
    arch = architectures.get(name)  # each compose stack is named after its architecture
    has_batch = arch.job(BATCH) is not None
    if has_batch:
        args += ["--batch-interval", str(a.batch_interval)]
    started = int(time.time() * 1000)
    run_start_script(name, a.dir, *args)
    done: list[dict] = []
    for i, names in enumerate(faults):
        since = done[-1]["healthy_ms"] if done else 0
        steady_s = _wait_steady(stack, name, a.steady_ms, a.warm_timeout, since)
        steady = int(time.time() * 1000)
        time.sleep(a.before)
        stopped = int(time.time() * 1000)
        for s in names:
            _take_away(stack, s, a.signal)
            print(f"{time.strftime('%H:%M:%S')} fault {i + 1}/{len(faults)}: {s} taken away ({a.signal})", flush=True)
        time.sleep(a.outage)
        restarted = int(time.time() * 1000)
        for s in names:  # one at a time, in the order given (stack.start orders services before jobs)
            stack.start([s], timeout=600)  # a service: waited for until healthy; a job: launched
        healthy = int(time.time() * 1000)
        print(
            f"{time.strftime('%H:%M:%S')} fault {i + 1}/{len(faults)}: {', '.join(names)} back after "
            f"{(healthy - stopped) / 1000:.0f} s",
            flush=True,
        )
        done.append(
            {
                "services": names,
                "signal": a.signal,
                "caught_up_after_s": steady_s,
                "steady_ms": steady,
                "stopped_ms": stopped,
                "restarted_ms": restarted,
                "healthy_ms": healthy,
                "outage_s": (restarted - stopped) / 1000,
                "back_after_s": (healthy - stopped) / 1000,
            }
        )
    time.sleep(a.after)
    drain_t = time.monotonic()
    run_start_script(name, a.dir, "--stop")
    drain_s = time.monotonic() - drain_t
    result = report(stack, done, started, a.rate, drain_s, out)
    return 0 if result["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
