"""Layers point one way: the import graph between neurank's folders (and top-level modules) has no cycle, and the
lower layers (stores, mappings, models) never import the ones above them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import neurank

PACKAGE = Path(neurank.__file__).parent
LOWER = {"stores", "mappings", "dashboards", "onnx_models", "index_spec", "retrieval", "documents", "config",
         "errors"}
UPPER = {"query", "ingest", "eval", "train", "serve", "cli", "demo"}


def unit_of(module: str) -> str:
    """The folder (or top-level module) a dotted `neurank.…` module belongs to."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every `neurank.…` module `path` imports, at any depth (function bodies and TYPE_CHECKING blocks too)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("neurank."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                yield f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.startswith("neurank."):
                yield node.module


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        source = unit_of(module_name(path))
        if source == "neurank":
            continue
        for target in map(unit_of, imports(path)):
            if target not in (source, "neurank"):
                edges.setdefault(source, set()).add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
            component.append(node)
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_folders_import_each_other_without_a_cycle() -> None:
    assert cycles(graph()) == []


def test_lower_layers_never_import_upper_ones() -> None:
    edges = graph()
    upward = {(source, target) for source in LOWER for target in edges.get(source, ()) if target in UPPER}
    assert upward == set()


def test_the_walk_sees_real_edges() -> None:
    """The checks above mean something only if the graph holds the edges that are known to exist."""
    edges = graph()
    assert {"stores", "retrieval", "index_spec"} <= edges["query"]
    assert "mappings" in edges["stores"]


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
