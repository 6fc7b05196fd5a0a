"""One request forwarded upstream: attempts, retries within budget, and the response relayed back.

The request head is re-serialised canonically (one framing field: the client's Content-Length, or
``Transfer-Encoding: chunked`` re-chunked by us). Two paths:

* **Replayable** (no body, or a small body already buffered): each attempt sends head and body in one
  write and reads the response head. The response is classified (``service.responseClassifier``);
  a retryable failure is retried on a newly balanced endpoint while the service's retry budget
  allows, after its backoff. A connection that fails before the request was written (connect
  refused, a stale pooled connection) is requeued at once within the client's requeue budget.
* **Streaming** (a large or chunked body): one attempt; the body is pumped concurrently with reading
  the response, so an upstream that answers early (413, 401) or asks for ``100-continue`` is relayed
  at once. Such requests are never retried (they cannot be replayed).

Every attempt reports its latency and result to the client (balancer and failure accrual). An
attempt cut by ``requestAttemptTimeoutMs`` closes its upstream connection. A connection is reused
only when both messages were complete and framed; after any framing problem both sides are closed.

Client spans (``spans``, for Zipkin): one per attempt, as Finagle's client stack traces each call the
path stack's retries make, from the balancer's pick to the response head or the failure, with its
endpoint and status; requeues stay within their attempt's span (Finagle requeues below its tracing).
A retry goes with a trace id of its own: a new span id under the same parent in ``l5d-ctx-trace``.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, List, Optional, Tuple

import trio

from .. import _impl
from ..http import headers as h
from ..resilience.classify import RETRYABLE, SUCCESS
from .client import NoEndpoints, PoolExhausted
from ..errors import RemoteProtocolError
from ..http.context import TraceId
from ..http.message import LAST_CHUNK, Response, encode_chunk, error_response, no_body_status, serialize_request_head, serialize_response_head
from .attempt import EXPIRED_ATTEMPT, EXPIRED_CONNECT, EXPIRED_REQUEST, Attempt
from .stream import CLOSE, FIXED, Body, Conn

if TYPE_CHECKING:
    from ..resilience.endpoint import Endpoint
    from .client import Client
    from ..http.message import Request
    from .attempt import Resume
    from ..routing.policy import ServicePolicy
    from ..routing.router import RouterParams, ServerRules

__all__ = ["Exchange", "ClientSpan"]

#: One client span: (its trace id, None for the request's own, sent in ``l5d-ctx-trace``; start and
#: end on trio's clock; the status, 0 for none; the last endpoint tried; the failure's name or None).
ClientSpan = Tuple[Optional[TraceId], float, float, int, Optional["Endpoint"], Optional[str]]

_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError)
#: Hard cap on attempts per request, whatever the budgets say.
MAX_ATTEMPTS = 25
#: A failed response body up to this size is read and dropped so its connection can be reused.
DISCARD_LIMIT = 64 * 1024


class _AttemptFailed(Exception):
    """An attempt produced no response: ``written`` says whether the request may have been seen."""

    def __init__(self, message: str, written: bool, status: int = 502, failure: Optional[str] = None) -> None:
        super().__init__(message)
        self.written = written
        self.status = status
        self.failure = failure  # the failure's name in metrics, when not derived from the above


class Exchange:
    """Forward ``req`` through ``client`` and relay the response to ``down``."""

    def __init__(
        self,
        params: "RouterParams",
        req: "Request",
        body: Body,
        down: Conn,
        rules: "ServerRules",
        client: "Client",
        service: "ServicePolicy",
        target: bytes,
        fields: List[Tuple[bytes, bytes]],
        resume: Optional["Resume"] = None,
    ) -> None:
        self.params = params
        self.req = req
        self.body = body
        self.down = down
        self.rules = rules
        self.client = client
        self.service = service
        self.target = target
        self.fields = fields
        self.resume = resume  # a first attempt the lane made (its response comes from ``resume.up``)
        self.edge = rules.clear_context
        self.response_started = False
        self.attempts = 0
        self.retries = 0
        self.budget_exhausted = False
        self.status = 0  # the status answered downstream (0: none); for the metrics hooks
        self.length = -1  # the Content-Length answered downstream (-1: none or unframed); access log
        self.failure: Optional[str] = None  # what went wrong, for failures/<name>
        self.success: Optional[bool] = None  # the relayed response's classification (None: we answered)
        self.last_endpoint: Optional["Endpoint"] = None
        self.spans: List[ClientSpan] = []  # one per attempt that ended (see the module docstring)
        self.span: Optional[list] = None  # the attempt under way: [trace id or None, start, endpoint]
        self._trace: Optional[TraceId] = None  # the trace id of the current attempt, once not the request's

    async def run(self, timeout: Optional[float], why: Optional[str] = None) -> bool:
        """Returns whether the client connection may carry another request. ``timeout``: seconds
        left for the whole exchange (``totalTimeoutMs``, ``l5d-ctx-deadline``); none left means no
        attempt is made at all (or, for an attempt the lane began and saw the deadline pass, none
        more). ``why``: what the 503 says when the time runs out."""
        try:
            if timeout is None:
                return await self._run()
            if timeout > 0:
                with trio.move_on_after(timeout):
                    return await self._run()
            elif self.resume is not None and self.resume.expired == EXPIRED_REQUEST:
                self._expired_in_the_lane()
            if not self.response_started:
                self.failure = "RequestTimeout"
                await self._send_error(503, why or f"exceeded {timeout:g} seconds waiting for {self.client.id}", keep=False)
            return False
        except NoEndpoints as exc:
            self.failure = "NoBrokersAvailable"
            await self._send_error(502, f"{self.client.id}: {exc}", keep=False)
            return False
        finally:
            if self.resume is not None:  # the lane's attempt was never taken up: end it
                self.resume.abandon(trio.current_time())
                self.resume = None

    def _expired_in_the_lane(self) -> None:
        """The request's deadline passed during the lane's attempt: what the trio path's
        cancellation of that attempt does (its budgets got the request's deposit, the attempt fails
        as a RequestTimeout and its connection closes)."""
        resume, self.resume = self.resume, None
        assert resume is not None
        now = trio.current_time()
        self.service.budget.deposit(now)
        self.client.requeues.deposit(now)
        self.attempts = 1
        self.last_endpoint = resume.attempt.endpoint
        resume.attempt.done(now, ok=False, failure="RequestTimeout")
        resume.attempt.close_connection()

    async def _run(self) -> bool:
        whole = self._buffered_body()
        head = self._head()
        if whole is None:
            return await self._streaming(head)
        return await self._replayable(head, whole)

    async def _send_error(self, status: int, message: str, keep: bool, retryable: bool = False) -> None:
        if self.response_started:
            return
        self.response_started = True
        self.status = status
        p = self.params
        data = error_response(status, message, self.edge, p.max_err_response, p.max_head, keep, self.req)
        self.length = 0 if self.edge else min(len(message.encode("utf-8", "replace")), p.max_err_response)
        if retryable and not self.edge:
            data = data.replace(b"\r\n", b"\r\nl5d-retryable: true\r\n", 1)
        try:
            await self.down.send_all(data)
        except _IO_ERRORS:
            pass

    # === the request ===

    def _head(self) -> bytes:
        req = self.req
        fields = self.fields
        if req.chunked:
            fields = fields + [(b"Transfer-Encoding", b"chunked")]
        elif req.content_length >= 0:
            fields = fields + [(b"Content-Length", b"%d" % req.content_length)]
        return serialize_request_head(req.method, self.target, req.minor, fields)

    def _buffered_body(self) -> Optional[bytes]:
        """The whole request body if it is already buffered and small (replayable), else None."""
        req, body = self.req, self.body
        if not req.has_body:
            return b""
        if body.framing == FIXED and not body.received and req.content_length <= self.params.stream_after:
            buf = self.down.buf
            if len(buf) >= req.content_length:
                return bytes(buf[: req.content_length])
        return None

    # === replayable requests: attempts, requeues, retries ===

    async def _replayable(self, head: bytes, whole: bytes) -> bool:
        client, service, req = self.client, self.service, self.req
        if whole:
            await self.body.drain(len(whole))  # it is buffered: consume it from the client side now
        service.budget.deposit(trio.current_time())
        client.requeues.deposit(trio.current_time())
        delay = 0.0
        first, self.resume = self.resume, None
        while True:
            self.attempts += 1
            resumed = first
            if first is not None:  # the lane's attempt: its response is read here
                attempt, first = first.attempt, None
            else:
                attempt = Attempt.pick(client, trio.current_time())
            self.last_endpoint = attempt.endpoint
            self.begin_span(attempt)
            with attempt:
                try:
                    resp = await (self._resumed(resumed) if resumed is not None else self._attempt(attempt, head + whole))
                except _AttemptFailed as exc:
                    end = trio.current_time()
                    self.failure = exc.failure or ("ConnectionFailed" if not exc.written else ("RequestTimeout" if exc.status == 503 else "RequestFailed"))
                    attempt.done(end, ok=False, failure=self.failure)
                    if not exc.written and self.attempts < MAX_ATTEMPTS and client.requeues.try_withdraw(end):
                        client.stats.record_requeue()
                        continue  # the request never left: requeue at once, on a newly balanced endpoint
                    self.end_span(end, 0, self.failure)
                    verdict = service.classifier.classify(req.method, None)
                    if verdict == RETRYABLE and await self._may_retry():
                        delay = await self._backoff(delay)
                        head = self._retry_head()
                        continue
                    await self._send_error(exc.status, str(exc), keep=False, retryable=not exc.written)
                    return False
                end = trio.current_time()
                self.end_span(end, resp.status, None)
                verdict = self._classify(resp)
                attempt.done(end, ok=verdict == SUCCESS, status=resp.status)
                if verdict == RETRYABLE and await self._may_retry():
                    await self._discard_response(attempt, resp)
                    delay = await self._backoff(delay)
                    head = self._retry_head()
                    continue
                keep_down, reusable = await self._relay(attempt.up, resp, verdict == SUCCESS)  # type: ignore[arg-type]
                attempt.release(reusable)
                return keep_down

    def begin_span(self, attempt: Attempt) -> None:
        span = self.span
        if span is None:
            self.span = [self._trace, attempt.started, attempt.endpoint]
        else:  # a requeue: the same attempt, on another endpoint
            span[2] = attempt.endpoint

    def end_span(self, now: float, status: int, failure: Optional[str]) -> None:
        span, self.span = self.span, None
        if span is not None:
            self.spans.append((span[0], span[1], now, status, span[2], failure))

    def _retry_head(self) -> bytes:
        """The request head for a retry: a trace id of its own (a new span under the same parent)."""
        fields = self.fields
        for i, (name, value) in enumerate(fields):
            if name == b"l5d-ctx-trace":
                trace = TraceId.from_header(value)
                if trace is not None:
                    self._trace = TraceId(self.client.rng.getrandbits(64) or 1, trace.parent_id, trace.trace_id, trace.flags)
                    fields[i] = (name, self._trace.header())
                break
        return self._head()

    def _classify(self, resp: Response) -> str:
        """The service's response classifier on ``resp`` (``l5d-retryable: true`` upgrades a failure)."""
        retryable = (h.get(resp.headers, h.RETRYABLE) or b"").strip().lower() == b"true"
        return self.service.classifier.classify(self.req.method, resp.status, chunked_request=self.req.chunked, retryable_header=retryable)

    async def _may_retry(self) -> bool:
        if self.attempts >= MAX_ATTEMPTS:
            return False
        if not self.service.budget.try_withdraw(trio.current_time()):
            self.budget_exhausted = True
            return False
        self.retries += 1
        return True

    async def _backoff(self, previous: float) -> float:
        delay = self.service.backoff.next(previous, self.client.rng.random())
        if delay > 0:
            await trio.sleep(delay)
        return delay

    async def _attempt(self, attempt: Attempt, data: bytes) -> Response:
        """Send ``data`` on a pooled or new connection to the attempt's endpoint (the attempt holds
        it) and read the final response head, within ``requestAttemptTimeoutMs``."""
        ep = attempt.endpoint
        pool = ep.pool
        timeout = self.client.policy.attempt_timeout
        deadline = trio.current_time() + timeout if timeout else math.inf
        attempt.up = pool.take_idle()
        if attempt.up is not None:
            try:
                return await self._send_and_read(attempt, data, deadline, timeout)
            except _AttemptFailed as exc:
                if exc.status != 0:  # 0: a stale pooled connection, replace it once
                    raise
        try:
            with trio.fail_at(deadline):
                attempt.up = await pool.connect()
        except trio.TooSlowError:
            raise _AttemptFailed(f"connecting to {ep.host}:{ep.port} exceeded {timeout:g} seconds", written=False, status=503) from None
        except OSError as exc:
            raise _AttemptFailed(f"connection to {ep.host}:{ep.port} failed: {exc.strerror or exc}", written=False) from None
        except PoolExhausted as exc:
            raise _AttemptFailed(f"no connection available: {exc}", written=False, status=503, failure="TooManyWaiters") from None
        try:
            return await self._send_and_read(attempt, data, deadline, timeout)
        except _AttemptFailed as exc:
            if exc.status == 0:  # on a fresh connection nothing is stale: a plain failure
                exc.status = 502
            raise

    async def _resumed(self, resume: "Resume") -> Response:
        """The response of an attempt the lane sent (it already replaced a stale pooled connection),
        or the failure the trio path's attempt would have had where the lane stopped: its attempt
        timeout (while connecting: nothing was sent, the request is requeued), or the error that
        ended the upstream connection."""
        attempt = resume.attempt
        timeout = self.client.policy.attempt_timeout
        ep = attempt.endpoint
        if resume.expired == EXPIRED_CONNECT:
            attempt.close_connection()
            raise _AttemptFailed(f"connecting to {ep.host}:{ep.port} exceeded {timeout:g} seconds", written=False, status=503)
        if resume.expired == EXPIRED_ATTEMPT:
            attempt.close_connection()
            raise _AttemptFailed(f"exceeded {timeout:g} seconds waiting for a response from {self.client.id}", written=True, status=503)
        up = attempt.up
        assert up is not None
        if resume.up_error and not _holds_head(up.buf, self.params):
            attempt.close_connection()
            error = OSError(resume.up_error, os.strerror(resume.up_error))
            raise _AttemptFailed(f"{self.client.id}: connection lost: {error}", written=True, status=502)
        with trio.move_on_at(attempt.started + timeout if timeout else math.inf):
            try:
                return await self._read_response(up)
            except _AttemptFailed as exc:
                attempt.close_connection()
                if exc.status == 0:
                    exc.status = 502
                raise
        attempt.close_connection()
        raise _AttemptFailed(f"exceeded {timeout:g} seconds waiting for a response from {self.client.id}", written=True, status=503)

    async def _send_and_read(self, attempt: Attempt, data: bytes, deadline: float, timeout: Optional[float]) -> Response:
        up = attempt.up
        assert up is not None
        with trio.move_on_at(deadline):
            try:
                await up.send_all(data)
            except _IO_ERRORS as exc:
                attempt.close_connection()
                raise _AttemptFailed(f"{self.client.id}: connection lost while sending: {exc}", written=False, status=0) from None
            try:
                return await self._read_response(up)
            except _AttemptFailed:
                attempt.close_connection()
                raise
        attempt.close_connection()  # the attempt timed out: this connection is in an unknown state
        raise _AttemptFailed(f"exceeded {timeout:g} seconds waiting for a response from {self.client.id}", written=True, status=503)

    async def _discard_response(self, attempt: Attempt, resp: Response) -> None:
        """Drop a response we will not relay; keep its connection only if it ends quickly."""
        up = attempt.up
        assert up is not None
        if self.req.method == b"HEAD" or no_body_status(resp.status):
            attempt.release(resp.keep_alive)
            return
        rbody = Body.of(up, resp, self._limits(), until_close=True)
        try:
            with trio.move_on_after(1.0):
                if rbody.framing != CLOSE and await rbody.drain(DISCARD_LIMIT):
                    attempt.release(resp.keep_alive)
                    return
        except (RemoteProtocolError, *_IO_ERRORS):
            pass
        attempt.close_connection()

    # === streaming requests: one attempt, body pumped while the response is read ===

    async def _streaming(self, head: bytes) -> bool:
        """One attempt: the body is pumped while the response is read. ``requestAttemptTimeoutMs``
        bounds the time from the pick to the response head, as for a replayable request."""
        client = self.client
        self.attempts = 1
        attempt = Attempt.pick(client, trio.current_time())
        self.last_endpoint = ep = attempt.endpoint
        self.begin_span(attempt)
        timeout = client.policy.attempt_timeout
        deadline = attempt.started + timeout if timeout else math.inf
        with attempt:
            try:
                with trio.fail_at(deadline):
                    attempt.up = ep.pool.take_idle() or await ep.pool.connect()
                    await attempt.up.send_all(head)
            except (OSError, trio.TooSlowError, PoolExhausted, *_IO_ERRORS) as exc:
                timed_out = isinstance(exc, trio.TooSlowError)
                self.failure = "RequestTimeout" if timed_out else "TooManyWaiters" if isinstance(exc, PoolExhausted) else "ConnectionFailed"
                self.end_span(trio.current_time(), 0, self.failure)
                attempt.done(trio.current_time(), ok=False, failure=self.failure)
                if timed_out:
                    await self._send_error(503, f"exceeded {timeout:g} seconds waiting for {client.id}", keep=False)
                elif isinstance(exc, PoolExhausted):
                    await self._send_error(503, f"no connection available: {exc}", keep=False, retryable=True)
                else:
                    await self._send_error(502, f"connection to {ep.host}:{ep.port} failed: {exc}", keep=False, retryable=True)
                return False
            up = attempt.up
            failure: Optional[BaseException] = None
            keep_down = reusable = False
            pump = _Pump(self, up)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump.run, nursery.cancel_scope)
                try:
                    with trio.fail_at(deadline):
                        resp = await self._read_response(up)
                    self.end_span(trio.current_time(), resp.status, None)
                    ok = self._classify(resp) == SUCCESS
                    attempt.done(trio.current_time(), ok=ok, status=resp.status)
                    keep_down, reusable = await self._relay(up, resp, ok)
                except trio.TooSlowError:
                    failure = _AttemptFailed(f"exceeded {timeout:g} seconds waiting for a response from {client.id}", written=True, status=503)
                    self.failure = "RequestTimeout"
                    self.end_span(trio.current_time(), 0, self.failure)
                    attempt.done(trio.current_time(), ok=False, failure=self.failure)
                except (_AttemptFailed, OSError, RemoteProtocolError) as exc:
                    failure = exc
                    self.failure = "RequestFailed"
                    self.end_span(trio.current_time(), 0, self.failure)
                    attempt.done(trio.current_time(), ok=False, failure=self.failure)
                if failure is not None or not pump.done:
                    nursery.cancel_scope.cancel()
                    keep_down = reusable = False
            attempt.release(reusable)
        if pump.client_gone:
            return False
        if pump.error is not None and not self.response_started:
            await self._send_error(400, str(pump.error), keep=False)
            return False
        if failure is not None and not self.response_started:
            await self._send_error(getattr(failure, "status", 502) or 502, str(failure), keep=False)
            return False
        return keep_down and pump.done

    # === the response ===

    def _limits(self) -> Tuple[int, int, int]:
        p = self.params
        return (p.max_line, p.max_head, p.max_headers)

    async def _read_response(self, up: Conn) -> Response:
        p = self.params
        while True:
            try:
                t = await up.read_head(_impl.parse_response_head, p.max_head, p.max_headers)
            except RemoteProtocolError as exc:
                if exc.kind == "incomplete-head" and not up.buf:
                    raise _AttemptFailed(f"{self.client.id}: connection closed before the response", written=True, status=0) from None
                raise _AttemptFailed(f"{self.client.id}: invalid response: {exc}", written=True) from None
            except _IO_ERRORS as exc:
                raise _AttemptFailed(f"{self.client.id}: connection lost: {exc}", written=True, status=0) from None
            if t is None:
                raise _AttemptFailed(f"{self.client.id}: connection closed before the response", written=True, status=0)
            resp = Response.from_kernel(t)
            if resp.status >= 200:
                return resp
            if resp.status == 101:
                raise _AttemptFailed(f"{self.client.id}: unexpected 101 Switching Protocols (upgrades are not proxied)", written=True)
            # interim 1xx: relay to HTTP/1.1 clients (100 only to those that asked for it)
            if self.req.minor == 1 and (resp.status != 100 or self.req.expect_continue):
                await self.down.send_all(serialize_response_head(1, resp.status, resp.reason, _response_fields(resp, self.edge, self.rules)))

    async def _relay(self, up: Conn, resp: Response, success: bool) -> Tuple[bool, bool]:
        """Relay the response (classified ``success`` or not); returns (client connection reusable,
        upstream connection reusable)."""
        req = self.req
        head_only = req.method == b"HEAD" or no_body_status(resp.status)
        self.success = success
        fields = _response_fields(resp, self.edge, self.rules, success)
        blank = self.edge and h.get(resp.headers, h.ERR) is not None
        rbody = Body(up, 0) if head_only else Body.of(up, resp, self._limits(), until_close=True)
        keep_down = req.keep_alive
        if blank:
            fields.append((b"Content-Length", b"0"))
            mode = "blank"
            self.length = 0
        elif head_only:
            if resp.content_length >= 0:
                fields.append((b"Content-Length", b"%d" % resp.content_length))
            mode = "none"
        elif resp.content_length >= 0:
            fields.append((b"Content-Length", b"%d" % resp.content_length))
            mode = "fixed"
            self.length = resp.content_length
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
        self.status = resp.status
        down = self.down
        if mode == "fixed" and len(up.buf) >= resp.content_length and resp.content_length <= 64 * 1024:
            n = resp.content_length  # a small body that came with the head: one write
            await down.send_all(head + bytes(up.buf[:n]))
            del up.buf[:n]
            return keep_down, resp.keep_alive
        await down.send_all(head)
        try:
            if mode == "blank":
                if not await rbody.drain(1 << 20):
                    return keep_down, False
            elif mode != "none":
                while True:
                    piece = await rbody.read()
                    if not piece:
                        break
                    await down.send_all(encode_chunk(piece) if mode == "chunked" else piece)
                if mode == "chunked":
                    await down.send_all(LAST_CHUNK + _trailer_block(rbody.trailers, self.edge) + b"\r\n")
        except RemoteProtocolError:
            return False, False
        return keep_down, resp.keep_alive and rbody.framing != CLOSE and rbody.done


