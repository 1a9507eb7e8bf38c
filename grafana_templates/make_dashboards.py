"""Writes dashboards/lambda.json and dashboards/kappa.json (run: python grafana_templates/make_dashboards.py).

Every query is CQL on the tables of vendlab/store/schema.cql (tests/test_compose_grafana.py checks
tables and columns). The Cassandra plugin splits rows into one frame per value of the first
column; the table panels sum each frame's rows per product (groupBy, per frame), merge them, and compute
serving = batch + real-time and the difference against validation (must read 0).

Sums of two queries are "Add field from calculation" in mode reduceRow (sum over the named fields,
null as zero), never a binary "+": a binary operation needs both fields in the frame and gives no
field at all when one query returned no rows (no batch view yet; no speed rows after a hand-off),
so serving and the difference would go blank. reduceRow sums the fields that are there.
"""

import json
from pathlib import Path

DS = {"type": "hadesarchitect-cassandra-datasource", "uid": "vendlab-cassandra"}
HERE = Path(__file__).resolve().parent


def target(ref, cql, fmt="table"):
    return {
        "refId": ref,
        "datasource": DS,
        "queryType": "query",
        "rawQuery": True,
        "target": cql,
        "type": "timeserie" if fmt == "time" else "table",
    }


def view_sum(job, alias, view="items_by_product", extra=""):
    return (
        f"SELECT view_key, sum(value) AS {alias} FROM vendlab.view_rows WHERE job = '{job}' "
        f"AND view_name = '{view}'{extra} GROUP BY bucket, view_key"
    )


def row_sum(alias, fields):
    """alias = the sum of the named fields in each row; an absent field or a null counts as 0."""
    return {
        "id": "calculateField",
        "options": {
            "mode": "reduceRow",
            "alias": alias,
            "replaceFields": False,
            "reduce": {"include": list(fields), "reducer": "sum", "nullValueMode": "null as zero"},
        },
    }


def grouped(fields, calcs=(), keep=None):
    # groupBy first: it runs per frame (one frame per product and query, the plugin's split), so each query
    # gives one row per product; merge then joins one row per query. merge first joined a batch row into
    # *every* speed row of its product (one per bucket) and the sums counted it k times (docs/dashboard.md).
    tr = [
        {
            "id": "groupBy",
            "options": {
                "fields": {
                    "view_key": {"operation": "groupby", "aggregations": []},
                    **{f: {"operation": "aggregate", "aggregations": ["sum"]} for f in fields},
                }
            },
        },
        {"id": "merge", "options": {}},
    ]
    for alias, left, op, right in calcs:
        if op == "+":  # null-safe, and works when one side's query returned nothing (see the docstring)
            tr.append(row_sum(alias, [left, right]))
            continue
        tr.append(
            {
                "id": "calculateField",
                "options": {
                    "mode": "binary",
                    "alias": alias,
                    "replaceFields": False,
                    "binary": {"left": left, "operator": op, "right": right},
                },
            }
        )
    rename = {"view_key": "product", **{f"{f} (sum)": f for f in fields}}
    org = {"renameByName": rename}
    if keep is not None:
        org["excludeByName"] = {
            n: True for n in [f"{f} (sum)" for f in fields] + [c[0] for c in calcs] if n not in keep
        }
    tr.append({"id": "organize", "options": org})
    return tr


