"""A Linkerd 1.x HTTP router: from a parsed request to the bound name it goes to (deciding a route).

Per request (DESIGN.md "The request path"), :meth:`Router.decide` applies the context rules (edge
scrub, or ``l5d-ctx-dtab`` ++ ``l5d-dtab`` overrides, trace, deadline), identifies the logical name,
binds it with ``router dtab ++ local dtab`` (cached per local dtab and name, invalidated when a
namer's answers change) and picks a branch of a weighted union. It returns a :class:`Route`, or
raises :class:`RouteError` with Linkerd's status and message: 400 (bad override, unidentified,
loop), 502 (no route, a namer failed), 503 (the dtab did not arrive in time). Serving the route
(its client, the exchange, the response) is :mod:`pyproxy.datapath.forwarder`'s.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import trio

from ..errors import DtabError, NamePending, PathError, PyproxyError
from ..http import headers as h
from ..http.context import OverrideCache, TraceId, parse_deadline, parse_sample
from ..http.forwarded import Forwarded
from ..http.message import Request
from ..naming.binding import ConfiguredNamersInterpreter
from ..naming.dtab import Dtab
from ..naming.name import Bound
from ..naming.path import Path
from ..naming.tree import Alt, Leaf, NameTree, Union
from .cache import Lru
from .identifiers import Identified, Identifier, compose
from .overrides import OverrideCounts, OverrideRefused, OverrideRules, resolve
from .policy import Policies, ServicePolicy

__all__ = ["Route", "RouteError", "Router", "RouterParams", "ServerRules"]

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
    bind_cache: int = 1000  # bindingCache.trees: bound trees kept, per (override, logical name)


@dataclass(frozen=True)
class ServerRules:
    """Per-listener rules: ``clearContext`` makes it an edge."""

    clear_context: bool = False
    via: bytes = b"1.1 pyproxy"
    max_call_depth: int = 1000
    timestamp_header: Optional[bytes] = None  # timestampHeader: this field gets the time in ms
    forwarded: Optional[Forwarded] = None  # addForwardedHeader
    #: the router's dtabBaggage carriers and, at an edge, signedOverrides (None: neither)
    overrides: Optional[OverrideRules] = None


class RouteError(Exception):
    """A request the router answers itself: ``status`` and the Linkerd error message."""

    def __init__(self, status: int, message: str, retryable: bool = False, public: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.public = public  # the message may be shown at an edge (it says nothing of the inside)


class Route:
    """What :meth:`Router.decide` found for one request: where it goes and the context it carries.

    ``fields`` are the client's fields that go on (hop-by-hop and context fields removed; the proxy's
    own are added when the route is served); ``ctx`` the context fields as read (the lane keys
    routes by the override values among them); ``deadline`` the incoming ``l5d-ctx-deadline``
    (``(start_ns, end_ns)``) or None; ``scheme`` the scheme of a proxy-form target (None for origin
    form); ``bound`` is None only for a resumed exchange, which keeps its client's bound name.
    ``extra`` keys the route in the lane besides the ``l5d-*`` values (a baggage member read, a
    signature); ``carried`` the carrier fields sent after ``l5d-ctx-dtab``; ``until`` the end of a
    signed override's validity (Unix seconds) or None.
    """

    __slots__ = (
        "dst", "target", "tree", "bound", "local", "trace", "deadline", "via", "ctx", "fields", "scheme", "service",
        "extra", "carried", "until",
    )

    def __init__(
        self, dst: Path, target: bytes, tree: NameTree, bound: Optional[Bound], local: Dtab, trace: TraceId,
        deadline: Optional[Tuple[int, int]], via: List[bytes], ctx: Dict[bytes, Any], fields: List[Tuple[bytes, bytes]],
        scheme: Optional[bytes], service: ServicePolicy,
    ) -> None:
        self.dst = dst
        self.target = target
        self.tree = tree
        self.bound = bound
        self.local = local
        self.trace = trace
        self.deadline = deadline
        self.via = via
        self.ctx = ctx
        self.fields = fields
        self.scheme = scheme
        self.service = service
        self.extra = b""
        self.carried: List[Tuple[bytes, bytes]] = []
        self.until: Optional[float] = None


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
        #: overrides ignored or refused (rt/<label>/overrides/...), set by the data path's stats
        self.counts: Optional[OverrideCounts] = None
        self._binds: Lru[Tuple[str, Tuple[bytes, ...]], _Bind] = Lru(params.bind_cache)
        self.policies = params.policies or Policies()
        self.limits = (params.max_line, params.max_head, params.max_headers)
        self.requests = 0
        #: called whenever the router's bindings may have changed (the dtab changed): whoever caches
        #: routes decided by this router (the lane's route table) forgets them
        self.on_rebind: List[Callable[[], None]] = []
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
        for hook in self.on_rebind:
            hook()
        if self.dtab_pending is not None:
            self.dtab_pending.set()
            self.dtab_pending = None

    def rebind(self) -> None:
        """The interpreter's answers changed (namerd sent a new tree): lane routes are dropped;
        cached bindings are recomputed when the namer versions say so."""
        for hook in self.on_rebind:
            hook()

    async def _dtab_ready(self, dst: Path) -> None:
        pending = self.dtab_pending
        if pending is None:
            return
        with trio.move_on_after(self.params.binding_timeout):
            await pending.wait()
        if self.dtab_pending is not None:
            raise RouteError(503, f"exceeded {self.params.binding_timeout:g} seconds binding {dst.show}: {self.dtab_problem}")

    async def _identify(self, req: Request) -> Any:
        """The identifiers' answer, waiting while one (Ingress rules) is still learning (``bindingTimeoutMs``)."""
        deadline = trio.current_time() + self.params.binding_timeout
        while True:
            try:
                return compose(self.params.identifiers, req)
            except NamePending as pending:
                with trio.move_on_at(deadline):
                    await pending.ready.wait()  # type: ignore[attr-defined]
                    continue
                raise RouteError(503, f"exceeded {self.params.binding_timeout:g} seconds identifying the request: {pending}") from None

    async def _bind_when_known(self, local: Dtab, dst: Path) -> NameTree:
        """:meth:`bind`, waiting while a namer is still learning a name (up to ``bindingTimeoutMs``)."""
        deadline = trio.current_time() + self.params.binding_timeout
        while True:
            try:
                return self.bind(local, dst)
            except NamePending as pending:
                with trio.move_on_at(deadline):
                    await pending.ready.wait()  # type: ignore[attr-defined]
                    continue
                raise RouteError(503, f"exceeded {self.params.binding_timeout:g} seconds binding {dst.show}: {pending}") from None

    def bind(self, local: Dtab, dst: Path) -> NameTree:
        """The bound tree of ``dst`` under ``router dtab ++ local`` (cached until a namer changes)."""
        key = (local.show, dst.elems)
        version = self.params.namer_versions()
        hit = self._binds.get(key)
        if hit is not None and hit.version == version:
            return hit.tree
        dtab = self.params.dtab.concat(local) if local.dentries else self.params.dtab
        tree = self.params.interpreter.bind(dtab, dst)
        self._binds.put(key, _Bind(version, tree))
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

    def no_route_message(self, dst: Path, local: Dtab) -> str:
        lines = ["Unable to route request!", "", f"service name: {dst.show}", "dtab:", "", "base dtab:"]
        lines += [f"  {d.prefix.show} => {d.dst.show}" for d in self.params.dtab]
        lines.append("override dtab:")
        lines += [f"  {d.prefix.show} => {d.dst.show}" for d in local]
        return "\n".join(lines)

    # === deciding a route ===

    async def decide(self, req: Request, rules: ServerRules, bound: Optional[Bound] = None) -> Route:
        """Where ``req`` goes, with the context it carries on.

        ``bound``: the bound name is already known (an exchange the lane started and Python
        continues), so no branch is picked. Raises :class:`RouteError` for a request the router
        answers itself.
        """
        self.requests += 1
        edge = rules.clear_context
        scheme = None
        if req.target[:1] != b"/" and req.target[:4].lower() == b"http" and b"://" in req.target:
            scheme = _to_origin_form(req)
        try:
            fields, local, trace, deadline, via, ctx, resolved = self._context(req, edge, rules)
            ident = await self._identify(req)
            if not isinstance(ident, Identified):
                raise RouteError(400, f"Unknown destination: {req.method.decode('latin-1')} {req.target.decode('latin-1')} / {ident.reason}")
            dst = ident.dst
            target = req.target if ident.target is None else ident.target.encode("latin-1")
            if self.dtab_pending is not None:
                await self._dtab_ready(dst)
            tree = await self._bind_when_known(local, dst)
            if bound is None:
                bound = self.pick(tree)
                if bound is None:
                    raise RouteError(502, self.no_route_message(dst, local))
            else:  # the request's own residual, under the bound name already chosen
                bound = _leaf_with_id(tree, bound)
        except (DtabError, PathError) as exc:
            raise RouteError(400, str(exc)) from None
        except OverrideRefused as exc:
            raise RouteError(exc.status, str(exc), public=True) from None
        except RouteError:
            raise
        except PyproxyError as exc:  # a namer failed, or binding looped
            raise RouteError(502, str(exc)) from None
        route = Route(dst, target, tree, bound, local, trace, deadline, via, ctx, fields, scheme, self.policies.service(dst.show))
        if resolved is not None:
            route.extra, route.carried, route.until = resolved.extra, resolved.carried, resolved.until
        return route

    def _context(self, req: Request, edge: bool, rules: ServerRules) -> tuple:
        ov = rules.overrides
        fields, ctx, via_values = h.scan_request(req.headers, req.connection, edge=edge, capture=ov.capture if ov is not None else None)
        if via_values:
            via = [e.strip() for v in via_values for e in v.split(b",") if e.strip()]
            if len(via) > rules.max_call_depth or rules.via in via:
                raise RouteError(400, f"Maximum number of proxy hops exceeded or proxy loop detected (Via: {b', '.join(via).decode('latin-1')})")
        draw = self.rng.getrandbits(64) or 1
        resolved = None
        if ov is not None:  # dtabBaggage, or an edge (its carriers are scrubbed, signed overrides read)
            resolved = resolve(ov, ctx, self.overrides, time.time(), self.counts)
            local = resolved.local
            if edge:
                return fields, local, TraceId.root(self.rng.getrandbits(64) or 1).child(draw), None, via_values, ctx, resolved
        elif edge or not ctx:
            return fields, _EMPTY_DTAB, TraceId.root(self.rng.getrandbits(64) or 1).child(draw), None, via_values, ctx, None
        else:
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
        return fields, local, trace, deadline, via_values, ctx, resolved


def _leaf_with_id(tree: NameTree, bound: Bound) -> Bound:
    """The leaf of ``tree`` bound to the same name as ``bound`` (``bound`` itself when none is)."""
    stack = [tree]
    while stack:
        t = stack.pop()
        if type(t) is Leaf:
            v = t.value  # type: ignore[attr-defined]
            if isinstance(v, Bound) and v.id == bound.id:
                return v
        elif type(t) is Union:
            stack.extend(w.tree for w in t.weighted)  # type: ignore[attr-defined]
        elif type(t) is Alt:
            stack.extend(t.trees)  # type: ignore[attr-defined]
    return bound


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
