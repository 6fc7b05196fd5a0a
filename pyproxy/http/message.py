"""HTTP/1.1 messages as the proxy sees them: parsed heads, and their canonical serialisation.

The kernels (``parse_request_head`` / ``parse_response_head``) do the strict parsing and the framing
checks; this module wraps their tuples into :class:`Request` and :class:`Response` and writes heads
back out *canonically*: the start line and the fields the proxy decided to keep, CRLF everywhere,
exactly one framing field. Client bytes are never forwarded verbatim (http-hardening §1.1).
Sans-IO.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import List, Optional, Sequence, Tuple

from . import headers as h

__all__ = [
    "Request",
    "Response",
    "serialize_request_head",
    "serialize_response_head",
    "encode_chunk",
    "LAST_CHUNK",
    "reason_phrase",
    "no_body_status",
    "error_response",
]

LAST_CHUNK = b"0\r\n"


class Request:
    """A parsed request head (the body is streamed separately)."""

    __slots__ = (
        "method",
        "target",
        "minor",
        "headers",
        "content_length",
        "chunked",
        "connection",
        "expect_continue",
        "host",
        "_method_str",
        "lane_ok",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        minor: int,
        headers: List[Tuple[bytes, bytes]],
        content_length: int,
        chunked: bool,
        connection: Tuple[bytes, ...],
        expect_continue: bool,
        host: Optional[bytes],
    ) -> None:
        self.method = method
        self.target = target
        self.minor = minor
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.connection = connection
        self.expect_continue = expect_continue
        self.host = host
        self.lane_ok = False  # the router installed this request's route in the lane

    @classmethod
    def from_kernel(cls, t: tuple) -> "Request":
        method, target, minor, headers, _len, cl, chunked, conn, expect, host = t
        return cls(method, target, minor, list(headers), cl, chunked, conn, expect, host)

    # --- what identifiers read (pyproxy.routing.identifiers.RequestHead) ---

    @property
    def version(self) -> str:
        return "HTTP/1.1" if self.minor == 1 else "HTTP/1.0"

    def header(self, name: str) -> Optional[bytes]:
        return h.get(self.headers, name.lower().encode("latin-1"))

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    @property
    def keep_alive(self) -> bool:
        """Whether the client allows another request on this connection (HTTP/1.0: never, RFC 9112 §9.3)."""
        return self.minor == 1 and b"close" not in self.connection

    def __repr__(self) -> str:
        return f"Request({self.method!r} {self.target!r} HTTP/1.{self.minor})"


class Response:
    """A parsed response head from an upstream."""

    __slots__ = ("minor", "status", "reason", "headers", "content_length", "chunked", "connection")

    def __init__(
        self,
        minor: int,
        status: int,
        reason: bytes,
        headers: List[Tuple[bytes, bytes]],
        content_length: int,
        chunked: bool,
        connection: Tuple[bytes, ...],
    ) -> None:
        self.minor = minor
        self.status = status
        self.reason = reason
        self.headers = headers
        self.content_length = content_length
        self.chunked = chunked
        self.connection = connection

    @classmethod
    def from_kernel(cls, t: tuple) -> "Response":
        minor, status, reason, headers, _len, cl, chunked, conn = t
        return cls(minor, status, reason, list(headers), cl, chunked, conn)

    @property
    def keep_alive(self) -> bool:
        if self.minor == 0:
            return b"keep-alive" in self.connection
        return b"close" not in self.connection


def serialize_request_head(method: bytes, target: bytes, minor: int, fields: Sequence[Tuple[bytes, bytes]]) -> bytes:
    parts = [b"%s %s HTTP/1.%d\r\n" % (method, target, minor)]
    parts.extend(b"%s: %s\r\n" % kv for kv in fields)
    parts.append(b"\r\n")
    return b"".join(parts)


def serialize_response_head(minor: int, status: int, reason: bytes, fields: Sequence[Tuple[bytes, bytes]]) -> bytes:
    parts = [b"HTTP/1.%d %d %s\r\n" % (minor, status, reason)]
    parts.extend(b"%s: %s\r\n" % kv for kv in fields)
    parts.append(b"\r\n")
    return b"".join(parts)


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def no_body_status(status: int) -> bool:
    """1xx, 204 and 304 responses never have a body (RFC 9112 §6.3)."""
    return status < 200 or status in (204, 304)


def error_response(
    status: int,
    message: str,
    edge: bool,
    max_body: int,
    max_header: int,
    keep: bool,
    req: Optional[Request] = None,
    public: bool = False,
) -> bytes:
    """A proxy-generated error as Linkerd writes it: a text/plain body and ``l5d-err`` (the message
    form-URL-encoded, cut to ``max_header``); at an edge, neither (internal text must not leak),
    except the body of a ``public`` message (one about the request itself, such as why its signed
    override was refused)."""
    fields: List[Tuple[bytes, bytes]] = []
    payload = b""
    if not edge or public:
        payload = message.encode("utf-8", "replace")[:max_body]
    if not edge:
        fields.append((b"l5d-err", h.err_header_value(message, max_header)))
    fields.append((b"Content-Type", b"text/plain"))
    fields.append((b"Content-Length", b"%d" % len(payload)))
    if not keep:
        fields.append((b"Connection", b"close"))
    minor = req.minor if req is not None else 1
    head = serialize_response_head(minor, status, reason_phrase(status), fields)
    if req is not None and req.method == b"HEAD":
        return head
    return head + payload
