"""pyproject.toml declares the dependencies as ranges; requirements.txt is the lock that bootstrap installs.
Every declared dependency (runtime and the extras) must be in the lock at a version its range allows."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"requirements.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != "vendlab"]


def test_extras_for_tests_and_compose():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"test", "compose"} <= set(extras)


def test_every_declared_dependency_is_locked_at_an_allowed_version():
    pins = lock()
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.txt pins {req.name}=={pins[name]}, outside pyproject.toml's {req.specifier}"
        )


# modules whose distribution has another name, for a venv that lacks them (installed, the metadata says it)
NOT_INSTALLED = {"yaml": "PyYAML", "sklearn": "scikit-learn", "cassandra": "cassandra-driver"}


def imported_distributions() -> dict[str, set[str]]:
    """Each third-party distribution the package uses -> the modules of vendlab/ that use it: every absolute
    ``import``/``from`` (lazy ones inside functions included) and every ``importlib.util.find_spec("name")``
    (how the dashboard finds plotly's JavaScript), mapped to distributions by the installed metadata."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    used: dict[str, set[str]] = {}
    for path in sorted((ROOT / "vendlab").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "find_spec"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value.split(".")[0])
        for name in names - {"vendlab", "__future__"} - set(sys.stdlib_module_names):
            for dist in dists.get(name, [NOT_INSTALLED.get(name, name)]):
                used.setdefault(canonicalize_name(dist), set()).add(str(path.relative_to(ROOT)))
    return used


def test_every_library_the_package_uses_is_declared():
    """`pip install .` (with its extras) must bring every library vendlab/ imports: requirements.txt alone
    hides a missing declaration (plotly, whose JavaScript the dashboard serves, was only in the lock)."""
    names = {canonicalize_name(r.name) for r in declared()}
    missing = {dist: sorted(files)[:3] for dist, files in imported_distributions().items() if dist not in names}
    assert not missing, f"used by vendlab/ but not declared in pyproject.toml: {missing}"
