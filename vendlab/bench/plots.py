"""The benchmark's PNG plots (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vendlab import architectures  # noqa: E402

COLORS = {"kappa": "tab:blue", "lambda": "tab:orange", "duckdb": "tab:gray"}


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return name


def sweep_latency(doc: dict, out: Path) -> str:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arch in ("kappa", "lambda"):
        pts = doc["sweep"].get(arch, [])
        rates = [p["rate"] for p in pts]
        for pct, style in (("p50", "-o"), ("p95", "--s"), ("p99", ":^")):
            ax.plot(
                rates,
                [(p["latency_ms"][pct] or 0) / 1000 for p in pts],
                style,
                color=COLORS[arch],
                label=f"{arch} {pct}",
            )
        for p in pts:
            if not p["sustainable"]:
                ax.axvline(p["rate"], color=COLORS[arch], alpha=0.25, lw=6)
        sus = doc[arch]["sustainable_eps"]
        if sus:
            ax.axvline(sus, color=COLORS[arch], ls="-.", lw=1)
    ax.set_xlabel("input rate (events/s)")
    ax.set_ylabel("event-to-view latency (s, markers)")
    ax.set_yscale("log")
    ax.set_title("Rate sweep: latency by input rate (dash-dot: sustainable; shaded: stalled)")
    ax.legend(ncol=2, fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out, "sweep_latency.png")


def sweep_backlog(doc: dict, out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, arch in zip(axes, ("kappa", "lambda")):
        query = architectures.get(arch).latency_job
        for p in doc["sweep"].get(arch, []):
            t = [s["t"] for s in p["samples"]]
            b = [s["generated"] - s["processed"].get(query, 0) for s in p["samples"]]
            ax.plot(t, b, label=f"{p['rate']:,.0f}/s" + ("" if p["sustainable"] else " (stalls)"))
        ax.set_title(f"{arch}: backlog (lines written - lines processed)")
        ax.set_xlabel("s since start")
        ax.set_ylabel("lines")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, out, "sweep_backlog.png")


def latency_over_time(doc: dict, out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, arch in zip(axes, ("kappa", "lambda")):
        for p in doc["sweep"].get(arch, []):
            s = p["latency_series"]
            ax.plot(
                [x[0] for x in s],
                [x[1] / 1000 for x in s],
                ".",
                ms=3,
                label=f"{p['rate']:,.0f}/s" + ("" if p["sustainable"] else " (stalls)"),
            )
        ax.set_title(f"{arch}: marker latency over the run")
        ax.set_xlabel("marker created (s since start)")
        ax.set_ylabel("latency (s)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save(fig, out, "latency_over_time.png")


def exactness(doc: dict, out: Path) -> str:
    ex = doc["exactness"]
    fig, ax = plt.subplots(figsize=(8, 4))
    for arch in ("kappa", "lambda"):
        s = ex[arch]["samples"]
        t = [x["t"] for x in s] + ([s[-1]["t"] + 1] if s else [])
        v = [x["minus_validation"] for x in s] + [ex[arch]["final_view_minus_validation"]]
        ax.plot(t, v, color=COLORS[arch], label=f"{arch} view - validation view (items; last point: after the drain)")
        ax.plot(t[-1:], v[-1:], "o", color=COLORS[arch])
        ax.plot(
            [x["t"] for x in s],
            [x["over_generated"] for x in s],
            ":",
            color=COLORS[arch],
            label=f"{arch}: max over products of view - generated",
        )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("s since start")
    ax.set_ylabel("items")
    ax.set_title("Exactness over time (never above 0 = never over-counts; 0 at the end = exact)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out, "exactness.png")


def batch_history(doc: dict, out: Path) -> str:
    h = doc["lambda"]["batch_seconds_by_history"]
    sizes = [int(k) for k in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(sizes, list(h.values()), "-o", color=COLORS["lambda"], label="batch run (s)")
    ax.set_xlabel("history: events in the master dataset")
    ax.set_ylabel("seconds per batch run")
    ax.set_title("Lambda: batch cost as history grows")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out, "batch_history.png")


def ram_vs_cores(doc: dict, out: Path) -> str:
    rows = doc["ram_vs_cores"]
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"{r['arch']}\n{r['master']}\n{r['driver_memory']}" for r in rows]
    vals = [r["sustainable_eps"] or 0 for r in rows]
    ax.bar(range(len(rows)), vals, color=[COLORS[r["arch"]] for r in rows])
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylabel("sustainable events/s")
    ax.set_title("More RAM or more cores? (same sweep, each configuration its own JVM)")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, out, "ram_vs_cores.png")


def throughput_vs_duckdb(doc: dict, out: Path) -> str:
    items = [
        ("DuckDB (same view,\nsame files)", doc["duckdb_eps"], COLORS["duckdb"]),
        ("kappa live\n(sustainable)", doc["kappa"]["sustainable_eps"] or 0, COLORS["kappa"]),
        ("kappa replay", doc["kappa"]["replay_eps"] or 0, COLORS["kappa"]),
        ("lambda live\n(sustainable)", doc["lambda"]["sustainable_eps"] or 0, COLORS["lambda"]),
        ("lambda batch\n(largest history)", doc["lambda"].get("batch_eps") or 0, COLORS["lambda"]),
    ]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(items)), [i[1] for i in items], color=[i[2] for i in items])
    ax.set_xticks(range(len(items)), [i[0] for i in items], fontsize=8)
    for i, it in enumerate(items):
        ratio = it[1] / doc["duckdb_eps"] if doc["duckdb_eps"] else 0
        label = f"{ratio:.2f}x" if ratio >= 0.1 or not ratio else f"1/{1 / ratio:,.0f}"
        ax.text(i, it[1], f"{it[1]:,.0f}\n({label})", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=doc["duckdb_eps"] * 4 if doc["duckdb_eps"] else None)
    ax.set_ylabel("events/s (log scale)")
    ax.set_title("Throughput, as a ratio to the physical reference (DuckDB)")
    return _save(fig, out, "throughput_vs_duckdb.png")


def all_plots(doc: dict, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for f in (
        sweep_latency,
        sweep_backlog,
        latency_over_time,
        exactness,
        batch_history,
        ram_vs_cores,
        throughput_vs_duckdb,
    ):
        names.append(f(doc, out))
    return names


# -- vendlab bench --profile local-stack ---------------------------------------------------------------------
STACK_RUNS = (
    ("embedded", "embedded kappa (files, SQLite, local[2])", "tab:blue"),
    ("local_stack", "kappa on Kafka + Cassandra (local stack)", "tab:red"),
)


def stack_latency(doc: dict, out: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    for key, label, color in STACK_RUNS:
        pts = doc[key]["sweep"]
        rates = [p["rate"] for p in pts]
        for pct, style in (("p50", "-o"), ("p99", ":^")):
            ax.plot(
                rates, [(p["latency_ms"][pct] or 0) / 1000 for p in pts], style, color=color, label=f"{label} {pct}"
            )
        for p in pts:
            if not p["sustainable"]:
                ax.axvline(p["rate"], color=color, alpha=0.2, lw=6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input rate (events/s)")
    ax.set_ylabel("event-to-view latency (s, markers)")
    ax.set_title("Latency by rate (shaded: not sustained or inconclusive)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for key, _label, color in STACK_RUNS:
        for i, p in enumerate(doc[key]["sweep"]):
            s = p["latency_series"]
            ax.plot(
                [x[0] for x in s],
                [x[1] / 1000 for x in s],
                ".",
                ms=2,
                color=color,
                alpha=0.3 + 0.7 * (i + 1) / len(doc[key]["sweep"]),
                label=f"{key.replace('_', ' ')} {p['rate']:,.0f}/s",
            )
    ax.set_xlabel("marker created (s since the timed part started)")
    ax.set_ylabel("latency (s)")
    ax.set_title("Marker latency over each run (darker: higher rate)")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, out, "local_stack_latency.png")


def stack_plots(doc: dict, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    return [stack_latency(doc, out)]
