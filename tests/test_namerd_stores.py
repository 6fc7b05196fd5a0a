"""namerd on real distributed stores: two ``pyproxy namerd`` replicas on one etcd (v2 keys API), and
on one ZooKeeper. A dtab written through one replica is served and streamed by the other within
1 s; two updates from the same version: exactly one wins; a stored value that does not parse keeps
the namespace's last good dtab; a store that goes down answers 503 to writes (nothing written),
keeps serving bindings, and works again once the store is back. The layout is namerd's: the key
``<pathPrefix>/<ns>`` holds the dtab's text, its version is the key's modifiedIndex (etcd) or the
znode's data version (ZooKeeper)."""

from __future__ import annotations

import base64
import json
import os
import struct
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any, Callable, Iterator, List, Tuple

import pytest

from namerdproc import Watch, api, get_dtab, put_dtab, start_namerd
from proxyproc import ProxyProcess
from fakek8s import FakeK8s
from stores import EtcdServer, ZooKeeperServer, etcd, zookeeper  # noqa: F401 - fixtures

Addr = Tuple[str, int]


def _storage(kind: str, server: Any, prefix: str) -> str:
    if kind == "k8s":  # the prefix names the Kubernetes namespace the DTab resources live in
        return f"storage:\n  kind: io.l5d.k8s\n  host: 127.0.0.1\n  port: {server.port}\n  namespace: {prefix.strip('/').split('/')[0]}\n"
    if kind == "etcd":
        return f"storage:\n  kind: io.l5d.etcd\n  experimental: true\n  host: 127.0.0.1\n  port: {server.port}\n  pathPrefix: {prefix}\n"
    return f"storage:\n  kind: io.l5d.zk\n  zkAddrs: [{{host: 127.0.0.1, port: {server.port}}}]\n  pathPrefix: {prefix}\n  sessionTimeoutMs: 4000\n"


def _config(kind: str, server: Any, prefix: str, disco: str) -> str:
    return (
        "admin: {ip: 127.0.0.1, port: 0}\n" + _storage(kind, server, prefix)
        + f"namers:\n- kind: io.l5d.fs\n  rootDir: {disco}\n"
        "interfaces:\n- kind: io.l5d.httpController\n  ip: 127.0.0.1\n  port: 0\n"
    )


@pytest.fixture(scope="module")
def disco() -> str:
    d = tempfile.mkdtemp(prefix="namerd-disco-")
    for name, port in (("world", 8081), ("earth", 8082)):
        with open(os.path.join(d, name), "w") as f:
            f.write(f"127.0.0.1 {port}\n")
    return d


@pytest.fixture(scope="module")
def k8s() -> Iterator[FakeK8s]:
    with FakeK8s() as fake:
        yield fake


@pytest.fixture(params=["etcd", "zk", "k8s"])
def replicas(request: pytest.FixtureRequest, disco: str) -> Iterator[Tuple[str, Any, str, List[ProxyProcess]]]:
    kind = request.param
    server = request.getfixturevalue({"etcd": "etcd", "zk": "zookeeper", "k8s": "k8s"}[kind])
    prefix = f"/namerd-{uuid.uuid4().hex[:8]}/dtabs"
    nodes: List[ProxyProcess] = []
    try:
        for _ in range(2):
            nodes.append(start_namerd(_config(kind, server, prefix, disco)))
        yield kind, server, prefix, nodes
    finally:
        for n in nodes:
            n.stop()


def _ctl(p: ProxyProcess) -> Addr:
    return p.addr("io.l5d.httpController")


