"""The article's staging scenario with a real instrumented app that forwards no ``l5d-*`` header.

``hello`` (tests/otel_hello.py) is built with the OpenTelemetry SDK and its standard WSGI and
``requests`` instrumentations from PyPI; like most apps, its code copies no ``l5d-ctx-*`` header
onto its call to ``world`` (linkerd/linkerd#1945, #1088). One proxy plays the node: an **edge**
(``clearContext``, ``signedOverrides``), an internal **ingress** and the **outgoing** router hello
calls through, all with ``dtabBaggage``. An override set at the ingress (``l5d-dtab``) or signed at
the edge is written by the router into ``baggage`` (or ``uberctx-l5d-dtab``); hello's
instrumentation carries it on; the outgoing router reads it: two hops down, ``world-v2`` answers
"earth". Both twins, the lane on and off.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, Iterator, Tuple

import pytest

from proxyproc import ProxyProcess, admin_json, child_options

from pyproxy.http.signature import sign

HERE = os.path.dirname(os.path.abspath(__file__))
DTAB = "/srv => /#/io.l5d.fs; /host => /srv; /svc => /host; /host/world => /srv/world-v1"
OVERRIDE = "/host/world => /srv/world-v2"
KEY = os.urandom(32)
BAGGAGE = "dtabBaggage: {carriers: [baggage, uberctx]}"


class World:
    """world-v1 or world-v2: answers its word, and remembers the fields of the last request."""

    def __init__(self, word: str) -> None:
        world = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                world.hits += 1
                world.last = {k.lower(): v for k, v in self.headers.items()}
                body = word.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.hits = 0
        self.last: Dict[str, str] = {}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Node:
    def __init__(self, impl: str, lane: str, propagators: str) -> None:
        self.lane = lane == "on"
        self.root = tempfile.mkdtemp(prefix="pyproxy-otel-")
        self.disco = os.path.join(self.root, "disco")
        os.mkdir(self.disco)
        keys = os.path.join(self.root, "keys")
        with open(keys, "w") as f:
            f.write(f"dev {base64.b64encode(KEY).decode()}\n")
        self.v1, self.v2 = World("world"), World("earth")
        self.hello: "subprocess.Popen[str]" = None  # type: ignore[assignment]
        self.publish("world-v1", self.v1.port)
        self.publish("world-v2", self.v2.port)
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {self.disco}}}]
routers:
- protocol: http
  label: edge
  dtab: {DTAB}
  {BAGGAGE}
  servers: [{{ip: 127.0.0.1, port: 0, clearContext: true, signedOverrides: {{keysFile: {keys}}}}}]
- protocol: http
  label: ingress
  dtab: {DTAB}
  {BAGGAGE}
  servers: [{{ip: 127.0.0.1, port: 0}}]
- protocol: http
  label: outgoing
  dtab: {DTAB}
  {BAGGAGE}
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proxy = ProxyProcess(config, impl, extra_env={"PYPROXY_LANE": lane})
        try:
            host, port = self.proxy.addr("outgoing")
            env = dict(os.environ, OTEL_PROPAGATORS=propagators, PYTHONUNBUFFERED="1")
            self.hello = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "otel_hello.py"), f"{host}:{port}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **child_options(),  # type: ignore[arg-type]
            )
            line = self._first_line(20.0)
            assert line.startswith("listening "), f"hello did not start: {line!r}"
            self.publish("hello", int(line.split()[1]))
        except BaseException:
            self.close()
            raise

    def _first_line(self, timeout: float) -> str:
        out: list = []
        reader = threading.Thread(target=lambda: out.append(self.hello.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        return out[0] if out else ""

    def publish(self, name: str, port: int) -> None:
        tmp = os.path.join(self.disco, f".{name}.tmp")
        with open(tmp, "w") as f:
            f.write(f"127.0.0.1 {port}\n")
        os.replace(tmp, os.path.join(self.disco, name))

    def request(self, router: str, headers: Dict[str, str]) -> Tuple[int, dict]:
        c = http.client.HTTPConnection(*self.proxy.addr(router), timeout=20)
        try:
            c.request("GET", "/", headers={"Host": "hello", **headers})
            r = c.getresponse()
            body = r.read()
            return r.status, json.loads(body) if r.status == 200 else {"body": body.decode("latin-1")}
        finally:
            c.close()

    def close(self) -> None:
        if self.hello is not None:
            self.hello.terminate()
            try:
                self.hello.wait(10)
            except subprocess.TimeoutExpired:
                self.hello.kill()
                self.hello.wait(5)
            for stream in (self.hello.stdout, self.hello.stderr):
                if stream is not None:
                    stream.close()
        self.proxy.stop()
        self.v1.close()
        self.v2.close()
        shutil.rmtree(self.root, ignore_errors=True)


TWINS = [
    pytest.param(("native", "on"), marks=pytest.mark.native, id="lane"),
    pytest.param(("native", "off"), marks=pytest.mark.native, id="trio"),
    pytest.param(("pure", "off"), id="pure"),
]


@pytest.fixture(scope="module", params=TWINS)
def node(request: pytest.FixtureRequest) -> Iterator[Node]:
    n = Node(*request.param, propagators="tracecontext,baggage")
    yield n
    n.close()


def _wait_for_hello(node: Node) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, _ = node.request("ingress", {})
        if status == 200:
            return
        time.sleep(0.2)
    raise AssertionError("hello never answered through the ingress")


def test_without_an_override_hello_reaches_world_v1(node: Node) -> None:
    _wait_for_hello(node)
    status, answer = node.request("ingress", {})
    assert status == 200 and answer["text"] == "Hello world"


def test_an_override_set_at_the_ingress_reaches_world_v2_two_hops_down(node: Node) -> None:
    _wait_for_hello(node)
    before = admin_json(node.proxy, "/admin/metrics.json").get("lane/requests", 0)
    for _ in range(4):
        hits = node.v2.hits
        status, answer = node.request("ingress", {"l5d-dtab": OVERRIDE})
        assert status == 200 and answer["text"] == "Hello earth" and node.v2.hits == hits + 1
        # hello's own call carried the override only in the context its instrumentation propagates
        assert "baggage" in answer["sent"] and "traceparent" in answer["sent"]
        assert not [name for name in answer["sent"] if name.startswith("l5d")]
    # what world-v2 received from the outgoing router
    assert node.v2.last["l5d-ctx-dtab"] == "/host/world=>/srv/world-v2"
    assert node.v2.last["baggage"].startswith("l5d-dtab=/host/world=>/srv/world-v2")
    if node.lane:  # the repeats took the lane on both hops
        assert admin_json(node.proxy, "/admin/metrics.json").get("lane/requests", 0) - before >= 4


def test_other_baggage_members_survive_the_trip(node: Node) -> None:
    _wait_for_hello(node)
    status, answer = node.request("ingress", {"l5d-dtab": OVERRIDE, "baggage": "user=alice"})
    assert status == 200 and answer["text"] == "Hello earth"
    members = [m.strip() for m in node.v2.last["baggage"].split(",")]
    assert "user=alice" in members and members[0].startswith("l5d-dtab=")


def test_from_outside_only_a_signed_override_gets_through(node: Node) -> None:
    _wait_for_hello(node)
    status, answer = node.request("edge", {"l5d-dtab": OVERRIDE, "baggage": "l5d-dtab=/host/world=>/srv/world-v2"})
    assert status == 200 and answer["text"] == "Hello world"
    sig = sign(KEY, b"dev", int(time.time()) + 600, OVERRIDE.encode()).decode()
    status, answer = node.request("edge", {"l5d-dtab": OVERRIDE, "l5d-dtab-sig": sig})
    assert status == 200 and answer["text"] == "Hello earth"


@pytest.mark.native
def test_jaeger_clients_carry_it_in_uberctx() -> None:
    n = Node("native", "on", propagators="jaeger")
    try:
        _wait_for_hello(n)
        # a traced client: Jaeger's propagator reads uberctx-* only beside a valid uber-trace-id
        trace_id = {"uber-trace-id": "00000000000000a1:00000000000000b2:0:1"}
        status, answer = n.request("ingress", {**trace_id, "l5d-dtab": OVERRIDE})
        assert status == 200 and answer["text"] == "Hello earth"
        assert "uberctx-l5d-dtab" in answer["sent"] and "baggage" not in answer["sent"]
        assert n.v2.last["uberctx-l5d-dtab"] == "/host/world=>/srv/world-v2"
    finally:
        n.close()
