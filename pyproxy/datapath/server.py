"""HTTP/1.1 listeners on trio: accept, read heads strictly, hand requests to the router, keep-alive.

Per connection, requests are served in order (pipelined requests wait in the buffer). Slow clients
are bounded: a connection idle between requests closes after ``idle_timeout``; once the first byte
of a head has arrived the whole head must arrive within ``header_timeout`` (else 408 and close).
A small body (Content-Length up to ``streamAfterContentLengthKB``, no ``Expect: 100-continue``) is
read whole before the request is routed, within ``header_timeout`` of its head (else 408): only a
request whose body is at hand can be retried, and whether it is must not depend on how the client's
bytes happened to be split into TCP segments. Linkerd buffers such bodies too; so does the lane.

The idle timeout is enforced by one sweeper task per server, not by a deadline per connection:
moving a trio deadline costs a heap operation in Python, twice per keep-alive request, where a
dictionary store costs almost nothing. Idle connections are closed within ``idle_timeout`` plus
one sweep interval (a quarter of it, at most one second).
A head that does not parse is answered with the status the parser names (400, 414, 431, 501, 505)
and the connection is closed: after a framing error nothing more on it can be trusted.

A client that stops reading cannot hold a connection forever: a write that makes no progress for
``write_timeout`` seconds (``socketOptions.writeTimeoutMs``, 60 s by default) fails it, and the
connection closes (the lane does the same for the connections it holds).

Caps, shared with the lane: ``maxConnections`` (a pyproxy extension) bounds the client connections
a listener holds, in Python and in the lane (:meth:`Server.held`); a connection accepted over the
cap is closed at once, before anything is read from it. ``maxConcurrentRequests`` bounds the
requests in flight, Python's (``active``) plus the lane's on the same listener; a request over it
is answered 503 and its connection closed (the lane hands such a request to Python, which answers).

Graceful stop (:meth:`Server.drain`): listeners close at once, idle connections close, requests in
flight finish, and so do the requests already received whole behind them (pipelined) and a head
that was arriving; then each connection closes.
"""

from __future__ import annotations

import logging
import math
import socket as _socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional

import trio

from .. import _impl
from ..errors import ListenError, RemoteProtocolError
from ..http.message import Request, error_response
from ..routing.router import ServerRules
from .stream import WRITE_TIMEOUT, Body, Conn

#: What a client too slow with its head or small body gets, from the trio path and the lane alike:
#: a connection-level answer, so it never carries ``l5d-err`` (as a framing error would not).
TIMEOUT_RESPONSE = error_response(408, "timed out reading the request", True, 0, 0, False)
#: What a request gets when pyproxy itself fails unexpectedly (a bug): an answer, never silence.
INTERNAL_ERROR_RESPONSE = error_response(500, "internal proxy error", True, 0, 0, False)
CONNECT_MESSAGE = "CONNECT is not supported: pyproxy forwards HTTP requests and does not open tunnels"

if TYPE_CHECKING:
    from .accesslog import AccessLog
    from .forwarder import Forwarder
    from .attempt import Resume
    from .lane import LaneDriver

__all__ = ["Server", "ServerOptions"]

log = logging.getLogger("pyproxy.datapath.server")


@dataclass(frozen=True)
class ServerOptions:
    """A listener's socket and session options (``socketOptions``, ``serverSession``, ``timeoutMs``);
    times in seconds, None: unbounded."""

    no_delay: bool = True
    reuse_addr: bool = True
    keep_alive: Optional[bool] = None  # None: the OS default
    backlog: int = 1024
    write_timeout: float = WRITE_TIMEOUT
    life_time: Optional[float] = None  # serverSession.lifeTimeMs: closed after the response that passes it
    request_timeout: Optional[float] = None  # servers[].timeoutMs: 503 when serving a request takes longer


