"""What a Grafana table panel of the dashboards shows, from the rows in Cassandra: a model in three steps.

1. **Cassandra** runs the panel's CQL (``cql_rows``): the dashboards' shapes only (``SELECT col | sum(col) AS
   alias | max(col) AS alias | col AS alias ... WHERE col = v AND col >= v GROUP BY cols``), rows in clustering
   order, one output row per group of consecutive rows, the first row's value for a plain column. The GROUP BY
   must follow Cassandra's rule (primary-key columns in primary-key order, a column restricted by ``=`` may be
   left out). An aggregate without GROUP BY gives one row even when no row matches (``max`` null, ``sum``
   0), as a real Cassandra 5.0 does (tests/test_grafana_cassandra.py).
2. **The Cassandra plugin** (HadesArchitect/GrafanaCassandraDatasource v3.3.0) shapes them into frames
   (``plugin_frames``): pkg/cassandra/session.go ``Select`` groups the rows by the string of their *first*
   column (a Go map, so the frames come in no fixed order); pkg/plugin/plugin.go ``makeDataFrames`` /
   ``makeDataFrameFromRows`` makes one frame per group, named by that string, with one field per selected
   column (the first column too), typed from the first row's value; a field gets a display name from the
   data source only when the query has an alias pattern (ours have none).
3. **Grafana 12.2.0** (@grafana/data 12.2.0, packages/grafana-data/src/transformations/transformers) applies
   the panel's transformations (``apply``), each ported from its source:
   - ``merge`` (merge.ts): key = the values of the fields that *every* frame has; a row is merged into every
     existing row of its key that is "mergeable" (no field of both with a different non-null value), else
     added. With k rows per key in one query, each row of another query is merged into all k.
   - ``groupBy`` (groupBy.ts): per frame (a frame without the group field is dropped), one row per group,
     aggregate fields named ``"<name> (<reducer>)"``, sum of the non-null values.
   - ``filterByValue`` (filterByValue.ts): include rows where any filter matches (regex ``test``), per frame.
   - ``calculateField`` (calculateField.ts): ``reduceRow`` sums the fields named in ``include`` (null as zero),
     ``binary`` finds both operands by name (a number not naming a field is a constant) and adds no field when
     one is missing; the new field is appended, its display name the alias.
   - ``organize`` (organize.ts): excludeByName, then renameByName, by display name.

A frame is ``{"name", "refId", "fields": [{"name", "type", "values", "config"}]}``.
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path

# -- 1. Cassandra -------------------------------------------------------------------------------------------
# primary keys of the tables the dashboards' view panels read (vendlab/store/schema.cql)
PRIMARY_KEYS = {
    "view_rows": (("job", "view_name"), ("bucket", "view_key", "batch_id")),
    "batch_views": (("version", "view_name"), ("view_key",)),
    "batch_runs": (("lab",), ("version",)),
}
DESC_CLUSTERING = {"batch_runs"}  # WITH CLUSTERING ORDER BY (version DESC)


def _value(text: str):
    text = text.strip()
    return text[1:-1] if text.startswith("'") else int(text)


def cql_rows(cql: str, tables: dict[str, list[dict]]) -> tuple[list[str], list[dict]]:
    """(column names, rows) that Cassandra returns for one of the dashboards' queries."""
    m = re.fullmatch(
        r"SELECT (.+?) FROM (?:vendlab\.)?(\w+) WHERE (.+?)(?: GROUP BY (.+?))?(?: LIMIT (\d+))?", cql.strip()
    )
    assert m, f"not a query shape this model knows: {cql}"
    select, table, where, group_by, limit = m.groups()
    part, clust = PRIMARY_KEYS[table]
    conds = []
    for c in where.split(" AND "):
        cm = re.fullmatch(r"(\w+) (=|>=|<|>|<=) (.+)", c.strip())
        assert cm, f"condition {c!r} of {cql}"
        conds.append((cm[1], cm[2], _value(cm[3])))
    ops = {"=": lambda a, b: a == b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    types = column_types().get(table, {})
    rows = [r for r in tables.get(table, []) if all(ops[op](r[col], v) for col, op, v in conds)]
    rows.sort(key=lambda r: tuple(r[c] for c in clust), reverse=table in DESC_CLUSTERING)
    selectors = []
    for s in select.split(","):
        sm = re.fullmatch(r"(?:(sum|max)\((\w+)\)|(\w+))(?: AS (\w+))?", s.strip())
        assert sm, f"selector {s!r} of {cql}"
        fn, arg, col, alias = sm.groups()
        assert (arg or col) in types, f"column {arg or col!r} is not in table {table}: {cql}"
        selectors.append((fn, arg or col, alias or (f"system.{fn}({arg})" if fn else col)))
    names = [alias for _, _, alias in selectors]
    aggregate = any(fn for fn, _, _ in selectors)
    if group_by:
        cols = [c.strip() for c in group_by.split(",")]
        eq = {c for c, op, _ in conds if op == "="}
        pk = [*part, *clust]
        pos = [pk.index(c) for c in cols]  # a column not of the primary key: Cassandra rejects it
        assert pos == sorted(pos), f"GROUP BY out of primary-key order: {cql}"
        assert all(pk[i] in eq for i in range(pos[-1] + 1) if pk[i] not in cols), (
            f"GROUP BY skips a primary-key column not restricted by '=': {cql}"
        )
        groups: list[list[dict]] = []
        for r in rows:
            key = tuple(r[c] for c in pk[: pos[-1] + 1])
            if groups and tuple(groups[-1][0][c] for c in pk[: pos[-1] + 1]) == key:
                groups[-1].append(r)
            else:
                groups.append([r])
    else:
        groups = [rows] if aggregate else [[r] for r in rows]
    out = []
    for g in groups:
        if not g and not (aggregate and not group_by):  # no GROUP BY: one row, even for no rows
            continue
        out.append({alias: _select(fn, [r[arg] for r in g]) for fn, arg, alias in selectors})
    if limit:
        out = out[: int(limit)]
    return names, out


def _select(fn: str | None, values: list):
    if fn == "sum":
        return sum(values)
    if fn == "max":
        return max(values) if values else None
    return values[0] if values else None


SCHEMA_CQL = Path(__file__).resolve().parents[1] / "vendlab" / "store" / "schema.cql"


@cache
def column_types() -> dict[str, dict[str, str]]:
    """table -> {column: CQL type} of vendlab/store/schema.cql."""
    body = "\n".join(ln.split("--", 1)[0] for ln in SCHEMA_CQL.read_text().splitlines())
    out = {}
    for m in re.finditer(r"CREATE TABLE IF NOT EXISTS\s+(?:\w+\.)?(\w+)\s*\((.*?)\)\s*(?:WITH[^;]*)?;", body, re.S):
        out[m[1]] = dict(re.findall(r"^\s*(\w+)\s+(\w+)\s*,", m[2], re.M))
    return out


# -- 2. the plugin --------------------------------------------------------------------------------------------
def _go_string(v) -> str:  # session.go toString
    return v if isinstance(v, str) else f"{v:d}" if isinstance(v, int) else str(v)


# What gocql (v1.7.0, the plugin's go.mod) gives for a null: MapScan (helpers.go) scans into a new value of the
# column's Go type (RowData: TypeInfo.NewWithError, *int64 for a bigint), and unmarshalBigInt(null) stores
# decBigInt(no bytes) = 0 (marshal.go); pkg/cassandra/row.go says "nulls are not supported yet". So a null
# reaches the plugin as its type's zero value: 0 for the integer types, "" for text.
GO_ZERO = {"bigint": 0, "int": 0, "smallint": 0, "tinyint": 0, "counter": 0, "double": 0, "float": 0, "text": ""}


def go_value(v, cql_type: str):
    return GO_ZERO[cql_type] if v is None else v


def plugin_frames(ref_id: str, columns: list[str], rows: list[dict], order=None) -> list[dict]:
    """The frames the plugin returns for one query; ``order(ids)`` = the order Go's map iteration gave."""
    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(_go_string(r[columns[0]]), []).append(r)
    ids = list(by_id)
    if order is not None:
        ids = order(ids)
    frames = []
    for i in ids:
        pts = by_id[i]
        fields = [
            {
                "name": c,
                "type": "number" if isinstance(pts[0][c], (int, float)) else "string",
                "values": [p[c] for p in pts],
                "config": {},
            }
            for c in columns
        ]
        frames.append({"name": i, "refId": ref_id, "fields": fields})
    return frames


# -- 3. Grafana's transformations -----------------------------------------------------------------------------
def length(frame: dict) -> int:
    return len(frame["fields"][0]["values"]) if frame["fields"] else 0


def display_name(field: dict, frame: dict | None = None, frames: list[dict] | None = None) -> str:
    """fieldState.ts calculateFieldDisplayName for fields without labels or displayNameFromDS."""
    if field["config"].get("displayName"):
        return field["config"]["displayName"]
    names = [f.get("name") for f in frames or []]
    if frame is not None and frame.get("name") and len(set(names)) > 1:
        return f"{frame['name']} {field['name']}"
    return field["name"]


def _by_name(names, field, frame, frames) -> bool:  # matchers/nameMatcher.ts, byNames / byName
    return field["name"] in names or display_name(field, frame, frames) in names


def merge(frames: list[dict]) -> list[dict]:
    if len(frames) <= 1:
        return frames
    data = [f for f in frames if f["fields"]]
    if not data:
        return [frames[0]]
    names: list[str] = []
    index_by_name: dict[str, dict[int, int]] = {}
    key_names: list[str] = []
    out_fields: list[dict] = []
    for fi, frame in enumerate(data):
        for xi, field in enumerate(frame["fields"]):
            if field["name"] not in names:
                out_fields.append({**field, "values": [], "config": dict(field["config"])})
                out_fields[-1]["config"].pop("displayName", None)
                names.append(field["name"])
            index_by_name.setdefault(field["name"], {})[fi] = xi
            if fi == len(data) - 1 and len(index_by_name[field["name"]]) == len(data):
                key_names.append(field["name"])
    if not key_names:
        return frames
    by_key: dict[str, list[dict]] = {}
    in_order: list[tuple[str, int]] = []
    for fi, frame in enumerate(data):
        for vi in range(length(frame)):
            key = "".join(_js_str(frame["fields"][index_by_name[n][fi]]["values"][vi]) for n in key_names)
            value = {n: frame["fields"][index_by_name[n][fi]]["values"][vi] for n in names if fi in index_by_name[n]}
            if key not in by_key:
                by_key[key] = [value]
                in_order.append((key, 0))
                continue
            merged = False
            new = []
            for existing in by_key[key]:
                if all(existing.get(p) is None or existing[p] == v for p, v in value.items()):
                    merged = True
                    new.append({**existing, **value})
                else:
                    new.append(existing)
            by_key[key] = new
            if not merged:
                by_key[key].append(value)
                in_order.append((key, len(by_key[key]) - 1))
    for key, i in in_order:
        row = by_key[key][i]
        for f in out_fields:
            f["values"].append(row.get(f["name"]))
    return [{"name": None, "refId": "merge-" + "-".join(f["refId"] for f in data), "fields": out_fields}]


def _js_str(v) -> str:
    return "undefined" if v is None else str(v)


def group_by(frames: list[dict], options: dict) -> list[dict]:
    spec = options["fields"]
    keys = [n for n, o in spec.items() if o["operation"] == "groupby"]
    if not keys:
        return frames
    out = []
    for frame in frames:
        gfields = [f for f in frame["fields"] if _by_name(keys, f, frame, frames)]
        if not gfields:
            continue
        groups: dict[str, int] = {}
        rows_of: list[list[int]] = []
        for i in range(length(frame)):
            k = ",".join(_js_str(f["values"][i]) for f in gfields)
            if k not in groups:
                groups[k] = len(rows_of)
                rows_of.append([])
            rows_of[groups[k]].append(i)
        fields = [
            {**f, "values": [f["values"][rows[0]] for rows in rows_of], "config": dict(f["config"])} for f in gfields
        ]
        for f in frame["fields"]:
            name = display_name(f)  # groupBy.ts calls getFieldDisplayName(field): no frame, no frames
            o = spec.get(name)
            if not o or o["operation"] != "aggregate" or not o.get("aggregations"):
                continue
            for agg in o["aggregations"]:
                assert agg == "sum", f"reducer {agg} is not modelled"
                vals = [sum(v for v in (f["values"][i] for i in rows) if v is not None) for rows in rows_of]
                fields.append({"name": f"{name} ({agg})", "type": "number", "values": vals, "config": {}})
        out.append({"name": None, "refId": frame.get("refId"), "fields": fields})
    return out


def filter_by_value(frames: list[dict], options: dict) -> list[dict]:
    assert options["type"] == "include" and options["match"] == "any"
    out = []
    for frame in frames:
        keep = []
        for i in range(length(frame)):
            hit = False
            for flt in options["filters"]:
                assert flt["config"]["id"] == "regex"
                rx = re.compile(flt["config"]["options"]["value"])
                for f in frame["fields"]:
                    if _by_name([flt["fieldName"]], f, frame, frames) and rx.search(_js_str(f["values"][i])):
                        hit = True
            if hit:
                keep.append(i)
        out.append({**frame, "fields": [{**f, "values": [f["values"][i] for i in keep]} for f in frame["fields"]]})
    return out


def _binary(op: str, a, b):
    if a is None or b is None:
        return math.nan  # JS: undefined - 1 = NaN
    return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else math.inf}[op]


