"""Signed overrides at an edge, black-box: the real CLI with ``signedOverrides``, a key file on disk,
echo origins; both twins, and the lane on and off (a valid signature is served by the lane until it
expires or its key goes; anything else goes through the trio path, where it is counted).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterator, Optional, Tuple

import pytest

from proxyproc import ProxyProcess, admin_json
from upstream import Origin

from pyproxy.http.signature import sign

DTAB = "/srv => /#/io.l5d.fs; /svc => /srv; /svc/world => /srv/world-v1"
V2 = b"/svc/world => /srv/world-v2"
K1, K2 = os.urandom(32), os.urandom(32)
TWINS = [
    pytest.param(("native", "on"), marks=pytest.mark.native, id="lane"),
    pytest.param(("native", "off"), marks=pytest.mark.native, id="trio"),
    pytest.param(("pure", "off"), id="pure"),
]


def key_line(kid: str, key: bytes) -> str:
    return f"{kid} {base64.b64encode(key).decode()}\n"


class Env:
    def __init__(self, impl: str, lane: str, skew_ms: int = 0) -> None:
        self.lane = lane == "on"
        self.root = tempfile.mkdtemp(prefix="pyproxy-signed-")
        self.keys = os.path.join(self.root, "keys")
        self.write_keys("# the developers' keys\n" + key_line("dev-1", K1))
        self.v1, self.v2 = Origin(), Origin()
        disco = os.path.join(self.root, "disco")
        os.mkdir(disco)
        for name, origin in (("world-v1", self.v1), ("world-v2", self.v2)):
            with open(os.path.join(disco, name), "w") as f:
                f.write(f"127.0.0.1 {origin.port}\n")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {disco}}}]
routers:
- protocol: http
  label: edge
  dtab: {DTAB}
  dtabBaggage: {{}}
  servers:
  - ip: 127.0.0.1
    port: 0
    clearContext: true
    signedOverrides: {{keysFile: {self.keys}, clockSkewMs: {skew_ms}}}
- protocol: http
  label: strict
  dtab: {DTAB}
  servers:
  - ip: 127.0.0.1
    port: 0
    clearContext: true
    signedOverrides: {{keysFile: {self.keys}, clockSkewMs: {skew_ms}, onInvalid: refuse}}
"""
        self.proxy = ProxyProcess(config, impl, extra_env={"PYPROXY_LANE": lane})

    def write_keys(self, text: str) -> None:
        tmp = self.keys + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.keys)

    def metric(self, name: str) -> float:
        return admin_json(self.proxy, "/admin/metrics.json").get(name, 0)

    def get(self, router: str, headers: Dict[str, str], conn: Optional[http.client.HTTPConnection] = None) -> Tuple[int, Dict[str, str], bytes]:
        c = conn or http.client.HTTPConnection(*self.proxy.addr(router), timeout=10)
        try:
            c.request("GET", "/echo", headers={"Host": "world", **headers})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            if conn is None:
                c.close()

    def close(self) -> None:
        self.proxy.stop()
        self.v1.close()
        self.v2.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(*request.param)
    yield e
    e.close()


@pytest.fixture(params=TWINS)
def fresh(request: pytest.FixtureRequest) -> Iterator[Env]:
    """A proxy of its own (the test changes its key file or waits for an expiry)."""
    e = Env(*request.param)
    yield e
    e.close()


def signed(kid: str = "dev-1", key: bytes = K1, ttl: float = 3600, dtab: bytes = V2) -> Dict[str, str]:
    return {"l5d-dtab": dtab.decode(), "l5d-dtab-sig": sign(key, kid.encode(), int(time.time() + ttl), dtab).decode()}


def forwarded(body: bytes) -> Dict[str, str]:
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


def test_a_valid_signature_opens_the_edge_and_the_override_travels_on(env: Env) -> None:
    headers = signed()
    before, hits = env.metric("lane/requests"), env.v2.hits
    c = http.client.HTTPConnection(*env.proxy.addr("edge"), timeout=10)
    try:
        answers = [env.get("edge", headers, c) for _ in range(5)]
    finally:
        c.close()
    assert all(status == 200 for status, _, _ in answers) and env.v2.hits - hits == 5
    seen = forwarded(answers[-1][2])
    assert seen["l5d-ctx-dtab"] == "/svc/world=>/srv/world-v2"
    assert seen["baggage"] == "l5d-dtab=/svc/world=>/srv/world-v2"
    assert "l5d-dtab" not in seen and "l5d-dtab-sig" not in seen
    if env.lane:
        assert env.metric("lane/requests") - before >= 4


