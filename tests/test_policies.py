"""Black-box tests of the client and service policies through the real CLI (one proxy per twin, one
router per concern): failure accrual by success rate (over requests and over time) with its probes,
retry backoffs, ``io.l5d.static`` client and service rules, the response classifiers and
``l5d-retryable``. Real origins on loopback; times are checked by lower bounds only.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import unquote_plus

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess, admin_json, dead_port
from upstream import Origin

Addr = Tuple[str, int]
BACKOFF = 0.4  # the accrual routers' constant backoff (ms: 400)


class Env:
    def __init__(self, impl: str) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-policies-")
        self.origins: Dict[str, Origin] = {}
        o = self.origins
        for name in ("sr-good", "sr-bad", "win-good", "win-bad", "slow", "rr-a", "rr-b", "api"):
            o[name] = Origin()
        for name in ("503", "const", "jit"):
            o[name] = Origin(fail_status=503)
        o["hdr"] = Origin(fail_status=503, fail_headers=[("l5d-retryable", "true")])
        names = {
            "sr": ["sr-good", "sr-bad"], "win": ["win-good", "win-bad"], "const": ["const"], "jit": ["jit"],
            "x-patient": ["slow"], "plain": ["slow"], "rr": ["rr-a", "rr-b"], "fast-api": ["api"], "slow-api": ["api"],
            "other": ["api"], "idem": ["503"], "all": ["503"], "ok": ["503"], "hdr": ["hdr"],
        }  # fmt: skip
        for name, members in names.items():
            with open(os.path.join(self.root, name), "w") as f:
                f.write("".join(f"127.0.0.1 {o[m].port}\n" for m in members))
        with open(os.path.join(self.root, "dead"), "w") as f:
            f.write(f"127.0.0.1 {dead_port()}\n")
        server = "  servers: [{ip: 127.0.0.1, port: 0}]\n"
        accrual = "{kind: io.l5d.%s, successRate: 0.9, %s, backoff: {kind: constant, ms: %d}}"
        budget = "{minRetriesPerSec: 0, percentCanRetry: %s}"
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {self.root}}}]
routers:
- protocol: http
  label: sr
  dtab: /svc => /#/io.l5d.fs
  client:
    loadBalancer: {{kind: roundRobin}}
    failureAccrual: {accrual % ("successRate", "requests: 5", BACKOFF * 1000)}
{server}- protocol: http
  label: win
  dtab: /svc => /#/io.l5d.fs
  client:
    loadBalancer: {{kind: roundRobin}}
    failureAccrual: {accrual % ("successRateWindowed", "window: 1", BACKOFF * 1000)}
{server}- protocol: http
  label: backoff
  dtab: /svc => /#/io.l5d.fs
  service:
    kind: io.l5d.static
    configs:
    - prefix: /svc
      responseClassifier: {{kind: io.l5d.http.retryableRead5XX}}
    - prefix: /svc/const
      retries: {{budget: {budget % 2.0}, backoff: {{kind: constant, ms: 150}}}}
    - prefix: /svc/jit
      retries: {{budget: {budget % 2.0}, backoff: {{kind: jittered, minMs: 100, maxMs: 400}}}}
{server}- protocol: http
  label: cstatic
  dtab: /svc => /#/io.l5d.fs; /svc/direct => /$/inet/127.0.0.1/{o["slow"].port}
  client:
    kind: io.l5d.static
    configs:
    - prefix: /#/io.l5d.fs
      requestAttemptTimeoutMs: 300
      failureAccrual: {{kind: io.l5d.consecutiveFailures, failures: 1, backoff: {{kind: constant, ms: 60000}}}}
    - prefix: "/#/*/{{name}}-patient"
      requestAttemptTimeoutMs: 3000
    - prefix: /#/io.l5d.fs/rr
      loadBalancer: {{kind: roundRobin}}
{server}- protocol: http
  label: sstatic
  dtab: /svc => /#/io.l5d.fs
  service:
    kind: io.l5d.static
    configs:
    - prefix: "/svc/{{name}}-api"
      totalTimeoutMs: 3000
      responseClassifier: {{kind: io.l5d.http.retryableRead5XX}}
      retries: {{budget: {budget % 1.0}}}
    - prefix: /svc/slow-api
      totalTimeoutMs: 300
{server}- protocol: http
  label: classify
  dtab: /svc => /#/io.l5d.fs
  client: {{failureAccrual: {{kind: none}}}}
  service:
    kind: io.l5d.static
    configs:
    - prefix: /svc
      retries: {{budget: {budget % 1.0}}}
    - prefix: /svc/idem
      responseClassifier: {{kind: io.l5d.http.retryableIdempotent5XX}}
    - prefix: /svc/all
      responseClassifier: {{kind: io.l5d.http.retryableAll5XX}}
    - prefix: /svc/ok
      responseClassifier: {{kind: io.l5d.http.allSuccessful}}
{server}- protocol: http
  label: edge
  dtab: /svc => /#/io.l5d.fs
  client: {{failureAccrual: {{kind: none}}}}
  service: {{retries: {{budget: {budget % 1.0}}}}}
  servers: [{{ip: 127.0.0.1, port: 0, clearContext: true}}]
"""
        self.proxy = ProxyProcess(config, impl)

    def addr(self, router: str) -> Addr:
        return self.proxy.addr(router)

    def metrics(self) -> dict:
        return admin_json(self.proxy, "/admin/metrics.json")

    def close(self) -> None:
        try:
            self.proxy.stop()
        finally:
            for o in self.origins.values():
                o.close()
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    try:
        yield e
    finally:
        e.close()


