"""The seam: one place picks the kernels, versions agree, both twins export the same names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyproxy
from pyproxy import _impl
from pyproxy import _pure
from pyproxy._version import __version__

ROOT = Path(__file__).resolve().parents[1]


def _impl_of(value: str) -> subprocess.CompletedProcess:
    code = "import pyproxy._impl as k; print(k.IMPL)"
    env = dict(os.environ, PYPROXY_IMPL=value)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_versions_agree_across_python_cargo_and_native(native: object) -> None:
    cargo = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    assert cargo and cargo.group(1) == __version__ == pyproxy.__version__
    assert native.__version__ == __version__  # type: ignore[attr-defined]


def test_twins_export_the_same_names(native: object) -> None:
    """Every kernel has a twin; the lane and its event classes alone are native-only (its twin is the trio data path)."""
    public = {n for n in dir(native) if not n.startswith("_")}
    assert public == set(_pure.__all__) | set(_impl.LANE)


def test_impl_env_selects_pure() -> None:
    r = _impl_of("pure")
    assert r.returncode == 0 and r.stdout.strip() == "pure"


def test_impl_env_native_is_native_or_fails_loudly(native: object) -> None:
    r = _impl_of("native")
    assert r.returncode == 0 and r.stdout.strip() == "native"


def test_impl_env_rejects_unknown_values() -> None:
    r = _impl_of("0")
    assert r.returncode != 0 and "expected 'auto', 'native' or 'pure'" in r.stderr


def test_impl_auto_prefers_native(native: object) -> None:
    r = _impl_of("auto")
    assert r.stdout.strip() == "native"


def test_impl_exports_the_kernel_names() -> None:
    for name in _pure.__all__:
        assert callable(getattr(_impl, name))
