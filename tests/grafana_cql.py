"""The Grafana dashboards' CQL as the Cassandra plugin (hadesarchitect-cassandra-datasource) sends it.

- ``$__timeFrom`` / ``$__timeTo``: the dashboard range in epoch milliseconds (src/datasource.ts puts
  ``options.range.from.valueOf()`` into scopedVars, Grafana's template service replaces them).
- dashboard variables: the plugin reads a variable's query as ``query.query`` (src/VariableQueryEditor.tsx
  edits a CassandraVariableQuery object); the backend (pkg/plugin/plugin.go, makeVariableFromRow) makes
  each row's first column the value, formatted with Go's ``%v`` (a bigint prints as its digits); a null
  arrives as its type's zero value (gocql v1.7.0 scans a null bigint as 0: tests/grafana_frames.py
  ``go_value``). A variable stored as a plain string, or whose query returns no row, has no value: Grafana
  12.2 makes ``${name}`` empty.
"""

from __future__ import annotations

import re

from grafana_frames import go_value


def targets(dashboard: dict):
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    for panel in walk(dashboard.get("panels", [])):
        for t in panel.get("targets", []):
            yield panel.get("title", ""), t


def variable_values(dashboard: dict, session) -> dict[str, str]:
    values = {}
    for var in (dashboard.get("templating") or {}).get("list", []):
        q = var.get("query")
        value = ""
        if isinstance(q, dict) and q.get("query"):
            result = session.execute(q["query"])
            rows = list(result)
            if rows:
                value = str(go_value(rows[0][0], result.column_types[0].typename))
        values[var["name"]] = value
    return values


def fill(cql: str, variables: dict[str, str], time_from_ms: int, time_to_ms: int) -> str:
    cql = cql.replace("$__timeFrom", str(time_from_ms)).replace("$__timeTo", str(time_to_ms))
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), cql)


def panel_sums(rows) -> dict[str, int]:
    """A view panel's rows (view_key, value) added up per key, zeros dropped (an empty cell)."""
    got: dict[str, int] = {}
    for r in rows:
        got[r[0]] = got.get(r[0], 0) + int(r[1])
    return {k: v for k, v in got.items() if v}
