"""Fault containment of the exchange: whatever ends an attempt, its pick is done and its connection
goes back (pooled or closed).

The matrix cancels an exchange at each of its await points in turn (a trio instrument counts the
exchange task's steps and cancels its scope at step N, for N = 1, 2, ... until the exchange
finishes first), against a real origin on loopback, and then checks the invariants: no endpoint
left outstanding in the balancer, every pick ended exactly once in the client's metrics, no
upstream connection left open but unpooled, and every pooled connection fit for reuse.
"""

from __future__ import annotations

import socket
from typing import Any, List, Optional, Tuple

import pytest
import trio
import trio.abc

from pyproxy import _impl
from pyproxy.datapath.attempt import Attempt
from pyproxy.datapath.client import Client
from pyproxy.datapath.exchange import Exchange
from pyproxy.datapath.stream import Body, Conn
from pyproxy.http.message import Request
from pyproxy.metrics import Registry, RouterStats
from pyproxy.naming import Path
from pyproxy.naming.name import Address, AddrBound, AddrVar, Bound
from pyproxy.routing.policy import ClientPolicy, ServicePolicy
from pyproxy.routing.router import RouterParams, ServerRules

LIMITS = (4096, 8192, 100)


class _Origin:
    """A loopback HTTP/1.1 origin: answers each request head with ``status`` after ``delay`` seconds;
    counts connections open now."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.open = 0
        self.port = 0

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._conn, listeners)

    async def _conn(self, stream: trio.SocketStream) -> None:
        self.open += 1
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                if b"chunked" in head.lower():  # read the request body through its last chunk
                    while not buf.endswith(b"0\r\n\r\n"):
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        buf += data
                    buf = b""
                await trio.sleep(self.delay)
                await stream.send_all(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nok" % self.status)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.open -= 1
            await stream.aclose()


class _CancelAtStep(trio.abc.Instrument):
    """Cancels ``scope`` when ``task`` is about to take its ``n``-th step."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.steps = 0
        self.task: Optional[trio.lowlevel.Task] = None
        self.scope: Optional[trio.CancelScope] = None
        self.fired = False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task and self.scope is not None:
            self.steps += 1
            if self.steps == self.n:
                self.fired = True
                self.scope.cancel()


def _client(origins: List[_Origin], policy: ClientPolicy) -> Client:
    addr = AddrVar(AddrBound(tuple(Address("127.0.0.1", o.port) for o in origins)))
    client = Client(Bound(Path.read("/#/test/origin"), Path.read("/"), addr), policy)
    client.stats = RouterStats(Registry(), "r").client(client.id)
    return client


def _request(raw: bytes) -> Request:
    t = _impl.parse_request_head(raw, *LIMITS)
    assert t is not None
    return Request.from_kernel(t)


async def _one_exchange(client: Client, raw: bytes, body: bytes, service: ServicePolicy, instrument: _CancelAtStep,
                        timeout: Optional[float] = None) -> Tuple[bool, bytes]:
    """Runs one exchange of ``raw`` (+ ``body``) through ``client``, cancelled per ``instrument``;
    returns (cancelled, what the client received)."""
    a, b = socket.socketpair()
    down = Conn(a)
    b.setblocking(False)
    req = _request(raw)
    down.buf.extend(body)
    ex = Exchange(RouterParams("r", None, (), None), req, Body.of(down, req, LIMITS), down, ServerRules(),  # type: ignore[arg-type]
                  client, service, req.target, list(req.headers))
    instrument.task = trio.lowlevel.current_task()
    try:
        with trio.CancelScope() as scope:
            instrument.scope = scope
            await ex.run(timeout)
        instrument.scope = None
        got = b""
        try:
            while True:
                got += b.recv(65536)
        except BlockingIOError:
            pass
        return scope.cancelled_caught, got
    finally:
        instrument.scope = None
        down.close()
        b.close()


def _invariants(client: Client, origins: List[_Origin]) -> None:
    for ep in client.endpoints.values():
        assert client.balancer.pending(ep.slot) == 0, f"{ep} left outstanding"
        for conn, _ in ep.pool.idle:
            assert conn.sock.fileno() >= 0 and not conn.buf, "a pooled connection is not fit for reuse"
    assert client.stats.requests.value == client.requests, "every pick ends exactly once in the client's metrics"