@pytest.mark.parametrize(
    "case, verdict",
    [
        ("unsigned", "unsigned"),
        ("tampered", "tampered"),
        ("unknown_key", "unknown_key"),
        ("expired", "expired"),
        ("not_base64", "malformed"),
        ("two_signatures", "malformed"),
    ],
)
def test_other_overrides_are_stripped_or_refused_and_counted(env: Env, case: str, verdict: str) -> None:
    good = signed()
    headers = {
        "unsigned": {"l5d-dtab": V2.decode()},
        "tampered": {**good, "l5d-dtab": "/svc/world => /srv/elsewhere"},
        "unknown_key": signed("dev-9", K1),
        "expired": signed(ttl=-60),
        "not_base64": {**good, "l5d-dtab-sig": good["l5d-dtab-sig"].split("sig=")[0] + "sig=!!!not-base64!!!"},
    }.get(case)
    for router, counted in (("edge", 1), ("strict", 1)):
        before = env.metric(f"rt/{router}/overrides/signature/{verdict}")
        hits = env.v1.hits
        for _ in range(2):
            if case == "two_signatures":
                raw = (f"GET /echo HTTP/1.1\r\nHost: world\r\nl5d-dtab: {good['l5d-dtab']}\r\nl5d-dtab-sig: {good['l5d-dtab-sig']}\r\n"
                       f"l5d-dtab-sig: {good['l5d-dtab-sig']}\r\nConnection: close\r\n\r\n").encode()
                from proxyproc import raw as send, split_response

                status, resp_headers, body = split_response(send(env.proxy.addr(router), raw))
            else:
                status, resp_headers, body = env.get(router, headers)  # type: ignore[arg-type]
            if router == "edge":
                assert status == 200 and "l5d-ctx-dtab" not in forwarded(body) and "baggage" not in forwarded(body)
            else:
                assert status == 403 and body.startswith(b"l5d-dtab refused: ") and "l5d-err" not in resp_headers
        assert env.metric(f"rt/{router}/overrides/signature/{verdict}") - before == 2 * counted
        assert env.v1.hits - hits == (2 if router == "edge" else 0)


def test_a_rotated_key_file_applies_and_a_broken_or_missing_one_keeps_the_last_keys(fresh: Env) -> None:
    env = fresh
    old = signed("dev-1", K1)
    assert [env.get("edge", old)[0] for _ in range(3)] == [200, 200, 200] and env.v2.hits == 3
    # rotation: both keys valid for a while, then only the new one
    env.write_keys(key_line("dev-1", K1) + key_line("dev-2", K2))
    new = signed("dev-2", K2)
    deadline = time.monotonic() + 10
    while env.get("edge", new)[0] == 200 and env.v2.hits < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert env.v2.hits >= 4, "the new key was never read"
    env.write_keys(key_line("dev-2", K2))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        before = env.v2.hits
        env.get("edge", old)
        if env.v2.hits == before:
            break
        time.sleep(0.2)
    assert env.v2.hits == before, "the old key stayed valid"
    assert env.metric("rt/edge/overrides/signature/unknown_key") >= 1
    hits = env.v2.hits
    assert env.get("edge", new)[0] == 200 and env.v2.hits == hits + 1
    # a file that no longer reads, then no file: the last keys stay
    env.write_keys("dev-3 not-base64!\n")
    time.sleep(2.5)
    os.remove(env.keys)
    time.sleep(2.5)
    assert env.get("edge", new)[0] == 200 and env.v2.hits == hits + 2
    log = "\n".join(env.proxy.stderr_lines)
    assert "line 1: the key is not base64; the last keys read stay in use" in log
    assert "is gone; the last keys read stay in use" in log


def test_a_signature_that_expires_while_the_lane_holds_its_route_is_refused_from_then_on(fresh: Env) -> None:
    env = fresh
    exp = int(time.time()) + 3
    headers = {"l5d-dtab": V2.decode(), "l5d-dtab-sig": sign(K1, b"dev-1", exp, V2).decode()}
    assert [env.get("edge", headers)[0] for _ in range(3)] == [200] * 3 and env.v2.hits == 3
    while time.time() <= exp + 0.2:
        time.sleep(0.1)
    hits = (env.v1.hits, env.v2.hits)
    assert env.get("edge", headers)[0] == 200
    assert (env.v1.hits, env.v2.hits) == (hits[0] + 1, hits[1])
    assert env.metric("rt/edge/overrides/signature/expired") == 1
    assert env.get("strict", headers)[:1] == (403,)


def test_a_key_file_that_does_not_read_at_start_is_exit_2_naming_the_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys"
    keys.write_text("dev-1 short\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "admin: {ip: 127.0.0.1, port: 0}\nrouters:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1\n  servers:\n"
        f"  - {{ip: 127.0.0.1, port: 0, clearContext: true, signedOverrides: {{keysFile: {keys}}}}}\n"
    )
    r = subprocess.run([sys.executable, "-m", "pyproxy", "run", str(config)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"pyproxy: $.routers[0].servers[0].signedOverrides.keysFile: {keys}: line 1: the key is not base64"
    config.write_text(
        "routers:\n- protocol: http\n  servers:\n  - {port: 0, signedOverrides: {keysFile: /x}}\n"
    )
    r = subprocess.run([sys.executable, "-m", "pyproxy", "run", "--validate", str(config)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "$.routers[0].servers[0].signedOverrides: needs clearContext: true" in r.stderr
