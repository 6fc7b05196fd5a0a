"""The long fuzz run (issue 11): ``tests/fuzz.py``'s seeded cases against the lane and the trio path.

    python bench/fuzz.py --cases 10000 --seed 1          # both paths (native kernels), then compare
    python bench/fuzz.py --cases 2000 --paths pure       # the pure kernels (no lane)
    python bench/fuzz.py --seed 1 --case 4711            # replay one case on each path, verbosely

Each path is one proxy process (``native`` with the lane on, ``native`` with ``PYPROXY_LANE=off``,
or ``pure``) in front of the fuzzer's recording origin; the paths run one after the other, never
at once. Per path: a summary table (cases, answered by final status, closed, reset, timeouts,
failures, RSS, time), every failure with its bytes and replay command; then the cases on which the
lane and the trio path differ, known (``fuzz.KNOWN``) or not. Exit status 1 when anything is wrong:
a failure no known entry excuses, an unknown difference, a dead proxy, a traceback on its stderr,
a normal GET not served afterwards, or RSS grown by more than ``--rss-bound-mib``.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import fuzz  # noqa: E402  (tests/ is put on the path above)

PATHS = {"lane-on": ("native", True), "lane-off": ("native", False), "pure": ("pure", False)}


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def summary(runs: Dict[str, fuzz.Run]) -> str:
    names = list(runs)
    rows: List[List[str]] = []

    def row(label: str, values: List[object]) -> None:
        rows.append([label] + [str(v) for v in values])

    row("cases", [len(r.results) for r in runs.values()])
    finals = {n: collections.Counter(x.finals[-1] for x in r.results if x.outcome == "answered" and x.finals) for n, r in runs.items()}
    statuses = sorted(set().union(*finals.values()))
    row("answered", [sum(1 for x in r.results if x.outcome == "answered") for r in runs.values()])
    for s in statuses:
        row(f"  last final status {s}", [finals[n][s] for n in names])
    row("  with no final status", [sum(1 for x in r.results if x.outcome == "answered" and not x.finals) for r in runs.values()])
    row("closed (no answer)", [sum(1 for x in r.results if x.outcome == "closed") for r in runs.values()])
    row("reset by the client", [sum(1 for x in r.results if x.outcome == "reset") for r in runs.values()])
    row("timeouts", [sum(1 for x in r.results if x.outcome == "timeout") for r in runs.values()])
    row("failures (not known)", [len(r.failures) for r in runs.values()])
    row("failures excused (KNOWN)", [", ".join(f"{k}: {v}" for k, v in collections.Counter(x.known for x in r.known_failures).items()) or "0" for r in runs.values()])
    row("half-closed, left open after the answers", [sum(1 for x in r.results if x.lingered) for r in runs.values()])
    row("slowest case (s)", [f"{max((x.elapsed for x in r.results), default=0):.3f}" for r in runs.values()])
    row("RSS before / max / after (MiB)", [f"{_mib(r.rss_before)} / {_mib(r.rss_max)} / {_mib(r.rss_after)}" for r in runs.values()])
    row("alive, no traceback, GET after", [f"{r.alive}, {not r.traceback}, {r.after_status}" for r in runs.values()])
    row("time (s)", [f"{r.seconds:.1f}" for r in runs.values()])
    header = ["", *names]
    widths = [max(len(x[i]) for x in rows + [header]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join((c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths))) + " |" for r in rows]
    return "\n".join(lines)


def replay(seed: int, index: int, paths: List[str]) -> int:
    case = fuzz.make_case(seed, index)
    ref = fuzz.expect(case.data)
    print(f"seed={seed} case={index}: {case.origin}, {', '.join(case.mutations) or 'unmutated'}; ending {case.ending}")
    print(f"bytes={case.data!r}")
    print(f"reference: {len(ref.complete)} complete requests {[r.method for r in ref.complete]}, tail {ref.tail!r}" + (f" ({ref.status})" if ref.status else ""))
    bad = 0
    for name in paths:
        target = fuzz.Target(*PATHS[name])
        try:
            target.warm_up(2)
            r = fuzz.run_case(target.addr, case, target.origin)
        finally:
            target.close()
        print(f"\n[{name}] {r.outcome} {list(r.statuses)} in {r.elapsed:.3f} s; closed by the proxy: {r.closed}; lingered: {r.lingered}")
        print(f"  failure: {r.failure}" + (f" (known: {r.known})" if r.known else ""))
        print(f"  received={r.received!r}")
        bad += bool(r.failure and not r.known)
    return 1 if bad else 0


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="index of the first case")
    ap.add_argument("--case", type=int, default=None, help="replay this one case (with --seed) and show what came back")
    ap.add_argument("--paths", default="lane-on,lane-off", help="comma-separated, of: " + ", ".join(PATHS))
    ap.add_argument("--rss-bound-mib", type=float, default=16.0, help="largest RSS growth accepted (default %(default)s)")
    ap.add_argument("--show", type=int, default=20, help="failures and differences printed per kind")
    args = ap.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    for p in paths:
        if p not in PATHS:
            ap.error(f"unknown path {p!r}")
    if args.case is not None:
        return replay(args.seed, args.case, paths)

    print(f"python bench/fuzz.py --cases {args.cases} --seed {args.seed}" + (f" --start {args.start}" if args.start else "") + f" --paths {','.join(paths)}")
    runs: Dict[str, fuzz.Run] = {}
    bad = False
    for name in paths:
        t0 = time.monotonic()
        target = fuzz.Target(*PATHS[name])
        try:
            def progress(n: int, name: str = name, t0: float = t0) -> None:
                if n % 1000 == 0:
                    print(f"  {name}: {n} cases, {time.monotonic() - t0:.0f} s, RSS {_mib(target.rss_kib())} MiB", flush=True)

            runs[name] = run = fuzz.run(target, args.seed, args.cases, args.start, progress)
        finally:
            target.close()
        for r in run.failures[: args.show]:
            print(fuzz.describe(r, name))
        for v in run.late_violations[: args.show]:
            print(f"[{name}] seen at the origin after case {v.case} was judged: {v.what}: {v.data[:300]!r}")
        grew = run.rss_max - run.rss_before
        problems = [
            f"{len(run.failures)} failures" if run.failures else "",
            f"{len(run.late_violations)} late origin violations" if run.late_violations else "",
            "" if run.alive else "the proxy died",
            "a traceback on stderr" if run.traceback else "",
            "" if run.after_status == 200 else f"a normal GET afterwards got {run.after_status}",
            f"RSS grew by {grew / 1024:.1f} MiB" if grew > args.rss_bound_mib * 1024 else "",
            f"stopped after {len(run.results)} cases" if len(run.results) < args.cases else "",
        ]
        problems = [p for p in problems if p]
        if run.traceback:
            print(run.stderr[-5000:])
        print(f"[{name}] " + ("; ".join(problems) if problems else "nothing found"), flush=True)
        bad |= bool(problems)

    print()
    print(summary(runs))
    if "lane-on" in runs and "lane-off" in runs:
        diffs = fuzz.compare(runs["lane-on"].results, runs["lane-off"].results)
        unknown = [d for d in diffs if d.known is None]
        counts = collections.Counter(d.known for d in diffs if d.known)
        print(f"\nlane vs trio path: {len(diffs)} of {len(runs['lane-on'].results)} cases differ; known: "
              + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none") + f"; unknown: {len(unknown)}")
        for d in unknown[: args.show]:
            print(fuzz.describe_difference(d))
        bad |= bool(unknown)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
