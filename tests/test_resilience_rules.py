"""The failure-handling rules on their own (sans-IO, injected clocks and draws): failure accrual's
policies and probe states (Finagle's ``FailureAccrualPolicy`` and ``FailureAccrualFactory``), a
client's probes through its balancer, retry backoffs and budgets, classifiers, and Linkerd's
``PathMatcher`` as ``io.l5d.static`` applies it."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace
from typing import List

import pytest

from pyproxy.config.policy import ConsecutiveFailures, Constant, Jittered, RoundRobin, SuccessRate, SuccessRateWindowed
from pyproxy.datapath.client import Client
from pyproxy.metrics import Registry, RouterStats
from pyproxy.naming import Path
from pyproxy.naming.name import Address, AddrBound, AddrVar, Bound
from pyproxy.resilience.accrual import ALIVE, DEAD, PROBE_SENT, PROBING, Accrual
from pyproxy.resilience.classify import FAILURE, RETRYABLE, SUCCESS, Classifier
from pyproxy.resilience.retry import ConstantBackoff, JitteredBackoff, RetryBudget
from pyproxy.routing.policy import ClientPolicy, prefix_matches


def _sr(rate: float, requests: int, ms: int = 300) -> Accrual:
    acc = Accrual.from_config(SuccessRate(success_rate=rate, requests=requests, backoff=Constant(ms=ms)))
    assert acc is not None
    return acc


def _windowed(rate: float, window: int, start: float = 0.0, ms: int = 300) -> Accrual:
    acc = Accrual.from_config(SuccessRateWindowed(success_rate=rate, window=window, backoff=Constant(ms=ms)), start)
    assert acc is not None
    return acc


# === failure accrual: the policies ===


def test_success_rate_is_finagles_ema_over_the_request_count() -> None:
    acc = _sr(0.5, 5)
    w = math.exp(-1 / 5)  # each sample's stamp is the request count: dt = 1 request
    acc.record(True, 0.0, 0.0)
    assert acc.policy.ema.value == 1.0  # the first sample sets the average
    expected = 1.0
    for i in range(3):
        assert not acc.record(False, 0.0, 0.0)
        expected *= w
        assert acc.policy.ema.value == pytest.approx(expected)
        assert acc.state == ALIVE  # 0.819, 0.670, 0.549: not below 0.5
    assert acc.record(False, 0.0, 0.0)  # 0.449 < 0.5 with 5 requests seen: dead
    assert acc.state == DEAD and acc.removals == 1


def test_success_rate_waits_for_its_window_of_requests() -> None:
    acc = _sr(0.9, 5)
    for _ in range(4):
        assert not acc.record(False, 0.0, 0.0)  # 0% success, but only 1..4 requests seen
    assert acc.state == ALIVE
    assert acc.record(False, 0.0, 0.0) and acc.state == DEAD


def test_a_success_never_marks_an_endpoint_dead() -> None:
    # Finagle asks the policy only on failures: four failures (too few to judge) then a success that
    # completes the window leave the endpoint alive, though the rate is far below the threshold.
    acc = _sr(0.9, 5)
    for _ in range(4):
        acc.record(False, 0.0, 0.0)
    assert not acc.record(True, 0.0, 0.0)
    assert acc.state == ALIVE and acc.policy.ema.value < 0.9
    assert acc.record(False, 0.0, 0.0) and acc.state == DEAD  # the next failure does


def test_success_rate_windowed_decays_with_time() -> None:
    window = 10.0
    acc = _windowed(0.5, 10, start=100.0)
    acc.record(True, 100.0, 0.0)
    ema = 1.0
    for prev, t in ((100.0, 102.0), (102.0, 105.0), (105.0, 108.0)):
        assert not acc.record(False, t, 0.0)
        ema *= math.exp(-(t - prev) / window)  # a failure weighs 1 - exp(-dt / window)
        assert acc.policy.ema.value == pytest.approx(ema)
    assert ema < 0.5  # 0.449: below the threshold ...
    assert acc.state == ALIVE  # ... but the window (10 s since the endpoint was added) has not passed
    assert acc.record(False, 110.0, 0.0)
    assert acc.policy.ema.value == pytest.approx(ema * math.exp(-0.2)) and acc.state == DEAD


def test_success_rate_windowed_old_failures_fade() -> None:
    acc = _windowed(0.5, 10)
    for t in range(0, 20):
        acc.record(t % 2 == 0, float(t), 0.0)  # half the requests fail: about 0.5, never far below
    value = acc.policy.ema.value
    acc.record(True, 59.0, 0.0)  # a success after 40 s of quiet weighs 1 - exp(-4)
    assert acc.policy.ema.value == pytest.approx(1 - math.exp(-4) + value * math.exp(-4))
    assert not acc.record(False, 59.5, 0.0)  # one failure now cannot take it below 0.5
    assert acc.state == ALIVE


def test_success_rate_windowed_samples_at_one_instant_still_count() -> None:
    acc = _windowed(0.5, 10)
    acc.record(True, 0.0, 0.0)
    acc.record(False, 0.0, 0.0)
    acc.record(False, 0.0, 0.0)  # summed results (the lane's batches) arrive at one instant
    assert acc.policy.ema.value == pytest.approx(math.exp(-2 / 1000))


def test_success_rate_windowed_window_restarts_on_revival() -> None:
    acc = _windowed(0.9, 1, ms=300)
    acc.record(False, 0.0, 0.0)
    assert acc.record(False, 1.0, 0.0) and acc.state == DEAD  # 1 s after it was added
    assert acc.available(1.3) and acc.picked()
    assert acc.record(True, 1.35, 0.0) and acc.state == ALIVE  # revived: history and window reset
    assert acc.policy.ema.value == 1.0
    assert not acc.record(False, 1.4, 0.0) and not acc.record(False, 2.0, 0.0)  # within 1 s of the revival
    assert acc.record(False, 2.4, 0.0) and acc.state == DEAD


# === failure accrual: dead, probe, revival ===


def test_one_probe_after_the_backoff_then_dead_again_or_alive() -> None:
    acc = Accrual.from_config(ConsecutiveFailures(failures=2, backoff=Constant(ms=300)))
    assert acc is not None
    acc.record(False, 0.0, 0.0)
    assert acc.record(False, 1.0, 0.0) and acc.state == DEAD and acc.until == pytest.approx(1.3)
    assert not acc.available(1.29)
    assert acc.available(1.3) and acc.state == PROBING
    assert acc.picked() and acc.state == PROBE_SENT and acc.probes == 1
    assert not acc.available(1.31) and not acc.picked()  # busy until the probe's result
    assert acc.record(False, 1.4, 0.0) and acc.state == DEAD  # failed probe: dead again
    assert acc.until == pytest.approx(1.7) and acc.removals == 1  # removals count alive -> dead only
    assert acc.available(1.7) and acc.picked() and acc.probes == 2
    assert acc.record(True, 1.8, 0.0) and acc.state == ALIVE and acc.revivals == 1
    assert not acc.record(False, 1.9, 0.0)  # the count starts again: one failure is not two
    assert acc.removed_for_ms == 600


def test_results_of_requests_sent_before_the_death_change_nothing() -> None:
    acc = Accrual.from_config(ConsecutiveFailures(failures=1, backoff=Constant(ms=300)))
    assert acc is not None
    assert acc.record(False, 0.0, 0.0)
    assert not acc.record(True, 0.1, 0.0) and acc.state == DEAD  # only the probe revives
    assert not acc.record(False, 0.1, 0.0) and acc.until == pytest.approx(0.3)  # no longer death
    assert acc.available(0.3)
    assert not acc.record(True, 0.31, 0.0) and acc.state == PROBING  # not the probe's result either


def test_an_unanswered_probe_lets_the_next_request_probe() -> None:
    acc = Accrual.from_config(ConsecutiveFailures(failures=1, backoff=Constant(ms=0)))
    assert acc is not None
    acc.record(False, 0.0, 0.0)
    assert acc.available(0.0) and acc.picked()
    assert acc.reopen() and acc.state == PROBING and not acc.reopen()


def test_jittered_accrual_backoff_grows_and_resets_on_revival() -> None:
    acc = Accrual.from_config(ConsecutiveFailures(failures=1, backoff=Jittered(min_ms=1000, max_ms=60000)))
    assert acc is not None
    now = 0.0
    delays: List[float] = []
    for draw in (0.5, 0.9, 0.9):
        acc.record(False, now, draw)
        delays.append(acc.delay)
        now = acc.until
        assert acc.available(now) and acc.picked()
    assert delays[0] == 1.0 and all(1.0 <= d <= 60.0 for d in delays) and delays[2] > delays[1] > delays[0]
    acc.record(True, now, 0.0)
    acc.record(False, now, 0.5)
    assert acc.delay == 1.0  # a revival starts the backoff over


# === a client's probes through its balancer ===


def _client(n: int, accrual: object) -> Client:
    addr = AddrVar(AddrBound(tuple(Address("127.0.0.1", 1000 + i) for i in range(n))))
    policy = ClientPolicy(SimpleNamespace(load_balancer=RoundRobin(), failure_accrual=accrual))
    client = Client(Bound(Path.read("/#/test/probe"), Path.read("/"), addr), policy, random.Random(7))
    client.stats = RouterStats(Registry(), "r").client(client.id)
    return client


def test_a_client_sends_exactly_one_probe_while_it_is_out(kernels: object) -> None:
    client = _client(2, ConsecutiveFailures(failures=1, backoff=Constant(ms=300)))
    eps = list(client.endpoints.values())
    bad = eps[0]
    picked = client.pick(0.0)
    if picked is not bad:
        client.done(picked, 0.0, 0.001, ok=True)
        picked = client.pick(0.0)
    assert picked is bad
    client.done(bad, 0.01, 0.01, ok=False)
    assert bad.accrual.state == DEAD and client._dead == [bad]
    assert all(client.pick(0.1) is not bad for _ in range(10))  # dead: never picked (others alive)
    outstanding = [client.pick(0.4) for _ in range(10)]  # past the backoff: ten requests at once
    assert outstanding.count(bad) == 1 and bad.accrual.state == PROBE_SENT
    assert client._dead == [bad]  # held back (the lane installs no route) until the probe's result
    client.done(bad, 0.5, 0.1, ok=True)
    assert bad.accrual.state == ALIVE and client._dead == []
    assert client.balancer.pending(bad.slot) == 0


def test_a_client_reopens_a_probe_abandoned_without_a_result(kernels: object) -> None:
    client = _client(1, ConsecutiveFailures(failures=1, backoff=Constant(ms=100)))
    (ep,) = client.endpoints.values()
    client.done(client.pick(0.0), 0.0, 0.0, ok=False)
    probe = client.pick(0.2)
    assert probe is ep and ep.accrual.state == PROBE_SENT
    client.abandon(ep, 0.3, 0.1)  # e.g. the client went away: no result
    assert ep.accrual.state == PROBING and client.balancer.pending(ep.slot) == 0
    assert client.pick(0.3) is ep and ep.accrual.state == PROBE_SENT


# === retries: backoffs and budgets ===


def test_constant_backoff() -> None:
    b = ConstantBackoff(150)
    assert [b.next(prev, 0.7) for prev in (0.0, 0.15, 9.0)] == [0.15, 0.15, 0.15]


@pytest.mark.parametrize("seed", range(5))
def test_decorrelated_jitter_stays_within_min_and_max(seed: int) -> None:
    rng = random.Random(seed)
    b = JitteredBackoff(100, 2000)
    delay = 0.0
    seen = []
    for _ in range(200):
        nxt = b.next(delay, rng.random())
        assert 0.1 <= nxt <= 2.0
        assert nxt <= max(0.1, 3 * delay) + 1e-12  # decorrelated: at most three times the previous
        seen.append(nxt)
        delay = nxt
    assert seen[0] == 0.1  # the first delay is minMs
    assert max(seen) == 2.0 and len(set(seen)) > 50  # it reaches the cap, and jitters


def test_jittered_backoff_with_equal_bounds_is_constant() -> None:
    b = JitteredBackoff(250, 250)
    assert {b.next(prev, d) for prev in (0.0, 0.25) for d in (0.0, 0.5, 0.999)} == {0.25}
    with pytest.raises(ValueError):
        JitteredBackoff(300, 200)


def test_retry_budget_bound_over_its_window() -> None:
    budget = RetryBudget(ttl_secs=10, min_retries_per_sec=0, percent_can_retry=0.5)
    for _ in range(10):
        budget.deposit(0.5)
    assert [budget.try_withdraw(1.0) for _ in range(6)] == [True] * 5 + [False]
    assert budget.exhausted == 1
    assert not budget.try_withdraw(9.9)  # still the same window
    budget.deposit(10.6)
    budget.deposit(10.6)
    assert not budget.try_withdraw(10.6)  # the deposits of second 0 expired, the retries of second 1 not yet
    assert budget.try_withdraw(11.0)  # now those expired too: the new deposits earn one retry
    assert not budget.try_withdraw(11.0)


def test_retry_budget_floor() -> None:
    budget = RetryBudget(ttl_secs=2, min_retries_per_sec=3, percent_can_retry=0.0)
    assert sum(budget.try_withdraw(0.0) for _ in range(10)) == 6  # minRetriesPerSec * ttlSecs


# === classifiers ===

_METHODS = (b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE", b"POST", b"PATCH")


@pytest.mark.parametrize(
    "kind, retried",
    [
        ("io.l5d.http.nonRetryable5XX", set()),
        ("io.l5d.http.retryableRead5XX", {b"GET", b"HEAD", b"OPTIONS", b"TRACE"}),
        ("io.l5d.http.retryableIdempotent5XX", {b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"}),
        ("io.l5d.http.retryableAll5XX", set(_METHODS)),
    ],
)
def test_classifiers_by_method(kind: str, retried: set) -> None:
    c = Classifier(kind)
    for m in _METHODS:
        want = RETRYABLE if m in retried else FAILURE
        assert c.classify(m, 503) == want and c.classify(m, None) == want, m
        assert c.classify(m, 200) == SUCCESS and c.classify(m, 404) == SUCCESS
        assert c.classify(m, 503, chunked_request=True) == FAILURE  # a chunked body cannot be replayed
        assert c.classify(m, 500, retryable_header=True) == RETRYABLE  # l5d-retryable: true upgrades
        assert c.classify(m, 500, chunked_request=True, retryable_header=True) == FAILURE


def test_all_successful_ignores_status_and_header() -> None:
    c = Classifier("io.l5d.http.allSuccessful")
    assert {c.classify(m, s, retryable_header=True) for m in _METHODS for s in (200, 500, 503, None)} == {SUCCESS}


# === io.l5d.static: Linkerd's PathMatcher ===


@pytest.mark.parametrize(
    "pattern, name, matches",
    [
        ("/svc", "/svc/hello", True),
        ("/svc/hello", "/svc/hello", True),
        ("/svc/hello", "/svc/hell", False),
        ("/svc/hello/world", "/svc/hello", False),  # the pattern is longer than the name
        ("/svc/*", "/svc/anything", True),
        ("/*/hello", "/svc/hello/extra", True),  # a prefix of the name
        ("/#/*/{name}-patient", "/#/io.l5d.fs/x-patient", True),
        ("/#/*/{name}-patient", "/#/io.l5d.fs/x-patient-not", False),  # a whole segment
        ("/svc/{a}-{b}", "/svc/x-y-z", True),
        ("/svc/{a}.v2", "/svc/world.v1", False),
        ("/", "/svc/x", True),
    ],
)
def test_prefix_patterns(pattern: str, name: str, matches: bool) -> None:
    assert prefix_matches(pattern, name) is matches
