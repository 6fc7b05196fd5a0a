"""Native ``Balancer`` == pure ``Balancer``: a hypothesis state machine steps both with the same calls.

Every call's outcome (return value, or exception type and message) must match, floats within
``rel_tol=1e-9``; after every step the endpoint set, the pending counts and the panic counter must
match. Loads and costs are compared in a rule of their own (not an invariant) because a load decays
the estimate: checking it after every step would hide the decay done by ``pick``. One machine per
kind; slots come from a small range so that adds, removals and ends of removed slots collide often.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Tuple

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import load_twin

pytestmark = pytest.mark.native

KINDS = ("ewma", "p2c", "roundRobin", "heap")
SLOTS = st.integers(min_value=0, max_value=11)
RTTS = st.one_of(
    st.floats(min_value=0.0, max_value=5.0),
    st.sampled_from([0.0, 0.030, 1e-300, 1e300, -0.0]),
    st.sampled_from([math.nan, math.inf, -1.0]),  # rejected by both
)
DTS = st.one_of(st.floats(min_value=0.0, max_value=30.0), st.sampled_from([0.0, 1e-9, 1e4]), st.floats(-2.0, 0.0))
DRAWS = st.integers(min_value=0, max_value=2**64 - 1)


def outcome(fn: Callable[..., Any], *args: Any) -> Tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - the comparison is the point
        return ("err", type(exc), str(exc))


def same(a: Tuple[Any, ...], b: Tuple[Any, ...]) -> bool:
    if a[0] == "ok" == b[0] and isinstance(a[1], float) and isinstance(b[1], float):
        return math.isclose(a[1], b[1], rel_tol=1e-9)
    return a == b


class BalancerMachine(RuleBasedStateMachine):
    kind = "ewma"

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.native = load_twin("native").Balancer(self.kind, 10.0, 0.030)
        self.pure = load_twin("pure").Balancer(self.kind, 10.0, 0.030)

    def both(self, method: str, *args: Any) -> Any:
        n = outcome(getattr(self.native, method), *args)
        p = outcome(getattr(self.pure, method), *args)
        assert same(n, p), (method, args, n, p)
        return p[1] if p[0] == "ok" else None

    @rule(slot=SLOTS)
    def add_endpoint(self, slot: int) -> None:
        self.both("add", slot, self.now)

    @rule(slot=SLOTS)
    def remove_endpoint(self, slot: int) -> None:
        self.both("remove", slot)

    @rule(slot=SLOTS, down=st.booleans())
    def set_down(self, slot: int, down: bool) -> None:
        self.both("set_down", slot, down)

    @rule()
    def set_every_endpoint_down(self) -> None:
        for slot in self.pure.slots():  # panic mode is rare with random marks: reach it on purpose
            self.both("set_down", slot, True)

    @rule(draw=DRAWS)
    def pick(self, draw: int) -> None:
        s = self.both("pick", self.now, draw)
        assert s == -1 if len(self.pure) == 0 else s in self.pure.slots()

    @rule(slot=SLOTS, rtt=RTTS)
    def end(self, slot: int, rtt: float) -> None:
        self.both("end", slot, self.now, rtt)

    @precondition(lambda self: len(self.pure) > 0)
    @rule(data=st.data())
    def end_a_pending_request(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self.pure.slots()))
        self.both("end", slot, self.now, data.draw(RTTS))

    @rule(dt=DTS)
    def advance_time(self, dt: float) -> None:
        self.now += dt  # negative steps too: a clock going back must neither decay nor move stamps

    @rule(slot=SLOTS)
    def compare_load_and_cost(self, slot: int) -> None:
        self.both("load", slot, self.now)
        self.both("cost", slot, self.now)

    @invariant()
    def same_state(self) -> None:
        assert len(self.native) == len(self.pure)
        assert self.native.slots() == self.pure.slots()
        assert self.native.panics() == self.pure.panics()
        for s in self.pure.slots():
            assert self.native.pending(s) == self.pure.pending(s)


def _machine(kind: str) -> Any:
    test_case = type(f"Balancer_{kind}", (BalancerMachine,), {"kind": kind}).TestCase
    test_case.settings = settings(stateful_step_count=60, deadline=None)  # max_examples: the profile's
    return test_case


TestEwma = _machine("ewma")
TestP2c = _machine("p2c")
TestRoundRobin = _machine("roundRobin")
TestHeap = _machine("heap")
