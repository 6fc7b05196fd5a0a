"""Client and service policies: backoffs, load balancers, failure accrual, retry and requeue budgets,
retries and the host connection pool (Linkerd 1.x sections 3.2-3.5 and 3.7).

Each polymorphic family is a msgspec tagged union on ``kind``. ``loadBalancer`` without ``kind`` means
``p2c``; :mod:`.legacy` inserts it, because msgspec tags cannot default.
"""

from __future__ import annotations

from typing import Annotated, Optional, Union

from msgspec import Meta

from .base import Base, Fraction, NonNegInt, Plugin, PosInt, invalid

__all__ = [
    "Constant",
    "Jittered",
    "Backoff",
    "P2c",
    "Ewma",
    "Aperture",
    "Heap",
    "RoundRobin",
    "LoadBalancer",
    "ConsecutiveFailures",
    "SuccessRate",
    "SuccessRateWindowed",
    "NoFailureAccrual",
    "FailureAccrual",
    "Budget",
    "Retries",
    "HostConnectionPool",
    "DEFAULT_LOAD_BALANCER",
    "DEFAULT_FAILURE_ACCRUAL",
]

# === backoffs (3.5) ===


class Constant(Base, tag_field="kind", tag="constant", kw_only=True):
    """A fixed delay."""

    ms: NonNegInt = 0


class Jittered(Base, tag_field="kind", tag="jittered", kw_only=True):
    """AWS-style decorrelated jitter between ``minMs`` and ``maxMs``."""

    min_ms: NonNegInt
    max_ms: NonNegInt

    def __post_init__(self) -> None:
        if self.max_ms < self.min_ms:
            raise invalid("maxMs", f"must be >= minMs ({self.min_ms})")


Backoff = Union[Constant, Jittered]

# The failure-accrual probe delay when none is configured: 5 s growing to 5 min (FailureAccrualInitializer).
DEFAULT_ACCRUAL_BACKOFF = Jittered(min_ms=5000, max_ms=300000)
# No delay between application retries unless configured (RetriesConfig).
DEFAULT_RETRY_BACKOFF = Constant()

# === load balancers (3.2) ===


class _Balancer(Plugin, kw_only=True):
    FAMILY = "loadBalancer"

    # true: endpoints removed by discovery stay while healthy (removals become advisory)
    enable_probation: bool = False


class P2c(_Balancer, tag_field="kind", tag="p2c", kw_only=True):
    """Power of two choices, least outstanding requests (Linkerd's default)."""

    max_effort: PosInt = 5


class Ewma(_Balancer, tag_field="kind", tag="ewma", kw_only=True):
    """Power of two choices on peak-EWMA latency times load."""

    max_effort: PosInt = 5
    decay_time_ms: PosInt = 10000


class Aperture(_Balancer, tag_field="kind", tag="aperture", kw_only=True):
    """Least loaded within a subset sized to keep per-node load between lowLoad and highLoad."""

    max_effort: PosInt = 5
    smooth_window_ms: PosInt = 5000  # old docs said smoothWin; Linkerd's code reads smoothWindowMs
    low_load: Annotated[float, Meta(ge=0.0)] = 0.5
    high_load: Annotated[float, Meta(ge=0.0)] = 2.0
    min_aperture: PosInt = 1

    def __post_init__(self) -> None:
        if self.high_load < self.low_load:
            raise invalid("highLoad", f"must be >= lowLoad ({self.low_load})")


class Heap(_Balancer, tag_field="kind", tag="heap", kw_only=True):
    """Least loaded via a min-heap."""


class RoundRobin(_Balancer, tag_field="kind", tag="roundRobin", kw_only=True):
    """Round robin."""

    max_effort: PosInt = 5


LoadBalancer = Union[P2c, Ewma, Aperture, Heap, RoundRobin]
DEFAULT_LOAD_BALANCER = P2c()

# === failure accrual (3.3) ===


class _Accrual(Plugin, kw_only=True):
    FAMILY = "failureAccrual"

    backoff: Backoff = DEFAULT_ACCRUAL_BACKOFF  # how long a dead endpoint waits for its probe


class ConsecutiveFailures(_Accrual, tag_field="kind", tag="io.l5d.consecutiveFailures", kw_only=True):
    """Mark an endpoint dead after ``failures`` consecutive failures."""

    failures: PosInt


class SuccessRate(_Accrual, tag_field="kind", tag="io.l5d.successRate", kw_only=True):
    """Mark dead when the success rate over the last ``requests`` requests drops below ``successRate``."""

    success_rate: Fraction
    requests: PosInt


class SuccessRateWindowed(_Accrual, tag_field="kind", tag="io.l5d.successRateWindowed", kw_only=True):
    """Mark dead when the success rate over the last ``window`` seconds drops below ``successRate``."""

    success_rate: Fraction
    window: PosInt


class NoFailureAccrual(_Accrual, tag_field="kind", tag="none", kw_only=True):
    """Never mark an endpoint dead."""


FailureAccrual = Union[ConsecutiveFailures, SuccessRate, SuccessRateWindowed, NoFailureAccrual]
DEFAULT_FAILURE_ACCRUAL = ConsecutiveFailures(failures=5)

# === budgets, retries, pools (3.4, 3.7) ===


class Budget(Base, kw_only=True):
    """A retry (or requeue) budget: deposits from successes over ``ttlSecs``, plus a floor."""

    ttl_secs: Annotated[int, Meta(ge=1, le=60)] = 10  # Finagle's RetryBudget requires 1..60 s
    min_retries_per_sec: NonNegInt = 10
    percent_can_retry: Annotated[float, Meta(ge=0.0, le=1000.0)] = 0.2


DEFAULT_BUDGET = Budget()


class Retries(Base, kw_only=True):
    """Application-level retries of a service: budget and the delay between attempts."""

    budget: Budget = DEFAULT_BUDGET
    backoff: Backoff = DEFAULT_RETRY_BACKOFF


class HostConnectionPool(Base, kw_only=True):
    """Per-endpoint connection pool (HTTP/1, thrift, mux). None: unbounded / forever."""

    min_size: NonNegInt = 0
    max_size: Optional[PosInt] = None
    idle_time_ms: Optional[NonNegInt] = None
    max_waiters: Optional[NonNegInt] = None

    def __post_init__(self) -> None:
        if self.max_size is not None and self.max_size < self.min_size:
            raise invalid("maxSize", f"must be >= minSize ({self.min_size})")
