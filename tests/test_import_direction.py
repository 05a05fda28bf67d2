"""The packages import only downward (README "Code map").

Every ``import`` in ``src/scalinglab`` is read with ``ast`` -- function-local imports too,
since they are how a cycle hides -- and checked against the floors below: a package may
import its own floor only one way round and any floor beneath it, never one above. Two
modules that import each other (in any package) are a cycle and fail too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "scalinglab"

# floor per package (a top-level module is named by its file's stem)
FLOORS = {
    "errors": 0, "io": 0, "config": 0, "units": 0, "utils": 0,
    "laws": 1, "model": 1, "layout": 1, "tokenizer": 1, "data": 1,
    "train": 2,
    "parallel": 3,
    "eval": 4, "plan": 4, "scaling": 4, "testing": 4, "interop": 4, "adapt": 4,
    "report": 5,
    "pipeline": 6,
    "cli": 7, "__main__": 7, "__init__": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _imported(node: ast.AST, module: str, is_package: bool, modules) -> list[str]:
    """The scalinglab modules an import node loads, named relative to the package root:
    ``from scalinglab.x import y`` loads ``x.y`` when that is a module, else ``x``."""
    if isinstance(node, ast.Import):
        names = [a.name.removeprefix("scalinglab.") for a in node.names
                 if a.name.startswith("scalinglab.")]
        return [n for n in names if n in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    elif node.module and node.module.startswith("scalinglab."):
        source = node.module.removeprefix("scalinglab.")
    else:
        return []
    found = []
    for alias in node.names:
        child = f"{source}.{alias.name}"
        found.append(child if child in modules else source)
    return [n for n in found if n in modules]


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported(node, name, path.name == "__init__.py", modules):
                if target != name:
                    graph[name].add(target)
    return graph


def _package(module: str) -> str:
    return module.split(".")[0]


def test_every_package_has_a_floor():
    packages = {_package(_module_name(p)) for p in ROOT.rglob("*.py")}
    missing = sorted(packages - FLOORS.keys())
    assert not missing, f"add these packages to FLOORS (and to the README's Code map): {missing}"


def test_no_upward_import_and_no_two_way_packages():
    graph = _graph()
    pairs = defaultdict(set)
    upward = []
    for src, targets in graph.items():
        for dst in targets:
            a, b = _package(src), _package(dst)
            if a == b or a in ("__init__", "__main__"):
                continue
            if FLOORS.get(b, 99) > FLOORS.get(a, 99):
                upward.append(f"{src} -> {dst}")
            pairs[a, b].add(f"{src} -> {dst}")
    two_way = [f"{a} <-> {b}: {sorted(pairs[a, b])[0]}, {sorted(pairs[b, a])[0]}"
               for (a, b) in pairs if a < b and (b, a) in pairs]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))
    assert not two_way, "packages importing each other:\n" + "\n".join(sorted(two_way))


def test_no_two_modules_import_each_other():
    graph = _graph()
    cycles = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets
                    if a < b and a in graph.get(b, ()))
    # a package's __init__ importing its own submodules is how packages re-export; the
    # submodule importing the package back is the cycle, so keep the pair unless the
    # package name is a prefix of the module
    cycles = [c for c in cycles if not _is_reexport(c)]
    assert not cycles, "modules importing each other:\n" + "\n".join(cycles)


def _is_reexport(pair: str) -> bool:
    a, b = pair.split(" <-> ")
    return b.startswith(a + ".") or a.startswith(b + ".")
