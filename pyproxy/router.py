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
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import trio

from . import headers as h
from .client import Client, NoEndpoints
from .context import OverrideCache, TraceId, format_deadline, parse_deadline, parse_sample
from .errors import DtabError, PathError, PyproxyError, RemoteProtocolError
from .http1 import Request, reason_phrase, serialize_response_head
from .identifiers import Identified, Identifier, compose
from .naming.binding import ConfiguredNamersInterpreter
from .naming.dtab import Dtab
from .naming.name import Bound
from .naming.path import Path
from .naming.tree import Alt, Leaf, NameTree, Union
from .stream import Body, Conn

__all__ = ["Router", "RouterParams", "ServerRules"]

# Context fields the router reads and re-writes itself; the received copies never travel on.
_CONSUMED = frozenset(
    (h.DTAB, h.CTX_DTAB, h.CTX_TRACE, h.CTX_DEADLINE, h.SAMPLE, h.REQID, h.DST_SERVICE, h.DST_CLIENT, h.DST_RESIDUAL)
)


@dataclass(frozen=True)
class RouterParams:
    """What a router needs from its configuration (``routers[i]`` of a Linkerd config)."""

    label: str
    dtab: Dtab
    identifiers: Sequence[Identifier]
    interpreter: ConfiguredNamersInterpreter
    namer_versions: Callable[[], Tuple[Optional[int], ...]] = lambda: ()
    binding_timeout: float = 10.0
    max_line: int = 4096
    max_head: int = 8192
    max_headers: int = 100
    max_err_response: int = 5120 * 1024
    stream_after: int = 5 * 1024
    request_attempt_timeout: Optional[float] = None
    total_timeout: Optional[float] = None


@dataclass(frozen=True)
class ServerRules:
    """Per-listener rules: ``clearContext`` makes it an edge."""

    clear_context: bool = False
    via: bytes = b"1.1 pyproxy"
    max_call_depth: int = 1000


