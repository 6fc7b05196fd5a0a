"""``pyproxy run --workers 2``: two processes share each listener, one admin view sums them."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, Tuple

import pytest

from conftest import TWINS
from proxyproc import READY
from upstream import Origin


def _start(config: str, impl: str) -> Tuple[subprocess.Popen, Dict[str, Tuple[str, int]], str]:
    d = tempfile.mkdtemp(prefix="pyproxy-workers-")
    path = os.path.join(d, "config.yaml")
    with open(path, "w") as f:
        f.write(config)
    env = dict(os.environ, PYPROXY_IMPL=impl, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "pyproxy", "run", "--workers", "2", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
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
