"""The ``/$/`` system namers of Finagle and Linkerd (spec §4.3 and §5).

``/$/inet/<host>/<port>`` and ``/$/fixedinet/...`` bind to an address; ``/$/fail`` is Fail,
``/$/nil`` is Empty; ``/$/<class>/...`` runs the namer registered under that class name (Linkerd's
``io.buoyant.*`` namers, or a plugin registered with :meth:`SystemNamer.register`); an unknown class
raises :class:`~pyproxy.errors.UnknownNamerError` (Finagle's ``ClassNotFoundException``). Rewriting
namers answer a ``Path`` leaf, which binding looks up again *through the dtab*.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import UnknownNamerError
from .name import Address, AddrBound, AddrFailed, AddrVar, Bound
from .namer import Namer
from .path import Path
from .tree import Empty, Fail, Leaf, NameTree, Neg

__all__ = ["HostLookup", "InetResolver", "SYSTEM", "SystemNamer", "java_split", "literal_ip", "parse_java_int"]

_DOLLAR = b"$"
_INT = re.compile(r"[+-]?[0-9]+\Z")


def parse_java_int(text: str) -> Optional[int]:
    """Java's ``Integer.parseInt`` on ASCII digits: the value, or None when it would throw."""
    if not _INT.match(text):
        return None
    v = int(text)
    return v if -(2**31) <= v < 2**31 else None


def java_split(s: str, sep: str) -> List[str]:
    """Java's ``String.split`` on a literal separator: trailing empty strings are dropped."""
    if sep not in s:
        return [s]
    parts = s.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


#: Resolves a host name (not an IP literal) and a valid port: ``AddrBound`` or ``AddrFailed``.
HostLookup = Callable[[str, int], object]


class InetResolver:
    """Turns ``(host, port)`` of ``/$/inet`` into a live address set; one ``AddrVar`` per pair, cached.

    IP literals (and Java's short IPv4 forms such as ``127.1``) resolve at once, here. Host names
    are I/O, so not this module's: they go to ``lookup`` (a blocking lookup, for offline tools such
    as ``pyproxy delegate``), or a subclass resolves them asynchronously (the running proxy's
    :class:`pyproxy.discovery.dns.DnsResolver`). Without either, a host name fails with a message
    saying so. The cache is bounded (``max_names``; names come from requests' ``l5d-dtab`` too):
    past it, the least recently asked-for names that no client observes any more are forgotten, and
    :attr:`version` moves (a binding cached elsewhere may hold a forgotten set, which is no longer
    kept fresh: routers compare the version before using a cached binding).
    """

    def __init__(self, lookup: Optional[HostLookup] = None, max_names: int = 10_000) -> None:
        self._lookup = lookup
        self.max_names = max_names
        self.version = 0
        self._cache: "OrderedDict[Tuple[str, str], AddrVar]" = OrderedDict()

    def resolve(self, host: str, port_text: str) -> AddrVar:
        key = (host, port_text)
        var = self._cache.get(key)
        if var is not None:
            self._cache.move_to_end(key)
            return var
        port = parse_java_int(port_text)
        if port is None:
            var = AddrVar(AddrFailed(f'For input string: "{port_text}"'))
        elif not 0 <= port <= 65535:
            var = AddrVar(AddrFailed(f"port out of range:{port}"))
        elif host == "":
            var = AddrVar(AddrBound((Address("0.0.0.0", port),)))
        else:
            literal = literal_ip(host)
            var = AddrVar(AddrBound((Address(literal, port),))) if literal is not None else self.host_var(host, port)
        self._cache[key] = var
        if len(self._cache) > self.max_names:
            self._evict(key)
        return var

    def host_var(self, host: str, port: int) -> AddrVar:
        """The address set of a host name (a subclass may return a pending one and resolve it later)."""
        if self._lookup is None:
            return AddrVar(AddrFailed(f"{host}: host names are resolved by a running proxy, not here"))
        return AddrVar(self._lookup(host, port))

    def _evict(self, added: Tuple[str, str]) -> None:
        """Unobserved names out, oldest first; never the one just ``added`` (about to be used)."""
        for key in list(self._cache):
            if len(self._cache) <= self.max_names:
                return
            var = self._cache[key]
            if key != added and not var.observed:
                del self._cache[key]
                self.forget(var)
                self.version += 1

    def forget(self, var: AddrVar) -> None:
        """``var`` left the cache (a subclass stops keeping it fresh)."""

    def __len__(self) -> int:
        return len(self._cache)


