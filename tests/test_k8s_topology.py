"""The article's DaemonSet topology, end to end on loopback: two nodes, the seed's config, real apps.

Two pyproxy processes play the DaemonSet's pods on node-1 (127.0.1.1) and node-2 (127.0.2.1); the
apps are pods in those nodes' /24s (all of 127/8 is loopback): ``hello`` on node-1 (127.0.1.10),
``world-v1`` on node-2 (127.0.2.10), ``world-v2`` on node-2 (127.0.2.11). Both proxies run the
``config.yaml`` of linkerd-examples' ``linkerd-ingress.yml`` with only addresses changed (listen IP,
ports, the Kubernetes API location: the fake API of tests/fakek8s.py). ``hello`` calls ``world``
through its node's ``outgoing`` router and copies the ``l5d-ctx-*`` headers it received onto that
call, as the article's app does.

The flow of ``Host: www.hello.world`` into node-1's ingress router: the dtab names service
``hello``; the DaemonSet transformer sends it to the ``incoming`` router of hello's node (node-1),
whose localnode transformer picks the hello pod; hello calls ``world`` through node-1's
``outgoing`` router, whose dtab says ``world-v1``; the DaemonSet transformer sends the call to
node-2's ``incoming`` router, which hands it to the world-v1 pod. With
``l5d-dtab: /host/world => /srv/world-v2;`` the same request (and, as ``l5d-ctx-dtab``, hello's call)
ends at world-v2: "earth".
"""

from __future__ import annotations

import http.client
import http.server
import re
import socket
import threading
import time
from typing import Dict, Iterator, List, Tuple

import pytest

from conftest import TWINS
from fakek8s import FakeK8s, endpoints
from proxyproc import ProxyProcess, admin_json

HERE = __import__("os").path.dirname(__import__("os").path.abspath(__file__))
NODES = {"node-1": "127.0.1.1", "node-2": "127.0.2.1"}


def _free_port_on_both() -> int:
    """A port free on both nodes' addresses (the DaemonSet's pods use the same ports)."""
    for _ in range(50):
        a = socket.socket()
        a.bind((NODES["node-1"], 0))
        port = a.getsockname()[1]
        b = socket.socket()
        try:
            b.bind((NODES["node-2"], port))
            return port
        except OSError:
            continue
        finally:
            a.close()
            b.close()
    raise RuntimeError("no port free on both nodes")


