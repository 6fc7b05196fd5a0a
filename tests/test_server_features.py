"""Black-box tests of the optional server and router features Linkerd 1.x configs use:
``timestampHeader``, ``addForwardedHeader`` (RFC 7239 ``Forwarded``, every labeler kind) and
``httpAccessLog`` (the line format, and rolling by size through the handler)."""

from __future__ import annotations

import glob
import http.client
import json
import os
import re
import shutil
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess, admin_json, raw, split_response
from pyproxy.datapath.accesslog import AccessLog, handler_for
from pyproxy.errors import ConfigError
from upstream import Origin


class Env:
    def __init__(self, impl: str) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-disco-")
        self.origin = Origin()
        with open(os.path.join(self.root, "echo"), "w") as f:
            f.write(f"127.0.0.1 {self.origin.port}\n")
        self.log = os.path.join(self.root, "access.log")
        self.plain_log = os.path.join(self.root, "plain-access.log")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- {{kind: io.l5d.fs, rootDir: {self.root}}}
routers:
- protocol: http
  label: stamped
  dtab: /svc => /#/io.l5d.fs
  httpAccessLog: {self.log}
  servers:
  - ip: 127.0.0.1
    port: 0
    timestampHeader: X-Request-Start
    addForwardedHeader: {{}}
- protocol: http
  label: addressed
  dtab: /svc => /#/io.l5d.fs; /svc/echo:80 => /#/io.l5d.fs/echo
  servers:
  - ip: 127.0.0.1
    port: 0
    addForwardedHeader: {{by: {{kind: "ip:port"}}, for: {{kind: ip}}}}
- protocol: http
  label: labelled
  dtab: /svc => /#/io.l5d.fs
  servers:
  - ip: 127.0.0.1
    port: 0
    addForwardedHeader: {{by: {{kind: static, label: proxy-1}}, for: {{kind: connectionRandom}}}}
- protocol: http
  label: timed
  dtab: /svc => /#/io.l5d.fs
  servers: [{{ip: 127.0.0.1, port: 0, timestampHeader: X-Request-Start}}]
- protocol: http
  label: logged
  dtab: /svc => /#/io.l5d.fs
  httpAccessLog: {self.plain_log}
  servers: [{{ip: 127.0.0.1, port: 0}}]
- protocol: http
  label: "edge:west"
  dtab: /svc => /#/io.l5d.fs
  servers:
  - ip: 127.0.0.1
    port: 0
    addForwardedHeader: {{by: {{kind: router}}, for: {{kind: requestRandom}}}}