def _eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _raw_store_write(kind: str, server: Any, prefix: str, ns: str, text: str) -> None:
    """Write a value into the store behind namerd's back."""
    if kind == "k8s":
        kns = prefix.strip("/").split("/")[0]
        obj = {"apiVersion": "l5d.io/v1alpha1", "kind": "DTab", "metadata": {"name": ns, "namespace": kns},
               "dentries": [{"prefix": d.split("=>")[0].strip(), "dst": d.split("=>")[1].strip()} for d in text.split(";") if "=>" in d]}
        server.apply(obj)
        return
    if kind == "etcd":
        data = urllib.parse.urlencode({"value": text}).encode()
        req = urllib.request.Request(f"{server.url}/v2/keys{prefix}/{ns}", data=data, method="PUT")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status in (200, 201)
        return
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=server.hosts)
    zk.start(timeout=10)
    try:
        zk.set(f"{prefix}/{ns}", text.encode())
    finally:
        zk.stop()
        zk.close()


def test_a_write_through_one_replica_is_served_and_streamed_by_the_other(replicas: Any) -> None:
    kind, server, prefix, (a, b) = replicas
    watch = Watch(_ctl(b), "/api/1/dtabs/shared?watch=true")
    bind = Watch(_ctl(b), "/api/1/bind/shared?path=/svc/world&watch=true")
    try:
        assert bind.next() == {"type": "neg"}
        t0 = time.monotonic()
        assert put_dtab(_ctl(a), "shared", "/svc => /#/io.l5d.fs", method="POST")[0] == 204
        assert watch.next(timeout=1.0) == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]
        assert bind.next(timeout=1.0)["bound"]["id"] == "/#/io.l5d.fs/world"
        assert time.monotonic() - t0 < 1.0 + 0.5  # the queue waits above are the 1 s bounds
        assert _eventually(lambda: get_dtab(_ctl(b), "shared")[0] == 200, 1.0)
        # the same version on both replicas, in namerd's encoding
        _, va, _ = get_dtab(_ctl(a), "shared")
        _, vb, _ = get_dtab(_ctl(b), "shared")
        assert va == vb
        raw = base64.b64decode(va)
        if kind == "etcd":
            assert raw.isdigit()  # the key's modifiedIndex, in decimal digits
        elif kind == "k8s":
            assert raw.isdigit()  # the resource's resourceVersion
            obj = server.get("dtabs", prefix.strip("/").split("/")[0], "shared")
            assert obj["metadata"]["resourceVersion"] == raw.decode() and obj["kind"] == "DTab"
            assert obj["dentries"] == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]
        else:
            assert struct.unpack(">i", raw) == (0,)  # the znode's data version
        # an update through B is streamed back to a watch on A
        back = Watch(_ctl(a), "/api/1/dtabs/shared?watch=true")
        try:
            back.next()
            assert put_dtab(_ctl(b), "shared", "/svc => /#/io.l5d.fs; /svc/world => /#/io.l5d.fs/earth", version=vb)[0] == 204
            assert len(back.next(timeout=1.0)) == 2
            assert bind.next(timeout=1.0)["bound"]["id"] == "/#/io.l5d.fs/earth"
        finally:
            back.close()
        assert "shared" in json.loads(api(_ctl(b), "GET", "/api/1/dtabs")[2])
        assert api(_ctl(b), "DELETE", "/api/1/dtabs/shared")[0] == 204
        assert _eventually(lambda: get_dtab(_ctl(a), "shared")[0] == 404, 1.0)
    finally:
        watch.close()
        bind.close()


def test_two_updates_from_one_version_exactly_one_wins(replicas: Any) -> None:
    kind, server, prefix, (a, b) = replicas
    assert put_dtab(_ctl(a), "race", "/svc => /#/io.l5d.fs", method="POST")[0] == 204
    assert _eventually(lambda: get_dtab(_ctl(b), "race")[0] == 200, 1.0)
    for round_ in range(3):
        _, version, _ = get_dtab(_ctl(a), "race")
        assert _eventually(lambda: get_dtab(_ctl(b), "race")[1] == version, 1.0)
        results: List[Tuple[int, int]] = []
        barrier = threading.Barrier(2)

        def update(i: int, node: ProxyProcess) -> None:
            barrier.wait(5)
            results.append((put_dtab(_ctl(node), "race", f"/svc => /#/io.l5d.fs; /r{round_} => /{i}", version=version)[0], i))

        threads = [threading.Thread(target=update, args=(i, n)) for i, n in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(status for status, _ in results) == [204, 412]
        winner = next(i for status, i in results if status == 204)
        expected = [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}, {"prefix": f"/r{round_}", "dst": f"/{winner}"}]
        for n in (a, b):
            assert _eventually(lambda: get_dtab(_ctl(n), "race")[2] == expected, 1.0)


