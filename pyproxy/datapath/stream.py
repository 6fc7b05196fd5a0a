"""Buffered HTTP/1.1 connections on trio: reading heads and streaming bodies with bounded memory.

:class:`Conn` is a trio stream plus a receive buffer. :class:`Body` reads one message body in pieces
of at most :data:`PIECE` bytes, whatever its framing (none, Content-Length, chunked, until close), so a
body of any size passes through a constant amount of memory. Chunked bodies are de-chunked here and
re-chunked canonically by the writer; their trailers are parsed with the same field rules as heads.
"""

from __future__ import annotations

import socket as _socket
import time
from typing import Any, Callable, List, Optional, Tuple

import trio

from .. import _impl
from ..errors import RemoteProtocolError

__all__ = ["Conn", "Body", "PIECE", "IncompleteBody"]

#: Largest piece read or written at once: bounds per-request memory on the streaming path.
PIECE = 64 * 1024


class IncompleteBody(RemoteProtocolError):
    """The peer closed the connection before the declared end of a body."""

    def __init__(self, message: str = "connection closed before the end of the body") -> None:
        super().__init__(message, 400, "incomplete-body", -1)


#: Seconds a write may wait for the peer to read (``socketOptions.writeTimeoutMs`` overrides).
WRITE_TIMEOUT = 60.0


class Conn:
    """A non-blocking socket with a receive buffer; ``eof`` once the peer closed its sending side.

    I/O goes straight to the socket and waits with ``trio.lowlevel.wait_readable/wait_writable``
    only when the kernel says it would block: trio's ``SocketStream`` adds several layers of
    Python per call, which measured as most of the proxy's CPU per request (README, Benchmarks).
    Any trio stream that has a socket is accepted and taken over (``detach``).

    A peer that stops reading cannot hold a writer forever: a write that makes no progress for
    ``write_timeout`` seconds fails with ``BrokenResourceError`` (``socketOptions.writeTimeoutMs``;
    60 s by default, nginx's ``send_timeout``). ``sent`` counts the bytes written, so a handler can
    tell whether the current request was answered at all.
    """

    __slots__ = ("sock", "buf", "eof", "labels", "sent", "write_timeout", "born", "pool")

    def __init__(self, stream: object) -> None:
        if isinstance(stream, _socket.socket):
            sock = stream
        else:
            # take the descriptor over from trio's wrapper (it set TCP_NODELAY already)
            fd = stream.socket.detach()  # type: ignore[attr-defined]
            sock = _socket.socket(fileno=fd)
        sock.setblocking(False)
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.labels: Optional[dict] = None  # per-connection Forwarded labels, drawn on first use
        self.sent = 0
        self.write_timeout = WRITE_TIMEOUT
        self.born = time.monotonic()  # for connection lifetimes (clientSession/serverSession lifeTimeMs)
        self.pool: Any = None  # the EndpointPool that counts this upstream connection, if any

    @classmethod
    def adopted(cls, fd: int, received: bytes = b"", eof: bool = False) -> "Conn":
        """A connection handed over as a descriptor (by the lane) with the bytes it had received."""
        conn = cls(_socket.socket(fileno=fd))
        conn.buf += received
        conn.eof = eof
        return conn

    async def fill(self, max_bytes: int = PIECE) -> bool:
        """Receive more bytes into the buffer; False at end of stream."""
        if self.eof:
            return False
        sock = self.sock
        while True:
            try:
                data = sock.recv(max_bytes)
                break
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_head(self, parse: Callable[..., Optional[tuple]], *limits: int) -> Optional[tuple]:
        """Parse one head at the start of the buffer, receiving as needed.

        Returns:
            the kernel's tuple, with the head removed from the buffer; None at a clean end of stream
            (nothing buffered).

        Raises:
            RemoteProtocolError: invalid head, a limit exceeded, or end of stream inside a head.
        """
        while True:
            if self.buf:
                t = parse(self.buf, *limits)
                if t is not None:
                    del self.buf[: t[4]]
                    return t
            if not await self.fill():
                if self.buf:
                    raise RemoteProtocolError("connection closed inside a message head", 400, "incomplete-head", len(self.buf))
                return None

    async def send_all(self, data: bytes) -> None:
        sock = self.sock
        total = len(data)
        self.sent += total
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == total:
            return
        view = memoryview(data)
        while sent < total:
            with trio.move_on_after(self.write_timeout) as waited:
                await trio.lowlevel.wait_writable(sock)
            if waited.cancelled_caught:
                raise trio.BrokenResourceError(f"no write progress for {self.write_timeout:g} seconds (the peer stopped reading)")
            try:
                sent += sock.send(view[sent:])
            except BlockingIOError:
                pass

    def close(self) -> None:
        """Close now (another task waiting on this socket is woken with ClosedResourceError)."""
        sock = self.sock
        if sock.fileno() >= 0:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


