"""What features cost: pyproxy native against itself with telemetry on, with an ``l5d-dtab`` override
on every request (also in baggage, and signed at an edge), and with two workers, in one interleaved run.

Variants (one nginx origin, wrk closed loop, medians over rounds, CPU from the process group):

* ``plain``: one router, no telemetry;
* ``telemetry``: the same with ``io.l5d.prometheus`` and ``io.l5d.recentRequests`` (sampleRate 0.25);
* ``override``: ``plain`` with ``l5d-dtab: /host/world => /srv/world-v2;`` on every request (parsed
  overrides are cached, so this measures the per-request cost of carrying one);
* ``totalTimeoutMs``: ``plain`` with ``service.totalTimeoutMs: 10000`` on the router (every request
  has a deadline: the lane computes and forwards it and arms its timer);
* ``maxConcurrentRequests``: ``plain`` with ``maxConcurrentRequests: 1000`` on the server (the lane
  serves it, counting its requests in flight with Python's);
* ``override in baggage``: a router with ``dtabBaggage`` and the same override as a W3C ``baggage``
  member beside two others (the lane keys the route by the member and rewrites ``baggage`` per
  request), against ``override``;
* ``signed override at an edge``: an edge (``clearContext``) with ``signedOverrides`` and the same
  override signed (``l5d-dtab-sig``; the lane keys the route by the signature and checks its
  expiry), against ``override`` (unsigned, inside);
* ``2 workers``: ``plain`` with ``--workers 2`` (the proxy then has both cores; wrk and the origin
  are not pinned away from it, so its requests/s gain is what two cores shared with the load give).

What sharing costs the workers is measured apart, open loop (``loadgen``, fixed rates): one worker
at R req/s against two workers at 2R req/s, so that each worker sees the same rate and batches
alike; the CPU per request of the whole process group (workers and supervisor) is compared. The
closed-loop figure above mixes in the contention for this machine's two cores.

    python bench/variants.py [--seconds 3] [--rounds 3] [--connections 16] [--worker-rate 2000]
"""

from __future__ import annotations

