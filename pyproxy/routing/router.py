"""A Linkerd 1.x HTTP router: identify, bind through the dtab, pick an endpoint, forward, relay.

Per request (DESIGN.md "The request path"): the server has parsed and checked the head; the router
applies the context rules (edge scrub, or ``l5d-ctx-dtab`` ++ ``l5d-dtab`` overrides, trace, deadline),
identifies the logical name, binds it with ``router dtab ++ local dtab`` (cached per local dtab and
name, invalidated when a namer's answers change), picks a branch of a weighted union, then an endpoint
of that client, and exchanges the request with it over a pooled connection. Bodies stream both ways in
bounded pieces. Errors become Linkerd's responses: 400 (bad override, unidentified, loop), 502 (no
route, connection failed, bad upstream response), 503 (binding or request timeout).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import trio

from ..http import headers as h
from ..datapath.client import Client
from ..http.context import OverrideCache, TraceId, format_deadline, parse_deadline, parse_sample
from ..errors import DtabError, PathError, PyproxyError, RemoteProtocolError
from ..datapath.exchange import Exchange
from ..http.forwarded import Forwarded
from ..metrics import Registry, RequestStats, RouterStats
from ..http.message import Request, error_response
from .identifiers import Identified, Identifier, compose
from ..datapath.lane import Branch, LaneDriver, Resume, flatten, route_key
from ..naming.binding import ConfiguredNamersInterpreter
from ..naming.dtab import Dtab
from ..naming.name import ADDR_PENDING, AddrBound, AddrFailed, Bound
from ..naming.path import Path
from ..naming.tree import Alt, Leaf, NameTree, Union
from .policy import Policies
from ..telemetry.zipkin import now_us
from ..datapath.stream import Body, Conn

__all__ = ["Router", "RouterParams", "ServerRules"]

_EMPTY_DTAB = Dtab()


@dataclass(frozen=True)
class RouterParams:
    """What a router needs from its configuration (``routers[i]`` of a Linkerd config)."""

    label: str
    dtab: Dtab
    identifiers: Sequence[Identifier]
    interpreter: ConfiguredNamersInterpreter
    namer_versions: Callable[[], object] = lambda: 0
    binding_timeout: float = 10.0
    max_line: int = 4096
    max_head: int = 8192
    max_headers: int = 100
    max_err_response: int = 5120 * 1024
    stream_after: int = 5 * 1024
    policies: Optional[Policies] = None
    stats: Optional[RouterStats] = None  # rt/<label>/... (App: telemetry.router(label))
    recent: Optional[Any] = None  # RecentRequests (io.l5d.recentRequests) or None
    tracer: Optional[Any] = None  # zipkin Tracer (io.l5d.zipkin) or None
    access_log: Optional[Any] = None  # AccessLog (httpAccessLog) or None


@dataclass(frozen=True)
class ServerRules:
    """Per-listener rules: ``clearContext`` makes it an edge."""

    clear_context: bool = False
    via: bytes = b"1.1 pyproxy"
    max_call_depth: int = 1000
    timestamp_header: Optional[bytes] = None  # timestampHeader: this field gets the time in ms
    forwarded: Optional[Forwarded] = None  # addForwardedHeader
    lane: Optional[int] = None  # this listener's index in the lane, when it uses the lane


class RouteError(Exception):
    """A request the router answers itself: ``status`` and the Linkerd error message."""

    def __init__(self, status: int, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class _Bind:
    __slots__ = ("version", "tree")

    def __init__(self, version: object, tree: NameTree) -> None:
        self.version = version
        self.tree = tree


class Router:
    """One configured router; shared by all its servers (listeners)."""

    def __init__(self, params: RouterParams, rng: Optional[random.Random] = None) -> None:
        self.params = params
        self.label = params.label
        self.rng = rng or random.Random()
        self.overrides = OverrideCache()
        self._binds: Dict[Tuple[str, Tuple[bytes, ...]], _Bind] = {}
        self.clients: Dict[Tuple[str, Tuple[bytes, ...]], Client] = {}
        self._dst_fields: Dict[Tuple[Path, Bound], List[Tuple[bytes, bytes]]] = {}
        self.policies = params.policies or Policies()
        self.limits = (params.max_line, params.max_head, params.max_headers)
        self.requests = 0
        self.stats = params.stats or RouterStats(Registry(), params.label)
        self.lane: Optional[LaneDriver] = None  # set by the App when this router's listeners use it
        self.lane_ident: Optional[bytes] = None  # the io.l5d.header.token header, lower case
        # io.l5d.fs interpreter: the configured dtab, to which the file's dtab is prepended, and,
        # until the file was first read, what requests wait for (and why it was not read)
        self.configured_dtab = params.dtab
        self.dtab_pending: Optional[trio.Event] = None
        self.dtab_problem = ""

    # === naming ===

    def await_dtab_file(self, problem: str) -> None:
        """The base dtab comes from an io.l5d.fs interpreter's file that has not been read yet:
        requests wait for it up to bindingTimeoutMs (``problem``: why it is not there)."""
        if self.dtab_pending is None:
            self.dtab_pending = trio.Event()
        self.dtab_problem = problem

    def use_dtab_file(self, dtab: Dtab) -> None:
        """The io.l5d.fs interpreter's file says ``dtab``: bind through ``dtab ++ configured dtab``
        from now on (cached bindings and lane routes are dropped)."""
        self.params = replace(self.params, dtab=dtab.concat(self.configured_dtab))
        self._binds.clear()
        if self.lane is not None:
            self.lane.clear_routes()
        if self.dtab_pending is not None:
            self.dtab_pending.set()
            self.dtab_pending = None

    async def _dtab_ready(self, dst: Path) -> None:
        pending = self.dtab_pending
        if pending is None:
            return
        with trio.move_on_after(self.params.binding_timeout):
            await pending.wait()
        if self.dtab_pending is not None:
            raise RouteError(503, f"exceeded {self.params.binding_timeout:g} seconds binding {dst.show}: {self.dtab_problem}")

    def bind(self, local: Dtab, dst: Path) -> NameTree:
        """The bound tree of ``dst`` under ``router dtab ++ local`` (cached until a namer changes)."""
        key = (local.show, dst.elems)
        version = self.params.namer_versions()
        hit = self._binds.get(key)
        if hit is not None and hit.version == version:
            return hit.tree
        dtab = self.params.dtab.concat(local) if local.dentries else self.params.dtab
        tree = self.params.interpreter.bind(dtab, dst)
        if len(self._binds) > 10000:
            self._binds.clear()
        self._binds[key] = _Bind(version, tree)
        return tree

    def pick(self, tree: NameTree) -> Optional[Bound]:
        """One bound name of the tree: a weighted random branch of each Union (uniform if all weights are 0)."""
        while True:
            if type(tree) is Leaf:
                return tree.value  # type: ignore[attr-defined,no-any-return]
            if type(tree) is Union:
                ws = tree.weighted  # type: ignore[attr-defined]
                total = sum(w.weight for w in ws)
                if total <= 0:
                    tree = ws[self.rng.randrange(len(ws))].tree
                    continue
                x = self.rng.random() * total
                for w in ws:
                    x -= w.weight
                    if x < 0:
                        break
                tree = w.tree
                continue
            if type(tree) is Alt:  # bind never leaves an Alt; be total anyway
                tree = tree.trees[0]  # type: ignore[attr-defined]
                continue
            return None  # Neg, Fail, Empty

    def client(self, bound: Bound) -> Client:
        key = (bound.id.show, bound.residual.elems)
        c = self.clients.get(key)
        if c is None:
            c = self.clients[key] = Client(bound, self.policies.client(bound.id.show), self.rng)
            c.stats = self.stats.client(c.id)
            if self.lane is not None:
                c.on_change = self.lane.clear_routes
        return c

    def no_route_message(self, dst: Path, local: Dtab) -> str:
        lines = ["Unable to route request!", "", f"service name: {dst.show}", "dtab:", "", "base dtab:"]
        lines += [f"  {d.prefix.show} => {d.dst.show}" for d in self.params.dtab]
        lines.append("override dtab:")
        lines += [f"  {d.prefix.show} => {d.dst.show}" for d in local]
        return "\n".join(lines)

    # === requests ===

    async def handle(
        self, req: Request, body: Body, down: Conn, rules: ServerRules, srv: Optional[RequestStats] = None,
        resume: Optional[Resume] = None,
    ) -> bool:
        """Serve one request read from ``down``; returns whether ``down`` may carry another request.

        ``resume``: the lane already sent this request on an attempt whose response it handed over;
        the exchange continues from that attempt (same client and endpoint).
        """
        self.requests += 1
        t0 = time.perf_counter()
        edge = rules.clear_context
        scheme = None
        if req.target[:1] != b"/" and req.target[:4].lower() == b"http":
            scheme = _to_origin_form(req)
        try:
            fields, local, trace, deadline, via, ctx = self._context(req, edge, rules)
            ident = compose(self.params.identifiers, req)
            if not isinstance(ident, Identified):
                raise RouteError(400, f"Unknown destination: {req.method.decode('latin-1')} {req.target.decode('latin-1')} / {ident.reason}")
            dst = ident.dst
            target = req.target if ident.target is None else ident.target.encode("latin-1")
            if self.dtab_pending is not None:
                await self._dtab_ready(dst)
            tree = self.bind(local, dst)
            if resume is not None:
                client = resume.client
                bound = client.bound
            else:
                bound = self.pick(tree)
                if bound is None:
                    raise RouteError(502, self.no_route_message(dst, local))
                client = self.client(bound)
            if not client.live and client.state is ADDR_PENDING:
                if not await client.wait_ready(self.params.binding_timeout):
                    raise RouteError(503, f"exceeded {self.params.binding_timeout:g} seconds binding {dst.show}")
            if not client.live:
                raise RouteError(502, f"{self.no_route_message(dst, local)}\n\n{bound.id.show}: {_state_text(client.state)}")
        except RouteError as exc:
            status, message = exc.status, str(exc)
        except (DtabError, PathError) as exc:
            status, message = 400, str(exc)
        except PyproxyError as exc:  # a namer failed, or binding looped
            status, message = 502, str(exc)
        else:
            status = 0
        if status:  # answered by the router itself: only the server scope saw it
            if resume is not None:
                resume.abandon(trio.current_time())
            try:
                return await self._respond_error(down, req, body, status, message, edge, rules)
            finally:
                if srv is not None:
                    srv.record(status, (time.perf_counter() - t0) * 1000.0)
                if self.params.access_log is not None:
                    length = 0 if edge else min(len(message.encode("utf-8", "replace")), self.params.max_err_response)
                    self._log_access(req, down, status, length)

        # Fields the proxy adds, after the client's own (and its nominations) were removed.
        fields.append((b"Via", b", ".join([*via, rules.via]) if via else rules.via))
        fields.extend(self._route_fields(dst, bound))
        fields.append((b"l5d-ctx-trace", trace.header()))
        fields.append((b"l5d-reqid", trace.reqid))
        if local.dentries:
            fields.append((b"l5d-ctx-dtab", local.show.encode("latin-1")))
        if rules.timestamp_header is not None:
            fields.append((rules.timestamp_header, b"%d" % (time.time_ns() // 1_000_000)))
        if rules.forwarded is not None:
            fields.append((b"Forwarded", self._forwarded(rules.forwarded, req, down, scheme)))
        service = self.policies.service(dst.show)
        timeout = service.total_timeout
        if self.lane is not None and rules.lane is not None and resume is None and scheme is None:
            if deadline is None and timeout is None:
                req.lane_ok = self._lane_install(req, rules.lane, ctx, dst, tree, local)
        if deadline is not None or timeout is not None:
            now_ns = time.time_ns()
            ends = [d for d in ((deadline[1] if deadline else None), (now_ns + int(timeout * 1e9) if timeout else None)) if d is not None]
            tightest = min(ends)
            fields.append((b"l5d-ctx-deadline", format_deadline(now_ns, tightest)))
            timeout = max((tightest - now_ns) / 1e9, 0.0)
        ex = Exchange(self, req, body, down, rules, client, service, target, fields, resume)
        try:
            return await ex.run(timeout)
        finally:
            self._record(ex, srv, t0, req, dst, trace, down)

    def _record(self, ex: Exchange, srv: Optional[RequestStats], t0: float, req: Request, dst: Path, trace: TraceId, down: Conn) -> None:
        """Metrics, recent requests and spans of one routed request (after its response)."""
        ms = (time.perf_counter() - t0) * 1000.0
        status, failure = ex.status, ex.failure
        if srv is not None:
            srv.record(status, ms, failure, ex.success)
        if self.params.access_log is not None:
            self._log_access(req, down, status, ex.length)
        svc = self.stats.service(dst.show)
        svc.record(status, ms, failure, ex.success)
        svc.record_retries(ex.retries, ex.budget_exhausted)
        recent = self.params.recent
        if recent is not None:
            ep = ex.last_endpoint
            recent.record(
                router=self.label, source=down.sock.getpeername(), server=srv.scope.prefix[-1] if srv else None,
                logical=dst, concrete=ex.client.id, destination=(ep.host, ep.port) if ep else None,
                method=req.method, uri=req.target, status=status, latency_ms=ms,
            )
        tracer = self.params.tracer
        if tracer is not None and tracer.sampled(trace):
            end = now_us()
            dur = int(ms * 1000)
            method = req.method.decode("latin-1")
            tags = {"http.method": method, "http.path": ex.target.decode("latin-1"), "http.status_code": status, "l5d.dst.service": dst.show}
            # Server span: the id the request came with (the caller's client span, shared) or, at a
            # root, the same id as the client span below (the lead may prefer a root.child() upstream).
            server_trace = TraceId(trace.parent_id, trace.parent_id, trace.trace_id, trace.flags)
            tracer.record_server_span(server_trace, router=self.label, name=method.lower(), start_us=end - dur, duration_us=dur, tags=tags, shared=trace.parent_id != trace.span_id)
            ep = ex.last_endpoint
            tracer.record_client_span(
                trace, router=self.label, name=method.lower(), start_us=end - dur, duration_us=dur,
                tags={**tags, "l5d.dst.client": ex.client.id}, remote=(ep.host, ep.port) if ep else None,
            )

    def _lane_install(self, req: Request, server: int, ctx: dict, dst: Path, tree: NameTree, local: Dtab) -> bool:
        """Install this request's route in the lane under the key the lane computes for it."""
        assert self.lane is not None
        if req.chunked or req.content_length > self.params.stream_after or req.expect_continue or self.lane_ident is None:
            return False
        leaves = flatten(tree)
        if not leaves:
            return False
        ident = req.host if self.lane_ident == b"host" else h.get(req.headers, self.lane_ident)
        if not ident:
            return False
        # The override values exactly as routing read them (after hop-by-hop and edge removal).
        key = route_key(server, ident, ctx.get(h.CTX_DTAB, ()), ctx.get(h.DTAB, ()))
        svc = self.stats.service(dst.show)
        service = self.policies.service(dst.show)
        branches = []
        for weight, bound in leaves:
            block = b"".join(b"%s: %s\r\n" % kv for kv in self._route_fields(dst, bound))
            branches.append((weight, Branch(self, self.client(bound), svc, service, dst), block))
        ctx_block = b"l5d-ctx-dtab: %s\r\n" % local.show.encode("latin-1") if local.dentries else b""
        return self.lane.install(key, branches, ctx_block)

    def _log_access(self, req: Request, down: Conn, status: int, length: int) -> None:
        try:
            remote = down.sock.getpeername()[0]
        except OSError:
            remote = "-"
        self.params.access_log.record(  # type: ignore[union-attr]
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
            if len(self._dst_fields) > 10000:
                self._dst_fields.clear()
            self._dst_fields[key] = out
        return out

    def _context(self, req: Request, edge: bool, rules: ServerRules) -> tuple:
        fields, ctx, via_values = h.scan_request(req.headers, req.connection, edge=edge)
        if via_values:
            via = [e.strip() for v in via_values for e in v.split(b",") if e.strip()]
            if len(via) > rules.max_call_depth or rules.via in via:
                raise RouteError(400, f"Maximum number of proxy hops exceeded or proxy loop detected (Via: {b', '.join(via).decode('latin-1')})")
        draw = self.rng.getrandbits(64) or 1
        if edge or not ctx:
            return fields, _EMPTY_DTAB, TraceId.root(self.rng.getrandbits(64) or 1).child(draw), None, via_values, ctx
        dtab_ctx = ctx.get(h.CTX_DTAB, ())
        dtab_user = ctx.get(h.DTAB, ())
        local = self.overrides.get(dtab_ctx, dtab_user) if (dtab_ctx or dtab_user) else _EMPTY_DTAB
        raw_trace = ctx.get(h.CTX_TRACE)
        parent = TraceId.from_header(raw_trace[0]) if raw_trace else None
        # The call upstream is a child span of this hop's server span (a new root when none came).
        trace = (parent or TraceId.root(self.rng.getrandbits(64) or 1)).child(draw)
        sample = ctx.get(h.SAMPLE)
        rate = parse_sample(sample[0]) if sample else None
        if rate is not None:
            trace = trace.with_sampled(self.rng.random() < rate)
        deadline = parse_deadline(ctx.get(h.CTX_DEADLINE, ()))
        return fields, local, trace, deadline, via_values, ctx

    async def _respond_error(
        self, down: Conn, req: Request, body: Body, status: int, message: str, edge: bool, rules: ServerRules
    ) -> bool:
        """Answer the request with a Linkerd error; keep the connection only if the body was read."""
        # A client waiting for 100-continue will not send the body: close instead of draining it.
        keep = req.keep_alive and not (req.expect_continue and not body.done and not body.received) and await _discard(body)
        await down.send_all(error_response(status, message, edge, self.params.max_err_response, self.params.max_head, keep, req))
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


def _to_origin_form(req: Request) -> bytes:
    """A proxy-form request (``GET http://hello/path``, clients with ``http_proxy`` set): its
    authority becomes the Host (the received Host is ignored, RFC 9112 §3.2.2) and the target the
    origin form, before identification, so routing and forwarding use the same authority.
    Returns the scheme (lower case)."""
    scheme, rest = req.target.split(b"://", 1)
    slash = rest.find(b"/")
    query = rest.find(b"?")
    cut = min(i for i in (slash, query, len(rest)) if i >= 0)
    authority, path = rest[:cut], rest[cut:]
    if b"@" in authority:  # userinfo has no place in a request target's authority
        authority = authority.rsplit(b"@", 1)[1]
    req.target = path if path.startswith(b"/") else b"/" + path
    req.host = authority
    req.headers = [kv for kv in req.headers if kv[0].lower() != b"host"] + [(b"Host", authority)]
    return scheme.lower()
