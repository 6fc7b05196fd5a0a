"""Serving a decided route: one router's requests from "where does it go" to the response.

:class:`Forwarder` is the data-path half of a router (the deciding half is
:class:`~pyproxy.routing.router.Router`). Per request, :meth:`Forwarder.serve` asks the router to
decide the route, finds the client of the bound name (waiting up to ``bindingTimeoutMs`` while its
address set is pending), adds the proxy's own fields (``Via``, ``l5d-dst-*``, trace, override,
deadline, timestamp, ``Forwarded``), installs the route in the lane's route table when it
qualifies, runs the :class:`~.exchange.Exchange` and records the request: server, service and
client metrics, the access log, recent requests and Zipkin spans. A request the router answers
itself (400, 502, 503) gets Linkerd's error response here.
"""

from __future__ import annotations

import random
import time
from typing import Any, List, Optional, Tuple

import trio

from ..errors import RemoteProtocolError
from ..http import headers as h
from ..http.context import TraceId, format_deadline
from ..http.forwarded import Forwarded
from ..http.message import Request, error_response
from ..metrics import Registry, RequestStats, RouterStats
from ..naming.name import ADDR_PENDING, AddrBound, AddrFailed, Bound
from ..naming.path import Path
from ..routing.overrides import OverrideCounts
from ..routing.router import Route, RouteError, Router, ServerRules
from ..routing.cache import Lru
from .attempt import EXPIRED_REQUEST
from .client import Client, Clients
from .exchange import Exchange
from .lane import Branch, RouteTable, flatten, route_key
from .stream import Body, Conn

__all__ = ["Forwarder", "Observers"]


class Observers:
    """Who else sees each request of a router: ``io.l5d.recentRequests``, ``io.l5d.zipkin``, the
    access log (each None when not configured)."""

    __slots__ = ("recent", "tracer", "access_log")

    def __init__(self, recent: Optional[Any] = None, tracer: Optional[Any] = None, access_log: Optional[Any] = None) -> None:
        self.recent = recent
        self.tracer = tracer
        self.access_log = access_log


