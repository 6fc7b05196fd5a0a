"""``pyproxy demo``: the ephemeral-staging scenario end to end (edge, internal ingress, two hops)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import List, Tuple

import pytest

from conftest import TWINS
from proxyproc import child_options, raw, split_response


def _start(impl: str) -> Tuple[subprocess.Popen, List[str]]:
    env = dict(os.environ, PYPROXY_IMPL=impl, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyproxy", "demo", "--admin-port", "0", "--edge-port", "0", "--ingress-port", "0", "--outgoing-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, **child_options(),  # type: ignore[arg-type]
    )
    lines: List[str] = []
    deadline = time.monotonic() + 20
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        if "pyproxy stage" in line:
            break
    return proc, lines


def _addr(url: str) -> Tuple[str, int]:
    host, port = re.search(r"http://([\d.]+):(\d+)/", url).groups()  # type: ignore[union-attr]
    return host, int(port)


@pytest.mark.parametrize("impl", TWINS)
def test_demo_stages_world_v2_for_one_request(impl: str) -> None:
    proc, lines = _start(impl)
    try:
        curls = [line for line in lines if "curl" in line]
        assert len(curls) == 2, lines
        edge, ingress = _addr(curls[0]), _addr(curls[1])
        plain = b"GET / HTTP/1.1\r\nHost: www.hello.world\r\nConnection: close\r\n\r\n"
        staged = b"GET / HTTP/1.1\r\nHost: www.hello.world\r\nl5d-dtab: /host/world => /srv/world-v2;\r\nConnection: close\r\n\r\n"
        status, _, body = split_response(raw(edge, plain))
        assert (status, body) == (200, b"Hello (127.0.0.1) world (127.0.0.1)!!")
        status, _, body = split_response(raw(ingress, staged))
        assert (status, body) == (200, b"Hello (127.0.0.1) earth (127.0.0.1)!!")
        # everyone else is unaffected, and outsiders cannot use the mechanism at the edge
        status, _, body = split_response(raw(ingress, plain))
        assert body == b"Hello (127.0.0.1) world (127.0.0.1)!!"
        status, _, body = split_response(raw(edge, staged))
        assert body == b"Hello (127.0.0.1) world (127.0.0.1)!!"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(15) == 0
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.mark.native
def test_the_demos_stage_line_signs_an_override_the_edge_accepts() -> None:
    proc, lines = _start("native")
    try:
        (stage,) = [line.strip() for line in lines if "pyproxy stage" in line]
        args = stage.split()[1:]
        r = subprocess.run([sys.executable, "-m", "pyproxy", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        dtab, sig, curl = r.stdout.splitlines()
        assert dtab == "l5d-dtab: /host/world=>/srv/world-v2" and sig.startswith("l5d-dtab-sig: kid=demo; exp=")
        edge = _addr(curl)
        request = f"GET / HTTP/1.1\r\nHost: www.hello.world\r\n{dtab}\r\n{sig}\r\nConnection: close\r\n\r\n".encode()
        status, _, body = split_response(raw(edge, request))
        assert (status, body) == (200, b"Hello (127.0.0.1) earth (127.0.0.1)!!")
        unsigned = f"GET / HTTP/1.1\r\nHost: www.hello.world\r\n{dtab}\r\nConnection: close\r\n\r\n".encode()
        assert split_response(raw(edge, unsigned))[2] == b"Hello (127.0.0.1) world (127.0.0.1)!!"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(15) == 0
        assert proc.stdout is not None
        proc.stdout.close()
