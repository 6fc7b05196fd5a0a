"""The read-only view of a running proxy: what the admin server and telemetry may read of it.

The runtime builds one :class:`ProxyView` over the live objects it made (routers and their data
paths, listeners, the lane, the parsed config); admin endpoints and the live gauges read the proxy
only through it. Every value is read by name from a typed object, so a renamed attribute fails a
test rather than turning into a silent zero metric, and nothing here can change the proxy except
:meth:`ProxyView.request_stop` (``POST /admin/shutdown``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .datapath.client import Client, accrual_counts
from .datapath.forwarder import Forwarder
from .datapath.lane import LaneDriver
from .datapath.server import Server

if TYPE_CHECKING:
    from .discovery.namers.k8s import K8sNamer
from .naming.dtab import Dtab
from .naming.name import ADDR_NEG, ADDR_PENDING, AddrBound, AddrFailed
from .resilience.accrual import ALIVE, PROBING
from .routing.explain import explain

__all__ = ["ClientView", "LaneView", "ProxyView", "RouterView", "ServerView"]


class ServerView:
    """One listener: its router, address, and the connections and requests it holds now."""

    __slots__ = ("_server",)

    def __init__(self, server: Server) -> None:
        self._server = server

    @property
    def label(self) -> str:
        return self._server.label

    @property
    def ip(self) -> str:
        return self._server.ip

    @property
    def port(self) -> int:
        """The bound port (a configured 0 asks the OS for one), or the configured one before binding."""
        s = self._server
        if s.listeners:
            try:
                return int(s.listeners[0].socket.getsockname()[1])
            except OSError:
                pass
        return s.port

    @property
    def id(self) -> str:
        """``ip/port``, as metrics name a server scope."""
        return f"{self.ip}/{self.port}"

    @property
    def connections(self) -> int:
        """Open client connections, in Python and in the lane."""
        return self._server.held()

    @property
    def pending(self) -> int:
        """Requests being served on the trio path."""
        return self._server.active

    @property
    def edge(self) -> bool:
        """``clearContext``: overrides are removed here (but validly signed ones, with ``signedOverrides``)."""
        return self._server.rules.clear_context

    @property
    def signed(self) -> bool:
        """The listener accepts signed overrides (``signedOverrides``)."""
        ov = self._server.rules.overrides
        return ov is not None and ov.signed is not None

    @property
    def rules(self) -> Any:
        return self._server.rules


class ClientView:
    """One client (a bound name): its address set, endpoints, outstanding requests, pooled connections."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def id(self) -> str:
        return self._client.id

    @property
    def state(self) -> Dict[str, Any]:
        """Linkerd's ``/client_state.json`` entry of the client's address set."""
        addr = self._client.state
        if isinstance(addr, AddrBound):
            return {"state": "bound", "addresses": [f"{a.host}:{a.port}" for a in addr.addresses]}
        if isinstance(addr, AddrFailed):
            return {"state": f"failed: {addr.cause}"}
        if addr is ADDR_NEG:
            return {"state": "neg"}
        assert addr is ADDR_PENDING, f"unknown address state {addr!r}"
        return {"state": "pending"}

    @property
    def size(self) -> int:
        return len(self._client.endpoints)

    @property
    def available(self) -> int:
        """Endpoints failure accrual lets take a request (alive, or past their backoff and free
        for a probe; not dead, nor busy with their probe), as Finagle counts open endpoints."""
        eps = self._client.endpoints.values()
        return sum(1 for e in eps if e.accrual is None or e.accrual.state in (ALIVE, PROBING))

    @property
    def accrual(self) -> Tuple[int, int, int, int]:
        """``failure_accrual/{removals,probes,revivals,removed_for_ms}`` summed over the client's
        endpoints, those since removed included."""
        c = self._client
        out = list(c.retired_accrual)
        for e in c.endpoints.values():
            if e.accrual is not None:
                for i, n in enumerate(accrual_counts(e.accrual)):
                    out[i] += n
        return out[0], out[1], out[2], out[3]

    @property
    def pending(self) -> int:
        """Requests picked and not yet done (the balancer kernel counts them per slot)."""
        c = self._client
        return sum(c.balancer.pending(e.slot) for e in c.endpoints.values())

    @property
    def idle_connections(self) -> int:
        return sum(len(e.pool.idle) for e in self._client.endpoints.values())


