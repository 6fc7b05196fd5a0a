"""End-to-end proxy benchmark: pyproxy (native, pure) against nginx as a proxy, same origin, same run.

One nginx origin (``return 200``) on loopback. Each scenario is a proxy in front of it; wrk drives
it closed-loop with a few connections for a fixed time, and the proxy's CPU time is read from
``/proc/<pid>/stat`` before and after, so

    CPU per request = (utime + stime of the proxy) / requests completed.

Scenarios are interleaved (A B C A B C ...) and each figure is the median over rounds, so slow drift
on a shared 2-core machine hits them alike. Ratios are computed within the run. The proxy is pinned
to CPU 0 and wrk to CPU 1 where ``taskset`` exists.

    python bench/proxy_bench.py [--seconds 3] [--rounds 3] [--connections 8] [--json out.json]

Requires nginx and wrk (Debian packages ``nginx-light``, ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def taskset(cpu: int) -> List[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


NGINX_ORIGIN = """
worker_processes 1;
daemon off;
pid {dir}/origin.pid;
error_log {dir}/origin-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{ return 200 "hello\\n"; }}
  }}
}}
"""

NGINX_PROXY = """
worker_processes 1;
daemon off;
pid {dir}/proxy.pid;
error_log {dir}/proxy-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


class Proc:
    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None) -> None:
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.p.pid

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)


def start_nginx(conf: str, tmp: str, name: str, cpu: int) -> Proc:
    path = os.path.join(tmp, f"{name}.conf")
    with open(path, "w") as f:
        f.write(conf)
    return Proc(taskset(cpu) + ["nginx", "-c", path, "-p", tmp, "-e", os.path.join(tmp, f"{name}-error.log")])


def start_pyproxy(impl: str, origin: int, port: int, tmp: str, cpu: int) -> Proc:
    root = os.path.join(tmp, f"disco-{impl}-{port}")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "origin"), "w") as f:
        f.write(f"127.0.0.1 {origin}\n")
    conf = os.path.join(tmp, f"pyproxy-{impl}-{port}.yaml")
    with open(conf, "w") as f:
        f.write(
            f"admin: {{ip: 127.0.0.1, port: {free_port()}}}\n"
            f"namers:\n- kind: io.l5d.fs\n  rootDir: {root}\n"
            "routers:\n- protocol: http\n  label: bench\n"
            "  dtab: /svc => /#/io.l5d.fs; /host/world => /#/io.l5d.fs/world\n"
            f"  servers:\n  - ip: 127.0.0.1\n    port: {port}\n"
        )
    env = dict(os.environ, PYPROXY_IMPL=impl)
    return Proc(taskset(cpu) + [sys.executable, "-m", "pyproxy", "run", conf], env=env)


def wrk(port: int, seconds: float, connections: int, headers: List[str]) -> Tuple[int, float]:
    argv = taskset(1) + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    argv.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not m:
        raise RuntimeError(f"wrk said:\n{out}")
    requests = int(m.group(1))
    dur = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses on port {port}:\n{out}")
    return requests, dur


def measure(proc: Optional[Proc], port: int, seconds: float, connections: int, headers: List[str]) -> Dict[str, float]:
    before = cpu_seconds(proc.pid) if proc else 0.0
    requests, dur = wrk(port, seconds, connections, headers)
    after = cpu_seconds(proc.pid) if proc else 0.0
    out = {"rps": requests / dur, "requests": requests}
    if proc:
        out["cpu_us_per_req"] = (after - before) / requests * 1e6
        out["rss_kib"] = rss_kib(proc.pid)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--check", action="store_true", help="exit 1 on a regression far outside noise")
    args = ap.parse_args(argv)
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (Debian: apt-get install nginx-light wrk)", file=sys.stderr)
            return 2
    tmp = tempfile.mkdtemp(prefix="pyproxy-bench-")
    procs: List[Proc] = []
    try:
        origin_port = free_port()
        procs.append(start_nginx(NGINX_ORIGIN.format(dir=tmp, port=origin_port), tmp, "origin", 1))
        wait_port(origin_port)
        ports = {name: free_port() for name in ("nginx", "native", "pure")}
        nginx = start_nginx(NGINX_PROXY.format(dir=tmp, port=ports["nginx"], origin=origin_port), tmp, "proxy", 0)
        native = start_pyproxy("native", origin_port, ports["native"], tmp, 0)
        pure = start_pyproxy("pure", origin_port, ports["pure"], tmp, 0)
        procs += [nginx, native, pure]
        for p in ports.values():
            wait_port(p)
        host = ["Host: origin"]
        override = ["Host: origin", "l5d-dtab: /host/world => /srv/world-v2;"]
        scenarios = {
            "direct": (None, origin_port, host),
            "nginx": (nginx, ports["nginx"], host),
            "pyproxy native": (native, ports["native"], host),
            "pyproxy native + l5d-dtab": (native, ports["native"], override),
            "pyproxy pure": (pure, ports["pure"], host),
        }
        for name, (proc, port, hdrs) in scenarios.items():  # warm-up: pools, caches, JIT-free but lazy paths
            measure(proc, port, 1.0, args.connections, hdrs)
        results: Dict[str, List[Dict[str, float]]] = {name: [] for name in scenarios}
        for _ in range(args.rounds):
            for name, (proc, port, hdrs) in scenarios.items():
                results[name].append(measure(proc, port, args.seconds, args.connections, hdrs))
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in results.items()}
    print(f"{args.rounds} rounds x {args.seconds:g} s, {args.connections} connections, wrk closed loop, medians\n")
    print("| scenario | requests/s | proxy CPU µs/request | RSS MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, m in med.items():
        cpu = f"{m['cpu_us_per_req']:.1f}" if "cpu_us_per_req" in m else "-"
        rss = f"{m['rss_kib'] / 1024:.0f}" if "rss_kib" in m else "-"
        print(f"| {name} | {m['rps']:.0f} | {cpu} | {rss} |")
    nat, ngx, pur, ovr = med["pyproxy native"], med["nginx"], med["pyproxy pure"], med["pyproxy native + l5d-dtab"]
    ratios = {
        "native CPU/request vs nginx": nat["cpu_us_per_req"] / ngx["cpu_us_per_req"],
        "native requests/s vs pure": nat["rps"] / pur["rps"],
        "native requests/s vs nginx": nat["rps"] / ngx["rps"],
        "l5d-dtab override CPU vs none": ovr["cpu_us_per_req"] / nat["cpu_us_per_req"],
    }
    print("\n| ratio (same run) | value |\n| --- | ---: |")
    for k, v in ratios.items():
        print(f"| {k} | {v:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"medians": med, "ratios": ratios, "rounds": results}, f, indent=2)
    if args.check:
        bad = []
        if ratios["native requests/s vs pure"] < 1.0:
            bad.append("native is slower than pure")
        if ratios["native CPU/request vs nginx"] > 5.0:
            bad.append("native uses more than 5x nginx's CPU per request")
        if bad:
            print("\nRegressions: " + "; ".join(bad))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