def calculate_field(frames: list[dict], options: dict) -> list[dict]:
    assert not options.get("replaceFields")
    out = []
    names = [f["name"] for fr in frames for f in fr["fields"]]
    for frame in frames:
        n = length(frame)
        if options["mode"] == "reduceRow":
            red = options["reduce"]
            assert red["reducer"] == "sum" and red.get("nullValueMode") == "null as zero"
            cols = [f["values"] for f in frame["fields"] if _by_name(red["include"], f, frame, frames)]
            values = [sum((c[i] or 0) for c in cols) for i in range(n)]
        else:
            assert options["mode"] == "binary"
            b = options["binary"]

            def operand(v, frame=frame, n=n):
                if not re.fullmatch(r"-?\d+(\.\d+)?", v) or v in names:  # checkBinaryValueType
                    for f in frame["fields"]:
                        if display_name(f, frame, frames) == v:
                            return f["values"]
                    return None
                return [float(v)] * n

            left, right = operand(b["left"]), operand(b["right"])
            if left is None or right is None:
                out.append(frame)  # the creator gives nothing: the frame as it was
                continue
            values = [_binary(b["operator"], x, y) for x, y in zip(left, right)]
        field = {"name": options["alias"], "type": "number", "values": values, "config": {}}
        if options.get("alias"):
            field["config"]["displayName"] = options["alias"]
        out.append({**frame, "fields": [*frame["fields"], field]})
    return out


