"""The one seam between Python and the native kernels: picks ``_native`` or ``_pure`` once, at import.

``PYPROXY_IMPL`` selects:

* ``auto`` (default): the native module when it is built and its version matches, else pure Python
  (``WHY`` then says why, and ``pyproxy --version`` shows it). A native module that is there but
  cannot be used (``NATIVE_REFUSED``: of another version, after a half-upgraded install or a checkout
  bumped since its last build; lacking a kernel; failing to load, e.g. built for a newer glibc) is
  never half-used: the proxy runs on the pure twins and the command line warns, naming the command
  that rebuilds or reinstalls it when the version is wrong;
* ``native``: the native module or an ``ImportError`` (CI uses this, so a broken build fails loudly);
* ``pure``: the pure-Python twins.

Nothing else in pyproxy imports ``_native`` or ``_pure``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._version import IN_SOURCE_TREE, __version__

#: The kernel names, the same in both twins (tests check that the native module exports exactly these).
KERNELS = (
    "Balancer",
    "DtabIndex",
    "parse_chunk_line",
    "parse_request_head",
    "parse_response_head",
    "parse_trailers",
    "read_dentry",
    "read_dtab",
    "read_path",
    "read_prefix",
    "read_tree",
)
#: The lane and the classes of its events: native only (None with the pure kernels).
LANE = ("Lane", "LaneHandoff", "LaneDone", "LaneResume", "LaneFailed", "LaneAbandon", "LaneSampled", "LaneAccess")
__all__ = ["IMPL", "WHY", "NATIVE_REFUSED", "BUILD", "KERNELS", "LANE", *LANE, *KERNELS]

ENV = "PYPROXY_IMPL"
_CHOICES = ("auto", "native", "pure")

_want = os.environ.get(ENV, "auto").strip().lower() or "auto"
if _want not in _CHOICES:
    raise ImportError(f"{ENV}={_want!r}: expected 'auto', 'native' or 'pure'")

if TYPE_CHECKING:  # type checkers see the pure twins, which are the specification
    pass


#: How to get a native module that matches: rebuild the checkout, or reinstall the package.
REINSTALL = (
    "rebuild it: pip install -e . (or maturin develop --release)"
    if IN_SOURCE_TREE
    else f"reinstall pyproxy: pip install --force-reinstall pyproxy=={__version__} (or the wheel file)"
)


def _select() -> "tuple[object, str, str, bool]":
    if _want == "pure":
        from . import _pure

        return _pure, "pure", f"{ENV}=pure", False
    try:
        from . import _native

        if getattr(_native, "__version__", None) != __version__:
            raise ImportError(
                f"stale native module: pyproxy._native is {getattr(_native, '__version__', 'unversioned')},"
                f" pyproxy is {__version__} ({REINSTALL})"
            )
        missing = [n for n in KERNELS if not hasattr(_native, n)]
        if missing:
            raise ImportError(f"the native module lacks {', '.join(missing)}, a stale build ({REINSTALL})")
        return _native, "native", "", False
    except ImportError as exc:
        from importlib.util import find_spec

        # Only "there is no native module" (a pure install, a checkout never built) is not worth a
        # warning; Python's own message for it would be about a partially initialised package.
        absent = find_spec(f"{__package__}._native") is None
        why = "this install has no pyproxy._native (never built)" if absent else str(exc)
        if _want == "native":
            raise ImportError(f"{ENV}=native but the native module cannot be used: {why}") from exc
        from . import _pure

        return _pure, "pure", f"native module unavailable: {why}", not absent


_module, IMPL, WHY, NATIVE_REFUSED = _select()
globals().update({name: getattr(_module, name) for name in KERNELS})

#: What the native module in use was built for, ``(target triple, Cargo profile, rustc --version)``
#: (``native/build.rs``); None with the pure kernels.
BUILD = getattr(_module, "__build__", None) if IMPL == "native" else None


def describe() -> str:
    """The kernels in use, as ``pyproxy --version`` and the start-up log line say them."""
    if IMPL == "native" and BUILD is not None:
        target, profile, rustc = BUILD
        return f"native kernels: {target}, {profile}, {rustc}"
    return f"{IMPL} kernels" + (f" ({WHY})" if WHY else "")


#: The native data path (``pyproxy/lane.py``), or None with the pure kernels. It has no pure twin of
#: its own: its twin and specification is the whole trio data path, which serves every request the
#: lane declines and which the black-box tests compare it with.
Lane = getattr(_module, "Lane", None) if IMPL == "native" else None
#: The classes of the lane's events (``Lane.poll`` and the other calls return lists of them), one
#: per kind, with named fields; None with the pure kernels.
LaneHandoff = getattr(_module, "LaneHandoff", None) if IMPL == "native" else None
LaneDone = getattr(_module, "LaneDone", None) if IMPL == "native" else None
LaneResume = getattr(_module, "LaneResume", None) if IMPL == "native" else None
LaneFailed = getattr(_module, "LaneFailed", None) if IMPL == "native" else None
LaneAbandon = getattr(_module, "LaneAbandon", None) if IMPL == "native" else None
LaneSampled = getattr(_module, "LaneSampled", None) if IMPL == "native" else None
LaneAccess = getattr(_module, "LaneAccess", None) if IMPL == "native" else None
del _module
