"""Balancer kernel, native vs pure: the cost of one request's ``pick`` + ``end`` at 3, 100 and 1,000 endpoints.

One benchmark round plays ``STEPS`` requests against a Peak-EWMA balancer (the kind the proxy uses
for latency-aware balancing) with ``IN_FLIGHT`` requests outstanding: each step picks an endpoint
(which starts the request) and ends the request picked ``IN_FLIGHT`` steps earlier with its
endpoint's RTT, as the proxy does when a response head arrives. The clock moves 1 ms per step.

``benchmark.group`` is ``pick <endpoints>`` (``bench/balance_ratios.py`` pairs the twins by group).
``benchmark.extra_info["correct"]`` compares a fixed run of the twin with :func:`textbook`, a naive
re-implementation of performance.md §1.1-1.2 written without looking at the kernels' structure.
Under the default ``--benchmark-disable`` each benchmark runs once, as a smoke test.
"""

from __future__ import annotations

import math
import random
from types import ModuleType
from typing import Any, List, Tuple

import pytest

STEPS = 256
IN_FLIGHT = 8
TAU, SEED_RTT, PENALTY_S = 10.0, 0.030, 140737.488355327


def rtts(n: int) -> List[float]:
    """Per endpoint RTTs from 5 to 40 ms, and one slow endpoint at 250 ms."""
    out = [0.005 + 0.035 * ((7 * s) % 11) / 10 for s in range(n)]
    out[n // 2] = 0.250
    return out


Plan = List[Tuple[float, int, int]]


def steps(seed: int = 7) -> Plan:
    """Per step: the time offset, the draw, and the ring position of the request to end."""
    rng = random.Random(seed)
    return [(i * 0.001, rng.getrandbits(64), i % IN_FLIGHT) for i in range(STEPS)]


def play(b: Any, rtt: List[float], plan: Plan, base: float, ring: List[int]) -> None:
    """One round; ``ring`` holds the slots of the requests in flight. Kept lean: the harness is timed too."""
    pick, end = b.pick, b.end
    for off, draw, j in plan:
        now = base + off
        s = pick(now, draw)
        old = ring[j]
        end(old, now, rtt[old])
        ring[j] = s


class Recorder:
    """A balancer that remembers its picks (for the correctness check only)."""

    def __init__(self, b: Any) -> None:
        self.b, self.end = b, b.end
        self.picks: List[int] = []

    def pick(self, now: float, draw: int) -> int:
        s = self.b.pick(now, draw)
        self.picks.append(s)
        return s


def start(b: Any, n: int, base: float) -> List[int]:
    for s in range(n):
        b.add(s, base)
    return [b.pick(base, d) for d in range(IN_FLIGHT)]


def textbook(n: int, plan: Plan, base: float) -> Tuple[List[int], List[float]]:
    """The picks and final loads of :func:`play` from a naive Peak-EWMA p2c (one list, no down marks)."""
    eps = [{"cost": SEED_RTT, "stamp": base, "pending": 0} for _ in range(n)]
    rtt = rtts(n)

    def observe(e: dict, now: float, sample: float) -> None:
        w = math.exp(-max(now - e["stamp"], 0.0) / TAU)
        e["cost"] = sample if sample > e["cost"] else e["cost"] * w + sample * (1 - w)
        e["stamp"] = max(e["stamp"], now)

    def load(e: dict, now: float) -> float:
        observe(e, now, 0.0)
        if e["cost"] == 0.0 and e["pending"]:
            return PENALTY_S + e["pending"]
        return e["cost"] * (e["pending"] + 1)

    def pick(now: float, draw: int) -> int:
        a, b = (draw & 0xFFFFFFFF) % n, (draw >> 32) % (n - 1)
        b += b >= a
        s = a if load(eps[a], now) <= load(eps[b], now) else b
        eps[s]["pending"] += 1
        return s

    ring = [pick(base, d) for d in range(IN_FLIGHT)]
    picks = []
    for off, draw, j in plan:
        now = base + off
        s = pick(now, draw)
        old = ring[j]
        eps[old]["pending"] -= 1
        observe(eps[old], now, rtt[old])
        ring[j] = s
        picks.append(s)
    return picks, [load(e, base + 1.0) for e in eps]


def correct(twin: ModuleType, n: int) -> bool:
    plan = steps(seed=11)
    b = twin.Balancer("ewma", TAU, SEED_RTT)
    ring = start(b, n, 100.0)
    rec = Recorder(b)
    play(rec, rtts(n), plan, 100.0, ring)
    want, loads = textbook(n, plan, 100.0)
    return rec.picks == want and all(math.isclose(b.load(s, 101.0), w, rel_tol=1e-9) for s, w in enumerate(loads))


@pytest.mark.parametrize("n", [3, 100, 1000])
def bench_pick(benchmark: Any, twin: ModuleType, n: int) -> None:
    b = twin.Balancer("ewma", TAU, SEED_RTT)
    ring = start(b, n, 0.0)
    rtt, plan = rtts(n), steps()
    clock = [0.0]

    def round_() -> None:
        clock[0] += 1.0  # each round starts later than the last ended: the estimates keep decaying
        play(b, rtt, plan, clock[0], ring)

    benchmark.group = f"pick {n}"
    benchmark.extra_info["steps"] = STEPS
    benchmark(round_)
    ok = correct(twin, n)
    benchmark.extra_info["correct"] = ok
    assert ok

