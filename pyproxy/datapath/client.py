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
import socket as _socket
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import trio

from .. import _impl
from ..resilience.accrual import DEAD, PROBE_SENT, Accrual
from ..resilience.endpoint import Endpoint
from ..naming.name import ADDR_PENDING, AddrBound, AddrFailed, Bound
from ..routing.policy import ClientPolicy, PoolPolicy
from ..resilience.retry import RetryBudget
from .stream import Conn

__all__ = ["Client", "Clients", "EndpointPool", "NoEndpoints", "PoolExhausted"]


class NoEndpoints(Exception):
    """The bound name has no endpoints (negative, failed, or empty) right now."""


#: A pooled connection idle for longer than this is checked (one syscall) before it is reused. One
#: released more recently is reused unchecked: servers close idle connections after seconds, and a
#: connection found closed when used is replaced once anyway (the request was not received), so the
#: check only saves a wasted write. Skipping it under load saves a syscall per request.
CHECK_AFTER = 1.0


class PoolExhausted(Exception):
    """No connection to the endpoint can be had: ``maxSize`` reached and ``maxWaiters`` already waiting."""


class EndpointPool:
    """Connections to one ``host:port``: the idle ones (most recently used last) and a count of all.

    ``policy`` (``hostConnectionPool``, ``clientSession``, client ``socketOptions``) bounds them: at
    most ``max_size`` connections (busy and idle), further requests wait for one to come back,
    at most ``max_waiters`` of them (more: :class:`PoolExhausted`); an idle connection closes after
    ``idle_time`` unless that would leave fewer than ``min_size``; none lives past ``life_time``.
    """

    __slots__ = ("host", "port", "idle", "max_idle", "closed", "connects", "policy", "count", "_waiters", "_returned")

    def __init__(self, host: str, port: int, max_idle: int = 128, policy: Optional[PoolPolicy] = None) -> None:
        self.host = host
        self.port = port
        self.idle: List[Tuple[Conn, float]] = []  # (connection, when released: time.monotonic())
        self.max_idle = max_idle
        self.closed = False
        self.connects = 0
        self.policy = policy or PoolPolicy()
        self.count = 0  # connections this pool made that are open (busy or idle)
        self._waiters = 0
        self._returned: Optional[trio.Event] = None

    def take_idle(self) -> Optional[Conn]:
        """A pooled connection that is still open and not past its idle time or lifetime, or None."""
        now = time.monotonic()
        while self.idle:
            conn, since = self.idle.pop()
            if self._fresh(conn, since, now) and (now - since < CHECK_AFTER or _still_open(conn)):
                return conn
            self.discard(conn)
        return None

    def _fresh(self, conn: Conn, since: float, now: float) -> bool:
        p = self.policy
        if p.life_time is not None and now - conn.born >= p.life_time:
            return False
        return p.idle_time is None or now - since < p.idle_time or self.count <= p.min_size

    async def connect(self) -> Conn:
        """A new connection, when ``max_size`` allows; else wait for one to come back (an idle one
        is then taken instead).

        Raises:
            PoolExhausted: ``max_waiters`` are waiting already.
            OSError: the connection failed.
        """
        p = self.policy
        while p.max_size is not None and self.count >= p.max_size:
            if p.max_waiters is not None and self._waiters >= p.max_waiters:
                raise PoolExhausted(f"{self.host}:{self.port}: {self.count} connections (maxSize) and {self._waiters} waiting (maxWaiters)")
            if self._returned is None:
                self._returned = trio.Event()
            event = self._returned
            self._waiters += 1
            try:
                await event.wait()
            finally:
                self._waiters -= 1
            idle = self.take_idle()
            if idle is not None:
                return idle
        self.connects += 1
        self.count += 1
        try:
            stream = await trio.open_tcp_stream(self.host, self.port)
        except BaseException:
            self.count -= 1
            self._wake()
            raise
        conn = Conn(stream)
        if not p.no_delay:
            conn.sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 0)
        if p.keep_alive is not None:
            conn.sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, int(p.keep_alive))
        if p.write_timeout is not None:
            conn.write_timeout = p.write_timeout
        conn.pool = self
        return conn

    def release(self, conn: Conn, reusable: bool) -> None:
        """Return a connection after a response: pooled if reusable, else closed."""
        if conn.pool is None:  # a connection the lane made: from now on, this pool's
            conn.pool = self
            self.count += 1
        now = time.monotonic()
        if reusable and not self.closed and not conn.buf and len(self.idle) < self.max_idle and self._fresh(conn, now, now):
            self.idle.append((conn, now))
            self._wake()
        else:
            self.discard(conn)

    def discard(self, conn: Conn) -> None:
        """Close a connection of this pool (busy or taken from idle)."""
        if conn.pool is self:
            conn.pool = None
            self.count -= 1
        _close_now(conn)
        self._wake()

    def _wake(self) -> None:
        if self._returned is not None:
            self._returned.set()
            self._returned = None

    def sweep(self) -> None:
        """Close idle connections past their idle time or lifetime (runs once a second)."""
        now = time.monotonic()
        keep = []
        for conn, since in self.idle:
            if self._fresh(conn, since, now):
                keep.append((conn, since))
            else:
                self.discard(conn)
        self.idle = keep

    def close(self) -> None:
        """Stop pooling; idle connections close now, busy ones when released."""
        self.closed = True
        for conn, _ in self.idle:
            self.discard(conn)
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
        # endpoints failure accrual holds back (dead, probing or waiting for the probe's result):
        # while there is one, every pick goes through :meth:`pick` (the lane installs no route)
        self._dead: List[Endpoint] = []
        #: ``failure_accrual/{removals,probes,revivals,removed_for_ms}`` of endpoints since removed
        self.retired_accrual = [0, 0, 0, 0]
        self._next_slot = 0
        self.state: object = ADDR_PENDING
        self.changed = trio.Event()
        self.requests = 0
        self.last_used = time.monotonic()  # when a request last picked an endpoint (idle eviction)
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
                if ep.accrual is not None:
                    for i, n in enumerate(accrual_counts(ep.accrual)):
                        self.retired_accrual[i] += n
                ep.pool.close()
                self.balancer.remove(ep.slot)
                del self.by_slot[ep.slot]
                del self.endpoints[key]
        for key in wanted - self.endpoints.keys():
            slot = self._slot()
            accrual = Accrual.from_config(self.policy.accrual, now) if self.policy.accrual is not None else Accrual.default()
            if accrual is None and self.policy.fail_fast:
                accrual = Accrual.never()
            pool = EndpointPool(key[0], key[1], policy=self.policy.pool)
            ep = self.endpoints[key] = Endpoint(key[0], key[1], pool, slot, accrual)
            self.by_slot[slot] = ep
            self.balancer.add(slot, now)
        self.live = list(self.endpoints.values())
        self._dead = [ep for ep in self.live if ep.accrual is not None and not ep.accrual.alive]
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
        held = self._dead
        if held:
            self._revive(now)
        slot = self.balancer.pick(now, self.rng.getrandbits(64))
        if slot < 0:
            state = self.state
            if isinstance(state, AddrFailed):
                raise NoEndpoints(f"address resolution failed: {state.cause}")
            raise NoEndpoints("no endpoints" if isinstance(state, AddrBound) else "name is negative")
        self.requests += 1
        self.last_used = time.monotonic()
        ep = self.by_slot[slot]
        if held and ep.accrual is not None and ep.accrual.picked():
            self.balancer.set_down(slot, True)  # the probe: no other request until its result
        return ep

    def abandon(self, ep: Endpoint, now: float, rtt: float) -> None:
        """The request picked on ``ep`` ended without a result (answered otherwise): the balancer
        forgets it, and a probe that went unanswered lets the next request probe instead."""
        self.balancer.end(ep.slot, now, max(rtt, 0.0))
        acc = ep.accrual
        if acc is not None and acc.state is PROBE_SENT and acc.reopen():
            self.balancer.set_down(ep.slot, False)

    def done(self, ep: Endpoint, now: float, rtt: float, ok: bool, connect_failed: bool = False) -> None:
        """The request picked on ``ep`` ended: its latency feeds the balancer, its result the accrual
        (with ``failFast``, a connection that could not be made marks the endpoint down at once)."""
        self.balancer.end(ep.slot, now, max(rtt, 0.0))
        if connect_failed and self.policy.fail_fast and ep.accrual is not None:
            if ep.accrual.fail_fast(now, self.rng.random()):
                self._changed_health(ep)
            return
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
            self._changed_health(ep)

    def _changed_health(self, ep: Endpoint) -> None:
        acc = ep.accrual
        down = acc is not None and acc.state == DEAD
        self.balancer.set_down(ep.slot, down)
        if down:
            if ep not in self._dead:
                self._dead.append(ep)
            if self.on_change is not None:
                self.on_change()
        elif acc is None or acc.alive:  # revived by its probe
            self._dead = [e for e in self._dead if e is not ep]

    def _revive(self, now: float) -> None:
        """Endpoints past their backoff become available for one probe."""
        held = []
        for ep in self._dead:
            acc = ep.accrual
            if ep.slot not in self.by_slot or acc is None or acc.alive:
                continue
            if acc.state == DEAD and acc.available(now):  # past its backoff: one probe may go
                self.balancer.set_down(ep.slot, False)
            held.append(ep)
        self._dead = held

    def busy(self) -> bool:
        """Whether a request is outstanding on one of its endpoints."""
        return any(self.balancer.pending(ep.slot) for ep in self.endpoints.values())

    def close(self) -> None:
        self._stop()
        for ep in self.endpoints.values():
            ep.pool.close()



