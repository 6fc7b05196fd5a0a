"""Load balancing over one client's endpoints: the pure twin (and specification) of ``native/src/balance.rs``.

One :class:`Balancer` holds the state of a client's endpoints and picks one per request. The kinds
are Linkerd 1.x's ``loadBalancer.kind`` values (``aperture`` is not implemented):

* ``ewma``: power of two choices over Peak-EWMA ``cost * (pending + 1)`` (Finagle ``p2cPeakEwma``,
  tower ``PeakEwma``; the exact rules are in ``shared/reference/performance.md`` §1.1-1.3);
* ``p2c``: power of two choices over ``pending`` (Linkerd's default, Finagle's "least loaded");
* ``roundRobin``: the next eligible slot after the previous pick, in ascending slot order;
* ``heap``: the least ``pending``, ties to the lowest slot (Finagle's heap has no stated tie rule; a
  total order keeps the twins identical).

Rules (both twins, to the bit):

1. Endpoints are *slots*: ints in ``range(0, MAX_SLOTS)`` that the caller assigns and reuses. Adding
   a present slot keeps its state (a namer update keeps what it knows of the endpoints that stay). A
   removed slot's late ``end()`` is ignored; reuse a slot only once its old requests have ended.
2. Eligible = not marked down. The eligible slots are kept in a list (appended on add or revival,
   swap-removed on removal or down), so a pick costs the same for 3 or 1,000 endpoints, and the p2c
   draw maps to the same pair in both twins. With none eligible, the pick is made among all
   endpoints and counted in ``panics()`` (Finagle's fail-open panic mode): a request is never refused
   only because every endpoint is marked down. Only an empty set answers ``-1``.
3. The p2c pair from a 64-bit ``draw``: ``a = (draw & 0xFFFFFFFF) % n``, ``b = (draw >> 32) % (n-1)``,
   ``b += 1 if b >= a`` (Finagle's hole method: distinct, uniform, and the pair's order is random, so
   the tie rule ``load(a) <= load(b) -> a`` has no bias). One eligible endpoint is taken as is.
4. ``pick`` also starts the request on the chosen endpoint (``pending += 1``): one call per request.
5. Peak-EWMA, times in seconds (``stamp`` only moves forward, as Finagle's):
   ``dt = now - stamp``; ``w = exp(-dt / tau)`` if ``dt > 0`` (then ``stamp = now``) else ``w = 1``;
   ``cost = rtt`` if ``rtt > cost`` (peak rule) else ``cost*w + rtt*(1-w)``. A load decays first
   (``observe(0)``), then is ``cost * (pending + 1)``, except Finagle's penalty: a cost decayed to
   exactly 0 with requests in flight loads as ``PENALTY_S + pending``, so an endpoint idle for hours
   cannot take a herd. New endpoints start at ``default_rtt_s`` (linkerd2: 30 ms), not at Finagle's 0.
6. Samples are capped at ``PENALTY_S`` (Finagle's ``Long.MaxValue >> 16`` ns, 39 h), so loads stay
   finite; NaN, infinite or negative samples and non-finite clocks are ``ValueError``.
7. Arguments are checked as pyo3 extracts them: every type first (``TypeError``, or ``OverflowError``
   for an int beyond 64 bits), then the values in argument order (``ValueError``).
"""

from __future__ import annotations

from itertools import chain
from math import exp, isfinite
from operator import index
from typing import Any, List

__all__ = ["Balancer"]

KINDS = ("ewma", "p2c", "roundRobin", "heap")
EWMA, P2C, ROUND_ROBIN, HEAP = range(4)
MAX_SLOTS = 1 << 16  # a node proxy's client has tens of endpoints; the table is indexed by slot
PENALTY_S = 140737.488355327  # Finagle PeakEwma's Penalty (Long.MaxValue >> 16 ns), in seconds
_I64 = 1 << 63
_U64_MAX = (1 << 64) - 1
_LOW32 = 0xFFFFFFFF


