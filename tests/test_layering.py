"""The import graph of dcmseal has no cycles, between modules or between top-level packages (issue 17 §4).

import-linter's layers contract forbids upward imports between the layers it names; these tests catch what
it does not: a cycle between two siblings (``a : b``), or through a top-level module such as ``errors``,
and a module outside every contract. The graph is grimp's, the one import-linter itself builds.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

import grimp
import pytest

_ROOT = "dcmseal"


@pytest.fixture(scope="module", params=[False, True], ids=["all-imports", "runtime-imports"])
def graph(request: pytest.FixtureRequest) -> grimp.ImportGraph:
    """With and without the imports made only under ``if TYPE_CHECKING:``: a cycle in either is one to fix."""
    return grimp.build_graph(_ROOT, cache_dir=None, exclude_type_checking_imports=request.param)


@pytest.fixture(scope="module")
def runtime_graph() -> grimp.ImportGraph:
    """The imports Python executes: those made only under ``if TYPE_CHECKING:`` left out."""
    return grimp.build_graph(_ROOT, cache_dir=None, exclude_type_checking_imports=True)


def _top(module: str) -> str:
    """``dcmseal.media.burn`` -> ``dcmseal.media``; the root package stays itself."""
    return ".".join(module.split(".")[:2])


def _cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted, smallest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(edges) + 100))
    try:
        for node in sorted(edges):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found, key=lambda c: (len(c), c))


def _module_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _package_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {_top(m): set() for m in graph.modules}
    for importer, imported in _module_edges(graph).items():
        edges[_top(importer)].update(_top(m) for m in imported if _top(m) != _top(importer))
    return edges


def _explain(graph: grimp.ImportGraph, cycle: list[str]) -> list[str]:
    """Each import between two packages of the cycle, with the first module import that makes it."""
    members = set(cycle)
    examples: dict[tuple[str, str], str] = {}
    for importer, imported in sorted(_module_edges(graph).items()):
        for target in sorted(imported):
            pair = (_top(importer), _top(target))
            if pair[0] != pair[1] and set(pair) <= members:
                examples.setdefault(pair, f"{importer} imports {target}")
    return [f"  {a} -> {b}: {example}" for (a, b), example in sorted(examples.items())]


def test_the_helper_finds_a_cycle() -> None:
    """The detector can fail: a planted three-package cycle and a self-contained pair are found."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert _cycles(edges) == [["d", "e"], ["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycle_between_top_level_packages_and_modules(graph: grimp.ImportGraph) -> None:
    cycles = _cycles(_package_edges(graph))
    explained = [f"{cycle}:\n" + "\n".join(_explain(graph, cycle)) for cycle in cycles]
    assert not cycles, "import cycles between dcmseal packages: " + "\n".join(explained)


def test_no_cycle_between_modules(runtime_graph: grimp.ImportGraph) -> None:
    """Between packages even an annotation's import counts (above); between the modules of one package, one
    that only names the other's class in a type hint (``if TYPE_CHECKING:``) is no cycle Python runs into."""
    cycles = _cycles(_module_edges(runtime_graph))
    assert not cycles, f"import cycles between dcmseal modules: {cycles}"


def test_events_import_only_the_standard_library(graph: grimp.ImportGraph) -> None:
    """Every layer imports :mod:`dcmseal.events`, so it may import nothing of dcmseal nor a third party.

    This also covers a top-level module added after the import-linter contract listing them was written.
    """
    imported = graph.find_modules_directly_imported_by(f"{_ROOT}.events")
    assert not {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
