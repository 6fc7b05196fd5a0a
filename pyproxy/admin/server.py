"""The admin listener on trio: HTTP/1.1 keep-alive, whole small bodies, one handler call per request.

Owns the socket side only (bind, accept, read, write, drain); what each path answers is
:mod:`.routes`. Requests are small (bodies up to 1 MiB: dtabs, form posts) and answers are built
whole, so there is no streaming here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .. import _impl
from ..errors import ListenError, RemoteProtocolError
from ..http.message import Request, reason_phrase, serialize_response_head
from ..datapath.stream import Body, Conn
from .request import AdminRequest, Reply
from .routes import AdminRoutes

if TYPE_CHECKING:
    from ..telemetry import Telemetry
    from ..view import ProxyView

__all__ = ["AdminServer", "AdminRequest", "Reply"]

_LIMITS = (8192, 65536, 100)
_MAX_BODY = 1 << 20


class AdminServer:
    """The admin listener of a running proxy (``admin.ip``/``admin.port``)."""

    def __init__(self, view: "ProxyView", telemetry: "Telemetry", ip: str, port: int) -> None:
        self.ip = ip
        self.port = port
        self.routes = AdminRoutes(view, telemetry)
        self.listeners: list = []
        self.connections = 0
        self._idle: set = set()
        self._accepting = trio.CancelScope()

    @property
    def address(self) -> str:
        host, port = self.listeners[0].socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def bind(self) -> None:
        try:
            self.listeners = await trio.open_tcp_listeners(self.port, host=self.ip)
        except OSError as exc:
            raise ListenError(f"$.admin: cannot listen on {self.ip}:{self.port}: {exc.strerror or exc}") from None

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