def _check(slot: int, now: float = 0.0, rtt: float = 0.0, flag: bool = False) -> int:
    """The slot as an int, after the checks (and in the order) of the native twin's argument extraction."""
    s = index(slot)
    bad = not 0 <= s < MAX_SLOTS
    if bad and not -_I64 <= s < _I64:
        raise OverflowError(f"slot out of range for a 64-bit int: {s}")
    ok_now, ok_rtt = isfinite(now), isfinite(rtt)
    if flag.__class__ is not bool:
        raise TypeError(f"down must be a bool, got {type(flag).__name__}")
    if bad:
        raise ValueError(f"slot must be in range(0, {MAX_SLOTS}), got {s}")
    if not ok_now:
        raise ValueError(f"now must be finite, got {float(now)!r}")
    if not (ok_rtt and rtt >= 0.0):
        raise ValueError(f"rtt_s must be finite and >= 0, got {float(rtt)!r}")
    return s


class _Endpoint:
    __slots__ = ("slot", "cost", "stamp", "pending", "down", "live_at", "all_at", "heap_at")

    def __init__(self, slot: int, cost: float, stamp: float) -> None:
        self.slot = slot
        self.cost = cost  # Peak-EWMA RTT estimate, seconds (ewma only)
        self.stamp = stamp  # time of the last observation
        self.pending = 0
        self.down = False
        self.live_at = -1  # index in Balancer._live, -1 while down
        self.all_at = -1  # index in Balancer._all
        self.heap_at = -1  # index in Balancer._heap (heap only)


def _hkey(ep: _Endpoint) -> tuple:
    return (ep.down, ep.pending, ep.slot)  # eligible first, then least pending, then lowest slot


