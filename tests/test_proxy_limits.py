"""Black-box tests of the proxy's limits: timeouts, slow clients, concurrency caps, huge bodies,
live service-discovery changes. One proxy per kernel twin."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Dict, Iterator, List

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess, raw, split_response, status_of
from upstream import Origin


class Env:
    def __init__(self, impl: str) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-disco-")
        self.a, self.b = Origin(), Origin()
        self.write("svc", self.a.port)
        self.write("other", self.b.port)
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- kind: io.l5d.fs
  rootDir: {self.root}
routers:
- protocol: http
  label: limited
  dtab: /svc => /#/io.l5d.fs
  service: {{totalTimeoutMs: 700}}
  servers:
  - ip: 127.0.0.1
    port: 0
    maxConcurrentRequests: 2
    socketOptions: {{readTimeoutMs: 400}}
    serverSession: {{idleTimeMs: 1500}}
- protocol: http
  label: bulk
  dtab: /svc => /#/io.l5d.fs
  servers:
  - ip: 127.0.0.1
    port: 0
"""
        self.proxy = ProxyProcess(config, impl)
        self.addr = self.proxy.addr("limited")
        self.bulk = self.proxy.addr("bulk")

    def write(self, name: str, port: int) -> None:
        tmp = os.path.join(self.root, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(f"127.0.0.1 {port}\n")
        os.replace(tmp, os.path.join(self.root, name))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proxy.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def close(self) -> None:
        self.proxy.stop()
        self.a.close()
        self.b.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    yield e
    e.close()


def get(env: Env, path: str, host: str = "svc") -> int:
    c = http.client.HTTPConnection(*env.addr, timeout=20)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_total_timeout_answers_503(env: Env) -> None:
    t0 = time.monotonic()
    r = raw(env.addr, b"GET /slow/3000 HTTP/1.1\r\nHost: svc\r\n\r\n", timeout=10)
    status, headers, _ = split_response(r)
    assert status == 503 and "exceeded" in headers["l5d-err"]
    assert time.monotonic() - t0 < 2.5


def test_slow_client_head_times_out_with_408(env: Env) -> None:
    s = socket.create_connection(env.addr, timeout=10)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: s")  # and then nothing
        t0 = time.monotonic()
        data = s.recv(65536)
        assert data.startswith(b"HTTP/1.1 408") and time.monotonic() - t0 < 3
        assert s.recv(65536) == b""  # closed
    finally:
        s.close()


def test_idle_connection_is_closed(env: Env) -> None:
    s = socket.create_connection(env.addr, timeout=10)
    try:
        t0 = time.monotonic()
        assert s.recv(1) == b""
        assert 1.0 < time.monotonic() - t0 < 5
    finally:
        s.close()


def test_max_concurrent_requests_rejects_the_excess(env: Env) -> None:
    statuses: List[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(get(env, "/slow/400"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(statuses).count(200) >= 1 and 503 in statuses


def test_one_gib_body_streams_in_bounded_memory(env: Env) -> None:
    size = 1 << 30
    block = os.urandom(1 << 16)
    digest = hashlib.sha256()
    base = env.rss_kib()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], env.rss_kib())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    s = socket.create_connection(env.bulk, timeout=60)
    try:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: other\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        sent = 0
        while sent < size:
            s.sendall(block)
            digest.update(block)
            sent += len(block)
        out = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    finally:
        s.close()
        done.set()
        sampler.join(2)
    status, _, body = split_response(bytes(out))
    seen = json.loads(body)
    assert status == 200 and seen["body_len"] == size and seen["body_sha256"] == digest.hexdigest()
    assert (peak[0] - base) < 64 * 1024, f"RSS grew by {(peak[0] - base) // 1024} MiB"


def test_discovery_changes_apply_live_without_dropping_requests(env: Env) -> None:
    name = "moving"
    env.write(name, env.a.port)
    assert get(env, "/text/x", name) == 200
    result: Dict[str, int] = {}
    t = threading.Thread(target=lambda: result.setdefault("inflight", get(env, "/slow/600", name)))
    a_before = env.a.hits
    t.start()
    time.sleep(0.2)
    env.write(name, env.b.port)
    b_before = env.b.hits
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and env.b.hits == b_before:
        assert get(env, "/text/y", name) == 200
        time.sleep(0.1)
    t.join(10)
    assert result["inflight"] == 200 and env.a.hits > a_before
    assert env.b.hits > b_before, "new requests did not move to the new endpoint"


def _echo_headers(env: Env, extra: bytes = b"") -> Dict[str, str]:
    r = raw(env.addr, b"GET /echo HTTP/1.1\r\nHost: other\r\n" + extra + b"Connection: close\r\n\r\n")
    status, _, body = split_response(r)
    assert status == 200
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


def test_total_timeout_travels_as_a_deadline(env: Env) -> None:
    ts, deadline = map(int, _echo_headers(env)["l5d-ctx-deadline"].split())
    assert 650e6 <= deadline - ts <= 700e6  # totalTimeoutMs: 700


def test_the_tighter_deadline_wins(env: Env) -> None:
    now = time.time_ns()
    tight = now + 300_000_000
    ts, deadline = map(int, _echo_headers(env, b"l5d-ctx-deadline: %d %d\r\n" % (now, tight))["l5d-ctx-deadline"].split())
    assert deadline == tight
    loose = now + 60_000_000_000
    ts, deadline = map(int, _echo_headers(env, b"l5d-ctx-deadline: %d %d\r\n" % (now, loose))["l5d-ctx-deadline"].split())
    assert deadline < loose and deadline - ts <= 700e6


def test_an_expired_deadline_is_answered_503(env: Env) -> None:
    past = time.time_ns() - 1_000_000
    r = raw(env.addr, b"GET /slow/200 HTTP/1.1\r\nHost: other\r\nl5d-ctx-deadline: %d %d\r\nConnection: close\r\n\r\n" % (past, past))
    assert status_of(r) == 503