def accrual_counts(acc: Accrual) -> Tuple[int, int, int, int]:
    """``failure_accrual/{removals,probes,revivals,removed_for_ms}`` of one endpoint."""
    return acc.removals, acc.probes, acc.revivals, acc.removed_for_ms


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
        return True
    except RuntimeError:
        return False


class Clients:
    """The clients of one router: one per bound name, keyed by its id as Finagle keys a
    ``Name.Bound`` (the residual of a request travels on the request, not in the client).

    At most ``capacity`` clients (``bindingCache.clients``); past it, and for clients unused for
    ``idle_ttl`` seconds (``bindingCache.idleTtlSecs``), the least recently used client with no
    request outstanding is closed (its pools too) and forgotten; a later request makes it again.
    ``on_close(client)`` runs for each client evicted (its metrics go), then ``on_evict`` once per
    eviction (whoever caches routes to the clients forgets them).
    """

    def __init__(self, make: Callable[[Bound], "Client"], capacity: int = 1000, idle_ttl: float = 600.0,
                 on_evict: Optional[Callable[[], None]] = None, on_close: Optional[Callable[["Client"], None]] = None) -> None:
        self._make = make
        self.capacity = max(1, capacity)
        self.idle_ttl = idle_ttl
        self.on_evict = on_evict
        self.on_close = on_close
        self._clients: Dict[str, "Client"] = {}
        self.evictions = 0

    def get(self, bound: Bound) -> "Client":
        key = bound.id.show
        c = self._clients.get(key)
        if c is None:
            if len(self._clients) >= self.capacity:
                self._evict(lambda _: True, len(self._clients) - self.capacity + 1)
            c = self._clients[key] = self._make(bound)
        return c

    def values(self) -> List["Client"]:
        return list(self._clients.values())

    def __len__(self) -> int:
        return len(self._clients)

    def sweep(self) -> None:
        """Close idle pooled connections past their time, and clients idle past ``idle_ttl``."""
        for c in self._clients.values():
            for ep in c.endpoints.values():
                ep.pool.sweep()
        cutoff = time.monotonic() - self.idle_ttl
        self._evict(lambda c: c.last_used < cutoff, len(self._clients))

    def _evict(self, eligible: Callable[["Client"], bool], most: int) -> None:
        gone = 0
        for key, c in sorted(self._clients.items(), key=lambda kv: kv[1].last_used):
            if gone >= most:
                break
            if eligible(c) and not c.busy():
                del self._clients[key]
                c.close()
                if self.on_close is not None:
                    self.on_close(c)
                gone += 1
        if gone:
            self.evictions += gone
            if self.on_evict is not None:
                self.on_evict()

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()
