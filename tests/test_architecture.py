"""The architecture of ``docs/architecture.md``, enforced: the layer table, no import cycle, one seam.

Every import of every module counts: at the top, inside functions, and under ``TYPE_CHECKING``
(a type-only import that goes the wrong way is still a knot a reader has to untie).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pyproxy"

#: unit -> the units it may import (a unit is a subpackage or a top-level module of ``pyproxy``).
#: The same table is in docs/architecture.md (a test below checks they agree).
LAYERS: Dict[str, Set[str]] = {
    "errors": set(),
    "_version": set(),
    "_pure": {"errors", "_version"},
    "_impl": {"errors", "_version", "_pure", "_native"},
    "naming": {"errors", "_impl"},
    "http": {"errors", "_impl", "naming"},
    "resilience": {"errors", "_impl"},
    "metrics": {"errors"},
    "listener": {"errors"},
    "config": {"errors", "naming"},
    "routing": {"errors", "_impl", "naming", "http", "resilience", "metrics"},
    "discovery": {"errors", "_impl", "naming"},
    "datapath": {"errors", "_impl", "naming", "http", "resilience", "metrics", "routing"},
    "namerd": {"errors", "naming", "discovery", "listener"},
    "view": {"errors", "_impl", "_version", "naming", "resilience", "metrics", "routing", "datapath", "discovery"},
    "telemetry": {"errors", "naming", "http", "metrics", "view"},
    "admin": {"errors", "_impl", "_version", "naming", "http", "metrics", "listener", "datapath", "telemetry", "view"},
    "runtime": {"errors", "_impl", "_version", "naming", "http", "resilience", "metrics", "listener", "config", "routing",
                "discovery", "datapath", "view", "telemetry", "admin", "namerd"},
    "__init__": {"_impl", "_version"},
    "__main__": {"runtime"},
}

#: Units that never import trio or the config (sans-IO: bytes and values in, values out).
SANS_IO = {"errors", "_version", "_pure", "_impl", "naming", "http", "resilience", "metrics"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for a in node.names:  # `from pkg import submodule`
                yield node.lineno, f"{mod}.{a.name}"


def _modules() -> Dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


MODULES = _modules()


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> Dict[str, Set[str]]:
    """module -> the pyproxy modules it imports (a name that is not a module resolves to its module).
    A module's own ancestor packages are left out: Python imports them before the module anyway."""
    out: Dict[str, Set[str]] = {}
    for name, path in MODULES.items():
        deps = set()
        for _, imp in _imports(path):
            if not imp.startswith("pyproxy"):
                continue
            while imp and imp not in MODULES:
                imp = imp.rpartition(".")[0]
            if imp and imp != name and not name.startswith(imp + "."):
                deps.add(imp)
        out[name] = deps
    return out


def test_every_module_is_in_a_unit_of_the_table() -> None:
    units = {_unit(m) for m in MODULES}
    assert units <= set(LAYERS), f"not in the layer table: {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_layer_table(module: str) -> None:
    unit = _unit(module)
    allowed = LAYERS[unit] | {unit}
    for line, imp in _imports(MODULES[module]):
        if not imp.startswith("pyproxy."):
            continue
        target = imp.split(".")[1]
        if target not in LAYERS and target != "_native":  # `from pyproxy import X` of a name
            continue
        assert target in allowed, f"{MODULES[module]}:{line} ({unit}) imports {imp}; {unit} may import {sorted(LAYERS[unit])}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _unit(m) in SANS_IO))
def test_sans_io_units_never_import_trio_or_the_config(module: str) -> None:
    for line, imp in _imports(MODULES[module]):
        bad = imp.split(".")[0] in ("trio", "socket", "select", "selectors", "asyncio")
        assert not bad, f"{MODULES[module]}:{line} (sans-IO) imports {imp}"


def test_only_the_seam_imports_the_kernels() -> None:
    for name, path in MODULES.items():
        if name == "pyproxy._impl" or name.startswith("pyproxy._pure"):
            continue
        for line, imp in _imports(path):
            assert not imp.startswith(("pyproxy._native", "pyproxy._pure")), f"{path}:{line} imports {imp}"


def test_no_import_cycle_among_modules() -> None:
    graph = _graph()
    # Tarjan's strongly connected components: a component of more than one module is a cycle.
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    cycles: List[List[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_nothing_imports_the_cli() -> None:
    for name, path in MODULES.items():
        if name in ("pyproxy.runtime.cli", "pyproxy.__main__"):
            continue
        for line, imp in _imports(path):
            assert imp != "pyproxy.runtime.cli", f"{path}:{line} imports the CLI"


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for init in sorted(PKG.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc) > 80, f"{init}: a package docstring says what the package owns"
        if init.parent.name not in ("_pure",):
            assert "import" in doc.lower(), f"{init}: the docstring says what the package may import"


def test_the_architecture_document_has_the_same_layer_table() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {}
    for m in re.finditer(r"^\| `([\w.]+)` \| [^|]*\| ([^|]*) \|$", doc, flags=re.M):
        unit, allowed = m.group(1), m.group(2)
        rows[unit] = {a.strip(" `") for a in allowed.split(",") if a.strip(" `-")}
    wanted = {u: v for u, v in LAYERS.items() if u not in ("__init__", "__main__")}
    assert rows == wanted, "docs/architecture.md's layer table differs from tests/test_architecture.py's"


def test_the_readme_layout_names_every_package() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for init in sorted(PKG.glob("*/__init__.py")):
        assert f"pyproxy/{init.parent.name}/" in readme, f"README's Layout does not name pyproxy/{init.parent.name}/"
