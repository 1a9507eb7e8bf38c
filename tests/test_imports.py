"""The package's modules import on their own, and their top-level imports form no cycle.

A cycle between vendlab modules makes the import order matter (a name imported from a module that
is half initialised), so it is not allowed at module level; an import inside a function (done when
it runs, e.g. to load pyspark only for the commands that need it) is not part of the graph."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, vendlab_env

PACKAGE = ROOT / "vendlab"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _top_level_imports(tree: ast.Module):
    """Import statements run when the module is imported: module level, also inside if/try blocks,
    but not under ``if TYPE_CHECKING`` and not in functions or classes."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                stack += node.body + node.orelse
        elif isinstance(node, ast.Try):
            stack += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.With):
            stack += node.body


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}

    def add(src: str, target: str) -> None:
        # importing a.b.c runs a, a.b and a.b.c
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            t = ".".join(parts[:i])
            if t in mods and t != src and not src.startswith(t + "."):
                graph[src].add(t)

    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _top_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    add(name, a.name)
                continue
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for a in node.names:
                full = f"{base}.{a.name}"
                add(name, full if full in mods else base)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan), as a path a -> ... -> a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(_path(graph, set(group), v))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path(graph, group: set[str], start: str) -> list[str]:
    """A cycle from ``start`` back to it inside ``group`` (breadth first)."""
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & group):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, v, start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")


def test_the_graph_reads_the_imports_it_should():
    g = import_graph()
    assert "vendlab.cli_args" in g["vendlab.cluster"] and "vendlab.cluster" in g["vendlab.cli"]
    assert "vendlab.models.defs" in g["vendlab.oracle"]  # from vendlab.models import defs
    assert "vendlab.cli" not in g["vendlab.bench.worker"]  # imported in a function only
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_between_vendlab_modules():
    assert cycles(import_graph()) == [], (
        "top-level imports that form a cycle (move the shared part into its own module)"
    )


def test_no_module_is_loaded_by_name_inside_the_package():
    """Modules import each other by import statements (the graph above sees them), not through
    importlib.import_module or __import__."""
    found = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                f = ast.unparse(node.func)
                if f in ("__import__", "import_module") or f.endswith(".import_module"):
                    found.append(f"{name}:{node.lineno} {f}")
    assert found == []


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(modules())
    code = (
        "import importlib, sys\n"
        "bad = []\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=vendlab_env(), cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
