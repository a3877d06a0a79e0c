"""The shape of the imports: no cycle between modules, every third-party import declared, nothing
declared that nothing uses.

The layering itself is checked by the import contracts (pyproject ``[tool.importlinter]``, run by
``lint-imports``); these are the checks the contracts cannot express.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "core",
    "datastore",
    "sim",
    "analytics",
    "matching",
    "strategies",
    "reports",
    "webapp",
    "liftboard",
    "alerts",
)
APP = (*PACKAGES, "pages", "app.py")
"""What runs in production: the packages, the Streamlit pages and the app script."""
DEV = ("tests", "bench")
OURS = {*PACKAGES, "pages", "app", "tests", "bench", *(path.stem for path in (ROOT / "bench").glob("*.py"))}
"""Our own top-level names, the bench scripts included (a bench script imports its siblings by name)."""

USED_WITHOUT_IMPORT = {
    "pyarrow": "Polars' Arrow interchange with Streamlit and Parquet",
    "psycopg": "SQLAlchemy's driver for postgresql+psycopg:// URLs",
    "pytest-xdist": "make test runs pytest -n 2",
    "pytest-timeout": "make test runs pytest --timeout",
    "ruff": "make lint",
    "mypy": "make lint",
    "import-linter": "make lint (lint-imports)",
    "flask": "moto's ThreadedMotoServer, the S3 test server (tests/objectstore.py)",
    "flask-cors": "moto's ThreadedMotoServer, the S3 test server (tests/objectstore.py)",
}
"""Declared distributions that no module imports by name, and why they are declared."""


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, f"unreadable requirement {requirement!r} in pyproject.toml"
    return _normalized(match.group())


@cache
def _declared() -> tuple[frozenset[str], frozenset[str]]:
    """The distributions of ``[project] dependencies``, and those of every extra (dev, …)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = frozenset(_requirement_name(r) for r in project["dependencies"])
    groups = project.get("optional-dependencies", {}).values()
    extras = frozenset(_requirement_name(r) for group in groups for r in group)
    return runtime, extras


def _python_files(paths: Iterable[str]) -> Iterator[Path]:
    for name in paths:
        path = ROOT / name
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def _third_party_imports(paths: Iterable[str]) -> dict[str, set[str]]:
    """Top-level third-party module names imported anywhere in ``paths`` (functions included) → files."""
    found: dict[str, set[str]] = {}
    for path in _python_files(paths):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in OURS and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@cache
def _providers() -> Mapping[str, list[str]]:
    return packages_distributions()


def _distributions(module: str) -> set[str]:
    """The distributions that provide a top-level module (``sklearn`` → ``scikit-learn``), from the
    installed metadata; the module's own name when nothing installed provides it."""
    return {_normalized(name) for name in _providers().get(module, [])} or {_normalized(module)}


def _undeclared(imports: Mapping[str, set[str]], declared: frozenset[str]) -> list[str]:
    return [
        f"{module} (distribution {' or '.join(sorted(_distributions(module)))}) in {', '.join(sorted(files))}"
        for module, files in sorted(imports.items())
        if not _distributions(module) & declared
    ]


def test_the_app_imports_only_its_declared_dependencies() -> None:
    runtime, _ = _declared()
    undeclared = _undeclared(_third_party_imports(APP), runtime)
    assert not undeclared, "imported but not in [project] dependencies:\n" + "\n".join(undeclared)


def test_tests_and_benchmarks_import_only_declared_dependencies() -> None:
    runtime, extras = _declared()
    undeclared = _undeclared(_third_party_imports(DEV), runtime | extras)
    message = "imported but declared neither as a dependency nor in an extra:\n" + "\n".join(undeclared)
    assert not undeclared, message


def test_every_declared_dependency_is_used() -> None:
    runtime, extras = _declared()
    imported = {dist for module in _third_party_imports((*APP, *DEV)) for dist in _distributions(module)}
    unused = sorted((runtime | extras) - imported - set(USED_WITHOUT_IMPORT))
    assert not unused, f"declared in pyproject.toml but never imported: {unused}"


def _reachable(edges: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for child in edges.get(todo.pop(), set()) - seen:
            seen.add(child)
            todo.append(child)
    return seen


def _cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (the strongly
    connected components that hold a loop)."""
    reach = {module: _reachable(edges, module) for module in edges}
    groups = {
        frozenset(other for other in reach[module] if module in reach[other])
        for module in edges
        if module in reach[module]
    }
    return sorted(sorted(group) for group in groups)


def test_cycles_finds_every_loop() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"a"}, "g": {"g"}}
    assert _cycles(edges) == [["a", "b", "c"], ["d", "e"], ["g"]]


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, "pages", cache_dir=None)
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    cycles = _cycles(edges)
    described = [
        " ↔ ".join(cycle)
        + ": "
        + "; ".join(
            f"{a} → {b} (line {detail['line_number']})"
            for a in cycle
            for b in sorted(edges[a] & set(cycle))
            for detail in graph.get_import_details(importer=a, imported=b)[:1]
        )
        for cycle in cycles
    ]
    assert not cycles, "import cycles between modules:\n" + "\n".join(described)
