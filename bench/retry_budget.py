"""Retry budgets under a total outage: every origin answers 503; count upstream attempts.

Uses the resilience test environment (tests/test_resilience.py): the ``resilient`` router classifies
with ``io.l5d.http.retryableRead5XX`` and has ``retries.budget: {ttlSecs: 10, minRetriesPerSec: 0,
percentCanRetry: 0.5}``; three origins all answer 503. The bound to hold:

    attempts <= requests x (1 + percentCanRetry) + minRetriesPerSec x seconds

    python bench/retry_budget.py [--requests 100] [--impl native]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import test_resilience as env_mod  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--impl", default="native")
    args = ap.parse_args()
    env = env_mod.Env(args.impl)
    try:
        before = sum(o.hits for o in env.bad)
        t0 = time.monotonic()
        statuses = [env_mod.request(env.addr, "allbad")[0] for _ in range(args.requests)]
        seconds = time.monotonic() - t0
        attempts = sum(o.hits for o in env.bad) - before
    finally:
        env.close()
    bound = args.requests * (1 + 0.5) + 0 * seconds
    print(f"{args.requests} requests in {seconds:.1f} s, all answered {sorted(set(statuses))}; "
          f"upstream attempts {attempts}; bound {bound:g} ({'met' if attempts <= bound else 'NOT met'})")
    return 0 if attempts <= bound else 1


if __name__ == "__main__":
    sys.exit(main())
