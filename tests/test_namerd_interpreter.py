"""The proxy side of namerd: routers with the ``io.l5d.namerd.http`` interpreter, against two
``pyproxy namerd`` replicas on one real etcd.

The proxy knows both replicas (``dst: /#/io.l5d.fs/namerd``, a file listing them); namerd's own
io.l5d.fs namer knows the apps. Requests follow the namespace's dtab; an ``l5d-dtab`` override is
carried to namerd with the bind (so namerd's binding honours it); a dtab changed through either
replica reroutes the proxy without a restart; one replica dying changes nothing for requests; both
dying leave the proxy on its last bindings; the routes are served by the lane (native twin).
"""

from __future__ import annotations

import http.client
import os
import tempfile
import time
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from conftest import TWINS
from namerdproc import get_dtab, put_dtab, start_namerd
from proxyproc import ProxyProcess, admin_json
from stores import etcd  # noqa: F401 - fixture


class _Text:
    """An origin answering a fixed text (world-v1: "world", world-v2: "earth")."""

    def __init__(self, text: str) -> None:
        import http.server
        import threading

        body = text.encode()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _get(addr: Tuple[str, int], host: str, headers: Dict[str, str] = {}) -> Tuple[int, str]:  # noqa: B006
    c = http.client.HTTPConnection(*addr, timeout=15)
    try:
        c.request("GET", "/", headers={"Host": host, **headers})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def _eventually(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


class Mesh:
    def __init__(self, impl: str, etcd_port: int) -> None:
        self.apps = {"world-v1": _Text("world"), "world-v2": _Text("earth")}
        self.disco = tempfile.mkdtemp(prefix="namerd-disco-")
        for name, app in self.apps.items():
            with open(os.path.join(self.disco, name), "w") as f:
                f.write(f"127.0.0.1 {app.port}\n")
        prefix = f"/it-{os.getpid()}-{time.monotonic_ns()}/dtabs"
        namerd_cfg = (
            "admin: {ip: 127.0.0.1, port: 0}\n"
            f"storage: {{kind: io.l5d.etcd, experimental: true, host: 127.0.0.1, port: {etcd_port}, pathPrefix: {prefix}}}\n"
            f"namers:\n- {{kind: io.l5d.fs, rootDir: {self.disco}}}\n"
            "interfaces:\n- {kind: io.l5d.httpController, ip: 127.0.0.1, port: 0}\n"
        )
        self.namerds: List[ProxyProcess] = []
        self.proxy = None
        try:
            self.namerds = [start_namerd(namerd_cfg) for _ in range(2)]
            self.ctl = [n.addr("io.l5d.httpController") for n in self.namerds]
            assert put_dtab(self.ctl[0], "internal", "/svc => /#/io.l5d.fs; /svc/world => /svc/world-v1", method="POST")[0] == 204
            self.local = tempfile.mkdtemp(prefix="proxy-disco-")
            with open(os.path.join(self.local, "namerd"), "w") as f:
                f.write("".join(f"{h} {p}\n" for h, p in self.ctl))
            self.proxy = ProxyProcess(
                "admin: {ip: 127.0.0.1, port: 0}\n"
                f"namers:\n- {{kind: io.l5d.fs, rootDir: {self.local}}}\n"
                "routers:\n- protocol: http\n  label: outgoing\n  bindingTimeoutMs: 5000\n"
                "  interpreter:\n    kind: io.l5d.namerd.http\n    experimental: true\n"
                "    dst: /#/io.l5d.fs/namerd\n    namespace: internal\n    retry: {baseSeconds: 1, maxSeconds: 2}\n"
                "  servers:\n  - {ip: 127.0.0.1, port: 0}\n",
                impl,
            )
            self.addr = self.proxy.addr("outgoing")
        except BaseException:
            self.close()
            raise

    def update(self, via: int, text: str) -> None:
        _, version, _ = get_dtab(self.ctl[via], "internal")
        assert put_dtab(self.ctl[via], "internal", text, version=version)[0] == 204

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for n in self.namerds:
            n.stop()
        for a in self.apps.values():
            a.close()


@pytest.fixture(params=TWINS)
def mesh(request: pytest.FixtureRequest, etcd: object) -> Iterator[Mesh]:  # noqa: F811
    m = Mesh(request.param, etcd.port)  # type: ignore[attr-defined]
    try:
        yield m
    finally:
        m.close()


def test_routes_follow_namerd_overrides_and_updates_and_survive_namerd(mesh: Mesh, request: pytest.FixtureRequest) -> None:
    assert _get(mesh.addr, "world") == (200, "world")
    # the override goes to namerd with the bind: namerd's binding honours it
    assert _get(mesh.addr, "world", {"l5d-dtab": "/svc/world => /svc/world-v2"}) == (200, "earth")
    assert _get(mesh.addr, "world") == (200, "world")
    # a change through replica 1 reroutes the proxy, no restart
    mesh.update(1, "/svc => /#/io.l5d.fs; /svc/world => /svc/world-v2")
    assert _eventually(lambda: _get(mesh.addr, "world") == (200, "earth"), 5.0)
    # ... and back, with the override still applied on top
    mesh.update(0, "/svc => /#/io.l5d.fs; /svc/world => /svc/world-v1")
    assert _eventually(lambda: _get(mesh.addr, "world") == (200, "world"), 5.0)
    assert _get(mesh.addr, "world", {"l5d-dtab": "/svc/world => /svc/world-v2"}) == (200, "earth")
    # one replica dies: requests go on, and an update through the other still reaches the proxy
    mesh.namerds[0].stop()
    for _ in range(20):
        assert _get(mesh.addr, "world") == (200, "world")
    mesh.update(1, "/svc => /#/io.l5d.fs; /svc/world => /svc/world-v2")
    assert _eventually(lambda: _get(mesh.addr, "world") == (200, "earth"), 10.0)
    # both die: the last bindings stay
    mesh.namerds[1].stop()
    for _ in range(20):
        assert _get(mesh.addr, "world") == (200, "earth")
    metrics = admin_json(mesh.proxy, "/admin/metrics.json")  # type: ignore[arg-type]
    if "native" in request.node.callspec.id:
        assert metrics.get("lane/requests", 0) > 0  # the routes namerd decided are served by the lane


def test_a_name_namerd_does_not_know_is_502_and_an_unreachable_namerd_503(etcd: object) -> None:  # noqa: F811
    from proxyproc import dead_port

    proxy = ProxyProcess(
        "admin: {ip: 127.0.0.1, port: 0}\nrouters:\n- protocol: http\n  label: out\n  bindingTimeoutMs: 1000\n"
        f"  interpreter: {{kind: io.l5d.namerd.http, experimental: true, dst: /$/inet/127.0.0.1/{dead_port()}, namespace: x}}\n"
        "  servers:\n  - {ip: 127.0.0.1, port: 0}\n",
        "pure",
    )
    try:
        status, body = _get(proxy.addr("out"), "world")
        assert status == 503 and "waiting for namerd" in body
    finally:
        proxy.stop()
    assert any("namerd watch" in line for line in proxy.stderr_lines)


def test_thrift_and_mesh_interpreters_validate_and_run_names_the_http_one() -> None:
    import subprocess
    import sys

    for kind in ("io.l5d.namerd", "io.l5d.mesh"):
        text = ("routers:\n- protocol: http\n  interpreter: {kind: %s, dst: /$/inet/127.0.0.1/4100}\n  servers: [{port: 0}]\n" % kind)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            ok = subprocess.run([sys.executable, "-m", "pyproxy", "run", "--validate", f.name], capture_output=True, text=True, timeout=30)
            assert ok.returncode == 0, ok.stderr
            run = subprocess.run([sys.executable, "-m", "pyproxy", "run", f.name], capture_output=True, text=True, timeout=30)
            assert run.returncode == 2
            assert f"$.routers[0].interpreter.kind: {kind} (use io.l5d.namerd.http, namerd's HTTP interface)" in run.stderr
        finally:
            os.unlink(f.name)


def test_an_evicted_bind_watch_makes_routers_bind_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bind watches are bounded (least recently bound out first). A router may cache what an
    evicted watch answered, which nothing follows any more, so an eviction moves the interpreter's
    version (routers compare it before using a cached binding) and binding the name again watches again."""
    import trio

    from pyproxy.discovery.interpreters import namerd as interp_mod
    from pyproxy.errors import NamePending
    from pyproxy.naming import Dtab, Path

    root = tempfile.mkdtemp(prefix="namerd-evict-")
    for name in ("a", "b", "c"):
        with open(os.path.join(root, name), "w") as f:
            f.write("127.0.0.1 8081\n")
    namerd = start_namerd(
        "admin: {ip: 127.0.0.1, port: 0}\n"
        "storage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: |\n      /svc => /#/io.l5d.fs;\n"
        f"namers:\n- kind: io.l5d.fs\n  rootDir: {root}\n"
        "interfaces:\n- kind: io.l5d.httpController\n  ip: 127.0.0.1\n  port: 0\n"
    )
    monkeypatch.setattr(interp_mod, "MAX_WATCHES", 2)
    addr = namerd.addr("io.l5d.httpController")

    async def bound(it: "interp_mod.NamerdHttpInterpreter", name: str) -> object:
        with trio.fail_after(10):
            while True:
                try:
                    return it.bind(Dtab(), Path.read(f"/svc/{name}"))
                except NamePending as pending:
                    await pending.ready.wait()  # type: ignore[attr-defined]

    async def main() -> None:
        it = interp_mod.NamerdHttpInterpreter(lambda: [addr], f"/$/inet/{addr[0]}/{addr[1]}", "default")
        async with trio.open_nursery() as nursery:
            await nursery.start(it.run)
            await bound(it, "a")
            await bound(it, "b")
            before = it.version
            await bound(it, "c")  # pushes the watch of /svc/a out
            # one move for the answer about /svc/c, one for the eviction
            assert it.state_json()["binds"] == 2 and it.version >= before + 2
            tree = await bound(it, "a")  # watched again, answered again
            assert tree.value.id.show == "/#/io.l5d.fs/a"  # type: ignore[attr-defined]
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        namerd.stop()


def test_address_watches_evict_unobserved_ones_never_the_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Address watches are bounded too: past the bound the oldest one nobody observes goes (and the
    version moves, as for a bind watch), but never the one just asked for, even when every other
    one is observed (its caller would get a set no watch keeps current)."""
    from pyproxy.discovery.interpreters import namerd as interp_mod
    from pyproxy.naming import Path

    monkeypatch.setattr(interp_mod, "MAX_ADDR_WATCHES", 2)
    it = interp_mod.NamerdHttpInterpreter(lambda: [], "/$/inet/127.0.0.1/1", "default")
    a = it.addr_var(Path.read("/#/io.l5d.fs/a"))
    b = it.addr_var(Path.read("/#/io.l5d.fs/b"))
    stops = [a.observe(lambda _: None), b.observe(lambda _: None)]  # both in use
    before = it.version
    c = it.addr_var(Path.read("/#/io.l5d.fs/c"))
    assert it.addr_var(Path.read("/#/io.l5d.fs/c")) is c and it.version == before  # kept: just asked for
    for stop in stops:
        stop()
    it.addr_var(Path.read("/#/io.l5d.fs/d"))  # now the oldest unobserved go
    assert it.state_json()["addrs"] <= 2 and it.version > before
    assert it.addr_var(Path.read("/#/io.l5d.fs/a")) is not a  # watched again if asked again
