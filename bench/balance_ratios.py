"""In-run speed ratios of the balancer kernel, native vs pure, and the goals they must meet.

Runs ``bench/bench_balance.py`` once with the benchmarks enabled (short rounds, well under a minute)
or reads a pytest-benchmark JSON file, then prints a Markdown table per endpoint count: the cost of
one request's ``pick`` + ``end`` (harness included, the same for both twins) native and pure, their
ratio, and the native cost at 1,000 endpoints over that at 3.

Goals (DESIGN.md and the balancer issue): native >= 5x pure; native cost flat from 3 to 1,000
endpoints (<= 1.5x). ``--check`` exits 1 only on a regression far outside noise: a wrong answer,
native below 3x pure, or the 1,000/3 cost above 2x. (``bench/ratios.py`` covers the naming kernels.)

Usage::

    python bench/balance_ratios.py [--check] [--json FILE] [--max-time SECONDS] [--min-rounds N]
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ratios import fmt_time, run_cli, twin_of  # noqa: E402 - the naming script's helpers, shared

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_FILE = os.path.join("bench", "bench_balance.py")
SPEEDUP_GOAL, SPEEDUP_FLOOR = 5.0, 3.0
SCALE = ("pick 1000", "pick 3")
SCALE_GOAL, SCALE_FLOOR = 1.5, 2.0


def run_benchmarks(json_path: str, max_time: float, min_rounds: int) -> int:
    cmd = [
        sys.executable, "-m", "pytest", BENCH_FILE, "--benchmark-enable", f"--benchmark-json={json_path}",
        f"--benchmark-max-time={max_time}", f"--benchmark-min-rounds={min_rounds}", "--benchmark-disable-gc",
        "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
    return proc.returncode


def collect(data: dict) -> Tuple[Dict[str, Dict[str, float]], List[str]]:
    """``{group: {twin: mean seconds per request}}`` and the benchmarks whose answer was not correct."""
    per_request: Dict[str, Dict[str, float]] = {}
    wrong: List[str] = []
    for b in data.get("benchmarks", []):
        twin, info = twin_of(b), b.get("extra_info") or {}
        if twin is None or not str(b.get("group", "")).startswith("pick "):
            continue
        per_request.setdefault(b["group"], {})[twin] = b["stats"]["mean"] / info.get("steps", 1)
        if info.get("correct") is not True:
            wrong.append(b.get("fullname", b.get("name", "?")))
    return per_request, wrong


def report(means: Dict[str, Dict[str, float]], wrong: List[str]) -> Tuple[str, List[str], List[str]]:
    """The Markdown table, the missed goals, and the regressions ``--check`` fails on."""
    missed: List[str] = []
    failures = [f"{name}: result not correct" for name in wrong]
    lines = [
        "| pick + end, per request | native | pure | pure / native | goal | met |",
        "| --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for group in sorted(means, key=lambda g: int(g.split()[1])):
        nat, pur = means[group].get("native"), means[group].get("pure")
        ratio: Optional[float] = pur / nat if nat and pur else None
        met = ratio is not None and ratio >= SPEEDUP_GOAL
        if not met:
            missed.append(f"{group}: pure/native = {ratio and round(ratio, 2)}, goal >= {SPEEDUP_GOAL:g}")
        if ratio is None or ratio < SPEEDUP_FLOOR:
            failures.append(f"{group}: pure/native = {ratio and round(ratio, 2)}, floor {SPEEDUP_FLOOR:g}")
        text = "-" if ratio is None else f"{ratio:.1f}x"
        lines.append(f"| {group} | {fmt_time(nat)} | {fmt_time(pur)} | {text} | >= {SPEEDUP_GOAL:g}x | "
                     f"{'yes' if met else 'NO'} |")
    big, small = (means.get(g, {}).get("native") for g in SCALE)
    scale = big / small if big and small else None
    met = scale is not None and scale <= SCALE_GOAL
    if not met:
        missed.append(f"native {SCALE[0]} / {SCALE[1]} = {scale and round(scale, 2)}, goal <= {SCALE_GOAL:g}")
    if scale is None or scale > SCALE_FLOOR:
        failures.append(f"native {SCALE[0]} / {SCALE[1]} = {scale and round(scale, 2)}, floor {SCALE_FLOOR:g}")
    lines.append(f"| native {SCALE[0]} / {SCALE[1]} | {fmt_time(big)} | {fmt_time(small)} | "
                 f"{'-' if scale is None else f'{scale:.2f}x'} | <= {SCALE_GOAL:g}x | {'yes' if met else 'NO'} |")
    return "\n".join(lines), missed, failures


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(
        argv, description=__doc__.splitlines()[0], run=run_benchmarks, collect=collect, report=report, max_time=0.5
    )


if __name__ == "__main__":
    sys.exit(main())
