"""Retry budgets and backoffs (Linkerd 1.x ``retries`` and ``requeueBudget``, Finagle's RetryBudget).

A :class:`RetryBudget` lets retries be at most ``percentCanRetry`` of the requests seen in the last
``ttlSecs``, plus a floor of ``minRetriesPerSec``: over any window of ``ttl`` seconds,

    retries <= percentCanRetry * requests + minRetriesPerSec * ttl

so an outage can never turn into a retry storm. It counts in one-second buckets over the window
(time is passed in, so tests need no clock).

Backoffs give the delay before retry ``n``: ``constant`` (``ms``) or ``jittered`` (AWS-style
decorrelated jitter between ``minMs`` and ``maxMs``, with the random draw passed in). Sans-IO.
"""

from __future__ import annotations

import math
from typing import List, Optional

__all__ = ["RetryBudget", "ConstantBackoff", "JitteredBackoff"]


class RetryBudget:
    """Finagle-style retry budget over a sliding window of ``ttl`` seconds (one-second buckets)."""

    __slots__ = ("ttl", "min_per_sec", "percent", "_requests", "_retries", "_epoch", "exhausted")

    def __init__(self, ttl_secs: int = 10, min_retries_per_sec: int = 10, percent_can_retry: float = 0.2) -> None:
        if ttl_secs < 1:
            raise ValueError("ttlSecs must be >= 1")
        self.ttl = int(ttl_secs)
        self.min_per_sec = min_retries_per_sec
        self.percent = percent_can_retry
        self._requests: List[int] = [0] * self.ttl
        self._retries: List[int] = [0] * self.ttl
        self._epoch: Optional[int] = None
        self.exhausted = 0

    def _advance(self, now: float) -> int:
        second = int(math.floor(now))
        if self._epoch is None:
            self._epoch = second
        elif second > self._epoch:
            for s in range(self._epoch + 1, min(second, self._epoch + self.ttl) + 1):
                i = s % self.ttl
                self._requests[i] = 0
                self._retries[i] = 0
            self._epoch = second
        return self._epoch % self.ttl

    def deposit(self, now: float) -> None:
        """A request was made (each one earns ``percentCanRetry`` of a retry)."""
        self._requests[self._advance(now)] += 1

    def deposit_many(self, now: float, count: int) -> None:
        """``count`` requests made in the second of ``now``."""
        self._requests[self._advance(now)] += count

    def try_withdraw(self, now: float) -> bool:
        """Spend one retry if the budget allows it."""
        i = self._advance(now)
        allowed = self.min_per_sec * self.ttl + self.percent * sum(self._requests)
        if sum(self._retries) + 1 > allowed:
            self.exhausted += 1
            return False
        self._retries[i] += 1
        return True

    def balance(self, now: float) -> float:
        """Retries still allowed in the current window (a gauge for metrics)."""
        self._advance(now)
        return self.min_per_sec * self.ttl + self.percent * sum(self._requests) - sum(self._retries)


class ConstantBackoff:
    __slots__ = ("delay",)

    def __init__(self, ms: int = 0) -> None:
        self.delay = ms / 1000.0

    def next(self, previous: float, draw: float) -> float:
        return self.delay


class JitteredBackoff:
    """Decorrelated jitter: ``min(max, uniform(min, previous * 3))``, the first delay being ``min``."""

    __slots__ = ("lo", "hi")

    def __init__(self, min_ms: int, max_ms: int) -> None:
        if min_ms > max_ms:
            raise ValueError("minMs must not exceed maxMs")
        self.lo = min_ms / 1000.0
        self.hi = max_ms / 1000.0

    def next(self, previous: float, draw: float) -> float:
        """The next delay after ``previous`` (0 for the first), ``draw`` uniform in [0, 1)."""
        if previous <= 0:
            return self.lo
        top = max(self.lo, previous * 3)
        return min(self.hi, self.lo + (top - self.lo) * draw)