SCENARIOS = {
    # name: (request head, body, origin statuses, service classifier)
    "get": (b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", b"", [200], "io.l5d.http.nonRetryable5XX"),
    "get retried on 503": (b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", b"", [503, 503], "io.l5d.http.retryableRead5XX"),
    "small post": (b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", b"hello", [200], "io.l5d.http.nonRetryable5XX"),
    "streamed chunked post": (b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n",
                              [200], "io.l5d.http.nonRetryable5XX"),
}


class _Cfg:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_cancelling_an_exchange_at_any_await_point_leaks_nothing(scenario: str, kernels: object) -> None:
    raw, body, statuses, classifier = SCENARIOS[scenario]

    async def main() -> int:
        origins = [_Origin(status) for status in statuses]
        async with trio.open_nursery() as nursery:
            for o in origins:
                await nursery.start(o.serve)
            client = _client(origins, ClientPolicy())
            service = ServicePolicy(_Cfg(response_classifier=_Cfg(kind=classifier)))
            n = 0
            while True:
                n += 1
                assert n < 500, "the exchange never finished"
                inst = _CancelAtStep(n)
                trio.lowlevel.add_instrument(inst)
                try:
                    cancelled, _ = await _one_exchange(client, raw, body, service, inst)
                finally:
                    trio.lowlevel.remove_instrument(inst)
                _invariants(client, origins)
                if not inst.fired and not cancelled:
                    break
            # connections the exchanges left are pooled (checked above) or closed: the origin sees
            # no more open ones than the pools hold
            with trio.fail_after(5):
                while sum(o.open for o in origins) > sum(len(ep.pool.idle) for ep in client.endpoints.values()):
                    await trio.sleep(0.01)
            client.close()
            nursery.cancel_scope.cancel()
        return n

    steps = trio.run(main)
    assert steps > 3  # the matrix really went through the exchange's await points


def test_a_total_timeout_frees_the_endpoint_so_p2c_keeps_picking_it(kernels: object) -> None:
    """The black-box symptom of a leaked pick: after a few timed-out requests to one endpoint,
    p2c never picks it again. Here every request times out on the slow endpoint, then the fast one
    answers, and both stay in rotation."""

    async def main() -> None:
        slow, fast = _Origin(delay=1.0), _Origin()
        async with trio.open_nursery() as nursery:
            await nursery.start(slow.serve)
            await nursery.start(fast.serve)
            client = _client([slow, fast], ClientPolicy(_Cfg(load_balancer=_Cfg(kind="p2c"))))
            service = ServicePolicy()
            for _ in range(20):
                await _one_exchange(client, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"", service, _CancelAtStep(0), timeout=0.02)
                _invariants(client, [slow, fast])
            slow_ep = next(ep for ep in client.endpoints.values() if ep.port == slow.port)
            assert client.balancer.pending(slow_ep.slot) == 0
            client.close()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_an_expired_deadline_sends_nothing_upstream(kernels: object) -> None:
    async def main() -> None:
        origin = _Origin()
        async with trio.open_nursery() as nursery:
            await nursery.start(origin.serve)
            client = _client([origin], ClientPolicy())
            _, got = await _one_exchange(client, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"", ServicePolicy(), _CancelAtStep(0), timeout=0.0)
            assert got.startswith(b"HTTP/1.1 503 ")
            assert client.requests == 0 and origin.open == 0  # no pick, no connection
            client.close()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_an_attempt_left_without_a_result_is_abandoned_and_its_connection_closed(kernels: object) -> None:
    async def main() -> None:
        origin = _Origin()
        async with trio.open_nursery() as nursery:
            await nursery.start(origin.serve)
            client = _client([origin], ClientPolicy())
            ep = next(iter(client.endpoints.values()))
            with Attempt.pick(client, trio.current_time()) as attempt:
                attempt.up = await ep.pool.connect()
                assert client.balancer.pending(ep.slot) == 1
            assert client.balancer.pending(ep.slot) == 0 and attempt.up is None
            assert client.stats.requests.value == 0  # abandoned: no result recorded
            client.close()
            nursery.cancel_scope.cancel()

    trio.run(main)
