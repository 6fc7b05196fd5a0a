"""Listener configs (``routers[].servers[]``), one struct per protocol because the default port and
the protocol-specific keys differ (Linkerd 1.x sections 1.2.1, 2.5, 2.6, 2.11).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Tuple, Union

import msgspec
from msgspec import Meta

from .base import Base, NonNegInt, Port, PosInt, Session, SocketOptions, check_host, check_path, invalid
from .tls import ServerTls

__all__ = [
    "HttpServer",
    "H2Server",
    "ThriftServer",
    "ThriftMuxServer",
    "MuxServer",
    "ForwardedHeader",
    "SignedOverrides",
    "Labeler",
]

LOOPBACK = "127.0.0.1"  # Linkerd binds InetAddress.getLoopbackAddress unless told otherwise

# === the RFC 7239 Forwarded header (2.6) ===


class IpLabeler(Base, tag_field="kind", tag="ip", kw_only=True):
    """The endpoint's IP (``192.0.2.1``, ``"[2001:db8::1]"``)."""


class IpPortLabeler(Base, tag_field="kind", tag="ip:port", kw_only=True):
    """The endpoint's IP and port."""


class ConnectionRandomLabeler(Base, tag_field="kind", tag="connectionRandom", kw_only=True):
    """An obfuscated label fixed per connection."""


class RequestRandomLabeler(Base, tag_field="kind", tag="requestRandom", kw_only=True):
    """An obfuscated label drawn per request (the default)."""


class RouterLabeler(Base, tag_field="kind", tag="router", kw_only=True):
    """The obfuscated router label."""


class StaticLabeler(Base, tag_field="kind", tag="static", kw_only=True):
    """A fixed label, written ``_<label>``."""

    label: Annotated[str, Meta(min_length=1)]


Labeler = Union[IpLabeler, IpPortLabeler, ConnectionRandomLabeler, RequestRandomLabeler, RouterLabeler, StaticLabeler]
_REQUEST_RANDOM = RequestRandomLabeler()


class ForwardedHeader(Base, kw_only=True):
    """``addForwardedHeader``: add ``Forwarded: by=..;for=..`` (``{}`` enables it with defaults)."""

    by: Labeler = _REQUEST_RANDOM
    for_: Labeler = msgspec.field(default=_REQUEST_RANDOM, name="for")


# === signed overrides at an edge (a pyproxy extension) ===


class SignedOverrides(Base, kw_only=True):
    """``signedOverrides`` (a pyproxy extension, not in Linkerd 1.x): an edge (``clearContext``)
    accepts an ``l5d-dtab`` that carries a valid ``l5d-dtab-sig`` (HMAC-SHA256 with a key of
    ``keysFile``, re-read when it changes; pyproxy/http/signature.py has the format); other
    overrides are removed (``onInvalid: strip``) or refused with 403 (``refuse``), and counted."""

    keys_file: Annotated[str, Meta(min_length=1)]
    clock_skew_ms: NonNegInt = 30000  # a signature is valid until its exp plus this
    on_invalid: Literal["strip", "refuse"] = "strip"


# === servers ===


class _Server(Base, kw_only=True):
    """Keys every protocol's listener has. Subclasses set ``port`` (the protocol's default port)."""

    ip: str = LOOPBACK
    socket_options: Optional[SocketOptions] = None
    tls: Optional[ServerTls] = None
    max_concurrent_requests: Optional[PosInt] = None  # None: unlimited; excess rejected at once
    # pyproxy extension (not in Linkerd 1.x): client connections held at most (None: unlimited); a
    # connection accepted over the cap is closed at once, before anything is read from it
    max_connections: Optional[PosInt] = None
    announce: Tuple[str, ...] = ()  # concrete names registered through the router's announcers
    clear_context: bool = False  # untrusted callers: drop every l5d-* header both ways
    server_session: Session = Session()
    label: Optional[str] = None  # undocumented; defaults to the router label at run time
    timeout_ms: Optional[PosInt] = None  # undocumented per-request server timeout

    def __post_init__(self) -> None:
        check_host(self.ip, "ip")
        for i, name in enumerate(self.announce):
            check_path(name, f"announce[{i}]")


class HttpServer(_Server, kw_only=True):
    """An HTTP/1.1 listener."""

    port: Port = 4140
    add_forwarded_header: Optional[ForwardedHeader] = None
    timestamp_header: Optional[str] = None  # e.g. X-Request-Start
    max_call_depth: PosInt = 1000  # Via entries allowed before a proxy loop is assumed
    # pyproxy extension (not in Linkerd 1.x): an edge that accepts signed overrides
    signed_overrides: Optional[SignedOverrides] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.signed_overrides is not None and not self.clear_context:
            raise invalid("signedOverrides", "needs clearContext: true (a server without it accepts every override)")


class H2Server(_Server, kw_only=True):
    """An HTTP/2 listener (prior knowledge, h2c upgrade, or ALPN with TLS)."""

    port: Port = 4142
    add_forwarded_header: Optional[ForwardedHeader] = None
    max_call_depth: PosInt = 1000  # the docs say 10; Linkerd's code shares HTTP's 1000
    window_update_ratio: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.99
    header_table_bytes: Optional[NonNegInt] = None
    initial_stream_window_bytes: PosInt = 65535  # HTTP/2's initial window
    max_concurrent_streams_per_connection: PosInt = 1000
    max_frame_bytes: Annotated[int, Meta(ge=16384, le=16777215)] = 16384  # RFC 9113 bounds
    max_header_list_bytes: Optional[PosInt] = None  # the docs misspell it maxHeaderListByts


class ThriftServer(_Server, kw_only=True):
    """A thrift listener."""

    port: Port = 4114
    thrift_framed: bool = True


class ThriftMuxServer(_Server, kw_only=True):
    """A thriftmux listener (also accepts plain thrift)."""

    port: Port = 4144
    thrift_framed: bool = True


class MuxServer(_Server, kw_only=True):
    """A Finagle mux listener."""

    port: Port = 4141
