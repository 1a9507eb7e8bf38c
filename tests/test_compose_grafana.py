"""Grafana provisioning: files parse, and every query names tables and columns of the CQL schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import compose_file
from test_cassandra_store import parse_schema

ROOT = Path(__file__).resolve().parents[1]
G = ROOT / "grafana_templates"
SCHEMA_TEXT = (ROOT / "vendlab" / "store" / "schema.cql").read_text()
SCHEMA = parse_schema(SCHEMA_TEXT)
CQL_WORDS = {
    "select",
    "from",
    "where",
    "and",
    "as",
    "group",
    "by",
    "limit",
    "allow",
    "filtering",
    "sum",
    "max",
    "per",
    "partition",
    "order",
    "asc",
    "desc",
    "in",
    "count",
    "distinct",
}


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((G / "dashboards").glob("*.json"))}


def plugin_variable_query(v: dict):
    """The CQL the Cassandra plugin (3.3.0) runs for a query variable: its datasource's metricFindQuery sends
    ``query.query`` (VariableQueryEditor saves {query: string}); on a plain string that is undefined."""
    q = v.get("query")
    return q.get("query") if isinstance(q, dict) else None


def queries(d: dict) -> list[str]:
    out = [t["target"] for p in d["panels"] for t in p["targets"]]
    out += [
        plugin_variable_query(v) or v["query"]
        for v in d.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    ]
    return out


def check_cql(cql: str) -> None:
    m = re.match(r"SELECT (.+?) FROM (?:(\w+)\.)?(\w+) WHERE (.+)$", cql, re.S)
    assert m, f"not a SELECT ... FROM ... WHERE: {cql}"
    select, keyspace, table, rest = m.groups()
    assert keyspace in (None, "vendlab"), cql
    assert table in SCHEMA, f"table {table!r} is not in schema.cql: {cql}"
    cols = set(SCHEMA[table]["columns"])
    aliases = set(re.findall(r"\bAS (\w+)", select))
    text = re.sub(r"'[^']*'", " ", select + " " + rest)  # string literals
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana macros and variables
    for ident in re.findall(r"\b[a-zA-Z_]\w*\b", text):
        if ident.lower() in CQL_WORDS or ident in aliases:
            continue
        assert ident in cols, f"column {ident!r} is not in table {table}: {cql}"
    # a WHERE must restrict the partition key (or the query scans the cluster)
    for pk in SCHEMA[table]["pk"]:
        assert re.search(rf"\b{pk} (=|IN)", rest), f"{cql} does not restrict partition key {pk}"


def test_dashboards_exist_and_parse():
    ds = dashboards()
    assert set(ds) == {"lambda", "kappa"}
    assert len({d["uid"] for d in ds.values()}) == 2
    for d in ds.values():
        assert d["panels"] and all(p["targets"] for p in d["panels"])


@pytest.mark.parametrize("name", ["lambda", "kappa"])
def test_every_query_names_schema_tables_and_columns(name):
    qs = queries(dashboards()[name])
    assert qs
    for q in qs:
        check_cql(q)


def test_checker_catches_a_wrong_column():
    with pytest.raises(AssertionError):
        check_cql("SELECT view_key, amount FROM vendlab.view_rows WHERE job = 'kappa' AND view_name = 'x'")
    with pytest.raises(AssertionError):
        check_cql("SELECT view_key FROM vendlab.nope WHERE job = 'kappa'")


def test_dashboards_show_the_required_views():
    ds = dashboards()
    lam = json.dumps(ds["lambda"])
    for job in ("lambda_speed", "validation"):
        assert f"job = '{job}'" in lam
    assert "batch_views" in lam and '"serving"' in lam and '"difference"' in lam
    kap = json.dumps(ds["kappa"])
    assert "job = 'kappa'" in kap and "job = 'validation'" in kap and '"difference"' in kap
    for d in ds.values():
        titles = " ".join(p["title"].lower() for p in d["panels"])
        assert "must read 0" in titles and "throughput" in titles and "lag" in titles
        for p in d["panels"]:
            assert p["datasource"]["uid"] == "vendlab-cassandra"


def test_datasource_provisioning():
    doc = yaml.safe_load((G / "provisioning" / "datasources" / "cassandra.yml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "hadesarchitect-cassandra-datasource"
    assert ds["url"] == "cassandra1:9042" and ds["jsonData"]["keyspace"] == "vendlab"
    assert ds["uid"] == "vendlab-cassandra"
    prov = yaml.safe_load((G / "provisioning" / "dashboards" / "vendlab.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


@pytest.mark.parametrize("stack", ["lambda", "kappa"])
def test_plugin_pinned_and_compatible_with_grafana(stack):
    graf = compose_file(stack)["services"]["grafana"]
    major = int(graf["image"].split(":")[1].split(".")[0])
    plugin = graf["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    pid, version = plugin.split("@")
    assert pid == "hadesarchitect-cassandra-datasource"
    # plugin 3.x supports Grafana 7.4 - 12.x
    assert version.startswith("3.") and 8 <= major <= 12
    assert "GF_INSTALL_PLUGINS" not in graf["environment"]  # deprecated
    mounts = " ".join(graf["volumes"])
    assert "../grafana_templates/provisioning:/etc/grafana/provisioning" in mounts
    assert f"dashboards/{stack}.json" in mounts


def test_dashboards_are_generated_from_the_script():
    import runpy

    mod = runpy.run_path(str(G / "make_dashboards.py"), run_name="not_main")
    assert json.loads(json.dumps(mod["kappa"]())) == dashboards()["kappa"]
    assert json.loads(json.dumps(mod["lambda_"]())) == dashboards()["lambda"]


# -- the panels' transformations, evaluated -------------------------------------------------------
# A small model of the Grafana transformations the dashboards use, following Grafana's own code
# (packages/grafana-data/src/transformations/transformers: merge, groupBy, calculateField, organize):
# a query with no rows gives no frame; merge leaves a field out of a row that lacks it (None);
# groupBy sums the non-null values of a field per group (0 for none); calculateField in binary mode
# looks both fields up by name and adds no field when either is absent; reduceRow sums the fields
# of its include list that are there. A frame is {field name: [values]}.


def _alias(cql: str) -> str:
    return re.findall(r"\bAS (\w+)", cql)[-1]


def _frame(rows: list[dict]) -> dict[str, list]:
    names = list(dict.fromkeys(n for r in rows for n in r))
    return {n: [r.get(n) for r in rows] for n in names}


def _n(frame: dict[str, list]) -> int:
    return len(next(iter(frame.values()))) if frame else 0


def apply_transformations(transformations: list[dict], frames: list[dict[str, list]]) -> dict[str, list]:
    for t in transformations:
        opt = t["options"]
        if t["id"] == "merge":
            rows = [{n: f[n][i] for n in f} for f in frames for i in range(_n(f))]
            merged: list[dict] = []
            for r in rows:  # one row per product: these frames share only view_key
                hit = next(
                    (
                        m
                        for m in merged
                        if m["view_key"] == r["view_key"] and all(m.get(k) is None or m[k] == v for k, v in r.items())
                    ),
                    None,
                )
                hit.update(r) if hit else merged.append(dict(r))
            frames = [_frame(merged)]
        elif t["id"] == "groupBy":
            (f,) = frames
            keys = [k for k, o in opt["fields"].items() if o["operation"] == "groupby"]
            assert keys == ["view_key"]
            groups = list(dict.fromkeys(f.get("view_key", [])))
            out = {"view_key": groups}
            for name, o in opt["fields"].items():
                if o["operation"] != "aggregate" or name not in f:
                    continue
                assert o["aggregations"] == ["sum"]
                out[f"{name} (sum)"] = [
                    sum(v for k, v in zip(f["view_key"], f[name]) if k == g and v is not None) for g in groups
                ]
            frames = [out]
        elif t["id"] == "calculateField":
            (f,) = frames
            if opt["mode"] == "reduceRow":
                red = opt["reduce"]
                assert red["reducer"] == "sum"
                cols = [f[n] for n in red["include"] if n in f]
                f[opt["alias"]] = [sum((c[i] or 0) for c in cols) for i in range(_n(f))]
            else:
                assert opt["mode"] == "binary"
                b = opt["binary"]

                def values(v, f=f):
                    if v in f:
                        return f[v]
                    try:
                        return [float(v)] * _n(f)
                    except ValueError:
                        return None

                left, right = values(b["left"]), values(b["right"])
                if left is None or right is None:
                    continue  # Grafana adds no field
                op = {"+": float.__add__, "-": float.__sub__, "*": float.__mul__, "/": float.__truediv__}[b["operator"]]
                f[opt["alias"]] = [
                    None if x is None or y is None else op(float(x), float(y)) for x, y in zip(left, right)
                ]
        elif t["id"] == "organize":
            (f,) = frames
            f = {n: v for n, v in f.items() if not opt.get("excludeByName", {}).get(n)}
            frames = [{opt.get("renameByName", {}).get(n, n): v for n, v in f.items()}]
        else:
            raise AssertionError(f"transformation {t['id']} is not modelled")
    (f,) = frames
    return f


def evaluate(panel: dict, rows_by_alias: dict[str, dict[str, int]]) -> dict[str, dict]:
    """The panel's table, {column: {product: value}}, for the given query results (alias -> {key: value})."""
    import grafana_frames as gf  # the plugin's frames and Grafana's transformations, from their sources

    frames = []
    for t in panel["targets"]:
        alias = _alias(t["target"])
        rows = [{"view_key": k, alias: v} for k, v in rows_by_alias.get(alias, {}).items()]
        frames += gf.plugin_frames(t["refId"], ["view_key", alias], rows)  # no rows: no frame
    return {
        k: {p: (int(x) if isinstance(x, float) and x == int(x) else x) for p, x in v.items()}
        for k, v in gf.table(gf.apply(panel["transformations"], frames)).items()
    }


