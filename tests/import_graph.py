"""The import graph of lopt_core, read from the source (no module is imported): every `import` and `from ...
import` anywhere in a module, inside functions too, except under `if TYPE_CHECKING:` (never run).

Used by tests/test_imports.py, and runnable on its own to print the cycles and the package graph:
    python tests/import_graph.py
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "lopt_core"


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """{dotted module name: file} for every module of the package (a package is its __init__)."""
    out = {}
    for f in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node outside `if TYPE_CHECKING:` blocks, at any depth."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def edges(root: Path = ROOT) -> dict[str, set[str]]:
    """{module: the lopt_core modules it imports}."""
    mods = module_names(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, f in mods.items():
        is_pkg = f.name == "__init__.py"
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in _imports(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = here[: len(here) - node.level + 1] if node.level else []
                stem = ".".join(base + ([node.module] if node.module else []))
                # `from pkg import name`: name is a module of pkg, or a name defined in pkg
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem for a in node.names]
            for t in targets:
                while t and t not in mods:  # `import lopt_core.x.y` names x.y; a name inside a module
                    t = t.rpartition(".")[0]
                if t and t.startswith(PACKAGE) and t != name:
                    graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    """lopt_core.lm.engine -> lopt_core.lm; a top-level module is its own unit (lopt_core.config)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, targets in graph.items():
        p = package_of(m)
        out.setdefault(p, set())
        for t in targets:
            q = package_of(t)
            if q != p and q != PACKAGE:
                out[p].add(q)
    return out


def path_between(graph, a: str, b: str) -> list[str] | None:
    """One import chain from a to b (breadth-first), to show where a cycle runs."""
    prev, todo = {a: None}, [a]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph.get(v, ())):
            if w not in prev:
                prev[w] = v
                if w == b:
                    chain = [w]
                    while prev[chain[-1]] is not None:
                        chain.append(prev[chain[-1]])
                    return chain[::-1]
                todo.append(w)
    return None


if __name__ == "__main__":
    g = edges()
    for comp in cycles(g):
        print("module cycle:", " ".join(comp))
        print("   e.g.", " -> ".join(path_between(g, comp[0], comp[1]) + (path_between(g, comp[1], comp[0]) or [])[1:]))
    pg = package_graph(g)
    for comp in cycles(pg):
        print("package cycle:", " ".join(comp))
        for p in comp:
            for q in sorted(pg[p] & set(comp)):
                why = sorted(f"{m} -> {t}" for m, ts in g.items() if package_of(m) == p for t in ts if package_of(t) == q)
                print(f"   {p} -> {q}: {why[:6]}")
