"""The seed's namerd workflow end to end on loopback: linkerd-examples' ``namerd.yml`` and
``linkerd-namerd.yml``, with only addresses changed and the proxies' interpreter switched from
thrift ``io.l5d.namerd`` to ``io.l5d.namerd.http``.

namerd runs the ``config.yml`` of namerd.yml's ConfigMap: the ``io.l5d.k8s`` namer and the
``io.l5d.k8s`` storage (``dtabs.l5d.io`` resources) on the fake Kubernetes API, its
``io.l5d.httpController`` on a free port (the thrift and mesh interfaces, which pyproxy does not
build, are left out). The namespaces are created as the seed's namerctl Job does
(``createNs.sh``), with ``pyproxy dtab create``. Two pyproxy nodes (127.0.1.1, 127.0.2.1) run
linkerd-namerd.yml's ``config.yaml``: ``external`` (to hello), ``outgoing`` (DaemonSet
transformer) and ``incoming`` (localnode transformer), all bound by namerd.

``Host: www.hello.world`` into node-1's external router reaches hello, whose call to world goes
through node-1's outgoing router to node-2's incoming router and world-v1: "world". Then
``pyproxy dtab update internal`` sends world to world-v2 ("earth") for every proxy, without a
restart, and an ``l5d-dtab`` override on one request still wins over it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, Tuple

import pytest
import yaml

from conftest import TWINS
from fakek8s import FakeK8s, endpoints
from namerdproc import start_namerd
from proxyproc import ProxyProcess
from test_k8s_topology import NODES, App, _free_port_on_both

HERE = os.path.dirname(os.path.abspath(__file__))


def _docs(name: str) -> list:
    with open(f"{HERE}/data/linkerd-examples/{name}", encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _namerd_config(api: int) -> str:
    cm = next(d for d in _docs("namerd.yml") if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "namerd-config")
    cfg = yaml.safe_load(cm["data"]["config.yml"])
    cfg["admin"] = {"ip": "127.0.0.1", "port": 0}
    for block in (cfg["namers"][0], cfg["storage"]):
        block["host"], block["port"] = "127.0.0.1", api
    cfg["interfaces"] = [dict(i, ip="127.0.0.1", port=0) for i in cfg["interfaces"] if i["kind"] == "io.l5d.httpController"]
    return yaml.safe_dump(cfg)


def _create_ns_script() -> Dict[str, str]:
    """The dtabs the seed's namerctl Job creates (createNs.sh), by namespace."""
    cm = next(d for d in _docs("namerd.yml") if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "namerctl-script")
    script = cm["data"]["createNs.sh"]
    return {ns: body for body, ns in re.findall(r'echo "([^"]*=>[^"]*)" \| namerctl dtab create (\w+) -', script)}


def _proxy_config(ip: str, ports: Dict[str, int], api: int, namerd: Tuple[str, int]) -> str:
    cm = next(d for d in _docs("linkerd-namerd.yml") if d["kind"] == "ConfigMap")
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    cfg["admin"] = {"ip": ip, "port": 0}
    cfg.pop("usage", None)
    for router in cfg["routers"]:
        interp = router["interpreter"]
        assert interp["kind"] == "io.l5d.namerd"
        interp["kind"] = "io.l5d.namerd.http"  # the one change of interpreter
        interp["experimental"] = True
        interp["dst"] = f"/$/inet/{namerd[0]}/{namerd[1]}"
        for t in interp.get("transformers", ()):
            if t["kind"] == "io.l5d.k8s.daemonset":
                t["k8sHost"], t["k8sPort"] = "127.0.0.1", api
        for server in router["servers"]:
            server["ip"] = ip
            server["port"] = {4140: ports["outgoing"], 4141: ports["incoming"], 4142: ports["external"]}[server["port"]]
    return yaml.safe_dump(cfg)


