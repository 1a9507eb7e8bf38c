"""report.md from results.json: the numbers, where they come from, and the plots."""

from __future__ import annotations

from pathlib import Path

from vendlab.bench import timeparts


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
    L.append(f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB; Spark {m['spark']}, "
             f"{m['java']}, Python {m['python']}. Run took {f(doc['duration_s'])} s.\n")
    L.append("Every number below was measured in this run; latencies come from marker events written into "
             "the log with their creation time and read back when their effect became visible in the view "
             "(not from the trigger interval).\n")

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
    L.append(f"| ratio to DuckDB ({f(doc['duckdb_eps'])} events/s) | live {f(r['kappa_sustainable'], nd=3)}, "
             f"replay {f(r['kappa_replay'], nd=3)} | live {f(r['lambda_sustainable'], nd=3)}, "
             f"batch {f(r['lambda_batch'], nd=3)} |")
    if doc.get("ratios_to_spark_floor"):
        r = doc["ratios_to_spark_floor"]
        L.append(f"| ratio to Spark's floor ({f(doc['spark_floor_eps'])} events/s) | live "
                 f"{f(r['kappa_sustainable'], nd=3)}, replay {f(r['kappa_replay'], nd=3)} | live "
                 f"{f(r['lambda_sustainable'], nd=3)}, batch {f(r['lambda_batch'], nd=3)} |")
    if doc.get("generator"):
        g = doc["generator"]
        L.append(f"| generator: a finished log of {f(g['events'])} events, as `vendlab generate` writes it "
                 f"(events/s; CPU-s per million) | {f(g['generate_eps'])}; {f(g['cpu_s_per_million'], nd=2)} | |")
    if doc.get("warmup"):
        L.append(f"| warm-up before timing (each worker, s) | {f(doc['warmup']['seconds'], nd=1)} | |")
    c = doc["complexity"]
    L.append(f"| services / jobs / lines of code | {c['kappa']['n_services']} / {c['kappa']['n_jobs']} / "
             f"{c['kappa']['loc']} | {c['lambda']['n_services']} / {c['lambda']['n_jobs']} / {c['lambda']['loc']} |")
    L.append("")

    L.append("## Rate sweep\n")
    L.append("Each architecture alone on the machine, fed by the same generator and seed (the same events), "
             "for the same time at each rate; the validation consumer is off here (it is a plain-Python oracle "
             "and would measure itself), so each run is checked against the generator's manifest. A rate is "
             "*sustainable* when over the second half of the run marker latency does not grow, the backlog "
             "(lines written - lines the query read) does not grow, the generator kept its schedule, and the "
             "run drained. Micro-batches take seconds, so both move in steps: a trend counts when it adds up "
             "to more than 2 s of latency, or of input, over the second half of the run.\n")
    for arch in ("kappa", "lambda"):
        L.append(f"### {arch}\n")
        L.append("| rate | written | p50 / p95 / p99 ms | latency slope s/s | backlog end | batch s | rows/batch | "
                 "plan s / sink s | CPU machine / JVM / Python % | exact | verdict |")
        L.append("|---:|---:|---|---:|---:|---:|---:|---|---|---|---|")
        for p in doc["sweep"][arch]:
            cpu = p["cpu_pct"]
            L.append(f"| {f(p['rate'])} | {f(p['events'])} | {_lat(p['latency_ms'])} | {p['latency_slope']} | "
                     f"{f(p['backlog_end'])} | {f(p['batch_s'], nd=2)} | {f(p['rows_per_batch'])} | "
                     f"{f(p['sink_compute_s'], nd=2)} / {f(p['sink_write_s'], nd=3)} | "
                     f"{f(cpu.get('cpu_machine'))} / {f(cpu.get('cpu_jvm'))} / {f(cpu.get('cpu_python'))} | "
                     f"{'yes' if p['exact'] else 'NO'} | "
                     f"{_verdict(p)} |")
        L.append("")
        summ = k if arch == "kappa" else lam
        L.append(f"**Stall cause ({arch}):** {summ['stall_cause']}\n")
    L.extend(timeparts.report_section(doc["sweep"]))
    L.append("![latency by rate](sweep_latency.png)\n")
    L.append("![backlog](sweep_backlog.png)\n")
    L.append("![latency over time](latency_over_time.png)\n")

    ex = doc["exactness"]
    L.append("## Exactness over time\n")
    L.append(f"Both architectures side by side with the validation consumer, {f(ex['rate'])} events/s for "
             f"{f(ex['duration'])} s (1% duplicate deliveries, 0.1% malformed lines). Sampled every 0.5 s: "
             f"view - validation view, and view - generated so far (per product; > 0 would be an over-count).\n")
    L.append("| | max (view - generated) | max (view - validation) | final (view - validation) | exact at the end |")
    L.append("|---|---:|---:|---:|---|")
    for arch in ("kappa", "lambda"):
        e = ex[arch]
        L.append(f"| {arch} | {f(e['max_overcount'])} | {f(e['max_minus_validation'])} | "
                 f"{f(e['final_view_minus_validation'])} | {'yes' if e['exact'] else 'NO'} |")
    if ex["lambda"].get("handoffs") is not None:
        L.append(f"\nLambda made {ex['lambda']['handoffs']} batch/speed hand-offs during this run.\n")
    L.append("![exactness](exactness.png)\n")

    L.append("## Lambda: batch cost as history grows\n")
    L.append("| events in the master dataset | batch run (s) | batch events/s | ingest events/s |")
    L.append("|---:|---:|---:|---:|")
    for size, s in lam["batch_seconds_by_history"].items():
        L.append(f"| {int(size):,} | {f(s, nd=1)} | {f(lam['batch_eps_by_history'].get(size))} | "
                 f"{f(lam['ingest_eps_by_history'].get(size))} |")
    L.append("\nThe batch view is at best as fresh as the last batch run's start minus the lateness bound: "
             "every second a run takes is a second more that serving leans on the speed layer's buckets.\n")
    L.append("![batch history](batch_history.png)\n")

    rp = k["replay"]
    L.append("## Kappa: reprocessing\n")
    L.append(f"The whole log ({f(rp['events'])} events) replayed into a new view version (job "
             f"`{rp['job']}`, its own checkpoint): {f(rp['seconds'], nd=1)} s, **{f(rp['replay_eps'])} events/s**, "
             f"{rp['batches']} micro-batches, exact = {rp['exact']}.")
    if k.get("catch_up_s_per_hour_of_history_at_sustainable"):
        L.append(f" A new version catches up with a live stream at the sustainable rate in "
                 f"{f(k['catch_up_s_per_hour_of_history_at_sustainable'])} s per hour of history.")
    L.append("")

    L.append("## More RAM or more cores?\n")
    L.append("The same sweep with each Spark configuration in its own JVM (driver memory is the heap of "
             "local mode).\n")
    L.append("| arch | master | driver memory | sustainable events/s | p50 / p95 / p99 ms | rates tried | JVM RSS max MB |")
    L.append("|---|---|---|---:|---|---|---:|")
    for row in doc["ram_vs_cores"]:
        L.append(f"| {row['arch']} | {row['master']} | {row['driver_memory']} | {f(row['sustainable_eps'])} | "
                 f"{_lat(row['latency_ms'])} | {', '.join(f(x) for x in row['rates_tried'])} | "
                 f"{f(row.get('jvm_rss_mb_max'))} |")
    L.append("\n![ram vs cores](ram_vs_cores.png)\n")

    d = doc["duckdb"]
    L.append("## Physical reference: DuckDB\n")
    L.append(f"DuckDB {d['duckdb_version']} ({d['threads']} threads) computes items per product over valid, unique "
             f"sales from the same JSON-lines files: {f(d['events'])} events in {d['seconds']} s = "
             f"**{f(d['duckdb_eps'])} events/s** (exact = {d['exact']}).\n")
    if doc.get("spark_floor"):
        fl = doc["spark_floor"]
        L.append("## Spark's own floor\n")
        L.append(f"Plain Spark, no project code, in the main worker's JVM ({fl['plan']}, DuckDB's rules), over "
                 f"the same log: {f(fl['events'])} events in {fl['seconds']} s = **{f(fl['spark_floor_eps'])} "
                 f"events/s** ({f(fl.get('jvm_cpu_us_per_event'), nd=2)} us of JVM CPU per event; exact = "
                 f"{fl['exact']}); {f(doc.get('spark_floor_to_duckdb'), nd=3)} of DuckDB. The kappa replay costs "
                 f"{f(k['replay'].get('jvm_cpu_us_per_event'), nd=2)} us of JVM CPU per event; the gap is the "
                 f"project's own work per line (the contract on every line, dead letters, deduplication state, "
                 f"every view, the sink).\n")
    L.append("![throughput vs duckdb](throughput_vs_duckdb.png)\n")

    L.append("## Complexity\n")
    L.append("| | services (compose) | jobs | lines of code | moving parts |")
    L.append("|---|---:|---|---:|---:|")
    for arch in ("kappa", "lambda"):
        cc = c[arch]
        L.append(f"| {arch} | {cc['n_services']} ({', '.join(cc['services'])}) | {'; '.join(cc['jobs'])} | "
                 f"{cc['loc']} | {cc['moving_parts']} |")
    L.append("")
    path.write_text("\n".join(L) + "\n")


def _verdict(p: dict) -> str:
    if p["sustainable"]:
        return "sustainable"
    if p["sustainable"] is None:
        return f"inconclusive (other programs took {p.get('cpu_other_pct', 0):.0f}% of a core): " + "; ".join(p["why_not"])
    return "stalls: " + "; ".join(p["why_not"])
