"""What one change bought: pyproxy native from another checkout (A) against this one (B), interleaved.

Each round measures A then B on the same nginx origin: a closed loop (``wrk -c16``) and an open
loop at a fixed rate (``loadgen``), both pinned as in ``bench/suite.py``; the figures are the CPU
per request of each proxy (from /proc) and their medians over the rounds. A is started from its
own directory, so it runs that checkout's Python code and native module (build it there first:
``git worktree add /tmp/a <commit>``, then copy or build ``pyproxy/_native.abi3.so`` in it).

    python bench/ab.py /tmp/a [--rounds 5] [--seconds 3] [--rate 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import NGINX_ORIGIN, Proc, free_port, measure, start_nginx, start_pyproxy, wait_port  # noqa: E402
from suite import loadgen_binary, open_loop  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _start_from(checkout: str, origin: int, tmp: str) -> "tuple[Proc, int]":
    port = free_port()
    here = os.getcwd()
    os.chdir(checkout)  # ``python -m pyproxy`` imports the package of the working directory
    try:
        proc = start_pyproxy("native", origin, port, tmp, 0)
    finally:
        os.chdir(here)
    wait_port(port)
    return proc, port


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="the other checkout (A); B is this one")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=int, default=1000, help="open-loop rate (default 1000/s)")
    args = ap.parse_args(argv)
    if not os.path.isfile(os.path.join(args.a, "pyproxy", "__init__.py")):
        ap.error(f"{args.a}: not a pyproxy checkout")
    binary = loadgen_binary(None)
    tmp = tempfile.mkdtemp(prefix="pyproxy-ab-")
    procs: List[Proc] = []
    closed: Dict[str, List[float]] = {"A": [], "B": []}
    opened: Dict[str, List[float]] = {"A": [], "B": []}
    try:
        origin = free_port()
        procs.append(start_nginx(NGINX_ORIGIN.format(dir=tmp, port=origin), tmp, "origin", 1))
        wait_port(origin)
        plan = {"A": _start_from(os.path.abspath(args.a), origin, tmp), "B": _start_from(ROOT, origin, tmp)}
        procs += [p for p, _ in plan.values()]
        for proc, port in plan.values():
            measure(proc, port, 1, 16, ["Host: origin"])  # warm-up
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
            for name, (proc, port) in plan.items():
                closed[name].append(measure(proc, port, args.seconds, 16, ["Host: origin"])["cpu_us_per_req"])
                opened[name].append(open_loop(binary, proc, port, args.rate, args.seconds, 16, 2000)["cpu_us_per_req"])
    finally:
        for p in procs:
            p.stop()
    print(f"| proxy CPU µs/request (medians of {args.rounds} interleaved rounds) | A | B | B / A |")
    print("| --- | ---: | ---: | ---: |")
    for label, data in (("closed loop, wrk -c16", closed), (f"open loop, {args.rate}/s", opened)):
        a, b = statistics.median(data["A"]), statistics.median(data["B"])
        print(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
