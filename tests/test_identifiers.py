"""Black-box: every HTTP identifier through the real proxy, per twin (the conformance vectors check
them on text heads; these check them on the requests the proxy actually parses, as bytes)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Iterator

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess, raw, split_response
from upstream import Origin


@pytest.fixture(scope="module", params=TWINS)
def proxy(request: pytest.FixtureRequest) -> Iterator[ProxyProcess]:
    origin = Origin()
    root = tempfile.mkdtemp(prefix="pyproxy-disco-")
    for name in ("echo", "web", "api", "fixed"):
        with open(os.path.join(root, name), "w") as f:
            f.write(f"127.0.0.1 {origin.port}\n")
    router = "- protocol: http\n  label: {label}\n  dtab: {dtab}\n  identifier: {ident}\n  servers: [{{ip: 127.0.0.1, port: 0}}]\n"
    routers = [
        ("path", "/svc => /#/io.l5d.fs", "{kind: io.l5d.path, segments: 1, consume: true}"),
        ("mah", "/svc/1.1/GET => /#/io.l5d.fs", "{kind: io.l5d.methodAndHost}"),
        ("mahuri", "/svc/1.1/GET/web => /#/io.l5d.fs/echo", "{kind: io.l5d.methodAndHost, httpUriInDst: true}"),
        ("header", "/svc => /#/io.l5d.fs", "{kind: io.l5d.header, header: x-dst}"),
        ("static", "/svc/fixed => /#/io.l5d.fs/echo", "{kind: io.l5d.static, path: /fixed}"),
    ]
    config = f"admin: {{ip: 127.0.0.1, port: 0}}\nnamers:\n- {{kind: io.l5d.fs, rootDir: {root}}}\nrouters:\n" + "".join(
        router.format(label=label, dtab=dtab, ident=ident) for label, dtab, ident in routers)
    p = ProxyProcess(config, request.param)
    yield p
    p.stop()
    origin.close()
    shutil.rmtree(root, ignore_errors=True)


def _get(proxy: ProxyProcess, router: str, target: str, headers: str = "Host: web\r\n") -> dict:
    status, fields, body = split_response(raw(proxy.addr(router), f"GET {target} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n".encode()))
    assert status == 200, (router, status, body)
    return json.loads(body)


def test_path_identifier_names_by_segments_and_consumes_them(proxy: ProxyProcess) -> None:
    seen = _get(proxy, "path", "/web/echo/of?q=1")
    assert seen["target"] == "/echo/of?q=1"
    assert dict(map(tuple, seen["headers"]))["l5d-dst-service"] == "/svc/web"


def test_method_and_host_identifiers(proxy: ProxyProcess) -> None:
    assert dict(map(tuple, _get(proxy, "mah", "/echo", "Host: echo\r\n")["headers"]))["l5d-dst-service"] == "/svc/1.1/GET/echo"
    seen = _get(proxy, "mahuri", "/echo/y", "Host: Web\r\n")
    assert dict(map(tuple, seen["headers"]))["l5d-dst-service"] == "/svc/1.1/GET/web/echo/y"


def test_header_and_static_identifiers(proxy: ProxyProcess) -> None:
    assert dict(map(tuple, _get(proxy, "header", "/echo", "Host: h\r\nx-dst: /echo\r\n")["headers"]))["l5d-dst-service"] == "/svc/echo"
    assert dict(map(tuple, _get(proxy, "static", "/echo")["headers"]))["l5d-dst-service"] == "/svc/fixed"
