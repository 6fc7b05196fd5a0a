"""``tools/check_dist.py``, the release artefacts' checker that .ci/wheel-smoke runs: it passes a
well-formed wheel and sdist and names each thing wrong with a bad one (wheels and sdists made here
from the checkout's files, with a placeholder native module: the checker reads names and metadata).
"""

from __future__ import annotations

import importlib.util
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_dist", ROOT / "tools" / "check_dist.py")
check_dist = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(check_dist)  # type: ignore[union-attr]

V = check_dist.version()
PLAT = "manylinux2014_x86_64.manylinux_2_17_x86_64"


def _wheel_members(version: str = V, tags: Iterable[str] = tuple(sorted(check_dist.TAGS))) -> Dict[str, bytes]:
    files = {name: (ROOT / name).read_bytes() for name in check_dist.package_files()}
    files[check_dist.NATIVE] = b"\x7fELF placeholder"
    info = f"pyproxy-{version}.dist-info"
    files[f"{info}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n" + "".join(f"Tag: {t}\n" for t in tags)).encode()
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.4\nName: pyproxy\nVersion: {version}\nRequires-Python: >=3.9\n".encode()
    files[f"{info}/entry_points.txt"] = b"[console_scripts]\npyproxy=pyproxy.runtime.cli:main\n"
    files[f"{info}/RECORD"] = b""
    return files


def _write_wheel(tmp: Path, files: Dict[str, bytes], name: str = f"pyproxy-{V}-cp39-abi3-{PLAT}.whl") -> Path:
    path = tmp / name
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)
    return path


def _write_sdist(tmp: Path, names: Iterable[str], version: str = V) -> Path:
    path = tmp / f"pyproxy-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for name in names:
            data = f"Metadata-Version: 2.4\nName: pyproxy\nVersion: {version}\n".encode() if name == "PKG-INFO" else b"x"
            info = tarfile.TarInfo(f"pyproxy-{version}/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def _sdist_names() -> List[str]:
    return sorted(set(check_dist.SDIST_NEEDS) | check_dist.package_files() | {"tests/test_proxy.py"})


def test_a_good_wheel_and_sdist_pass(tmp_path: Path) -> None:
    assert check_dist.check_wheel(_write_wheel(tmp_path, _wheel_members()), V) == []
    assert check_dist.check_sdist(_write_sdist(tmp_path, _sdist_names()), V) == []
    assert check_dist.main([str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda f: f.update({"tests/test_proxy.py": b""}), "tests/test_proxy.py is outside pyproxy/"),
        (lambda f: f.update({"pyproxy/conftest.py": b""}), "pyproxy/conftest.py should not be shipped"),
        (lambda f: f.update({"pyproxy/__pycache__/_impl.cpython-311.pyc": b""}), "_impl.cpython-311.pyc should not be shipped"),
        (lambda f: f.update({"pyproxy/_native.cpython-311-x86_64-linux-gnu.so": b""}), "not in the checkout's pyproxy/"),
        (lambda f: f.pop("pyproxy/py.typed"), "missing pyproxy/py.typed"),
        (lambda f: f.pop("pyproxy/_native.pyi"), "missing pyproxy/_native.pyi"),
        (lambda f: f.pop(check_dist.NATIVE), f"missing {check_dist.NATIVE}"),
        (lambda f: f.pop("pyproxy/admin/static/dashboard.js"), "missing pyproxy/admin/static/dashboard.js"),
        (lambda f: f.pop(f"pyproxy-{V}.dist-info/entry_points.txt"), "no `pyproxy` console script"),
    ],
)
def test_a_wheel_with_the_wrong_contents_is_refused(tmp_path: Path, change, problem: str) -> None:  # type: ignore[no-untyped-def]
    files = _wheel_members()
    change(files)
    problems = check_dist.check_wheel(_write_wheel(tmp_path, files), V)
    assert any(problem in p for p in problems), problems


def test_a_wheel_with_the_wrong_tags_or_version_is_refused(tmp_path: Path) -> None:
    newer = _write_wheel(tmp_path, _wheel_members(tags=["cp39-abi3-manylinux_2_34_x86_64"]), f"pyproxy-{V}-cp39-abi3-manylinux_2_34_x86_64.whl")
    problems = check_dist.check_wheel(newer, V)
    assert any("platforms manylinux_2_34_x86_64" in p for p in problems) and any("WHEEL tags" in p for p in problems), problems
    cp311 = _write_wheel(tmp_path, _wheel_members(), f"pyproxy-{V}-cp311-cp311-{PLAT}.whl")
    assert any("expected cp39-abi3" in p for p in check_dist.check_wheel(cp311, V))
    other = _write_wheel(tmp_path, _wheel_members(version="9.9.9"), f"pyproxy-9.9.9-cp39-abi3-{PLAT}.whl")
    assert any(f"version 9.9.9, the checkout is {V}" in p for p in check_dist.check_wheel(other, V))


@pytest.mark.parametrize(
    ("extra", "drop", "problem"),
    [
        ("target/release/lib_native.so", None, "target/release/lib_native.so is a build leftover"),
        ("pyproxy/_native.abi3.so", None, "pyproxy/_native.abi3.so is a build leftover"),
        (".venv/bin/python", None, ".venv/bin/python is a build leftover"),
        ("pyproxy.egg-info/PKG-INFO", None, "is a build leftover"),
        (None, "Cargo.lock", "missing Cargo.lock"),
        (None, "native/build.rs", "missing native/build.rs"),
    ],
)
def test_an_sdist_with_leftovers_or_gaps_is_refused(tmp_path: Path, extra, drop, problem: str) -> None:  # type: ignore[no-untyped-def]
    names = [n for n in _sdist_names() if n != drop] + ([extra] if extra else [])
    problems = check_dist.check_sdist(_write_sdist(tmp_path, names), V)
    assert any(problem in p for p in problems), problems
