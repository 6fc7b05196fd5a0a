"""In-run speed ratios of the naming kernels, native vs pure, and the goals they must meet.

Absolute times on a shared 2-core machine mean little; ratios measured within one run do. This runs
``bench/bench_naming.py`` once with the benchmarks enabled (short rounds, well under a minute) or reads
a pytest-benchmark JSON file, then prints a Markdown table:

* per operation (benchmark group): native mean, pure mean, pure / native;
* the native lookup time at 100,000 dentries over that at 10.

Goals (shown in the table as met or not):

* every ``lookup`` group: native >= 20x pure (not met: see README "Benchmarks");
* every ``read_dtab`` group: native >= 10x pure;
* native ``lookup 100000`` <= 2x native ``lookup 10``.

``--check`` (what CI runs) exits 1 on a *regression far outside noise*: a benchmark answered wrongly,
native below its floor (lookup >= 2x pure, read_dtab >= 5x pure), or the lookup cost growing with
dtab size (> 2x from 10 to 100,000 dentries).

Usage::

    python bench/ratios.py [--check] [--json FILE] [--max-time SECONDS] [--min-rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_FILE = os.path.join("bench", "bench_naming.py")

# (group prefix, minimum pure/native ratio)
SPEEDUP_GOALS: Tuple[Tuple[str, float], ...] = (("lookup", 20.0), ("read_dtab", 10.0))
SCALE_GOAL = ("lookup 100000", "lookup 10", 2.0)  # native big / native small <= 2.0
# (group prefix, minimum pure/native ratio) below which CI fails: a regression, not a missed goal.
SPEEDUP_FLOORS: Tuple[Tuple[str, float], ...] = (("lookup", 2.0), ("read_dtab", 5.0))


def run_benchmarks(json_path: str, max_time: float, min_rounds: int) -> int:
    """Runs the naming benchmarks once, writing pytest-benchmark's JSON; returns pytest's exit code."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        BENCH_FILE,
        "--benchmark-enable",
        f"--benchmark-json={json_path}",
        f"--benchmark-max-time={max_time}",
        f"--benchmark-min-rounds={min_rounds}",
        "--benchmark-disable-gc",
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
    return proc.returncode


def twin_of(bench: dict) -> Optional[str]:
    params = bench.get("params") or {}
    for key in ("twin", "kernels"):
        if params.get(key) in ("native", "pure"):
            return params[key]
    name = bench.get("name", "")
    for twin in ("native", "pure"):
        if f"[{twin}" in name or f"-{twin}]" in name or f"-{twin}-" in name:
            return twin
    return None


def collect(data: dict) -> Tuple[Dict[str, Dict[str, float]], List[str]]:
    """``{group: {twin: mean seconds}}`` and the names of benchmarks whose answer was not correct."""
    means: Dict[str, Dict[str, float]] = {}
    wrong: List[str] = []
    for b in data.get("benchmarks", []):
        twin = twin_of(b)
        group = b.get("group") or b.get("name")
        if twin is None:
            continue
        means.setdefault(group, {})[twin] = b["stats"]["mean"]
        if (b.get("extra_info") or {}).get("correct") is not True:
            wrong.append(b.get("fullname", b.get("name", "?")))
    return means, wrong


def fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def goal_for(group: str) -> Optional[float]:
    for prefix, goal in SPEEDUP_GOALS:
        if group.startswith(prefix):
            return goal
    return None


def _group_key(group: str) -> Tuple[str, float, str]:
    op, _, rest = group.partition(" ")
    return (op, float(rest) if rest.isdigit() else -1.0, rest)


def report(means: Dict[str, Dict[str, float]], wrong: List[str]) -> Tuple[str, List[str], List[str]]:
    """The Markdown table, the missed goals, and the failures (regressions) ``--check`` fails on."""
    missed: List[str] = []
    failures: List[str] = []
    lines = [
        "| operation | native mean | pure mean | pure / native | goal | met |",
        "| --- | ---: | ---: | ---: | ---: | :---: |",
    ]
    for group in sorted(means, key=_group_key):
        nat, pur = means[group].get("native"), means[group].get("pure")
        ratio = pur / nat if nat and pur else None
        goal = goal_for(group)
        met = "" if goal is None else ("yes" if ratio is not None and ratio >= goal else "NO")
        if met == "NO":
            missed.append(f"{group}: pure/native = {ratio if ratio is None else round(ratio, 1)}, goal >= {goal}")
        for prefix, floor in SPEEDUP_FLOORS:
            if group.startswith(prefix) and (ratio is None or ratio < floor):
                failures.append(f"{group}: pure/native = {ratio if ratio is None else round(ratio, 1)}, floor {floor}")
        ratio_text = "-" if ratio is None else f"{ratio:.1f}x"
        goal_text = "-" if goal is None else f">= {goal:g}x"
        lines.append(f"| {group} | {fmt_time(nat)} | {fmt_time(pur)} | {ratio_text} | {goal_text} | {met} |")
    big, small, limit = SCALE_GOAL
    nb, ns = means.get(big, {}).get("native"), means.get(small, {}).get("native")
    scale = nb / ns if nb and ns else None
    scale_met = scale is not None and scale <= limit
    if not scale_met:
        missed.append(f"native {big} / {small} = {scale if scale is None else round(scale, 2)}, goal <= {limit}")
        failures.append(missed[-1])
    lines.append(
        f"| native {big} / {small} | {fmt_time(nb)} | {fmt_time(ns)} | "
        f"{'-' if scale is None else f'{scale:.2f}x'} | <= {limit:g}x | {'yes' if scale_met else 'NO'} |"
    )
    for name in wrong:
        failures.append(f"{name}: result not correct")
    if wrong:
        lines.append("")
        lines.append("Incorrect results: " + ", ".join(wrong))
    return "\n".join(lines), missed, failures


def run_cli(
    argv: Optional[List[str]],
    *,
    description: str,
    run: Callable[[str, float, int], int],
    collect: Callable[[dict], Tuple[Dict[str, Dict[str, float]], List[str]]],
    report: Callable[..., Tuple[str, List[str], List[str]]],
    max_time: float,
) -> int:
    """The command line shared by the ratio scripts: run (or read) the benchmarks, print the table,
    list missed goals and regressions; ``--check`` exits 1 on a regression."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--json", help="read this pytest-benchmark JSON instead of running the benchmarks")
    ap.add_argument("--check", action="store_true", help="exit 1 on a regression (see the module docstring)")
    ap.add_argument("--max-time", type=float, default=max_time, help="--benchmark-max-time per benchmark (seconds)")
    ap.add_argument("--min-rounds", type=int, default=5, help="--benchmark-min-rounds per benchmark")
    args = ap.parse_args(argv)
    if args.json:
        with open(args.json, encoding="utf-8") as f:
            data = json.load(f)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bench.json")
            rc = run(path, args.max_time, args.min_rounds)
            if not os.path.exists(path):
                print(f"benchmarks did not run (pytest exit code {rc})", file=sys.stderr)
                return 2
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
    means, wrong = collect(data)
    if not means:
        print("no benchmarks found", file=sys.stderr)
        return 2
    table, missed, failures = report(means, wrong)
    print(table)
    if missed:
        print("\nMissed goals:\n" + "\n".join(f"- {m}" for m in missed))
    if failures:
        print("\nRegressions (--check fails on these):\n" + "\n".join(f"- {m}" for m in failures))
    return 1 if args.check and failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(
        argv, description=__doc__.splitlines()[0], run=run_benchmarks, collect=collect, report=report, max_time=0.25
    )


if __name__ == "__main__":
    sys.exit(main())