class Seed:
    def __init__(self, impl: str) -> None:
        self.k8s = FakeK8s().start()
        self.ports = {name: _free_port_on_both() for name in ("outgoing", "incoming", "external")}
        self.world_v1 = App("127.0.2.10", "world")
        self.world_v2 = App("127.0.2.11", "earth")
        self.hello = App("127.0.1.10", "Hello", outgoing=(NODES["node-1"], self.ports["outgoing"]))
        for name, app, node in (("hello", self.hello, "node-1"), ("world-v1", self.world_v1, "node-2"), ("world-v2", self.world_v2, "node-2")):
            self.k8s.apply(endpoints("default", name, addresses=[(app.ip, node)], ports={"http": app.port}))
        self.k8s.apply(endpoints("default", "l5d", addresses=[(ip, node) for node, ip in NODES.items()], ports=self.ports))
        self.namerd = None
        self.nodes: Dict[str, ProxyProcess] = {}
        try:
            self.namerd = start_namerd(_namerd_config(self.k8s.port))
            self.ctl = self.namerd.addr("io.l5d.httpController")
            self.url = f"http://{self.ctl[0]}:{self.ctl[1]}"
            for ns, body in _create_ns_script().items():  # what the seed's namerctl Job does
                assert self.dtab("create", ns, "-", stdin=body)[0] == 0
            for node, ip in NODES.items():
                self.nodes[node] = ProxyProcess(_proxy_config(ip, self.ports, self.k8s.port, self.ctl), impl,
                                                extra_env={"POD_IP": ip, "NODE_NAME": node})
        except BaseException:
            self.close()
            raise

    def dtab(self, *args: str, stdin: str = "") -> Tuple[int, str, str]:
        r = subprocess.run([sys.executable, "-m", "pyproxy", "dtab", "--base-url", self.url, *args],
                           input=stdin, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def request(self, headers: Dict[str, str] = {}, node: str = "node-1") -> Tuple[int, str]:  # noqa: B006
        import http.client

        c = http.client.HTTPConnection(NODES[node], self.ports["external"], timeout=15)
        try:
            c.request("GET", "/", headers={"Host": "www.hello.world", **headers})
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def close(self) -> None:
        for p in self.nodes.values():
            p.stop()
        if self.namerd is not None:
            self.namerd.stop()
        for a in (self.world_v1, self.world_v2, self.hello):
            a.close()
        self.k8s.stop()


@pytest.fixture(params=TWINS)
def seed(request: pytest.FixtureRequest) -> Iterator[Seed]:
    s = Seed(request.param)
    try:
        yield s
    finally:
        s.close()


def _eventually(check, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_the_seed_workflow_through_namerd(seed: Seed) -> None:
    world = (200, "Hello (127.0.1.10) world (127.0.2.10)!")
    earth = (200, "Hello (127.0.1.10) earth (127.0.2.11)!")
    first = seed.request()
    assert first == world, (first, seed.namerd.stderr_lines[-20:], seed.nodes["node-1"].stderr_lines[-20:])  # type: ignore[union-attr]
    assert seed.request({"l5d-dtab": "/host/world => /srv/world-v2;"}) == earth
    # the dtabs live in the Kubernetes API, as DTab resources
    assert seed.k8s.get("dtabs", "default", "internal")["dentries"][-1] == {"prefix": "/host/world", "dst": "/srv/world-v1"}
    # change the dtab once, for every proxy, with no restart
    code, text, _ = seed.dtab("get", "internal")
    assert code == 0
    with tempfile.NamedTemporaryFile("w", suffix=".dtab", delete=False) as f:
        f.write(text.replace("/srv/world-v1", "/srv/world-v2"))
    try:
        code, _, err = seed.dtab("update", "internal", f.name)
        assert code == 0, err
    finally:
        os.unlink(f.name)
    assert _eventually(lambda: seed.request() == earth, 5.0)
    assert _eventually(lambda: seed.request(node="node-2") == earth, 5.0)
    # the per-request override still works on top of it
    assert seed.request({"l5d-dtab": "/host/world => /srv/world-v1;"}) == world
