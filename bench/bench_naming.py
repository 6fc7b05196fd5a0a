"""Naming kernels, native vs pure: dtab read, one lookup step (small dtab and 10 to 100,000 dentries), delegation.

Each benchmark sets ``benchmark.group`` to its operation (``bench/ratios.py`` pairs the twins by group)
and ``benchmark.extra_info["correct"]`` from a comparison with an answer computed independently: the
hand-written kernel tuples, :mod:`oracle` (a reverse linear scan), or the pure twin. Under the default
``--benchmark-disable`` each one runs once, as a smoke test.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any, Callable, Dict, Tuple

import pytest

import oracle
import strategies as S
from pyproxy import _impl
from pyproxy.naming import ConfiguredNamersInterpreter, Dtab, Path, delegate

LEAF, ALT, UNION, NEG = 0, 1, 2, 3

EXAMPLE_DTAB = "/srv=>/#/io.l5d.k8s/default/http;/host=>/srv;/svc=>/host;/host/world=>/srv/world-v1"
EXAMPLE_KERNEL = (
    ((b"srv",), (LEAF, (b"#", b"io.l5d.k8s", b"default", b"http"))),
    ((b"host",), (LEAF, (b"srv",))),
    ((b"svc",), (LEAF, (b"host",))),
    ((b"host", b"world"), (LEAF, (b"srv", b"world-v1"))),
)
EXAMPLE_PATH = (b"svc", b"world", b"x")


def mixed_dtab(n: int) -> Tuple[str, tuple]:
    """``n`` dentries of the shapes real dtabs have (leaves, weighted unions, fallbacks, wildcards, Neg)."""
    lines, kernel = ["/svc => /#/io.l5d.fs"], [((b"svc",), (LEAF, (b"#", b"io.l5d.fs")))]
    for i in range(n - 1):
        name = b"svc-%d" % i
        fs = (LEAF, (b"#", b"io.l5d.fs", name))
        s = name.decode()
        if i % 5 == 0:
            lines.append(f"/svc/{s} => 3 * /#/io.l5d.fs/{s} & /#/io.l5d.fs/{s}-canary")
            canary = (LEAF, (b"#", b"io.l5d.fs", name + b"-canary"))
            kernel.append(((b"svc", name), (UNION, ((3.0, fs), (1.0, canary)))))
        elif i % 5 == 1:
            lines.append(f"/svc/*/{s} => /#/io.l5d.fs/{s} | /$/fail")
            kernel.append(((b"svc", None, name), (ALT, (fs, (LEAF, (b"$", b"fail"))))))
        elif i % 5 == 2:
            lines.append(f"/svc/{s} => ~")
            kernel.append(((b"svc", name), (NEG,)))
        else:
            lines.append(f"/svc/{s}=>/#/io.l5d.fs/{s}")
            kernel.append(((b"svc", name), fs))
    return "# generated\n" + ";\n".join(lines) + ";\n", tuple(kernel)


READ_CASES: Dict[str, Tuple[str, tuple]] = {
    "example": (EXAMPLE_DTAB, EXAMPLE_KERNEL),
    "50": mixed_dtab(50),
}


@pytest.mark.parametrize("case", list(READ_CASES))
def bench_read_dtab(benchmark: Any, twin: ModuleType, case: str) -> None:
    text, expected = READ_CASES[case]
    benchmark.group = f"read_dtab {case}"
    result = benchmark(twin.read_dtab, text)
    benchmark.extra_info["correct"] = result == expected
    assert result == expected


def bench_lookup_example(benchmark: Any, twin: ModuleType) -> None:
    idx = twin.DtabIndex(EXAMPLE_KERNEL)
    benchmark.group = "lookup example"
    result = benchmark(idx.lookup, EXAMPLE_PATH)
    expected = oracle.lookup(EXAMPLE_KERNEL, EXAMPLE_PATH)
    benchmark.extra_info["correct"] = result == expected
    assert result == expected


@functools.lru_cache(maxsize=None)
def _scaled(n: int) -> Tuple[tuple, Tuple[bytes, ...], tuple]:
    dtab, _text = S.service_dtab(n)
    path = S.service_path(n)
    return dtab, path, oracle.lookup(dtab, path)


@functools.lru_cache(maxsize=None)
def _index(twin_name: str, n: int) -> Any:
    return importlib.import_module(twin_name).DtabIndex(_scaled(n)[0])


@pytest.mark.parametrize("n", [10, 1_000, 100_000])
def bench_lookup_scaled(benchmark: Any, twin: ModuleType, n: int) -> None:
    dtab, path, expected = _scaled(n)
    idx = _index(twin.__name__, n)
    benchmark.group = f"lookup {n}"
    benchmark.extra_info["matches"] = len(oracle.matches(dtab, path))
    result = benchmark(idx.lookup, path)
    benchmark.extra_info["correct"] = result == expected
    assert result == expected


def _with_pure(fn: Callable[[], Any]) -> Any:
    """``fn()`` with the seam pointed at the pure twin (whatever the ``kernels`` fixture set)."""
    pure = importlib.import_module("pyproxy._pure")
    saved = {name: getattr(_impl, name) for name in pure.__all__}
    try:
        for name in pure.__all__:
            setattr(_impl, name, getattr(pure, name))
        return fn()
    finally:
        for name, value in saved.items():
            setattr(_impl, name, value)


def _delegate_example() -> Any:
    dtab = Dtab.read(EXAMPLE_DTAB)
    return delegate(dtab, Path.read("/svc/world"), ConfiguredNamersInterpreter().lookup_namers)


def bench_delegate_example(benchmark: Any, kernels: ModuleType) -> None:
    dtab = Dtab.read(EXAMPLE_DTAB)  # through this twin; its index is built on first lookup, then cached
    path = Path.read("/svc/world")
    lookup_namers = ConfiguredNamersInterpreter().lookup_namers
    benchmark.group = "delegate example"
    result = benchmark(delegate, dtab, path, lookup_namers)
    expected = _with_pure(lambda: _delegate_example().to_json())
    benchmark.extra_info["correct"] = result.to_json() == expected
    assert result.to_json() == expected
    assert expected["delegate"]["type"] == "alt"
