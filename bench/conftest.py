"""Benchmark fixtures: the twins of ``tests/conftest.py``, and ``tests/`` on ``sys.path`` (oracle, strategies).

``tests/conftest.py`` is loaded here under a private module name and its public names are re-exported,
so benchmarks parametrize over the very same ``TWINS`` (``[native]`` marked ``native``, ``[pure]``)
whether ``bench/`` runs alone or with ``tests/``. Re-exporting also matters because pytest imports both
files as the module ``conftest``: a ``from conftest import TWINS`` in a test finds these names either way.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

import pytest

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)


def _load_tests_conftest() -> ModuleType:
    name = "_pyproxy_tests_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(TESTS, "conftest.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_tests = _load_tests_conftest()

TWINS = _tests.TWINS
KERNEL_NAMES = _tests.KERNEL_NAMES
load_twin = _tests.load_twin
kernels = _tests.kernels
native = _tests.native
pure = _tests.pure


@pytest.fixture(params=TWINS)
def twin(request: pytest.FixtureRequest) -> ModuleType:
    """One twin's kernel module (the seam ``pyproxy._impl`` is left alone)."""
    return load_twin(request.param)
