"""The package version, defined once: ``version`` in the repository's ``Cargo.toml``.

maturin copies it into the wheel's metadata (``dynamic = ["version"]`` in ``pyproject.toml``) and
Cargo into the native module (``pyproxy._native.__version__``). Python reads it back from where it
is: in a source tree (an editable install, or ``PYTHONPATH`` pointing at a checkout) from
``Cargo.toml`` itself, so that a version bump without a rebuild shows up as a stale native module;
in an installed wheel or sdist build, from the installed distribution's metadata.
"""

from __future__ import annotations

import os
import re

#: Cargo.toml beside the package: the source tree's, when this package is one.
_CARGO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Cargo.toml")
_PACKAGE = re.compile(r'^\[package\]\s*$(.*?)(?=^\[|\Z)', re.M | re.S)
_FIELD = re.compile(r'^(name|version)\s*=\s*"([^"]*)"\s*$', re.M)


def _from_cargo(path: str) -> "str | None":
    """The version of pyproxy's own Cargo package at ``path``; None for any other file or none."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    section = _PACKAGE.search(text)
    fields = dict(_FIELD.findall(section.group(1))) if section else {}
    return fields.get("version") if fields.get("name") == "pyproxy-native" else None


def _installed() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyproxy")
    except PackageNotFoundError:  # neither a source tree nor installed: say so rather than guess
        return "0+unknown"


_cargo_version = _from_cargo(_CARGO)
#: True when this package is a source tree's (its version came from the Cargo.toml beside it).
IN_SOURCE_TREE = _cargo_version is not None
__version__: str = _cargo_version if _cargo_version is not None else _installed()
del _cargo_version
