"""The admin listener on trio: HTTP/1.1 keep-alive, whole small bodies, one handler call per request.

Owns the socket side only (bind, accept, read, write, drain); what each path answers is
:mod:`.routes`. Requests are small (bodies up to 1 MiB: dtabs, form posts) and answers are built
whole, so there is no streaming here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

import trio

from .. import _impl
from ..errors import RemoteProtocolError
from ..http.message import Request, reason_phrase, serialize_response_head
from ..datapath.stream import Body, Conn

if TYPE_CHECKING:
    from ..runtime.app import App

__all__ = ["AdminServer", "AdminRequest", "Reply"]

_LIMITS = (8192, 65536, 100)
_MAX_BODY = 1 << 20


class AdminRequest:
    """One admin request: method, path, first value of each query parameter, headers, body."""

    __slots__ = ("method", "path", "query", "raw", "body")

    def __init__(self, method: str, target: str, raw: Optional[Request] = None, body: bytes = b"") -> None:
        url = urlsplit(target)
        self.method = method
        self.path = url.path or "/"
        self.query: Dict[str, str] = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.raw = raw
        self.body = body

    def header(self, name: str) -> Optional[str]:
        if self.raw is None:
            return None
        v = self.raw.header(name)
        return None if v is None else v.decode("latin-1")

    def flag(self, name: str) -> bool:
        """A boolean query parameter as Finagle reads it (``true``/``1``; present and empty too)."""
        v = self.query.get(name)
        return v is not None and v.lower() in ("", "1", "true", "yes")


class Reply:
    __slots__ = ("status", "ctype", "body", "headers")

    def __init__(self, status: int, ctype: bytes = b"text/plain; charset=utf-8", body: bytes = b"", headers: Optional[List[tuple]] = None) -> None:
        self.status = status
        self.ctype = ctype
        self.body = body
        self.headers = headers or []


class AdminServer:
    """The admin listener of an :class:`~pyproxy.runtime.app.App` (``admin.ip``/``admin.port``)."""

    def __init__(self, app: "App", ip: str, port: int) -> None:
        from .routes import AdminRoutes

        self.app = app
        self.ip = ip
        self.port = port
        self.routes = AdminRoutes(app)
        self.listeners: list = []
        self.connections = 0
        self._idle: set = set()
        self._accepting = trio.CancelScope()

    @property
    def address(self) -> str:
        host, port = self.listeners[0].socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def bind(self) -> None:
        self.listeners = await trio.open_tcp_listeners(self.port, host=self.ip)

    async def serve(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            # Connections live in this nursery; the accept loops in their own scope, which drain()
            # cancels, so stopping to accept never interrupts a request in flight.
            with self._accepting:
                task_status.started()
                await trio.serve_listeners(self._connection, self.listeners, handler_nursery=nursery)
            for listener in self.listeners:
                await listener.aclose()

    def drain(self) -> None:
        self._accepting.cancel()
        for scope in list(self._idle):
            scope.cancel()

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = Conn(stream)
        self.connections += 1
        try:
            while True:
                with trio.CancelScope() as idle:
                    self._idle.add(idle)
                    try:
                        with trio.move_on_after(60):
                            t = await conn.read_head(_impl.parse_request_head, *_LIMITS)
                    finally:
                        self._idle.discard(idle)
                if idle.cancelled_caught or t is None:
                    return
                req = Request.from_kernel(t)
                body = Body.of(conn, req, _LIMITS)
                data = bytearray()
                while len(data) <= _MAX_BODY:
                    piece = await body.read()
                    if not piece:
                        break
                    data += piece
                method = req.method.decode("latin-1")
                areq = AdminRequest(method, req.target.decode("latin-1"), req, bytes(data))
                reply = self.routes.dispatch(areq)
                fields = [(b"Content-Type", reply.ctype), (b"Content-Length", b"%d" % len(reply.body))]
                fields += reply.headers
                keep = req.keep_alive and body.done
                if not keep:
                    fields.append((b"Connection", b"close"))
                payload = b"" if method == "HEAD" else reply.body
                await conn.send_all(serialize_response_head(req.minor, reply.status, reason_phrase(reply.status), fields) + payload)
                if not keep:
                    return
        except (RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return
        finally:
            self.connections -= 1
            await conn.aclose()
