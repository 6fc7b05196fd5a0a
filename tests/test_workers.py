"""``pyproxy run --workers 2``: two processes share each listener, one admin view sums them.

The group's own admin server is tested on one supervisor per twin (module fixture): it applies
``admin.security`` and bounds slow requests as a single process's admin does, merges the workers'
histograms (the union's percentiles, not a sum of percentiles), and restarts a killed worker while
requests keep being served.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import math
import socket
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from conftest import TWINS
from proxyproc import READY, child_options, raw
from upstream import Origin


def _start(config: str, impl: str, extra_env: Optional[Dict[str, str]] = None) -> Tuple[subprocess.Popen, Dict[str, Tuple[str, int]], str]:
    d = tempfile.mkdtemp(prefix="pyproxy-workers-")
    path = os.path.join(d, "config.yaml")
    with open(path, "w") as f:
        f.write(config)
    env = dict(os.environ, PYPROXY_IMPL=impl, PYTHONUNBUFFERED="1", **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "pyproxy", "run", "--workers", "2", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, **child_options())  # type: ignore[call-overload]
    addrs: Dict[str, Tuple[str, int]] = {}
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while time.monotonic() < deadline and "admin" not in addrs:
        line = proc.stderr.readline().decode()
        if not line:
            break
        m = READY.search(line)
        if m:
            host, _, port = m.group(2).rpartition(":")
            addrs[m.group(1)] = (host, int(port))
    return proc, addrs, d


def _get(addr: Tuple[str, int], path: str, host: str = "svc") -> Tuple[int, bytes]:
    c = http.client.HTTPConnection(*addr, timeout=10)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.mark.parametrize("impl", TWINS)
def test_two_workers_share_the_port_and_sum_their_metrics(impl: str) -> None:
    a, b = Origin(), Origin()
    root = tempfile.mkdtemp(prefix="pyproxy-disco-")
    with open(os.path.join(root, "svc"), "w") as f:
        f.write(f"127.0.0.1 {a.port}\n")
    config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {root}}}]
telemetry: [{{kind: io.l5d.prometheus}}]
routers:
- protocol: http
  label: shared
  dtab: /svc => /#/io.l5d.fs
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
    proc, addrs, d = _start(config, impl)
    try:
        assert set(addrs) == {"shared", "admin"}, addrs
        n = 40
        assert all(_get(addrs["shared"], "/text/x")[0] == 200 for _ in range(n))
        status, body = _get(addrs["admin"], "/admin/metrics.json")
        metrics = json.loads(body)
        served = sum(v for k, v in metrics.items() if k.startswith("rt/shared/server/") and k.endswith("/requests"))
        assert served == n
        status, text = _get(addrs["admin"], "/admin/metrics/prometheus")
        workers = {line.split(b'worker="')[1][:1] for line in text.splitlines() if b"worker=" in line}
        assert workers == {b"0", b"1"}
        # both workers follow discovery changes
        with open(os.path.join(root, "svc"), "w") as f:
            f.write(f"127.0.0.1 {b.port}\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            before = b.hits
            for _ in range(20):
                _get(addrs["shared"], "/text/y")
            if b.hits - before == 20:
                break
            time.sleep(0.3)
        assert b.hits - before == 20, "a worker still routes to the old endpoint"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        proc.stderr.close()
        a.close()
        b.close()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


# === the group's admin server (one supervisor per twin) ===


class Group:
    def __init__(self, impl: str) -> None:
        self.origin = Origin()
        self.root = tempfile.mkdtemp(prefix="pyproxy-disco-")
        with open(os.path.join(self.root, "svc"), "w") as f:
            f.write(f"127.0.0.1 {self.origin.port}\n")
        config = f"""
admin:
  ip: 127.0.0.1
  port: 0
  socketOptions: {{readTimeoutMs: 300}}
  security:
    controlEnabled: false
    pathWhitelist: ['/logging[.]json']
    pathBlacklist: ['/config[.]json', '/admin/metrics/prometheus']
namers: [{{kind: io.l5d.fs, rootDir: {self.root}}}]
telemetry: [{{kind: io.l5d.prometheus}}]
routers:
- protocol: http
  label: group
  dtab: /svc => /#/io.l5d.fs
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proc, self.addrs, self.dir = _start(config, impl, {"PYPROXY_METRICS_SNAPSHOT_SECONDS": "1"})
        if set(self.addrs) != {"group", "admin"}:
            self.close()
            raise AssertionError(f"the group did not start: {self.addrs}")

    def workers(self) -> List[dict]:
        status, body = _get(self.addrs["admin"], "/admin/workers.json")
        assert status == 200, body
        return json.loads(body)  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        finally:
            self.origin.close()
            shutil.rmtree(self.root, ignore_errors=True)
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def group(request: pytest.FixtureRequest) -> Iterator[Group]:
    g = Group(request.param)
    try:
        yield g
    finally:
        g.close()