def organize(frames: list[dict], options: dict) -> list[dict]:
    out = []
    for frame in frames:
        ex = options.get("excludeByName", {})
        fields = [f for f in frame["fields"] if not ex.get(display_name(f, frame, frames))]
        ren = options.get("renameByName", {})
        fields = [
            {**f, "config": {**f["config"], "displayName": ren[display_name(f, frame)]}}
            if display_name(f, frame) in ren
            else f
            for f in fields
        ]
        out.append({**frame, "fields": fields})
    return out


TRANSFORMS = {
    "merge": lambda frames, _opt: merge(frames),
    "groupBy": group_by,
    "filterByValue": filter_by_value,
    "calculateField": calculate_field,
    "organize": organize,
}


def apply(transformations: list[dict], frames: list[dict]) -> list[dict]:
    for t in transformations:
        assert t["id"] in TRANSFORMS, f"transformation {t['id']} is not modelled"
        frames = TRANSFORMS[t["id"]](frames, t["options"])
    return frames


# -- the panel ------------------------------------------------------------------------------------------------
def fill_variables(dashboard: dict, tables: dict[str, list[dict]]) -> dict[str, str]:
    """Each query variable's value as a panel query sees it.

    The plugin (pkg/plugin/plugin.go GetVariables, makeVariableFromRow) makes one option per row, its value the
    first column formatted with Go's ``%v`` (a null arrives as its type's zero value: ``go_value``). Grafana
    12.2 (@grafana/scenes 6.28, MultiValueVariable.getStateUpdateGivenNewOptions) picks the first option for a
    single-value variable whose current value is not among the options, and with *no* option (no row) sets
    the value to '' (to ``$__all`` with includeAll, which then stays All when options come back); the
    interpolation (sceneInterpolator, formatters ``csv``, the plugin's default format) writes '' for it."""
    values = {}
    types = column_types()
    for v in dashboard.get("templating", {}).get("list", []):
        cql = v["query"]["query"]
        assert not v.get("includeAll") and not v.get("multi"), "an All/multi variable is not modelled"
        _, rows = cql_rows(cql, tables)
        if not rows:
            values[v["name"]] = ""
            continue
        table = re.search(r"FROM (?:vendlab\.)?(\w+)", cql)[1]
        column = re.match(r"SELECT (?:\w+\()?(\w+)", cql)[1]
        values[v["name"]] = _go_string(go_value(next(iter(rows[0].values())), types[table][column]))
    return values


def panel_frames(panel: dict, tables: dict[str, list[dict]], variables: dict[str, str], order=None) -> list[dict]:
    """The frames the panel's queries give, in target order; each query's frames in ``order``."""
    frames = []
    for t in panel["targets"]:
        cql = re.sub(r"\$\{(\w+)\}", lambda m: variables[m[1]], t["target"])
        cols, rows = cql_rows(cql, tables)
        frames += plugin_frames(t["refId"], cols, rows, order)
    return frames


def table(frames: list[dict]) -> dict[str, dict]:
    """The panel's one frame as {column: {row key: value}}; the key = the first string field."""
    (frame,) = frames
    key = next(f for f in frame["fields"] if f["type"] == "string")
    return {display_name(f, frame): dict(zip(key["values"], f["values"])) for f in frame["fields"] if f is not key}
