"""The Python side of the lane, the native data path (``native/src/lane``, ``native/src/py/lane.rs``).

With the native kernels, a listener whose router qualifies hands each accepted connection to the
lane. The lane forwards, entirely in Rust, the requests it can take whole (no body or a small one
already received, a route installed for their key, a 200-499 response framed by Content-Length or
chunks); it gives everything else back, so the trio path (server, router, exchange) stays the
specification and serves every case.
Each call into the lane returns a list of events, one object per event, whose class says its kind
(``_impl.LaneHandoff`` and the others, defined once in Rust) and whose fields are named:

* ``LaneHandoff``: a request the lane declines comes back with its connection; the router serves
  it, and when its route qualifies, installs it under the lane's key (server, identifier value,
  ``l5d-ctx-dtab`` and ``l5d-dtab`` values) and returns the connection to the lane;
* ``LaneResume``: a response the lane does not relay (5xx, interim, close-delimited, unparsable)
  comes back with both connections and the exchange continues in Python: classification,
  retries within budget, failure accrual, the full relay; so does an exchange whose deadline
  passed before its response head (``expired``: the attempt's ``requestAttemptTimeoutMs``, or the
  request's ``totalTimeoutMs`` / ``l5d-ctx-deadline``), and Python fails that attempt exactly as
  the trio path's timeout does (then retries, or answers 503);
* ``LaneFailed``: an upstream the lane could not reach (the request comes back in a
  ``LaneHandoff`` next, and is requeued); ``LaneAbandon``: an exchange dropped before its response
  (its pick ends);
* ``LaneDone``: each completed request's latency goes to the balancer at once (in Rust, through the
  client's own balancer kernel); the rest of its result comes back summed per route branch,
  listener and status at the end of each call: failure accrual, budgets deposited, metrics counted
  (latency histograms merged bucket by bucket), the same counts the trio path makes per request, at
  a cost per batch; a request sampled for ``io.l5d.recentRequests`` also comes back alone
  (``LaneSampled``), and so does each request of a router with an access log (``LaneAccess``: its
  head, peer, status and length).

Deadlines: a route carries its service's ``totalTimeoutMs`` and each branch its client's
``requestAttemptTimeoutMs``; the lane reads ``l5d-ctx-deadline`` (the twin of
``context.parse_deadline``), computes the request's deadline as ``Forwarder.serve`` does, writes
the same ``l5d-ctx-deadline`` field, and arms a timer in its own poll. A request whose deadline
already passed comes back in a ``LaneHandoff`` (Python answers it without sending it on).

Caps shared with the trio path: ``maxConcurrentRequests`` counts Python's requests in flight
(``Lane.set_active``, told by the listener) and the lane's (``Lane.in_flight``); at the cap the lane
hands the request over and Python answers 503. ``maxConnections`` is the listener's: it never
hands the lane a connection over the cap. A client that takes no byte of a response for
``socketOptions.writeTimeoutMs`` is closed by the lane as by the trio path.

What qualifies: a router whose identifier is one ``io.l5d.header.token``, and,
process-wide, no ``io.l5d.zipkin`` telemeter (``io.l5d.recentRequests`` is kept: the lane draws its
sample and sends the sampled requests' method, target and peer with their results); a listener without
``addForwardedHeader``; a route whose bound tree is one name or a union of names, whose clients
have IP-literal endpoints, none marked dead. Routes are forgotten whenever a client's endpoints or
their health change, and re-installed by the next request through Python.

``PYPROXY_LANE=off`` keeps every request on the trio path (for comparisons and bisecting).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import trio

from .. import _impl
from ..resilience.endpoint import Endpoint
from .client import EndpointPool
from ..http.message import Request
from ..naming.name import AddrBound, Bound
from ..naming.tree import Leaf, NameTree, Union
from .attempt import Resume
from .stream import WRITE_TIMEOUT, Conn

if TYPE_CHECKING:
    from ..metrics import RequestStats
    from ..routing.policy import ServicePolicy
    from .accesslog import AccessLog
    from .client import Client

__all__ = ["Branch", "ConnectionSink", "LaneDriver", "Resume", "RouteTable", "enabled", "flatten", "route_key"]

log = logging.getLogger("pyproxy.datapath.lane")

ENV = "PYPROXY_LANE"

def enabled() -> bool:
    """Whether the lane is available (native kernels) and not turned off."""
    return _impl.Lane is not None and os.environ.get(ENV, "on").strip().lower() not in ("off", "0", "no")


def route_key(server: int, ident: bytes, ctx_dtab: Sequence[bytes], dtab: Sequence[bytes], extra: bytes = b"") -> bytes:
    """The key a route is installed under (the lane builds the same bytes: ``lane::head::route_key``):
    ``extra`` is what else decided the override (``routing.overrides.Resolved.extra``)."""
    key = server.to_bytes(2, "little") + ident + b"\0" + b"\n".join(ctx_dtab) + b"\0" + b"\n".join(dtab)
    return key + b"\0" + extra if extra else key


class RouteTable(Protocol):
    """Where a router's data path installs the routes it decided (the lane implements it)."""

    def install(
        self, key: bytes, branches: Sequence[Tuple[float, "Branch", bytes]], ctx_block: bytes, total_timeout: Optional[float] = None,
        member: Optional[bytes] = None, until: Optional[float] = None,
    ) -> bool: ...

    def clear_routes(self) -> None: ...


