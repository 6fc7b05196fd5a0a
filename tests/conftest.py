"""Shared fixtures: the kernel twins, hypothesis profiles.

``kernels`` runs a test once per twin (``[native]``, ``[pure]``) by pointing the seam
(``pyproxy._impl``) at that twin for the test's duration; the native case is marked ``native``
and fails when the module is not built (deselect explicitly with ``-m "not native"``).
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

import pyproxy
from pyproxy import _impl

sys.path.insert(0, os.path.dirname(__file__))

# .ci/wheel-smoke runs some of these files against the wheel installed in a fresh virtualenv: a
# pyproxy imported from anywhere else (the checkout) would make that run prove nothing.
_installed_in = os.environ.get("PYPROXY_EXPECT_INSTALLED")
if _installed_in and not os.path.realpath(pyproxy.__file__).startswith(os.path.realpath(_installed_in) + os.sep):
    raise pytest.UsageError(f"PYPROXY_EXPECT_INSTALLED={_installed_in} but pyproxy comes from {pyproxy.__file__}")

KERNEL_NAMES = _impl.KERNELS

settings.register_profile("ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("slow", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

TWINS = [pytest.param("native", marks=pytest.mark.native, id="native"), pytest.param("pure", id="pure")]


def load_twin(name: str) -> ModuleType:
    """The kernel module of one twin; importing the native one fails loudly when it is not built."""
    return importlib.import_module("pyproxy._native" if name == "native" else "pyproxy._pure")


@pytest.fixture(params=TWINS)
def kernels(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Route the whole naming layer through one twin for this test."""
    mod = load_twin(request.param)
    for name in KERNEL_NAMES:
        monkeypatch.setattr(_impl, name, getattr(mod, name))
    monkeypatch.setattr(_impl, "IMPL", request.param)
    return mod


@pytest.fixture(scope="session")
def native() -> ModuleType:
    return load_twin("native")


@pytest.fixture(scope="session")
def pure() -> ModuleType:
    return load_twin("pure")
