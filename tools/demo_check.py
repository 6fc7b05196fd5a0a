"""Run ``pyproxy demo`` on free loopback ports and send the two requests it prints; standard library only.

    python tools/demo_check.py [PYPROXY_COMMAND ...]     (default: python -m pyproxy)

Expects ``world`` through the edge and ``earth`` through the internal ingress with the
``l5d-dtab`` override, stops the demo with SIGINT and exits 0; anything else exits 1 with one line.
For a pyproxy installed where the test suite is not (tools/wheel-on-debian11 runs it in a chroot).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from typing import List, Tuple

PORTS = ["--admin-port", "0", "--edge-port", "0", "--ingress-port", "0", "--outgoing-port", "0"]
EXPECT = [
    ("edge", {}, "Hello (127.0.0.1) world (127.0.0.1)!!"),
    ("ingress", {"l5d-dtab": "/host/world => /srv/world-v2;"}, "Hello (127.0.0.1) earth (127.0.0.1)!!"),
]


def get(addr: Tuple[str, int], headers: dict) -> Tuple[int, str]:
    conn = http.client.HTTPConnection(*addr, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": "www.hello.world", **headers})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def main(command: List[str]) -> int:
    proc = subprocess.Popen(command + ["demo"] + PORTS, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        urls: List[Tuple[str, int]] = []
        deadline = time.monotonic() + 30
        while len(urls) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"http://([\d.]+):(\d+)/", line)
            if m:
                urls.append((m.group(1), int(m.group(2))))
        if len(urls) != 2:
            print(f"demo_check: the demo printed {len(urls)} URLs, expected 2", file=sys.stderr)
            return 1
        for (name, headers, want), addr in zip(EXPECT, urls):
            status, body = get(addr, headers)
            if (status, body) != (200, want):
                print(f"demo_check: {name} answered {status} {body!r}, expected 200 {want!r}", file=sys.stderr)
                return 1
            print(f"demo_check: {name} {addr[0]}:{addr[1]} -> {body}")
        return 0
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or [sys.executable, "-m", "pyproxy"]))
