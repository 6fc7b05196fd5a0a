"""Identifier configs (``routers[].identifier``): how a request becomes a name under ``dstPrefix``
(Linkerd 1.x sections 2.2 and 2.11). A router takes one identifier or a list tried in order.

The pre-1.0 kinds (``io.l5d.headerToken``, ``io.l5d.headerPath``, ``io.l5d.http.ingress``,
``io.l5d.h2.ingress``) are renamed by :mod:`.legacy`, with a warning, before typing.
"""

from __future__ import annotations

from typing import Annotated, Optional, Union

from msgspec import Meta

from .base import Plugin, Port, PosInt, check_host, check_path

__all__ = [
    "HeaderToken",
    "MethodAndHost",
    "PathIdentifier",
    "HeaderIdentifier",
    "StaticIdentifier",
    "Ingress",
    "H2HeaderToken",
    "H2HeaderPath",
    "HttpIdentifier",
    "H2Identifier",
    "DEFAULT_HTTP_IDENTIFIER",
    "DEFAULT_H2_IDENTIFIER",
    "LEGACY_KINDS",
]

HeaderName = Annotated[str, Meta(min_length=1)]

# Pre-1.0 kind -> 1.x kind (CHANGES.md 1.0.0).
LEGACY_KINDS = {
    "io.l5d.headerToken": "io.l5d.header.token",
    "io.l5d.headerPath": "io.l5d.header.path",
    "io.l5d.http.ingress": "io.l5d.ingress",
    "io.l5d.h2.ingress": "io.l5d.ingress",
}


class _Identifier(Plugin, kw_only=True):
    FAMILY = "identifier"


class HeaderToken(_Identifier, tag_field="kind", tag="io.l5d.header.token", kw_only=True):
    """``/<dstPrefix>/<header value as one segment>`` (HTTP default, on ``Host``)."""

    header: HeaderName = "Host"


class MethodAndHost(_Identifier, tag_field="kind", tag="io.l5d.methodAndHost", kw_only=True):
    """``/<dstPrefix>/1.1/<METHOD>/<host>[/<uri path>]``."""

    http_uri_in_dst: bool = False


class PathIdentifier(_Identifier, tag_field="kind", tag="io.l5d.path", kw_only=True):
    """``/<dstPrefix>/<first N URI path segments>``; ``consume`` strips them from the forwarded URI."""

    segments: PosInt = 1
    consume: bool = False


class HeaderIdentifier(_Identifier, tag_field="kind", tag="io.l5d.header", kw_only=True):
    """``/<dstPrefix>`` ++ the header value read as a path."""

    header: HeaderName = "l5d-name"


class StaticIdentifier(_Identifier, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """``/<dstPrefix>`` ++ ``path`` for every request."""

    path: str

    def __post_init__(self) -> None:
        check_path(self.path, "path")


class Ingress(_Identifier, tag_field="kind", tag="io.l5d.ingress", kw_only=True):
    """Kubernetes Ingress rules (through ``kubectl proxy`` at host:port); HTTP and h2."""

    namespace: Optional[str] = None  # None: all namespaces
    ingress_class_annotation: str = "linkerd"
    ignore_default_backends: bool = False
    host: str = "localhost"
    port: Port = 8001

    def __post_init__(self) -> None:
        check_host(self.host, "host")


class H2HeaderToken(_Identifier, tag_field="kind", tag="io.l5d.header.token", kw_only=True):
    """h2: ``/<dstPrefix>/<header value>`` (default on ``:authority``)."""

    header: HeaderName = ":authority"


class H2HeaderPath(_Identifier, tag_field="kind", tag="io.l5d.header.path", kw_only=True):
    """h2: the first ``segments`` segments of a path-valued header (gRPC: ``segments: 2``)."""

    header: HeaderName = ":path"
    segments: Optional[PosInt] = None  # None: the whole path


HttpIdentifier = Union[HeaderToken, MethodAndHost, PathIdentifier, HeaderIdentifier, StaticIdentifier, Ingress]
H2Identifier = Union[H2HeaderToken, H2HeaderPath, Ingress]

DEFAULT_HTTP_IDENTIFIER = HeaderToken()
DEFAULT_H2_IDENTIFIER = H2HeaderToken()
