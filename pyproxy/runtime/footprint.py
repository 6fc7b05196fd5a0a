"""The serving process's resident memory: modules imported by dependencies but loaded only when used.

``import trio`` imports :mod:`ssl` (for ``trio.SSLStream``) and :mod:`hmac` (for DTLS cookies), and
with them OpenSSL: libssl, libcrypto and their start-up tables, about 5 MiB resident, a sixth of an
idle proxy. pyproxy does not terminate or originate TLS yet, so nothing on its paths uses either.
:func:`defer_unused` puts a placeholder for each in ``sys.modules`` before trio is imported: ``import
ssl`` binds the placeholder, and the first attribute read from it imports the real module and
copies its namespace in, so code holding the placeholder sees the real classes and functions (the
same objects: ``isinstance`` and ``except ssl.SSLError`` behave as usual). Nothing is deferred
that was imported already.

Only ``pyproxy run`` calls it (README, "Memory"); a program that imports pyproxy as a library is
left as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any, Tuple

__all__ = ["DEFERRED", "defer_unused", "loaded"]

#: Modules the serving process defers: both link OpenSSL.
DEFERRED: Tuple[str, ...] = ("ssl", "hmac")


class _Placeholder(types.ModuleType):
    """Stands for a module until one of its attributes is read (``__getattr__`` sees misses only)."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(real.__dict__)  # holders of the placeholder now read the real namespace
        return getattr(real, attr)


def defer_unused() -> None:
    """Puts placeholders for :data:`DEFERRED` modules not imported yet (idempotent)."""
    for name in DEFERRED:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        module = _Placeholder(name)
        module.__spec__ = spec  # what ``import name`` checks; reading it must not load the module
        sys.modules[name] = module


def loaded(name: str) -> bool:
    """Whether ``name`` is really imported (not only a placeholder for it)."""
    module = sys.modules.get(name)
    return module is not None and not isinstance(module, _Placeholder)


def trim_heap() -> None:
    """Returns the C heap's free pages to the system once start-up is over (glibc's ``malloc_trim``).

    Start-up (config parsing and validation, building routers) frees most of what it allocated,
    but glibc keeps freed memory below the top of its heaps mapped. Elsewhere this does nothing.
    """
    import ctypes  # trio imported it already

    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