class ConnectionSink(Protocol):
    """Where the lane hands a listener's connections back (the listener's server implements it)."""

    stats: "RequestStats"  # the listener's server scope (rt/<router>/server/<ip>/<port>)
    access_log: Optional["AccessLog"]  # its router's access log, if any

    def spawn(self, conn: Conn, resume: Optional["Resume"] = None) -> None: ...


class RouteOwner(Protocol):
    """The router a route belongs to, as the lane's results need it."""

    label: str
    requests: int


class Branch:
    """What a lane event carries back for one branch of a route: whose request it was."""

    __slots__ = ("router", "client", "svc", "service", "dst")

    def __init__(self, router: RouteOwner, client: "Client", svc: "RequestStats", service: "ServicePolicy", dst: Any) -> None:
        self.router = router
        self.client = client
        self.svc = svc
        self.service = service
        self.dst = dst  # the logical name (a Path)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def flatten(tree: NameTree) -> Optional[List[Tuple[float, Bound]]]:
    """``(weight, bound name)`` of a tree the lane can pick from (a name, or a union of names)."""
    if type(tree) is Leaf:
        return [(1.0, tree.value)] if isinstance(tree.value, Bound) else None  # type: ignore[attr-defined]
    if type(tree) is Union:
        out = []
        for w in tree.weighted:  # type: ignore[attr-defined]
            if type(w.tree) is not Leaf or not isinstance(w.tree.value, Bound):
                return None
            out.append((float(w.weight), w.tree.value))
        return out
    return None


