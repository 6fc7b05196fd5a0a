"""Histograms: a log-bucketed distribution (HdrHistogram-like, sparse) and its window summary.

Values fall into 64 linear sub-buckets per power of two, so a reported percentile is at most 1/64
below the true value (never above) and integers up to 128 are exact. A histogram keeps the window
being filled and the :class:`Summary` of the last full window (:meth:`Histogram.rotate`).
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Tuple, Union

__all__ = ["Histogram", "Summary", "QUANTILES", "Number", "bucket_key", "ZERO_BUCKET"]

Number = Union[int, float]

#: Linear sub-buckets per power of two: relative error <= 1/64 and integers up to 128 are exact.
_SUB = 64
_TWO_SUB = 2 * _SUB
_ZERO = -(1 << 40)  # the bucket of zero (and of negative values, clamped)
ZERO_BUCKET = _ZERO
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p9990", 0.999), ("p9999", 0.9999))


def bucket_key(v: float) -> int:
    """The bucket of a finite value (what :meth:`Histogram.add` computes inline; the lane sums its
    latencies with the same key, ``native/src/lane/results.rs``)."""
    if v > 0.0:
        m, e = math.frexp(v)
        return e * _SUB + int((m - 0.5) * _TWO_SUB)
    return _ZERO


def _lower(key: int) -> float:
    """The smallest value that falls into bucket ``key``."""
    if key == _ZERO:
        return 0.0
    e, sub = divmod(key, _SUB)
    return math.ldexp(0.5 + sub / _TWO_SUB, e)


class Summary:
    """What a histogram window sums up to: count, sum, min, max, avg and percentiles, and the
    window's bucket counts (``{bucket_key: n}``), so that summaries of several processes can be
    merged exactly (:meth:`Histogram.merge`) rather than added."""

    __slots__ = ("count", "sum", "min", "max", "avg", "p50", "p90", "p95", "p99", "p9990", "p9999", "buckets")

    def __init__(
        self, count: int = 0, total: float = 0.0, lo: float = 0.0, hi: float = 0.0, pcts: Tuple[float, ...] = (0.0,) * 6,
        buckets: Optional[Dict[int, int]] = None,
    ) -> None:
        self.count, self.sum, self.min, self.max = count, total, lo, hi
        self.avg = total / count if count else 0.0
        self.p50, self.p90, self.p95, self.p99, self.p9990, self.p9999 = pcts
        self.buckets: Dict[int, int] = buckets if buckets is not None else {}

    def items(self) -> List[Tuple[str, Number]]:
        """Linkerd's order of the expanded fields (``count`` first; the rest only when count > 0)."""
        if not self.count:
            return [("count", 0)]
        r = _round
        return [
            ("count", self.count), ("max", r(self.max)), ("min", r(self.min)), ("p50", r(self.p50)),
            ("p90", r(self.p90)), ("p95", r(self.p95)), ("p99", r(self.p99)), ("p9990", r(self.p9990)),
            ("p9999", r(self.p9999)), ("sum", r(self.sum)), ("avg", r(self.avg)),
        ]  # fmt: skip


def _round(v: float) -> Number:
    # Whole numbers print as integers (Linkerd's stats are longs); the rest to microsecond precision.
    return int(v) if v == int(v) else round(v, 3)


class Histogram:
    """Log-bucketed distribution of non-negative values (HdrHistogram-like, sparse).

    Per request: ``h.add(ms)`` (a few arithmetic operations and one dict update). ``snapshot`` is the
    summary of the last full window; :meth:`rotate` computes it and starts a new window.
    """

    __slots__ = ("count", "sum", "min", "max", "buckets", "snapshot")

    def __init__(self) -> None:
        self.snapshot = Summary()
        self._reset()

    def _reset(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.buckets: Dict[int, int] = {}

    def add(self, v: float) -> None:
        if v != v:  # NaN would poison sum, min and max
            return
        if v > 0.0:
            m, e = math.frexp(v)
            key = e * _SUB + int((m - 0.5) * _TWO_SUB)
        else:
            v = 0.0
            key = _ZERO
        self.count += 1
        self.sum += v
        if v < self.min:
            self.min = v
        if v > self.max:
            self.max = v
        b = self.buckets
        b[key] = b.get(key, 0) + 1

    def merge(self, count: int, total: float, lo: float, hi: float, buckets: Iterable[Tuple[int, int]]) -> None:
        """Add samples summed elsewhere (the lane's batches): ``count`` of them, their ``total``,
        ``lo`` and ``hi``, and ``(bucket, n)`` counts keyed by :func:`bucket_key`."""
        if not count:
            return
        self.count += count
        self.sum += total
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi
        b = self.buckets
        for key, n in buckets:
            b[key] = b.get(key, 0) + n

    def percentile(self, q: float) -> float:
        """The value at quantile ``q`` (0..1) of the current window: a bucket's lower bound, kept
        within [min, max] (so ``q=0`` is the min and ``q=1`` the max)."""
        if not self.count:
            return 0.0
        if q <= 0.0:
            return self.min
        if q >= 1.0:
            return self.max
        return self._percentiles((q,))[0]

    def _percentiles(self, qs: Iterable[float]) -> Tuple[float, ...]:
        keys = sorted(self.buckets)
        out: List[float] = []
        i, cum = 0, self.buckets[keys[0]]
        for q in qs:  # ascending
            rank = max(1, math.ceil(q * self.count - 1e-9))  # 1e-9: 0.9 * 10 is 9.000000000000002
            while cum < rank:
                i += 1
                cum += self.buckets[keys[i]]
            out.append(min(self.max, max(self.min, _lower(keys[i]))))
        return tuple(out)

    def current(self) -> Summary:
        """The summary of the window still being filled."""
        if not self.count:
            return Summary()
        return Summary(self.count, self.sum, self.min, self.max, self._percentiles(q for _, q in QUANTILES), dict(self.buckets))

    def rotate(self) -> Summary:
        self.snapshot = self.current()
        self._reset()
        return self.snapshot

    @classmethod
    def merged(cls, summaries: Iterable[Summary]) -> Summary:
        """The summary of the union of the windows ``summaries`` describe (several processes'
        histograms): their buckets merged, then percentiles, min, max, count and sum as one
        histogram of all their samples would give them."""
        h = cls()
        for s in summaries:
            h.merge(s.count, s.sum, s.min, s.max, s.buckets.items())
        return h.current()
