"""Black-box tests of load balancing and failure handling: requeues, retries within budgets,
classifiers, failure accrual, per-attempt timeouts. Real origins on loopback, one proxy per twin."""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import time
from typing import Dict, Iterator, List, Tuple

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess, dead_port, one_router
from upstream import HangUpOrigin, Origin



class Env:
    def __init__(self, impl: str) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-disco-")
        self.good = [Origin(), Origin()]
        self.bad = [Origin(fail_status=503), Origin(fail_status=503), Origin(fail_status=503)]
        self.slow = Origin()
        self.fast = [Origin(), Origin()]
        self.lagging = Origin(delay=0.15)
        self.write("mixed", [self.good[0].port, dead_port(), self.good[1].port])
        self.write("halfbad", [self.bad[0].port, self.good[0].port])
        self.write("allbad", [o.port for o in self.bad])
        self.write("slow", [self.slow.port])
        self.write("oneslow", [self.fast[0].port, self.lagging.port, self.fast[1].port])
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- kind: io.l5d.fs
  rootDir: {self.root}
routers:
- protocol: http
  label: resilient
  dtab: /svc => /#/io.l5d.fs
  client:
    loadBalancer: {{kind: ewma}}
    requestAttemptTimeoutMs: 400
  service:
    responseClassifier: {{kind: io.l5d.http.retryableRead5XX}}
    retries:
      budget: {{ttlSecs: 10, minRetriesPerSec: 0, percentCanRetry: 0.5}}
  servers:
  - {{ip: 127.0.0.1, port: 0}}
- protocol: http
  label: floor
  dtab: /svc => /#/io.l5d.fs
  service:
    responseClassifier: {{kind: io.l5d.http.retryableRead5XX}}
    retries:
      budget: {{ttlSecs: 10, minRetriesPerSec: 100, percentCanRetry: 0.0}}
  servers:
  - {{ip: 127.0.0.1, port: 0}}
"""
        self.proxy = ProxyProcess(config, impl)
        self.addr = self.proxy.addr("resilient")
        self.floor = self.proxy.addr("floor")

    def write(self, name: str, ports: List[int]) -> None:
        with open(os.path.join(self.root, name), "w") as f:
            f.write("".join(f"127.0.0.1 {p}\n" for p in ports))

    def close(self) -> None:
        self.proxy.stop()
        for o in (*self.good, *self.bad, self.slow, *self.fast, self.lagging):
            o.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    yield e
    e.close()


def request(addr: Tuple[str, int], host: str, path: str = "/text/ok", method: str = "GET") -> Tuple[int, Dict[str, str]]:
    c = http.client.HTTPConnection(*addr, timeout=20)
    try:
        c.request(method, path, headers={"Host": host})
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def test_dead_endpoint_costs_no_failed_request(env: Env) -> None:
    statuses = [request(env.addr, "mixed")[0] for _ in range(30)]
    assert statuses == [200] * 30  # connection refused is requeued to another endpoint


def test_retryable_failures_are_retried_on_a_healthy_endpoint(env: Env) -> None:
    statuses = [request(env.floor, "halfbad")[0] for _ in range(30)]
    assert statuses == [200] * 30


def test_failure_accrual_stops_sending_to_a_failing_endpoint(env: Env) -> None:
    before = env.bad[0].hits
    for _ in range(60):
        request(env.floor, "halfbad")
    # 5 consecutive failures mark it dead for at least 5 s: it sees far fewer than half the traffic
    assert env.bad[0].hits - before <= 12


def test_budget_bounds_upstream_attempts_when_everything_fails(env: Env) -> None:
    before = sum(o.hits for o in env.bad)
    n = 40
    statuses = [request(env.addr, "allbad")[0] for _ in range(n)]
    attempts = sum(o.hits for o in env.bad) - before
    assert statuses == [503] * n  # the origin's own 503, relayed
    assert n <= attempts <= n * (1 + 0.5) + 1  # minRetriesPerSec is 0 here


def test_non_idempotent_requests_are_not_retried(env: Env) -> None:
    before = sum(o.hits for o in env.bad)
    statuses = [request(env.floor, "allbad", method="POST")[0] for _ in range(10)]
    assert statuses == [503] * 10
    assert sum(o.hits for o in env.bad) - before == 10


def test_attempt_timeout_answers_503_and_closes_the_attempt(env: Env) -> None:
    t0 = time.monotonic()
    status, headers = request(env.addr, "slow", "/slow/3000", method="POST")
    assert status == 503 and "exceeded" in headers["l5d-err"]
    assert time.monotonic() - t0 < 2.5


def test_peak_ewma_steers_away_from_a_slow_endpoint(env: Env) -> None:
    # ewma router: after the slow endpoint has answered once or twice, its cost keeps it out
    before = env.lagging.hits
    statuses = [request(env.addr, "oneslow")[0] for _ in range(60)]
    assert statuses == [200] * 60
    assert env.lagging.hits - before <= 6, "Peak-EWMA kept sending to the 150 ms endpoint"


@pytest.mark.parametrize("impl", TWINS)
def test_stale_pooled_connections_are_replaced_without_losing_or_repeating_requests(impl: str) -> None:
    """Every pooled connection to this origin is closed by it after one response. Reused at once
    (unchecked) or after a pause (checked first), the request must arrive exactly once."""
    origin = HangUpOrigin()
    try:
        with one_router(origin.port, "hangup", impl) as proxy:
            addr = proxy.addr("http")
            statuses = [request(addr, "hangup", method="POST")[0] for _ in range(5)]
            time.sleep(1.3)  # now the pooled connection is old enough to be checked before reuse
            statuses += [request(addr, "hangup", method="POST")[0] for _ in range(2)]
        assert statuses == [200] * 7
        assert origin.hits == 7  # none lost, none sent twice
    finally:
        origin.close()
