"""Check the release artefacts that ``tools/build-wheel`` made: their tags, versions and contents.

    python tools/check_dist.py DIST_DIR

The wheel must be the manylinux2014 (glibc 2.17) x86_64 abi3 wheel of this checkout's version, hold
every module of ``pyproxy/`` with the native module, the admin pages, ``py.typed`` and the ``.pyi``
stub, and nothing else: no tests, no caches, no build leftovers. The sdist must hold what a source
build needs (Cargo and pyproject manifests, the lock file, the Rust and Python sources) and no build
leftovers. Prints one line per artefact, or every problem found and exits 1. Standard library only.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath
from typing import Iterable, List, Set

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64")
TAGS = {f"cp39-abi3-{p}" for p in PLATFORMS}
NATIVE = "pyproxy/_native.abi3.so"
# Never shipped in either artefact: caches, build outputs, virtualenvs, editor and patch debris.
LEFTOVER = re.compile(
    r"(^|/)(__pycache__|\.pytest_cache|\.hypothesis|\.benchmarks|\.venv|target|dist|[^/]*\.egg-info)(/|$)"
    r"|\.(pyc|pyo|orig|rej|swp)$|(^|/)\.DS_Store$"
)
# Never in the wheel: the test suite and what only the repository needs.
NOT_IN_WHEEL = re.compile(r"(^|/)(tests?|bench|docs|examples|deploy|loadgen|native|tools|\.ci)(/|$)|(^|/)(test_[^/]*|conftest)\.py$")


def version() -> str:
    """This checkout's version: Cargo.toml's, the one place it is defined."""
    import importlib.util

    # pyproxy/_version.py alone, by path: neither the package nor its native module is imported
    spec = importlib.util.spec_from_file_location("_pyproxy_version", ROOT / "pyproxy" / "_version.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.IN_SOURCE_TREE, f"{ROOT} is not a checkout"
    return module.__version__  # type: ignore[no-any-return]


def package_files() -> Set[str]:
    """What the wheel's ``pyproxy/`` must hold, from the checkout (modules, stub, marker, pages)."""
    out = set()
    for p in (ROOT / "pyproxy").rglob("*"):
        rel = p.relative_to(ROOT).as_posix()
        if p.is_file() and not LEFTOVER.search(rel) and not rel.endswith(".so"):
            out.add(rel)
    return out


def check_wheel(path: Path, v: str) -> List[str]:
    problems = []
    m = re.fullmatch(r"pyproxy-(?P<v>[^-]+)-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl", path.name)
    if not m:
        return [f"{path.name}: not a wheel file name"]
    if m["v"] != v:
        problems.append(f"{path.name}: version {m['v']}, the checkout is {v}")
    if (m["py"], m["abi"]) != ("cp39", "abi3"):
        problems.append(f"{path.name}: {m['py']}-{m['abi']}, expected cp39-abi3 (one wheel for CPython 3.9+)")
    if set(m["plat"].split(".")) != set(PLATFORMS):
        problems.append(f"{path.name}: platforms {m['plat']}, expected {'.'.join(PLATFORMS)}")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        info = f"pyproxy-{v}.dist-info"
        wheel = Parser().parsestr(z.read(f"{info}/WHEEL").decode()) if f"{info}/WHEEL" in names else None
        meta = Parser().parsestr(z.read(f"{info}/METADATA").decode()) if f"{info}/METADATA" in names else None
        entry = z.read(f"{info}/entry_points.txt").decode() if f"{info}/entry_points.txt" in names else ""
    if wheel is None or meta is None:
        return problems + [f"{path.name}: no {info}/WHEEL or METADATA"]
    if set(wheel.get_all("Tag") or ()) != TAGS:
        problems.append(f"{path.name}: WHEEL tags {wheel.get_all('Tag')}, expected {sorted(TAGS)}")
    if wheel.get("Root-Is-Purelib", "").strip().lower() != "false":
        problems.append(f"{path.name}: Root-Is-Purelib should be false (it carries a native module)")
    if meta.get("Version") != v or meta.get("Name") != "pyproxy":
        problems.append(f"{path.name}: METADATA says {meta.get('Name')} {meta.get('Version')}")
    if meta.get("Requires-Python", "").replace(" ", "") != ">=3.9":
        problems.append(f"{path.name}: Requires-Python {meta.get('Requires-Python')!r}, expected >=3.9")
    if not re.search(r"^pyproxy\s*=\s*pyproxy\.runtime\.cli:main\s*$", entry, re.M):
        problems.append(f"{path.name}: no `pyproxy` console script in entry_points.txt")
    wanted = package_files() | {NATIVE}
    for name in sorted(wanted - names):
        problems.append(f"{path.name}: missing {name}")
    for name in sorted(names):
        top = PurePosixPath(name).parts[0]
        if top not in ("pyproxy", info):
            problems.append(f"{path.name}: {name} is outside pyproxy/ and {info}/")
        elif top == "pyproxy" and name not in wanted:
            problems.append(f"{path.name}: {name} is not in the checkout's pyproxy/ (a leftover?)")
        if LEFTOVER.search(name) or NOT_IN_WHEEL.search(name):
            problems.append(f"{path.name}: {name} should not be shipped")
    return problems


