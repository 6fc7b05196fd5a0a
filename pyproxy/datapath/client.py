"""Clients: one per bound name, balancing over its live endpoints, each with a keep-alive pool.

A :class:`Client` observes its bound name's address set: endpoints that stay keep their state
(outstanding requests, pooled connections), new ones are added, removed ones stop receiving new
requests while requests in flight on them finish. :class:`EndpointPool` keeps idle upstream
connections per endpoint and checks, without blocking, that a connection pooled for a while is still
open before reusing it.
"""

from __future__ import annotations

import random
import select
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import trio

from .. import _impl
from ..resilience.accrual import DEAD, Accrual
from ..resilience.endpoint import Endpoint
from ..naming.name import ADDR_PENDING, AddrBound, AddrFailed, Bound
from ..routing.policy import ClientPolicy
from ..resilience.retry import RetryBudget
from .stream import Conn

__all__ = ["Client", "EndpointPool", "NoEndpoints"]


class NoEndpoints(Exception):
    """The bound name has no endpoints (negative, failed, or empty) right now."""


#: A pooled connection idle for longer than this is checked (one syscall) before it is reused. One
#: released more recently is reused unchecked: servers close idle connections after seconds, and a
#: connection found closed when used is replaced once anyway (the request was not received), so the
#: check only saves a wasted write. Skipping it under load saves a syscall per request.
CHECK_AFTER = 1.0


class EndpointPool:
    """Idle connections to one ``host:port``, most recently used first."""

    __slots__ = ("host", "port", "idle", "max_idle", "closed", "connects")

    def __init__(self, host: str, port: int, max_idle: int = 128) -> None:
        self.host = host
        self.port = port
        self.idle: List[Tuple[Conn, float]] = []  # (connection, when released: time.monotonic())
        self.max_idle = max_idle
        self.closed = False
        self.connects = 0

    def take_idle(self) -> Optional[Conn]:
        """A pooled connection that is still open, or None."""
        while self.idle:
            conn, since = self.idle.pop()
            if time.monotonic() - since < CHECK_AFTER or _still_open(conn):
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
            self.idle.append((conn, time.monotonic()))
        else:
            _close_now(conn)

    def close(self) -> None:
        """Stop pooling; idle connections close now, busy ones when released."""
        self.closed = True
        for conn, _ in self.idle:
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
    """The client of one bound name: its endpoints, kept in step with the name's address set,
    balanced by the kernel :class:`~pyproxy._impl.Balancer` (p2c, ewma, roundRobin, heap), each with
    failure accrual."""

    def __init__(self, bound: Bound, policy: Optional[ClientPolicy] = None, rng: Optional[random.Random] = None) -> None:
        self.bound = bound
        self.id = bound.id.show
        self.policy = policy or ClientPolicy()
        self.rng = rng or random.Random()
        self.balancer = _impl.Balancer(self.policy.balancer, self.policy.decay_s)
        self.requeues = RetryBudget(*self.policy.requeue)
        self.endpoints: Dict[Tuple[str, int], Endpoint] = {}
        self.by_slot: Dict[int, Endpoint] = {}
        self.live: List[Endpoint] = []
        self._dead: List[Endpoint] = []
        self._next_slot = 0
        self.state: object = ADDR_PENDING
        self.changed = trio.Event()
        self.requests = 0
        self.stats: Any = None  # rt/<router>/client/<id> (metrics.RequestStats), set by the router
        # called when the endpoints or their health change (the lane forgets its routes then)
        self.on_change: Optional[Callable[[], None]] = None
        self._stop = bound.addr.observe(self._update)
        self._update(bound.addr.value)

    def _slot(self) -> int:
        # Slots are not reused soon: a late end() for a removed endpoint must not hit a new one.
        while True:
            slot = self._next_slot
            self._next_slot = (slot + 1) % 65536
            if slot not in self.by_slot:
                return slot

    def _update(self, addr: object) -> None:
        self.state = addr
        # Endpoint weights (`host port * w` in io.l5d.fs files) are not used for balancing yet.
        wanted = {(a.host, a.port) for a in addr.addresses} if isinstance(addr, AddrBound) else set()
        now = trio.current_time() if _in_trio() else 0.0
        for key, ep in list(self.endpoints.items()):
            if key not in wanted:
                ep.pool.close()
                self.balancer.remove(ep.slot)
                del self.by_slot[ep.slot]
                del self.endpoints[key]
        for key in wanted - self.endpoints.keys():
            slot = self._slot()
            accrual = Accrual.from_config(self.policy.accrual) if self.policy.accrual is not None else Accrual.default()
            ep = self.endpoints[key] = Endpoint(key[0], key[1], EndpointPool(key[0], key[1]), slot, accrual)
            self.by_slot[slot] = ep
            self.balancer.add(slot, now)
        self.live = list(self.endpoints.values())
        self._dead = [ep for ep in self.live if ep.accrual is not None and ep.accrual.state == DEAD]
        old, self.changed = self.changed, trio.Event()
        old.set()
        if self.on_change is not None:
            self.on_change()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds while the address set is still pending; False on timeout."""
        with trio.move_on_after(timeout):
            while self.state is ADDR_PENDING:
                await self.changed.wait()
            return True
        return False

    def pick(self, now: float) -> Endpoint:
        """An endpoint for the next request (counted as outstanding until :meth:`done`).

        Raises:
            NoEndpoints: with the reason (negative, failed or empty address set).
        """
        if self._dead:
            self._revive(now)
        slot = self.balancer.pick(now, self.rng.getrandbits(64))
        if slot < 0:
            state = self.state
            if isinstance(state, AddrFailed):
                raise NoEndpoints(f"address resolution failed: {state.cause}")
            raise NoEndpoints("no endpoints" if isinstance(state, AddrBound) else "name is negative")
        self.requests += 1
        return self.by_slot[slot]

    def done(self, ep: Endpoint, now: float, rtt: float, ok: bool) -> None:
        """The request picked on ``ep`` ended: its latency feeds the balancer, its result the accrual."""
        self.balancer.end(ep.slot, now, max(rtt, 0.0))
        self.accrue(ep, ok, now)

    def accrue(self, ep: Endpoint, ok: bool, now: float, count: int = 1) -> None:
        """``count`` results of ``ep`` for its failure accrual (the balancer was told already)."""
        acc = ep.accrual
        if acc is None:
            return
        for _ in range(count):
            self._accrue_one(ep, acc, ok, now)

    def _accrue_one(self, ep: Endpoint, acc: Accrual, ok: bool, now: float) -> None:
        if acc.record(ok, now, self.rng.random()):
            down = acc.state == DEAD
            self.balancer.set_down(ep.slot, down)
            if down:
                self._dead.append(ep)
                if self.on_change is not None:
                    self.on_change()

    def _revive(self, now: float) -> None:
        still = []
        for ep in self._dead:
            if ep.slot in self.by_slot and ep.accrual is not None:
                if ep.accrual.available(now):  # past its backoff: one probe may go
                    self.balancer.set_down(ep.slot, False)
                else:
                    still.append(ep)
        self._dead = still

    def close(self) -> None:
        self._stop()
        for ep in self.endpoints.values():
            ep.pool.close()



def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
        return True
    except RuntimeError:
        return False
