"""Black-box tests of the proxy: the real CLI, real origins on loopback, one run per kernel twin.

Routing through the dtab, per-request overrides and their precedence and propagation, the edge scrub,
transparency, Linkerd's error responses, strict framing at the edge, failing origins, graceful stop.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Tuple

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess, dead_port, raw, split_response, status_of
from upstream import Origin

DTAB = "/srv => /#/io.l5d.fs; /host => /srv; /svc => /host; /host/world => /srv/world-v1;"


class Env:
    def __init__(self, impl: str) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-disco-")
        self.v1, self.v2, self.echo = Origin(), Origin(), Origin()
        self.dead_port = dead_port()  # nothing listens there
        for name, port in (("world-v1", self.v1.port), ("world-v2", self.v2.port), ("echo", self.echo.port), ("dead", self.dead_port)):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(f"127.0.0.1 {port}\n")
        config = f"""
admin:
  ip: 127.0.0.1
  port: 0
  shutdownGraceMs: 5000
namers:
- kind: io.l5d.fs
  rootDir: {self.root}
routers:
- protocol: http
  label: internal
  dtab: "{DTAB}"
  servers:
  - ip: 127.0.0.1
    port: 0
- protocol: http
  label: edge
  dtab: "{DTAB}"
  servers:
  - ip: 127.0.0.1
    port: 0
    clearContext: true