LAMBDA_ITEMS_CASES = {
    # products with speed rows only, batch rows only and both
    "one-sided products": (
        {
            "realtime": {"water": 2, "chips": 5},
            "batch_view": {"chips": 10, "apple": 7},
            "validation": {"water": 2, "chips": 15, "apple": 7},
        },
        {"water": 2, "chips": 15, "apple": 7},
    ),
    # right after a hand-off: every speed row is below the new cutoff
    "no speed rows": (
        {"batch_view": {"chips": 10, "apple": 7}, "validation": {"chips": 10, "apple": 7}},
        {"chips": 10, "apple": 7},
    ),
    # before the first batch view
    "no batch view yet": (
        {"realtime": {"water": 2, "chips": 5}, "validation": {"water": 2, "chips": 5}},
        {"water": 2, "chips": 5},
    ),
}


@pytest.mark.parametrize("case", sorted(LAMBDA_ITEMS_CASES))
def test_lambda_items_panels_show_serving_for_one_sided_products(case):
    rows, serving = LAMBDA_ITEMS_CASES[case]
    panels = {p["id"]: p for p in dashboards()["lambda"]["panels"]}
    table = evaluate(panels[1], rows)
    assert "serving" in table and "difference" in table, f"the panel shows no serving/difference column: {table}"
    assert table["serving"] == serving
    assert table["difference"] == {p: 0 for p in serving}
    assert evaluate(panels[2], rows) == {"difference": {p: 0 for p in serving}}


