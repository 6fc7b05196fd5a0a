"""``pyproxy namerd`` black-box, on the in-memory store: the config (strict, --validate, refused
kinds), the httpController's dtab API (Etag, If-Match, 409/412/404/400/413), the name API (bind,
addr, resolve, delegate, bound-names) and its watch streams (one document per change, repeats
dropped, a client that leaves ends its stream)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import time
from typing import Iterator, Tuple

import pytest

from namerdproc import Watch, api, get_dtab, put_dtab, start_namerd
from proxyproc import ProxyProcess

Addr = Tuple[str, int]


def _config(disco: str, extra: str = "") -> str:
    return (
        "admin: {ip: 127.0.0.1, port: 0}\n"
        "storage:\n  kind: io.l5d.inMemory\n  namespaces:\n    default: |\n      /svc => /#/io.l5d.fs;\n"
        f"namers:\n- kind: io.l5d.fs\n  rootDir: {disco}\n"
        "interfaces:\n- kind: io.l5d.httpController\n  ip: 127.0.0.1\n  port: 0\n" + extra
    )


@pytest.fixture(scope="module")
def disco() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="namerd-disco-")
    with open(os.path.join(d, "world"), "w") as f:
        f.write("127.0.0.1 8081\n")
    with open(os.path.join(d, "earth"), "w") as f:
        f.write("127.0.0.1 8082\n")
    yield d


@pytest.fixture(scope="module")
def namerd(disco: str) -> Iterator[ProxyProcess]:
    p = start_namerd(_config(disco))
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture()
def ctl(namerd: ProxyProcess) -> Addr:
    return namerd.addr("io.l5d.httpController")


def _validate(text: str, *args: str) -> "subprocess.CompletedProcess[str]":
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return subprocess.run([sys.executable, "-m", "pyproxy", "namerd", *args, f.name], capture_output=True, text=True, timeout=30)
    finally:
        os.unlink(f.name)


# === config ===


def test_validate_accepts_namerds_examples_and_names_bad_keys(disco: str) -> None:
    assert _validate(_config(disco), "--validate").returncode == 0
    bad = _validate(_config(disco).replace("rootDir", "rootDri"), "--validate")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("pyproxy: $.namers[0].rootDri: unknown key")
    gate = _validate("storage: {kind: io.l5d.etcd}\ninterfaces: [{kind: io.l5d.httpController}]\n", "--validate")
    assert gate.returncode == 2 and "$.storage.kind: io.l5d.etcd is experimental" in gate.stderr
    none = _validate("storage: {kind: io.l5d.inMemory}\ninterfaces: []\n", "--validate")
    assert none.returncode == 2 and "$.interfaces" in none.stderr
    proxy_cfg = _validate("routers: [{protocol: http, servers: [{port: 0}]}]\n", "--validate")
    assert proxy_cfg.returncode == 2 and "pyproxy run" in proxy_cfg.stderr


def test_thrift_and_mesh_interfaces_validate_but_are_refused_by_name(disco: str) -> None:
    text = _config(disco) + "- kind: io.l5d.thriftNameInterpreter\n  port: 0\n"
    assert _validate(text, "--validate").returncode == 0
    run = _validate(text)
    assert run.returncode == 2
    assert "$.interfaces[1].kind: io.l5d.thriftNameInterpreter is known but not built yet (use io.l5d.httpController" in run.stderr
    # keys namerd parses but does not honour are refused by name too
    secured = _config(disco).replace("admin: {ip: 127.0.0.1, port: 0}", "admin: {ip: 127.0.0.1, port: 0, security: {uiEnabled: false}}")
    assert _validate(secured, "--validate").returncode == 0
    run = _validate(secured)
    assert run.returncode == 2 and run.stderr.strip().startswith("pyproxy: $.admin.security:")
    consul = "storage: {kind: io.l5d.consul}\ninterfaces: [{kind: io.l5d.httpController, port: 0}]\nadmin: {port: 0}\n"
    assert _validate(consul, "--validate").returncode == 0
    assert "$.storage.kind: io.l5d.consul is known but not built yet" in _validate(consul).stderr


def test_seed_namerd_config_validates() -> None:
    import yaml

    here = os.path.dirname(__file__)
    path = os.path.join(here, "..", "..", "shared", "reference", "examples", "namerd.yml")
    if not os.path.exists(path):
        path = "/work/shared/reference/examples/namerd.yml"
    with open(path) as f:
        docs = list(yaml.safe_load_all(f))
    cm = next(d for d in docs if d and d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "namerd-config")
    assert _validate(cm["data"]["config.yml"], "--validate").returncode == 0


# === dtabs ===


def test_list_get_and_etag(ctl: Addr) -> None:
    status, headers, body = api(ctl, "GET", "/api/1/dtabs")
    assert status == 200 and headers["content-type"] == "application/json"
    assert "default" in __import__("json").loads(body)
    status, etag, doc = get_dtab(ctl, "default")
    assert status == 200 and doc[0] == {"prefix": "/svc", "dst": "/#/io.l5d.fs"}
    assert etag and base64.b64decode(etag)
    status, headers, body = api(ctl, "GET", "/api/1/dtabs/default", headers={"Accept": "application/dtab"})
    assert headers["content-type"] == "application/dtab" and body.startswith(b"/svc=>/#/io.l5d.fs")
    status, headers, body = api(ctl, "HEAD", "/api/1/dtabs/default")
    assert status == 200 and headers["etag"] == etag and body == b""
    assert api(ctl, "GET", "/api/1/dtabs/nosuch")[0] == 404


def test_create_update_delete(ctl: Addr) -> None:
    assert put_dtab(ctl, "crud", "/a => /b", method="POST")[0] == 204
    assert put_dtab(ctl, "crud", "/a => /c", method="POST")[0] == 409
    status, v1, doc = get_dtab(ctl, "crud")
    assert doc == [{"prefix": "/a", "dst": "/b"}]
    assert put_dtab(ctl, "crud", "/a => /c", version=v1)[0] == 204
    status, v2, doc = get_dtab(ctl, "crud")
    assert doc == [{"prefix": "/a", "dst": "/c"}] and v2 != v1
    # a stale version: refused, nothing changed
    assert put_dtab(ctl, "crud", "/a => /d", version=v1)[0] == 412
    assert get_dtab(ctl, "crud")[2] == [{"prefix": "/a", "dst": "/c"}]
    assert put_dtab(ctl, "crud", "/a => /d", version="not base64!")[0] == 412
    # JSON bodies too
    status, _, _ = api(ctl, "PUT", "/api/1/dtabs/crud", b'[{"prefix":"/x","dst":"/y | /z"}]', {"Content-Type": "application/json"})
    assert status == 204 and get_dtab(ctl, "crud")[2] == [{"prefix": "/x", "dst": "/y | /z"}]
    assert api(ctl, "DELETE", "/api/1/dtabs/crud")[0] == 204
    assert api(ctl, "DELETE", "/api/1/dtabs/crud")[0] == 404
    assert put_dtab(ctl, "crud", "/a => /b", version=v1)[0] == 404


def test_bad_dtabs_are_400_with_finagles_message_and_nothing_stored(ctl: Addr) -> None:
    status, body = put_dtab(ctl, "default", "/svc => /#/io.l5d.fs/")
    assert status == 400 and body == b"label char expected but end of input found at '/svc => /#/io.l5d.fs/[]'"
    assert get_dtab(ctl, "default")[2] == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]
    status, body = put_dtab(ctl, "fresh", "/a =>", method="POST")
    assert status == 400 and api(ctl, "GET", "/api/1/dtabs/fresh")[0] == 404
    status, _, body = api(ctl, "PUT", "/api/1/dtabs/default", b"/a=>/b", {"Content-Type": "image/png"})
    assert status == 400 and body == b'Invalid Content-Type "image/png". '
    status, _, _ = api(ctl, "PUT", "/api/1/dtabs/default", b'[{"prefix":"/a"}]', {"Content-Type": "application/json"})
    assert status == 400
    assert put_dtab(ctl, "bad/name", "/a=>/b")[0] in (400, 404)
    # a body over the limit: 413 as soon as its length is known, and the connection closes
    from proxyproc import raw, status_of

    head = b"PUT /api/1/dtabs/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/dtab\r\nContent-Length: 2000000\r\n\r\n/a=>/b;"
    assert status_of(raw(ctl, head, timeout=5)) == 413
    chunked = b"PUT /api/1/dtabs/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/dtab\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"".join(b"%x\r\n%s\r\n" % (65536, b"/" * 65536) for _ in range(17))
    assert status_of(raw(ctl, chunked, timeout=5)) == 413
    assert api(ctl, "GET", "/api/1/dtabs/big")[0] == 404


# === names ===


def test_bind_addr_resolve_delegate_bound_names(ctl: Addr) -> None:
    import json

    status, _, body = api(ctl, "GET", "/api/1/bind/default?path=/svc/world")
    assert status == 200 and body.endswith(b"\n")
    assert json.loads(body) == {"type": "leaf", "bound": {"addr": {"type": "bound", "addrs": [{"ip": "127.0.0.1", "port": 8081, "meta": {}}], "meta": {}},
                                                          "id": "/#/io.l5d.fs/world", "path": "/"}}
    # the caller's dtab is appended to the namespace's
    doc = json.loads(api(ctl, "GET", "/api/1/bind/default?path=/svc/world&dtab=/svc/world=>/%23/io.l5d.fs/earth")[2])
    assert doc["bound"]["id"] == "/#/io.l5d.fs/earth"
    assert json.loads(api(ctl, "GET", "/api/1/bind/default?path=/nothing")[2]) == {"type": "neg"}
    assert api(ctl, "GET", "/api/1/bind/default?path=nope")[0] == 400
    assert api(ctl, "GET", "/api/1/bind/default?path=/svc/x&dtab=/a=>")[0] == 400
    addr = json.loads(api(ctl, "GET", "/api/1/addr/default?path=/%23/io.l5d.fs/earth")[2])
    assert addr["addrs"] == [{"ip": "127.0.0.1", "port": 8082, "meta": {}}]
    assert json.loads(api(ctl, "GET", "/api/1/resolve/default?path=/svc/earth")[2]) == addr
    d = json.loads(api(ctl, "GET", "/api/1/delegate/default?path=/svc/world")[2])
    assert d["type"] == "delegate" and d["delegate"]["dentry"] == {"prefix": "/svc", "dst": "/#/io.l5d.fs"}
    names = json.loads(api(ctl, "GET", "/api/1/bound-names")[2])
    assert "/#/io.l5d.fs/world" in names and "/#/io.l5d.fs/earth" in names


def test_watches_write_one_document_per_change(ctl: Addr, disco: str) -> None:
    assert put_dtab(ctl, "w", "/svc => /#/io.l5d.fs", method="POST")[0] == 204
    dtabs = Watch(ctl, "/api/1/dtabs/w?watch=true")
    bind = Watch(ctl, "/api/1/bind/w?path=/svc/world&watch=true")
    addr = Watch(ctl, "/api/1/addr/w?path=/%23/io.l5d.fs/world&watch=1")
    try:
        assert dtabs.status == 200 and dtabs.headers.get("transfer-encoding") == "chunked"
        assert dtabs.next() == [{"prefix": "/svc", "dst": "/#/io.l5d.fs"}]
        assert bind.next()["bound"]["id"] == "/#/io.l5d.fs/world"
        assert addr.next()["addrs"][0]["port"] == 8081
        # a change that leaves this binding alone: the dtab stream says so, the bind stream does not
        _, v, _ = get_dtab(ctl, "w")
        assert put_dtab(ctl, "w", "/svc => /#/io.l5d.fs; /other => /svc", version=v)[0] == 204
        assert len(dtabs.next()) == 2
        assert bind.quiet(1.0)
        # a change of this binding
        _, v, _ = get_dtab(ctl, "w")
        assert put_dtab(ctl, "w", "/svc => /#/io.l5d.fs; /svc/world => /#/io.l5d.fs/earth", version=v)[0] == 204
        assert bind.next()["bound"]["id"] == "/#/io.l5d.fs/earth"
        # the endpoints of a name: the addr stream follows the file
        with open(os.path.join(disco, "world"), "w") as f:
            f.write("127.0.0.1 8081\n127.0.0.1 8083\n")
        got = addr.next()
        assert sorted(a["port"] for a in got["addrs"]) == [8081, 8083]
        assert addr.quiet(1.5)
    finally:
        for w in (dtabs, bind, addr):
            w.close()
        with open(os.path.join(disco, "world"), "w") as f:
            f.write("127.0.0.1 8081\n")


def test_streams_end_when_their_clients_leave(namerd: ProxyProcess, ctl: Addr) -> None:
    import json

    admin = namerd.addr("admin")
    watches = [Watch(ctl, "/api/1/bind/default?path=/svc/world&watch=true") for _ in range(20)]
    for w in watches:
        w.next()
    metrics = json.loads(api(admin, "GET", "/admin/metrics.json")[2])
    assert metrics["interface/io.l5d.httpController/connections"] >= 20
    for w in watches:
        w.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = json.loads(api(admin, "GET", "/admin/metrics.json")[2])
        if metrics["interface/io.l5d.httpController/connections"] == 0:
            break
        time.sleep(0.1)
    assert metrics["interface/io.l5d.httpController/connections"] == 0
    assert api(admin, "GET", "/admin/ping")[2] == b"pong"


def test_a_client_that_floods_its_watch_is_dropped_not_buffered(namerd: ProxyProcess, ctl: Addr) -> None:
    """What a client sends while its watch is open is kept for its next request up to a bound
    (``PIPELINE_BYTES``); past it, the connection closes. Without the bound a watch lasts for days
    and everything sent on it accumulates in namerd's memory."""
    import socket

    from pyproxy.namerd.http import PIPELINE_BYTES

    s = socket.create_connection(ctl, timeout=10)
    try:
        s.sendall(b"GET /api/1/bind/default?path=/svc/world&watch=true HTTP/1.1\r\nHost: namerd\r\n\r\n")
        first = b""
        while b"/#/io.l5d.fs/world" not in first and len(first) < 65536:  # the head, then the document
            got = s.recv(65536)
            assert got, first
            first += got
        assert first.startswith(b"HTTP/1.1 200")
        piece = b"x" * 65536
        sent, closed = 0, False
        while sent < 4 * PIPELINE_BYTES:  # bounded: the server must close well before this
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sent += len(piece)
        if not closed:
            s.settimeout(10)
            try:
                closed = s.recv(65536) == b"" or s.recv(65536) == b""
            except ConnectionResetError:
                closed = True
        assert closed, f"namerd kept a watch open after {sent} bytes sent on it"
    finally:
        s.close()
    assert api(namerd.addr("admin"), "GET", "/admin/ping")[2] == b"pong"
    line = "a client sent more than"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(line in x for x in namerd.stderr_lines):
        time.sleep(0.05)
    assert any(line in x for x in namerd.stderr_lines)