"""
        self.proxy = ProxyProcess(config, impl)
        self.internal = self.proxy.addr("internal")
        self.edge = self.proxy.addr("edge")

    def close(self) -> None:
        self.proxy.stop()
        for o in (self.v1, self.v2, self.echo):
            o.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    yield e
    e.close()


def get(addr: Tuple[str, int], path: str = "/", headers: Dict[str, str] = None, method: str = "GET", body: bytes = None) -> Tuple[int, Dict[str, str], bytes]:  # type: ignore[assignment]
    c = http.client.HTTPConnection(*addr, timeout=20)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def echo(env: Env, headers: Dict[str, str], addr: Tuple[str, int] = None, **kw: object) -> dict:  # type: ignore[assignment]
    status, _, body = get(addr or env.internal, "/echo", dict({"Host": "echo"}, **headers), **kw)  # type: ignore[arg-type]
    assert status == 200, body
    return json.loads(body)


def hdrs(seen: dict) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for k, v in seen["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


# === routing and overrides ===


def test_host_routes_through_the_dtab(env: Env) -> None:
    before = env.v1.hits
    status, _, body = get(env.internal, "/text/hi", {"Host": "world"})
    assert (status, body) == (200, b"hi")
    assert env.v1.hits == before + 1


def test_l5d_dtab_overrides_the_router_dtab(env: Env) -> None:
    before = env.v2.hits
    status, _, _ = get(env.internal, "/text/x", {"Host": "world", "l5d-dtab": "/host/world => /srv/world-v2;"})
    assert status == 200 and env.v2.hits == before + 1


def test_l5d_dtab_wins_over_l5d_ctx_dtab(env: Env) -> None:
    b1, b2 = env.v1.hits, env.v2.hits
    status, _, _ = get(env.internal, "/text/x", {
        "Host": "world", "l5d-ctx-dtab": "/host/world => /srv/world-v2", "l5d-dtab": "/host/world => /srv/world-v1"})
    assert status == 200 and (env.v1.hits, env.v2.hits) == (b1 + 1, b2)
    status, _, _ = get(env.internal, "/text/x", {"Host": "world", "l5d-ctx-dtab": "/host/world => /srv/world-v2"})
    assert status == 200 and env.v2.hits == b2 + 1


def test_overrides_travel_on_as_l5d_ctx_dtab(env: Env) -> None:
    seen = hdrs(echo(env, {"l5d-ctx-dtab": "/a => /b", "l5d-dtab": "/host/echo => /srv/echo;"}))
    assert seen["l5d-ctx-dtab"] == ["/a=>/b;/host/echo=>/srv/echo"]
    assert "l5d-dtab" not in seen
    assert seen["l5d-dst-service"] == ["/svc/echo"]
    assert seen["l5d-dst-client"] == ["/#/io.l5d.fs/echo"]
    assert len(seen["l5d-reqid"][0]) == 16 and seen["l5d-ctx-trace"]
    assert seen["via"][0].startswith("1.1 pyproxy")


def test_trace_context_continues_across_hops(env: Env) -> None:
    first = hdrs(echo(env, {}))
    second = hdrs(echo(env, {"l5d-ctx-trace": first["l5d-ctx-trace"][0]}))
    assert second["l5d-reqid"] == first["l5d-reqid"]  # same call graph
    assert second["l5d-ctx-trace"] != first["l5d-ctx-trace"]  # a new span


def test_no_overrides_means_no_ctx_dtab(env: Env) -> None:
    assert "l5d-ctx-dtab" not in hdrs(echo(env, {}))


def test_bad_override_is_400_with_the_parse_message(env: Env) -> None:
    status, headers, body = get(env.internal, "/", {"Host": "world", "l5d-dtab": "i am not a dtab"})
    assert status == 400
    assert body == b"'/' expected but 'i' found at '[i] am not a dtab'"
    assert headers["l5d-err"] == "%27%2F%27+expected+but+%27i%27+found+at+%27%5Bi%5D+am+not+a+dtab%27"


def test_unroutable_name_is_502_unable_to_route(env: Env) -> None:
    status, headers, body = get(env.internal, "/", {"Host": "nowhere", "l5d-dtab": "/x => /y"})
    assert status == 502
    assert body.startswith(b"Unable to route request!\n\nservice name: /svc/nowhere\n")
    assert b"base dtab:\n  /srv => /#/io.l5d.fs\n" in body
    assert body.endswith(b"override dtab:\n  /x => /y")
    assert headers["l5d-err"].startswith("Unable+to+route+request%21")


def test_missing_host_is_rejected(env: Env) -> None:
    r = raw(env.internal, b"GET / HTTP/1.1\r\n\r\n")
    assert status_of(r) == 400


def test_http10_without_host_is_unidentified_400(env: Env) -> None:
    r = raw(env.internal, b"GET / HTTP/1.0\r\n\r\n")
    status, headers, _ = split_response(r)
    assert status == 400 and "Host+header+is+absent" in headers["l5d-err"]


def test_dead_origin_is_502(env: Env) -> None:
    status, headers, body = get(env.internal, "/", {"Host": "dead"})
    assert status == 502 and "l5d-err" in headers


def test_origin_closing_without_answer_is_502(env: Env) -> None:
    status, _, _ = get(env.internal, "/close", {"Host": "world"})
    assert status == 502


def test_proxy_loop_is_stopped(env: Env) -> None:
    via = "1.1 pyproxy-internal"
    status, headers, _ = get(env.internal, "/", {"Host": "world", "Via": via})
    assert status == 400 and "loop" in headers["l5d-err"]


# === the edge ===


def test_edge_ignores_overrides_in_any_spelling(env: Env) -> None:
    before = env.v1.hits
    raw_req = (
        b"GET /text/x HTTP/1.1\r\nHost: world\r\nl5d-dtab: /host/world => /srv/world-v2\r\n"
        b"L5D-CTX-DTAB: /host/world => /srv/world-v2\r\nConnection: close\r\n\r\n"
    )
    r = raw(env.edge, raw_req)
    assert status_of(r) == 200 and env.v1.hits == before + 1


def test_edge_removes_every_l5d_request_header(env: Env) -> None:
    seen = hdrs(echo(env, {
        "l5d-dtab": "/x => /y", "L5D-Ctx-Deadline": "1 2", "l5d-sample": "1", "l5d_dtab": "/x=>/y",
        "l5d-dst-service": "/spoofed", "l5d-name": "x", "Connection": "l5d-foo, x-hop", "x-hop": "1", "x-keep": "2",
    }, addr=env.edge))
    client_set = {k for k in seen if k.startswith(("l5d-", "l5d_"))}
    assert client_set <= {"l5d-dst-service", "l5d-dst-client", "l5d-ctx-trace", "l5d-reqid"}
    assert seen["l5d-dst-service"] == ["/svc/echo"]  # the proxy's value, not the spoofed one
    assert "x-hop" not in seen and seen["x-keep"] == ["2"]


def test_edge_removes_l5d_response_headers_and_blanks_error_bodies(env: Env) -> None:
    status, headers, body = get(env.edge, "/header/l5d-secret/42", {"Host": "world"})
    assert status == 200 and "l5d-secret" not in headers and body == b"with header"
    status, headers, body = get(env.edge, "/", {"Host": "nowhere"})
    assert status == 502 and body == b"" and not any(k.startswith("l5d-") for k in headers)
    status, headers, body = get(env.edge, "/header/l5d-err/internal", {"Host": "world"})
    assert status == 200 and body == b"" and "l5d-err" not in headers


# === transparency ===


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_methods_and_bodies_pass_unchanged(env: Env, method: str) -> None:
    body = os.urandom(3000) if method in ("POST", "PUT", "PATCH") else None
    seen = echo(env, {"X-Mixed-Case": "Value", "Accept": "*/*"}, method=method, body=body)
    assert seen["method"] == method
    assert seen["target"] == "/echo"
    if body:
        import hashlib

        assert seen["body_len"] == len(body) and seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    names = [k for k, _ in seen["headers"]]
    assert "X-Mixed-Case" in names  # case preserved


def test_query_strings_and_targets_pass_unchanged(env: Env) -> None:
    status, _, body = get(env.internal, "/echo?a=1&b=%20x", {"Host": "echo"})
    assert json.loads(body)["target"] == "/echo?a=1&b=%20x"


@pytest.mark.parametrize("code", [201, 204, 304, 404, 418, 500, 503])
def test_status_codes_pass_unchanged(env: Env, code: int) -> None:
    status, headers, _ = get(env.internal, f"/status/{code}", {"Host": "world"})
    assert status == code
    assert "l5d-err" not in headers  # the application's own response


def test_chunked_request_body_is_rechunked(env: Env) -> None:
    req = (
        b"POST /echo HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    status, _, body = split_response(raw(env.internal, req))
    assert status == 200
    seen = json.loads(body)
    assert seen["body_head"] == "hello world" and seen["body_len"] == 11


def test_chunked_response_is_relayed(env: Env) -> None:
    status, headers, body = get(env.internal, "/chunked/5000", {"Host": "world"})
    assert status == 200 and body == b"y" * 5000


def test_large_response_streams(env: Env) -> None:
    status, _, body = get(env.internal, "/size/3000000", {"Host": "world"})
    assert status == 200 and len(body) == 3000000


def test_proxy_form_requests_route_by_their_authority(env: Env) -> None:
    # what `http_proxy=<proxy> curl http://echo/echo?x=1` sends: the authority wins over Host
    r = raw(env.internal, b"GET http://echo/echo?x=1 HTTP/1.1\r\nHost: world\r\nConnection: close\r\n\r\n")
    status, _, body = split_response(r)
    seen = json.loads(body)
    assert status == 200 and seen["target"] == "/echo?x=1"
    assert [v for k, v in seen["headers"] if k.lower() == "host"] == ["echo"]


def test_head_response_has_no_body(env: Env) -> None:
    r = raw(env.internal, b"HEAD /size/100 HTTP/1.1\r\nHost: world\r\nConnection: close\r\n\r\n")
    head, _, rest = r.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0] and b"Content-Length: 100" in head and rest == b""


def test_pipelined_requests_are_answered_in_order(env: Env) -> None:
    r = raw(env.internal, b"GET /text/one HTTP/1.1\r\nHost: world\r\n\r\nGET /text/two HTTP/1.1\r\nHost: world\r\nConnection: close\r\n\r\n")
    assert r.count(b"HTTP/1.1 200") == 2 and r.index(b"one") < r.index(b"two")


def test_keep_alive_reuses_the_client_connection(env: Env) -> None:
    c = http.client.HTTPConnection(*env.internal, timeout=10)
    try:
        for word in ("a", "b", "c"):
            c.request("GET", f"/text/{word}", headers={"Host": "world"})
            r = c.getresponse()
            assert r.read() == word.encode()
    finally:
        c.close()


def test_http10_client_gets_a_closed_connection(env: Env) -> None:
    r = raw(env.internal, b"GET /chunked/10 HTTP/1.0\r\nHost: world\r\n\r\n")
    head, _, body = r.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower() and body == b"y" * 10


def test_expect_100_continue(env: Env) -> None:
    s = socket.create_connection(env.internal, timeout=10)
    try:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: echo\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 100")
        s.sendall(b"hello")
        rest = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        assert b"HTTP/1.1 200" in rest and b'"body_head": "hello"' in rest
    finally:
        s.close()


# === strict framing at the edge ===

BAD = [
    ("cl-and-te", b"POST /echo HTTP/1.1\r\nHost: echo\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("bad-cl", b"POST /echo HTTP/1.1\r\nHost: echo\r\nContent-Length: +3\r\n\r\nabc", 400),
    ("two-cl", b"POST /echo HTTP/1.1\r\nHost: echo\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("te-obfuscated", b"POST /echo HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    ("te-list", b"POST /echo HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501),
    ("bare-lf", b"GET /echo HTTP/1.1\nHost: echo\n\n", 400),
    ("bare-cr", b"GET /echo HTTP/1.1\r\nHost: echo\rX: y\r\n\r\n", 400),
    ("obs-fold", b"GET /echo HTTP/1.1\r\nHost: echo\r\nX: a\r\n b\r\n\r\n", 400),
    ("space-colon", b"GET /echo HTTP/1.1\r\nHost : echo\r\n\r\n", 400),
    ("nul", b"GET /echo HTTP/1.1\r\nHost: echo\r\nX: a\x00b\r\n\r\n", 400),
    ("dup-host", b"GET /echo HTTP/1.1\r\nHost: echo\r\nHost: world\r\n\r\n", 400),
    ("bad-version", b"GET /echo HTTP/1.2\r\nHost: echo\r\n\r\n", 505),
    ("fragment", b"GET /echo#x HTTP/1.1\r\nHost: echo\r\n\r\n", 400),
    ("long-line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: echo\r\n\r\n", 414),
    ("big-headers", b"GET /echo HTTP/1.1\r\nHost: echo\r\n" + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    ("bad-chunk", b"POST /echo HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
]


@pytest.mark.parametrize("name,data,status", BAD, ids=[b[0] for b in BAD])
def test_edge_rejects_ambiguous_framing_and_closes(env: Env, name: str, data: bytes, status: int) -> None:
    before = env.echo.hits
    r = raw(env.edge, data, timeout=5)
    assert status_of(r) == status, r[:200]
    head = r.split(b"\r\n\r\n", 1)[0].lower()
    assert b"connection: close" in head
    if name != "bad-chunk":  # the bad chunk is found while streaming, after the head was forwarded
        assert env.echo.hits == before, "an invalid request must never reach the origin"


def test_no_traceback_reaches_a_client_on_garbage(env: Env) -> None:
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"\xff" * 100 + b"\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"):
        r = raw(env.edge, junk, timeout=5)
        assert r.startswith(b"HTTP/1.1 4") and b"Traceback" not in r


# === graceful stop (own process: it ends the proxy) ===


@pytest.mark.parametrize("impl", TWINS)
def test_sigterm_lets_requests_in_flight_finish(impl: str) -> None:
    e = Env(impl)
    try:
        result: Dict[str, object] = {}

        def slow() -> None:
            result["r"] = get(e.internal, "/slow/1500", {"Host": "world"})

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)
        os.killpg(e.proxy.proc.pid, signal.SIGTERM)
        t.join(20)
        assert result["r"][0] == 200  # type: ignore[index]
        assert e.proxy.proc.wait(15) == 0
        with pytest.raises(OSError):
            socket.create_connection(e.internal, timeout=2).close()
    finally:
        e.close()
