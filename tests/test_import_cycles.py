"""No two modules of `models/` or `ckpp_tools/` import each other, directly or round a loop (guide rule).

Reads the sources with `ast` (nothing is imported) and counts every import in a file, including the ones
inside functions: a lazy import still ties the two modules together. `from pkg import name` counts as
importing the submodule pkg.name when that is a module, else the package. Run as a script to list cycles:

    python tests/test_import_cycles.py
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "ckpp_tools")


def modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = f
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its file."""
    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                r = resolve(t)
                if r and r != mod:
                    graph[mod].add(r)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles():
    graph = import_graph(modules())
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(
        " | ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c) for c in found)


def test_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "models"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")           # lazy import counts
    (pkg / "b.py").write_text("from models.sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\nfrom ..b import g\n")
    (pkg / "d.py").write_text("from . import a\n")                          # imports into the loop only
    graph = import_graph(modules(tmp_path, ("models",)))
    assert cycles(graph) == [["models.a", "models.b", "models.sub.c"]]


if __name__ == "__main__":
    graph = import_graph(modules())
    found = cycles(graph)
    for c in found:
        print("cycle:", ", ".join(f"{m} -> {sorted(graph[m] & set(c))}" for m in c))
    print(f"{len(graph)} modules, {len(found)} cycle(s)")
    sys.exit(1 if found else 0)
