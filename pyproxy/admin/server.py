"""The admin listener on trio: HTTP/1.1 keep-alive, whole small bodies, one handler call per request.

Owns the socket side only (bind, accept, read, write, drain); what each path answers is
:mod:`.routes`. Requests are small (bodies up to 1 MiB: dtabs, form posts) and answers are built
whole, so there is no streaming here. Slow clients are bounded as at the proxy's own listeners: a
connection idle for a minute closes, and once the first byte of a request has arrived its head and
body must arrive within ``admin.socketOptions.readTimeoutMs`` (10 s by default), else 408 and close
(:func:`read_request`, which the ``--workers`` supervisor's admin uses too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import trio

from .. import _impl
from ..errors import RemoteProtocolError
from ..listener import Listener
from ..http.message import Request, reason_phrase, serialize_response_head
from ..datapath.server import TIMEOUT_RESPONSE
from ..datapath.stream import Body, Conn
from .request import AdminRequest, Reply
from .routes import AdminRoutes

if TYPE_CHECKING:
    from ..telemetry import Telemetry
    from ..view import ProxyView

__all__ = ["AdminServer", "AdminRequest", "Reply", "read_request", "IDLE_TIMEOUT", "DEFAULT_READ_TIMEOUT"]

_LIMITS = (8192, 65536, 100)
_MAX_BODY = 1 << 20
#: An admin connection without a request for this long is closed.
IDLE_TIMEOUT = 60.0
#: Seconds a request may take to arrive once begun, unless ``admin.socketOptions.readTimeoutMs``
#: says otherwise (the default of the proxy's own listeners).
DEFAULT_READ_TIMEOUT = 10.0


async def read_request(conn: Conn, read_timeout: float) -> Optional[Tuple[Request, Body, bytes]]:
    """The request whose first bytes are in ``conn``'s buffer: its head, body reader and whole body
    (up to 1 MiB), within ``read_timeout`` seconds. Past that the client gets 408 (the answer of the
    proxy's own listeners to a slow head) and None is returned, as at the end of the stream.

    Raises:
        RemoteProtocolError: the head does not parse, or the stream ends inside the request.
    """
    with trio.move_on_after(read_timeout):
        t = await conn.read_head(_impl.parse_request_head, *_LIMITS)
        if t is None:
            return None
        req = Request.from_kernel(t)
        body = Body.of(conn, req, _LIMITS)
        data = bytearray()
        while len(data) <= _MAX_BODY:
            piece = await body.read()
            if not piece:
                break
            data += piece
        return req, body, bytes(data)
    await conn.send_all(TIMEOUT_RESPONSE)
    return None


class AdminServer(Listener):
    """The admin listener of a running proxy (``admin.ip``/``admin.port``)."""

    def __init__(self, view: "ProxyView", telemetry: "Telemetry", ip: str, port: int, read_timeout: float = DEFAULT_READ_TIMEOUT) -> None:
        super().__init__(ip, port, "$.admin", self._connection)
        self.read_timeout = read_timeout
        self.routes = AdminRoutes(view, telemetry)
        self.connections = 0
        self._idle: set = set()

    def drain(self) -> None:
        super().drain()
        for scope in list(self._idle):
            scope.cancel()

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = Conn(stream)
        self.connections += 1
        try:
            while True:
                with trio.CancelScope() as idle:  # drain() cancels it: a connection between requests
                    self._idle.add(idle)
                    try:
                        with trio.move_on_after(IDLE_TIMEOUT):
                            while not conn.buf:
                                if not await conn.fill():
                                    return
                    finally:
                        self._idle.discard(idle)
                if not conn.buf:
                    return  # idle too long, or draining
                got = await read_request(conn, self.read_timeout)
                if got is None:
                    return
                req, body, data = got
                method = req.method.decode("latin-1")
                areq = AdminRequest(method, req.target.decode("latin-1"), req, data)
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