class Balancer:
    """The endpoints of one client and their load; picks one endpoint per request.

    Args:
        kind: ``"ewma"``, ``"p2c"``, ``"roundRobin"`` or ``"heap"``.
        decay_s: the Peak-EWMA decay time tau (half-life ``tau * ln 2``; 10 s gives 6.93 s).
        default_rtt_s: the cost of an endpoint never measured, in ``(0, PENALTY_S]``.

    Raises:
        ValueError: an unknown kind, or a decay or default RTT out of range.
    """

    __slots__ = ("_kind", "_tau", "_seed", "_table", "_all", "_live", "_heap", "_rr_last", "_panics")

    def __init__(self, kind: str, decay_s: float = 10.0, default_rtt_s: float = 0.030) -> None:
        if not isinstance(kind, str):
            raise TypeError(f"kind must be a str, got {type(kind).__name__}")
        ok_tau, ok_seed = isfinite(decay_s), isfinite(default_rtt_s)
        if kind not in KINDS:
            raise ValueError(f"unknown load balancer kind {kind!r} (expected 'ewma', 'p2c', 'roundRobin' or 'heap')")
        if not (ok_tau and decay_s > 0.0):
            raise ValueError(f"decay_s must be finite and > 0, got {float(decay_s)!r}")
        if not (ok_seed and 0.0 < default_rtt_s <= PENALTY_S):
            raise ValueError(f"default_rtt_s must be in (0, {PENALTY_S!r}], got {float(default_rtt_s)!r}")
        self._kind = KINDS.index(kind)
        self._tau = float(decay_s)
        self._seed = float(default_rtt_s)
        self._table: List[Any] = []  # _Endpoint or None, by slot; no trailing None
        self._all: List[int] = []  # every slot, in the order of rule 2
        self._live: List[int] = []  # the eligible slots, in the order of rule 2
        self._heap: List[int] = []  # heap only: a binary min-heap of slots by _hkey
        self._rr_last = -1  # roundRobin only: the previous pick
        self._panics = 0

    # === the endpoint set ===

    def add(self, slot: int, now: float) -> None:
        """Adds an endpoint (cost ``default_rtt_s``, stamped ``now``); a present slot keeps its state."""
        s = _check(slot, now)
        table = self._table
        if s < len(table) and table[s] is not None:
            return
        if s >= len(table):
            table.extend([None] * (s + 1 - len(table)))
        ep = table[s] = _Endpoint(s, self._seed, float(now))
        ep.all_at = len(self._all)
        self._all.append(s)
        ep.live_at = len(self._live)
        self._live.append(s)
        if self._kind == HEAP:
            ep.heap_at = len(self._heap)
            self._heap.append(s)
            self._sift(ep.heap_at)

    def remove(self, slot: int) -> None:
        """Removes an endpoint; an absent slot is ignored (removals can race with failure accrual)."""
        s = _check(slot)
        table = self._table
        ep = table[s] if s < len(table) else None
        if ep is None:
            return
        if not ep.down:
            self._unlist(self._live, ep.live_at, "live_at")
        self._unlist(self._all, ep.all_at, "all_at")
        if self._kind == HEAP:
            heap = self._heap
            last = heap.pop()
            if ep.heap_at < len(heap):
                heap[ep.heap_at] = last
                table[last].heap_at = ep.heap_at
                self._sift(ep.heap_at)
        table[s] = None
        while table and table[-1] is None:
            table.pop()

    def set_down(self, slot: int, down: bool) -> None:
        """Marks an endpoint down (not eligible) or up again; an absent slot is ignored."""
        s = _check(slot, flag=down)
        ep = self._table[s] if s < len(self._table) else None
        if ep is None or ep.down == down:
            return
        ep.down = down
        if down:
            self._unlist(self._live, ep.live_at, "live_at")
            ep.live_at = -1
        else:
            ep.live_at = len(self._live)
            self._live.append(s)
        if self._kind == HEAP:
            self._sift(ep.heap_at)

    def __len__(self) -> int:
        return len(self._all)

    def slots(self) -> List[int]:
        """Every slot, in ascending order."""
        return [s for s, ep in enumerate(self._table) if ep is not None]

    def panics(self) -> int:
        """How many picks found no eligible endpoint and chose among all of them."""
        return self._panics

    # === requests ===

    def pick(self, now: float, draw: int) -> int:
        """Chooses an endpoint for one request and starts it there; returns the slot, -1 for no endpoint.

        Args:
            now: monotonic time in seconds.
            draw: a uniform random int in ``range(0, 2**64)`` (unused by ``roundRobin`` and ``heap``).
        """
        ok_now = isfinite(now)
        low = draw & _LOW32  # TypeError for a non-int, as the native u64 extraction
        if not 0 <= draw <= _U64_MAX:
            raise OverflowError(f"draw must be in range(0, 2**64), got {draw}")
        if not ok_now:
            raise ValueError(f"now must be finite, got {float(now)!r}")
        kind, table = self._kind, self._table
        if kind == HEAP:
            if not self._heap:
                return -1
            ep = table[self._heap[0]]
            if ep.down:
                self._panics += 1
            ep.pending += 1
            self._sift(0)
            return ep.slot
        cands, panic = self._live, False
        if not cands:
            cands, panic = self._all, True
            if not cands:
                return -1
            self._panics += 1
        if kind == ROUND_ROBIN:
            s = self._next_round_robin(panic)
        else:
            n = len(cands)
            if n == 1:
                s = cands[0]
            else:
                a = low % n
                b = (draw >> 32) % (n - 1)
                if b >= a:
                    b += 1
                ea, eb = table[cands[a]], table[cands[b]]
                if kind == EWMA:
                    s = ea.slot if self._load(ea, now) <= self._load(eb, now) else eb.slot
                else:
                    s = ea.slot if ea.pending <= eb.pending else eb.slot
        table[s].pending += 1
        return s

    def end(self, slot: int, now: float, rtt_s: float) -> None:
        """Ends one request (``pending -= 1``, never below 0) and, for ``ewma``, observes its RTT.

        A slot removed since its pick is ignored.

        Raises:
            ValueError: a slot out of range, a non-finite ``now``, or a NaN, infinite or negative RTT.
        """
        s = _check(slot, now, rtt_s)
        ep = self._table[s] if s < len(self._table) else None
        if ep is None:
            return
        if ep.pending:
            ep.pending -= 1
        if self._kind == EWMA:
            self._observe(ep, now, min(rtt_s, PENALTY_S))
        elif self._kind == HEAP:
            self._sift(ep.heap_at)

    # === metrics (for tests and telemetry) ===

    def load(self, slot: int, now: float) -> float:
        """The load the pick compares: ewma ``cost * (pending + 1)`` after decay, p2c and heap ``pending``,
        roundRobin 0.0. Raises KeyError for an absent slot."""
        ep = self._get(_check(slot, now))
        if self._kind == EWMA:
            return self._load(ep, now)
        return 0.0 if self._kind == ROUND_ROBIN else float(ep.pending)

    def pending(self, slot: int) -> int:
        """Requests picked and not yet ended on this endpoint. Raises KeyError for an absent slot."""
        return self._get(_check(slot)).pending

    def cost(self, slot: int, now: float) -> float:
        """The Peak-EWMA RTT estimate in seconds after decay (0.0 for the kinds that keep none)."""
        ep = self._get(_check(slot, now))
        if self._kind != EWMA:
            return 0.0
        self._observe(ep, now, 0.0)
        return ep.cost

    # === internals ===

    def _get(self, s: int) -> _Endpoint:
        ep = self._table[s] if s < len(self._table) else None
        if ep is None:
            raise KeyError(s)
        return ep

    def _observe(self, ep: _Endpoint, now: float, rtt: float) -> None:
        dt = now - ep.stamp
        if dt > 0.0:
            w = exp(-dt / self._tau)
            ep.stamp = float(now)
        else:
            w = 1.0  # a clock that went back: no decay, and the stamp stays where it was
        if rtt > ep.cost:
            ep.cost = rtt
        else:
            ep.cost = ep.cost * w + rtt * (1.0 - w)

    def _load(self, ep: _Endpoint, now: float) -> float:
        self._observe(ep, now, 0.0)
        if ep.cost == 0.0 and ep.pending:
            return PENALTY_S + ep.pending
        return ep.cost * (ep.pending + 1)

    def _unlist(self, items: List[int], i: int, attr: str) -> None:
        """Swap-removes ``items[i]``, fixing the position (``attr``) of the slot moved into its place."""
        last = items.pop()
        if i < len(items):
            items[i] = last
            setattr(self._table[last], attr, i)

    def _next_round_robin(self, panic: bool) -> int:
        table = self._table
        start = self._rr_last + 1
        if start >= len(table):
            start = 0
        for s in chain(range(start, len(table)), range(start)):
            ep = table[s]
            if ep is not None and (panic or not ep.down):
                self._rr_last = s
                return s
        raise AssertionError("no endpoint to pick")  # unreachable: the caller saw one

    def _sift(self, i: int) -> None:
        """Restores the heap order around position ``i`` (up, then down)."""
        heap, table = self._heap, self._table
        s = heap[i]
        key = _hkey(table[s])
        while i > 0:
            p = (i - 1) >> 1
            if _hkey(table[heap[p]]) <= key:
                break
            heap[i] = heap[p]
            table[heap[i]].heap_at = i
            i = p
        n = len(heap)
        while 2 * i + 1 < n:
            c = 2 * i + 1
            if c + 1 < n and _hkey(table[heap[c + 1]]) < _hkey(table[heap[c]]):
                c += 1
            if key <= _hkey(table[heap[c]]):
                break
            heap[i] = heap[c]
            table[heap[i]].heap_at = i
            i = c
        heap[i] = s
        table[s].heap_at = i
