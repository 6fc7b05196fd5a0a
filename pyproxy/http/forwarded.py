"""The RFC 7239 ``Forwarded`` element a server adds when it sets ``addForwardedHeader`` (linkerd1.md §2.6).

Linkerd 1.x never adds ``X-Forwarded-For``; it appends one ``Forwarded`` element per hop,
``by=<this server>;for=<the client>[;host=<Host>][;proto=<scheme>]``, each node named by a labeler:
the address (``ip``, ``ip:port``), an obfuscated identifier drawn per connection or per request, the
router label (obfuscated form), or a static label. Sans-IO: addresses, the connection's labels and
the random source are arguments.
"""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Dict, Optional, Tuple

__all__ = ["Labeler", "Forwarded", "node_address", "quote_value"]

_TCHAR = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_OBF_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_NOT_OBF = re.compile(r"[^A-Za-z0-9._-]")
#: Length of a random obfuscated identifier after its ``_`` (RFC 7239 §6.3 leaves it open).
OBFUSCATED_LEN = 7


def quote_value(value: bytes) -> bytes:
    """A ``Forwarded`` parameter value: a token as is, anything else as a quoted-string."""
    if _TCHAR.match(value):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def node_address(addr: Tuple[str, int], with_port: bool) -> bytes:
    """``192.0.2.1``, ``"[2001:db8::1]"``, ``"192.0.2.1:4140"`` (RFC 7239 §6: IPv6 in brackets)."""
    host, port = addr[0], addr[1]
    try:
        v6 = ipaddress.ip_address(host.split("%", 1)[0]).version == 6
    except ValueError:
        v6 = False
    text = f"[{host}]" if v6 else host
    if with_port:
        text = f"{text}:{port}"
    return quote_value(text.encode("latin-1"))


class Labeler:
    """One labeler of ``addForwardedHeader.by`` / ``.for``: ``kind`` as configured."""

    __slots__ = ("kind", "fixed")

    def __init__(self, kind: str, label: Optional[str] = None, router: str = "") -> None:
        self.kind = kind
        self.fixed: Optional[bytes] = None
        if kind == "static":
            self.fixed = quote_value(b"_" + (label or "").encode("latin-1"))
        elif kind == "router":
            self.fixed = b"_" + _NOT_OBF.sub("-", router).encode("ascii")

    def label(self, addr: Tuple[str, int], labels: Dict[str, bytes], slot: str, rng: random.Random) -> bytes:
        """This node's label; ``labels`` holds the connection's draws (``slot`` names this labeler's)."""
        kind = self.kind
        if self.fixed is not None:
            return self.fixed
        if kind == "ip":
            return node_address(addr, False)
        if kind == "ip:port":
            return node_address(addr, True)
        if kind == "connectionRandom":
            got = labels.get(slot)
            if got is None:
                got = labels[slot] = _obfuscated(rng)
            return got
        return _obfuscated(rng)  # requestRandom


def _obfuscated(rng: random.Random) -> bytes:
    return ("_" + "".join(rng.choice(_OBF_CHARS) for _ in range(OBFUSCATED_LEN))).encode("ascii")


class Forwarded:
    """The ``addForwardedHeader`` rule of one server."""

    __slots__ = ("by", "for_")

    def __init__(self, by: Labeler, for_: Labeler) -> None:
        self.by = by
        self.for_ = for_

    def element(
        self,
        local: Tuple[str, int],
        peer: Tuple[str, int],
        labels: Dict[str, bytes],
        host: Optional[bytes],
        proto: Optional[bytes],
        rng: random.Random,
    ) -> bytes:
        """``by=..;for=..[;host=..][;proto=..]`` for one request."""
        parts = [b"by=" + self.by.label(local, labels, "by", rng), b"for=" + self.for_.label(peer, labels, "for", rng)]
        if host:
            parts.append(b"host=" + quote_value(host))
        if proto:
            parts.append(b"proto=" + quote_value(proto))
        return b";".join(parts)
