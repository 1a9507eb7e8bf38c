"""Grafana provisioning: files parse, and every query names tables and columns of the CQL schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from test_cassandra_store import parse_schema

ROOT = Path(__file__).resolve().parents[1]
G = ROOT / "grafana_templates"
SCHEMA = parse_schema((ROOT / "vendlab" / "store" / "schema.cql").read_text())
CQL_WORDS = {"select", "from", "where", "and", "as", "group", "by", "limit", "allow", "filtering", "sum", "per",
             "partition", "order", "asc", "desc", "in", "count", "distinct"}


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((G / "dashboards").glob("*.json"))}


def queries(d: dict) -> list[str]:
    out = [t["target"] for p in d["panels"] for t in p["targets"]]
    out += [v["query"] for v in d.get("templating", {}).get("list", []) if v.get("type") == "query"]
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
    graf = yaml.safe_load((ROOT / stack / "docker-compose.yml").read_text())["services"]["grafana"]
    major = int(graf["image"].split(":")[1].split(".")[0])
    plugin = graf["environment"]["GF_PLUGINS_PREINSTALL"]
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
