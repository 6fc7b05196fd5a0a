"""Typed, strict, Linkerd-1.x-compatible configuration: :func:`load` and the public config types.

Loading runs four steps, each owned by one module:

1. :mod:`.source`: text to plain data (JSON when it starts with ``{``, else YAML; duplicate keys are
   errors);
2. :mod:`.legacy`: legacy keys and kinds rewritten with warnings, default kinds filled in;
3. ``msgspec.convert(data, Config, strict=True)``: types, bounds, unknown keys, and every struct's
   ``__post_init__`` (dtabs and paths parsed, cross-key rules, the root's whole-tree checks);
4. :mod:`.messages`: any failure becomes one :class:`~pyproxy.errors.ConfigError` line that starts
   with the key path, e.g. ``$.routers[0].servers[0].port: Expected int <= 65535``.

The structs are frozen data (no live objects); the application builds its runtime from them.
Kinds that parse but are not built yet are listed by :meth:`Config.unsupported`.

May import: ``errors`` and ``naming`` (dtabs and paths are parsed while validating). Nothing below
the runtime imports the config: the runtime passes plain values on.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Union

import msgspec

from ..errors import ConfigError
from . import legacy, source
from .admin import Admin as Admin
from .admin import AdminSecurity as AdminSecurity
from .admin import Usage as Usage
from .client import HttpGlobalClient as HttpGlobalClient
from .client import HttpGlobalService as HttpGlobalService
from .client import HttpStaticClient as HttpStaticClient
from .client import HttpStaticService as HttpStaticService
from .identifiers import HttpIdentifier as HttpIdentifier
from .interpreters import Interpreter as Interpreter
from .messages import format_error
from .namers import Namer as Namer
from .policy import LoadBalancer as LoadBalancer
from .root import BUILT as BUILT
from .root import Config as Config
from .router import H2Router as H2Router
from .router import HttpRouter as HttpRouter
from .router import MuxRouter as MuxRouter
from .router import Router as Router
from .router import ThriftMuxRouter as ThriftMuxRouter
from .router import ThriftRouter as ThriftRouter
from .server import HttpServer as HttpServer
from .telemetry import Telemeter as Telemeter
from .transformers import Transformer as Transformer

__all__ = [
    "load",
    "loads",
    "load_file",
    "from_data",
    "Config",
    "BUILT",
    "ConfigError",
    "Admin",
    "AdminSecurity",
    "Usage",
    "Router",
    "HttpRouter",
    "H2Router",
    "ThriftRouter",
    "ThriftMuxRouter",
    "MuxRouter",
    "HttpServer",
    "HttpGlobalClient",
    "HttpStaticClient",
    "HttpGlobalService",
    "HttpStaticService",
    "HttpIdentifier",
    "Interpreter",
    "Namer",
    "LoadBalancer",
    "Telemeter",
    "Transformer",
]


def load(src: Union[str, bytes, "os.PathLike[str]"]) -> Config:
    """Load a config from a file path or from config text.

    Args:
        src: a ``PathLike`` is a file; ``bytes`` are text (UTF-8); a ``str`` is text when it holds
            a newline or starts (after blanks) with ``{``, otherwise a file if such a file exists,
            otherwise text (one-line YAML). Use :func:`loads` / :func:`load_file` to be explicit.

    Returns:
        The validated :class:`Config`; ``config.warnings`` lists legacy keys that were accepted.

    Raises:
        ConfigError: one line starting with the key path (``$`` for the document itself).
    """
    if isinstance(src, os.PathLike):
        return load_file(src)
    if isinstance(src, bytes):
        return loads(_decode(src))
    if "\n" not in src and not src.lstrip().startswith("{") and os.path.isfile(src):
        return load_file(src)
    return loads(src)


def load_file(path: Union[str, "os.PathLike[str]"]) -> Config:
    """Load the config file at ``path`` (see :func:`load`)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"$: cannot read config file {os.fspath(path)!r}: {e.strerror or e}") from None
    return loads(_decode(raw))


def loads(text: str) -> Config:
    """Load config ``text`` (YAML, or JSON when it starts with ``{``); see :func:`load`."""
    data = source.parse(text)
    if data is None:
        raise ConfigError("$: the config is empty")
    return _convert(data)


def from_data(data: Any) -> Config:
    """Validate already-parsed data (dicts and lists as JSON would give); ``data`` is not modified."""
    return _convert(copy.deepcopy(data))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"$: the config is not UTF-8 (byte {e.start})") from None


#: Top-level keys of a namerd config that a Linkerd config never has.
NAMERD_KEYS = ("storage", "interfaces")


def _convert(data: Any) -> Config:
    if isinstance(data, dict) and "routers" not in data and any(k in data for k in NAMERD_KEYS):
        raise ConfigError("$: this is a namerd config (it has storage/interfaces, no routers): run it with `pyproxy namerd`")
    warnings = legacy.normalise(data)
    try:
        config = msgspec.convert(data, Config, strict=True)
    except msgspec.ValidationError as e:
        raise ConfigError(format_error(e, data, Config)) from None
    # The loader owns this field (the file cannot set it), so it is filled after validation.
    msgspec.structs.force_setattr(config, "warnings", tuple(warnings))
    return config