def test_a_stored_value_that_does_not_parse_keeps_the_last_good_dtab(replicas: Any) -> None:
    kind, server, prefix, (a, b) = replicas
    assert put_dtab(_ctl(a), "rough", "/svc => /#/io.l5d.fs", method="POST")[0] == 204
    assert _eventually(lambda: get_dtab(_ctl(b), "rough")[0] == 200, 1.0)
    _raw_store_write(kind, server, prefix, "rough", "/svc => /#/io.l5d.fs/")
    time.sleep(0.5)
    for n in (a, b):
        assert get_dtab(_ctl(n), "rough")[2] == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]
    assert _eventually(lambda: any("rough does not parse" in line for line in a.stderr_lines + b.stderr_lines), 2.0)
    _raw_store_write(kind, server, prefix, "rough", "/svc => /#/io.l5d.fs; /x => /y")
    assert _eventually(lambda: len(get_dtab(_ctl(b), "rough")[2]) == 2, 1.0)


class _FakeK8sServer:
    """The fake API with the stop/start of a store process (an outage: connections refused)."""

    def __init__(self) -> None:
        self.fake = FakeK8s()
        self.port = 0

    def start(self) -> None:
        if self.port:
            self.fake.up()
        else:
            self.fake.start()
            self.port = self.fake.port

    def stop(self) -> None:
        self.fake.down()

    def close(self) -> None:
        self.fake.stop()


@pytest.mark.parametrize("kind", ["etcd", "zk", "k8s"])
def test_a_store_that_goes_down_refuses_writes_and_keeps_bindings(kind: str, disco: str) -> None:
    server: Any = {"etcd": EtcdServer, "zk": ZooKeeperServer, "k8s": _FakeK8sServer}[kind]()
    node = None
    try:
        server.start()
        prefix = "/namerd/dtabs"
        node = start_namerd(_config(kind, server, prefix, disco))
        ctl = _ctl(node)
        assert put_dtab(ctl, "down", "/svc => /#/io.l5d.fs", method="POST")[0] == 204
        bind = Watch(ctl, "/api/1/bind/down?path=/svc/world&watch=true")
        try:
            assert bind.next()["bound"]["id"] == "/#/io.l5d.fs/world"
            server.stop()
            assert _eventually(lambda: put_dtab(ctl, "down", "/svc => /#/io.l5d.fs/earth")[0] == 503, 15.0)
            status, body = put_dtab(ctl, "other", "/a => /b", method="POST")
            assert status == 503 and b"unavailable" in body
            # bindings are still served, from the last known dtab
            doc = json.loads(api(ctl, "GET", "/api/1/bind/down?path=/svc/world")[2])
            assert doc["bound"]["id"] == "/#/io.l5d.fs/world"
            assert bind.quiet(0.5)
            server.start()
            assert _eventually(lambda: put_dtab(ctl, "down", "/svc => /#/io.l5d.fs; /svc/world => /#/io.l5d.fs/earth")[0] == 204, 20.0)
            assert bind.next(timeout=5.0)["bound"]["id"] == "/#/io.l5d.fs/earth"
            assert get_dtab(ctl, "other")[0] == 404  # the refused write was not made
        finally:
            bind.close()
    finally:
        if node is not None:
            node.stop()
        server.close()
