"""HTTP identifiers: how a request becomes a logical name such as ``/svc/hello`` (spec §6, Linkerd 1.x).

Each identifier turns a request head into :class:`Identified` (the name, and the URI to forward, which
``io.l5d.path`` with ``consume`` rewrites) or :class:`Unidentified` (the reason, answered with 400).
A request whose URI cannot become a path raises (:class:`~pyproxy.errors.DtabError` or
:class:`~pyproxy.errors.PathError`), as Linkerd's identifiers throw.

Sans-IO: identifiers read a :class:`RequestHead` (method, target, version, first header value by
case-insensitive name) and never touch sockets.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

from ..errors import DtabError, NamePending
from ..naming.path import Path
from ..naming.system import java_split

try:  # Python 3.8+: typing.Protocol
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment,misc]

__all__ = [
    "RequestHead",
    "Identified",
    "Unidentified",
    "Identifier",
    "HeaderTokenIdentifier",
    "HeaderPathIdentifier",
    "MethodAndHostIdentifier",
    "PathIdentifier",
    "StaticIdentifier",
    "IngressIdentifier",
    "compose",
]

Text = Union[str, bytes]


class RequestHead(Protocol):
    """What identifiers read from a request."""

    method: Text  # the proxy's requests carry bytes, the conformance vectors' heads text
    target: Text
    version: str  # "HTTP/1.1"

    def header(self, name: str) -> Optional[Text]:
        """The first value of header ``name`` (case-insensitive), or None."""


class Identified:
    """The request's logical name, and the request target to forward (None: unchanged)."""

    __slots__ = ("dst", "target")

    def __init__(self, dst: Path, target: Optional[str] = None) -> None:
        self.dst = dst
        self.target = target

    def __repr__(self) -> str:
        return f"Identified({self.dst.show}, target={self.target!r})"


class Unidentified:
    """No name for this request; ``reason`` says why, ``error`` is a parse error behind it, if any."""

    __slots__ = ("reason", "error")

    def __init__(self, reason: str, error: Optional[BaseException] = None) -> None:
        self.reason = reason
        self.error = error

    def __repr__(self) -> str:
        return f"Unidentified({self.reason!r})"


Identification = Union[Identified, Unidentified]


def _elem(v: Text) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8")


def _text(v: Text) -> str:
    return v.decode("latin-1") if isinstance(v, bytes) else v


def _uri_path(target: str) -> str:
    q = target.find("?")
    return target if q < 0 else target[:q]


class Identifier:
    """Base class: ``identify(head)`` gives the name of a request."""

    def __init__(self, dst_prefix: Path) -> None:
        self.dst_prefix = dst_prefix

    def identify(self, head: RequestHead) -> Identification:
        raise NotImplementedError


class HeaderTokenIdentifier(Identifier):
    """``io.l5d.header.token`` (the HTTP default, on ``Host``): the header value as ONE element.

    Names are remembered per header value (a node sees few distinct hosts), so the common case
    builds no path per request.
    """

    _CACHE_MAX = 4096

    def __init__(self, dst_prefix: Path, header: str = "Host") -> None:
        super().__init__(dst_prefix)
        self.header = header
        self._is_host = header.lower() == "host"
        self._names: Dict[Text, Identified] = {}

    def identify(self, head: RequestHead) -> Identification:
        v = head.host if self._is_host and hasattr(head, "host") else head.header(self.header)  # type: ignore[attr-defined]
        if not v:
            return Unidentified(f"{self.header} header is absent")
        hit = self._names.get(v)
        if hit is None:
            if len(self._names) >= self._CACHE_MAX:
                self._names.clear()
            hit = self._names[v] = Identified(self.dst_prefix + Path((_elem(v),)))
        return hit


class HeaderPathIdentifier(Identifier):
    """``io.l5d.header``: the header value parsed as a path (default header ``l5d-name``)."""

    def __init__(self, dst_prefix: Path, header: str = "l5d-name") -> None:
        super().__init__(dst_prefix)
        self.header = header

    def identify(self, head: RequestHead) -> Identification:
        v = head.header(self.header)
        if not v:
            return Unidentified(f"{self.header} header is absent")
        try:
            return Identified(self.dst_prefix + Path.read(_text(v)))
        except DtabError as exc:
            return Unidentified(str(exc), exc)


