"""Clients: one per bound name, balancing over its live endpoints, each with a keep-alive pool.

A :class:`Client` observes its bound name's address set: endpoints that stay keep their state
(outstanding requests, pooled connections), new ones are added, removed ones stop receiving new
requests while requests in flight on them finish. :class:`EndpointPool` keeps idle upstream
connections per endpoint and checks, without blocking, that a pooled connection is still open before
reusing it.
"""

from __future__ import annotations

import random
import select
from typing import Dict, List, Optional, Tuple

import trio

from .balance import Endpoint, pick_p2c
from .naming.name import ADDR_NEG, ADDR_PENDING, AddrBound, AddrFailed, Bound
from .stream import Conn

__all__ = ["Client", "EndpointPool", "NoEndpoints"]


class NoEndpoints(Exception):
    """The bound name has no endpoints (negative, failed, or empty) right now."""


class EndpointPool:
    """Idle connections to one ``host:port``, most recently used first."""

    __slots__ = ("host", "port", "idle", "max_idle", "closed", "connects")

    def __init__(self, host: str, port: int, max_idle: int = 128) -> None:
        self.host = host
        self.port = port
        self.idle: List[Conn] = []
        self.max_idle = max_idle
        self.closed = False
        self.connects = 0

    def take_idle(self) -> Optional[Conn]:
        """A pooled connection that is still open, or None."""
        while self.idle:
            conn = self.idle.pop()
            if _still_open(conn):
                return conn
            _close_now(conn)
        return None

    async def connect(self) -> Conn:
        self.connects += 1
        stream = await trio.open_tcp_stream(self.host, self.port)
        return Conn(stream)

    def release(self, conn: Conn, reusable: bool) -> None:
        """Return a connection after a response: pooled if reusable, else closed."""
        if reusable and not self.closed and not conn.buf and len(self.idle) < self.max_idle:
            self.idle.append(conn)
        else:
            _close_now(conn)

    def close(self) -> None:
        """Stop pooling; idle connections close now, busy ones when released."""
        self.closed = True
        for conn in self.idle:
            _close_now(conn)
        self.idle.clear()


def _still_open(conn: Conn) -> bool:
    """True when an idle pooled connection has nothing to read: readable means the upstream closed
    it (or sent unsolicited bytes), and either way it must not carry another request."""
    try:
        readable, _, _ = select.select([conn.sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _close_now(conn: Conn) -> None:
    conn.close()


class Client:
    """The client of one bound name: its endpoints, kept in step with the name's address set."""

    def __init__(self, bound: Bound, rng: Optional[random.Random] = None) -> None:
        self.bound = bound
        self.id = bound.id.show
        self.rng = rng or random.Random()
        self.endpoints: Dict[Tuple[str, int], Endpoint[EndpointPool]] = {}
        self.live: List[Endpoint[EndpointPool]] = []
        self.state: object = ADDR_PENDING
        self.changed = trio.Event()
        self.requests = 0
        self._stop = bound.addr.observe(self._update)
        self._update(bound.addr.value)

    def _update(self, addr: object) -> None:
        self.state = addr
        if isinstance(addr, AddrBound):
            wanted: Dict[Tuple[str, int], float] = {}
            for a in addr.addresses:
                wanted[(a.host, a.port)] = float(a.meta.get("endpoint_addr_weight", 1.0))
            for key, ep in list(self.endpoints.items()):
                if key not in wanted:
                    ep.pool.close()
                    del self.endpoints[key]
            for key, weight in wanted.items():
                ep = self.endpoints.get(key)
                if ep is None:
                    self.endpoints[key] = Endpoint(key[0], key[1], EndpointPool(key[0], key[1]), weight)
                else:
                    ep.weight = weight
        elif addr is ADDR_NEG or isinstance(addr, AddrFailed):
            for ep in self.endpoints.values():
                ep.pool.close()
            self.endpoints.clear()
        self.live = list(self.endpoints.values())
        old, self.changed = self.changed, trio.Event()
        old.set()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds while the address set is still pending; False on timeout."""
        with trio.move_on_after(timeout):
            while self.state is ADDR_PENDING:
                await self.changed.wait()
            return True
        return False

    def pick(self) -> Endpoint[EndpointPool]:
        """An endpoint for the next request.

        Raises:
            NoEndpoints: with the reason (negative, failed or empty address set).
        """
        ep = pick_p2c(self.live, self.rng.getrandbits(64))
        if ep is None:
            state = self.state
            if isinstance(state, AddrFailed):
                raise NoEndpoints(f"address resolution failed: {state.cause}")
            raise NoEndpoints("no endpoints" if isinstance(state, AddrBound) else "name is negative")
        return ep

    def close(self) -> None:
        self._stop()
        for ep in self.endpoints.values():
            ep.pool.close()