def _call(addr: Tuple[str, int], path: str, method: str = "GET", body: Optional[bytes] = None) -> Tuple[int, Dict[str, str], bytes]:
    c = http.client.HTTPConnection(*addr, timeout=10)
    try:
        c.request(method, path, body=body, headers={"Host": "svc"})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_group_admin_applies_admin_security(group: Group) -> None:
    admin = group.addrs["admin"]
    assert _call(admin, "/admin/shutdown", "POST", b"")[::2] == (404, b"")  # control disabled: as if absent
    assert _call(admin, "/admin/shutdown")[0] == 404
    assert _call(admin, "/admin/metrics/prometheus")[0] == 404  # blacklisted (the group answers it itself)
    assert _call(admin, "/config.json")[0] == 404  # blacklisted (worker 0 answers it)
    assert _call(admin, "/logging.json")[0] == 200  # control, but whitelisted
    assert _call(admin, "/admin/ping")[::2] == (200, b"pong")
    assert _call(admin, "/admin/metrics.json", "POST", b"")[0] == 405
    assert _call(admin, "/admin/ping/")[0] == 404  # whole-path matches only
    time.sleep(0.2)
    assert group.proc.poll() is None  # still running


def test_group_admin_bounds_a_slow_request(group: Group) -> None:
    admin = group.addrs["admin"]
    for data in (b"GET /admin/ping HTTP/1.1\r\nHo", b"POST /logging.json HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab"):
        t0 = time.monotonic()
        got = raw(admin, data, timeout=8)  # returns once the server closes
        elapsed = time.monotonic() - t0
        assert got.startswith(b"HTTP/1.1 408 "), got
        assert 0.3 <= elapsed < 7, elapsed  # readTimeoutMs: 300
    assert _call(admin, "/admin/ping")[0] == 200


_SUB = 64


def _lower(key: int) -> float:
    """The smallest value of a bucket (metrics/histogram.py: 64 linear sub-buckets per power of two)."""
    if key == -(1 << 40):
        return 0.0
    e, sub = divmod(key, _SUB)
    return math.ldexp(0.5 + sub / (2 * _SUB), e)


def _union(stats: List[dict]) -> Dict[str, float]:
    """count, sum, min, max and percentiles of the union of histograms given as bucket counts: rank
    ceil(q * count), the lower bound of the bucket holding it, kept within [min, max]."""
    buckets: Dict[int, int] = {}
    for s in stats:
        for k, n in s["buckets"]:
            buckets[k] = buckets.get(k, 0) + n
    count = sum(s["count"] for s in stats)
    lo, hi = min(s["min"] for s in stats), max(s["max"] for s in stats)
    out = {"count": count, "sum": sum(s["sum"] for s in stats), "min": lo, "max": hi}
    keys = sorted(buckets)
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        rank, cum = max(1, math.ceil(q * count - 1e-9)), 0
        for k in keys:
            cum += buckets[k]
            if cum >= rank:
                out[name] = min(hi, max(lo, _lower(k)))
                break
    return out


def _worker_stat(admin: str, key: str) -> Optional[dict]:
    host, _, port = admin.rpartition(":")
    status, body = _get((host, int(port)), "/admin/metrics.json?buckets=true")
    assert status == 200
    for elems, kind, value in json.loads(body):
        if "/".join(elems) == key and kind == "stat":
            return value  # type: ignore[no-any-return]
    return None


def test_group_metrics_merge_histograms_not_their_percentiles(group: Group) -> None:
    server = f"rt/group/server/127.0.0.1/{group.addrs['group'][1]}"
    key = f"{server}/request_latency_ms"
    admins = [w["admin"] for w in group.workers()]
    delays = [1, 2, 5, 9, 17, 33, 60]
    matched = None
    deadline = time.monotonic() + 20
    while matched is None and time.monotonic() < deadline:
        for i in range(28):  # a new connection each: the kernel spreads them over both workers
            assert _get(group.addrs["group"], f"/slow/{delays[i % len(delays)]}")[0] == 200
        before = [_worker_stat(a, key) for a in admins]
        status, body = _get(group.addrs["admin"], "/admin/metrics.json")
        after = [_worker_stat(a, key) for a in admins]
        # histograms show their last full window (1 s here): compare when no worker rotated meanwhile
        # and both workers served requests in it
        if before != after or not all(s and s["count"] for s in before):
            continue
        matched = (json.loads(body), before)
    assert matched is not None, "never saw both workers' latencies in one window"
    flat, stats = matched
    want = _union(stats)  # type: ignore[arg-type]
    for field, value in want.items():
        assert flat[f"{key}.{field}"] == pytest.approx(value, abs=1e-3), (field, flat[f"{key}.{field}"], value)
    assert flat[f"{key}.count"] == stats[0]["count"] + stats[1]["count"]  # type: ignore[index]
    assert flat[f"{key}.p99"] <= flat[f"{key}.max"]  # a sum of the workers' percentiles would not be
    assert flat[f"{server}/requests"] >= flat[f"{key}.count"]  # counters are still summed


