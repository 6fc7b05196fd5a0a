"""The layering of DESIGN.md, enforced: imports only go downward, one seam to the native code.

L0 errors/_version < L1 _impl/_pure/_native < L2 naming/identifiers (sans-IO: never trio, never
config) < L3 config < L4 I/O (namers, server, client, router, admin) < L5 cli/app/__main__.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

PKG = Path(__file__).resolve().parents[1] / "pyproxy"

SANS_IO = ("naming", "identifiers", "_pure", "errors", "_version", "_impl", "metrics", "headers", "http1", "context", "classify", "retry", "accrual", "balance", "forwarded")


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ((node.module,) if node.module else ()))
                if node.module is None:
                    for a in node.names:
                        yield node.lineno, f"{mod}.{a.name}"
                    continue
                yield node.lineno, mod
            else:
                yield node.lineno, node.module or ""


def _modules() -> Iterator[Tuple[str, Path]]:
    for p in sorted(PKG.rglob("*.py")):
        yield ".".join(p.relative_to(PKG.parent).with_suffix("").parts), p


def test_only_the_seam_imports_the_kernels() -> None:
    for name, path in _modules():
        if name in ("pyproxy._impl",) or name.startswith("pyproxy._pure"):
            continue
        for line, imp in _imports(path):
            assert not imp.startswith(("pyproxy._native", "pyproxy._pure")), f"{path}:{line} imports {imp}"


def test_sans_io_layers_never_import_trio_or_config() -> None:
    for name, path in _modules():
        if not name.startswith(tuple(f"pyproxy.{m}" for m in SANS_IO)):
            continue
        for line, imp in _imports(path):
            bad = imp.split(".")[0] == "trio" or imp.startswith(("pyproxy.config", "pyproxy.runtime.cli", "pyproxy.discovery.namers"))
            assert not bad, f"{path}:{line} (sans-IO layer) imports {imp}"


def test_nothing_imports_the_cli() -> None:
    for name, path in _modules():
        if name in ("pyproxy.runtime.cli", "pyproxy.__main__"):
            continue
        for line, imp in _imports(path):
            assert imp != "pyproxy.runtime.cli", f"{path}:{line} imports the CLI"
