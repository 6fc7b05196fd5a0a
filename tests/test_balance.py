"""The load-balancing kernel (``Balancer``), rule by rule, on both twins, with an injected clock and draws.

Numbers come from ``shared/reference/performance.md`` §1: tower's ``default_decay`` and
``compound_decay`` vectors, the half-life ``tau * ln 2`` (6.93 s at tau = 10 s), the "forget a spike"
time ``tau * ln(P / b)`` (25 s for a 2 s spike on a 167 ms baseline), Finagle's zero-cost penalty.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from types import ModuleType
from typing import Any, List

import pytest

from conftest import TWINS

KINDS = ["ewma", "p2c", "roundRobin", "heap"]
PENALTY_S = 140737.488355327
isclose = math.isclose


@pytest.fixture(params=TWINS)
def twin(request: pytest.FixtureRequest) -> ModuleType:
    """The ``native`` or the ``pure`` kernel module (the session fixtures of ``conftest.py``)."""
    return request.getfixturevalue(request.param)


def balancer(twin: ModuleType, kind: str, slots: int = 0, now: float = 0.0, **kw: Any) -> Any:
    b = twin.Balancer(kind, **kw)
    for s in range(slots):
        b.add(s, now)
    return b


def draws(n: int, seed: int = 1) -> List[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(n)]


def draw_of(a: int, b: int) -> int:
    """A draw whose low 32 bits are ``a`` and high 32 bits are ``b``."""
    return b << 32 | a


# === Peak-EWMA ===


def test_seed_is_default_rtt_30ms(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 1, now=5.0)
    assert b.cost(0, 5.0) == 0.030 and b.load(0, 5.0) == 0.030 and b.pending(0) == 0
    assert balancer(twin, "ewma", 1, default_rtt_s=0.25).cost(0, 0.0) == 0.25


def test_half_life_is_tau_ln2(twin: ModuleType) -> None:
    half_life = 10.0 * math.log(2)
    assert round(half_life, 2) == 6.93
    b = balancer(twin, "ewma", 1)
    assert isclose(b.cost(0, half_life), 0.015, rel_tol=1e-9)
    assert isclose(b.cost(0, 2 * half_life), 0.0075, rel_tol=1e-9)  # decay compounds, whatever the steps


def test_tower_default_decay(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 1, decay_s=1.0, default_rtt_s=0.010)
    assert b.load(0, 0.0) == 0.010
    assert 0.009 < b.load(0, 0.1) < 0.010
    assert 0.008 < b.load(0, 0.2) < 0.009


def test_tower_compound_decay(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 1, decay_s=1.0, default_rtt_s=0.020)
    assert b.pick(0.1, 0) == 0 and b.pick(0.2, 0) == 0
    b.end(0, 0.3, 0.2)
    assert isclose(b.load(0, 0.3), 0.4, rel_tol=1e-9)  # peak: cost 200 ms, one still pending
    b.end(0, 0.4, 0.2)
    assert isclose(b.load(0, 0.4), 0.2, rel_tol=1e-9)
    assert isclose(b.load(0, 1.4), 0.2 * math.exp(-1), rel_tol=1e-9) and b.load(0, 1.4) < 0.1
    assert b.load(0, 11.4) < 0.0001


def test_peak_rule_adopts_worse_samples_and_blends_better_ones(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 1)
    b.pick(0.0, 0)
    b.end(0, 0.0, 0.5)
    assert b.cost(0, 0.0) == 0.5  # adopted exactly, no averaging
    b.pick(1.0, 0)
    b.end(0, 1.0, 0.1)
    w = math.exp(-1.0 / 10.0)
    assert isclose(b.cost(0, 1.0), 0.5 * w + 0.1 * (1 - w), rel_tol=1e-9)


def test_forget_a_spike_after_tau_ln_p_over_b(twin: ModuleType) -> None:
    tau, spike, base = 10.0, 2.0, 0.167
    forget = tau * math.log(spike / base)
    assert round(forget) == 25
    b = balancer(twin, "ewma", 1, decay_s=tau)
    b.pick(0.0, 0)
    b.end(0, 0.0, spike)
    for t in range(1, 25):  # loads in between only insert zero samples: P * e^(-t/tau)
        assert isclose(b.load(0, float(t)), spike * math.exp(-t / tau), rel_tol=1e-9)
    assert b.cost(0, forget - 0.5) > base > b.cost(0, forget + 0.5)
    b.pick(forget + 0.5, 0)
    b.end(0, forget + 0.5, base)
    assert b.cost(0, forget + 0.5) == base  # the next normal sample wins through the peak rule


def test_idle_endpoint_decays_but_pending_stops_a_herd(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 2)
    b.pick(10.0, draw_of(0, 0))  # slot 0 is busy: a 30 ms sample at t = 10 keeps it at 30 ms
    b.end(0, 10.0, 0.030)
    assert isclose(b.cost(1, 10.0), 0.030 * math.exp(-1), rel_tol=1e-9)  # slot 1 idle: 11 ms
    picks = [b.pick(10.0, d) for d in draws(3)]
    assert picks == [1, 1, 0]  # 11 ms x (pending + 1) passes 30 ms at the third request
    for d in draws(40, seed=2):
        b.pick(10.0, d)
    assert b.pending(1) <= 3 * (b.pending(0) + 1)


def test_zero_cost_with_requests_in_flight_gets_finagle_penalty(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 2)
    b.pick(10_000.0, draw_of(0, 0))
    b.end(0, 10_000.0, 0.030)
    assert b.cost(1, 10_000.0) == 0.0  # e^-1000 underflows: idle for ~3 h
    assert b.pick(10_000.0, draw_of(0, 0)) == 1  # load 0: exactly one probe ...
    assert b.load(1, 10_000.0) == PENALTY_S + 1
    assert [b.pick(10_000.0, d) for d in draws(5)] == [0] * 5  # ... while it is in flight


def test_rtt_samples_are_capped_at_the_penalty(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 1)
    b.end(0, 0.0, 1e300)
    assert b.cost(0, 0.0) == PENALTY_S


def test_a_clock_going_back_neither_decays_nor_moves_the_stamp(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 1, now=100.0)
    assert b.cost(0, 50.0) == 0.030
    assert isclose(b.cost(0, 110.0), 0.030 * math.exp(-1), rel_tol=1e-9)


# === picking ===


@pytest.mark.parametrize("kind", KINDS)
def test_empty_set_picks_minus_one(twin: ModuleType, kind: str) -> None:
    b = balancer(twin, kind)
    assert b.pick(0.0, 12345) == -1 and len(b) == 0 and b.slots() == [] and b.panics() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_single_endpoint_is_always_picked_and_counted(twin: ModuleType, kind: str) -> None:
    b = twin.Balancer(kind)
    b.add(7, 0.0)
    assert [b.pick(0.0, d) for d in draws(5)] == [7] * 5
    assert b.pending(7) == 5 and b.slots() == [7] and len(b) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_all_down_panics_and_still_picks(twin: ModuleType, kind: str) -> None:
    b = balancer(twin, kind, 3)
    b.set_down(1, True)
    assert all(b.pick(0.0, d) != 1 for d in draws(30))  # a down endpoint is not eligible
    assert b.panics() == 0
    b.set_down(0, True)
    b.set_down(2, True)
    assert all(b.pick(0.0, d) in (0, 1, 2) for d in draws(4))
    assert b.panics() == 4
    b.set_down(1, False)
    assert b.pick(0.0, 99) == 1 and b.panics() == 4


@pytest.mark.parametrize("kind", ["ewma", "p2c"])
def test_p2c_pair_is_distinct(twin: ModuleType, kind: str) -> None:
    b = balancer(twin, kind, 2)
    b.pick(0.0, draw_of(0, 0))  # slot 0 now has one pending: slot 1 must win every pair
    for a in range(2):
        for hi in range(3):
            d = draw_of(a, hi)
            assert b.pick(0.0, d) == 1
            b.end(1, 0.0, 0.030 if kind == "p2c" else b.cost(1, 0.0))


def test_p2c_pair_is_uniform_over_many_draws(twin: ModuleType) -> None:
    n, rounds = 4, 6000
    b = balancer(twin, "p2c", n)
    for s in range(n):  # pending 0, 1, 2, 3: the winner of a pair is its lower slot
        for _ in range(s):
            _start_on(b, s)
    wins = Counter()
    for d in draws(rounds, seed=3):
        s = b.pick(0.0, d)
        wins[s] += 1
        b.end(s, 0.0, 0.0)
    # P(the lowest of a uniform distinct pair is rank k) = (n - 1 - k) / C(n, 2): 3/6, 2/6, 1/6, 0
    assert wins[3] == 0
    for k, p in enumerate([3 / 6, 2 / 6, 1 / 6]):
        assert abs(wins[k] / rounds - p) < 0.03, (k, wins)


def _start_on(b: Any, slot: int) -> None:
    """One request started on ``slot`` whatever the pair: every other eligible endpoint is marked down."""
    others = [s for s in b.slots() if s != slot]
    for s in others:
        b.set_down(s, True)
    assert b.pick(0.0, 0) == slot
    for s in others:
        b.set_down(s, False)


@pytest.mark.parametrize("kind", ["ewma", "p2c"])
def test_ties_go_to_the_first_of_the_pair_which_is_random(twin: ModuleType, kind: str) -> None:
    pairs = [(2, 0), (1, 1), (0, 1)]  # (a, b) = (2, 0), (1, 2), (0, 2): equal loads, a wins
    assert [balancer(twin, kind, 3).pick(0.0, draw_of(a, h)) for a, h in pairs] == [2, 1, 0]
    b = balancer(twin, kind, 3)
    wins = Counter()
    for d in draws(3000, seed=4):
        s = b.pick(0.0, d)
        wins[s] += 1
        b.end(s, 0.0, 0.030)  # loads stay tied (ewma: a 30 ms sample on a 30 ms cost at the same time)
    assert all(abs(wins[s] / 3000 - 1 / 3) < 0.03 for s in range(3)), wins


def test_round_robin_goes_in_slot_order_skipping_down(twin: ModuleType) -> None:
    b = twin.Balancer("roundRobin")
    for s in (5, 0, 2):
        b.add(s, 0.0)
    assert [b.pick(0.0, 0) for _ in range(4)] == [0, 2, 5, 0]
    b.set_down(5, True)
    assert [b.pick(0.0, 0) for _ in range(3)] == [2, 0, 2]
    b.add(3, 0.0)
    b.remove(0)
    assert [b.pick(0.0, 0) for _ in range(3)] == [3, 2, 3]
    assert b.load(2, 0.0) == 0.0 and b.cost(2, 0.0) == 0.0 and b.pending(3) == 2


def test_heap_picks_least_pending_then_lowest_slot(twin: ModuleType) -> None:
    b = balancer(twin, "heap", 3)
    assert [b.pick(0.0, 0) for _ in range(4)] == [0, 1, 2, 0]
    b.end(2, 0.0, 0.01)
    assert b.pick(0.0, 0) == 2
    b.set_down(1, True)
    assert [b.pick(0.0, 0) for _ in range(2)] == [2, 0]  # pending (2, -, 1), then a (2, -, 2) tie
    assert b.load(0, 0.0) == 3.0 and b.cost(0, 0.0) == 0.0


# === the endpoint set ===


def test_removed_slot_with_requests_in_flight_ignores_end(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 2)
    s = b.pick(1.0, 0)
    b.remove(s)
    b.end(s, 2.0, 0.5)  # silently ignored
    b.remove(s)  # idempotent
    assert len(b) == 1 and b.slots() == [1 - s]
    for query in (lambda: b.pending(s), lambda: b.load(s, 2.0), lambda: b.cost(s, 2.0)):
        with pytest.raises(KeyError):
            query()
    b.add(s, 3.0)
    assert b.pending(s) == 0 and b.cost(s, 3.0) == 0.030  # a new endpoint


def test_add_of_a_present_slot_keeps_its_state(twin: ModuleType) -> None:
    b = balancer(twin, "ewma", 2)
    b.pick(0.0, draw_of(0, 0))
    b.end(0, 0.0, 0.5)
    _start_on(b, 0)
    b.set_down(0, True)
    b.add(0, 5.0)
    assert b.pending(0) == 1 and isclose(b.cost(0, 5.0), 0.5 * math.exp(-0.5), rel_tol=1e-9)
    assert all(b.pick(5.0, d) == 1 for d in draws(5))  # still down


def test_end_never_drops_pending_below_zero(twin: ModuleType) -> None:
    b = balancer(twin, "p2c", 1)
    b.end(0, 0.0, 0.01)
    assert b.pending(0) == 0


# === bad input ===

BAD_INPUT = [
    ("kind", lambda m: m.Balancer("leastLoaded"), ValueError),
    ("kind-type", lambda m: m.Balancer(1), TypeError),
    ("decay-0", lambda m: m.Balancer("ewma", 0.0), ValueError),
    ("decay-nan", lambda m: m.Balancer("ewma", math.nan), ValueError),
    ("decay-inf", lambda m: m.Balancer("ewma", math.inf), ValueError),
    ("rtt-seed-0", lambda m: m.Balancer("ewma", 10, 0), ValueError),
    ("rtt-seed-big", lambda m: m.Balancer("ewma", 10, 1e6), ValueError),
    ("slot-negative", lambda m: m.Balancer("p2c").add(-1, 0.0), ValueError),
    ("slot-big", lambda m: m.Balancer("p2c").remove(65536), ValueError),
    ("slot-huge", lambda m: m.Balancer("p2c").remove(2**70), OverflowError),
    ("slot-float", lambda m: m.Balancer("p2c").add(1.0, 0.0), TypeError),
    ("now-nan", lambda m: m.Balancer("ewma").add(0, math.nan), ValueError),
    ("now-inf", lambda m: m.Balancer("ewma").pick(-math.inf, 0), ValueError),
    ("now-str", lambda m: m.Balancer("ewma").pick("0", 0), TypeError),
    ("draw-negative", lambda m: m.Balancer("ewma").pick(0.0, -1), OverflowError),
    ("draw-big", lambda m: m.Balancer("ewma").pick(0.0, 2**64), OverflowError),
    ("draw-float", lambda m: m.Balancer("ewma").pick(0.0, 1.0), TypeError),
    ("rtt-nan", lambda m: m.Balancer("ewma").end(0, 0.0, math.nan), ValueError),
    ("rtt-inf", lambda m: m.Balancer("p2c").end(0, 0.0, math.inf), ValueError),
    ("rtt-negative", lambda m: m.Balancer("heap").end(0, 0.0, -0.001), ValueError),
    ("down-int", lambda m: m.Balancer("ewma").set_down(0, 1), TypeError),
    ("absent-load", lambda m: m.Balancer("ewma").load(3, 0.0), KeyError),
    ("absent-pending", lambda m: m.Balancer("ewma").pending(3), KeyError),
]


@pytest.mark.parametrize(("case", "call", "error"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_raises(twin: ModuleType, case: str, call: Any, error: type) -> None:
    with pytest.raises(error):
        call(twin)


@pytest.mark.native
@pytest.mark.parametrize(("case", "call", "error"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_messages_agree(native: ModuleType, pure: ModuleType, case: str, call: Any, error: type) -> None:
    messages = []
    for mod in (native, pure):
        with pytest.raises(error) as info:
            call(mod)
        messages.append(str(info.value))
    if error is not TypeError and error is not OverflowError:  # those come from pyo3's argument extraction
        assert messages[0] == messages[1]
