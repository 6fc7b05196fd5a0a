"""End-to-end proxy benchmark: pyproxy (native, pure) against nginx as a proxy, same origin, same run.

One nginx origin (``return 200``) on loopback. Each scenario is a proxy in front of it; wrk drives
it closed-loop with a few connections for a fixed time, and the proxy's CPU time is read from
``/proc/<pid>/stat`` before and after, so

    CPU per request = (utime + stime of the proxy) / requests completed.

Scenarios are interleaved (A B C A B C ...) and each figure is the median over rounds, so slow drift
on a shared 2-core machine hits them alike. Ratios are computed within the run. The proxy is pinned
to CPU 0 and wrk to CPU 1 where ``taskset`` exists. The helpers live in ``harness.py`` (shared with
``suite.py``, the whole benchmark suite); a proxy's CPU is summed over its process group there, so
nginx's worker counts, not just its idle master.

    python bench/proxy_bench.py [--seconds 3] [--rounds 3] [--connections 8] [--json out.json]

Requires nginx and wrk (Debian packages ``nginx-light``, ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from typing import Dict, List, Optional

from harness import NGINX_ORIGIN, NGINX_PROXY, Proc, free_port, measure, start_nginx, start_pyproxy, wait_port


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
