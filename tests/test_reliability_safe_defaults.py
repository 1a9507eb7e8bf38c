"""Safe defaults: every port of the compose stacks and the dashboard listen on 127.0.0.1 only;
credentials are generated into a git-ignored .env, never defaults; nothing from an event is
ever evaluated or put into a query string (SQL and CQL take it as bound parameters, the
dashboard page sets it as text, Grafana's variables come from integers the batch layer writes)."""

from __future__ import annotations

import ast
import inspect
import json
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from vendlab.eventlog import SegmentWriter
from vendlab.oracle import Validator
from vendlab.store import base
from vendlab.store.cassandra import STATEMENTS
from vendlab.store.sqlite import SqliteStore
from vendlab.world import corpus
from vendlab.world.catalog import make_catalog

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("lambda", "kappa")


def compose(stack: str) -> dict:
    return yaml.safe_load((ROOT / stack / "docker-compose.yml").read_text())


@pytest.mark.parametrize("stack", STACKS)
def test_every_published_port_listens_on_localhost_only(stack):
    published = [(name, p) for name, svc in compose(stack)["services"].items() for p in svc.get("ports", [])]
    assert published
    for name, p in published:
        spec = p if isinstance(p, str) else f"{p.get('host_ip', '')}:{p.get('published')}:{p.get('target')}"
        assert spec.startswith("127.0.0.1:"), f"{stack}/{name} publishes {spec} on every interface"


SECRET = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|CREDENTIAL", re.I)


@pytest.mark.parametrize("stack", STACKS)
def test_no_credential_has_a_default_value(stack):
    """A secret comes from .env, required (${VAR:?...}): no literal, no ${VAR:-default}."""
    found = 0
    for name, svc in compose(stack)["services"].items():
        env = svc.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in items:
            if SECRET.search(key):
                found += 1
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{stack}/{name}: {key}={value!r}"
    assert found >= 1  # Grafana's admin password at least
    text = (ROOT / stack / "docker-compose.yml").read_text()
    assert "admin:admin" not in text and not re.search(r"PASSWORD\s*[:=]\s*['\"]?(admin|password|changeme)", text, re.I)


def test_grafana_allows_no_sign_up_and_no_anonymous_access():
    for stack in STACKS:
        env = compose(stack)["services"]["grafana"]["environment"]
        assert str(env.get("GF_USERS_ALLOW_SIGN_UP")).lower() == "false"
        assert str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() == "false"


def test_env_files_are_git_ignored_and_generated_random_and_private(tmp_path):
    from vendlab.orchestrate import PASSWORD_VAR, ensure_env_file

    r = subprocess.run(["git", "check-ignore", "lambda/.env", "kappa/.env"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["lambda/.env", "kappa/.env"]
    passwords = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        assert ensure_env_file(d)
        env = d / ".env"
        assert stat.S_IMODE(env.stat().st_mode) == 0o600
        (value,) = [ln.split("=", 1)[1] for ln in env.read_text().splitlines() if ln.startswith(PASSWORD_VAR + "=")]
        assert len(value) >= 20
        passwords.append(value)
        assert not ensure_env_file(d) and env.read_text().count(PASSWORD_VAR + "=") == 1  # kept on a re-run
    assert passwords[0] != passwords[1]


def test_the_dashboard_and_spark_ui_default_to_this_machine_only(spark):
    from vendlab.dashboard import start_dashboard_in_thread
    from vendlab.dashboard.cli import add_commands
    from vendlab.dashboard.server import DashboardServer

    for fn in (start_dashboard_in_thread, DashboardServer.__init__):
        assert inspect.signature(fn).parameters["host"].default == "127.0.0.1"
    import argparse

    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    add_commands(sub)
    assert sub.choices["dashboard"].parse_args(["--data-dir", "x"]).host == "127.0.0.1"
    assert spark.conf.get("spark.ui.enabled") == "false"  # no web UI port unless --ui


# -- nothing from an event is evaluated or spliced into a query --------------------------------

EVENT_PATHS = [
    "vendlab/store",
    "vendlab/dashboard",
    "vendlab/jobs",
    "vendlab/serving.py",
    "vendlab/oracle.py",
    "vendlab/contract.py",
    "vendlab/kafka_log.py",
    "vendlab/runner.py",
    "vendlab/architectures",
    "vendlab/world/corpus.py",
    "vendlab/eventlog.py",
]


def py_files(paths=("vendlab",)):
    for p in paths:
        p = ROOT / p
        yield from ([p] if p.is_file() else sorted(p.rglob("*.py")))


def test_no_eval_exec_or_unsafe_loading_anywhere():
    banned_names = {"eval", "exec", "compile", "__import__"}
    for f in py_files():
        tree = ast.parse(f.read_text(), str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                if isinstance(fn, ast.Name):
                    assert fn.id not in banned_names, f"{f}:{node.lineno} calls {fn.id}()"
                if isinstance(fn, ast.Attribute):
                    owner = fn.value.id if isinstance(fn.value, ast.Name) else ""
                    assert not (owner in ("pickle", "marshal", "shelve") and fn.attr.startswith("load")), (
                        f"{f}:{node.lineno}"
                    )
                    assert not (owner == "yaml" and fn.attr in ("load", "unsafe_load", "full_load")), (
                        f"{f}:{node.lineno}: use yaml.safe_load"
                    )
                    assert not (owner == "os" and fn.attr in ("system", "popen")), f"{f}:{node.lineno}"
                for kw in node.keywords:
                    assert not (kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value), (
                        f"{f}:{node.lineno}: shell=True"
                    )


def _constant_sql(node: ast.AST, assigned: dict[str, list[ast.AST]], depth: int = 0) -> bool:
    """The SQL text is built from constants only: literals, placeholders ('?' repeated len(x)
    times), and local names assigned such values. Nothing else may reach the query text."""
    if depth > 10:
        return False
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return all(isinstance(v, ast.Constant) or _placeholders(v.value) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constant_sql(node.left, assigned, depth + 1) and _constant_sql(node.right, assigned, depth + 1)
    if isinstance(node, ast.Name) and node.id in assigned:
        return all(_constant_sql(v, assigned, depth + 1) for v in assigned[node.id])
    return False


def _placeholders(node: ast.AST) -> bool:
    """','.join('?' * len(x)): only '?' and ',' constants, x only counted."""
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and n.value not in ("?", ",", ", "):
            return False
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "len":
            continue
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    lens = [
        n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "len"
    ]
    counted = {a.id for c in lens for a in c.args if isinstance(a, ast.Name)}
    return all(n == "len" or n in counted for n in names)


def test_sql_text_is_built_from_constants_only():
    checked = 0
    for f in py_files(EVENT_PATHS):
        if f.name == "cassandra.py":
            continue  # CQL: prepared statements, next test
        tree = ast.parse(f.read_text(), str(f))
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))]:
            assigned: dict[str, list] = {}
            for n in ast.walk(fn):
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            assigned.setdefault(t.id, []).append(n.value)
                if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
                    assigned.setdefault(n.target.id, []).append(n.value)
            for n in ast.walk(fn):
                if (
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and n.func.attr in ("execute", "executemany", "executescript")
                    and n.args
                ):
                    if isinstance(n.args[0], ast.Name) and n.args[0].id == "SCHEMA":
                        continue  # the module's constant schema
                    assert _constant_sql(n.args[0], assigned), f"{f}:{n.lineno}: query text not constant"
                    checked += 1
    assert checked >= 20


def test_cql_is_prepared_from_constant_statements_with_bound_values():
    for name, cql in STATEMENTS.items():
        assert "{" not in cql and "%" not in cql and "'" not in cql, name
    src = (ROOT / "vendlab/store/cassandra.py").read_text()
    tree = ast.parse(src)
    prepares = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "prepare"
    ]
    assert prepares and all(ast.unparse(p.args[0]) == "STATEMENTS[name]" for p in prepares)
    for n in ast.walk(tree):
        if (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in ("execute", "execute_async")
        ):
            assert ast.unparse(n.args[0]) in ("stmt",), ast.unparse(n)  # _execute/_write_many: prepared
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "_execute":
            arg = ast.unparse(n.args[0])
            # a batch (compaction's folds) holds prepared statements only: its adds are checked below
            assert arg in ("stmt", "batch") or arg.startswith("self._stmt("), arg
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "add":
            assert ast.unparse(n.args[0]).startswith("self._stmt("), ast.unparse(n)


