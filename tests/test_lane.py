"""Black-box tests of the lane (the native data path) against its twin, the trio path.

Each test drives the real CLI twice, with the lane on (``PYPROXY_LANE=on``, native kernels) and off
(the trio path alone), and asserts the same answers from both; with the lane on it also asserts,
from ``/admin/metrics.json``, that the lane did take the requests (``lane/requests``) or handed
them over (``lane/handoffs``, ``lane/resumes``, ``lane/failed``), so a lane that silently declined
everything could not pass.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from proxyproc import ProxyProcess, admin_json, dead_port, one_router, raw, split_response
from upstream import HangUpOrigin, Origin

pytestmark = pytest.mark.native  # the lane exists with the native kernels only



class Env:
    def __init__(self, lane: str) -> None:
        self.lane = lane == "on"
        self.root = tempfile.mkdtemp(prefix="pyproxy-disco-")
        self.a, self.b, self.bad, self.spare = Origin(), Origin(), Origin(fail_status=503), Origin()
        self.write("a", [self.a.port])
        self.write("b", [self.b.port])
        self.write("halfbad", [self.bad.port, self.a.port])
        self.write("bad", [self.bad.port])
        self.write("mixed", [dead_port(), self.a.port])
        self.write("moving", [self.a.port])
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- {{kind: io.l5d.fs, rootDir: {self.root}}}
routers:
- protocol: http
  label: inner
  dtab: /svc => /#/io.l5d.fs
  service:
    responseClassifier: {{kind: io.l5d.http.retryableRead5XX}}
    retries: {{budget: {{minRetriesPerSec: 100, percentCanRetry: 1.0}}}}
  servers: [{{ip: 127.0.0.1, port: 0}}]
- protocol: http
  label: edge
  dtab: /svc => /#/io.l5d.fs
  servers: [{{ip: 127.0.0.1, port: 0, clearContext: true}}]
- protocol: http
  label: open
  dtab: /svc => /#/io.l5d.fs
  client: {{failureAccrual: {{kind: none}}}}
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proxy = ProxyProcess(config, "native", extra_env={"PYPROXY_LANE": lane})
        self.inner = self.proxy.addr("inner")
        self.edge = self.proxy.addr("edge")
        self.open = self.proxy.addr("open")  # no failure accrual: a dead endpoint stays in the set

    def write(self, name: str, ports: List[int]) -> None:
        tmp = os.path.join(self.root, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write("".join(f"127.0.0.1 {p}\n" for p in ports))
        os.replace(tmp, os.path.join(self.root, name))

    def metrics(self) -> Dict[str, float]:
        c = http.client.HTTPConnection(*self.proxy.addr("admin"), timeout=10)
        try:
            c.request("GET", "/admin/metrics.json")
            return json.loads(c.getresponse().read())  # type: ignore[no-any-return]
        finally:
            c.close()

    def lane_count(self, name: str, at_least: float = 0, timeout: float = 5.0) -> float:
        """``lane/<name>``, waiting (bounded) until it reaches ``at_least``: the lane hands Python
        its results once per poll, which may come after the client has its response."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.metrics().get(f"lane/{name}", 0)
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.02)

    def close(self) -> None:
        self.proxy.stop()
        for o in (self.a, self.b, self.bad, self.spare):
            o.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=["on", "off"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    yield e
    e.close()


def exchange(
    conn: http.client.HTTPConnection, path: str, host: str, headers: Optional[Dict[str, str]] = None, method: str = "GET"
) -> Tuple[int, Dict[str, str], bytes]:
    conn.request(method, path, headers={"Host": host, **(headers or {})})
    r = conn.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


def echo_headers(body: bytes) -> List[List[str]]:
    return json.loads(body)["headers"]  # type: ignore[no-any-return]


def test_repeat_requests_are_served_by_the_lane(env: Env) -> None:
    before = env.lane_count("requests")
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        answers = [exchange(c, "/text/hello", "a") for _ in range(20)]
    finally:
        c.close()
    assert all(s == 200 and body == b"hello" for s, _, body in answers)
    assert all(h["via"] == "1.1 pyproxy-inner" for _, h, _ in answers)
    served = env.lane_count("requests", before + 19 if env.lane else 0) - before
    if env.lane:
        assert served >= 19  # all but the first (it installs the route)
    else:
        assert "lane/requests" not in env.metrics()


def test_forwarded_requests_match_the_trio_path(env: Env) -> None:
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for _ in range(3):
            status, _, body = exchange(c, "/echo?q=1", "a", {"X-Thing": "v", "Connection": "x-gone", "X-Gone": "1", "Content-Length": "0"})
            assert status == 200
            seen = echo_headers(body)
            names = [k.lower() for k, _ in seen]
            assert "x-gone" not in names and names.count("content-length") == 1
            assert dict((k.lower(), v) for k, v in seen)["l5d-dst-service"] == "/svc/a"
            assert dict((k.lower(), v) for k, v in seen)["l5d-dst-client"] == "/#/io.l5d.fs/a"
            assert names[-6:] == ["via", "l5d-dst-service", "l5d-dst-client", "l5d-ctx-trace", "l5d-reqid", "content-length"]
    finally:
        c.close()


def test_overrides_route_per_request_whatever_was_cached(env: Env) -> None:
    to_b = {"l5d-dtab": "/svc/a => /svc/b"}
    back = {"l5d-ctx-dtab": "/svc/a => /svc/b", "l5d-dtab": "/svc/b => /#/io.l5d.fs/a"}
    nominated = {"l5d-dtab": "/svc/a => /svc/b", "Connection": "l5d-dtab"}
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for _ in range(3):
            for headers, origin in ((None, env.a), (to_b, env.b), (back, env.a), (nominated, env.a)):
                status, _, body = exchange(c, "/echo", "a", headers)
                assert status == 200
                want = "/svc/b" if headers is to_b else None
                got = dict((k.lower(), v) for k, v in echo_headers(body))
                assert got["l5d-dst-client"] == ("/#/io.l5d.fs/b" if origin is env.b else "/#/io.l5d.fs/a"), (headers, got)
                if want:
                    assert got["l5d-ctx-dtab"] == "/svc/a=>/svc/b"
                if headers is nominated:
                    assert "l5d-ctx-dtab" not in got
    finally:
        c.close()


def test_the_edge_ignores_overrides_and_scrubs_responses(env: Env) -> None:
    c = http.client.HTTPConnection(*env.edge, timeout=20)
    try:
        for _ in range(3):
            status, headers, body = exchange(c, "/header/l5d-secret/x", "a", {"l5d-dtab": "/svc/a => /svc/b"})
            assert status == 200 and body == b"with header"
            assert "l5d-secret" not in headers
            status, headers, body = exchange(c, "/header/l5d-err/oops", "a")
            assert status == 200 and body == b"" and "l5d-err" not in headers  # blanked (by Python after a resume)
    finally:
        c.close()


def test_the_lanes_batched_results_count_what_the_trio_path_counts(env: Env) -> None:
    """The lane sums its results per batch; the counters must move exactly as when the trio path
    counts each request (service, client and server scopes, status, budgets untouched by retries)."""
    before = env.metrics()
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for i in range(12):
            assert exchange(c, f"/text/n{i}", "b")[::2] == (200, f"n{i}".encode())
    finally:
        c.close()
    after = env.metrics()
    server = next(k.rsplit("/", 1)[0] for k in after if k.startswith("rt/inner/server/") and k.endswith("/requests"))
    keys = [
        "rt/inner/service/svc/b/requests", "rt/inner/service/svc/b/success", "rt/inner/service/svc/b/status/200",
        "rt/inner/service/svc/b/status/2XX", "rt/inner/client/#/io.l5d.fs/b/requests",
        "rt/inner/client/#/io.l5d.fs/b/success", "rt/inner/client/#/io.l5d.fs/b/status/200", f"{server}/success",
    ]
    assert {k: after.get(k, 0) - before.get(k, 0) for k in keys} == {k: 12 for k in keys}
    assert after.get("rt/inner/service/svc/b/failures", 0) == before.get("rt/inner/service/svc/b/failures", 0)
    assert after.get("rt/inner/service/svc/b/retries/total", 0) == before.get("rt/inner/service/svc/b/retries/total", 0)
    if env.lane:
        assert after["lane/requests"] - before.get("lane/requests", 0) >= 10


def test_responses_carry_this_routers_success_class(env: Env) -> None:
    """``l5d-success-class`` is set on relayed responses from the router's classifier, in place of an
    upstream's (Linkerd's path stack), by the lane as by the trio path; never at an edge."""
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for _ in range(3):  # the first installs the route, the others are the lane's when it is on
            status, headers, _ = exchange(c, "/header/l5d-success-class/0.0", "a")
            assert (status, headers.get("l5d-success-class")) == (200, "1.0")
        status, headers, body = exchange(c, "/text/ok", "bad")  # retried within budget, then relayed
        assert (status, body, headers.get("l5d-success-class")) == (503, b"failing on purpose", "0.0")
    finally:
        c.close()
    c = http.client.HTTPConnection(*env.edge, timeout=20)
    try:
        for _ in range(2):
            status, headers, _ = exchange(c, "/header/l5d-success-class/0.0", "a")
            assert status == 200 and "l5d-success-class" not in headers
    finally:
        c.close()


@pytest.mark.parametrize("lane", ["on", "off"])
def test_server_and_service_stats_follow_the_classifier(lane: str) -> None:
    """With io.l5d.http.allSuccessful a 503 is a success for the server and service scopes too (as
    Linkerd's server reads the router's l5d-success-class); a Linkerd-made 502 stays a failure."""
    bad = Origin(fail_status=503)
    root = tempfile.mkdtemp(prefix="pyproxy-disco-")
    try:
        with open(os.path.join(root, "bad"), "w") as f:
            f.write(f"127.0.0.1 {bad.port}\n")
        with open(os.path.join(root, "gone"), "w") as f:
            f.write(f"127.0.0.1 {dead_port()}\n")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- {{kind: io.l5d.fs, rootDir: {root}}}
routers:
- protocol: http
  label: lenient
  dtab: /svc => /#/io.l5d.fs
  service: {{responseClassifier: {{kind: io.l5d.http.allSuccessful}}}}
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        proxy = ProxyProcess(config, "native", extra_env={"PYPROXY_LANE": lane})
        try:
            c = http.client.HTTPConnection(*proxy.addr("lenient"), timeout=20)
            try:
                for _ in range(3):
                    status, headers, _ = exchange(c, "/", "bad")
                    assert (status, headers.get("l5d-success-class")) == (503, "1.0")
            finally:
                c.close()
            c = http.client.HTTPConnection(*proxy.addr("lenient"), timeout=20)
            try:
                status, headers, _ = exchange(c, "/", "gone")
                assert status == 502 and "l5d-success-class" not in headers
            finally:
                c.close()
            m = admin_json(proxy, "/admin/metrics.json")
        finally:
            proxy.stop()
        server = next(k.rsplit("/", 1)[0] for k in m if k.startswith("rt/lenient/server/") and k.endswith("/requests"))
        assert (m[f"{server}/requests"], m[f"{server}/success"], m[f"{server}/failures"]) == (4, 3, 1)
        svc = "rt/lenient/service/svc/bad"
        assert (m[f"{svc}/requests"], m[f"{svc}/success"], m.get(f"{svc}/failures", 0)) == (3, 3, 0)
    finally:
        bad.close()
        shutil.rmtree(root, ignore_errors=True)


def test_5xx_goes_back_to_python_for_classification_and_retries(env: Env) -> None:
    before = env.metrics()
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        answers = [exchange(c, "/text/ok", "halfbad")[0] for _ in range(10)]
    finally:
        c.close()
    assert answers == [200] * 10  # a 503 from the bad endpoint is retried on the good one
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for _ in range(2):
            status, headers, body = exchange(c, "/text/ok", "bad")
            assert (status, body) == (503, b"failing on purpose")  # retried within budget, then relayed
            # with a body: handed over with it, the connection stays usable after the answer
            c.request("POST", "/text/ok", body=b"abc", headers={"Host": "bad"})
            r = c.getresponse()
            assert (r.status, r.read()) == (503, b"failing on purpose")
            assert exchange(c, "/text/next", "a")[2] == b"next"
    finally:
        c.close()
    # The retries above may trip failure accrual on the bad endpoint, which clears the lane's routes
    # (then Python serves); a router without accrual keeps the route, so the lane's pick is resumed.
    c = http.client.HTTPConnection(*env.open, timeout=20)
    try:
        assert [exchange(c, "/text/ok", "bad")[:3:2] for _ in range(3)] == [(503, b"failing on purpose")] * 3
    finally:
        c.close()
    if env.lane:
        assert env.lane_count("resumes", before.get("lane/resumes", 0) + 1) > before.get("lane/resumes", 0)


def test_chunked_and_close_delimited_bodies_are_relayed_whole(env: Env) -> None:
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for _ in range(3):
            status, headers, body = exchange(c, "/chunked/5000", "a")
            assert status == 200 and body == b"y" * 5000 and headers["transfer-encoding"] == "chunked"
            status, headers, body = exchange(c, "/size/300000", "a")
            assert status == 200 and body == b"x" * 300000
            status, headers, body = exchange(c, "/size/10", "a", method="HEAD")
            assert status == 200 and body == b"" and headers["content-length"] == "10"
            status, _, body = exchange(c, "/status/204", "a")
            assert status == 204 and body == b""
    finally:
        c.close()


def test_pipelined_requests_are_answered_in_order(env: Env) -> None:
    reqs = b"".join(b"GET /text/p%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(5))
    out = raw(env.inner, reqs + b"GET /text/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", timeout=10)
    bodies = []
    rest = out
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        n = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
        bodies.append(rest[:n])
        rest = rest[n:]
    assert bodies == [b"p0", b"p1", b"p2", b"p3", b"p4", b"last"]


def test_http10_clients_get_a_closing_http10_response(env: Env) -> None:
    for _ in range(2):
        out = raw(env.inner, b"GET /text/old HTTP/1.0\r\nHost: a\r\n\r\n", timeout=10)
        status, headers, body = split_response(out)
        assert out.startswith(b"HTTP/1.0 200") and status == 200 and body == b"old"
        assert headers["connection"] == "close"


def test_unreachable_endpoint_is_requeued_through_python(env: Env) -> None:
    before = env.metrics()
    answers = []
    for _ in range(20):
        c = http.client.HTTPConnection(*env.open, timeout=20)
        try:
            answers.append(exchange(c, "/text/ok", "mixed")[0])
            answers.append(exchange(c, "/text/ok", "mixed")[0])
        finally:
            c.close()
    assert answers == [200] * 40
    if env.lane:  # the lane met the refused endpoint and gave those requests back
        assert env.lane_count("failed", before.get("lane/failed", 0) + 1) > before.get("lane/failed", 0)


def test_a_namer_update_reroutes_requests_the_lane_had_cached(env: Env) -> None:
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        assert [exchange(c, "/echo", "moving")[0] for _ in range(3)] == [200] * 3
        hits = env.spare.hits
        env.write("moving", [env.spare.port])
        deadline = time.monotonic() + 10
        while env.spare.hits == hits and time.monotonic() < deadline:
            assert exchange(c, "/echo", "moving")[0] == 200
            time.sleep(0.05)
        assert env.spare.hits > hits
        a_hits = env.a.hits
        assert [exchange(c, "/echo", "moving")[0] for _ in range(5)] == [200] * 5
        assert env.a.hits == a_hits  # nothing goes to the old endpoint any more
    finally:
        c.close()
        env.write("moving", [env.a.port])


def test_a_client_that_leaves_mid_response_costs_nothing_else(env: Env) -> None:
    for _ in range(5):
        s = socket.create_connection(env.inner, timeout=10)
        s.sendall(b"GET /size/2000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        s.recv(1000)
        s.close()
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        assert exchange(c, "/text/fine", "a")[2] == b"fine"
    finally:
        c.close()


def test_a_slow_reader_gets_a_large_body_intact(env: Env) -> None:
    """The lane stops reading the upstream while the client does not read (backpressure), then
    relays the rest: nothing lost, memory bounded by its high-water mark."""
    size = 8_000_000
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # small window: the proxy must wait
    s.settimeout(20)
    s.connect(env.inner)
    try:
        s.sendall(b"GET /size/%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" % size)
        time.sleep(0.5)  # socket buffers fill; the lane must hold off
        data = bytearray()
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) == size and body == b"x" * size


def test_a_pipeline_longer_than_the_read_ahead_is_answered_whole(env: Env) -> None:
    """More pipelined bytes than the lane reads ahead (1 MiB) while a request is in flight: the
    rest must still be read (the socket is edge-triggered), every request answered in order."""
    pad = b"x" * 4000
    n = 400  # about 1.6 MB of requests
    data = b"".join(b"GET /text/r%d HTTP/1.1\r\nHost: a\r\nX-Pad: %s\r\n\r\n" % (i, pad) for i in range(n))
    s = socket.create_connection(env.inner, timeout=30)
    import threading

    sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
    sender.start()
    got = bytearray()
    want = [b"r%d" % i for i in range(n)]
    bodies: List[bytes] = []
    try:
        while len(bodies) < n:
            chunk = s.recv(1 << 16)
            assert chunk, f"closed after {len(bodies)} responses"
            got += chunk
            while True:
                head_end = got.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                head = bytes(got[:head_end])
                length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
                if len(got) < head_end + 4 + length:
                    break
                bodies.append(bytes(got[head_end + 4 : head_end + 4 + length]))
                del got[: head_end + 4 + length]
    finally:
        s.close()
        sender.join(5)
    assert bodies == want


@pytest.mark.parametrize("lane", ["on", "off"])
def test_recent_requests_sees_lane_requests_like_the_others(lane: str) -> None:
    """io.l5d.recentRequests keeps the lane on: the lane draws the sample and reports the fields."""
    origin = Origin()
    top = "telemetry:\n- {kind: io.l5d.recentRequests, sampleRate: 1.0, capacity: 10}\n"
    try:
        with one_router(origin.port, "web", "native", label="seen", top=top, extra_env={"PYPROXY_LANE": lane}) as proxy:
            c = http.client.HTTPConnection(*proxy.addr("seen"), timeout=20)
            try:
                local = None
                for i in range(5):
                    assert exchange(c, f"/text/r{i}?x=1", "web")[2] == b"r%d" % i
                    local = c.sock.getsockname()
            finally:
                c.close()
            got = admin_json(proxy, "/requests.json")["requests"]
            metrics = admin_json(proxy, "/admin/metrics.json")
        assert [e["uri"] for e in got] == [f"/text/r{i}?x=1" for i in reversed(range(5))]
        for e in got:
            assert (e["router"], e["method"], e["status"], e["logical"], e["concrete"]) == ("seen", "GET", 200, "/svc/web", "/#/io.l5d.fs/web")
            assert e["destination"] == f"127.0.0.1:{origin.port}" and e["source"] == f"{local[0]}:{local[1]}"
        assert metrics.get("lane/requests", 0) == (4 if lane == "on" else 0)
    finally:
        origin.close()


@pytest.mark.parametrize("lane", ["on", "off"])
def test_timeouts_of_connections_the_lane_holds(lane: str) -> None:
    """Idle connections close after serverSession.idleTimeMs and a head that does not arrive within
    socketOptions.readTimeoutMs gets Python's 408, whether the lane or the trio path holds them."""
    origin = Origin()
    server = "socketOptions: {readTimeoutMs: 400}, serverSession: {idleTimeMs: 1500}"
    try:
        with one_router(origin.port, "web", "native", label="timed", server=server, extra_env={"PYPROXY_LANE": lane}) as proxy:
            addr = proxy.addr("timed")
            # a connection that served requests (the second by the lane, when on), then stays idle
            s = socket.create_connection(addr, timeout=10)
            try:
                for _ in range(2):
                    s.sendall(b"GET /text/x HTTP/1.1\r\nHost: web\r\n\r\n")
                    got = b""
                    while not got.endswith(b"x"):
                        chunk = s.recv(65536)
                        assert chunk
                        got += chunk
                t0 = time.monotonic()
                assert s.recv(1) == b""
                assert 1.0 < time.monotonic() - t0 < 5
            finally:
                s.close()
            for stalled in (
                b"GET / HTTP/1.1\r\nHost: w",  # a head that stops half-way
                b"PUT /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nabc",  # a small body that does
            ):
                s = socket.create_connection(addr, timeout=10)
                try:
                    s.sendall(stalled)
                    t0 = time.monotonic()
                    data = _read_to_close(s)
                    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"l5d-err" not in data
                    assert 0.3 < time.monotonic() - t0 < 3
                finally:
                    s.close()
            served = admin_json(proxy, "/admin/metrics.json").get("lane/requests", 0)
        assert served == (1 if lane == "on" else 0)  # the idle connection was the lane's
    finally:
        origin.close()


def _pooled_after(proxy: ProxyProcess, want: int, seconds: float = 5.0) -> float:
    """``lane/pooled`` once it equals ``want`` (or whatever it is after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        pooled = admin_json(proxy, "/admin/metrics.json")["lane/pooled"]
        if pooled == want or time.monotonic() > deadline:
            return pooled  # type: ignore[no-any-return]
        time.sleep(0.05)


@contextlib.contextmanager
def _lane_client(port: int, service: str) -> Iterator[Tuple[ProxyProcess, http.client.HTTPConnection]]:
    """A lane proxy in front of one origin, and a client connection to it."""
    with one_router(port, service, "native", extra_env={"PYPROXY_LANE": "on"}) as proxy:
        c = http.client.HTTPConnection(*proxy.addr("http"), timeout=20)
        try:
            yield proxy, c
        finally:
            c.close()


def test_the_lane_drops_a_pooled_connection_as_soon_as_the_upstream_closes_it() -> None:
    """Pooled upstream sockets stay registered with the lane, so an upstream that closes an idle
    keep-alive connection is seen at once and the connection leaves the pool (the next request
    does not first try a dead one)."""
    hang = HangUpOrigin()
    try:
        with _lane_client(hang.port, "hang") as (proxy, c):
            for _ in range(5):
                assert exchange(c, "/", "hang")[::2] == (200, b"ok")
            assert hang.hits == 5
            assert admin_json(proxy, "/admin/metrics.json")["lane/requests"] >= 3  # the lane served (and pooled) most
            assert _pooled_after(proxy, 0) == 0
    finally:
        hang.close()


def test_a_pooled_connection_the_upstream_keeps_open_stays_pooled() -> None:
    origin = Origin()
    try:
        with _lane_client(origin.port, "web") as (proxy, c):
            for _ in range(3):
                assert exchange(c, "/text/x", "web")[2] == b"x"
            assert _pooled_after(proxy, 1) == 1
            time.sleep(0.3)
            assert admin_json(proxy, "/admin/metrics.json")["lane/pooled"] == 1
            assert exchange(c, "/text/y", "web")[2] == b"y"
            assert admin_json(proxy, "/admin/metrics.json")["lane/pooled"] == 1  # reused, not a second one
    finally:
        origin.close()


def _read_to_close(s: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def _dechunk(body: bytes) -> Tuple[bytes, bytes, List[bytes]]:
    """(data, trailer section, chunk lines) of a chunked body."""
    data, lines = bytearray(), []
    while True:
        line, _, body = body.partition(b"\r\n")
        lines.append(line)
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return bytes(data), body, lines
        data += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


@pytest.mark.parametrize("where", ["inner", "edge"])
def test_chunked_responses_are_reframed_with_their_trailers(env: Env, where: str) -> None:
    """Chunk extensions dropped, data intact, trailers relayed (without l5d-* at an edge); with the
    lane on, by the lane itself (no resume)."""
    addr = env.inner if where == "inner" else env.edge
    before = env.metrics()
    for _ in range(3):
        out = raw(addr, b"GET /chunked/2500?l5d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
        data, trailers, lines = _dechunk(body)
        assert data == b"y" * 2500 and all(b";" not in line for line in lines)
        want = b"X-Checksum: done\r\n" + (b"l5d-secret: hidden\r\n" if where == "inner" else b"") + b"\r\n"
        assert trailers == want
    if env.lane:
        assert env.lane_count("requests", before["lane/requests"] + 2) >= before["lane/requests"] + 2  # the first installs the route
        assert env.metrics()["lane/resumes"] == before["lane/resumes"]


def _read_response(s: socket.socket) -> bytes:
    """One response framed by Content-Length, read whole from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf or len(buf.partition(b"\r\n\r\n")[2]) < int(buf.lower().split(b"content-length:")[1].split(b"\r\n")[0]):
        chunk = s.recv(65536)
        assert chunk
        buf += chunk
    return buf


def _echo_body(out: bytes) -> dict:
    status, _, body = split_response(out)
    assert status == 200, out[:300]
    return json.loads(body)  # type: ignore[no-any-return]


def test_small_bodies_take_the_lane_and_arrive_whole(env: Env) -> None:
    import hashlib

    before = env.metrics()
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for n in (0, 1, 300, 5120, 5121, 20000):  # the last two are over streamAfterContentLengthKB
            data = bytes(range(256)) * (n // 256) + b"z" * (n % 256)
            c.request("POST", "/echo", body=data, headers={"Host": "a"})
            r = c.getresponse()
            got = json.loads(r.read())
            assert r.status == 200 and got["body_len"] == n and got["body_sha256"] == hashlib.sha256(data).hexdigest()
            assert [k.lower() for k, _ in got["headers"]].count("content-length") == 1
    finally:
        c.close()
    if env.lane:
        assert env.lane_count("requests", before.get("lane/requests", 0) + 3) >= before.get("lane/requests", 0) + 3


def test_a_body_that_arrives_after_its_head_is_waited_for(env: Env) -> None:
    s = socket.create_connection(env.inner, timeout=10)
    try:
        for _ in range(2):  # the first installs the route, the second is the lane's
            s.sendall(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
            time.sleep(0.2)
            s.sendall(b"world")
            buf = _read_response(s)
            got = _echo_body(buf)
            assert got["method"] == "PUT" and got["body_head"] == "helloworld"
    finally:
        s.close()


def test_a_body_sent_after_its_head_is_still_retried(env: Env) -> None:
    """A small body that arrives in a later segment than its head is read whole before the request is
    sent, so a 503 from the bad endpoint is retried with it, lane on or off (otherwise whether a
    request is retryable would depend on TCP segmentation)."""
    s = socket.create_connection(env.inner, timeout=10)
    try:
        for i in range(6):
            body = b"late-%04d" % i
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: halfbad\r\nContent-Length: %d\r\n\r\n" % len(body))
            time.sleep(0.05)
            s.sendall(body)
            buf = _read_response(s)
            assert buf.startswith(b"HTTP/1.1 200 ")
            assert _echo_body(buf)["body_head"] == body.decode()
    finally:
        s.close()


def test_a_retried_request_keeps_its_body(env: Env) -> None:
    """A GET with a small body answered 503 by the lane's pick is retried by Python (the exchange
    continues from the lane's attempt) with the same body, on the good endpoint."""
    c = http.client.HTTPConnection(*env.inner, timeout=20)
    try:
        for i in range(10):
            body = b"payload-%d" % i
            c.request("GET", "/echo", body=body, headers={"Host": "halfbad"})
            r = c.getresponse()
            got = json.loads(r.read())
            assert r.status == 200 and got["body_head"] == body.decode()
    finally:
        c.close()


# === faults and limits: the lane on and the trio path alone, byte for byte ===


class Pair:
    """Two proxies with the same config, the lane on and off, in front of the same origins."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-pair-")
        self.origin = Origin()
        self.closer = _ClosingOrigin(reset=False)
        self.resetter = _ClosingOrigin(reset=True)
        for name, port in (("web", self.origin.port), ("closer", self.closer.port), ("resetter", self.resetter.port)):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(f"127.0.0.1 {port}\n")
        router = "- protocol: http\n  label: {label}\n  dtab: /svc => /#/io.l5d.fs\n{extra}  servers: [{{ip: 127.0.0.1, port: 0{server}}}]\n"
        routers = [
            router.format(label="plain", extra="", server=""),
            router.format(label="total", extra="  service: {totalTimeoutMs: 200}\n", server=""),
            router.format(label="attempt", extra="  client: {requestAttemptTimeoutMs: 200}\n", server=""),
            router.format(
                label="retried",
                extra="  client: {requestAttemptTimeoutMs: 150}\n"
                "  service: {totalTimeoutMs: 1000, responseClassifier: {kind: io.l5d.http.retryableRead5XX},"
                " retries: {budget: {minRetriesPerSec: 100, percentCanRetry: 1.0}}}\n",
                server="",
            ),
            router.format(
                label="capped", extra="",
                server=", maxConcurrentRequests: 1, maxConnections: 3, socketOptions: {writeTimeoutMs: 300}",
            ),
        ]
        config = f"admin: {{ip: 127.0.0.1, port: 0}}\nnamers:\n- {{kind: io.l5d.fs, rootDir: {self.root}}}\nrouters:\n" + "".join(routers)
        self.proxies: Dict[str, ProxyProcess] = {}
        try:
            for mode in ("on", "off"):
                self.proxies[mode] = ProxyProcess(config, "native", extra_env={"PYPROXY_LANE": mode})
        except Exception:
            self.close()
            raise

    def warm(self, mode: str, label: str, host: str = "web") -> None:
        """One request through Python: it installs the route, so the next connections are the lane's."""
        raw(self.proxies[mode].addr(label), b"GET /text/warm HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())

    def metric(self, mode: str, name: str) -> float:
        return admin_json(self.proxies[mode], "/admin/metrics.json").get(name, 0)  # type: ignore[no-any-return]

    def wait_metric(self, mode: str, name: str, want: float, seconds: float = 10.0) -> float:
        deadline = time.monotonic() + seconds
        while True:
            got = self.metric(mode, name)
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def close(self) -> None:
        for p in self.proxies.values():
            p.stop()
        for o in (self.origin, self.closer, self.resetter):
            o.close()
        shutil.rmtree(self.root, ignore_errors=True)


class _ClosingOrigin:
    """An origin that reads each request and closes the connection without answering: with a FIN,
    or (``reset``) with a reset."""

    def __init__(self, reset: bool) -> None:
        import threading

        self.reset = reset
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import struct

        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.hits += 1
                if self.reset:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    p = Pair()
    try:
        yield p
    finally:
        p.close()


def _normal(response: bytes) -> bytes:
    """A response without the origin's ``Date`` (the one field that differs between two runs)."""
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:"))


def _statuses(response: bytes) -> List[int]:
    import re

    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", response)]


EOF_CASES = {
    "a partial head": (b"GET /text/x HTT", [400]),
    "a whole request": (b"GET /text/x HTTP/1.1\r\nHost: web\r\n\r\n", [200]),
    "pipelined requests": (b"GET /text/x HTTP/1.1\r\nHost: web\r\n\r\nGET /text/y HTTP/1.1\r\nHost: web\r\n\r\n", [200, 200]),
    "a small body cut short": (b"POST /echo HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nabc", None),
}


@pytest.mark.parametrize("case", list(EOF_CASES))
def test_a_half_close_in_every_state_gets_the_trio_paths_answer_at_once(pair: Pair, case: str) -> None:
    """The client's FIN comes with its last bytes: the lane sees it (no timeout waits), and answers
    or hands over exactly as the trio path: 400 for a head cut short, the responses then the close
    for whole requests."""
    data, statuses = EOF_CASES[case]
    got = {}
    for mode in ("on", "off"):
        pair.warm(mode, "plain")
        before = pair.metric(mode, "lane/requests") + pair.metric(mode, "lane/handoffs")
        t0 = time.monotonic()
        got[mode] = _normal(raw(pair.proxies[mode].addr("plain"), data, half_close=True, timeout=8))
        assert time.monotonic() - t0 < 4, f"{mode}: answered and closed at once, not after a timeout"
        if mode == "on":
            assert pair.metric(mode, "lane/requests") + pair.metric(mode, "lane/handoffs") > before  # the lane had it
    assert got["on"] == got["off"]
    if statuses is not None:
        assert _statuses(got["on"]) == statuses
    else:
        assert got["on"] == b"" or _statuses(got["on"])[0] in (400, 502)


def test_a_client_that_never_reads_is_closed_after_the_write_timeout(pair: Pair) -> None:
    """socketOptions.writeTimeoutMs: a response the client stops taking fails its connection (and
    the upstream's), the lane's as the trio path's; the balancer is left with nothing pending."""
    size = 200_000_000
    for mode in ("on", "off"):
        proxy = pair.proxies[mode]
        pair.warm(mode, "capped")
        before = pair.metric(mode, "lane/requests")
        server = f"rt/capped/server/127.0.0.1/{proxy.addr('capped')[1]}/connections"
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 14)
        s.settimeout(10)
        try:
            s.connect(proxy.addr("capped"))
            s.sendall(b"GET /size/%d HTTP/1.1\r\nHost: web\r\n\r\n" % size)
            assert pair.wait_metric(mode, server, 1) == 1
            assert pair.wait_metric(mode, server, 0) == 0, f"{mode}: the stalled connection is closed"
            got = 0
            try:
                while True:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        break
                    got += len(chunk)
            except (ConnectionResetError, socket.timeout):
                pass
            assert got < size
        finally:
            s.close()
        assert pair.wait_metric(mode, "rt/capped/client/#/io.l5d.fs/web/pending", 0) == 0
        if mode == "on":
            assert pair.metric(mode, "lane/requests") == before + 1  # the lane relayed it, then closed it


def test_max_connections_closes_the_excess_at_once(pair: Pair) -> None:
    """maxConnections (a pyproxy extension) counts the connections of both paths; one more is
    closed before anything is read from it."""
    for mode in ("on", "off"):
        proxy = pair.proxies[mode]
        pair.warm(mode, "capped")
        server = f"rt/capped/server/127.0.0.1/{proxy.addr('capped')[1]}/connections"
        assert pair.wait_metric(mode, server, 0) == 0
        held = [http.client.HTTPConnection(*proxy.addr("capped"), timeout=10) for _ in range(3)]
        try:
            for c in held:
                assert exchange(c, "/text/held", "web")[2] == b"held"
            assert pair.wait_metric(mode, server, 3) == 3
            extra = socket.create_connection(proxy.addr("capped"), timeout=10)
            try:
                try:
                    extra.sendall(b"GET /text/x HTTP/1.1\r\nHost: web\r\n\r\n")
                    assert extra.recv(100) == b"", mode
                except ConnectionResetError:
                    pass
            finally:
                extra.close()
            held.pop().close()
            assert pair.wait_metric(mode, server, 2) == 2
            assert raw(proxy.addr("capped"), b"GET /text/again HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n").endswith(b"again")
        finally:
            for c in held:
                c.close()


def test_max_concurrent_requests_counts_the_requests_of_both_paths(pair: Pair) -> None:
    """maxConcurrentRequests is shared: a request in flight in the lane or in Python counts, and the
    one over the cap gets Python's 503 either way."""
    answers = {}
    for mode in ("on", "off"):
        proxy = pair.proxies[mode]
        pair.warm(mode, "capped")
        for busy_header in (b"", b"l5d-sample: 1\r\n"):  # the lane serves the first, Python the second
            before = pair.metric(mode, "lane/requests")
            hits = pair.origin.hits
            slow = socket.create_connection(proxy.addr("capped"), timeout=10)
            try:
                slow.sendall(b"GET /slow/800 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n%s\r\n" % busy_header)
                deadline = time.monotonic() + 10
                while pair.origin.hits == hits and time.monotonic() < deadline:
                    time.sleep(0.01)
                over = raw(proxy.addr("capped"), b"GET /text/over HTTP/1.1\r\nHost: web\r\n\r\n")
                answers[(mode, busy_header)] = over
                assert _statuses(over) == [503] and b"max concurrent requests exceeded" in over
                assert _statuses(_read_to_close(slow)) == [200]
            finally:
                slow.close()
            if mode == "on":
                assert pair.metric(mode, "lane/requests") - before == (1 if not busy_header else 0)
    for busy_header in (b"", b"l5d-sample: 1\r\n"):
        assert answers[("on", busy_header)] == answers[("off", busy_header)]


def _answer(pair: Pair, mode: str, label: str, path: str, headers: bytes = b"") -> Tuple[int, Dict[str, str], bytes]:
    data = b"GET %s HTTP/1.1\r\nHost: web\r\nConnection: close\r\n%s\r\n" % (path.encode(), headers)
    return split_response(raw(pair.proxies[mode].addr(label), data))


@pytest.mark.parametrize("label", ["total", "attempt"])
def test_timeouts_answer_as_the_trio_path(pair: Pair, label: str) -> None:
    """totalTimeoutMs and requestAttemptTimeoutMs with the lane: it hands the exchange over when the
    deadline passes, and Python answers the trio path's 503 (same status, body, l5d-err)."""
    got = {}
    for mode in ("on", "off"):
        pair.warm(mode, label)
        before = pair.metric(mode, "lane/resumes")
        status, headers, body = _answer(pair, mode, label, "/slow/1000")
        got[mode] = (status, body, headers.get("l5d-err"))
        if mode == "on":
            assert pair.metric(mode, "lane/resumes") == before + 1, "the lane began it and handed it over"
        assert pair.wait_metric(mode, f"rt/{label}/client/#/io.l5d.fs/web/pending", 0) == 0
    assert got["on"] == got["off"]
    assert got["on"][0] == 503
    want = b"exceeded 0.2 seconds (totalTimeoutMs)" if label == "total" else b"exceeded 0.2 seconds waiting for a response"
    assert want in got["on"][1]


def test_retries_after_an_attempt_timeout_happen_with_the_lane(pair: Pair) -> None:
    got = {}
    for mode in ("on", "off"):
        pair.warm(mode, "retried")
        before_resumes, hits = pair.metric(mode, "lane/resumes"), pair.origin.hits
        status, headers, body = _answer(pair, mode, "retried", "/slow/400")
        got[mode] = (status, body, headers.get("l5d-err"))
        assert pair.origin.hits - hits >= 3, f"{mode}: the attempts that timed out were retried"
        if mode == "on":
            assert pair.metric(mode, "lane/resumes") == before_resumes + 1
        assert pair.wait_metric(mode, "rt/retried/client/#/io.l5d.fs/web/pending", 0) == 0
    assert got["on"] == got["off"]
    assert got["on"][0] == 503 and b"exceeded 1 seconds (totalTimeoutMs)" in got["on"][1]


def test_deadlines_are_forwarded_as_the_trio_path_forwards_them(pair: Pair) -> None:
    far = time.time_ns() + 60 * 10**9
    for label, span in (("total", 200_000_000), ("plain", None)):
        names = {}
        for mode in ("on", "off"):
            pair.warm(mode, label)
            before = pair.metric(mode, "lane/requests")
            status, _, body = _answer(pair, mode, label, "/echo", b"l5d-ctx-deadline: 5 %d\r\nX-Forwarded-Client-Cert: Hash=forged\r\n" % far)
            assert status == 200
            seen = echo_headers(body)
            names[mode] = [k.lower() for k, _ in seen]
            ts, dl = (int(x) for x in dict((k.lower(), v) for k, v in seen)["l5d-ctx-deadline"].split())
            assert dl == (ts + span if span else far), (mode, label)
            assert abs(ts - time.time_ns()) < 10 * 10**9
            if mode == "on":
                assert pair.metric(mode, "lane/requests") == before + 1, "the lane forwarded it"
        assert names["on"] == names["off"]
        assert names["on"][-2:] == ["l5d-ctx-deadline", "content-length"] or names["on"][-1] == "l5d-ctx-deadline"
        assert "x-forwarded-client-cert" not in names["on"]


def test_a_deadline_already_passed_is_answered_without_an_attempt(pair: Pair) -> None:
    got = {}
    for mode in ("on", "off"):
        pair.warm(mode, "plain")
        hits = pair.origin.hits
        status, headers, body = _answer(pair, mode, "plain", "/text/late", b"l5d-ctx-deadline: 1 2\r\n")
        got[mode] = (status, body, headers.get("l5d-err"))
        assert pair.origin.hits == hits, "nothing was sent upstream"
    assert got["on"] == got["off"]
    assert got["on"][0] == 503 and b"l5d-ctx-deadline passed" in got["on"][1]


@pytest.mark.parametrize("name", ["closer", "resetter"])
def test_an_upstream_that_closes_before_responding_gets_the_trio_paths_answer(pair: Pair, name: str) -> None:
    got = {}
    for mode in ("on", "off"):
        pair.warm(mode, "plain", host=name)  # its 502 installs the route
        before = pair.metric(mode, "lane/resumes")
        got[mode] = raw(pair.proxies[mode].addr("plain"), b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % name.encode())
        if mode == "on":
            assert pair.metric(mode, "lane/resumes") == before + 1
    assert got["on"] == got["off"]
    assert _statuses(got["on"]) == [502]
    assert (b"connection closed before the response" if name == "closer" else b"connection lost") in got["on"]


@pytest.mark.parametrize("lane", ["on", "off"])
def test_drain_answers_the_pipelined_requests_already_received(lane: str) -> None:
    """A graceful stop lets the request in flight finish and answers the requests already received
    whole behind it (pipelined) before the connection closes, on both paths."""
    origin = Origin()
    try:
        with one_router(origin.port, "web", "native", extra_env={"PYPROXY_LANE": lane}) as proxy:
            addr = proxy.addr("http")
            raw(addr, b"GET /text/warm HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
            s = socket.create_connection(addr, timeout=10)
            try:
                hits = origin.hits
                s.sendall(b"GET /slow/600 HTTP/1.1\r\nHost: web\r\n\r\nGET /text/two HTTP/1.1\r\nHost: web\r\n\r\n")
                deadline = time.monotonic() + 10
                while origin.hits == hits and time.monotonic() < deadline:
                    time.sleep(0.01)
                served = admin_json(proxy, "/admin/metrics.json").get("lane/requests", 0)
                os.killpg(proxy.proc.pid, signal.SIGTERM)
                out = _read_to_close(s)
            finally:
                s.close()
        assert _statuses(out) == [200, 200] and out.endswith(b"two")
        assert served == 0  # in flight when the stop began (the lane's counts come at completion)
    finally:
        origin.close()
