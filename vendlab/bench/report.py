"""report.md from results.json: the numbers, where they come from, and the plots."""

from __future__ import annotations

from pathlib import Path

from vendlab.bench import linecost, timeparts


def f(v, unit="", nd=0):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, (int, float)):
        return f"{v:,.{nd}f}{unit}"
    return str(v)


def _lat(lat: dict | None) -> str:
    lat = lat or {}
    return " / ".join(f(lat.get(p)) for p in ("p50", "p95", "p99"))


def write_report(doc: dict, path: Path) -> None:
    k, lam, m = doc["kappa"], doc["lambda"], doc["machine"]
    L = []
    L.append(f"# vendlab bench: lambda vs kappa ({doc['mode']} run, {doc['date']})\n")
    L.append(
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB; Spark {m['spark']}, "
        f"{m['java']}, Python {m['python']}. Run took {f(doc['duration_s'])} s.\n"
    )
    L.append(
        "Every number below was measured in this run; latencies come from marker events written into "
        "the log with their creation time and read back when their effect became visible in the view "
        "(not from the trigger interval).\n"
    )

    L.append("## Summary\n")
    L.append("| | kappa | lambda |")
    L.append("|---|---:|---:|")
    L.append(f"| sustainable throughput (events/s) | {f(k['sustainable_eps'])} | {f(lam['sustainable_eps'])} |")
    L.append(f"| latency at that rate p50 / p95 / p99 (ms) | {_lat(k['latency_ms'])} | {_lat(lam['latency_ms'])} |")
    L.append(f"| exact at that rate | {f(k.get('exact_at_sustainable'))} | {f(lam.get('exact_at_sustainable'))} |")
    L.append(f"| first stalled rate (events/s) | {f(k.get('stalled_at_eps'))} | {f(lam.get('stalled_at_eps'))} |")
    L.append(f"| kappa replay (events/s) | {f(k['replay_eps'])} | |")
    big = max(lam["batch_seconds_by_history"], key=int)
    L.append(f"| lambda batch run over {int(big):,} events (s) | | {f(lam['batch_seconds_by_history'][big], nd=1)} |")
    r = doc["ratios_to_duckdb"]
    L.append(
        f"| ratio to DuckDB ({f(doc['duckdb_eps'])} events/s) | live {f(r['kappa_sustainable'], nd=3)}, "
        f"replay {f(r['kappa_replay'], nd=3)} | live {f(r['lambda_sustainable'], nd=3)}, "
        f"batch {f(r['lambda_batch'], nd=3)} |"
    )
    if doc.get("ratios_to_spark_floor"):
        r = doc["ratios_to_spark_floor"]
        L.append(
            f"| ratio to Spark's floor ({f(doc['spark_floor_eps'])} events/s) | live "
            f"{f(r['kappa_sustainable'], nd=3)}, replay {f(r['kappa_replay'], nd=3)} | live "
            f"{f(r['lambda_sustainable'], nd=3)}, batch {f(r['lambda_batch'], nd=3)} |"
        )
    if doc.get("generator"):
        g = doc["generator"]
        L.append(
            f"| generator: a finished log of {f(g['events'])} events, as `vendlab generate` writes it "
            f"(events/s; CPU-s per million) | {f(g['generate_eps'])}; {f(g['cpu_s_per_million'], nd=2)} | |"
        )
    if doc.get("warmup"):
        L.append(f"| warm-up before timing (each worker, s) | {f(doc['warmup']['seconds'], nd=1)} | |")
    c = doc["complexity"]
    L.append(
        f"| services / jobs / lines of code | {c['kappa']['n_services']} / {c['kappa']['n_jobs']} / "
        f"{c['kappa']['loc']} | {c['lambda']['n_services']} / {c['lambda']['n_jobs']} / {c['lambda']['loc']} |"
    )
    L.append("")

    L.append("## Rate sweep\n")
    L.append(
        "Each architecture alone on the machine, fed by the same generator and seed (the same events), "
        "for the same time at each rate; the validation consumer is off here (it is a plain-Python oracle "
        "and would measure itself), so each run is checked against the generator's manifest. A rate is "
        "*sustainable* when over the second half of the run marker latency does not grow, the backlog "
        "(lines written - lines the query read) does not grow, the generator kept its schedule, and the "
        "run drained. Micro-batches take seconds, so both move in steps: a trend counts when it adds up "
        "to more than 2 s of latency, or of input, over the second half of the run.\n"
    )
    for arch in ("kappa", "lambda"):
        L.append(f"### {arch}\n")
        L += sweep_table(doc["sweep"][arch])
        L.append("")
        summ = k if arch == "kappa" else lam
        L.append(f"**Stall cause ({arch}):** {summ['stall_cause']}\n")
    L.extend(timeparts.report_section(doc["sweep"]))
    L.append("![latency by rate](sweep_latency.png)\n")
    L.append("![backlog](sweep_backlog.png)\n")
    L.append("![latency over time](latency_over_time.png)\n")

    ex = doc["exactness"]
    L.append("## Exactness over time\n")
    L.append(
        f"Both architectures side by side with the validation consumer, {f(ex['rate'])} events/s for "
        f"{f(ex['duration'])} s (1% duplicate deliveries, 0.1% malformed lines). Sampled every 0.5 s: "
        f"view - validation view, and view - generated so far (per product; > 0 would be an over-count).\n"
    )
    L.append("| | max (view - generated) | max (view - validation) | final (view - validation) | exact at the end |")
    L.append("|---|---:|---:|---:|---|")
    for arch in ("kappa", "lambda"):
        e = ex[arch]
        L.append(
            f"| {arch} | {f(e['max_overcount'])} | {f(e['max_minus_validation'])} | "
            f"{f(e['final_view_minus_validation'])} | {'yes' if e['exact'] else 'NO'} |"
        )
    if ex["lambda"].get("handoffs") is not None:
        L.append(f"\nLambda made {ex['lambda']['handoffs']} batch/speed hand-offs during this run.\n")
    L.append("![exactness](exactness.png)\n")

    L.append("## Lambda: batch cost as history grows\n")
    L.append("| events in the master dataset | batch run (s) | batch events/s | ingest events/s |")
    L.append("|---:|---:|---:|---:|")
    for size, s in lam["batch_seconds_by_history"].items():
        L.append(
            f"| {int(size):,} | {f(s, nd=1)} | {f(lam['batch_eps_by_history'].get(size))} | "
            f"{f(lam['ingest_eps_by_history'].get(size))} |"
        )
    L.append(
        "\nThe batch view is at best as fresh as the last batch run's start minus the lateness bound: "
        "every second a run takes is a second more that serving leans on the speed layer's buckets.\n"
    )
    L.append("![batch history](batch_history.png)\n")

    rp = k["replay"]
    L.append("## Kappa: reprocessing\n")
    L.append(
        f"The whole log ({f(rp['events'])} events) replayed into a new view version (job "
        f"`{rp['job']}`, its own checkpoint): {f(rp['seconds'], nd=1)} s, **{f(rp['replay_eps'])} events/s**, "
        f"{rp['batches']} micro-batches, exact = {rp['exact']}."
    )
    if k.get("catch_up_s_per_hour_of_history_at_sustainable"):
        L.append(
            f" A new version catches up with a live stream at the sustainable rate in "
            f"{f(k['catch_up_s_per_hour_of_history_at_sustainable'])} s per hour of history."
        )
    L.append("")

    L.append("## More RAM or more cores?\n")
    L.append("The same sweep with each Spark configuration in its own JVM (driver memory is the heap of local mode).\n")
    L.append(
        "| arch | master | driver memory | sustainable events/s | p50 / p95 / p99 ms | rates tried | JVM RSS max MB |"
    )
    L.append("|---|---|---|---:|---|---|---:|")
    for row in doc["ram_vs_cores"]:
        L.append(
            f"| {row['arch']} | {row['master']} | {row['driver_memory']} | {f(row['sustainable_eps'])} | "
            f"{_lat(row['latency_ms'])} | {', '.join(f(x) for x in row['rates_tried'])} | "
            f"{f(row.get('jvm_rss_mb_max'))} |"
        )
    L.append("\n![ram vs cores](ram_vs_cores.png)\n")

    d = doc["duckdb"]
    L.append("## Physical reference: DuckDB\n")
    L.append(
        f"DuckDB {d['duckdb_version']} ({d['threads']} threads) computes items per product over valid, unique "
        f"sales from the same JSON-lines files: {f(d['events'])} events in {d['seconds']} s = "
        f"**{f(d['duckdb_eps'])} events/s** (exact = {d['exact']}).\n"
    )
    if doc.get("spark_floor"):
        fl = doc["spark_floor"]
        L.append("## Spark's own floor\n")
        L.append(
            f"Plain Spark, no project code, in the main worker's JVM ({fl['plan']}, DuckDB's rules), over "
            f"the same log: {f(fl['events'])} events in {fl['seconds']} s = **{f(fl['spark_floor_eps'])} "
            f"events/s** ({f(fl.get('jvm_cpu_us_per_event'), nd=2)} us of JVM CPU per event; exact = "
            f"{fl['exact']}); {f(doc.get('spark_floor_to_duckdb'), nd=3)} of DuckDB. The kappa replay costs "
            f"{f(k['replay'].get('jvm_cpu_us_per_event'), nd=2)} us of JVM CPU per event; the gap is the "
            f"project's own work per line (the contract on every line, dead letters, deduplication state, "
            f"every view, the sink).\n"
        )
    L.append("![throughput vs duckdb](throughput_vs_duckdb.png)\n")
    if doc.get("line_cost"):
        L.extend(linecost.report_section(doc["line_cost"], doc.get("spark_floor")))

    L.append("## Complexity\n")
    L.append("| | services (compose) | jobs | lines of code | moving parts |")
    L.append("|---|---:|---|---:|---:|")
    for arch in ("kappa", "lambda"):
        cc = c[arch]
        L.append(
            f"| {arch} | {cc['n_services']} ({', '.join(cc['services'])}) | {'; '.join(cc['jobs'])} | "
            f"{cc['loc']} | {cc['moving_parts']} |"
        )
    L.append("")
    path.write_text("\n".join(L) + "\n")