class App:
    """A pod: an HTTP server on one loopback address answering ``text``, or (hello) calling world."""

    def __init__(self, ip: str, text: str, outgoing: Tuple[str, int] = None) -> None:  # type: ignore[assignment]
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                app.hits += 1
                body = app.answer(self).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.ip, self.text, self.outgoing, self.hits = ip, text, outgoing, 0
        self.server = http.server.ThreadingHTTPServer((ip, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, req: http.server.BaseHTTPRequestHandler) -> str:
        if self.outgoing is None:
            return f"{self.text} ({self.ip})!"
        ctx = {k: v for k, v in req.headers.items() if k.lower().startswith("l5d-ctx-")}
        c = http.client.HTTPConnection(*self.outgoing, timeout=10)  # http_proxy=$(NODE_NAME):4140
        try:
            c.request("GET", "/", headers={"Host": "world", **ctx})
            world = c.getresponse().read().decode()
        finally:
            c.close()
        return f"{self.text} ({self.ip}) {world}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _seed_config() -> str:
    """The ``config.yaml`` of linkerd-ingress.yml's ConfigMap, as the article runs it."""
    with open(f"{HERE}/data/linkerd-examples/linkerd-ingress.yml", encoding="utf-8") as f:
        text = f.read()
    block = text.split("config.yaml: |-\n", 1)[1].split("\n---", 1)[0]
    return "\n".join(line[4:] for line in block.splitlines())


def _node_config(ip: str, ports: Dict[str, int], api: int) -> str:
    """The seed config with only addresses changed: listen IP, ports, the API location."""
    cfg = _seed_config()
    cfg = cfg.replace("ip: 0.0.0.0", f"ip: {ip}")
    cfg = re.sub(r"port: 9990", "port: 0", cfg)
    for name, port in (("4140", ports["outgoing"]), ("4141", ports["incoming"]), ("4142", ports["ingress"])):
        cfg = cfg.replace(f"port: {name}", f"port: {port}")
    cfg = cfg.replace("host: localhost\n  port: 8001", f"host: 127.0.0.1\n  port: {api}")
    cfg = cfg.replace("service: l5d\n", f"service: l5d\n      k8sHost: 127.0.0.1\n      k8sPort: {api}\n")
    assert cfg.count(f"k8sPort: {api}") == 2 and f"port: {api}" in cfg
    return cfg


class Cluster:
    def __init__(self, impl: str) -> None:
        self.k8s = FakeK8s().start()
        self.ports = {name: _free_port_on_both() for name in ("outgoing", "incoming", "ingress")}
        self.world_v1 = [App("127.0.2.10", "world")]
        self.world_v2 = App("127.0.2.11", "earth")
        self.hello = App("127.0.1.10", "Hello", outgoing=(NODES["node-1"], self.ports["outgoing"]))
        self.publish()
        self.k8s.apply(endpoints("default", "l5d", addresses=[(ip, node) for node, ip in NODES.items()],
                                 ports={"incoming": self.ports["incoming"], "outgoing": self.ports["outgoing"], "ingress": self.ports["ingress"]}))
        self.nodes: Dict[str, ProxyProcess] = {}
        try:
            for node, ip in NODES.items():
                self.nodes[node] = ProxyProcess(_node_config(ip, self.ports, self.k8s.port), impl,
                                                extra_env={"POD_IP": ip, "NODE_NAME": node})
        except BaseException:
            self.close()
            raise

    def publish(self) -> None:
        def node_of(ip: str) -> str:
            return "node-1" if ip.startswith("127.0.1.") else "node-2"

        for name, apps in (("hello", [self.hello]), ("world-v1", self.world_v1), ("world-v2", [self.world_v2])):
            self.k8s.apply(endpoints("default", name, addresses=[(a.ip, node_of(a.ip)) for a in apps],
                                     ports={"http": apps[0].port} if apps else None))

    def request(self, headers: Dict[str, str], node: str = "node-1") -> Tuple[int, str]:
        c = http.client.HTTPConnection(NODES[node], self.ports["ingress"], timeout=15)
        try:
            c.request("GET", "/", headers={"Host": "www.hello.world", **headers})
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def close(self) -> None:
        for p in self.nodes.values():
            p.stop()
        for a in (*self.world_v1, self.world_v2, self.hello):
            a.close()
        self.k8s.stop()


@pytest.fixture(scope="module", params=TWINS)
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(request.param)
    yield c
    c.close()


def test_the_ingress_answers_world_and_the_override_answers_earth_two_hops_down(cluster: Cluster) -> None:
    assert cluster.request({}) == (200, "Hello (127.0.1.10) world (127.0.2.10)!")
    status, body = cluster.request({"l5d-dtab": "/host/world => /srv/world-v2;"})
    assert (status, body) == (200, "Hello (127.0.1.10) earth (127.0.2.11)!")
    assert cluster.request({})[1].endswith("world (127.0.2.10)!")  # only that request went to v2
    # the other node's ingress routes the same way (the request crosses to node-1's hello)
    assert cluster.request({}, node="node-2") == (200, "Hello (127.0.1.10) world (127.0.2.10)!")


def test_pods_added_and_removed_are_routed_to_within_two_seconds(cluster: Cluster) -> None:
    # a second world-v1 pod, on node-1, on the port of the Endpoints object (one number per subset)
    pod = _AppOnPort("127.0.1.20", cluster.world_v1[0].port)
    try:
        cluster.world_v1.append(pod)
        cluster.publish()
        t0 = time.monotonic()
        while pod.hits == 0 and time.monotonic() - t0 < 5:
            assert cluster.request({})[0] == 200
        assert pod.hits > 0 and time.monotonic() - t0 < 2.0, f"routed to after {time.monotonic() - t0:.2f} s"
        cluster.world_v1.remove(pod)
        cluster.publish()
        t1 = time.monotonic()
        while time.monotonic() - t1 < 2.0:  # in flight meanwhile: fine; then none
            assert cluster.request({})[0] == 200
        before = pod.hits
        answers = {cluster.request({})[1] for _ in range(20)}
        assert pod.hits == before and answers == {"Hello (127.0.1.10) world (127.0.2.10)!"}, answers
    finally:
        if pod in cluster.world_v1:
            cluster.world_v1.remove(pod)
            cluster.publish()
        pod.close()


class _AppOnPort(App):
    """A world pod on a given address and port (the same port as the other world pods: one Endpoints port)."""

    def __init__(self, ip: str, port: int) -> None:
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                app.hits += 1
                body = f"world ({app.ip})!".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.ip, self.text, self.outgoing, self.hits = ip, "world", None, 0
        self.server = http.server.ThreadingHTTPServer((ip, port), Handler)
        self.server.daemon_threads = True
        self.port = port
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


def test_an_api_outage_fails_no_request(cluster: Cluster) -> None:
    results: List[Tuple[int, str]] = []
    with cluster.k8s.outage("refuse"):
        cluster.k8s.end_watches()
        for _ in range(20):
            results.append(cluster.request({}))
            results.append(cluster.request({"l5d-dtab": "/host/world => /srv/world-v2;"}))
    assert all(status == 200 for status, _ in results), results
    assert cluster.request({})[0] == 200


def test_admin_shows_the_namer_state_bound_names_and_watch_metrics(cluster: Cluster) -> None:
    assert cluster.request({})[0] == 200  # the seed's names are bound on node-1
    node = cluster.nodes["node-1"]
    deadline = time.monotonic() + 15  # after the outage test, watches reconnect within their backoff (<= 10 s)
    while True:
        state = admin_json(node, "/namer_state/io.l5d.k8s.json")
        hello = state["endpoints"]["default/hello"]
        if hello["watch"]["connected"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert hello["state"] == {"http": [f"127.0.1.10:{cluster.hello.port}"]}
    assert hello["watch"]["connected"] is True and hello["watch"]["lists"] >= 1
    bound = admin_json(node, "/bound-names.json")
    assert "/#/io.l5d.k8s/default/http/hello" in bound and "/#/io.l5d.k8s/default/http/world-v1" in bound
    metrics = admin_json(node, "/admin/metrics.json")
    assert metrics["namer/#/io.l5d.k8s/watches"] >= 2 and metrics["namer/#/io.l5d.k8s/watch/lists"] >= 2
    assert 1 <= metrics["namer/#/io.l5d.k8s/watches_connected"] <= metrics["namer/#/io.l5d.k8s/watches"]