def call(addr: Addr, host: str, path: str = "/text/ok", method: str = "GET") -> Tuple[int, Dict[str, str], bytes]:
    c = http.client.HTTPConnection(*addr, timeout=20)
    try:
        c.request(method, path, headers={"Host": host})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def concurrently(n: int, fn: Callable[[], int]) -> List[int]:
    out: List[int] = []
    threads = [threading.Thread(target=lambda: out.append(fn())) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


# === failure accrual by success rate, and its probes ===


def _client_metrics(env: Env, router: str, name: str) -> Dict[str, int]:
    base = f"rt/{router}/client/#/io.l5d.fs/{name}/"
    m = env.metrics()
    keys = ("loadbalancer/available", "failure_accrual/removals", "failure_accrual/probes", "failure_accrual/revivals")
    return {k: m.get(base + k) for k in keys}  # type: ignore[misc]


def _probe_cycle(env: Env, router: str, name: str, good: Origin, bad: Origin, dead_at: float) -> None:
    """``bad`` was just marked dead at ``dead_at``: it gets no request until its backoff has passed,
    then exactly one probe (many requests at once); that one fails, so it is dead again; once healthy,
    the next probe revives it."""
    addr = env.addr(router)
    before = bad.hits
    statuses = [call(addr, name)[0] for _ in range(6)]
    elapsed = time.monotonic() - dead_at
    assert statuses == [200] * 6
    assert bad.hits - before <= (0 if elapsed < BACKOFF * 0.9 else int(elapsed / BACKOFF) + 1)
    assert _client_metrics(env, router, name)["loadbalancer/available"] == 1

    bad.server.delay = 0.3  # type: ignore[attr-defined]  # the probe stays out while the others go
    sleep_until(dead_at + BACKOFF + 0.05)
    before = bad.hits
    statuses = concurrently(6, lambda: call(addr, name)[0])
    probed_at = time.monotonic()
    assert sorted(statuses) == [200] * 5 + [503], statuses  # one probe, it failed
    assert bad.hits - before == 1
    m = _client_metrics(env, router, name)
    assert m == {"loadbalancer/available": 1, "failure_accrual/removals": 1, "failure_accrual/probes": 1, "failure_accrual/revivals": 0}

    bad.server.fail_status = 0  # type: ignore[attr-defined]
    bad.server.delay = 0.0  # type: ignore[attr-defined]
    sleep_until(probed_at + BACKOFF + 0.05)
    before = bad.hits
    for _ in range(10):  # round robin: the probe goes within two requests
        assert call(addr, name)[0] == 200
        if bad.hits > before:
            break
    assert bad.hits - before == 1
    m = _client_metrics(env, router, name)
    assert m == {"loadbalancer/available": 2, "failure_accrual/removals": 1, "failure_accrual/probes": 2, "failure_accrual/revivals": 1}
    before = bad.hits
    assert [call(addr, name)[0] for _ in range(10)] == [200] * 10
    assert bad.hits - before == 5  # revived: back in the rotation


def test_success_rate_accrual_over_requests(env: Env) -> None:
    good, bad = env.origins["sr-good"], env.origins["sr-bad"]
    bad.server.fail_status = 503  # type: ignore[attr-defined]
    addr = env.addr("sr")
    statuses = [call(addr, "sr")[0] for _ in range(10)]
    dead_at = time.monotonic()
    # round robin: 5 requests each; the 5th failure completes the window of 5 requests at a 0% rate
    assert sorted(statuses) == [200] * 5 + [503] * 5 and bad.hits == 5
    m = _client_metrics(env, "sr", "sr")
    assert m["loadbalancer/available"] == 1 and m["failure_accrual/removals"] == 1
    _probe_cycle(env, "sr", "sr", good, bad, dead_at)


def test_success_rate_windowed_accrual_waits_for_its_window(env: Env) -> None:
    good, bad = env.origins["win-good"], env.origins["win-bad"]
    bad.server.fail_status = 503  # type: ignore[attr-defined]
    addr = env.addr("win")
    first = time.monotonic()
    dead_at: Optional[float] = None
    while time.monotonic() - first < 5.0:
        call(addr, "win")
        if _client_metrics(env, "win", "win")["loadbalancer/available"] == 1:
            dead_at = time.monotonic()
            break
        time.sleep(0.02)
    assert dead_at is not None, "the failing endpoint was never marked dead"
    # Finagle's successRateWindowed judges only once a whole window (1 s) has passed since the
    # endpoint was added (here: the client made for the first request), however low the rate.
    assert dead_at - first >= 1.0
    assert _client_metrics(env, "win", "win")["failure_accrual/removals"] == 1
    _probe_cycle(env, "win", "win", good, bad, dead_at)


# === retry backoffs ===


def _gaps(origin: Origin) -> List[float]:
    times = [t for t, *_ in origin.received]
    return [b - a for a, b in zip(times, times[1:])]


def test_constant_retry_backoff_spaces_the_attempts(env: Env) -> None:
    t0 = time.monotonic()
    status, _, _ = call(env.addr("backoff"), "const")
    assert status == 503 and time.monotonic() - t0 < 10
    gaps = _gaps(env.origins["const"])
    assert len(gaps) == 2  # percentCanRetry 2, minRetriesPerSec 0: two retries for one request
    assert all(g >= 0.15 for g in gaps), gaps
    assert env.metrics()["rt/backoff/service/svc/const/retries/total"] == 2


def test_jittered_retry_backoff_spaces_the_attempts(env: Env) -> None:
    status, _, _ = call(env.addr("backoff"), "jit")
    assert status == 503
    gaps = _gaps(env.origins["jit"])
    assert len(gaps) == 2
    assert all(g >= 0.1 for g in gaps), gaps  # minMs; the first delay is minMs, then up to 3x the previous
    assert all(g < 0.4 + 2.0 for g in gaps), gaps  # maxMs, and room for a busy machine


# === io.l5d.static ===


def test_static_client_rules_apply_by_prefix_later_entries_winning_key_by_key(env: Env) -> None:
    addr = env.addr("cstatic")
    # /#/io.l5d.fs/x-patient: both fs entries match; the later one's attempt timeout (3 s) wins
    assert call(addr, "x-patient", "/slow/400")[0] == 200
    # /#/io.l5d.fs/plain: only the first entry matches (300 ms per attempt)
    t0 = time.monotonic()
    status, headers, _ = call(addr, "plain", "/slow/1500")
    assert status == 503 and "exceeded 0.3 seconds" in unquote_plus(headers.get("l5d-err", "")), headers
    assert time.monotonic() - t0 < 1.4
    # /$/inet/...: no entry matches: defaults (no attempt timeout)
    assert call(addr, "direct", "/slow/400")[0] == 200
    # failureAccrual of the first entry still applies to x-patient (the later entry does not set it)
    assert call(addr, "x-patient", "/status/503")[0] == 503
    assert call(addr, "direct", "/status/503")[0] == 503
    m = env.metrics()
    assert m["rt/cstatic/client/#/io.l5d.fs/x-patient/loadbalancer/available"] == 0  # 1 failure is enough
    slow = env.origins["slow"].port
    assert m[f"rt/cstatic/client/$/inet/127.0.0.1/{slow}/loadbalancer/available"] == 1  # the default is 5
    # loadBalancer from the third entry: round robin alternates (p2c would not, over 20 requests)
    a, b = env.origins["rr-a"], env.origins["rr-b"]
    a0, b0 = a.hits, b.hits
    for _ in range(20):
        assert call(addr, "rr")[0] == 200
        assert abs((a.hits - a0) - (b.hits - b0)) <= 1
    assert (a.hits - a0, b.hits - b0) == (10, 10)


def test_static_service_rules_apply_by_prefix_later_entries_winning_key_by_key(env: Env) -> None:
    addr = env.addr("sstatic")
    api = env.origins["api"]
    t0 = time.monotonic()
    status, headers, _ = call(addr, "slow-api", "/slow/1500")  # the later entry: 300 ms in all
    assert status == 503 and "exceeded" in headers.get("l5d-err", ""), headers
    assert 0.3 <= time.monotonic() - t0 < 1.4
    assert call(addr, "fast-api", "/slow/400")[0] == 200  # {name}-api: 3 s
    assert call(addr, "other", "/slow/400")[0] == 200  # no entry: no total timeout
    for name, attempts in (("slow-api", 2), ("fast-api", 2), ("other", 1)):
        before = api.hits
        assert call(addr, name, "/status/503")[0] == 503
        # the classifier of {name}-api (retryableRead5XX) also applies to slow-api, whose entry only
        # changes the timeout; "other" keeps the default (nonRetryable5XX)
        got = api.hits - before
        assert got >= 2 if attempts == 2 else got == 1, (name, got)


# === classifiers and l5d-retryable ===


@pytest.mark.parametrize(
    "name, retried, not_retried",
    [
        ("idem", ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"), ("POST", "PATCH")),
        ("all", ("GET", "POST", "PATCH", "PUT"), ()),
        ("ok", (), ("GET", "POST")),
    ],
)
def test_classifiers_decide_which_methods_are_retried(env: Env, name: str, retried: Tuple[str, ...], not_retried: Tuple[str, ...]) -> None:
    addr, origin = env.addr("classify"), env.origins["503"]
    for method in retried + not_retried:
        before = origin.hits
        status, headers, _ = call(addr, name, "/x", method)
        assert status == 503
        hits = origin.hits - before
        if method in retried:
            assert hits >= 2, (method, hits)
            assert headers["l5d-success-class"] == "0.0"
        else:
            assert hits == 1, (method, hits)
            assert headers["l5d-success-class"] == ("1.0" if name == "ok" else "0.0")


def test_all_successful_counts_5xx_as_success(env: Env) -> None:
    def counts() -> Tuple[int, int]:
        m = env.metrics()
        return m.get("rt/classify/service/svc/ok/success", 0), m.get("rt/classify/service/svc/ok/failures", 0)

    s0, f0 = counts()
    assert [call(env.addr("classify"), "ok", "/x")[0] for _ in range(3)] == [503] * 3
    s1, f1 = counts()
    assert (s1 - s0, f1 - f0) == (3, 0)


def test_l5d_retryable_upgrades_a_non_retryable_failure(env: Env) -> None:
    hdr = env.origins["hdr"]
    before = hdr.hits
    status, headers, _ = call(env.addr("classify"), "hdr", "/x", "POST")  # nonRetryable5XX, POST
    assert status == 503 and hdr.hits - before >= 2
    assert headers["l5d-retryable"] == "true" and headers["l5d-success-class"] == "0.0"  # relayed on


def test_l5d_retryable_at_an_edge(env: Env) -> None:
    # As in Linkerd, the classifier sees the upstream's response before the edge's scrub: the
    # upgrade happens at an edge too, but no l5d-* field leaves it, and the edge's own errors say
    # nothing of retries (an outsider has no Linkerd to retry for it).
    hdr = env.origins["hdr"]
    before = hdr.hits
    status, headers, _ = call(env.addr("edge"), "hdr", "/x", "POST")
    assert status == 503 and hdr.hits - before >= 2
    assert not [k for k in headers if k.startswith("l5d-")], headers
    status, headers, body = call(env.addr("classify"), "dead", "/x", "POST")
    assert status == 502 and headers["l5d-retryable"] == "true" and "l5d-err" in headers
    status, headers, body = call(env.addr("edge"), "dead", "/x", "POST")
    assert status == 502 and not [k for k in headers if k.startswith("l5d-")] and body == b"", (headers, body)
