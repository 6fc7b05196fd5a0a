"""The one seam between Python and the native kernels: picks ``_native`` or ``_pure`` once, at import.

``PYPROXY_IMPL`` selects:

* ``auto`` (default): the native module when it is built and its version matches, else pure Python
  (``WHY`` then says why, and ``pyproxy --version`` shows it);
* ``native``: the native module or an ``ImportError`` (CI uses this, so a broken build fails loudly);
* ``pure``: the pure-Python twins.

Nothing else in pyproxy imports ``_native`` or ``_pure``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._version import __version__

__all__ = [
    "IMPL",
    "WHY",
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
]

ENV = "PYPROXY_IMPL"
_CHOICES = ("auto", "native", "pure")

_want = os.environ.get(ENV, "auto").strip().lower() or "auto"
if _want not in _CHOICES:
    raise ImportError(f"{ENV}={_want!r}: expected 'auto', 'native' or 'pure'")

if TYPE_CHECKING or _want == "pure":
    from ._pure import (
        Balancer,
        DtabIndex,
        parse_chunk_line,
        parse_request_head,
        parse_response_head,
        parse_trailers,
        read_dentry,
        read_dtab,
        read_path,
        read_prefix,
        read_tree,
    )

    IMPL, WHY = "pure", f"{ENV}=pure"
else:
    try:
        from ._native import __version__ as _native_version

        if _native_version != __version__:
            raise ImportError(
                f"stale native module: pyproxy._native is {_native_version}, pyproxy is {__version__}"
                " (rebuild with `maturin develop --release`)"
            )
        from ._native import (
            Balancer,
            DtabIndex,
            parse_chunk_line,
            parse_request_head,
            parse_response_head,
            parse_trailers,
            read_dentry,
            read_dtab,
            read_path,
            read_prefix,
            read_tree,
        )

        IMPL, WHY = "native", ""
    except ImportError as exc:
        if _want == "native":
            raise ImportError(f"{ENV}=native but the native module cannot be used: {exc}") from exc
        from ._pure import (
            Balancer,
            DtabIndex,
            parse_chunk_line,
            parse_request_head,
            parse_response_head,
            parse_trailers,
            read_dentry,
            read_dtab,
            read_path,
            read_prefix,
            read_tree,
        )

        IMPL, WHY = "pure", f"native module unavailable: {exc}"