NONE, FIXED, CHUNKED, CLOSE = range(4)
_DATA, _SIZE, _CRLF, _DONE = range(4)


class Body:
    """One message body, read piece by piece with :meth:`read` (``b""`` at the end).

    Args:
        conn: the connection the body arrives on.
        framing: ``NONE``, ``FIXED`` (``length`` bytes), ``CHUNKED`` or ``CLOSE`` (until end of stream).
        limits: ``(max_line, max_head, max_headers)`` for chunk lines and trailers.
    """

    __slots__ = ("conn", "framing", "length", "limits", "remaining", "state", "trailers", "received")

    def __init__(self, conn: Conn, framing: int, length: int = 0, limits: Tuple[int, int, int] = (4096, 8192, 100)) -> None:
        self.conn = conn
        self.framing = framing
        self.length = length
        self.limits = limits
        self.remaining = length if framing == FIXED else 0
        self.state = _DONE if framing == NONE or (framing == FIXED and length == 0) else (_SIZE if framing == CHUNKED else _DATA)
        self.trailers: List[Tuple[bytes, bytes]] = []
        self.received = 0

    @classmethod
    def of(cls, conn: Conn, msg: Any, limits: Tuple[int, int, int], *, until_close: bool = False) -> "Body":
        """The body of a parsed request or response (``until_close`` for a response without framing)."""
        if msg.chunked:
            return cls(conn, CHUNKED, 0, limits)
        if msg.content_length >= 0:
            return cls(conn, FIXED, msg.content_length, limits)
        return cls(conn, CLOSE if until_close else NONE, 0, limits)

    @property
    def done(self) -> bool:
        return self.state == _DONE

    async def read(self) -> bytes:
        """The next piece of the body; ``b""`` once it is complete."""
        while True:
            state = self.state
            if state == _DONE:
                return b""
            conn = self.conn
            buf = conn.buf
            if state == _DATA:
                if self.framing == CLOSE:
                    if not buf and not await conn.fill():
                        self.state = _DONE
                        return b""
                    piece = bytes(buf)
                    buf.clear()
                    self.received += len(piece)
                    return piece
                if not buf and not await conn.fill():
                    raise IncompleteBody()
                n = min(self.remaining, len(buf), PIECE)
                piece = bytes(buf[:n])
                del buf[:n]
                self.remaining -= n
                self.received += n
                if self.remaining == 0:
                    self.state = _CRLF if self.framing == CHUNKED else _DONE
                return piece
            if state == _SIZE:
                t = _impl.parse_chunk_line(buf, 0, self.limits[0]) if buf else None
                if t is None:
                    if not await conn.fill():
                        raise IncompleteBody()
                    continue
                size, end = t
                del buf[:end]
                if size:
                    self.remaining = size
                    self.state = _DATA
                    continue
                await self._read_trailers()
                return b""
            # _CRLF after chunk data
            if len(buf) < 2:
                if not await conn.fill():
                    raise IncompleteBody()
                continue
            if buf[0:2] != b"\r\n":
                raise RemoteProtocolError("chunk data not followed by CRLF", 400, "bad-chunk-terminator", 0)
            del buf[:2]
            self.state = _SIZE

    async def _read_trailers(self) -> None:
        conn = self.conn
        while True:
            t = _impl.parse_trailers(conn.buf, 0, self.limits[1], self.limits[2]) if conn.buf else None
            if t is not None:
                fields, end = t
                del conn.buf[:end]
                self.trailers = list(fields)
                self.state = _DONE
                return
            if not await conn.fill():
                raise IncompleteBody()

    async def drain(self, limit: int) -> bool:
        """Read and discard the rest of the body, up to ``limit`` bytes; True when it ended in time."""
        seen = 0
        while not self.done:
            piece = await self.read()
            seen += len(piece)
            if seen > limit:
                return False
        return True
