"""Common ground of the config structs: the shared Struct options, bounded number types, the error
convention, validators for Linkerd's value syntaxes, and the tree walker.

Invariants (every module of this package relies on them):

* Every struct subclasses :class:`Base` and repeats ``kw_only=True`` (msgspec does not inherit
  ``kw_only``; ``frozen``, ``forbid_unknown_fields`` and ``rename="camel"`` are inherited, and a test
  checks them on every class). Keys whose camel form msgspec cannot derive (``maxHeadersKB``) name
  themselves with ``msgspec.field(name=...)``.
* Defaults live on the fields and nowhere else. A struct-valued default is one shared frozen instance;
  :func:`walk` relies on that identity to tell "left at its default" from "written by the user".
* A ``__post_init__`` that rejects a value raises :func:`invalid`, a ``ValueError`` whose text is
  ``@<key path relative to this struct>: <message>``. msgspec appends the *struct's* path to errors
  raised there (not the field's), so :mod:`.messages` splices the two into ``$.a.b.key: message``.
* Polymorphic objects carry two class variables read by the root checks: ``FAMILY`` (which plugin
  family, e.g. ``"namer"``; empty for plain data) and ``EXPERIMENTAL`` (Linkerd refuses the plugin
  unless the object says ``experimental: true``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, ClassVar, Iterator, Optional, Tuple

import msgspec
from msgspec import Meta

from ..errors import DtabError, PathError
from ..naming.dtab import Dtab
from ..naming.path import Path

__all__ = [
    "Base",
    "Plugin",
    "Port",
    "NonNegInt",
    "PosInt",
    "Fraction",
    "SocketOptions",
    "Session",
    "invalid",
    "join",
    "walk",
    "tag_of",
    "check_path",
    "check_dtab",
    "check_pattern",
    "check_host",
]

# === number types (bounds become msgspec's own "Expected `int` <= 65535" messages) ===

Port = Annotated[int, Meta(ge=0, le=65535)]
NonNegInt = Annotated[int, Meta(ge=0)]
PosInt = Annotated[int, Meta(ge=1)]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel", kw_only=True):
    """Root of every config struct: immutable, strict about keys, camelCase on the wire."""

    FAMILY: ClassVar[str] = ""
    EXPERIMENTAL: ClassVar[bool] = False


class Plugin(Base, kw_only=True):
    """A polymorphic object selected by ``kind`` (or ``protocol``); accepts Linkerd's gate key."""

    # Accepted (and ignored) on every plugin: real configs carry it on plugins that were experimental
    # when the config was written (h2 routers, io.l5d.k8s namers, gRPC classifiers).
    experimental: bool = False


class SocketOptions(Base, kw_only=True):
    """``socketOptions`` of admin, servers and clients (Linkerd 1.x section 1.2.4)."""

    no_delay: bool = True
    reuse_addr: bool = True
    reuse_port: bool = False
    read_timeout_ms: Optional[PosInt] = None  # None: unbounded
    write_timeout_ms: Optional[PosInt] = None
    keep_alive: Optional[bool] = None  # None: the OS default
    backlog: Optional[PosInt] = None  # None: SOMAXCONN


class Session(Base, kw_only=True):
    """``serverSession`` / ``clientSession``: connection idle time and lifetime (None: forever)."""

    idle_time_ms: Optional[PosInt] = None
    life_time_ms: Optional[PosInt] = None


# === the error convention ===


def invalid(key: str, message: str) -> ValueError:
    """The error a ``__post_init__`` raises for the value at ``key`` (relative to the struct).

    Args:
        key: camelCase key path below the struct (``dtab``, ``servers[0].port``); ``""`` for the
            struct itself.
        message: one line; newlines are escaped by the loader.
    """
    return ValueError(f"@{key}: {message}")


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def join(path: str, key: Any) -> str:
    """``path`` extended by one key (``$.a`` + ``b`` = ``$.a.b``; odd keys use ``['x y']``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    if _IDENT.match(key):
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def tag_of(obj: msgspec.Struct) -> Tuple[Optional[str], Optional[str]]:
    """``(tag field, tag)`` of a tagged struct (``("kind", "io.l5d.fs")``), else ``(None, None)``."""
    cfg = obj.__struct_config__
    if cfg.tag_field is None:
        return None, None
    return cfg.tag_field, cfg.tag  # type: ignore[return-value]


def walk(obj: Any, path: str = "$", skip_defaults: bool = False) -> Iterator[Tuple[str, msgspec.Struct]]:
    """Every struct in the tree under ``obj`` with its key path, parents first, in key order.

    Args:
        skip_defaults: do not enter a field whose value *is* its default, i.e. one the user did
            not write (struct defaults are shared instances, so identity is exact).
    """
    if isinstance(obj, msgspec.Struct):
        yield path, obj
        for f in msgspec.structs.fields(obj):
            value = getattr(obj, f.name)
            if skip_defaults and value is f.default:
                continue
            yield from walk(value, join(path, f.encode_name), skip_defaults)
    elif isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from walk(item, f"{path}[{i}]", skip_defaults)
    elif isinstance(obj, dict):
        for k, item in obj.items():
            yield from walk(item, join(path, k), skip_defaults)


# === validators for Linkerd's value syntaxes (each raises invalid(key, ...)) ===


def check_path(value: str, key: str) -> None:
    """``value`` must be a Finagle path (``/svc``); the message is Finagle's parse error."""
    try:
        Path.read(value)
    except (DtabError, PathError) as e:
        raise invalid(key, str(e)) from None


def check_dtab(value: str, key: str) -> None:
    """``value`` must be a dtab (``/a => /b; ...``); parsed at load so typos fail at startup."""
    try:
        Dtab.read(value)
    except (DtabError, PathError) as e:
        raise invalid(key, str(e)) from None


_VAR = re.compile(r"\{([^{}]*)\}")


def check_pattern(value: str, key: str) -> None:
    """``value`` must be a PathMatcher pattern: ``/seg/*/{var}-x``, used by static client/service.

    Linkerd splits on ``/``; a segment is ``*`` or text with ``{name}`` captures (non-empty names,
    no nesting). Elements are otherwise free text, so Path.read is not the right check here.
    """
    if not value.startswith("/"):
        raise invalid(key, f"prefix pattern must start with '/': {value!r}")
    if value == "/":
        return
    for seg in value[1:].split("/"):
        if not seg:
            raise invalid(key, f"empty segment in prefix pattern {value!r}")
        rest = _VAR.sub("", seg)
        if "{" in rest or "}" in rest:
            raise invalid(key, f"unbalanced '{{' or '}}' in prefix pattern {value!r}")
        if any(not name for name in _VAR.findall(seg)):
            raise invalid(key, f"empty capture '{{}}' in prefix pattern {value!r}")


# RFC 1123 labels, plus "_" (container runtimes hand out names such as zipkin_collector).
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?\Z")


def check_host(value: str, key: str) -> None:
    """``value`` must be an IP literal or a DNS host name (Linkerd resolves names at bind time)."""
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise invalid(key, f"not an IP address or host name: {value!r}")