class MethodAndHostIdentifier(Identifier):
    """``io.l5d.methodAndHost``: ``/1.1/<METHOD>/<host lower-cased>`` (``/1.0/<METHOD>`` for HTTP/1.0)."""

    def __init__(self, dst_prefix: Path, http_uri_in_dst: bool = False) -> None:
        super().__init__(dst_prefix)
        self.http_uri_in_dst = http_uri_in_dst

    def identify(self, head: RequestHead) -> Identification:
        if head.version == "HTTP/1.1":
            host = head.header("Host")
            if not host:
                return Unidentified("HTTP/1.1 request missing hostname")
            name = Path.utf8("1.1", _text(head.method), _text(host).lower())
        elif head.version == "HTTP/1.0":
            name = Path.utf8("1.0", _text(head.method))
        else:
            return Unidentified(f"Unknown HTTP version {head.version}")
        if self.http_uri_in_dst:
            name = name + Path.read(_uri_path(_text(head.target)))
        return Identified(self.dst_prefix + name)


class PathIdentifier(Identifier):
    """``io.l5d.path``: the first ``segments`` URI path segments, each one element, optionally consumed."""

    def __init__(self, dst_prefix: Path, segments: int = 1, consume: bool = False) -> None:
        super().__init__(dst_prefix)
        self.segments = segments
        self.consume = consume

    def identify(self, head: RequestHead) -> Identification:
        target = _text(head.target)
        q = target.find("?")
        path, query = (target, "") if q < 0 else (target[:q], target[q:])
        parts = java_split(path, "/")[1:]
        if len(parts) < self.segments:
            return Unidentified("not enough segments in path")
        name = self.dst_prefix + Path.utf8(*parts[: self.segments])
        if not self.consume:
            return Identified(name)
        rest = parts[self.segments :]
        if not rest:
            new = "/"
        else:
            new = "/" + "/".join(rest) + ("/" if path.endswith("/") else "")
        return Identified(name, new + query)


class StaticIdentifier(Identifier):
    """``io.l5d.static``: every request gets ``dstPrefix ++ path``."""

    def __init__(self, dst_prefix: Path, path: Path) -> None:
        super().__init__(dst_prefix)
        self.name = dst_prefix + path

    def identify(self, head: RequestHead) -> Identification:
        return Identified(self.name)


class IngressRules(Protocol):
    """What the ingress identifier reads (``pyproxy.discovery.k8s.ingress.IngressRules``)."""

    known: bool
    ready: object  # waited on (``await ready.wait()``) while not known

    def match(self, host: Optional[str], path: str) -> Optional[Tuple[str, str, str]]: ...


class IngressIdentifier(Identifier):
    """``io.l5d.ingress``: ``/<dstPrefix>/<namespace>/<service port>/<service name>`` of the Kubernetes
    Ingress rule matching the request's host and path. Before the first answer of the Ingress
    watch, identification raises :class:`~pyproxy.errors.NamePending` (the router waits)."""

    def __init__(self, dst_prefix: Path, rules: IngressRules) -> None:
        super().__init__(dst_prefix)
        self.rules = rules

    def identify(self, head: RequestHead) -> Identification:
        if not self.rules.known:
            raise NamePending("waiting for the Kubernetes Ingress resources", self.rules.ready)
        host = head.header("Host")
        found = self.rules.match(_text(host) if host else None, _uri_path(_text(head.target)))
        if found is None:
            return Unidentified("no ingress rule matches")
        return Identified(self.dst_prefix + Path.utf8(*found))


def compose(identifiers: Sequence[Identifier], head: RequestHead) -> Identification:
    """Try ``identifiers`` in order; the first name wins, else the *last* reason is reported."""
    result: Identification = Unidentified("no identifier")
    for ident in identifiers:
        result = ident.identify(head)
        if isinstance(result, Identified):
            return result
    return result