def test_lambda_owner_panels_sum_speed_and_batch_when_one_side_is_empty():
    panels = {p["title"]: p for p in dashboards()["lambda"]["panels"]}
    p = panels["Owner: healthy vs unhealthy (items)"]
    assert evaluate(p, {"items_batch": {"healthy": 4, "unhealthy": 6}}) == {"items": {"healthy": 4, "unhealthy": 6}}
    assert evaluate(p, {"items_speed": {"healthy": 1}, "items_batch": {"unhealthy": 6}}) == {
        "items": {"healthy": 1, "unhealthy": 6}
    }


def test_no_dashboard_adds_two_series_with_a_binary_plus():
    """A binary "+" gives no value when one side is absent; sums are reduceRow with null as zero."""
    for name, d in dashboards().items():
        for p in d["panels"]:
            for t in p.get("transformations", []):
                if t["id"] != "calculateField":
                    continue
                o = t["options"]
                assert not (o["mode"] == "binary" and o["binary"]["operator"] == "+"), (name, p["title"])
                if o["mode"] == "reduceRow":
                    assert o["reduce"]["reducer"] == "sum", (name, p["title"])
                    assert o["reduce"].get("nullValueMode") == "null as zero", (name, p["title"])


# the column types the plugin's backend turns into a variable value (pkg/cassandra/session.go toString)
PLUGIN_VALUE_TYPES = {
    "text",
    "varchar",
    "ascii",
    "uuid",
    "timeuuid",
    "tinyint",
    "int",
    "bigint",
    "float",
    "double",
    "timestamp",
    "boolean",
}


