"""Black-box tests of Linkerd keys pyproxy used to accept and ignore: each now changes what the
proxy does, per twin (and with the lane on in the native pass).

hostConnectionPool (maxSize, maxWaiters), clientSession.idleTimeMs, failFast, bindingCache (clients,
idleTtlSecs), originator, servers[].timeoutMs, serverSession.lifeTimeMs, socketOptions (keepAlive,
backlog); and the answers to requests and configs that used to get none: CONNECT, a port in use, a
namerd config given to ``run``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Tuple

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess, admin_json, dead_port, raw, status_of
from upstream import Origin


class CountingOrigin:
    """Answers each request after ``delay`` seconds; counts connections open now and at most."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.open = 0
        self.most = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self.open += 1
                self.accepted += 1
                self.most = max(self.most, self.open)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    buf += piece
                buf = buf.split(b"\r\n\r\n", 1)[1]
                time.sleep(self.delay)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass
        finally:
            with self._lock:
                self.open -= 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class Env:
    def __init__(self, impl: str) -> None:
        self.impl = impl
        self.root = tempfile.mkdtemp(prefix="pyproxy-disco-")
        self.slow = CountingOrigin(delay=0.5)
        self.quick = CountingOrigin()
        self.sess = CountingOrigin()
        self.good = Origin()
        self.slow_http = Origin(delay=1.0)
        self.dead = dead_port()
        self.write("slow", [self.slow.port])
        self.write("quick", [self.quick.port])
        self.write("sess", [self.sess.port])
        self.write("deadfirst", [self.dead, self.good.port])
        self.write("good", [self.good.port])
        self.write("a", [self.good.port])
        self.write("b", [self.good.port])
        self.write("c", [self.good.port])
        self.write("lagging", [self.slow_http.port])
        server = "{ip: 127.0.0.1, port: 0}"
        router = "- protocol: http\n  label: {label}\n  dtab: /svc => /#/io.l5d.fs\n{extra}  servers:\n  - {server}\n"
        routers = [
            ("nowait", "  client: {hostConnectionPool: {maxSize: 1, maxWaiters: 0}}\n", server),
            ("wait", "  client: {hostConnectionPool: {maxSize: 1}}\n", server),
            ("session", "  client: {clientSession: {idleTimeMs: 200}}\n", server),
            ("failfast", "  client:\n    failFast: true\n    failureAccrual: {kind: io.l5d.consecutiveFailures, failures: 100}\n", server),
            ("slowfail", "  client:\n    failureAccrual: {kind: io.l5d.consecutiveFailures, failures: 100}\n", server),
            ("cache", "  originator: true\n  bindingCache: {clients: 2, paths: 2, idleTtlSecs: 2}\n", server),
            ("timed", "", "{ip: 127.0.0.1, port: 0, timeoutMs: 300}"),
            ("life", "", "{ip: 127.0.0.1, port: 0, serverSession: {lifeTimeMs: 300}}"),
            ("sockets", "", "{ip: 127.0.0.1, port: 0, socketOptions: {keepAlive: true, backlog: 7}}"),
        ]
        config = "admin: {ip: 127.0.0.1, port: 0}\n" f"namers:\n- {{kind: io.l5d.fs, rootDir: {self.root}}}\nrouters:\n" + "".join(
            router.format(label=label, extra=extra, server=srv) for label, extra, srv in routers
        )
        self.proxy = ProxyProcess(config, impl)

    def write(self, name: str, ports: List[int]) -> None:
        with open(os.path.join(self.root, name), "w") as f:
            f.write("".join(f"127.0.0.1 {p}\n" for p in ports))

    def get(self, router: str, host: str, path: str = "/text/ok", timeout: float = 20) -> Tuple[int, bytes]:
        c = http.client.HTTPConnection(*self.proxy.addr(router), timeout=timeout)
        try:
            c.request("GET", path, headers={"Host": host})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def metrics(self) -> Dict[str, float]:
        return admin_json(self.proxy, "/admin/metrics.json")  # type: ignore[return-value]

    def close(self) -> None:
        self.proxy.stop()
        for o in (self.slow, self.quick, self.sess):
            o.close()
        for o in (self.good, self.slow_http):
            o.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    yield e
    e.close()
    assert not any("Traceback" in line for line in e.proxy.stderr_lines), "\n".join(e.proxy.stderr_lines)


def _concurrently(n: int, fn: "callable") -> List[object]:  # type: ignore[valid-type]
    out: List[object] = [None] * n

    def run(i: int) -> None:
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_host_connection_pool_max_size_without_waiters_refuses_a_second_connection(env: Env) -> None:
    statuses = sorted(s for s, _ in _concurrently(2, lambda: env.get("nowait", "slow")))  # type: ignore[misc]
    assert statuses == [200, 503], statuses
    assert env.slow.most == 1


def test_host_connection_pool_max_size_makes_requests_wait_for_the_one_connection(env: Env) -> None:
    before = env.quick.accepted
    statuses = [s for s, _ in _concurrently(4, lambda: env.get("wait", "quick"))]  # type: ignore[misc]
    assert statuses == [200] * 4
    assert env.quick.accepted - before <= 1 and env.quick.most <= 1