class RouterView:
    """One router: its label, current dtab, how it binds names, its listeners and clients."""

    __slots__ = ("_forwarder", "servers")

    def __init__(self, forwarder: Forwarder, servers: Sequence[ServerView]) -> None:
        self._forwarder = forwarder
        self.servers = list(servers)

    @property
    def label(self) -> str:
        return self._forwarder.label

    @property
    def dtab(self) -> Dtab:
        """The dtab requests are bound with now (an ``io.l5d.fs`` interpreter's file ++ the router's)."""
        return self._forwarder.router.params.dtab

    @property
    def interpreter(self) -> Any:
        """The router's interpreter (``lookup_namers`` for the delegator)."""
        return self._forwarder.router.params.interpreter

    def clients(self) -> List[ClientView]:
        return [ClientView(c) for c in list(self._forwarder.clients.values())]

    def explain(self, server: int, text: str) -> Dict[str, Any]:
        """Where a pasted request would go through listener ``server`` of this router (the
        playground's "where will my request go"; nothing is sent or counted).

        Raises:
            ValueError: no such listener, or the text does not read as a request.
        """
        if not 0 <= server < len(self.servers):
            raise ValueError(f"router {self.label} has no server {server}")
        rules = self.servers[server].rules
        return explain(self._forwarder.router, rules, text, time.time())


class LaneView:
    """The native data path's counters."""

    __slots__ = ("_lane",)

    def __init__(self, lane: LaneDriver) -> None:
        self._lane = lane

    def gauges(self) -> Iterator[Tuple[str, int]]:
        """``(name, value)`` of ``lane/<name>``: routes installed, pooled upstream connections, and
        what it did (requests, handoffs, resumes, failed connects, installs)."""
        yield "routes", self._lane.native.routes()
        yield "pooled", self._lane.native.pooled()
        yield from self._lane.counts.items()


class NamerView:
    """A namer that watches something (Kubernetes): its state and counters, by its prefix."""

    __slots__ = ("prefix", "_namer")

    def __init__(self, prefix: str, namer: "K8sNamer") -> None:
        self.prefix = prefix  # /#/io.l5d.k8s
        self._namer = namer

    @property
    def state_path(self) -> str:
        """Linkerd's admin path of its state: ``/namer_state/io.l5d.k8s.json``."""
        return f"/namer_state/{self.prefix[len('/#/'):]}.json"

    def state(self) -> Dict[str, Any]:
        return self._namer.state_json()

    def metrics(self) -> List[Tuple[str, int]]:
        return self._namer.metrics()

    def bound_names(self) -> List[str]:
        return self._namer.bound_names()


class ProxyView:
    """Everything admin and telemetry read of one running proxy."""

    def __init__(
        self, config: Any, routers: Sequence[RouterView], lane: Optional[LaneView], request_stop: Callable[[], None],
        namers: Sequence[NamerView] = (),
    ) -> None:
        self.config = config
        self.routers = list(routers)
        self.lane = lane
        self.namers = list(namers)
        self._request_stop = request_stop

    @classmethod
    def of(cls, config: Any, forwarders: Sequence[Forwarder], servers: Sequence[Server], lane: Optional[LaneDriver],
           request_stop: Callable[[], None], namers: Sequence[Tuple[str, "K8sNamer"]] = ()) -> "ProxyView":
        routers = [RouterView(f, [ServerView(s) for s in servers if s.forwarder is f]) for f in forwarders]
        return cls(config, routers, LaneView(lane) if lane is not None else None, request_stop,
                   [NamerView(prefix, n) for prefix, n in namers])

    @property
    def servers(self) -> List[ServerView]:
        return [s for r in self.routers for s in r.servers]

    def router(self, label: str) -> Optional[RouterView]:
        for r in self.routers:
            if r.label == label:
                return r
        return None

    def request_stop(self) -> None:
        """Begin a graceful stop (``POST /admin/shutdown``)."""
        self._request_stop()