import argparse
import base64
import os
import time
import shutil
import statistics
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import NGINX_ORIGIN, Proc, free_port, measure, start_nginx, start_pyproxy, wait_port  # noqa: E402
from suite import loadgen_binary, open_loop  # noqa: E402

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--worker-rate", type=int, default=2000, help="open-loop rate per worker (default 2000/s)")
    args = ap.parse_args(argv)
    binary = loadgen_binary(None)
    per_worker: Dict[str, List[float]] = {"1 worker": [], "2 workers": []}
    tmp = tempfile.mkdtemp(prefix="pyproxy-variants-")
    procs: List[Proc] = []
    try:
        origin = free_port()
        procs.append(start_nginx(NGINX_ORIGIN.format(dir=tmp, port=origin), tmp, "origin", 1))
        wait_port(origin)
        host = ["Host: origin"]
        override = host + ["l5d-dtab: /host/world => /srv/world-v2;"]
        plan: Dict[str, Tuple[Proc, int, List[str]]] = {}
        for name, telemetry, workers in (("plain", False, 1), ("telemetry", True, 1), ("2 workers", False, 2)):
            port = free_port()
            # one worker pinned to CPU 0; two workers unpinned (they share both cores with the load)
            proc = start_pyproxy("native", origin, port, tmp, 0 if workers == 1 else None, telemetry=telemetry, workers=workers)
            procs.append(proc)
            plan[name] = (proc, port, host)
        plan["override"] = (plan["plain"][0], plan["plain"][1], override)
        port = free_port()
        procs.append(start_pyproxy("native", origin, port, tmp, 0, total_timeout_ms=10000))
        plan["totalTimeoutMs"] = (procs[-1], port, host)
        port = free_port()
        procs.append(start_pyproxy("native", origin, port, tmp, 0, max_concurrent=1000))
        plan["maxConcurrentRequests"] = (procs[-1], port, host)
        port = free_port()
        procs.append(start_pyproxy("native", origin, port, tmp, 0, dtab_baggage=True))
        bag = host + ["baggage: user=alice,l5d-dtab=/host/world=>/srv/world-v2,session=7f3a9c"]
        plan["override in baggage"] = (procs[-1], port, bag)
        keys = os.path.join(tmp, "dtab-keys")
        key = os.urandom(32)
        with open(keys, "w") as f:
            f.write(f"bench {base64.b64encode(key).decode()}\n")
        from pyproxy.http.signature import sign

        dtab = b"/host/world => /srv/world-v2;"
        sig = sign(key, b"bench", int(time.time()) + 86400, dtab).decode()
        port = free_port()
        procs.append(start_pyproxy("native", origin, port, tmp, 0, signed_keys=keys))
        plan["signed override at an edge"] = (procs[-1], port, host + [f"l5d-dtab: {dtab.decode()}", f"l5d-dtab-sig: {sig}"])
        for _, port, _ in plan.values():
            wait_port(port, 60)
        for name, (proc, port, hdrs) in plan.items():
            measure(proc, port, 1, args.connections, hdrs)  # warm-up
        results: Dict[str, List[Dict[str, float]]] = {name: [] for name in plan}
        order = list(plan)
        for r in range(args.rounds):
            for name in order if r % 2 == 0 else reversed(order):
                proc, port, hdrs = plan[name]
                results[name].append(measure(proc, port, args.seconds, args.connections, hdrs))
            for name, key, workers in (("1 worker", "plain", 1), ("2 workers", "2 workers", 2)):
                proc, port, _ = plan[key]
                run = open_loop(binary, proc, port, args.worker_rate * workers, max(args.seconds, 2.0), args.connections, 1000)
                per_worker[name].append(run["cpu_us_per_req"])
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {n: {k: statistics.median(x[k] for x in rs) for k in ("rps", "cpu_us_per_req")} for n, rs in results.items()}
    print(f"pyproxy native, {args.rounds} rounds x {args.seconds:g} s, wrk -c{args.connections}, medians\n")
    print("| variant | requests/s | proxy CPU µs/request |\n| --- | ---: | ---: |")
    for n, m in med.items():
        print(f"| {n} | {m['rps']:.0f} | {m['cpu_us_per_req']:.1f} |")
    base = med["plain"]
    print("\n| ratio (same run) | value | goal |\n| --- | ---: | ---: |")
    print(f"| CPU/request, telemetry on vs off | {med['telemetry']['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x | <= 1.1x |")
    print(f"| CPU/request, l5d-dtab override vs none | {med['override']['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x | <= 1.2x |")
    over = med["override"]["cpu_us_per_req"]
    print(f"| CPU/request, override in baggage vs in l5d-dtab | {med['override in baggage']['cpu_us_per_req'] / over:.2f}x | <= 1.1x |")
    print(f"| CPU/request, signed override at an edge vs unsigned inside | {med['signed override at an edge']['cpu_us_per_req'] / over:.2f}x | <= 1.2x |")
    print(f"| CPU/request, totalTimeoutMs vs none | {med['totalTimeoutMs']['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x | <= 1.1x |")
    print(f"| CPU/request, maxConcurrentRequests vs none | {med['maxConcurrentRequests']['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x | <= 1.05x |")
    print(f"| CPU/request, 2 workers vs 1, closed loop (cores shared with the load) | {med['2 workers']['cpu_us_per_req'] / base['cpu_us_per_req']:.2f}x | - |")
    one, two = (statistics.median(per_worker[k]) for k in ("1 worker", "2 workers"))
    rate = args.worker_rate
    print(f"| CPU/request, 2 workers at {2 * rate}/s vs 1 at {rate}/s (open loop, same rate per worker) | {two / one:.2f}x ({two:.1f} / {one:.1f} µs) | <= 1.1x |")
    print(f"| requests/s, 2 workers vs 1, closed loop | {med['2 workers']['rps'] / base['rps']:.2f}x | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
