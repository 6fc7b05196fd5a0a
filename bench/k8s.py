"""Kubernetes discovery, measured: what the seed's outgoing router costs, what watches cost, how fast
an Endpoints change reaches the traffic. One run, against the fake API of tests/fakek8s.py.

1. **CPU per request**, the seed config's ``outgoing`` router (``io.l5d.k8s`` namer and the
   ``io.l5d.k8s.daemonset`` transformer) against the same router on ``io.l5d.fs``, both in front of
   one nginx origin (the DaemonSet's "pod" on this node is the origin itself, so both make the same
   hops), wrk closed loop, interleaved rounds, proxies pinned to CPU 0. Goal: within 1.1x (the lane
   serves both).
2. **Watches**: one pyproxy watching ``--services`` services of 10 endpoints each (one request per
   service starts its watch; from 32 services on, the namespace is watched as one): RSS growth from
   idle, a client and its 10 endpoints per service included. Goal (1,000 services): <= 30 MB.
3. **An Endpoints change to the first request routed by it**: a closed loop of requests to one
   service; its endpoints are switched between two origins ``--changes`` times; for each, the time
   from the change on the API to the first response from the new origin. Goal: p99 <= 100 ms.

    python bench/k8s.py [--seconds 3] [--rounds 3] [--services 1000] [--changes 100]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from fakek8s import FakeK8s, endpoints  # noqa: E402
from harness import NGINX_ORIGIN, Proc, free_port, measure, start_nginx, taskset, wait_port  # noqa: E402


def _pyproxy(conf_text: str, tmp: str, name: str, cpu: Optional[int], env: Optional[Dict[str, str]] = None) -> Proc:
    conf = os.path.join(tmp, f"{name}.yaml")
    with open(conf, "w") as f:
        f.write(conf_text)
    pin = taskset(cpu) if cpu is not None else []
    return Proc(pin + [sys.executable, "-m", "pyproxy", "run", conf], env=dict(os.environ, PYPROXY_IMPL="native", **(env or {})))


def _k8s_router(api: int, port: int, admin: int) -> str:
    """The seed's outgoing router, its API moved to the fake."""
    return (
        f"admin: {{ip: 127.0.0.1, port: {admin}}}\n"
        f"namers:\n- {{kind: io.l5d.k8s, host: 127.0.0.1, port: {api}}}\n"
        "routers:\n- protocol: http\n  label: outgoing\n"
        "  dtab: /srv => /#/io.l5d.k8s/default/http; /host => /srv; /svc => /host\n"
        "  interpreter:\n    kind: default\n    transformers:\n"
        f"    - {{kind: io.l5d.k8s.daemonset, namespace: default, port: incoming, service: l5d, k8sHost: 127.0.0.1, k8sPort: {api}}}\n"
        "  service: {responseClassifier: {kind: io.l5d.http.retryableRead5XX}}\n"
        f"  servers: [{{ip: 127.0.0.1, port: {port}}}]\n"
    )


def _fs_router(root: str, port: int, admin: int) -> str:
    return (
        f"admin: {{ip: 127.0.0.1, port: {admin}}}\n"
        f"namers:\n- {{kind: io.l5d.fs, rootDir: {root}}}\n"
        "routers:\n- protocol: http\n  label: outgoing\n"
        "  dtab: /srv => /#/io.l5d.fs; /host => /srv; /svc => /host\n"
        "  service: {responseClassifier: {kind: io.l5d.http.retryableRead5XX}}\n"
        f"  servers: [{{ip: 127.0.0.1, port: {port}}}]\n"
    )


def _lane_share(admin: int) -> float:
    """Of the requests the proxy served, the share the lane completed."""
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    c.request("GET", "/admin/metrics.json")
    m = json.loads(c.getresponse().read())
    c.close()
    served = sum(v for k, v in m.items() if k.startswith("rt/outgoing/server/") and k.endswith("/requests"))
    return m.get("lane/requests", 0) / served if served else 0.0


def cpu_ratio(args: argparse.Namespace, k8s: FakeK8s, tmp: str) -> None:
    origin = free_port()
    procs: List[Proc] = [start_nginx(NGINX_ORIGIN.format(dir=tmp, port=origin), tmp, "origin", 1)]
    try:
        wait_port(origin)
        k8s.apply(endpoints("default", "origin", addresses=[("127.0.0.1", "node-1")], ports={"http": origin}))
        k8s.apply(endpoints("default", "l5d", addresses=[("127.0.0.1", "node-1")], ports={"incoming": origin}))
        root = os.path.join(tmp, "disco")
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "origin"), "w") as f:
            f.write(f"127.0.0.1 {origin}\n")
        ports = {"io.l5d.fs": free_port(), "io.l5d.k8s + daemonset": free_port()}
        admins = {n: free_port() for n in ports}
        plan = {
            "io.l5d.fs": _pyproxy(_fs_router(root, ports["io.l5d.fs"], admins["io.l5d.fs"]), tmp, "fs", 0),
            "io.l5d.k8s + daemonset": _pyproxy(_k8s_router(k8s.port, ports["io.l5d.k8s + daemonset"], admins["io.l5d.k8s + daemonset"]),
                                               tmp, "k8s", 0),
        }
        procs += plan.values()
        for name, port in ports.items():
            wait_port(port, 60)
            measure(plan[name], port, 1, args.connections, ["Host: origin"])  # warm-up: routes installed
        results: Dict[str, List[Dict[str, float]]] = {n: [] for n in plan}
        for r in range(args.rounds):
            for name in (list(plan) if r % 2 == 0 else list(reversed(list(plan)))):
                results[name].append(measure(plan[name], ports[name], args.seconds, args.connections, ["Host: origin"]))
        lane = {n: _lane_share(admins[n]) for n in plan}
    finally:
        for p in procs:
            p.stop()
    med = {n: {k: statistics.median(x[k] for x in rs) for k in ("rps", "cpu_us_per_req")} for n, rs in results.items()}
    print(f"1. CPU per request, {args.rounds} rounds x {args.seconds:g} s, wrk -c{args.connections}, medians\n")
    print("| router | requests/s | proxy CPU µs/request |\n| --- | ---: | ---: |")
    for n, m in med.items():
        print(f"| outgoing on {n} | {m['rps']:.0f} | {m['cpu_us_per_req']:.1f} |")
    for n, share in lane.items():
        print(f"outgoing on {n}: {share:.1%} of requests served by the lane")
    ratio = med["io.l5d.k8s + daemonset"]["cpu_us_per_req"] / med["io.l5d.fs"]["cpu_us_per_req"]
    print(f"\nCPU/request, k8s namer + daemonset transformer vs io.l5d.fs: **{ratio:.2f}x** (goal <= 1.1x)\n")


