"""Failure accrual: when to stop sending to an endpoint for a while (Linkerd 1.x ``failureAccrual``).

Policies (linkerd1.md §3.3): ``io.l5d.consecutiveFailures`` (N in a row; the default, N = 5),
``io.l5d.successRate`` (an EWMA of successes over about N requests below a threshold),
``io.l5d.successRateWindowed`` (the same over a time window), ``none``.

States per endpoint: alive -> dead (for a backoff: jittered 5 s..300 s by default, growing with each
death) -> probing (one request allowed) -> alive again on success, dead again on failure. The
balancer is told through ``set_down``; it still sends to a dead endpoint when every endpoint is
dead (a request is never refused only because all look dead). Sans-IO: time and draws passed in.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .retry import ConstantBackoff, JitteredBackoff

__all__ = ["Accrual", "ALIVE", "DEAD", "PROBING"]

ALIVE, DEAD, PROBING = "alive", "dead", "probing"


class _Policy:
    def record(self, ok: bool, now: float) -> bool:
        """Record one result; True when the endpoint should be marked dead."""
        return False

    def revive(self) -> None:
        pass


class _Consecutive(_Policy):
    def __init__(self, failures: int) -> None:
        self.limit = failures
        self.run = 0

    def record(self, ok: bool, now: float) -> bool:
        self.run = 0 if ok else self.run + 1
        return self.run >= self.limit

    def revive(self) -> None:
        self.run = 0


class _SuccessRate(_Policy):
    """EWMA of success (1) / failure (0) with a window of about ``requests`` samples."""

    def __init__(self, rate: float, requests: int) -> None:
        self.threshold = rate
        self.alpha = 2.0 / (requests + 1)
        self.min_samples = requests
        self.value = 1.0
        self.samples = 0

    def record(self, ok: bool, now: float) -> bool:
        self.value += self.alpha * ((1.0 if ok else 0.0) - self.value)
        self.samples += 1
        return self.samples >= self.min_samples and self.value < self.threshold

    def revive(self) -> None:
        self.value = 1.0
        self.samples = 0


class _SuccessRateWindowed(_Policy):
    """Time-decayed success rate over ``window`` seconds."""

    def __init__(self, rate: float, window: float) -> None:
        self.threshold = rate
        self.tau = window
        self.value = 1.0
        self.stamp: Optional[float] = None

    def record(self, ok: bool, now: float) -> bool:
        if self.stamp is None:
            self.stamp = now
        # Samples at the same instant still count: each weighs at least a thousandth of the window.
        w = math.exp(-max(now - self.stamp, self.tau / 1000.0) / self.tau)
        self.value = self.value * w + (1.0 if ok else 0.0) * (1 - w)
        self.stamp = now
        return self.value < self.threshold

    def revive(self) -> None:
        self.value = 1.0
        self.stamp = None


class Accrual:
    """The accrual state of one endpoint."""

    __slots__ = ("policy", "backoff", "state", "until", "delay", "removals", "revivals", "probes")

    def __init__(self, policy: _Policy, backoff: Any) -> None:
        self.policy = policy
        self.backoff = backoff
        self.state = ALIVE
        self.until = 0.0
        self.delay = 0.0
        self.removals = 0
        self.revivals = 0
        self.probes = 0

    @classmethod
    def default(cls) -> "Accrual":
        """Linkerd's default: 5 consecutive failures, then a jittered backoff from 5 s to 300 s."""
        return cls(_Consecutive(5), JitteredBackoff(5000, 300000))

    @classmethod
    def from_config(cls, cfg: Any) -> Optional["Accrual"]:
        """An accrual for one endpoint from a ``failureAccrual`` config (None for kind ``none``)."""
        kind = getattr(cfg, "kind", None) or type(cfg).__struct_config__.tag  # type: ignore[attr-defined]
        if kind == "none":
            return None
        if kind == "io.l5d.consecutiveFailures":
            policy: _Policy = _Consecutive(cfg.failures)
        elif kind == "io.l5d.successRate":
            policy = _SuccessRate(cfg.success_rate, cfg.requests)
        elif kind == "io.l5d.successRateWindowed":
            policy = _SuccessRateWindowed(cfg.success_rate, cfg.window)
        else:
            raise ValueError(f"failure accrual {kind} is not supported")
        b = cfg.backoff
        bkind = getattr(b, "kind", None) or type(b).__struct_config__.tag  # type: ignore[attr-defined]
        backoff = ConstantBackoff(b.ms) if bkind == "constant" else JitteredBackoff(b.min_ms, b.max_ms)
        return cls(policy, backoff)

    def available(self, now: float) -> bool:
        """Whether the endpoint takes requests now (dead past its backoff becomes a probe)."""
        if self.state == DEAD and now >= self.until:
            self.state = PROBING
            self.probes += 1
        return self.state != DEAD

    def record(self, ok: bool, now: float, draw: float) -> bool:
        """Record a result; returns True when the endpoint's availability changed."""
        if self.state == PROBING:
            if ok:
                self.state = ALIVE
                self.delay = 0.0
                self.policy.revive()
                self.revivals += 1
                return True
            return self._kill(now, draw)
        if self.policy.record(ok, now) and self.state == ALIVE:
            return self._kill(now, draw)
        return False

    def fail_fast(self, now: float, draw: float) -> bool:
        """A connection to the endpoint could not be made (``failFast``): dead now, whatever the
        policy's count says; returns True when its availability changed."""
        if self.state == DEAD:
            return False
        return self._kill(now, draw)

    @classmethod
    def never(cls) -> "Accrual":
        """No policy marks the endpoint dead (kind ``none``), but ``failFast`` still may."""
        return cls(_Policy(), JitteredBackoff(5000, 300000))

    def _kill(self, now: float, draw: float) -> bool:
        self.delay = self.backoff.next(self.delay, draw)
        self.until = now + self.delay
        self.state = DEAD
        self.removals += 1
        return True
