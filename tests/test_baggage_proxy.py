"""Overrides carried in baggage, black-box: the real CLI, echo origins, both twins, the lane on and off.

A router with ``dtabBaggage`` reads the override from a baggage member when no ``l5d-dtab`` /
``l5d-ctx-dtab`` came, and writes the effective override on in every configured carrier and in
``l5d-ctx-dtab``; other members pass untouched; bad members are 400 (counted); an edge removes the
member from every carrier. Each case runs on the native kernels with the lane on (and asserts the
lane served the repeats), with it off, and on the pure kernels; the forwarded heads must be the
same in all three.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from proxyproc import ProxyProcess, admin_json
from upstream import Origin

DTAB = "/srv => /#/io.l5d.fs; /svc => /srv; /svc/world => /srv/world-v1"
V2 = "/svc/world=>/srv/world-v2"
CARRIERS = ("l5d-ctx-dtab", "uberctx-l5d-dtab", "ot-baggage-l5d-dtab", "baggage")


class Env:
    def __init__(self, impl: str, lane: str) -> None:
        self.lane = lane == "on"
        self.root = tempfile.mkdtemp(prefix="pyproxy-baggage-")
        self.v1, self.v2 = Origin(), Origin()
        for name, origin in (("world-v1", self.v1), ("world-v2", self.v2)):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(f"127.0.0.1 {origin.port}\n")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {self.root}}}]
routers:
- protocol: http
  label: inner
  dtab: {DTAB}
  maxHeadersKB: 32
  dtabBaggage: {{carriers: [baggage, uberctx, ot-baggage]}}
  servers: [{{ip: 127.0.0.1, port: 0}}]
- protocol: http
  label: jaeger
  dtab: {DTAB}
  dtabBaggage: {{key: l5ddtab, carriers: [uberctx, baggage]}}
  servers: [{{ip: 127.0.0.1, port: 0}}]
- protocol: http
  label: edge
  dtab: {DTAB}
  dtabBaggage: {{}}
  servers: [{{ip: 127.0.0.1, port: 0, clearContext: true}}]
- protocol: http
  label: plain
  dtab: {DTAB}
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proxy = ProxyProcess(config, impl, extra_env={"PYPROXY_LANE": lane})

    def metric(self, name: str) -> float:
        return admin_json(self.proxy, "/admin/metrics.json").get(name, 0)

    def close(self) -> None:
        self.proxy.stop()
        self.v1.close()
        self.v2.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(
    scope="module",
    params=[pytest.param(("native", "on"), marks=pytest.mark.native, id="lane"), pytest.param(("native", "off"), marks=pytest.mark.native, id="trio"), pytest.param(("pure", "off"), id="pure")],
)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(*request.param)
    yield e
    e.close()


def get(env: Env, router: str, headers: Dict[str, str], conn: Optional[http.client.HTTPConnection] = None) -> Tuple[int, bytes]:
    c = conn or http.client.HTTPConnection(*env.proxy.addr(router), timeout=10)
    try:
        c.request("GET", "/echo", headers={"Host": "world", **headers})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        if conn is None:
            c.close()


def carried(body: bytes) -> List[Tuple[str, str]]:
    """The forwarded override and carrier fields, in order."""
    return [(k.lower(), v) for k, v in json.loads(body)["headers"] if k.lower() in CARRIERS]


def test_a_baggage_member_routes_the_request_and_travels_in_every_carrier(env: Env) -> None:
    before = env.metric("lane/requests")
    hits = env.v2.hits
    c = http.client.HTTPConnection(*env.proxy.addr("inner"), timeout=10)
    try:
        answers = [get(env, "inner", {"baggage": f"user=alice, l5d-dtab={V2};prop, session=x%20y"}, c) for _ in range(6)]
    finally:
        c.close()
    assert all(status == 200 for status, _ in answers)
    assert env.v2.hits - hits == 6
    assert {tuple(carried(body)) for _, body in answers} == {(
        ("l5d-ctx-dtab", V2), ("uberctx-l5d-dtab", V2), ("ot-baggage-l5d-dtab", V2),
        ("baggage", f"l5d-dtab={V2},user=alice,session=x%20y"),
    )}
    if env.lane:
        assert env.metric("lane/requests") - before >= 5  # all but the first, which installs the route


def test_precedence_is_l5d_dtab_then_l5d_ctx_dtab_then_baggage_then_the_router(env: Env) -> None:
    bag = {"baggage": "l5d-dtab=/svc/world=>/srv/nowhere, a=1"}
    status, body = get(env, "inner", {**bag, "l5d-dtab": V2})
    assert status == 200 and carried(body)[-1] == ("baggage", f"l5d-dtab={V2},a=1")
    status, body = get(env, "inner", {**bag, "l5d-ctx-dtab": V2})
    assert status == 200 and ("l5d-ctx-dtab", V2) in carried(body)
    hits = env.v1.hits
    status, body = get(env, "inner", {"baggage": "a=1, b=2"})
    assert status == 200 and env.v1.hits == hits + 1 and carried(body) == [("baggage", "a=1, b=2")]


def test_carriers_are_read_in_the_configured_order(env: Env) -> None:
    hits = env.v2.hits
    status, body = get(env, "jaeger", {"uberctx-l5ddtab": "%2Fsvc%2Fworld%3D%3E%2Fsrv%2Fworld-v2", "baggage": "l5ddtab=/svc/world=>/srv/x"})
    assert status == 200 and env.v2.hits == hits + 1
    assert carried(body) == [("l5d-ctx-dtab", V2), ("baggage", f"l5ddtab={V2}")]
    assert [(k.lower(), v) for k, v in json.loads(body)["headers"] if k.lower().startswith("uberctx")] == [("uberctx-l5ddtab", V2)]


def test_members_that_do_not_fit_are_dropped_never_the_header(env: Env) -> None:
    before = env.metric("rt/inner/overrides/baggage/dropped")
    many = ",".join(f"m{i}={i}" for i in range(70))
    status, body = get(env, "inner", {"baggage": many, "l5d-dtab": V2})
    assert status == 200
    members = carried(body)[-1][1].split(",")
    assert len(members) == 64 and members[:2] == [f"l5d-dtab={V2}", "m0=0"] and members[-1] == "m62=62"
    big = "x" * 6000
    status, body = get(env, "inner", {"baggage": f"a={big}, b={big}, c=1", "l5d-dtab": V2})
    assert status == 200 and carried(body)[-1] == ("baggage", f"l5d-dtab={V2},a={big},c=1")
    assert env.metric("rt/inner/overrides/baggage/dropped") - before == 7 + 1
    # without an override in play, an oversize header is not ours to cut
    status, body = get(env, "inner", {"baggage": f"a={big}, b={big}"})
    assert status == 200 and carried(body) == [("baggage", f"a={big}, b={big}")]


@pytest.mark.parametrize(
    "headers, message",
    [
        ({"baggage": "l5d-dtab=%2Fsvc%zz"}, "baggage member l5d-dtab: bad percent-encoding"),
        ({"baggage": "a=1, l5d-dtab;p=2"}, "baggage member l5d-dtab: missing '='"),
        ({"baggage": f"l5d-dtab={V2}, l5d-dtab=/svc/world=>/srv/x"}, "baggage member l5d-dtab: duplicated with different values"),
        ({"uberctx-l5d-dtab": "%"}, "uberctx member l5d-dtab: bad percent-encoding"),
        ({"baggage": "l5d-dtab=/svc=>"}, "simple expected but end of input found"),
    ],
)
def test_a_member_that_does_not_read_is_400_and_the_connection_goes_on(env: Env, headers: Dict[str, str], message: str) -> None:
    before = env.metric("rt/inner/overrides/baggage/malformed")
    c = http.client.HTTPConnection(*env.proxy.addr("inner"), timeout=10)
    try:
        status, body = get(env, "inner", headers, c)
        assert status == 400 and message.encode() in body
        status, _ = get(env, "inner", {"baggage": "a=1"}, c)  # the same connection serves the next request
        assert status == 200
    finally:
        c.close()
    if "expected" not in message:  # a dtab that does not parse is Finagle's 400, as for l5d-dtab
        assert env.metric("rt/inner/overrides/baggage/malformed") - before == 1


def test_an_edge_removes_the_member_from_every_carrier_and_keeps_the_rest(env: Env) -> None:
    before = env.metric("rt/edge/overrides/baggage/scrubbed")
    hits = env.v1.hits
    for _ in range(3):
        status, body = get(env, "edge", {
            "baggage": f"a=1, l5d-dtab={V2}", "uberctx-l5d-dtab": V2, "ot-baggage-l5d-dtab": V2, "l5d-dtab": V2, "uberctx-a": "1",
        })
        assert status == 200
        assert carried(body) == [("baggage", "a=1")]
        assert ["uberctx-a", "1"] in [[k.lower(), v] for k, v in json.loads(body)["headers"]]
    assert env.v1.hits == hits + 3
    assert env.metric("rt/edge/overrides/baggage/scrubbed") - before == 3


def test_a_router_without_dtab_baggage_leaves_baggage_alone(env: Env) -> None:
    hits = env.v1.hits
    status, body = get(env, "plain", {"baggage": f"l5d-dtab={V2}", "X-After": "1"})
    assert status == 200 and env.v1.hits == hits + 1
    names = [k.lower() for k, _ in json.loads(body)["headers"]]
    assert names.index("baggage") < names.index("x-after") and carried(body) == [("baggage", f"l5d-dtab={V2}")]


def test_a_baggage_field_past_the_routers_head_limit_is_431_and_the_proxy_goes_on(env: Env) -> None:
    from proxyproc import raw, status_of

    huge = "a=" + "x" * 40000  # inner's maxHeadersKB is 32
    answer = raw(env.proxy.addr("inner"), f"GET /echo HTTP/1.1\r\nHost: world\r\nbaggage: {huge}\r\n\r\n".encode())
    assert status_of(answer) == 431
    assert get(env, "inner", {"baggage": f"l5d-dtab={V2}"})[0] == 200