def test_dashboard_page_inserts_text_never_markup():
    js = (ROOT / "vendlab/dashboard/static/dashboard.js").read_text()
    for bad in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setTimeout("',
        'setInterval("',
    ):
        assert bad not in js, bad
    assert "textContent" in js


def test_grafana_variables_come_from_integers_the_batch_layer_writes():
    cql = (ROOT / "vendlab/store/schema.cql").read_text()
    for f in (ROOT / "grafana_templates/dashboards").glob("*.json"):
        doc = json.loads(f.read_text())
        used = {
            v for v in re.findall(r"\$\{?(\w+)", json.dumps(doc.get("panels", []))) if not v.startswith("__")
        }  # Grafana's own: $__timeFrom, $__timeTo (the time picker)
        variables = {v["name"]: v for v in doc.get("templating", {}).get("list", [])}
        assert used <= set(variables), f"{f.name}: undefined variables {used - set(variables)}"
        for name, v in variables.items():
            q = v.get("query")  # the plugin reads {"query": CQL} (tests/test_compose_grafana.py)
            q = q.get("query") if isinstance(q, dict) else None
            m = re.match(r"SELECT max\((\w+)\) AS \w+ FROM vendlab\.batch_runs\b", q or "")
            assert m, f"{f.name}: variable {name} reads {q!r}"
            assert re.search(rf"\b{m.group(1)}\s+(int|bigint)\b", cql), f"{m.group(1)} is not an integer column"


def test_hostile_text_in_events_is_stored_as_data(tmp_path):
    """Quotes, SQL, markup and template syntax in event fields and in malformed lines go through
    the validation consumer into the store verbatim; the store's tables are intact."""
    catalog = make_catalog(5)
    hostile = [
        c
        for c in corpus.cases(catalog)
        if c.name in ("sql_and_html_in_text", "single_quotes", "unquoted_keys", "trailing_garbage")
    ]
    payload = [
        b"'); DROP TABLE agg; --",
        b'{"event_id":"x","type":"<img src=x onerror=alert(1)>"}',
        b"{{7*7}} ${7*7} %s %(x)s ?",
    ]
    w = SegmentWriter(tmp_path / "log")
    w.append(b"".join(c.make(1) + b"\n" for c in hostile) + b"\n".join(payload) + b"\n", len(hostile) + 3, 1)
    w.roll()
    store = SqliteStore(tmp_path / "views.sqlite")
    Validator(tmp_path / "log", catalog, store).poll()
    tables = {r[0] for r in store._con().execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"agg", "applied", "markers", "dead_letters", "batch_views", "batch_runs"} <= tables
    assert store.read_view(base.VALIDATION, base.ITEMS_BY_PRODUCT) == {catalog.products[0].product: 2}
    dead = store.read_view(base.VALIDATION, base.DEAD_LETTERS)
    assert dead == {"not_json_object": 5, "unknown_type": 1}
