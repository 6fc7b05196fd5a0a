"""A small HTTP/1.1 client for the control plane (the Kubernetes API, namerd): h11 over trio.

Control-plane calls are few, but a watch holds its connection for minutes and a node may watch a
thousand services, so each connection must cost little and end cleanly however its reader stops.
This client is h11 (a well-kept sans-IO HTTP/1.1 codec) over a trio stream, TLS when the URL is
``https``: :meth:`HttpClient.request` sends one request on a new connection and reads the whole,
bounded answer; :meth:`HttpClient.stream` yields the body of a long answer (a watch) piece by
piece, each piece within ``idle_timeout``, and always closes its connection when left.

Errors are :class:`ClientError` (unreachable, a malformed answer, too large, silent too long).
"""

from __future__ import annotations

import ssl
from typing import AsyncIterator, Dict, List, Optional, Tuple
from urllib.parse import urlencode, urlsplit

import h11
import trio

__all__ = ["ClientError", "HttpClient", "Response"]

#: Largest whole answer read by :meth:`HttpClient.request`.
MAX_BODY = 32 * 1024 * 1024
#: A connection (and a TLS handshake) must be made within this long.
CONNECT_TIMEOUT = 10.0


class ClientError(Exception):
    """The server could not be reached, or its answer could not be read."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: List[Tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: bytes) -> Optional[bytes]:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


class HttpClient:
    """Requests to one base URL (``http://host:port`` or ``https://...``)."""

    def __init__(self, base_url: str, ssl_context: Optional[ssl.SSLContext] = None, timeout: float = 30.0) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = url.hostname
        self.tls = url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        self.authority = url.netloc.encode("idna") if url.netloc else self.host.encode()
        self.ssl_context = ssl_context if ssl_context is not None else (ssl.create_default_context() if self.tls else None)
        self.timeout = timeout

    async def _connect(self) -> trio.abc.Stream:
        stream: Optional[trio.abc.Stream] = None
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                stream = await trio.open_tcp_stream(self.host, self.port)
                if self.tls:
                    tls = trio.SSLStream(stream, self.ssl_context, server_hostname=self.host)  # type: ignore[arg-type]
                    await tls.do_handshake()
                    stream = tls
                return stream
        except BaseException as exc:
            if stream is not None:  # connected, then the handshake failed or was cut: the socket goes now
                await trio.aclose_forcefully(stream)
            if isinstance(exc, (OSError, trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError)):
                cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
                raise ClientError(f"cannot reach {self.host}:{self.port}: {cause or type(cause).__name__}") from None
            raise

    def _request(self, method: str, path: str, params: Optional[Dict[str, str]], headers: Dict[str, str], body: Optional[bytes]) -> h11.Request:
        target = path + ("?" + urlencode(params) if params else "")
        fields = [("Host", self.authority.decode())] + list(headers.items())
        if body is not None:
            fields.append(("Content-Length", str(len(body))))
        return h11.Request(method=method, target=target, headers=fields)

    async def _send_head(self, conn: h11.Connection, stream: trio.abc.Stream, req: h11.Request, body: Optional[bytes]) -> None:
        data = conn.send(req) or b""
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)

    async def _next(self, conn: h11.Connection, stream: trio.abc.Stream, timeout: float) -> object:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            with trio.move_on_after(timeout) as waited:
                data = await stream.receive_some(65536)
            if waited.cancelled_caught:
                raise ClientError(f"nothing received from {self.host}:{self.port} for {timeout:g} seconds")
            conn.receive_data(data)

    async def request(self, method: str, path: str, params: Optional[Dict[str, str]] = None,
                      headers: Optional[Dict[str, str]] = None, body: Optional[bytes] = None) -> Response:
        """One request on its own connection; the whole answer (at most :data:`MAX_BODY`)."""
        stream = await self._connect()
        try:
            conn = h11.Connection(h11.CLIENT)
            await self._send_head(conn, stream, self._request(method, path, params, dict(headers or {}), body), body)
            head = await self._next(conn, stream, self.timeout)
            if not isinstance(head, h11.Response):
                raise ClientError(f"{method} {path}: no response")
            chunks = bytearray()
            while True:
                event = await self._next(conn, stream, self.timeout)
                if isinstance(event, h11.Data):
                    chunks += event.data
                    if len(chunks) > MAX_BODY:
                        raise ClientError(f"{method} {path}: answer larger than {MAX_BODY} bytes")
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
            return Response(head.status_code, list(head.headers), bytes(chunks))
        except h11.ProtocolError as exc:
            raise ClientError(f"{method} {path}: malformed answer: {exc}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientError(f"{method} {path}: connection lost: {exc or type(exc).__name__}") from None
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def stream(self, path: str, params: Optional[Dict[str, str]] = None, headers: Optional[Dict[str, str]] = None,
                     idle_timeout: float = 60.0) -> AsyncIterator[object]:
        """A long GET: first yields the :class:`Response` head (``body`` empty), then each piece of
        the body as bytes; returns at the end of the body. The connection closes when the caller
        stops iterating, however it stops (close the generator: ``aclose``)."""
        stream = await self._connect()
        try:
            conn = h11.Connection(h11.CLIENT)
            await self._send_head(conn, stream, self._request("GET", path, params, dict(headers or {}), None), None)
            head = await self._next(conn, stream, self.timeout)
            if not isinstance(head, h11.Response):
                raise ClientError(f"GET {path}: no response")
            yield Response(head.status_code, list(head.headers), b"")
            while True:
                event = await self._next(conn, stream, idle_timeout)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return
        except h11.ProtocolError as exc:
            raise ClientError(f"GET {path}: malformed answer: {exc}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientError(f"GET {path}: connection lost: {exc or type(exc).__name__}") from None
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()
