"""The packages form layers: no package imports, directly or round about, one that imports it.

A cycle between packages (``dispatch`` imports ``metrics`` which imports ``dispatch``) means
neither can be read, tested or replaced on its own, and import order starts to matter. Every
import counts, including those inside functions: a lazy import hides a cycle, it does not break it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("service", "worker")

Graph = dict[str, dict[str, list[str]]]
"""``{package: {imported package: ["module:line", ...]}}``."""


def _package_of(module: str) -> str | None:
    """The package (directory) holding a dotted module name, or None outside the project."""
    parts = module.split(".")
    if parts[0] not in TOP:
        return None
    for end in range(len(parts), 0, -1):
        path = ROOT.joinpath(*parts[:end])
        if path.is_dir():
            return ".".join(parts[:end])
        if path.with_suffix(".py").is_file():
            return ".".join(parts[: end - 1])
    return None


def _imported(path: Path, package: str) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from service.dispatch import keys`` imports the module service.dispatch.keys.
            yield from ((f"{module}.{alias.name}", node.lineno) for alias in node.names)


def package_graph() -> Graph:
    """Which package imports which, with the import sites, over every module of the project."""
    graph: Graph = {}
    for top in TOP:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            package = ".".join(rel.parent.parts)
            for module, line in _imported(path, package):
                target = _package_of(module)
                if target is not None and target != package:
                    sites = graph.setdefault(package, {}).setdefault(target, [])
                    if f"{rel}:{line}" not in sites:
                        sites.append(f"{rel}:{line}")
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle through each strongly connected group of packages (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def describe(graph: Graph, group: list[str]) -> str:
    members = set(group)
    return "; ".join(
        f"{a} -> {b} ({', '.join(graph[a][b])})"
        for a in group
        for b in sorted(graph.get(a, {}))
        if b in members
    )


def test_packages_import_each_other_in_one_direction_only() -> None:
    graph = package_graph()
    assert [describe(graph, group) for group in cycles(graph)] == []


def test_the_graph_sees_the_layers_it_checks() -> None:
    # Guards the check itself: a walker that found no edges would pass any tangle.
    graph = package_graph()
    assert "service.core" in graph["service.dispatch"]
    assert "service.dispatch" in graph["service.api"]
    assert "service.dispatch" in graph["worker"]


def test_a_cycle_between_two_packages_is_found() -> None:
    graph: Graph = {"a": {"b": ["a/x.py:1"]}, "b": {"c": ["b/y.py:2"]}, "c": {"a": ["c/z.py:3"]}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b": []}, "b": {}}) == []