def test_client_session_idle_time_closes_pooled_connections(env: Env) -> None:
    assert env.get("session", "sess")[0] == 200
    assert env.sess.accepted >= 1
    deadline = time.monotonic() + 5  # idleTimeMs 200, then the next sweep (each second)
    while env.sess.open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env.sess.open == 0


def test_fail_fast_marks_an_unreachable_endpoint_down_at_the_first_failure(env: Env) -> None:
    for _ in range(20):
        assert env.get("failfast", "deadfirst")[0] == 200  # requeued to the good endpoint
        assert env.get("slowfail", "deadfirst")[0] == 200
    m = env.metrics()
    fast = m.get("rt/failfast/client/#/io.l5d.fs/deadfirst/failures/ConnectionFailed", 0)
    slow = m.get("rt/slowfail/client/#/io.l5d.fs/deadfirst/failures/ConnectionFailed", 0)
    assert fast == 1, m
    assert slow > 1  # without failFast, p2c keeps trying the dead endpoint now and then


def test_binding_cache_bounds_clients_and_evicts_idle_ones(env: Env) -> None:
    for host in ("a", "b", "c"):
        assert env.get("cache", host)[0] == 200

    def live() -> List[str]:
        return [k for k in env.metrics() if k.startswith("rt/cache/client/") and k.endswith("/loadbalancer/size")]

    def scopes(kind: str) -> List[str]:  # the metric scopes of clients or services (by their counters)
        return [k for k in env.metrics() if k.startswith(f"rt/cache/{kind}/") and k.endswith("/requests")]

    assert len(live()) <= 2  # bindingCache.clients
    assert len(scopes("client")) <= 2  # an evicted client's metrics go with it
    deadline = time.monotonic() + 10
    while (live() or scopes("client") or scopes("service")) and time.monotonic() < deadline:  # idleTtlSecs: 2, swept every second
        time.sleep(0.1)
    assert live() == [] and scopes("client") == [] and scopes("service") == []
    assert env.get("cache", "a")[0] == 200  # made again on demand, its metrics from zero
    m = env.metrics()
    assert m["rt/cache/originator"] == 1
    assert m["rt/cache/service/svc/a/requests"] == 1 and m["rt/cache/client/#/io.l5d.fs/a/requests"] == 1


def test_server_timeout_answers_503_in_time(env: Env) -> None:
    t0 = time.monotonic()
    status, _ = env.get("timed", "lagging", "/text/late")
    assert status == 503 and time.monotonic() - t0 < 0.95


def test_server_session_lifetime_ends_the_connection_after_its_response(env: Env) -> None:
    c = http.client.HTTPConnection(*env.proxy.addr("life"), timeout=10)
    try:
        c.request("GET", "/text/one", headers={"Host": "good"})
        r = c.getresponse()
        assert r.read() == b"one" and r.getheader("Connection") != "close"
        time.sleep(0.4)
        c.request("GET", "/text/two", headers={"Host": "good"})
        r = c.getresponse()
        assert r.read() == b"two" and r.getheader("Connection") == "close"
    finally:
        c.close()


def test_listener_socket_options_reach_the_kernel(env: Env) -> None:
    host, port = env.proxy.addr("sockets")
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    assert listening.split()[2] == "7", listening  # Send-Q of a listening socket is its backlog
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.sendall(b"GET /text/k HTTP/1.1\r\nHost: good\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        accepted = subprocess.run(["ss", "-tnoH", "state", "established", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
        assert "keepalive" in accepted, accepted
    finally:
        s.close()


def test_connect_gets_501_and_the_connection_closes(env: Env) -> None:
    for router in ("cache", "timed"):  # with the lane (native pass) and on the trio path
        answer = raw(env.proxy.addr(router), b"CONNECT httpbin.org:443 HTTP/1.1\r\nHost: httpbin.org:443\r\n\r\nrest")
        assert status_of(answer) == 501, answer
        assert b"connection: close" in answer.lower()


def _run(config: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyproxy", "run", "-"], input=config, capture_output=True, text=True, timeout=60)


def test_a_port_in_use_is_one_line_naming_the_listener_exit_2() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        r = _run(f"admin: {{port: 0}}\nrouters:\n- protocol: http\n  servers: [{{ip: 127.0.0.1, port: 0}}, {{ip: 127.0.0.1, port: {port}}}]\n")
    finally:
        taken.close()
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if "INFO" not in line]
    assert errors == [f"pyproxy: $.routers[0].servers[1]: cannot listen on 127.0.0.1:{port}: Address already in use"], r.stderr


def test_a_namerd_config_given_to_run_is_named_as_such() -> None:
    r = _run("storage: {kind: io.l5d.inMemory}\ninterfaces:\n- kind: io.l5d.httpController\n")
    assert r.returncode == 2 and "namerd config" in r.stderr and "pyproxy namerd" in r.stderr, r.stderr


def test_validate_and_run_agree_on_a_roll_policy() -> None:
    r = subprocess.run([sys.executable, "-m", "pyproxy", "run", "--validate", "-"], capture_output=True, text=True, timeout=60,
                       input="routers:\n- protocol: http\n  httpAccessLog: /tmp/x\n  httpAccessLogRollPolicy: weekly(9)\n  servers: [{port: 0}]\n")
    assert r.returncode == 2 and "$.routers[0].httpAccessLogRollPolicy" in r.stderr
