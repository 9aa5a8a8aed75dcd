"""The import graph of the packages: no cycle anywhere, and every layer imports only downwards.

Data flows input -> ``index`` -> ``searchsvc`` <- ``feeds`` (README, "Layout"), and inside
``searchsvc`` the route modules sit side by side: what two of them share (the feed selection, the
engine calls, HTTP caching) lives in a module below both. The graph is read from the source with
``ast``, every ``import`` counted, including those inside functions (an import deferred to a
function still closes a cycle; it only moves the failure to the first call).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("index", "feeds", "searchsvc", "benchkit")

# importer (a module or a package prefix) -> what it must not import (module or package prefixes)
FORBIDDEN: list[tuple[str, tuple[str, ...], str]] = [
    ("index", ("feeds", "searchsvc", "benchkit"), "index knows nothing of feeds, HTTP or benchmarks"),
    ("feeds", ("searchsvc", "benchkit"), "feeds knows nothing of HTTP or benchmarks"),
    ("searchsvc", ("benchkit",), "the service does not depend on benchmark code"),
    ("searchsvc.http", ("searchsvc.routes", "searchsvc.app"), "the HTTP layer is below the routes"),
]
ROUTES = "searchsvc.routes"
FACTORY = "searchsvc.app"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def collect_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            modules[module_name(path)] = path
    return modules


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """Every internal module ``module`` imports, at any depth of its code.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else ``pkg``;
    importing ``a.b.c`` also runs ``a`` and ``a.b``, which count unless they are ``module``'s own
    packages (those are initialised before it anyway).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(module, path).split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                targets.add(candidate if candidate in known else source)
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known and prefix != module and not within(module, prefix):
                edges.add(prefix)
    return edges


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = collect_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_package_is_read(graph: dict[str, set[str]]) -> None:
    for package in PACKAGES:
        assert package in graph, f"{package}/ has no __init__.py or is missing"
    assert any(within(m, ROUTES) and m != ROUTES for m in graph), "no route modules found"
    assert graph[FACTORY], "the app factory imports nothing?"


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (each list imports itself round): " + "; ".join(map(str, cycles))


def test_finds_a_cycle_through_a_function_level_import() -> None:
    """The detector itself: a cycle closed by a deferred import is found."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_layers(graph: dict[str, set[str]]) -> None:
    wrong = []
    for module, targets in sorted(graph.items()):
        for importer, forbidden, why in FORBIDDEN:
            if within(module, importer):
                wrong += [f"{module} -> {t} ({why})" for t in sorted(targets) if any(within(t, f) for f in forbidden)]
        if within(module, ROUTES) and module != ROUTES:
            wrong += [f"{module} -> {t} (route modules are side by side: share code through a module below them)"
                      for t in sorted(targets) if within(t, ROUTES)]
        if module != "searchsvc.cli":
            wrong += [f"{module} -> {t} (the app factory is the top of the service)" for t in sorted(targets)
                      if t == FACTORY]
    assert not wrong, "\n".join(wrong)