def watches(args: argparse.Namespace, k8s: FakeK8s, tmp: str) -> None:
    for i in range(args.services):
        k8s.apply(endpoints("default", f"svc-{i}", addresses=[(f"127.3.{i // 200}.{i % 200 + 1}", "node-1") for _ in range(1)]
                            + [(f"127.4.{(i * 10 + j) // 250}.{(i * 10 + j) % 250 + 1}", "node-1") for j in range(9)], ports={"http": 9}))
    port = free_port()
    conf = (
        f"admin: {{ip: 127.0.0.1, port: {free_port()}}}\n"
        f"namers:\n- {{kind: io.l5d.k8s, host: 127.0.0.1, port: {k8s.port}}}\n"
        "routers:\n- protocol: http\n  label: outgoing\n  dtab: /svc => /#/io.l5d.k8s/default/http\n"
        "  client: {failureAccrual: {kind: none}}\n"
        f"  servers: [{{ip: 127.0.0.1, port: {port}}}]\n"
    )
    proc = _pyproxy(conf, tmp, "watches", None)
    try:
        wait_port(port, 60)
        time.sleep(1.0)
        idle = proc.rss_kib()
        t0 = time.monotonic()
        for i in range(args.services):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/", headers={"Host": f"svc-{i}"})
            r = c.getresponse()
            r.read()  # refused endpoints: a 502 once the service's endpoints are known (a 504 before)
            c.close()
            assert r.status == 502, f"svc-{i}: {r.status}"
        took = time.monotonic() - t0
        streams = len(k8s.watches())
        time.sleep(2.0)
        loaded = proc.rss_kib()
    finally:
        proc.stop()
    growth_mb = (loaded - idle) * 1024 / 1e6
    print(f"2. {args.services} watched services x 10 endpoints: RSS {idle / 1024:.1f} MiB idle -> {loaded / 1024:.1f} MiB "
          f"(growth **{growth_mb:.1f} MB**, goal <= 30 MB for 1,000); every service known {took:.1f} s after the first request, "
          f"{streams} watch stream(s) on the API\n")


class _Named(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: Nagle would hold the body for a delayed ACK

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = self.server.name  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _origin(name: bytes) -> http.server.ThreadingHTTPServer:
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Named)
    s.daemon_threads = True
    s.name = name  # type: ignore[attr-defined]
    threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return s


def change_latency(args: argparse.Namespace, k8s: FakeK8s, tmp: str) -> None:
    a, b = _origin(b"a"), _origin(b"b")
    port = free_port()
    k8s.apply(endpoints("default", "moving", addresses=[("127.0.0.1", "node-1")], ports={"http": a.server_address[1]}))
    conf = (
        f"admin: {{ip: 127.0.0.1, port: {free_port()}}}\n"
        f"namers:\n- {{kind: io.l5d.k8s, host: 127.0.0.1, port: {k8s.port}}}\n"
        "routers:\n- protocol: http\n  label: outgoing\n  dtab: /svc => /#/io.l5d.k8s/default/http\n"
        f"  servers: [{{ip: 127.0.0.1, port: {port}}}]\n"
    )
    proc = _pyproxy(conf, tmp, "moving", 0)
    delays: List[float] = []
    try:
        wait_port(port, 60)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def ask() -> bytes:
            c.request("GET", "/", headers={"Host": "moving"})
            return c.getresponse().read()

        assert ask() == b"a"
        for i in range(args.changes):
            target = b if i % 2 == 0 else a
            t0 = time.monotonic()
            k8s.apply(endpoints("default", "moving", addresses=[("127.0.0.1", "node-1")], ports={"http": target.server_address[1]}))
            while ask() != target.name and time.monotonic() - t0 < 5:  # type: ignore[attr-defined]
                pass
            delays.append((time.monotonic() - t0) * 1000)
        c.close()
    finally:
        proc.stop()
        a.shutdown()
        b.shutdown()
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(f"3. an Endpoints change to the first request routed by it, {len(delays)} changes: p50 {statistics.median(delays):.1f} ms, "
          f"p99 **{p99:.1f} ms**, max {delays[-1]:.1f} ms (goal p99 <= 100 ms)\n")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=100)
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="pyproxy-k8s-bench-")
    try:
        with FakeK8s(max_watches=args.services + 100, max_connections=args.services + 200, max_objects=args.services * 2 + 100) as k8s:
            cpu_ratio(args, k8s, tmp)
            change_latency(args, k8s, tmp)
            watches(args, k8s, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
