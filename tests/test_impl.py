"""The seam: one place picks the kernels, versions agree, both twins export the same names."""

from __future__ import annotations

import json
import os
import re
import shutil
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


# --- one version, defined in Cargo.toml; a native module of another version is refused ---------------


def test_the_version_is_defined_once_in_cargo_toml() -> None:
    """pyproject takes it from Cargo (maturin's dynamic version), Python reads it back: no literal."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^dynamic = \[[^\]]*"version"', project, re.M)
    assert not re.search(r"^version\s*=", project, re.M)
    assert not re.search(r"\d+\.\d+\.\d+", (ROOT / "pyproxy" / "_version.py").read_text())


def test_version_names_the_native_build(native: object) -> None:
    target, profile, rustc = native.__build__  # type: ignore[attr-defined]
    assert re.fullmatch(r"[a-z0-9_]+-[a-z0-9_]+-[a-z0-9_]+(-[a-z0-9_.]+)?", target), target
    assert profile in ("release", "debug") and rustc.startswith("rustc ")
    env = {k: v for k, v in os.environ.items() if k != "PYPROXY_IMPL"}
    r = subprocess.run([sys.executable, "-m", "pyproxy", "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0
    assert r.stdout == f"pyproxy {__version__} [native kernels: {target}, {profile}, {rustc}]\n"


def _copy_package(dest: Path) -> None:
    """This pyproxy (a checkout's or an installed wheel's), native module included, into ``dest``."""
    shutil.copytree(Path(pyproxy.__file__).parent, dest / "pyproxy", ignore=shutil.ignore_patterns("__pycache__"))


def _pyproxy(where: Path, impl: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYPROXY_IMPL", "PYTHONPATH")}
    env.update(PYTHONPATH=str(where), PYPROXY_IMPL=impl, PYTHONNOUSERSITE="1")
    return subprocess.run([sys.executable, "-m", "pyproxy", *args], cwd=where, capture_output=True, text=True, env=env, timeout=60)


def test_a_checkout_bumped_without_a_rebuild_refuses_its_native_module(native: object, tmp_path: Path) -> None:
    """Cargo.toml says 9.9.9, the built module is older: auto serves on the pure twins and says how to
    rebuild; PYPROXY_IMPL=native is an error; ``run`` logs it as a warning."""
    _copy_package(tmp_path)
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "pyproxy-native"\nversion = "9.9.9"\n')
    stale = f"stale native module: pyproxy._native is {__version__}, pyproxy is 9.9.9 (rebuild it: pip install -e ."

    r = _pyproxy(tmp_path, "auto", "--version")
    assert r.returncode == 0 and r.stdout.startswith(f"pyproxy 9.9.9 [pure kernels (native module unavailable: {stale}")

    r = _pyproxy(tmp_path, "native", "--version")
    assert r.returncode != 0 and f"PYPROXY_IMPL=native but the native module cannot be used: {stale}" in r.stderr

    first = _first_log_record(tmp_path)
    assert first["level"] == "WARNING" and stale in first["msg"], first


def test_an_installed_package_with_a_foreign_native_module_says_reinstall(native: object, tmp_path: Path) -> None:
    """An installed pyproxy (its version from the distribution's metadata; a Cargo.toml of another crate
    beside it does not count) whose native module is of another version: pip reinstall is the cure."""
    _copy_package(tmp_path)
    (tmp_path / "Cargo.toml").write_text('[package]\nname = "other"\nversion = "1.2.3"\n')
    info = tmp_path / "pyproxy-9.9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pyproxy\nVersion: 9.9.9\n")

    r = _pyproxy(tmp_path, "auto", "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        f"pyproxy 9.9.9 [pure kernels (native module unavailable: stale native module: pyproxy._native is {__version__},"
        " pyproxy is 9.9.9 (reinstall pyproxy: pip install --force-reinstall pyproxy==9.9.9 (or the wheel file))"
    ), r.stdout
    r = _pyproxy(tmp_path, "native", "--version")
    assert r.returncode != 0 and "pip install --force-reinstall pyproxy==9.9.9" in r.stderr


def test_a_matching_copy_uses_its_native_module(native: object, tmp_path: Path) -> None:
    """The control for the two tests above: the same copy with the right version is served natively."""
    _copy_package(tmp_path)
    (tmp_path / "Cargo.toml").write_text(f'[package]\nname = "pyproxy-native"\nversion = "{__version__}"\n')
    r = _pyproxy(tmp_path, "auto", "--version")
    assert r.returncode == 0 and r.stdout.startswith(f"pyproxy {__version__} [native kernels: "), r.stdout


def _first_log_record(where: Path) -> dict:
    """The start-up record of ``pyproxy run`` (a config it refuses, so it exits 2 right after)."""
    config = where / "c.yaml"
    config.write_text("routers:\n- protocol: http\n  compressionLevel: 6\n  servers: [{port: 0}]\n")
    r = _pyproxy(where, "auto", "run", "--log-format", "json", str(config))
    assert r.returncode == 2, r.stderr
    return json.loads(next(line for line in r.stderr.splitlines() if line.startswith("{")))  # type: ignore[no-any-return]


def test_a_native_module_that_fails_to_load_is_refused_with_a_warning(native: object, tmp_path: Path) -> None:
    """A native module the loader rejects (here not an ELF file at all; on an old glibc, a missing
    symbol version) leaves the pure twins serving, with a warning, never a crash."""
    _copy_package(tmp_path)
    (tmp_path / "Cargo.toml").write_text(f'[package]\nname = "pyproxy-native"\nversion = "{__version__}"\n')
    for so in (tmp_path / "pyproxy").glob("_native*.so"):
        so.write_bytes(b"not a shared object\n")
    r = _pyproxy(tmp_path, "auto", "--version")
    assert r.returncode == 0 and r.stdout.startswith(f"pyproxy {__version__} [pure kernels (native module unavailable: "), r.stdout
    record = _first_log_record(tmp_path)
    assert record["level"] == "WARNING" and "pure kernels (native module unavailable" in record["msg"], record


def test_no_native_module_at_all_is_pure_without_a_warning(tmp_path: Path) -> None:
    """A checkout never built (or a pure install) is a supported way to run: pure twins, an INFO line."""
    shutil.copytree(Path(pyproxy.__file__).parent, tmp_path / "pyproxy", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (tmp_path / "Cargo.toml").write_text(f'[package]\nname = "pyproxy-native"\nversion = "{__version__}"\n')
    r = _pyproxy(tmp_path, "auto", "--version")
    assert r.stdout == f"pyproxy {__version__} [pure kernels (native module unavailable: this install has no pyproxy._native (never built))]\n", r.stdout
    record = _first_log_record(tmp_path)
    assert record["level"] == "INFO" and "pure kernels" in record["msg"], record
