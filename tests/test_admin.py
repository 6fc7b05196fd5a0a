"""Black-box tests of the admin server through the real CLI: every endpoint, security, shutdown.

One proxy (module fixture) has the prometheus (custom path and prefix), recentRequests and zipkin
telemeters; others test ``admin.security`` and ``POST /admin/shutdown``. The telemeters' own
objects (Tracer, RecentRequests) are also tested in process against a real collector on loopback.

Tests named ``test_traffic_*`` need the request path to call the metrics, recent-requests and
tracing hooks (pyproxy/metrics.py, pyproxy/telemetry/*): they fail until those are wired.
"""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from conftest import TWINS
from proxyproc import ProxyProcess, raw
from pyproxy.http.context import TraceId
from pyproxy.telemetry.recent import RecentRequests
from pyproxy.telemetry.zipkin import Tracer, now_us
from upstream import Origin

DTAB = "/srv => /#/io.l5d.fs; /svc => /srv;"

Addr = Tuple[str, int]


class Collector:
    """A Zipkin HTTP collector stand-in: stores the spans POSTed to /api/v2/spans."""

    def __init__(self) -> None:
        spans: List[dict] = []
        self.spans = spans

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = self.path == "/api/v2/spans" and self.headers.get("Content-Type") == "application/json"
                if ok:
                    spans.extend(json.loads(body))
                self.send_response(202 if ok else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def request(addr: Addr, path: str, method: str = "GET", body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    c = http.client.HTTPConnection(*addr, timeout=20)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def get_json(addr: Addr, path: str) -> object:
    status, _, body = request(addr, path)
    assert status == 200, (path, status, body)
    return json.loads(body)


class Env:
    def __init__(self, impl: str) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-admin-")
        self.origin = Origin()
        self.collector = Collector()
        with open(os.path.join(self.root, "world"), "w") as f:
            f.write(f"127.0.0.1 {self.origin.port}\n")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- kind: io.l5d.fs
  rootDir: {self.root}
routers:
- protocol: http
  label: out
  dtab: "{DTAB}"
  servers: [{{ip: 127.0.0.1, port: 0}}]
telemetry:
- kind: io.l5d.prometheus
  path: /metrics
  prefix: l5d_
- kind: io.l5d.recentRequests
  sampleRate: 1.0
  capacity: 3
- kind: io.l5d.zipkin
  host: 127.0.0.1
  port: {self.collector.port}
  sampleRate: 1.0
"""
        self.proxy = ProxyProcess(config, impl)
        self.admin = self.proxy.addr("admin")
        self.out = self.proxy.addr("out")

    def close(self) -> None:
        self.proxy.stop()
        self.origin.close()
        self.collector.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def impl(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def env(impl: str) -> Iterator[Env]:
    e = Env(impl)
    yield e
    e.close()


# === health, index, config ===


def test_ping(env: Env) -> None:
    assert request(env.admin, "/admin/ping")[::2] == (200, b"pong")


def test_index_lists_the_endpoints(env: Env) -> None:
    status, headers, body = request(env.admin, "/admin/index.txt")
    paths = body.decode().split()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for p in ("/admin/ping", "/admin/metrics.json", "/metrics", "/config.json", "/delegator", "/delegator.json", "/requests", "/admin/shutdown", "/"):
        assert p in paths
    status, headers, body = request(env.admin, "/admin")
    assert status == 200 and headers["content-type"].startswith("text/html") and b'href="/admin/metrics.json"' in body


def test_config_json_is_the_parsed_config(env: Env) -> None:
    cfg = get_json(env.admin, "/config.json")
    assert cfg["routers"][0]["label"] == "out"  # type: ignore[index]
    assert cfg["telemetry"][0]["prefix"] == "l5d_"  # type: ignore[index]


def test_routers_json_has_labels_dtabs_and_bound_servers(env: Env) -> None:
    (r,) = get_json(env.admin, "/admin/routers.json")  # type: ignore[misc]
    assert r["label"] == "out"
    assert r["dentries"] == [{"prefix": "/srv", "dst": "/#/io.l5d.fs"}, {"prefix": "/svc", "dst": "/srv"}]
    assert r["servers"] == [
        {"ip": "127.0.0.1", "port": env.out[1], "id": f"127.0.0.1/{env.out[1]}", "clearContext": False, "signedOverrides": False},
    ]


def test_unknown_path_and_wrong_method(env: Env) -> None:
    assert request(env.admin, "/nope")[0] == 404
    assert request(env.admin, "/admin/metrics.json", "POST", b"")[0] == 405
    assert request(env.admin, "/admin/metrics/prometheus")[0] == 404  # the telemeter moved it to /metrics


def test_static_files(env: Env) -> None:
    status, headers, body = request(env.admin, "/static/style.css")
    assert status == 200 and headers["content-type"].startswith("text/css") and body
    assert request(env.admin, "/static/dashboard.js")[1]["content-type"].startswith("application/javascript")
    assert request(env.admin, "/static/nope.js")[0] == 404
    assert request(env.admin, "/static/../app.py")[0] == 404
    for page, script in (("/", b"/static/dashboard.js"), ("/delegator", b"/static/delegator.js")):
        status, headers, body = request(env.admin, page)
        assert status == 200 and headers["content-type"].startswith("text/html") and script in body and b"{{version}}" not in body


def test_logging_json_reads_and_sets_levels(env: Env) -> None:
    levels = get_json(env.admin, "/logging.json")
    assert {"logger": "root", "level": "INFO"} in levels  # the default of `pyproxy run` (--log-level)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = request(env.admin, "/logging.json", "POST", b"logger=pyproxy&level=DEBUG", form)
    assert status == 200 and {"logger": "pyproxy", "level": "DEBUG"} in json.loads(body)
    assert request(env.admin, "/logging.json", "POST", b"logger=pyproxy&level=LOUD", form)[0] == 400
    request(env.admin, "/logging.json", "POST", b"logger=pyproxy&level=WARNING", form)


# === metrics ===


def test_metrics_json_flat_pretty_tree_and_subtree(env: Env) -> None:
    server = f"rt/out/server/127.0.0.1/{env.out[1]}"
    flat = get_json(env.admin, "/admin/metrics.json")
    assert flat[f"{server}/connections"] >= 0 and flat["process/uptime_ms"] > 0  # type: ignore[index]
    status, _, body = request(env.admin, "/admin/metrics.json?pretty=true")
    assert status == 200 and body.startswith(b"{\n") and list(json.loads(body)) == sorted(json.loads(body))
    tree = get_json(env.admin, "/admin/metrics.json?tree=true")
    assert "gauge" in tree["rt"]["out"]["server"][f"127.0.0.1/{env.out[1]}"]["connections"]  # type: ignore[index]
    sub = get_json(env.admin, f"/admin/metrics.json?q={server}")
    assert "connections" in sub  # type: ignore[operator]
    sub_tree = get_json(env.admin, "/admin/metrics.json?q=rt/out&tree=true")
    assert "server" in sub_tree  # type: ignore[operator]
    status, headers, body = request(env.admin, "/admin/metrics.json?q=rt/nope")
    assert (status, json.loads(body)) == (404, {"error": "No such subtree: rt/nope"})
    assert headers["content-type"] == "application/json"


def test_prometheus_endpoint_parses_with_prefix_and_labels(env: Env) -> None:
    status, headers, body = request(env.admin, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    conns = fams["l5d_rt:server:connections"]
    assert conns.type == "gauge"
    assert conns.samples[0].labels == {"rt": "out", "server": f"127.0.0.1/{env.out[1]}"}
    assert all(name.startswith("l5d_") for name in fams)


# === /delegator.json ===


def test_delegator_json_get_and_post(env: Env) -> None:
    q = "/delegator.json?namespace=out&path=/svc/world&dtab=" + DTAB.replace(" ", "%20").replace("#", "%23").replace(";", "%3B")
    tree = get_json(env.admin, q)
    assert tree["type"] == "delegate" and tree["path"] == "/svc/world"  # type: ignore[index]
    leaf = tree["delegate"]["delegate"]  # type: ignore[index]
    assert leaf["type"] == "leaf" and leaf["dentry"] == {"prefix": "/srv", "dst": "/#/io.l5d.fs"}
    assert leaf["bound"]["addr"]["addrs"] == [{"ip": "127.0.0.1", "port": env.origin.port, "meta": {}}]
    body = json.dumps({"namespace": "out", "dtab": DTAB, "path": "/svc/world", "extra": 1}).encode()
    status, headers, raw = request(env.admin, "/delegator.json", "POST", body, {"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"] == "application/json" and json.loads(raw) == tree


def test_delegator_json_errors(env: Env) -> None:
    json_ct = {"Content-Type": "application/json"}
    assert request(env.admin, "/delegator.json", "POST", b"{}", {"Content-Type": "text/plain"})[0] == 415
    status, _, body = request(env.admin, "/delegator.json", "POST", b'{"dtab": "/a=>/b"}', json_ct)
    assert (status, body) == (400, b'Malformed delegation request: {"dtab": "/a=>/b"}')
    status, _, body = request(env.admin, "/delegator.json?path=/a&dtab=invalid-param")
    assert (status, body) == (400, b"Invalid dtab: '/' expected but 'i' found at '[i]nvalid-param'")
    status, _, body = request(env.admin, "/delegator.json?path=invalid-param&dtab=")
    assert (status, body) == (400, b"Invalid path: '/' expected but 'i' found at '[i]nvalid-param'")
    assert request(env.admin, "/delegator.json", "PUT", b"")[0] == 405
    status, _, body = request(env.admin, "/delegator.json?namespace=nope&path=/a&dtab=")
    assert (status, body) == (501, b"Name Interpreter for nope cannot show delegations")


def test_delegator_json_without_namespace_uses_only_system_namers(env: Env) -> None:
    tree = get_json(env.admin, "/delegator.json?path=/svc/world&dtab=/svc=>/%23/io.l5d.fs")
    assert tree == {"type": "delegate", "path": "/svc/world", "delegate": {"type": "neg", "path": "/#/io.l5d.fs/world", "dentry": {"prefix": "/svc", "dst": "/#/io.l5d.fs"}}}


# === recent requests ===


def test_requests_page_and_json_exist_when_configured(env: Env) -> None:
    data = get_json(env.admin, "/requests.json")
    assert data["sampleRate"] == 1.0 and data["capacity"] == 3 and isinstance(data["requests"], list)  # type: ignore[index]
    status, headers, body = request(env.admin, "/requests")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"Recent requests" in body


def test_recent_requests_ring_samples_and_keeps_the_newest() -> None:
    draws = iter([0.1, 0.9, 0.2, 0.3, 0.4])
    ring = RecentRequests(0.5, 2, rng=lambda: next(draws), clock=lambda: 12.5)
    for i in range(5):
        ring.record(router="out", source=("127.0.0.1", 5000 + i), server="127.0.0.1:4140", logical=f"/svc/{i}", destination=("::1", 80), method=b"GET", uri=b"/x")
    got = ring.entries()
    assert [e["logical"] for e in got] == ["/svc/4", "/svc/3"]  # 0.9 was not sampled; capacity 2
    assert got[0]["source"] == "127.0.0.1:5004" and got[0]["destination"] == "[::1]:80" and got[0]["method"] == "GET"
    assert got[0]["timestamp"] == 12500 and got[0]["status"] is None


# === zipkin ===


def test_tracer_posts_zipkin_v2_spans_to_a_collector() -> None:
    col = Collector()
    try:
        tracer = Tracer("127.0.0.1", col.port, 1.0, flush_interval=0.05)
        root = TraceId(0xA1, 0xA1, 0xA1)
        child = root.child(0xB2)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(tracer.run)
                t0 = now_us()
                tracer.record_server_span(root, router="out", name="get", start_us=t0, duration_us=1500, tags={"http.status_code": 200}, remote=("127.0.0.1", 5555))
                tracer.record_client_span(child, router="out", name="get", start_us=t0 + 100, duration_us=0, remote=("::1", 8080))
                with trio.fail_after(10):
                    while tracer.sent < 2:
                        await trio.sleep(0.02)
                nursery.cancel_scope.cancel()

        trio.run(main)
        server, client = sorted(col.spans, key=lambda s: s["kind"], reverse=True)
        assert server == {
            "traceId": "00000000000000a1", "id": "00000000000000a1", "kind": "SERVER", "name": "get",
            "timestamp": server["timestamp"], "duration": 1500, "localEndpoint": {"serviceName": "out"},
            "remoteEndpoint": {"ipv4": "127.0.0.1", "port": 5555}, "tags": {"http.status_code": "200"},
        }  # fmt: skip
        assert abs(server["timestamp"] - time.time() * 1e6) < 60e6
        assert client["kind"] == "CLIENT" and client["parentId"] == "00000000000000a1" and client["id"] == "00000000000000b2"
        assert client["duration"] == 1 and client["remoteEndpoint"] == {"ipv6": "::1", "port": 8080}
    finally:
        col.close()


def test_tracer_sampling_follows_flags_then_the_trace_id() -> None:
    tracer = Tracer("127.0.0.1", 9, 0.5)
    assert tracer.sampled(TraceId(1, 1, 4999)) and not tracer.sampled(TraceId(1, 1, 5000))
    assert not tracer.sampled(TraceId(1, 1, 4999).with_sampled(False))
    assert tracer.sampled(TraceId(1, 1, 5000).with_sampled(True))
    tracer.record_server_span(TraceId(1, 1, 5000), router="out", name="get", start_us=0, duration_us=1)
    assert not tracer.pending


def test_tracer_survives_a_dead_collector() -> None:
    col = Collector()
    port = col.port
    col.close()  # nothing listens there any more
    tracer = Tracer("127.0.0.1", port, 1.0, timeout=2.0)
    tracer.record_client_span(TraceId(1, 1, 1), router="out", name="get", start_us=0, duration_us=1)
    trio.run(tracer.flush)
    assert (tracer.sent, tracer.failed, len(tracer.pending)) == (0, 1, 0)


# === admin.security and shutdown (their own proxies) ===


def _minimal(admin: str) -> str:
    return f"admin: {admin}\nrouters:\n- protocol: http\n  label: out\n  dtab: /svc => /$/inet/127.1/9\n  servers: [{{ip: 127.0.0.1, port: 0}}]\n"


def test_security_categories_whitelist_and_blacklist(impl: str) -> None:
    admin = (
        "{ip: 127.0.0.1, port: 0, security: {controlEnabled: false, diagnosticsEnabled: false,"
        " pathWhitelist: ['/admin/ping', '/logging[.]json'], pathBlacklist: ['/config[.]json']}}"
    )
    proxy = ProxyProcess(_minimal(admin), impl)
    try:
        a = proxy.addr("admin")
        status, _, body = request(a, "/admin/shutdown", "POST", b"")
        assert (status, body) == (404, b"")  # control, disabled: as if it did not exist
        assert proxy.proc.poll() is None  # still running
        assert request(a, "/admin/ping")[0] == 200  # diagnostics, whitelisted
        assert request(a, "/logging.json")[0] == 200  # control, whitelisted
        assert request(a, "/admin/server_info")[0] == 404  # diagnostics
        assert request(a, "/admin/index.txt")[0] == 404
        assert request(a, "/config.json")[0] == 404  # ui, blacklisted
        for ui in ("/admin/metrics.json", "/", "/delegator", "/static/style.css", "/admin/routers.json", "/delegator.json?path=/a&dtab="):
            assert request(a, ui)[0] == 200, ui
        assert request(a, "/admin/ping/")[0] == 404  # whole-path matches only
    finally:
        proxy.stop()


def test_ui_disabled_and_graceful_shutdown(impl: str) -> None:
    proxy = ProxyProcess(_minimal("{ip: 127.0.0.1, port: 0, security: {uiEnabled: false}}"), impl)
    try:
        a = proxy.addr("admin")
        for ui in ("/", "/delegator", "/admin/metrics.json", "/static/style.css"):
            assert request(a, ui)[0] == 404, ui
        assert request(a, "/admin/ping")[0] == 200
        assert request(a, "/admin/shutdown")[0] == 405
        assert proxy.proc.poll() is None
        status, _, _ = request(a, "/admin/shutdown", "POST", b"")
        assert status == 200
        assert proxy.proc.wait(15) == 0
    finally:
        proxy.stop()


def test_a_slow_admin_request_gets_408_after_read_timeout(impl: str) -> None:
    proxy = ProxyProcess(_minimal("{ip: 127.0.0.1, port: 0, socketOptions: {readTimeoutMs: 300}}"), impl)
    try:
        a = proxy.addr("admin")
        # a head begun and never finished, alone or after a whole request on the same connection
        for data, answers in ((b"GET /admin/ping HTTP/1.1\r\nHo", 1), (b"GET /admin/ping HTTP/1.1\r\nHost: a\r\n\r\nGET /admin/pi", 2)):
            t0 = time.monotonic()
            got = raw(a, data, timeout=8)  # returns once the server closes
            assert got.count(b"HTTP/1.1 ") == answers and b"HTTP/1.1 408 " in got, got
            assert 0.3 <= time.monotonic() - t0 < 7
        assert request(a, "/admin/ping")[0] == 200
    finally:
        proxy.stop()


def test_unbuilt_telemeters_are_refused_by_name(tmp_path: pathlib.Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(_minimal("{ip: 127.0.0.1, port: 0}") + "telemetry:\n- kind: io.l5d.tracelog\n")
    done = subprocess.run([sys.executable, "-m", "pyproxy", "run", str(cfg)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "$.telemetry[0].kind: io.l5d.tracelog" in done.stderr


# === traffic (needs the request-path hooks) ===


def _traffic(env: Env, n: int) -> None:
    for _ in range(n):
        status, _, body = request(env.out, "/text/hi", headers={"Host": "world"})
        assert (status, body) == (200, b"hi")


def test_traffic_moves_router_counters(env: Env) -> None:
    def counters() -> Dict[str, int]:
        flat = get_json(env.admin, "/admin/metrics.json")
        return {k: v for k, v in flat.items() if isinstance(v, int)}  # type: ignore[union-attr]

    before = counters()
    _traffic(env, 5)
    after = counters()
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    server = f"rt/out/server/127.0.0.1/{env.out[1]}"
    for key in (
        f"{server}/requests", f"{server}/success", f"{server}/status/200", f"{server}/status/2XX",
        "rt/out/service/svc/world/requests", "rt/out/client/#/io.l5d.fs/world/requests",
        "rt/out/client/#/io.l5d.fs/world/success",
    ):  # fmt: skip
        assert moved.get(key) == 5, (key, moved)
    assert after.get("rt/out/client/#/io.l5d.fs/world/loadbalancer/size") == 1


def test_traffic_is_sampled_into_recent_requests(env: Env) -> None:
    _traffic(env, 4)
    got = get_json(env.admin, "/requests.json")["requests"]  # type: ignore[index]
    assert len(got) == 3  # capacity
    assert got[0]["router"] == "out" and got[0]["logical"] == "/svc/world" and got[0]["concrete"] == "/#/io.l5d.fs/world"
    assert got[0]["destination"] == f"127.0.0.1:{env.origin.port}"
    assert b"/svc/world" in request(env.admin, "/requests")[2]


def _settled(spans: List[dict], quiet: float = 1.5, limit: float = 15.0) -> int:
    """The number of spans once none arrived for ``quiet`` seconds (the tracer flushes every second)."""
    deadline = time.monotonic() + limit
    n, since = len(spans), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(spans) != n:
            n, since = len(spans), time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return n


def test_traffic_sends_zipkin_spans(env: Env) -> None:
    before = _settled(env.collector.spans)  # spans of earlier tests' traffic may still be on their way
    _traffic(env, 2)
    _settled(env.collector.spans)
    new = env.collector.spans[before:]
    kinds = sorted(s["kind"] for s in new)
    assert kinds == ["CLIENT", "CLIENT", "SERVER", "SERVER"], new
    assert all(s["localEndpoint"] == {"serviceName": "out"} for s in new)


def test_sigterm_still_exits_cleanly_with_telemeters(env: Env) -> None:
    # last in the module on purpose: stops the shared proxy (the zipkin task must not block the exit)
    assert env.proxy.stop(signal.SIGTERM) == 0
