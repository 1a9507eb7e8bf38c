"""Readable summaries of runs (the table `vendlab run` and `vendlab demo` print)."""

from __future__ import annotations


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}"
    return f"{v:,}{unit}"


def format_comparison(result: dict) -> str:
    archs = list(result)
    rows = [("", *archs)]
    rows.append(("events generated", *[_fmt(result[a]["generated"]["events"]) for a in archs]))
    rows.append(
        (
            "  of which malformed / duplicates",
            *[f"{result[a]['generated']['malformed']:,} / {result[a]['generated']['duplicates']:,}" for a in archs],
        )
    )
    rows.append(("items sold (manifest)", *[_fmt(sum(result[a]["expected"].values())) for a in archs]))
    view_names = []
    for a in archs:
        for name in result[a]["views"]:
            if name not in view_names:
                view_names.append(name)
    for name in view_names:
        rows.append(
            (
                f"items in {name} view",
                *[_fmt(sum(result[a]["views"][name].values())) if name in result[a]["views"] else "" for a in archs],
            )
        )
    rows.append(("EXACT (view == validation == manifest)", *["yes" if result[a]["exact"] else "NO" for a in archs]))
    for p in ("p50", "p95", "p99"):
        rows.append((f"event-to-view latency {p}", *[_fmt(result[a]["latency_ms"][p], " ms") for a in archs]))
    rows.append(("throughput", *[_fmt(result[a]["throughput_eps"], " ev/s") for a in archs]))
    if any("handoffs" in result[a] for a in archs):
        rows.append(
            (
                "batch/speed hand-offs",
                *[_fmt(result[a].get("handoffs")) if "handoffs" in result[a] else "" for a in archs],
            )
        )
    rows.append(
        (
            "warm-up before the clock",
            *[_fmt(result[a].get("warmup_s"), " s") if result[a].get("warmup_s") else "none" for a in archs],
        )
    )
    rows.append(("dead letters (by the job)", *[_fmt(sum(result[a]["dead_letters"].values())) for a in archs]))
    w0 = max(len(r[0]) for r in rows)
    ws = [max(len(str(r[i + 1])) for r in rows) for i in range(len(archs))]
    lines = ["  ".join([r[0].ljust(w0)] + [str(c).rjust(w) for c, w in zip(r[1:], ws)]) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    warnings = list(dict.fromkeys(w for a in archs for w in result[a].get("warnings", [])))
    lines += [f"WARNING: {w}" for w in warnings]
    return "\n".join(lines)