class RouteError(Exception):
    """A request the router answers itself: ``status`` and the Linkerd error message."""

    def __init__(self, status: int, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class _Bind:
    __slots__ = ("version", "tree")

    def __init__(self, version: tuple, tree: NameTree) -> None:
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
        self.limits = (params.max_line, params.max_head, params.max_headers)
        self.requests = 0

    # === naming ===

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
            c = self.clients[key] = Client(bound, self.rng)
        return c

    def no_route_message(self, dst: Path, local: Dtab) -> str:
        lines = ["Unable to route request!", "", f"service name: {dst.show}", "dtab:", "", "base dtab:"]
        lines += [f"  {d.prefix.show} => {d.dst.show}" for d in self.params.dtab]
        lines.append("override dtab:")
        lines += [f"  {d.prefix.show} => {d.dst.show}" for d in local]
        return "\n".join(lines)

    # === requests ===

    async def handle(self, req: Request, body: Body, down: Conn, rules: ServerRules) -> bool:
        """Serve one request read from ``down``; returns whether ``down`` may carry another request."""
        self.requests += 1
        edge = rules.clear_context
        try:
            fields, local, trace, deadline = self._context(req, edge, rules)
            ident = compose(self.params.identifiers, req)
            if not isinstance(ident, Identified):
                raise RouteError(400, f"Unknown destination: {req.method.decode('latin-1')} {req.target.decode('latin-1')} / {ident.reason}")
            dst = ident.dst
            target = req.target if ident.target is None else ident.target.encode("latin-1")
            tree = self.bind(local, dst)
            bound = self.pick(tree)
            if bound is None:
                raise RouteError(502, self.no_route_message(dst, local))
            client = self.client(bound)
            if client.state is not None and not client.live:
                if not await client.wait_ready(self.params.binding_timeout):
                    raise RouteError(503, f"exceeded {self.params.binding_timeout:g} seconds binding {dst.show}")
            try:
                ep = client.pick()
            except NoEndpoints as exc:
                raise RouteError(502, f"{self.no_route_message(dst, local)}\n\n{bound.id.show}: {exc}") from None
        except RouteError as exc:
            return await self._respond_error(down, req, body, exc.status, str(exc), edge, rules)
        except (DtabError, PathError) as exc:
            status = 400
            return await self._respond_error(down, req, body, status, str(exc), edge, rules)
        except PyproxyError as exc:  # a namer failed, or binding looped
            return await self._respond_error(down, req, body, 502, str(exc), edge, rules)

        # Fields the proxy adds, after the client's own (and its nominations) were removed.
        fields.append((b"Via", _via(req, rules)))
        fields.append((b"l5d-dst-service", dst.show.encode("latin-1")))
        fields.append((b"l5d-dst-client", bound.id.show.encode("latin-1")))
        if bound.residual.elems:
            fields.append((b"l5d-dst-residual", bound.residual.show.encode("latin-1")))
        fields.append((b"l5d-ctx-trace", trace.header()))
        fields.append((b"l5d-reqid", trace.reqid))
        if deadline is not None:
            fields.append((b"l5d-ctx-deadline", format_deadline(*deadline)))
        if local.dentries:
            fields.append((b"l5d-ctx-dtab", local.show.encode("latin-1")))
        return await self._exchange(req, body, down, rules, ep, client, target, fields, deadline)

    def _context(self, req: Request, edge: bool, rules: ServerRules) -> tuple:
        fields = h.remove_hop_by_hop(req.headers, req.connection, edge=edge)
        via = h.via_entries(req.headers)
        if len(via) > rules.max_call_depth or rules.via in via:
            raise RouteError(400, f"Maximum number of proxy hops exceeded or proxy loop detected (Via: {b', '.join(via).decode('latin-1')})")
        draw = self.rng.getrandbits(64) or 1
        if edge:
            return h.remove_l5d(fields), Dtab.EMPTY, TraceId.root(draw), None  # type: ignore[attr-defined]
        ctx = h.get_all(req.headers, h.CTX_DTAB)
        user = h.get_all(req.headers, h.DTAB)
        local = self.overrides.get(ctx, user) if (ctx or user) else Dtab.EMPTY  # type: ignore[attr-defined]
        raw_trace = h.get(req.headers, h.CTX_TRACE)
        parent = TraceId.from_header(raw_trace) if raw_trace else None
        trace = parent.child(draw) if parent else TraceId.root(draw)
        sample = parse_sample(h.get(req.headers, h.SAMPLE))
        if sample is not None:
            trace = trace.with_sampled(self.rng.random() < sample)
        deadline = parse_deadline(h.get_all(req.headers, h.CTX_DEADLINE))
        fields = [kv for kv in fields if kv[0].lower() not in _CONSUMED]
        return fields, local, trace, deadline

    async def _respond_error(
        self, down: Conn, req: Request, body: Body, status: int, message: str, edge: bool, rules: ServerRules
    ) -> bool:
        """Answer the request with a Linkerd error; keep the connection only if the body was read."""
        # A client waiting for 100-continue will not send the body: close instead of draining it.
        keep = req.keep_alive and not (req.expect_continue and not body.done and not body.received) and await _discard(body)
        await down.send_all(error_response(status, message, edge, self.params.max_err_response, self.params.max_head, keep, rules, req))
        return keep

    async def _exchange(
        self,
        req: Request,
        body: Body,
        down: Conn,
        rules: ServerRules,
        ep: object,
        client: Client,
        target: bytes,
        fields: List[Tuple[bytes, bytes]],
        deadline: Optional[Tuple[int, int]],
    ) -> bool:
        from .exchange import Exchange

        ex = Exchange(self, req, body, down, rules, ep, client, target, fields)  # type: ignore[arg-type]
        # One attempt for now (retries come with the balancer), so both timeouts bound it.
        limits = [t for t in (self.params.total_timeout, self.params.request_attempt_timeout) if t is not None]
        timeout = min(limits) if limits else None
        if deadline is not None:
            remaining = (deadline[1] - time.time_ns()) / 1e9
            timeout = remaining if timeout is None else min(timeout, remaining)
        return await ex.run(timeout)


def _via(req: Request, rules: ServerRules) -> bytes:
    existing = h.get_all(req.headers, b"via")
    return b", ".join([*existing, rules.via]) if existing else rules.via


async def _discard(body: Body, limit: int = 64 * 1024) -> bool:
    """Read and drop a small remaining request body so the connection can be reused."""
    try:
        with trio.move_on_after(1.0):
            return await body.drain(limit)
    except RemoteProtocolError:
        return False
    return False


def error_response(
    status: int,
    message: str,
    edge: bool,
    max_body: int,
    max_header: int,
    keep: bool,
    rules: Optional[ServerRules] = None,
    req: Optional[Request] = None,
) -> bytes:
    """A Linkerd-generated error: text/plain body and ``l5d-err``; at an edge, no ``l5d-err`` and no body."""
    fields: List[Tuple[bytes, bytes]] = []
    payload = b""
    if not edge:
        payload = message.encode("utf-8", "replace")[:max_body]
        fields.append((b"l5d-err", h.err_header_value(message, max_header)))
    fields.append((b"Content-Type", b"text/plain"))
    fields.append((b"Content-Length", b"%d" % len(payload)))
    if not keep:
        fields.append((b"Connection", b"close"))
    minor = req.minor if req is not None else 1
    head = serialize_response_head(minor, status, reason_phrase(status), fields)
    if req is not None and req.method == b"HEAD":
        return head
    return head + payload

