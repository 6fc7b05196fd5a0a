"""namerd's HTTP listener: h11 over trio, whole answers and endless streams.

One :class:`HttpServer` per interface (and one for namerd's admin). Requests are read whole, their
bodies bounded (:data:`MAX_BODY`, else ``413`` and the connection closes); a head must arrive
within :data:`READ_TIMEOUT` once begun (else ``408``); an idle connection closes after
:data:`IDLE_TIMEOUT`. A handler answers with :meth:`Responder.whole` or opens a chunked stream
(:meth:`Responder.stream`, the API's ``watch=true``) and writes documents to it until the client
goes away: while a handler runs, the connection is read too, so a client that closes ends its
stream (and whatever the handler was waiting on) at once; what it sends meanwhile is kept for the
next request up to :data:`PIPELINE_BYTES`, and a client that sends more is disconnected. Errors
inside a handler are answered 500 with one log line, never a traceback to the client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Awaitable, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from ..listener import Listener

__all__ = ["ApiRequest", "Responder", "HttpServer", "MAX_BODY", "PIPELINE_BYTES"]

log = logging.getLogger("pyproxy.namerd")

#: Largest request body (a dtab): larger ones are answered 413.
MAX_BODY = 1 << 20
#: A request must arrive whole within this long once its first byte has.
READ_TIMEOUT = 10.0
#: A connection without a request for this long is closed.
IDLE_TIMEOUT = 60.0
#: After refusing a request, what the client still sends is read for this long (at most this much).
LINGER_SECONDS, LINGER_BYTES = 2.0, 16 << 20
#: What a client may send (pipelined requests) while its request is being answered: one more request
#: of the largest size. The connection is read during an answer only to see the client leave; a
#: client that sends more than this during a watch, which can last for days, is dropped rather than
#: buffered without end.
PIPELINE_BYTES = MAX_BODY + (64 << 10)


class ApiRequest:
    """One request: method, path (percent-decoded segments are the handler's business), the first
    value of each query parameter, headers by lower-case name, the whole body."""

    __slots__ = ("method", "path", "query", "headers", "body")

    def __init__(self, method: str, target: str, headers: Dict[str, str], body: bytes) -> None:
        url = urlsplit(target)
        self.method = method
        self.path = url.path or "/"
        self.query: Dict[str, str] = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def flag(self, name: str) -> bool:
        """A boolean query parameter as Finagle's ``getBooleanParam`` reads it (``true`` or ``1``)."""
        v = self.query.get(name)
        return v is not None and v.strip().lower() in ("1", "true")


class _Stream:
    def __init__(self, responder: "Responder", chunked: bool) -> None:
        self._r = responder
        self._chunked = chunked

    async def send(self, data: bytes) -> None:
        if not data:
            return
        if self._chunked:  # framed here: h11's state machine per document costs more than the write
            await self._r._sock.send_all(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            await self._r._send(h11.Data(data=data))


class Responder:
    """How a handler answers: once whole, or as a stream."""

    def __init__(self, conn: h11.Connection, sock: trio.abc.Stream, method: str) -> None:
        self._conn = conn
        self._sock = sock
        self._head = method == "HEAD"
        self.status = 0

    async def _send(self, event: object) -> None:
        data = self._conn.send(event)  # type: ignore[arg-type]
        if data:
            await self._sock.send_all(data)

    async def whole(self, status: int, body: bytes = b"", ctype: Optional[str] = None,
                    headers: Optional[List[Tuple[str, str]]] = None) -> None:
        self.status = status
        fields = list(headers or [])
        if ctype is not None:
            fields.append(("Content-Type", ctype))
        if status not in (204, 304):
            fields.append(("Content-Length", str(len(body))))
        await self._send(h11.Response(status_code=status, headers=fields, reason=_reason(status)))
        if body and not self._head and status not in (204, 304):
            await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

    async def stream(self, status: int = 200, ctype: Optional[str] = None,
                     headers: Optional[List[Tuple[str, str]]] = None) -> _Stream:
        """Send the head of a chunked answer; the stream's :meth:`send` writes each document."""
        self.status = status
        fields = list(headers or [])
        if ctype is not None:
            fields.append(("Content-Type", ctype))
        fields.append(("Transfer-Encoding", "chunked"))
        await self._send(h11.Response(status_code=status, headers=fields, reason=_reason(status)))
        # h11 frames an HTTP/1.1 answer with chunks and an HTTP/1.0 one by closing (no header then)
        return _Stream(self, self._conn.their_http_version != b"1.0")

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


Handler = Callable[[ApiRequest, Responder], Awaitable[None]]


class HttpServer(Listener):
    """A listener whose every request goes to ``handler``; ``name`` is its readiness-line name.
    Draining it ends its watch streams too (they never end by themselves)."""

    def __init__(self, name: str, ip: str, port: int, handler: Handler, key: str = "") -> None:
        super().__init__(ip, port, key, self._connection, cancel_at_drain=True)
        self.name = name
        self.handler = handler
        self.connections = 0
        self.streams = 0  # streaming answers open now

    async def _read_request(self, conn: h11.Connection, sock: trio.abc.Stream) -> Optional[Tuple[h11.Request, bytes]]:
        """The next request and its whole body; None at the end of the connection (answered
        408, 413 or 400 first when that is why)."""
        first = True
        req: Optional[h11.Request] = None
        body = bytearray()
        deadline = trio.current_time() + IDLE_TIMEOUT
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_at(deadline):
                    data = await sock.receive_some(65536)
                    conn.receive_data(data)
                    if first and data:
                        first = False
                        deadline = trio.current_time() + READ_TIMEOUT
                    continue
                if not first:
                    await self._refuse(conn, sock, 408, b"request not received in time\n")
                return None
            if isinstance(event, h11.Request):
                req = event
                first = False
                deadline = min(deadline, trio.current_time() + READ_TIMEOUT)
                length = next((v for k, v in event.headers if k == b"content-length"), None)
                if length is not None and length.isdigit() and int(length) > MAX_BODY:
                    await self._refuse(conn, sock, 413, b"request body larger than %d bytes\n" % MAX_BODY)
                    return None
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    await self._refuse(conn, sock, 413, b"request body larger than %d bytes\n" % MAX_BODY)
                    return None
            elif isinstance(event, h11.EndOfMessage):
                assert req is not None
                return req, bytes(body)
            else:  # ConnectionClosed, PAUSED
                return None

    @staticmethod
    async def _refuse(conn: h11.Connection, sock: trio.abc.Stream, status: int, body: bytes) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            head = h11.Response(status_code=status, reason=_reason(status), headers=[("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "close")])
            await sock.send_all((conn.send(head) or b"") + (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b""))
            # A lingering close: what the client is still sending is read (and dropped) for a
            # moment, so the kernel does not reset the connection before the answer is read.
            await sock.send_eof()  # type: ignore[attr-defined]
            with trio.move_on_after(LINGER_SECONDS):
                drained = 0
                while drained < LINGER_BYTES:
                    data = await sock.receive_some(65536)
                    if not data:
                        break
                    drained += len(data)
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError, AttributeError):
            pass

    async def _connection(self, sock: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16384)
        self.connections += 1
        try:
            while True:
                try:
                    got = await self._read_request(conn, sock)
                except h11.RemoteProtocolError as exc:
                    await self._refuse(conn, sock, exc.error_status_hint, b"bad request\n")
                    return
                if got is None:
                    return
                head, body = got
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
                req = ApiRequest(head.method.decode("ascii", "replace"), head.target.decode("latin-1"), headers, body)
                responder = Responder(conn, sock, req.method)
                gone = await self._handle(req, responder, conn, sock)
                if gone or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, h11.ProtocolError):
            return
        finally:
            self.connections -= 1
            with trio.CancelScope(shield=True):
                await sock.aclose()

    async def _handle(self, req: ApiRequest, responder: Responder, conn: h11.Connection, sock: trio.abc.Stream) -> bool:
        """Run the handler while watching the connection; True when the client went away."""
        gone = False

        async def watch(scope: trio.CancelScope) -> None:
            nonlocal gone
            held = 0
            try:
                while True:
                    data = await sock.receive_some(65536)
                    if not data:
                        break
                    held += len(data)
                    if held > PIPELINE_BYTES:
                        log.warning("namerd %s: a client sent more than %d bytes during one answer (%s %s); closing its connection",
                                    self.name, PIPELINE_BYTES, req.method, req.path)
                        break
                    conn.receive_data(data)  # a pipelined request: kept for the next cycle
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, h11.RemoteProtocolError):
                pass
            gone = True
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            try:
                await self.handler(req, responder)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                gone = True
            except Exception as exc:  # noqa: BLE001 - one line in the log, a 500 to the client
                log.error("namerd %s: %s %s failed: %s: %s", self.name, req.method, req.path, type(exc).__name__, exc)
                if responder.status == 0:
                    await responder.whole(500, f"{type(exc).__name__}: {exc}\n".encode(), "text/plain")
                else:
                    gone = True
            nursery.cancel_scope.cancel()
        return gone