class LaneDriver:
    """One lane per process: its listeners, the trio task that drives it, its events."""

    def __init__(self, seed: int, recent: Optional[Any] = None) -> None:
        assert _impl.Lane is not None
        self.recent = recent  # io.l5d.recentRequests (its sample is drawn in the lane)
        self.native = _impl.Lane(seed & (2**64 - 1), recent.sample_rate if recent is not None else 0.0)
        self.sinks: List[ConnectionSink] = []
        self.sweep_interval = 1.0
        # what the lane did (exported as lane/<name>): requests it completed, connections it
        # handed to Python, exchanges Python continued, upstreams it could not reach, routes installed
        self.counts = {"requests": 0, "handoffs": 0, "resumes": 0, "failed": 0, "installs": 0}
        # what to do with each kind of event, by its class
        self.handlers: Dict[type, Callable[[Any], None]] = {
            _impl.LaneDone: self._done,
            _impl.LaneHandoff: self._handoff,
            _impl.LaneResume: self._resume,
            _impl.LaneFailed: self._failed,
            _impl.LaneAbandon: self._abandoned,
            _impl.LaneSampled: self._sampled,
            _impl.LaneAccess: self._access,
        }

    def add_server(
        self, sink: ConnectionSink, rules: Any, ident: bytes, limits: Tuple[int, int, int], stream_after: int,
        idle_timeout: float, header_timeout: float, timeout_response: bytes, *, write_timeout: float = WRITE_TIMEOUT,
        max_concurrent: Optional[int] = None,
    ) -> int:
        """Registers a listener (``rules``: its :class:`~pyproxy.routing.router.ServerRules`);
        returns its lane index. ``stream_after``: the largest request body the lane buffers whole
        (larger ones stream, on the trio path); ``write_timeout``: seconds a client's pending
        response may make no progress; ``max_concurrent``: its ``maxConcurrentRequests``, counted
        with the listener's own requests (:meth:`set_active`)."""
        ov = rules.overrides
        carriers = None
        if ov is not None and ov.baggage is not None:
            b = ov.baggage
            carriers = (b.key, bytes(b.read), bytes(sorted(b.fields.values())))
        index = self.native.add_server(
            rules.clear_context, rules.via, rules.max_call_depth, ident, *limits, stream_after,
            idle_timeout, header_timeout, timeout_response, sink.access_log is not None, rules.timestamp_header,
            write_timeout, max_concurrent, carriers, ov is not None and ov.signed is not None,
        )
        self.sinks.append(sink)
        self.sweep_interval = min(self.sweep_interval, max(min(idle_timeout, header_timeout, write_timeout) / 4, 0.01))
        return index  # type: ignore[no-any-return]

    # === routes ===

    def install(
        self, key: bytes, branches: Sequence[Tuple[float, Branch, bytes]], ctx_block: bytes, total_timeout: Optional[float] = None,
        member: Optional[bytes] = None, until: Optional[float] = None,
    ) -> bool:
        """Installs a route whose branches are ``(weight, Branch, l5d-dst-* field block)``, with its
        service's ``totalTimeoutMs`` in seconds; ``ctx_block`` the override's fixed fields
        (``l5d-ctx-dtab``, ``uberctx-``/``ot-baggage-``), ``member`` its W3C baggage member (the
        lane writes ``baggage`` per request), ``until`` the end of a signed override's validity
        (Unix seconds: the lane hands later requests to Python). False when one does not qualify."""
        native = []
        for weight, b, block in branches:
            client = b.client
            if client._dead or not isinstance(client.state, AddrBound) or not client.live:
                return False
            if not client.policy.pool.default:  # hostConnectionPool, clientSession, socketOptions: the trio path's pools
                return False
            endpoints = [(ep.slot, ep.host, ep.port) for ep in client.live]
            if not all(_is_ip(host) for _, host, _ in endpoints):
                return False
            native.append((weight, b, client.balancer, endpoints, block, client.policy.attempt_timeout))
        ok = bool(self.native.install(key, native, ctx_block, total_timeout, member, until))
        self.counts["installs"] += ok
        return ok

    def clear_routes(self) -> None:
        self.native.clear_routes()

    # === connections ===

    def adopt(self, conn: Conn, index: int) -> None:
        """The lane takes ``conn`` over (with whatever it has buffered)."""
        # trio keeps a (disarmed) registration of a socket it waited on: drop it, so that trio's
        # epoll never wakes for a descriptor the lane owns now.
        trio.lowlevel.notify_closing(conn.sock)
        fd = conn.sock.detach()
        received = bytes(conn.buf)
        conn.buf.clear()
        try:
            events = self.native.adopt(fd, received, index, trio.current_time())
        except Exception:  # noqa: BLE001 - the lane closed the descriptor: one connection lost
            log.exception("lane: cannot take a connection over")
            return
        self.dispatch(events)

    def connections(self, index: int) -> int:
        return self.native.connections(index)  # type: ignore[no-any-return]

    def in_flight(self, index: int) -> int:
        """The lane's exchanges in flight on listener ``index``."""
        return self.native.in_flight(index)  # type: ignore[no-any-return]

    def set_active(self, index: int, active: int) -> None:
        """Python's requests in flight on listener ``index`` (its half of ``maxConcurrentRequests``)."""
        self.native.set_active(index, active)

    def drain(self, index: int) -> None:
        self.dispatch(self.native.drain(index))

    async def run(self) -> None:
        """Drive the lane: its I/O whenever its descriptor is readable, its timeouts periodically."""
        fd = self.native.fileno()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep)
            try:
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        events = self.native.poll(trio.current_time())
                    except OSError:  # the lane's epoll failed: say so, and do not spin on it
                        log.exception("lane: poll failed")
                        await trio.sleep(0.1)
                        continue
                    self.dispatch(events)
            finally:
                nursery.cancel_scope.cancel()

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(self.sweep_interval)
            self.dispatch(self.native.sweep(trio.current_time()))

    def close(self) -> None:
        self.native.close()

    # === events ===

    def dispatch(self, events: List[Any]) -> None:
        handlers = self.handlers
        for ev in events:
            try:
                handlers[type(ev)](ev)
            except Exception:  # noqa: BLE001 - one event must not stop the lane
                log.exception("lane event %s", type(ev).__name__)

    def _done(self, ev: Any) -> None:
        """``ev.count`` requests of branch ``ev.branch`` on listener ``ev.server`` answered
        ``ev.status``: what ``Client.done`` (less the balancer, told in Rust), the client, server and
        service scopes and the budgets count for each request, counted once for all."""
        b: Branch = ev.branch
        count, status = ev.count, ev.status
        self.counts["requests"] += count
        client = b.client
        now = trio.current_time()
        for slot, n in ev.slots:
            ep = client.by_slot.get(slot)
            if ep is not None:
                client.accrue(ep, True, now, n)
        client.requests += count
        client.stats.record_batch(status, count, ev.head_ms)
        self.sinks[ev.server].stats.record_batch(status, count, ev.total_ms)
        svc = b.svc
        svc.record_batch(status, count, ev.total_ms)
        svc.record_no_retries(count)
        budget, requeues = b.service.budget, client.requeues
        for second, n in ev.seconds:
            budget.deposit_many(second, n)
            requeues.deposit_many(second, n)
        b.router.requests += count

    def _handoff(self, ev: Any) -> None:
        """A connection the lane gives back, with the bytes it received and did not consume."""
        self.counts["handoffs"] += 1
        self.sinks[ev.server].spawn(Conn.adopted(ev.fd, ev.received, eof=ev.eof))

    def _access(self, ev: Any) -> None:
        """The access log line of a request the lane answered (its head is read as the trio path reads it)."""
        access_log = self.sinks[ev.server].access_log
        if access_log is None:
            return
        raw = ev.head
        req = Request.from_kernel(_impl.parse_request_head(raw, len(raw) + 1, len(raw) + 1, 1 << 16))
        access_log.record(
            req.host, ev.remote, req.method, req.target, req.minor, ev.status, ev.length, req.header("referer"),
            req.header("user-agent"),
        )

    def _sampled(self, ev: Any) -> None:
        """One request of a ``LaneDone`` batch that ``io.l5d.recentRequests`` sampled."""
        if self.recent is None:
            return
        b: Branch = ev.branch
        ep = b.client.by_slot.get(ev.slot)
        sink = self.sinks[ev.server]
        self.recent.record(
            router=b.router.label, source=ev.peer, server=sink.stats.scope.prefix[-1], logical=b.dst,
            concrete=b.client.id, destination=(ep.host, ep.port) if ep is not None else None,
            method=ev.method, uri=ev.target, status=ev.status, latency_ms=(ev.ended - ev.started) * 1000.0, sampled=True,
        )

    def _failed(self, ev: Any) -> None:
        self.counts["failed"] += 1
        client = ev.branch.client
        started, ended = ev.started, ev.ended
        ep = client.by_slot.get(ev.slot)
        if ep is not None:
            client.done(ep, ended, ended - started, False, connect_failed=True)
        client.stats.record(0, (ended - started) * 1000.0, "ConnectionFailed")

    def _abandoned(self, ev: Any) -> None:
        client = ev.branch.client
        if ev.slot in client.by_slot:
            client.balancer.end(ev.slot, ev.ended, max(ev.ended - ev.started, 0.0))

    def _resume(self, ev: Any) -> None:
        self.counts["resumes"] += 1
        down = Conn.adopted(ev.down_fd, ev.down_buf)
        up = Conn.adopted(ev.up_fd, ev.up_buf, eof=ev.up_eof)
        client = ev.branch.client
        slot = ev.slot
        ep = client.by_slot.get(slot)
        if ep is None:  # removed meanwhile: the exchange goes on without its balancer entry
            host, port = up.sock.getpeername()[:2]
            ep = Endpoint(host, port, EndpointPool(host, port), slot, None)
        self.sinks[ev.server].spawn(down, Resume(client, ep, up, ev.started, ev.head, ev.expired, ev.up_error))