def sweep_table(points: list[dict], jvm: str = "JVM") -> list[str]:
    """The rows of one architecture's rate sweep (``jvm``: what the JVM CPU column covers)."""
    L = [
        (
            "| rate | written | p50 / p95 / p99 ms | latency slope s/s | backlog end | batch s | rows/batch | "
            f"plan s / sink s | CPU machine / {jvm} / Python % | exact | verdict |"
        ),
        "|---:|---:|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for p in points:
        cpu = p["cpu_pct"]
        L.append(
            f"| {f(p['rate'])} | {f(p.get('timed_events', p['events']))} | {_lat(p['latency_ms'])} | "
            f"{p['latency_slope']} | {f(p['backlog_end'])} | {f(p['batch_s'], nd=2)} | {f(p['rows_per_batch'])} | "
            f"{f(p['sink_compute_s'], nd=2)} / {f(p['sink_write_s'], nd=3)} | "
            f"{f(cpu.get('cpu_machine'))} / {f(cpu.get('cpu_jvm'))} / {f(cpu.get('cpu_python'))} | "
            f"{'yes' if p['exact'] else 'NO'} | {_verdict(p)} |"
        )
    return L


def write_local_stack_report(doc: dict, path: Path) -> None:
    """report.md of ``vendlab bench --profile local-stack``."""
    e, s, m = doc["embedded"], doc["local_stack"], doc["machine"]
    plan = doc["plan"]
    L = [
        (
            f"# vendlab bench: kappa on a local stack (Kafka + Cassandra) next to embedded kappa "
            f"({doc['mode']} run, {doc['date']})\n"
        ),
        (
            f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB; Spark {m['spark']}, {m['java']}, "
            f"Python {m['python']}. Run took {f(doc['duration_s'])} s.\n"
        ),
    ]
    svc = ", ".join(f"{n} {v['version']}" for n, v in s["services"].items())
    L.append("## Kappa on Kafka + Cassandra vs embedded kappa\n")
    L.append(
        f"Both at the same rates ({', '.join(f(r) for r in plan['sweep']['rates'])} events/s, stopping after "
        f"the first rate not sustained), {f(plan['sweep']['duration'])} s each, same generator and seed "
        f"(1% duplicate deliveries, 0.1% malformed lines), judged by the same rules (vendlab.bench.measure). "
        f"Embedded: files + SQLite, Spark local[2] in one JVM, warmed up once. Local stack ({svc}): the "
        f"cluster-mode kappa job (spark-submit to the standalone master, 2 cores; Spark's Kafka source; "
        f"the Cassandra view store), a new topic, keyspace and job per rate, warmed up for "
        f"{f(plan['stack_warmup_s'])} s at that rate before the timed part; exact = the kappa views equal "
        f"the validation consumer's (run after the job, over the whole topic) and the generator's manifest.\n"
    )
    L.append("| | embedded kappa | kappa on Kafka + Cassandra |")
    L.append("|---|---:|---:|")
    L.append(f"| sustainable rate (events/s) | {f(e['sustainable_eps'])} | {f(s['sustainable_eps'])} |")
    L.append(f"| latency at that rate p50 / p95 / p99 (ms) | {_lat(e['latency_ms'])} | {_lat(s['latency_ms'])} |")
    L.append(f"| exact at that rate | {f(e.get('exact_at_sustainable'))} | {f(s.get('exact_at_sustainable'))} |")
    first = plan["sweep"]["rates"][0]
    e0, s0 = (next((p for p in x["sweep"] if p["rate"] == first), {}) for x in (e, s))
    L.append(
        f"| at the first rate, {f(first)} events/s: latency p50 / p95 / p99 (ms), exact, verdict | "
        f"{_lat(e0.get('latency_ms'))}, {f(e0.get('exact'))}, {_verdict(e0) if e0 else '-'} | "
        f"{_lat(s0.get('latency_ms'))}, {f(s0.get('exact'))}, {_verdict(s0) if s0 else '-'} |"
    )
    L.append(f"| first rate not sustained (events/s) | {f(e.get('stalled_at_eps'))} | {f(s.get('stalled_at_eps'))} |")
    L.append(
        f"| first rate inconclusive (machine busy, events/s) | {f(e.get('inconclusive_at_eps'))} | "
        f"{f(s.get('inconclusive_at_eps'))} |"
    )
    ld = doc["load1_during"]
    L.append(
        f"| machine load average (1 min) during the sweep: min / mean / max | "
        f"{f(ld['embedded']['min'], nd=1)} / {f(ld['embedded']['mean'], nd=1)} / {f(ld['embedded']['max'], nd=1)} | "
        f"{f(ld['local_stack']['min'], nd=1)} / {f(ld['local_stack']['mean'], nd=1)} / "
        f"{f(ld['local_stack']['max'], nd=1)} |"
    )
    L.append("")
    L.append(f"**Embedded, where it stops:** {e['stall_cause']}\n")
    L.append(f"**Local stack, where it stops:** {s['stall_cause']}\n")
    la = doc["load_average"]
    L.append(
        "Load average (1 / 5 / 15 min) at the start, after the embedded sweep and at the end: "
        + "; ".join(f"{v['at']} {v['load1']} / {v['load5']} / {v['load15']}" for v in la.values())
        + f" ({m['cores']} cores). A load above the core count means other programs competed for the CPU: the "
        f"*other* CPU column below is what they took during each run; a run that missed a criterion while "
        f"they took half a core or more is *inconclusive*, not a stall.\n"
    )
    L.append("### Embedded kappa\n")
    L += sweep_table(e["sweep"])
    L.append("")
    L.append("### Kappa on Kafka + Cassandra\n")
    L.append(
        "The job's driver is another process: its per-batch durations are not reachable from the bench, "
        "so batch s, plan s and sink s are not known here; rows/batch and the backlog come from the "
        "micro-batches the job applied to Cassandra (rows after deduplication; written = lines of the "
        "timed part). CPU *stack* = every process of the stack (Kafka, Cassandra, Spark master, workers, "
        "the job's driver, executors and Python workers); Python = the bench process (generator, sampler).\n"
    )
    L += sweep_table(s["sweep"], jvm="stack")
    L.append("")
    L.append(
        "| rate | timed lines | warm-up lines | exact vs manifest | exact vs validation | "
        "validation = manifest | drain s | throughput events/s |"
    )
    L.append("|---:|---:|---:|---|---|---|---:|---:|")
    for p in s["sweep"]:
        L.append(
            f"| {f(p['rate'])} | {f(p['timed_events'])} | {f(p['warmup_events'])} | {f(p['exact_manifest'])} | "
            f"{f(p['exact_validation'])} | {f(p['validation_equals_manifest'])} | {f(p['drain_s'], nd=1)} | "
            f"{f(p['throughput_eps'])} |"
        )
    L.append("")
    L.append("![latency: embedded vs local stack](local_stack_latency.png)\n")
    path.write_text("\n".join(L) + "\n")


def _verdict(p: dict) -> str:
    if p["sustainable"]:
        return "sustainable"
    if p["sustainable"] is None:
        return f"inconclusive (other programs took {p.get('cpu_other_pct', 0):.0f}% of a core): " + "; ".join(
            p["why_not"]
        )
    return "stalls: " + "; ".join(p["why_not"])
