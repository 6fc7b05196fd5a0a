""""Beyond Round Robin" in miniature: Peak-EWMA vs round robin with one endpoint turning slow.

Five origins answer in about 5 ms. For the middle third of the run one of them answers in 300 ms.
Two routers of one pyproxy (``loadBalancer: ewma`` and ``roundRobin``) front the same five, and each
gets the same constant request rate, open loop: request *i* is due at ``t0 + i/rate`` whatever
happened before, and its latency counts from that due time (no coordinated omission). A client
gives up after 1 s (a failure). Both balancers run at the same time, so they see the same slowness.

    python bench/beyond_rr.py [--rate 80] [--seconds 18] [--impl native]

Prints, per balancer: success rate, p50/p99 before the slow window and during it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(self.server.delay)  # type: ignore[attr-defined]
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Origin:
    def __init__(self, delay: float) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.delay = delay  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def set_delay(self, delay: float) -> None:
        self.server.delay = delay  # type: ignore[attr-defined]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_proxy(impl: str, root: str, tmp: str) -> Tuple[subprocess.Popen, Dict[str, int]]:
    conf = os.path.join(tmp, "proxy.yaml")
    with open(conf, "w") as f:
        f.write(
            f"admin: {{ip: 127.0.0.1, port: 0}}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {root}\nrouters:\n"
            + "".join(
                f"- protocol: http\n  label: {label}\n  dtab: /svc => /#/io.l5d.fs\n"
                f"  client: {{loadBalancer: {{kind: {kind}}}}}\n  servers: [{{ip: 127.0.0.1, port: 0}}]\n"
                for label, kind in (("ewma", "ewma"), ("roundRobin", "roundRobin"))
            )
        )
    env = dict(os.environ, PYPROXY_IMPL=impl, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "pyproxy", "run", conf], cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, start_new_session=True)
    ports: Dict[str, int] = {}
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    while time.monotonic() < deadline and "admin" not in ports:
        line = proc.stderr.readline().decode()
        if "listening name=" in line:
            name = line.split("name=")[1].split()[0]
            ports[name] = int(line.rsplit(":", 1)[1])
    return proc, ports


async def one_request(port: int, due: float, timeout: float, out: List[Tuple[float, float, bool]]) -> None:
    ok = False
    with trio.move_on_after(max(due + timeout - trio.current_time(), 0)):
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
                ok = data.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
    out.append((due, trio.current_time() - due, ok))


async def drive(ports: Dict[str, int], rate: float, seconds: float, timeout: float, slow: Origin, window: Tuple[float, float]) -> Dict[str, List[Tuple[float, float, bool]]]:
    results: Dict[str, List[Tuple[float, float, bool]]] = {name: [] for name in ports}
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        n = int(rate * seconds)
        slow_on = slow_off = False
        for i in range(n):
            due = t0 + i / rate
            await trio.sleep_until(due)
            rel = due - t0
            if not slow_on and rel >= window[0]:
                slow.set_delay(0.3)
                slow_on = True
            if slow_on and not slow_off and rel >= window[1]:
                slow.set_delay(0.005)
                slow_off = True
            for name, port in ports.items():
                nursery.start_soon(one_request, port, due, timeout, results[name])
        for name in results:
            for j in range(len(results[name])):
                results[name][j] = (results[name][j][0] - t0, results[name][j][1], results[name][j][2])
    return results


def pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=80.0, help="requests/s sent to each balancer")
    ap.add_argument("--seconds", type=float, default=18.0)
    ap.add_argument("--impl", default="native")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="pyproxy-brr-")
    root = os.path.join(tmp, "disco")
    os.makedirs(root)
    origins = [Origin(0.005) for _ in range(5)]
    with open(os.path.join(root, "svc"), "w") as f:
        f.write("".join(f"127.0.0.1 {o.port}\n" for o in origins))
    proc, ports = start_proxy(args.impl, root, tmp)
    try:
        ports = {k: v for k, v in ports.items() if k != "admin"}
        window = (args.seconds / 3, 2 * args.seconds / 3)
        results = trio.run(drive, ports, args.rate, args.seconds, 1.0, origins[0], window)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
        for o in origins:
            o.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.rate:g} req/s to each balancer for {args.seconds:g} s, 5 origins at 5 ms, one at 300 ms from "
          f"{window[0]:g} s to {window[1]:g} s, 1 s client timeout, kernels: {args.impl}\n")
    print("| balancer | requests | success | p50 ms | p99 before ms | p99 slow window ms | p99 window / before |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rows in results.items():
        ok = [r for r in rows if r[2]]
        before = [r[1] for r in rows if r[0] < window[0] and r[2]]
        during = [r[1] for r in rows if window[0] <= r[0] < window[1]]
        success = 100.0 * len(ok) / len(rows)
        b99, d99 = pct(before, 0.99) * 1000, pct(during, 0.99) * 1000
        p50 = statistics.median(r[1] for r in ok) * 1000 if ok else float("nan")
        print(f"| {name} | {len(rows)} | {success:.2f}% | {p50:.1f} | {b99:.1f} | {d99:.1f} | {d99 / b99:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