class _Pump:
    """Copies the request body from the client to the upstream, re-chunking when it is chunked."""

    def __init__(self, ex: Exchange, up: Conn) -> None:
        self.ex = ex
        self.up = up
        self.done = False
        self.error: Optional[BaseException] = None
        self.client_gone = False  # the client's connection failed mid-body (reset): nobody to answer

    async def run(self, scope: trio.CancelScope) -> None:
        body = self.ex.body
        chunked = self.ex.req.chunked
        try:
            while True:
                try:
                    piece = await body.read()
                except _IO_ERRORS:
                    # Without this the attempt would wait for a response the upstream, itself waiting
                    # for the rest of the body, never sends: both connections held for ever.
                    self.client_gone = True
                    scope.cancel()
                    return
                if not piece:
                    break
                await self.up.send_all(encode_chunk(piece) if chunked else piece)
            if chunked:
                await self.up.send_all(LAST_CHUNK + _trailer_block(body.trailers, self.ex.edge) + b"\r\n")
            self.done = True
        except RemoteProtocolError as exc:
            self.error = exc
            scope.cancel()
        except _IO_ERRORS:
            pass  # the upstream stopped reading (it may already have answered); the relay decides


def _response_fields(resp: Response, edge: bool, rules: "ServerRules", success: Optional[bool] = None) -> List[Tuple[bytes, bytes]]:
    """One pass: the response fields to relay (hop-by-hop, nominated, framing and, at an edge,
    ``l5d-*`` removed) with our ``Via`` appended to the received ones. A final response gets
    ``l5d-success-class``, this router's classification (``success``), in place of any received
    one, as Linkerd's path stack sets it (not at an edge: no ``l5d-*`` field leaves one)."""
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
        if (edge and h.is_l5d(name)) or name == h.SUCCESS_CLASS:
            continue
        kept.append(kv)
    if success is not None and not edge:
        kept.append((h.SUCCESS_CLASS, b"1.0" if success else b"0.0"))
    kept.append((b"Via", b", ".join([*via, rules.via]) if via else rules.via))
    return kept


def _holds_head(buf: bytearray, params: "RouterParams") -> bool:
    """Whether ``buf`` starts with a whole response head (or one that cannot parse)."""
    try:
        return bool(buf) and _impl.parse_response_head(buf, params.max_head, params.max_headers) is not None
    except RemoteProtocolError:
        return True


def _trailer_block(trailers: List[Tuple[bytes, bytes]], edge: bool) -> bytes:
    if not trailers:
        return b""
    kept = h.remove_hop_by_hop(trailers, (), edge=edge)
    kept = [kv for kv in kept if kv[0].lower() not in (b"content-length", b"host")]
    if edge:
        kept = h.remove_l5d(kept)
    return b"".join(b"%s: %s\r\n" % kv for kv in kept)