def panel(pid, title, kind, targets, x, y, w=12, h=9, transformations=(), desc="", unit=None):
    p = {
        "id": pid,
        "title": title,
        "type": kind,
        "datasource": DS,
        "targets": targets,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "transformations": list(transformations),
        "description": desc,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    return p


def time_series(pid, title, x, y, jobs, kind):
    if kind == "throughput":
        cql = (
            "SELECT job, row_count, applied_at FROM vendlab.applied WHERE job = '{job}' "
            "AND applied_at > $__timeFrom AND applied_at < $__timeTo ALLOW FILTERING"
        )
        desc = "Log records per applied micro-batch (store table applied), per job."
        unit = "short"
    else:
        cql = (
            "SELECT job, latency_ms, visible_at FROM vendlab.markers WHERE job = '{job}' "
            "AND visible_at > $__timeFrom AND visible_at < $__timeTo ALLOW FILTERING"
        )
        desc = (
            "Event-to-view latency of the marker events (store table markers): when a marker became "
            "visible in the view minus when the generator made it. A growing curve = a growing backlog (lag)."
        )
        unit = "ms"
    return panel(
        pid,
        title,
        "timeseries",
        [target(chr(65 + i), cql.format(job=j), "time") for i, j in enumerate(jobs)],
        x,
        y,
        transformations=(),
        desc=desc,
        unit=unit,
    )


# -- the owner's questions (views of vendlab/models/defs.py) -------------------------------------
# Keys are "machine|hour", "place|hour" ... (hour = UTC, simulated). Profit after rent and energy,
# stock, sell-out forecasts and breakdown risk are computed from these by the model step
# (`vendlab answer`, the embedded dashboard): see docs/questions.md.
OWNER = [
    # (view, value alias, key label, EUR?, title, kind, description)
    (
        "revenue_cents_by_machine_hour",
        "revenue",
        "machine | hour (UTC)",
        True,
        "Owner: revenue per machine and hour",
        "table",
        "Revenue in EUR per machine and simulated hour. Profit = revenue - cost of the goods - rent and energy "
        "(vendlab answer).",
    ),
    (
        "items_by_place_hour",
        "items",
        "place | hour (UTC)",
        False,
        "Owner: where people buy (items per place and hour)",
        "table",
        "Items sold per place and simulated hour.",
    ),
    (
        "items_by_category",
        "items",
        "category",
        False,
        "Owner: healthy vs unhealthy (items)",
        "barchart",
        "Items sold per category.",
    ),
    (
        "revenue_cents_by_category",
        "revenue",
        "category",
        True,
        "Owner: healthy vs unhealthy (revenue)",
        "barchart",
        "Revenue in EUR per category.",
    ),
    (
        "telemetry_by_machine_hour",
        "value",
        "machine | hour (UTC) | statistic",
        False,
        "Owner: breakdown precursors (faults and out-of-service readings per machine and hour)",
        "table",
        "Readings with a minor fault code and readings saying out of service, per machine and hour: the "
        "breakdown-risk model (vendlab answer) learns from these and from the temperatures.",
    ),
    (
        "items_by_machine_product_hour",
        "items",
        "machine | product | hour (UTC)",
        False,
        "Owner: items per machine, product and hour (the sell-out forecast's input)",
        "table",
        "Sales per machine, product and simulated hour; with restocks and reported stock they give the current stock "
        "and the sell-out forecast (vendlab answer).",
    ),
]
PRECURSORS = {
    "id": "filterByValue",
    "options": {
        "type": "include",
        "match": "any",
        "filters": [
            {"fieldName": "view_key", "config": {"id": "regex", "options": {"value": r".*\|(faults|out_of_service)$"}}}
        ],
    },
}


def owner_transform(parts, alias, key_label, eur, extra=()):
    """Merge the parts (one per target), sum them per key, optionally cents -> EUR, name the key."""
    tr = [
        {
            "id": "groupBy",
            "options": {
                "fields": {
                    "view_key": {"operation": "groupby", "aggregations": []},
                    **{p: {"operation": "aggregate", "aggregations": ["sum"]} for p in parts},
                }
            },
        },
        {"id": "merge", "options": {}},  # after groupBy: see grouped()
        *extra,
        row_sum(alias, [f"{p} (sum)" for p in parts]),
    ]
    if eur:
        tr.append(
            {
                "id": "calculateField",
                "options": {
                    "mode": "binary",
                    "alias": f"{alias} EUR",
                    "replaceFields": False,
                    "binary": {"left": alias, "operator": "/", "right": "100"},
                },
            }
        )
    hide = [f"{p} (sum)" for p in parts] + ([alias] if eur else [])
    tr.append(
        {
            "id": "organize",
            "options": {"renameByName": {"view_key": key_label}, "excludeByName": {n: True for n in hide}},
        }
    )
    return tr


def owner_panels(targets_for, pid, y):
    """The owner's panels; targets_for(view, alias) -> (targets, parts) whose rows sum to the view."""
    out = []
    for i, (view, alias, key_label, eur, title, kind, desc) in enumerate(OWNER):
        targets, parts = targets_for(view, alias)
        extra = (PRECURSORS,) if view == "telemetry_by_machine_hour" else ()
        out.append(
            panel(
                pid + i,
                title,
                kind,
                targets,
                12 * (i % 2),
                y + 9 * (i // 2),
                transformations=owner_transform(parts, alias, key_label, eur, extra),
                desc=desc,
                unit="currencyEUR" if eur else None,
            )
        )
    return out


def dashboard(uid, title, panels, variables=()):
    return {
        "uid": uid,
        "title": title,
        "tags": ["vendlab"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "templating": {"list": list(variables)},
        "panels": panels,
        "annotations": {"list": []},
    }


def variable(name, cql, label):
    """A query variable as the plugin stores it: its VariableQueryEditor saves ``{"query": CQL}`` and its
    datasource's metricFindQuery reads ``query.query``; a plain string there gives no values at all."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": cql},
        "definition": cql,
        "refresh": 2,
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "current": {},
        "options": [],
    }


def kappa():
    rt, val = view_sum("kappa", "realtime"), view_sum("validation", "validation")
    items = [target("A", rt), target("B", val)]
    calc = [("difference", "realtime (sum)", "-", "validation (sum)")]
    panels = [
        panel(
            1,
            "Items sold per product: real-time view vs validation",
            "table",
            items,
            0,
            0,
            transformations=grouped(["realtime", "validation"], calc),
            desc="Real-time view of the kappa job and the independent validation consumer, same events.",
        ),
        panel(
            2,
            "Difference real-time - validation (must read 0)",
            "barchart",
            items,
            12,
            0,
            transformations=grouped(["realtime", "validation"], calc, keep={"difference"}),
        ),
        time_series(3, "Throughput: records per micro-batch", 0, 9, ["kappa", "validation"], "throughput"),
        time_series(4, "Lag: event-to-view latency of markers", 12, 9, ["kappa", "validation"], "latency"),
        panel(
            5,
            "Dead letters per reason (kappa)",
            "table",
            [target("A", view_sum("kappa", "dead_letters", view="dead_letters"))],
            0,
            18,
            transformations=grouped(["dead_letters"]),
        ),
    ]
    panels += owner_panels(lambda view, alias: ([target("A", view_sum("kappa", alias, view=view))], [alias]), 6, 27)
    return dashboard("vendlab-kappa", "vendlab: kappa", panels)


NEWEST_RUN = "SELECT max({column}) AS {column} FROM vendlab.batch_runs WHERE lab = 'lambda'"


def lambda_():
    speed = view_sum("lambda_speed", "realtime", extra=" AND bucket >= ${cutoff}")
    # "batch" is a reserved word of CQL (BEGIN BATCH): Cassandra rejects it as an alias (found on a real
    # Cassandra 5.0.8 by tests/test_localstack_lambda.py), hence batch_view.
    batch = (
        "SELECT view_key, value AS batch_view FROM vendlab.batch_views WHERE version = ${version} "
        "AND view_name = 'items_by_product'"
    )
    val = view_sum("validation", "validation")
    items = [target("A", speed), target("B", batch), target("C", val)]
    calc = [("serving", "realtime (sum)", "+", "batch_view (sum)"), ("difference", "serving", "-", "validation (sum)")]
    # The newest published run's version and cutoff, as aggregates: Cassandra answers an aggregate without
    # GROUP BY with one row even when batch_runs has none (a fresh stack, before the first batch run), and
    # the plugin turns that row's null into 0 (gocql scans a null bigint as 0). So before the first run
    # version = 0 (versions start at 1: no batch view, the batch side adds nothing) and cutoff = 0 (every
    # speed bucket: none is retired before the first run): serving = the speed layer alone. A variable
    # whose query returns no row is empty in Grafana and every view query became invalid CQL
    # ("version =  AND", "bucket >= "). max(cutoff_bucket) is the newest run's cutoff because a run never
    # moves the cutoff back (vendlab/jobs/batch.py run_batch). docs/compose.md, "Before the first batch run".
    variables = [
        variable("version", NEWEST_RUN.format(column="version"), "batch view version (0: none yet)"),
        variable("cutoff", NEWEST_RUN.format(column="cutoff_bucket"), "batch cutoff bucket (0: none yet)"),
    ]
    runs = (
        "SELECT lab, events, published_at FROM vendlab.batch_runs WHERE lab = 'lambda' "
        "AND published_at > $__timeFrom AND published_at < $__timeTo ALLOW FILTERING"
    )
    run_s = (
        "SELECT lab, seconds, published_at FROM vendlab.batch_runs WHERE lab = 'lambda' "
        "AND published_at > $__timeFrom AND published_at < $__timeTo ALLOW FILTERING"
    )
    panels = [
        panel(
            1,
            "Items sold per product: batch + real-time = serving vs validation",
            "table",
            items,
            0,
            0,
            w=14,
            transformations=grouped(["realtime", "batch_view", "validation"], calc),
            desc="batch = current batch view (all buckets before its cutoff); realtime = speed view from the "
            "cutoff on; serving = batch + realtime; validation = independent consumer of the same topic.",
        ),
        panel(
            2,
            "Difference serving - validation (must read 0)",
            "barchart",
            items,
            14,
            0,
            w=10,
            transformations=grouped(["realtime", "batch_view", "validation"], calc, keep={"difference"}),
        ),
        time_series(3, "Throughput: records per micro-batch", 0, 9, ["lambda_speed", "validation"], "throughput"),
        time_series(
            4, "Lag: event-to-view latency of markers (speed layer)", 12, 9, ["lambda_speed", "validation"], "latency"
        ),
        panel(
            5,
            "Batch runs: master-dataset rows read per run",
            "timeseries",
            [target("A", runs, "time")],
            0,
            18,
            desc="One point per published batch view (table batch_runs).",
        ),
        panel(6, "Batch runs: seconds per run", "timeseries", [target("A", run_s, "time")], 12, 18, unit="s"),
    ]

    def serving(view, alias):  # lambda's serving view: speed rows from the cutoff on + the batch view
        speed = view_sum("lambda_speed", f"{alias}_speed", view=view, extra=" AND bucket >= ${cutoff}")
        batch = (
            f"SELECT view_key, value AS {alias}_batch FROM vendlab.batch_views WHERE version = ${{version}} "
            f"AND view_name = '{view}'"
        )
        return [target("A", speed), target("B", batch)], [f"{alias}_speed", f"{alias}_batch"]

    panels += owner_panels(serving, 7, 27)
    return dashboard("vendlab-lambda", "vendlab: lambda", panels, variables)


if __name__ == "__main__":
    for name, d in (("kappa", kappa()), ("lambda", lambda_())):
        (HERE / "dashboards" / f"{name}.json").write_text(json.dumps(d, indent=1) + "\n")