SDIST_NEEDS = (
    "PKG-INFO", "pyproject.toml", "Cargo.toml", "Cargo.lock", "README.md", "native/build.rs",
    "native/src/lib.rs", "pyproxy/__init__.py", "pyproxy/_native.pyi", "pyproxy/py.typed",
)


def check_sdist(path: Path, v: str) -> List[str]:
    problems = []
    if path.name != f"pyproxy-{v}.tar.gz":
        problems.append(f"{path.name}: expected pyproxy-{v}.tar.gz")
    with tarfile.open(path) as t:
        members = t.getmembers()
        names = {m.name for m in members}
        prefix = f"pyproxy-{v}/"
        pkg = t.extractfile(prefix + "PKG-INFO") if prefix + "PKG-INFO" in names else None
        meta = Parser().parsestr(pkg.read().decode()) if pkg else None
    if meta is None or meta.get("Version") != v:
        problems.append(f"{path.name}: PKG-INFO version {meta.get('Version') if meta else None}, expected {v}")
    for need in SDIST_NEEDS + tuple(sorted(package_files())):
        if prefix + need not in names:
            problems.append(f"{path.name}: missing {need}")
    for m in members:
        if not m.name.startswith(prefix) and m.name != prefix.rstrip("/"):
            problems.append(f"{path.name}: {m.name} is outside {prefix}")
        rel = m.name[len(prefix):]
        if LEFTOVER.search(rel) or rel.endswith((".so", ".pyd", ".whl")):
            problems.append(f"{path.name}: {rel} is a build leftover")
        if m.issym() or m.islnk() or m.isdev():
            problems.append(f"{path.name}: {rel} is a link or device")
    return problems


def main(argv: Iterable[str]) -> int:
    args = list(argv)
    if len(args) != 1:
        print("usage: python tools/check_dist.py DIST_DIR", file=sys.stderr)
        return 2
    dist = Path(args[0])
    v = version()
    wheels, sdists = sorted(dist.glob("pyproxy-*.whl")), sorted(dist.glob("pyproxy-*.tar.gz"))
    problems = []
    if len(wheels) != 1 or len(sdists) != 1:
        problems.append(f"{dist}: expected one wheel and one sdist, found {[p.name for p in wheels + sdists]}")
    for w in wheels:
        problems += check_wheel(w, v)
    for s in sdists:
        problems += check_sdist(s, v)
    for p in problems:
        print(f"check_dist: {p}", file=sys.stderr)
    if problems:
        return 1
    for f in wheels + sdists:
        print(f"check_dist: ok {f.name} ({f.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