def test_a_killed_worker_is_restarted_while_requests_keep_succeeding(group: Group) -> None:
    before = group.workers()
    victim = before[1]
    assert victim["pid"] and victim["restarts"] == 0
    os.kill(victim["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    ok = 0
    for _ in range(40):
        for attempt in range(10):  # while the kernel drops the dead listener, a connection may be reset
            try:
                if _get(group.addrs["group"], "/text/up")[0] == 200:
                    ok += 1
                break
            except (ConnectionError, http.client.HTTPException, socket.timeout):
                time.sleep(0.05)
        time.sleep(0.01)
    assert ok == 40
    now: List[dict] = []
    while time.monotonic() - t0 < 30:
        now = group.workers()
        if now[1]["pid"] not in (None, victim["pid"]) and now[1]["admin"]:
            break
        time.sleep(0.1)
    assert now[1]["pid"] not in (None, victim["pid"]) and now[1]["restarts"] == 1, now
    assert now[0]["pid"] == before[0]["pid"] and now[0]["restarts"] == 0
    flat = json.loads(_get(group.addrs["admin"], "/admin/metrics.json")[1])
    assert flat["workers/restarts"] == 1
    # the new worker takes its share of new connections
    served = f"rt/group/server/127.0.0.1/{group.addrs['group'][1]}/requests"
    host, _, port = now[1]["admin"].rpartition(":")
    deadline = time.monotonic() + 10
    count = 0
    while time.monotonic() < deadline and not count:
        for _ in range(10):
            assert _get(group.addrs["group"], "/text/again")[0] == 200
        count = json.loads(_get((host, int(port)), "/admin/metrics.json")[1]).get(served, 0)
    assert count > 0


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie serves nothing
    except FileNotFoundError:
        return True


def test_workers_stop_when_their_supervisor_is_killed() -> None:
    """A supervisor killed outright (SIGKILL, the OOM killer) takes its workers with it: none is
    left serving the ports unsupervised."""
    g = Group("pure")
    try:
        pids = [w["pid"] for w in g.workers()]
        assert len(pids) == 2 and not any(_gone(p) for p in pids)
        os.kill(g.proc.pid, signal.SIGKILL)
        g.proc.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(_gone(p) for p in pids):
            time.sleep(0.1)
        assert all(_gone(p) for p in pids), [p for p in pids if not _gone(p)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(g.proc.pid, signal.SIGKILL)
        g.close()


def test_a_workers_log_line_without_end_is_passed_on_in_pieces() -> None:
    from pyproxy.runtime.workers import MAX_LOG_LINE, split_lines

    assert split_lines(b"one\ntw", b"o\nthr") == ([b"one", b"two"], b"thr")
    lines, rest = b"", b""
    held = []
    for _ in range(5):  # 5 x 32 KiB without a newline: never more than the bound held
        got, rest = split_lines(rest, b"x" * (MAX_LOG_LINE // 2))
        lines += b"".join(got)
        held.append(len(rest))
    assert max(held) <= MAX_LOG_LINE and len(lines) + len(rest) == 5 * (MAX_LOG_LINE // 2)


def test_a_port_in_use_is_one_line_naming_the_listener_and_exit_2() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)  # a listening socket: SO_REUSEPORT from another user cannot share it
    port = taken.getsockname()[1]
    d = tempfile.mkdtemp(prefix="pyproxy-workers-")
    path = os.path.join(d, "config.yaml")
    with open(path, "w") as f:
        f.write(f"admin: {{ip: 127.0.0.1, port: 0}}\nrouters:\n- protocol: http\n  dtab: /svc => /$/nil\n"
                f"  servers: [{{ip: 127.0.0.1, port: {port}}}]\n")
    try:
        r = subprocess.run([sys.executable, "-m", "pyproxy", "run", "--workers", "2", path],
                           capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
        shutil.rmtree(d, ignore_errors=True)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr  # before: an ExceptionGroup traceback naming nothing
    assert r.stderr.strip().splitlines()[-1] == f"pyproxy: $.routers[0].servers[0]: cannot listen on 127.0.0.1:{port}: Address already in use"