"""
        self.impl = impl
        self.proxy = ProxyProcess(config, impl)

    def close(self) -> None:
        self.proxy.stop()
        self.origin.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    yield e
    e.close()


def echo(addr: Tuple[str, int], headers: Optional[Dict[str, str]] = None, conn: Optional[http.client.HTTPConnection] = None) -> Dict[str, List[str]]:
    """The request headers the origin saw, by lower-case name."""
    c = conn or http.client.HTTPConnection(*addr, timeout=20)
    try:
        c.request("GET", "/echo", headers={"Host": "echo", **(headers or {})})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, body
    finally:
        if conn is None:
            c.close()
    seen: Dict[str, List[str]] = {}
    for k, v in json.loads(body)["headers"]:
        seen.setdefault(k.lower(), []).append(v)
    return seen


def test_timestamp_header_is_the_time_in_milliseconds(env: Env) -> None:
    before = int(time.time() * 1000)
    seen = echo(env.proxy.addr("stamped"))
    after = int(time.time() * 1000)
    (stamp,) = seen["x-request-start"]
    assert before <= int(stamp) <= after


def test_timestamp_header_on_requests_the_lane_forwards(env: Env) -> None:
    """A listener with only timestampHeader keeps the lane (native): it stamps the requests it
    forwards itself, at the same place in the head as the trio path."""
    before_served = admin_json(env.proxy, "/admin/metrics.json").get("lane/requests", 0)
    addr = env.proxy.addr("timed")
    c = http.client.HTTPConnection(*addr, timeout=20)
    try:
        for _ in range(4):
            before = int(time.time() * 1000)
            seen = echo(addr, conn=c)
            after = int(time.time() * 1000)
            (stamp,) = seen["x-request-start"]
            assert before <= int(stamp) <= after
    finally:
        c.close()
    served = admin_json(env.proxy, "/admin/metrics.json").get("lane/requests", 0) - before_served
    assert served >= (3 if env.impl == "native" else 0)


def test_timestamp_header_is_added_only_where_configured(env: Env) -> None:
    assert "x-request-start" not in echo(env.proxy.addr("addressed"))


OBF = r"_[A-Za-z0-9]{7}"


def test_forwarded_defaults_to_obfuscated_labels_drawn_per_request(env: Env) -> None:
    addr = env.proxy.addr("stamped")
    first, second = (echo(addr)["forwarded"] for _ in range(2))
    for (value,) in (first, second):
        assert re.fullmatch(rf"by={OBF};for={OBF};host=echo", value), value
    assert first != second  # requestRandom: a new draw per request


def test_forwarded_addresses_with_ip_and_ip_port(env: Env) -> None:
    addr = env.proxy.addr("addressed")
    (value,) = echo(addr)["forwarded"]
    assert value == f'by="127.0.0.1:{addr[1]}";for=127.0.0.1;host=echo'


def test_forwarded_static_label_and_connection_random(env: Env) -> None:
    addr = env.proxy.addr("labelled")
    c = http.client.HTTPConnection(*addr, timeout=20)
    try:
        a, b = (echo(addr, conn=c)["forwarded"][0] for _ in range(2))
    finally:
        c.close()
    other = echo(addr)["forwarded"][0]
    assert re.fullmatch(rf"by=_proxy-1;for={OBF};host=echo", a), a
    assert a == b  # one connection, one label
    assert other != a  # another connection, another label


def test_forwarded_router_label_is_obfuscated_form(env: Env) -> None:
    (value,) = echo(env.proxy.addr("edge:west"))["forwarded"]
    assert value.startswith("by=_edge-west;for=_"), value


def test_forwarded_is_appended_after_received_values_and_names_the_scheme(env: Env) -> None:
    addr = env.proxy.addr("addressed")
    seen = echo(addr, {"Forwarded": "for=192.0.2.60;proto=https"})
    assert seen["forwarded"][0] == "for=192.0.2.60;proto=https"
    assert seen["forwarded"][-1] == f'by="127.0.0.1:{addr[1]}";for=127.0.0.1;host=echo'
    # an absolute-form target: the scheme is named, the Host is the target's authority
    resp = raw(addr, b"GET http://echo:80/echo HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n")
    status, _, body = split_response(resp)
    assert status == 200
    values = [v for k, v in json.loads(body)["headers"] if k.lower() == "forwarded"]
    assert values == [f'by="127.0.0.1:{addr[1]}";for=127.0.0.1;host="echo:80";proto=http']


LINE = re.compile(
    r'(?P<host>\S+) (?P<remote>\S+) - - \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
    r'"(?P<method>\S+) (?P<target>\S+) HTTP/1\.(?P<minor>\d)" (?P<status>\d{3}) (?P<length>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"\Z'
)


def _log_lines(path: str, n: int) -> List[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(path) as f:
            lines = f.read().splitlines()
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{path}: fewer than {n} lines")


def test_access_log_has_one_combined_line_per_response(env: Env) -> None:
    addr = env.proxy.addr("stamped")
    with open(env.log) as f:
        start = len(f.read().splitlines())
    c = http.client.HTTPConnection(*addr, timeout=20)
    try:
        c.request("GET", "/size/12?x=1", headers={"Host": "echo", "User-Agent": "probe/1.0", "Referer": "http://r/"})
        r = c.getresponse()
        assert r.read() == b"x" * 12
        c.request("POST", "/nowhere", body=b"abc", headers={"Host": "unknown-service"})
        r = c.getresponse()
        body = r.read()
        assert r.status == 502
    finally:
        c.close()
    ok, failed = (LINE.match(line) for line in _log_lines(env.log, start + 2)[start : start + 2])
    assert ok and failed
    assert ok.group("host", "remote", "method", "target", "minor", "status", "length", "referer", "agent") == (
        "echo", "127.0.0.1", "GET", "/size/12?x=1", "1", "200", "12", "http://r/", "probe/1.0",
    )
    assert failed.group("host", "method", "status", "length", "referer") == ("unknown-service", "POST", "502", str(len(body)), "-")


def test_access_log_lines_of_requests_the_lane_serves(env: Env) -> None:
    """A router with nothing but an access log may use the lane (native): the requests it serves
    get the same lines as those of the trio path (the first of a route is always the trio path's)."""
    c = http.client.HTTPConnection(*env.proxy.addr("logged"), timeout=20)
    sent = [("GET", "/size/7", 7), ("GET", "/size/9?q=a%20b", 9), ("HEAD", "/size/5", 5), ("GET", "/chunked/3", 3), ("GET", "/status/204", 0)]
    try:
        for method, target, n in sent * 2:
            c.request(method, target, headers={"Host": "echo", "User-Agent": "probe/2", "Referer": "http://ref/x"})
            r = c.getresponse()
            assert len(r.read()) == (0 if method == "HEAD" else n)
    finally:
        c.close()
    lines = _log_lines(env.plain_log, 2 * len(sent))
    got = [LINE.match(line) for line in lines]
    assert all(got), lines
    fields = [m.group("host", "remote", "method", "target", "minor", "status", "length", "referer", "agent") for m in got]  # type: ignore[union-attr]
    want = []
    for method, target, n in sent:
        status = "204" if target == "/status/204" else "200"
        length = "-" if method == "HEAD" or target.startswith("/chunked") or status == "204" else str(n)
        want.append(("echo", "127.0.0.1", method, target, "1", status, length, "http://ref/x", "probe/2"))
    assert fields == want * 2
    served = admin_json(env.proxy, "/admin/metrics.json").get("lane/requests", 0)
    assert served >= (len(sent) if env.impl == "native" else 0)


def test_access_log_rolls_by_size_and_keeps_rotate_count_files(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "a.log")
    log = AccessLog(handler_for(path, "1.kilobytes", True, 2, "$.k"))
    try:
        for i in range(40):
            log.record(b"svc", "127.0.0.1", b"GET", b"/%d" % i, 1, 200, 5, None, b"agent")
    finally:
        log.close()
    rolled = sorted(glob.glob(path + ".*"))
    assert rolled == [path + ".1", path + ".2"]
    sizes = [os.path.getsize(p) for p in [path, *rolled]]
    assert all(0 < s <= 1024 for s in sizes), sizes
    with open(path) as f:
        assert f.read().splitlines()[-1].split('"')[1] == "GET /39 HTTP/1.1"  # the newest line is in the live file


def test_access_log_keeps_every_rolled_file_with_rotate_count_minus_one(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "a.log")
    log = AccessLog(handler_for(path, "512.bytes", True, -1, "$.k"))
    try:
        for i in range(40):
            log.record(b"svc", "127.0.0.1", b"GET", b"/%d" % i, 1, 200, 5, None, None)
    finally:
        log.close()
    lines = []
    for p in sorted(glob.glob(path + ".*"), key=lambda p: -int(p.rsplit(".", 1)[1])) + [path]:
        with open(p) as f:
            lines += f.read().splitlines()
    assert [line.split('"')[1] for line in lines] == [f"GET /{i} HTTP/1.1" for i in range(40)]  # nothing lost


def test_access_log_bad_roll_policy_names_the_key(tmp_path: "os.PathLike[str]") -> None:
    with pytest.raises(ConfigError, match=r"\$\.routers\[0\]\.httpAccessLog: weekly\(9\)"):
        handler_for(os.path.join(tmp_path, "a.log"), "weekly(9)", True, -1, "$.routers[0].httpAccessLog")


@pytest.mark.parametrize("impl", TWINS)
def test_access_log_that_cannot_be_opened_exits_2_naming_the_key(impl: str, tmp_path: "os.PathLike[str]") -> None:
    import subprocess
    import sys

    conf = os.path.join(tmp_path, "c.yaml")
    with open(conf, "w") as f:
        f.write(
            "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.0.0.1/1\n"
            f"  httpAccessLog: {tmp_path}/no/such/dir/access.log\n  servers: [{{port: 0}}]\n"
        )
    r = subprocess.run([sys.executable, "-m", "pyproxy", "run", conf], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PYPROXY_IMPL=impl))
    assert r.returncode == 2
    assert "$.routers[0].httpAccessLog: cannot open" in r.stderr