class Server:
    """One listener of a router (``routers[i].servers[j]``); the lane's connection sink for it."""

    def __init__(
        self,
        forwarder: "Forwarder",
        ip: str,
        port: int,
        rules: ServerRules,
        *,
        max_concurrent: Optional[int] = None,
        max_connections: Optional[int] = None,
        header_timeout: float = 10.0,
        idle_timeout: float = 300.0,
        reuse_port: bool = False,
        key: str = "",
        options: ServerOptions = ServerOptions(),
    ) -> None:
        self.forwarder = forwarder
        self.label = forwarder.label
        self.access_log: Optional["AccessLog"] = forwarder.observers.access_log
        self.ip = ip
        self.port = port
        self.rules = rules
        self.max_concurrent = max_concurrent
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.reuse_port = reuse_port
        self.options = options
        self.key = key or f"router {forwarder.label}"  # where the config asks for it: $.routers[i].servers[j]
        self.listeners: List[trio.SocketListener] = []
        self.active = 0
        self.connections = 0
        self.draining = False
        # idle connections: their cancel scope -> when they went idle (trio clock)
        self._idle: Dict[trio.CancelScope, float] = {}
        self._accepting = trio.CancelScope()
        self._nursery: Optional[trio.Nursery] = None
        self.lane: Optional["LaneDriver"] = None  # set (with lane_index) when this listener uses the lane
        self.lane_index: Optional[int] = None

    @property
    def address(self) -> str:
        sock = self.listeners[0].socket
        host, port = sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def bind(self) -> None:
        """Open the listening socket(s); port 0 picks a free port."""
        sock = trio.socket.socket(_socket.AF_INET6 if ":" in self.ip else _socket.AF_INET, _socket.SOCK_STREAM)
        try:
            if self.options.reuse_addr:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
            await sock.bind((self.ip, self.port))
            sock.listen(self.options.backlog)
        except OSError as exc:
            sock.close()
            raise ListenError(f"{self.key}: cannot listen on {self.ip}:{self.port}: {exc.strerror or exc}") from None
        self.listeners = [trio.SocketListener(sock)]
        # named by the bound port (port 0 asks the OS for one), as the live gauges are
        self.stats = self.forwarder.stats.server(self.ip, sock.getsockname()[1])

    async def serve(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        """Accept connections until :meth:`drain`; returns when every connection has finished."""
        async with trio.open_nursery() as nursery:
            # Connections live in this nursery; the accept loops in their own scope, which drain()
            # cancels, so stopping to accept never interrupts a request in flight.
            self._nursery = nursery
            with self._accepting:
                nursery.start_soon(self._sweep_idle)
                task_status.started()
                await trio.serve_listeners(self._connection, self.listeners, handler_nursery=nursery)
            for listener in self.listeners:
                await listener.aclose()
            # The lane may still hand connections over to this nursery until its last one ends.
            while self.lane is not None and self.lane.connections(self.lane_index):
                await trio.sleep(0.02)

    async def _sweep_idle(self) -> None:
        """Close connections idle for ``idle_timeout`` (runs in the accepting scope: stops with it)."""
        interval = min(max(self.idle_timeout / 4, 0.01), 1.0)
        while True:
            await trio.sleep(interval)
            expired = trio.current_time() - self.idle_timeout
            for scope, since in list(self._idle.items()):
                if since <= expired:
                    scope.cancel()

    def drain(self) -> None:
        """Stop accepting; close idle connections; let requests in flight finish."""
        self.draining = True
        self._accepting.cancel()
        for scope in list(self._idle):
            scope.cancel()
        if self.lane is not None:
            self.lane.drain(self.lane_index)

    def held(self) -> int:
        """Open client connections, in Python and in the lane."""
        return self.connections + (self.lane.connections(self.lane_index) if self.lane is not None else 0)

    def in_flight(self) -> int:
        """Requests in flight on this listener, in Python and in the lane (``maxConcurrentRequests``)."""
        return self.active + (self.lane.in_flight(self.lane_index) if self.lane is not None else 0)

    def _begin(self) -> None:
        self.active += 1
        if self.lane is not None and self.max_concurrent is not None:
            self.lane.set_active(self.lane_index, self.active)  # type: ignore[arg-type]

    def _end(self) -> None:
        self.active -= 1
        if self.lane is not None and self.max_concurrent is not None:
            self.lane.set_active(self.lane_index, self.active)  # type: ignore[arg-type]

    def spawn(self, conn: Conn, resume: Optional["Resume"] = None) -> None:
        """Serve a connection the lane handed over (with the exchange to continue, if any)."""
        try:
            assert self._nursery is not None
            self._nursery.start_soon(self._run_connection, conn, resume)
        except (AssertionError, RuntimeError):  # stopped meanwhile
            if resume is not None:
                resume.abandon(trio.current_time())
            conn.close()

    async def _connection(self, stream: trio.SocketStream) -> None:
        if self.max_connections is not None and self.held() >= self.max_connections:
            await stream.aclose()  # over maxConnections: closed before anything is read
            return
        conn = Conn(stream)
        opts = self.options
        if not opts.no_delay:  # trio turned TCP_NODELAY on
            conn.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 0)
        if opts.keep_alive is not None:
            conn.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, int(opts.keep_alive))
        conn.write_timeout = opts.write_timeout
        if self.lane is not None and not self.draining:
            self.lane.adopt(conn, self.lane_index)  # type: ignore[arg-type]
            return
        await self._run_connection(conn)

    async def _run_connection(self, conn: Conn, resume: Optional["Resume"] = None) -> None:
        self.connections += 1
        conn.write_timeout = self.options.write_timeout  # also for connections the lane hands back
        # One cancel scope per connection: the idle sweeper and drain() cancel it while the connection
        # is idle; its deadline is set only while a head arrives in pieces (the header timeout).
        scope = trio.CancelScope()
        mark = [conn.sent]  # bytes sent before the current request: it is unanswered while equal
        try:
            with scope:
                await self._serve_connection(conn, scope, mark, resume)
            if scope.cancelled_caught and conn.buf and not self.draining:
                await conn.send_all(TIMEOUT_RESPONSE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass  # the client went away
        except Exception:  # noqa: BLE001 - a bug must cost one connection, never the server
            log.exception("unexpected error on a connection of %s", self.label)
            if conn.sent == mark[0]:  # never silence: the request gets an answer
                with trio.move_on_after(1.0):
                    try:
                        await conn.send_all(INTERNAL_ERROR_RESPONSE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
                        pass
        finally:
            self._idle.pop(scope, None)
            self.connections -= 1
            await conn.aclose()

    async def _serve_within(self, req: Request, body: Body, conn: Conn) -> bool:
        """Serve ``req`` within the listener's ``timeoutMs``: past it, 503 (if nothing was sent yet) and close."""
        timeout = self.options.request_timeout
        mark = conn.sent
        with trio.move_on_after(timeout):  # type: ignore[arg-type]
            return await self.forwarder.serve(req, body, conn, self.rules, self.stats, None, self.lane_index)
        if conn.sent == mark:
            p = self.forwarder.params
            await conn.send_all(error_response(503, f"exceeded {timeout:g} seconds serving the request (timeoutMs)", self.rules.clear_context, p.max_err_response, p.max_head, False, req))
        return False

    async def _await_body(self, conn: Conn, length: int) -> bool:
        """Receive until a small body is buffered whole; False after a 408 (the client was too slow).

        At end of stream it returns True with the body incomplete: reading it then fails as it would
        have while streaming.
        """
        with trio.move_on_after(self.header_timeout):
            while len(conn.buf) < length and await conn.fill():
                pass
            return True
        await conn.send_all(TIMEOUT_RESPONSE)
        return False

    async def _serve_connection(self, conn: Conn, scope: trio.CancelScope, mark: List[int], resume: Optional["Resume"] = None) -> None:
        forwarder = self.forwarder
        p = forwarder.params
        limits = (p.max_line, p.max_head, p.max_headers)
        parse = _impl.parse_request_head
        idle = self._idle
        if resume is not None:  # the lane sent this request; its exchange continues here
            req = Request.from_kernel(parse(resume.head, *limits))
            body = Body.of(conn, req, limits)
            self._begin()
            try:
                keep = await forwarder.serve(req, body, conn, self.rules, self.stats, resume, self.lane_index)
            finally:
                self._end()
            if not keep or not body.done:
                return
        # Draining: the requests already received whole are still served (and a head that was
        # arriving when the drain began); the lane does the same.
        while not self.draining or _holds_request(conn.buf, parse, limits):
            mark[0] = conn.sent
            if not conn.buf:
                idle[scope] = trio.current_time()
                try:
                    if not await conn.fill():
                        return
                finally:
                    del idle[scope]
            try:
                t = parse(conn.buf, *limits)
                if t is None:  # a head split over several reads: bound the time it may take
                    scope.deadline = trio.current_time() + self.header_timeout
                    t = await conn.read_head(parse, *limits)
                    if t is None:
                        return
                    scope.deadline = math.inf
                else:
                    del conn.buf[: t[4]]
            except RemoteProtocolError as exc:
                await conn.send_all(error_response(exc.status, f"{exc}", self.rules.clear_context, p.max_err_response, p.max_head, False))
                return
            req = Request.from_kernel(t)
            if req.method == b"CONNECT":  # no tunnels (as Linkerd 1.x): what follows is not HTTP
                await conn.send_all(error_response(501, CONNECT_MESSAGE, self.rules.clear_context, p.max_err_response, p.max_head, False, req))
                self.stats.record(501, 0.0)
                return
            body = Body.of(conn, req, limits)
            if 0 < req.content_length <= p.stream_after and len(conn.buf) < req.content_length and not req.expect_continue:
                if not await self._await_body(conn, req.content_length):
                    return
            if self.max_concurrent is not None and self.in_flight() >= self.max_concurrent:
                await conn.send_all(error_response(503, "max concurrent requests exceeded", self.rules.clear_context, p.max_err_response, p.max_head, False, req))
                return
            life = self.options.life_time
            if life is not None and time.monotonic() - conn.born >= life:
                req.connection = (*req.connection, b"close")  # serverSession.lifeTimeMs: its last request
            self._begin()
            try:
                if self.options.request_timeout is None:
                    keep = await forwarder.serve(req, body, conn, self.rules, self.stats, None, self.lane_index)
                else:
                    keep = await self._serve_within(req, body, conn)
            finally:
                self._end()
            if not keep or not body.done:
                return
            if req.lane_ok and self.lane is not None and not self.draining:
                self.lane.adopt(conn, self.lane_index)  # type: ignore[arg-type]
                return  # the lane serves this connection from here


def _holds_request(buf: bytearray, parse: object, limits: tuple) -> bool:
    """Whether ``buf`` starts with a whole request head (or one that cannot parse: it gets its error answer)."""
    if not buf:
        return False
    try:
        return parse(buf, *limits) is not None  # type: ignore[operator]
    except RemoteProtocolError:
        return True
