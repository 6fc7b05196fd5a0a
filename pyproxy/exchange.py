"""One request/response exchange with an upstream endpoint, streamed both ways with bounded memory.

The request head is re-serialised canonically (one framing field: the client's Content-Length, or
``Transfer-Encoding: chunked`` re-chunked by us). A body that is already buffered and small goes out
with the head in one write; anything else is pumped concurrently with reading the response, so an
upstream that answers early (413, 401) or asks for ``100-continue`` is relayed at once. The response
is relayed the same way. A connection is reused only when both messages were complete and framed;
after any framing problem both sides are closed (http-hardening §1.1).

A pooled connection that turns out dead before any response byte arrives is replaced by a fresh one
once, when the request body can still be re-sent (it was empty or fully buffered): the request never
reached the application, so this requeue is always safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple

import trio

from . import _impl
from . import headers as h
from .errors import RemoteProtocolError
from .http1 import LAST_CHUNK, Response, encode_chunk, error_response, no_body_status, serialize_request_head, serialize_response_head
from .stream import FIXED, Body, Conn

if TYPE_CHECKING:
    from .balance import Endpoint
    from .client import Client, EndpointPool
    from .http1 import Request
    from .router import Router, ServerRules

__all__ = ["Exchange"]

_RETRY_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, RemoteProtocolError)


class _UpstreamGone(Exception):
    """The upstream connection died before the response began."""


class Exchange:
    """Forward ``req`` to ``ep`` and relay the response to ``down``."""

    def __init__(
        self,
        router: "Router",
        req: "Request",
        body: Body,
        down: Conn,
        rules: "ServerRules",
        ep: "Endpoint[EndpointPool]",
        client: "Client",
        target: bytes,
        fields: List[Tuple[bytes, bytes]],
    ) -> None:
        self.router = router
        self.req = req
        self.body = body
        self.down = down
        self.rules = rules
        self.ep = ep
        self.client = client
        self.target = target
        self.fields = fields
        self.edge = rules.clear_context
        self.response_started = False
        self.request_sent = False
        self.client_error: Optional[BaseException] = None

    async def run(self, timeout: Optional[float]) -> bool:
        """Returns whether the client connection may carry another request."""
        ep = self.ep
        ep.pending += 1
        self.client.requests += 1
        try:
            if timeout is None:
                return await self._attempts()
            with trio.move_on_after(timeout):
                return await self._attempts()
            # total timeout or deadline
            if self.response_started:
                return False
            msg = f"exceeded {timeout:g} seconds waiting for {self.client.id} ({ep.host}:{ep.port})"
            await self._send_error(503, msg, keep=False)
            return False
        except _UpstreamGone as exc:
            if self.response_started:
                return False
            await self._send_error(502, str(exc), keep=False)
            return False
        except OSError as exc:  # connect failed
            await self._send_error(502, f"connection to {ep.host}:{ep.port} failed: {exc.strerror or exc}", keep=False, retryable=True)
            return False
        finally:
            ep.pending -= 1

    async def _send_error(self, status: int, message: str, keep: bool, retryable: bool = False) -> None:
        if self.response_started:
            return
        self.response_started = True
        p = self.router.params
        data = error_response(status, message, self.edge, p.max_err_response, p.max_head, keep, self.req)
        if retryable and not self.edge:
            data = data.replace(b"\r\n", b"\r\nl5d-retryable: true\r\n", 1)
        try:
            await self.down.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # === request ===

    def _head(self) -> bytes:
        req = self.req
        fields = self.fields
        if req.chunked:
            fields = fields + [(b"Transfer-Encoding", b"chunked")]
        elif req.content_length >= 0:
            fields = fields + [(b"Content-Length", b"%d" % req.content_length)]
        return serialize_request_head(req.method, self.target, req.minor, fields)

    def _buffered_body(self) -> Optional[bytes]:
        """The whole request body if it is already buffered and small, else None."""
        req, body = self.req, self.body
        if not req.has_body:
            return b""
        if body.framing == FIXED and not body.received and req.content_length <= self.router.params.stream_after:
            buf = self.down.buf
            if len(buf) >= req.content_length:
                return bytes(buf[: req.content_length])
        return None

    async def _attempts(self) -> bool:
        pool = self.ep.pool
        head = self._head()
        whole = self._buffered_body()
        conn = pool.take_idle()
        if whole is not None:
            if conn is not None:
                try:
                    return await self._once(conn, head, whole)
                except _UpstreamGone:
                    pass  # stale pooled connection: requeue once on a new one
            conn = await pool.connect()
            return await self._once(conn, head, whole)
        if conn is None:
            conn = await pool.connect()
        return await self._once(conn, head, None)

    async def _once(self, up: Conn, head: bytes, whole: Optional[bytes]) -> bool:
        pool = self.ep.pool
        reusable = False
        try:
            if whole is not None:
                try:
                    await up.send_all(head + whole)
                except _RETRY_ERRORS as exc:
                    raise _UpstreamGone(f"connection to {pool.host}:{pool.port} lost: {exc}") from None
                if whole:
                    # consume the buffered body from the client side
                    await self.body.drain(len(whole))
                keep_down, reusable = await self._relay(up, None)
                return keep_down
            try:
                await up.send_all(head)
            except _RETRY_ERRORS as exc:
                raise _UpstreamGone(f"connection to {pool.host}:{pool.port} lost: {exc}") from None
            # Errors of the relay are carried out of the nursery by hand: trio wraps anything that
            # escapes a nursery in an ExceptionGroup, and callers expect the plain exception.
            failure: Optional[BaseException] = None
            keep_down = False
            async with trio.open_nursery() as nursery:
                pump = _Pump(self, up)
                nursery.start_soon(pump.run, nursery.cancel_scope)
                try:
                    keep_down, reusable = await self._relay(up, pump)
                except (_UpstreamGone, OSError, RemoteProtocolError) as exc:
                    failure = exc
                if failure is not None or not pump.done:
                    nursery.cancel_scope.cancel()
                    keep_down = reusable = False
            if failure is not None and pump.error is None:
                raise failure
            if pump.error is not None and not self.response_started:
                await self._send_error(400, str(pump.error), keep=False)
                return False
            return keep_down and pump.done
        finally:
            pool.release(up, reusable)

    # === response ===

    async def _read_response(self, up: Conn) -> Response:
        p = self.router.params
        while True:
            try:
                t = await up.read_head(_impl.parse_response_head, p.max_head, p.max_headers)
            except RemoteProtocolError as exc:
                if not up.buf and exc.kind == "incomplete-head":
                    raise _UpstreamGone(f"{self.client.id}: connection closed before the response") from None
                raise _UpstreamGone(f"{self.client.id}: invalid response: {exc}") from None
            except _RETRY_ERRORS as exc:
                raise _UpstreamGone(f"{self.client.id}: connection lost: {exc}") from None
            if t is None:
                raise _UpstreamGone(f"{self.client.id}: connection closed before the response")
            resp = Response.from_kernel(t)
            if resp.status >= 200:
                return resp
            if resp.status == 101:
                raise _UpstreamGone(f"{self.client.id}: unexpected 101 Switching Protocols (upgrades are not proxied)")
            # interim 1xx: relay to HTTP/1.1 clients (100 only to those that asked for it)
            if self.req.minor == 1 and (resp.status != 100 or self.req.expect_continue):
                await self.down.send_all(serialize_response_head(1, resp.status, resp.reason, _response_fields(resp, self.edge, self.rules)))

    async def _relay(self, up: Conn, pump: Optional["_Pump"]) -> Tuple[bool, bool]:
        """Relay the response; returns (client connection reusable, upstream connection reusable)."""
        req = self.req
        p = self.router.params
        resp = await self._read_response(up)
        head_only = req.method == b"HEAD" or no_body_status(resp.status)
        fields = _response_fields(resp, self.edge, self.rules)
        blank = self.edge and h.get(resp.headers, h.ERR) is not None
        if head_only:
            rbody = Body(up, 0)
        else:
            rbody = Body.of(up, resp, (p.max_line, p.max_head, p.max_headers), until_close=True)
        keep_down = req.keep_alive
        if blank:
            fields = [kv for kv in fields if kv[0].lower() not in (b"content-length",)] + [(b"Content-Length", b"0")]
            mode = "blank"
        elif head_only:
            if resp.content_length >= 0:
                fields.append((b"Content-Length", b"%d" % resp.content_length))
            mode = "none"
        elif resp.content_length >= 0:
            fields.append((b"Content-Length", b"%d" % resp.content_length))
            mode = "fixed"
        elif req.minor == 1:
            fields.append((b"Transfer-Encoding", b"chunked"))
            mode = "chunked"
        else:
            mode = "close"
            keep_down = False
        if not keep_down:
            fields.append((b"Connection", b"close"))
        head = serialize_response_head(req.minor if req.minor == 0 else 1, resp.status, resp.reason, fields)
        self.response_started = True
        down = self.down
        # Small fixed body already received with the head: one write.
        if mode == "fixed" and len(up.buf) >= resp.content_length and resp.content_length <= 64 * 1024:
            n = resp.content_length
            await down.send_all(head + bytes(up.buf[:n]))
            del up.buf[:n]
            return keep_down, resp.keep_alive
        await down.send_all(head)
        try:
            if mode == "none":
                pass
            elif mode == "blank":
                if not await rbody.drain(1 << 20):
                    return keep_down, False
            else:
                while True:
                    piece = await rbody.read()
                    if not piece:
                        break
                    await down.send_all(encode_chunk(piece) if mode == "chunked" else piece)
                if mode == "chunked":
                    await down.send_all(LAST_CHUNK + _trailer_block(rbody.trailers, self.edge) + b"\r\n")
        except RemoteProtocolError:
            return False, False
        return keep_down, resp.keep_alive and rbody.framing != 3 and rbody.done


class _Pump:
    """Copies the request body from the client to the upstream, re-chunking when it is chunked."""

    def __init__(self, ex: Exchange, up: Conn) -> None:
        self.ex = ex
        self.up = up
        self.done = False
        self.error: Optional[BaseException] = None

    async def run(self, scope: trio.CancelScope) -> None:
        body = self.ex.body
        chunked = self.ex.req.chunked
        try:
            while True:
                piece = await body.read()
                if not piece:
                    break
                await self.up.send_all(encode_chunk(piece) if chunked else piece)
            if chunked:
                await self.up.send_all(LAST_CHUNK + _trailer_block(body.trailers, self.ex.edge) + b"\r\n")
            self.done = True
        except RemoteProtocolError as exc:
            self.error = exc
            scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            # The upstream stopped reading (it may already have answered); the relay decides.
            pass


def _response_fields(resp: Response, edge: bool, rules: "ServerRules") -> List[Tuple[bytes, bytes]]:
    """One pass: the response fields to relay (hop-by-hop, nominated, framing and, at an edge,
    ``l5d-*`` removed) with our ``Via`` appended to the received ones."""
    drop = h.HOP_BY_HOP
    if resp.connection:
        nominated = {t for t in resp.connection if t not in (b"close", b"keep-alive", b"content-length", b"via")}
        if nominated:
            drop = drop | nominated
    kept: List[Tuple[bytes, bytes]] = []
    via: List[bytes] = []
    for kv in resp.headers:
        name = kv[0].lower()
        if name in drop or name == b"content-length":
            continue
        if name == b"via":
            via.append(kv[1])
            continue
        if edge and h.is_l5d(name):
            continue
        kept.append(kv)
    kept.append((b"Via", b", ".join([*via, rules.via]) if via else rules.via))
    return kept


def _trailer_block(trailers: List[Tuple[bytes, bytes]], edge: bool) -> bytes:
    if not trailers:
        return b""
    kept = h.remove_hop_by_hop(trailers, (), edge=edge)
    kept = [kv for kv in kept if kv[0].lower() not in (b"content-length", b"host")]
    if edge:
        kept = h.remove_l5d(kept)
    return b"".join(b"%s: %s\r\n" % kv for kv in kept)