class Forwarder:
    """The data path of one router: its clients (one per bound name) and how its requests are served."""

    def __init__(
        self, router: Router, stats: Optional[RouterStats] = None, observers: Optional[Observers] = None,
        rng: Optional[random.Random] = None, clients: int = 1000, idle_ttl: float = 600.0, bounds: int = 1000,
        paths: int = 1000,
    ) -> None:
        """``clients``, ``idle_ttl``, ``bounds``, ``paths``: ``bindingCache.clients``, ``.idleTtlSecs``,
        ``.bounds`` (the route fields kept per logical and bound name) and ``.paths`` (also the
        service scopes of the metrics kept past their idle sweeps)."""
        self.router = router
        self.params = router.params
        self.label = router.label
        self.stats = stats or RouterStats(Registry(), router.label)
        self.observers = observers or Observers()
        self.rng = rng or random.Random()
        self.clients = Clients(self._new_client, clients, idle_ttl, on_evict=self._forget_routes,
                               on_close=lambda c: self.stats.drop_client(c.id))
        self.idle_ttl = idle_ttl
        self.paths = paths
        self._dst_fields: Lru[Tuple[Path, Bound], List[Tuple[bytes, bytes]]] = Lru(bounds)
        #: where routes this router decided are installed for the lane, with the lane's listener
        #: index of each server and the identifier header the lane keys by (None: no lane)
        self.routes: Optional[RouteTable] = None
        self.route_ident: Optional[bytes] = None
        router.on_rebind.append(self._forget_routes)
        router.counts = OverrideCounts(self.stats.root.scope("overrides"))

    def _forget_routes(self) -> None:
        if self.routes is not None:
            self.routes.clear_routes()

    def sweep(self) -> None:
        """Once a second: idle pools and clients (:meth:`Clients.sweep`), and the service scopes
        of the metrics idle past ``idleTtlSecs`` or over ``bindingCache.paths``; the lane's routes
        hold service scopes, so they are dropped when one goes."""
        self.clients.sweep()
        if self.stats.sweep(max(1, int(self.idle_ttl)), self.paths):
            self._forget_routes()

    def use_route_table(self, routes: RouteTable, ident: bytes) -> None:
        """Install qualifying routes in ``routes``, keyed by the identifier header ``ident``."""
        self.routes = routes
        self.route_ident = ident
        for c in self.clients.values():
            c.on_change = routes.clear_routes

    def client(self, bound: Bound) -> Client:
        return self.clients.get(bound)

    def _new_client(self, bound: Bound) -> Client:
        c = Client(bound, self.router.policies.client(bound.id.show), self.rng)
        c.stats = self.stats.client(c.id)
        if self.routes is not None:
            c.on_change = self.routes.clear_routes
        return c

    # === requests ===

    async def serve(
        self, req: Request, body: Body, down: Conn, rules: ServerRules, srv: Optional[RequestStats] = None,
        resume: Optional[Any] = None, lane_index: Optional[int] = None,
    ) -> bool:
        """Serve one request read from ``down``; returns whether ``down`` may carry another request.

        ``resume``: the lane already sent this request on an attempt whose response it handed over
        (a :class:`~.lane.Resume`); the exchange continues from that attempt (same client and
        endpoint). ``lane_index``: the listener's index in the lane, when it uses the lane.
        """
        t0 = time.perf_counter()
        try:
            route = await self.router.decide(req, rules, resume.client.bound if resume is not None else None)
            client = resume.client if resume is not None else self.client(route.bound)  # type: ignore[arg-type]
            if not client.live and client.state is ADDR_PENDING:
                if not await client.wait_ready(self.params.binding_timeout):
                    raise RouteError(503, f"exceeded {self.params.binding_timeout:g} seconds binding {route.dst.show}")
            if not client.live:
                no_route = self.router.no_route_message(route.dst, route.local)
                raise RouteError(502, f"{no_route}\n\n{client.bound.id.show}: {_state_text(client.state)}")
        except RouteError as exc:  # answered by the router itself: only the server scope saw it
            if resume is not None:
                resume.abandon(trio.current_time())
            status, message = exc.status, str(exc)
            try:
                return await self._respond_error(down, req, body, status, message, rules.clear_context, exc.public)
            finally:
                if srv is not None:
                    srv.record(status, (time.perf_counter() - t0) * 1000.0)
                if self.observers.access_log is not None:
                    edge = rules.clear_context and not exc.public
                    length = 0 if edge else min(len(message.encode("utf-8", "replace")), self.params.max_err_response)
                    self._log_access(req, down, status, length)

        fields = self._fields(route, route.bound, req, down, rules)  # type: ignore[arg-type]
        service = route.service
        total = service.total_timeout
        deadline = route.deadline
        if self.routes is not None and lane_index is not None and resume is None and route.scheme is None:
            req.lane_ok = self._install(req, lane_index, route, rules)
        timeout: Optional[float] = None
        why: Optional[str] = None
        if deadline is not None or total is not None:
            # The request's deadline: the tightest of the incoming one and totalTimeoutMs from when
            # the request started (for an exchange the lane began, when the lane started it).
            now_ns = time.time_ns()
            start_ns = now_ns if resume is None else now_ns - int(max(trio.current_time() - resume.started, 0.0) * 1e9)
            total_end = start_ns + int(total * 1e9) if total else None
            ends = [d for d in ((deadline[1] if deadline else None), total_end) if d is not None]
            tightest = min(ends)
            fields.append((b"l5d-ctx-deadline", format_deadline(now_ns, tightest)))
            timeout = max((tightest - now_ns) / 1e9, 0.0)
            if resume is not None and resume.expired == EXPIRED_REQUEST:
                timeout = 0.0  # the lane saw it pass
            # what the 503 says when it passes: the same words for every request (and both paths)
            if total_end is not None and total_end == tightest:
                why = f"exceeded {total:g} seconds (totalTimeoutMs) waiting for {client.id}"
            else:
                why = f"the l5d-ctx-deadline passed waiting for {client.id}"
        ex = Exchange(self.params, req, body, down, rules, client, service, route.target, fields, resume)
        try:
            return await ex.run(timeout, why)
        finally:
            self._record(ex, srv, t0, req, route.dst, route.trace, down)

    def _fields(self, route: Route, bound: Bound, req: Request, down: Conn, rules: ServerRules) -> List[Tuple[bytes, bytes]]:
        """The client's fields that go on, then the proxy's own (in the order Linkerd adds them)."""
        fields = route.fields
        via = route.via
        fields.append((b"Via", b", ".join([*via, rules.via]) if via else rules.via))
        fields.extend(self._route_fields(route.dst, bound))
        trace = route.trace
        fields.append((b"l5d-ctx-trace", trace.header()))
        fields.append((b"l5d-reqid", trace.reqid))
        if route.local.dentries:
            fields.append((b"l5d-ctx-dtab", route.local.show.encode("latin-1")))
        if route.carried:
            fields.extend(route.carried)
        if rules.timestamp_header is not None:
            fields.append((rules.timestamp_header, b"%d" % (time.time_ns() // 1_000_000)))
        if rules.forwarded is not None:
            fields.append((b"Forwarded", self._forwarded(rules.forwarded, req, down, route.scheme)))
        return fields

    def _record(self, ex: Exchange, srv: Optional[RequestStats], t0: float, req: Request, dst: Path, trace: TraceId, down: Conn) -> None:
        """Metrics, recent requests and spans of one routed request (after its response)."""
        ms = (time.perf_counter() - t0) * 1000.0
        status, failure = ex.status, ex.failure
        if srv is not None:
            srv.record(status, ms, failure, ex.success)
        obs = self.observers
        if obs.access_log is not None:
            self._log_access(req, down, status, ex.length)
        svc = self.stats.service(dst.show)
        svc.record(status, ms, failure, ex.success)
        svc.record_retries(ex.retries, ex.budget_exhausted)
        if obs.recent is not None:
            ep = ex.last_endpoint
            obs.recent.record(
                router=self.label, source=down.sock.getpeername(), server=srv.scope.prefix[-1] if srv else None,
                logical=dst, concrete=ex.client.id, destination=(ep.host, ep.port) if ep else None,
                method=req.method, uri=req.target, status=status, latency_ms=ms,
            )
        tracer = obs.tracer
        if tracer is not None and tracer.sampled(trace):
            end = time.time_ns() // 1000
            dur = int(ms * 1000)
            start = end - dur
            method = req.method.decode("latin-1")
            path = ex.target.decode("latin-1")
            tags = {"http.method": method, "http.path": path, "http.status_code": status, "l5d.dst.service": dst.show}
            # Server span: the id the request came with (the caller's client span, shared) or, at a
            # root, the parent of the client spans below.
            server_trace = TraceId(trace.parent_id, trace.parent_id, trace.trace_id, trace.flags)
            tracer.record_server_span(server_trace, router=self.label, name=method.lower(), start_us=start, duration_us=dur, tags=tags, shared=trace.parent_id != trace.span_id)
            # Client spans: one per attempt (Finagle's client stack under the path stack's retries),
            # on trio's clock, placed within the server span.
            now = trio.current_time()
            if ex.span is not None:  # cut (totalTimeoutMs, a deadline, the client gone)
                ex.end_span(now, 0, "RequestTimeout")
            for span_trace, t_start, t_end, span_status, ep, failure in ex.spans:
                c_start = max(start, end - int((now - t_start) * 1e6))
                c_end = min(end, max(c_start, end - int((now - t_end) * 1e6)))
                ctags = {"http.method": method, "http.path": path, "l5d.dst.service": dst.show, "l5d.dst.client": ex.client.id}
                if span_status:
                    ctags["http.status_code"] = span_status
                if failure:
                    ctags["error"] = failure
                tracer.record_client_span(
                    span_trace or trace, router=self.label, name=method.lower(), start_us=c_start, duration_us=c_end - c_start,
                    tags=ctags, remote=(ep.host, ep.port) if ep else None,
                )

    def _install(self, req: Request, server: int, route: Route, rules: ServerRules) -> bool:
        """Install this request's route in the lane's route table under the key the lane computes for it."""
        assert self.routes is not None
        if req.chunked or req.content_length > self.params.stream_after or req.expect_continue or self.route_ident is None:
            return False
        leaves = flatten(route.tree)
        if not leaves:
            return False
        ident = req.host if self.route_ident == b"host" else h.get(req.headers, self.route_ident)
        if not ident:
            return False
        if route.extra[:1] == b"s" and route.until is None:
            return False  # an override not validly signed: each such request is counted (trio path)
        ctx = route.ctx
        # The override values exactly as routing read them (after hop-by-hop and edge removal),
        # and what else decided the override (a baggage member, a signature).
        key = route_key(server, ident, ctx.get(h.CTX_DTAB, ()), ctx.get(h.DTAB, ()), route.extra)
        dst = route.dst
        svc = self.stats.service(dst.show)
        branches = []
        for weight, bound in leaves:
            block = b"".join(b"%s: %s\r\n" % kv for kv in self._route_fields(dst, bound))
            branches.append((weight, Branch(self.router, self.client(bound), svc, route.service, dst), block))
        local = route.local
        ctx_block = b""
        member = None
        if local.dentries:
            value = local.show.encode("latin-1")
            ctx_block = b"l5d-ctx-dtab: %s\r\n" % value
            carriers = rules.overrides.baggage if rules.overrides is not None else None
            if carriers is not None:  # the carriers' fixed fields; the lane writes baggage per request
                ctx_block += b"".join(b"%s: %s\r\n" % kv for kv in carriers.fixed_fields(value))
                member = carriers.member(value)
        return self.routes.install(key, branches, ctx_block, route.service.total_timeout, member, route.until)

    def _log_access(self, req: Request, down: Conn, status: int, length: int) -> None:
        try:
            remote = down.sock.getpeername()[0]
        except OSError:
            remote = "-"
        self.observers.access_log.record(  # type: ignore[union-attr]
            req.host, remote, req.method, req.target, req.minor, status, length,
            req.header("referer"), req.header("user-agent"),
        )

    def _forwarded(self, rule: Forwarded, req: Request, down: Conn, scheme: Optional[bytes]) -> bytes:
        """This hop's ``Forwarded`` element (addForwardedHeader), appended after any received ones."""
        sock = down.sock
        try:
            local, peer = sock.getsockname(), sock.getpeername()
        except OSError:
            local = peer = ("unknown", 0)
        if down.labels is None:
            down.labels = {}
        return rule.element(local, peer, down.labels, req.host, scheme, self.rng)

    def _route_fields(self, dst: Path, bound: Bound) -> List[Tuple[bytes, bytes]]:
        """``l5d-dst-service``, ``l5d-dst-client`` and ``l5d-dst-residual``, built once per route."""
        key = (dst, bound)
        out = self._dst_fields.get(key)
        if out is None:
            out = [(b"l5d-dst-service", dst.show.encode("latin-1")), (b"l5d-dst-client", bound.id.show.encode("latin-1"))]
            if bound.residual.elems:
                out.append((b"l5d-dst-residual", bound.residual.show.encode("latin-1")))
            self._dst_fields.put(key, out)
        return out

    async def _respond_error(self, down: Conn, req: Request, body: Body, status: int, message: str, edge: bool, public: bool = False) -> bool:
        """Answer the request with a Linkerd error; keep the connection only if the body was read."""
        # A client waiting for 100-continue will not send the body: close instead of draining it.
        keep = req.keep_alive and not (req.expect_continue and not body.done and not body.received) and await _discard(body)
        p = self.params
        await down.send_all(error_response(status, message, edge, p.max_err_response, p.max_head, keep, req, public))
        return keep


async def _discard(body: Body, limit: int = 64 * 1024) -> bool:
    """Read and drop a small remaining request body so the connection can be reused."""
    try:
        with trio.move_on_after(1.0):
            return await body.drain(limit)
    except RemoteProtocolError:
        return False
    return False


def _state_text(state: object) -> str:
    if isinstance(state, AddrFailed):
        return f"address resolution failed: {state.cause}"
    return "no endpoints" if isinstance(state, AddrBound) else "name is negative"