def literal_ip(host: str) -> Optional[str]:
    """The canonical text of an IP literal (``[v6]`` too), or of the IPv4 forms ``inet_aton``
    accepts (``127.1``, octal ``0177.0.0.1``, hex ``0x7f.1``), as Java's ``InetAddress`` does; None
    for anything else (a host name)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if not _AION.fullmatch(host):
        return None
    parts = host.split(".")
    values = []
    for part in parts:
        base = 16 if part[:2].lower() == "0x" else 8 if len(part) > 1 and part[0] == "0" else 10
        digits = part[2:] if base == 16 else part
        try:
            values.append(int(digits, base))
        except ValueError:  # "0x" alone, or 8 or 9 in an octal part
            return None
    # a.b.c.d: bytes; a.b.c: c fills 16 bits; a.b: b fills 24 bits; a: 32 bits
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    n = 0
    for v in head:
        n = (n << 8) | v
    n = (n << (8 * (4 - len(head)))) | last
    return str(ipaddress.IPv4Address(n))


_AION = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")


# === Linkerd's rewriting namers (io.buoyant.*) ===

_HOST = re.compile(r"[A-Za-z0-9.:_-]+\Z")
_METHOD = re.compile(r"[A-Z]+\Z")
_DNS_LABEL = re.compile(r"[a-z0-9][-a-z0-9]*[a-z0-9]?\Z")


def _host_colon_port(s: str) -> Optional[Tuple[str, str]]:
    parts = java_split(s, ":")
    if len(parts) == 2 and _DNS_LABEL.match(parts[1]) and len(parts[1]) <= 63:
        return parts[0], parts[1]
    return None


def _subdomain(domain: str, hostname: str) -> Optional[str]:
    idx = hostname.find(":")
    host = hostname[:idx] if idx > 0 else hostname
    sfx = "." + domain
    return host[: -len(sfx)] if host.endswith(sfx) else None


def _rewrite_hostport(path: Path, swap: bool) -> Optional[Path]:
    if len(path) < 2:
        return None
    pfx, hp = path.take(2).utf8_elems()
    m = _host_colon_port(hp)
    if m is None:
        return None
    host, port = m
    return Path.utf8(pfx, port, host) + path.drop(2) if swap else Path.utf8(pfx, host, port) + path.drop(2)


def _any_method(path: Path) -> Optional[Path]:
    return path.drop(1) if _METHOD.match(path.utf8_elems()[0]) else None


def _any_method_pfx(path: Path) -> Optional[Path]:
    if len(path) < 2:
        return None
    pfx, method = path.take(2).utf8_elems()
    return Path.utf8(pfx) + path.drop(2) if _METHOD.match(method) else None


def _any_host(path: Path) -> Optional[Path]:
    return path.drop(1) if _HOST.match(path.utf8_elems()[0]) else None


def _any_host_pfx(path: Path) -> Optional[Path]:
    if len(path) < 2:
        return None
    pfx, host = path.take(2).utf8_elems()
    return Path.utf8(pfx) + path.drop(2) if _HOST.match(host) else None


def _subdomain_of(path: Path) -> Optional[Path]:
    if len(path) < 2:
        return None
    domain, host = path.take(2).utf8_elems()
    if not (_HOST.match(domain) and _HOST.match(host)):
        return None
    sub = _subdomain(domain, host)
    return Path.utf8(sub) + path.drop(2) if sub else None


def _subdomain_of_pfx(path: Path) -> Optional[Path]:
    if len(path) < 3:
        return None
    domain, pfx, host = path.take(3).utf8_elems()
    if not (_HOST.match(domain) and _HOST.match(host)):
        return None
    sub = _subdomain(domain, host)
    return Path.utf8(pfx, sub) + path.drop(3) if sub else None


def _domain_to_path(path: Path) -> Optional[Path]:
    host = path.utf8_elems()[0]
    if not _HOST.match(host):
        return None
    return Path.utf8(*reversed(java_split(host, "."))) + path.drop(1)


def _domain_to_path_pfx(path: Path) -> Optional[Path]:
    if len(path) < 2:
        return None
    pfx, host = path.take(2).utf8_elems()
    if not _HOST.match(host):
        return None
    return Path.utf8(pfx, *reversed(java_split(host, "."))) + path.drop(2)


class RewritingNamer(Namer):
    """A namer that rewrites a path into another path (looked up again), or answers Neg."""

    def __init__(self, rewrite: Callable[[Path], Optional[Path]]) -> None:
        self._rewrite = rewrite

    def lookup(self, path: Path) -> NameTree:
        if not path.elems:
            return Neg
        out = self._rewrite(path)
        return Neg if out is None else Leaf(out)


class RinetNamer(Namer):
    """``/$/io.buoyant.rinet/<port>/<host>/rest``: inet with the port first."""

    def __init__(self, resolver: InetResolver, class_name: str) -> None:
        self._resolver = resolver
        self._id_prefix = Path((_DOLLAR, class_name.encode()))

    def lookup(self, path: Path) -> NameTree:
        if len(path) < 2:
            return Neg
        port, host = path.take(2).utf8_elems()
        return Leaf(Bound(self._id_prefix + path.take(2), path.drop(2), self._resolver.resolve(host, port)))


class SystemNamer(Namer):
    """Finagle's ``Namer.global``: looks up whole paths that start with ``/$``; anything else is Neg."""

    def __init__(self, resolver: Optional[InetResolver] = None) -> None:
        self.resolver = resolver if resolver is not None else InetResolver()
        self._classes: Dict[str, Namer] = {}
        for name, fn in (
            ("io.buoyant.hostportPfx", lambda p: _rewrite_hostport(p, swap=False)),
            ("io.buoyant.porthostPfx", lambda p: _rewrite_hostport(p, swap=True)),
            ("io.buoyant.http.anyMethod", _any_method),
            ("io.buoyant.http.anyMethodPfx", _any_method_pfx),
            ("io.buoyant.http.anyHost", _any_host),
            ("io.buoyant.http.anyHostPfx", _any_host_pfx),
            ("io.buoyant.http.subdomainOf", _subdomain_of),
            ("io.buoyant.http.subdomainOfPfx", _subdomain_of_pfx),
            ("io.buoyant.http.domainToPath", _domain_to_path),
            ("io.buoyant.http.domainToPathPfx", _domain_to_path_pfx),
        ):
            self._classes[name] = RewritingNamer(fn)
        self._classes["io.buoyant.rinet"] = RinetNamer(self.resolver, "io.buoyant.rinet")

    @property
    def version(self) -> Optional[int]:  # type: ignore[override]
        """Moves when the resolver forgets a name (see :class:`InetResolver`)."""
        return self.resolver.version

    def register(self, class_name: str, namer: Namer) -> None:
        """Make ``/$/<class_name>/...`` reach ``namer`` (the way Finagle loads a class by name)."""
        self._classes[class_name] = namer

    def lookup(self, path: Path) -> NameTree:
        e = path.elems
        if len(e) < 2 or e[0] != _DOLLAR:
            return Neg
        kind = e[1]
        if kind in (b"inet", b"fixedinet"):
            bound = self._inet(path)
            if bound is not None:
                return Leaf(bound)
        elif kind == b"fail":
            return Fail
        elif kind == b"nil":
            return Empty
        name = kind.decode("utf-8", "replace")
        namer = self._classes.get(name)
        if namer is None:
            raise UnknownNamerError(name, class_name=name)
        return namer.lookup(path.drop(2))

    def _inet(self, path: Path) -> Optional[Bound]:
        rest = path.drop(2).utf8_elems()
        if len(rest) >= 2 and parse_java_int(rest[1]) is not None:
            return Bound(path.take(4), path.drop(4), self.resolver.resolve(rest[0], rest[1]))
        if len(rest) >= 1 and parse_java_int(rest[0]) is not None:
            return Bound(path.take(3), path.drop(3), self.resolver.resolve("", rest[0]))
        return None


#: The process-wide system namer (a plain default; routers may build their own).
SYSTEM = SystemNamer()