@pytest.mark.parametrize("name", ["lambda", "kappa"])
def test_variables_resolve_as_the_plugin_reads_them(name):
    """Symptom 4: every ${var} of a panel is a query variable whose CQL the plugin actually finds (an object
    {query: CQL}), selecting one column of a type it can turn into a value; with today's plain strings the
    variables stay empty and the batch and speed queries are invalid CQL. Rendering needs a running Grafana."""
    d = dashboards()[name]
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    used = {m for p in d["panels"] for tg in p["targets"] for m in re.findall(r"\$\{(\w+)\}", tg["target"])}
    assert used <= set(variables), f"undefined variables: {used - set(variables)}"
    for v in variables.values():
        cql = plugin_variable_query(v)
        assert isinstance(cql, str) and cql.startswith("SELECT "), f"{name}: ${v['name']}: {v['query']!r}"
        assert v["definition"] == cql
        m = re.match(r"SELECT max\((\w+)\) AS \w+ FROM (?:vendlab\.)?(\w+) WHERE [^;]*$", cql)
        # an aggregate without GROUP BY: Cassandra gives one row even when the table has none (before the
        # first batch run), so the variable always has a value (tests/test_grafana_transforms.py, "before the first
        # batch run")
        assert m and " GROUP BY " not in cql and " LIMIT " not in cql, f"{name}: ${v['name']} is no aggregate: {cql}"
        column, table = m.groups()
        assert column in SCHEMA[table]["columns"], (column, table)
        create = re.search(rf"CREATE TABLE IF NOT EXISTS vendlab\.{table} \((.*?)\);", SCHEMA_TEXT, re.S).group(1)
        ctype = re.search(rf"^\s*{column}\s+(\w+)", create, re.M).group(1)
        assert ctype.lower() in PLUGIN_VALUE_TYPES, (column, table, ctype)
    for p in d["panels"]:  # with the values filled in, every query is CQL the checker accepts
        for tg in p["targets"]:
            check_cql(re.sub(r"\$\{\w+\}", "42", tg["target"]))


# Reserved words of CQL (Cassandra 5.0's "Appendix A: CQL Keywords", the reserved ones): a column alias that is
# one of them is a syntax error ("no viable alternative at input 'batch'"), found on a real Cassandra 5.0.8
# by tests/test_localstack_lambda.py.
CQL_RESERVED = {
    "add",
    "allow",
    "alter",
    "and",
    "apply",
    "asc",
    "authorize",
    "batch",
    "begin",
    "by",
    "columnfamily",
    "create",
    "default",
    "delete",
    "desc",
    "describe",
    "drop",
    "entries",
    "execute",
    "from",
    "full",
    "grant",
    "if",
    "in",
    "index",
    "infinity",
    "insert",
    "into",
    "is",
    "keyspace",
    "limit",
    "materialized",
    "mbean",
    "mbeans",
    "modify",
    "nan",
    "norecursive",
    "not",
    "null",
    "of",
    "on",
    "or",
    "order",
    "primary",
    "rename",
    "replace",
    "revoke",
    "schema",
    "select",
    "set",
    "table",
    "to",
    "token",
    "truncate",
    "unlogged",
    "unset",
    "update",
    "use",
    "using",
    "view",
    "where",
    "with",
}


@pytest.mark.parametrize("name", ["kappa", "lambda"])
def test_no_query_aliases_a_column_with_a_reserved_cql_word(name):
    dash = json.loads((G / "dashboards" / f"{name}.json").read_text())
    bad = [
        (p["title"], a)
        for p in dash["panels"]
        for t in p.get("targets", [])
        for a in re.findall(r"\bAS (\w+)", t.get("target", ""))
        if a.lower() in CQL_RESERVED
    ]
    assert not bad, f"aliases that Cassandra rejects as reserved words: {bad}"
