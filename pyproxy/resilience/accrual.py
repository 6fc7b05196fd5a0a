"""Failure accrual: when to stop sending to an endpoint for a while (Linkerd 1.x ``failureAccrual``).

Policies (linkerd1.md §3.3), as Finagle's ``FailureAccrualPolicy`` computes them:

* ``io.l5d.consecutiveFailures`` (N in a row; the default, N = 5);
* ``io.l5d.successRate``: an exponential moving average of successes (1) and failures (0) whose
  stamp is the request count, so each sample weighs ``1 - exp(-1/N)`` (the first one sets the
  average); a failure marks the endpoint dead when it is below ``successRate`` and at least N
  requests were seen;
* ``io.l5d.successRateWindowed``: the same average over time, each sample weighing
  ``1 - exp(-dt/window)`` (``dt``: seconds since the previous one, at least a thousandth of the
  window, so that samples summed at one instant still count); a failure marks the endpoint dead
  when it is below ``successRate`` and ``window`` seconds have passed since the endpoint was added
  (or last revived);
* ``none``.

Only a failure ever marks an endpoint dead (a success never does), and only an alive endpoint or
a probe. States per endpoint (Finagle's ``FailureAccrualFactory``): alive -> dead (for a backoff:
jittered 5 s..300 s by default, growing with each death) -> probing (past its backoff: the next
request is the probe) -> probe sent (busy: no other request until the probe's result) -> alive on
success (the policy's history reset), dead again on failure. The balancer is told through
``set_down``; it still sends to a dead endpoint when every endpoint is dead (a request is never
refused only because all look dead). Counters as Linkerd's ``failure_accrual/*``: ``removals``
(alive -> dead), ``probes`` (probes sent), ``revivals`` (probes that succeeded), ``removed_for_ms``.
Sans-IO: time and draws passed in.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .retry import ConstantBackoff, JitteredBackoff

__all__ = ["Accrual", "ALIVE", "DEAD", "PROBING", "PROBE_SENT"]

ALIVE, DEAD, PROBING, PROBE_SENT = "alive", "dead", "probing", "probe-sent"


class _Policy:
    """Finagle's ``FailureAccrualPolicy``: told every result, asked on failures only."""

    def record_success(self, now: float) -> None:
        pass

    def mark_dead_on_failure(self, now: float) -> bool:
        """Record one failure; True when the endpoint should be marked dead."""
        return False

    def revive(self, now: float) -> None:
        """A probe succeeded: forget the history."""


class _Consecutive(_Policy):
    def __init__(self, failures: int) -> None:
        self.limit = failures
        self.run = 0

    def record_success(self, now: float) -> None:
        self.run = 0

    def mark_dead_on_failure(self, now: float) -> bool:
        self.run += 1
        return self.run >= self.limit

    def revive(self, now: float) -> None:
        self.run = 0


class _Ema:
    """Finagle's ``Ema``: the first sample sets the average, each later one weighs ``1 - exp(-dt/window)``."""

    __slots__ = ("window", "value", "stamp")

    def __init__(self, window: float) -> None:
        self.window = window
        self.value = 0.0
        self.stamp: Optional[float] = None

    def update(self, stamp: float, x: float) -> float:
        if self.stamp is None:
            self.value = x
        else:
            w = math.exp(-max(stamp - self.stamp, 0.0) / self.window)
            self.value = x * (1.0 - w) + self.value * w
        self.stamp = stamp
        return self.value

    def reset(self) -> None:
        self.value = 0.0
        self.stamp = None


class _SuccessRate(_Policy):
    """Success rate over about ``requests`` requests (the EMA's stamp is the request count)."""

    def __init__(self, rate: float, requests: int) -> None:
        self.threshold = rate
        self.window = requests
        self.ema = _Ema(float(requests))
        self.count = 0

    def record_success(self, now: float) -> None:
        self.count += 1
        self.ema.update(self.count, 1.0)

    def mark_dead_on_failure(self, now: float) -> bool:
        self.count += 1
        return self.ema.update(self.count, 0.0) < self.threshold and self.count >= self.window

    def revive(self, now: float) -> None:
        self.count = 0
        self.ema.reset()


class _SuccessRateWindowed(_Policy):
    """Success rate over ``window`` seconds (the EMA's stamp is the time since ``start``)."""

    def __init__(self, rate: float, window: float, start: float = 0.0) -> None:
        self.threshold = rate
        self.window = window
        self.start = start
        self.ema = _Ema(window)

    def _stamp(self, now: float) -> float:
        last = self.ema.stamp
        stamp = now - self.start
        # Samples at the same instant (the lane's batches) still count: each moves the stamp on by
        # at least a thousandth of the window.
        return stamp if last is None else max(stamp, last + self.window / 1000.0)

    def record_success(self, now: float) -> None:
        self.ema.update(self._stamp(now), 1.0)

    def mark_dead_on_failure(self, now: float) -> bool:
        rate = self.ema.update(self._stamp(now), 0.0)
        return rate < self.threshold and now - self.start >= self.window

    def revive(self, now: float) -> None:
        self.start = now
        self.ema.reset()


class Accrual:
    """The accrual state of one endpoint."""

    __slots__ = ("policy", "backoff", "state", "until", "delay", "removals", "revivals", "probes", "removed_for_ms")

    def __init__(self, policy: _Policy, backoff: Any) -> None:
        self.policy = policy
        self.backoff = backoff
        self.state = ALIVE
        self.until = 0.0
        self.delay = 0.0
        self.removals = 0
        self.revivals = 0
        self.probes = 0
        self.removed_for_ms = 0

    @classmethod
    def default(cls) -> "Accrual":
        """Linkerd's default: 5 consecutive failures, then a jittered backoff from 5 s to 300 s."""
        return cls(_Consecutive(5), JitteredBackoff(5000, 300000))

    @classmethod
    def from_config(cls, cfg: Any, now: float = 0.0) -> Optional["Accrual"]:
        """An accrual for one endpoint added at ``now`` from a ``failureAccrual`` config (None for
        kind ``none``)."""
        kind = getattr(cfg, "kind", None) or type(cfg).__struct_config__.tag  # type: ignore[attr-defined]
        if kind == "none":
            return None
        if kind == "io.l5d.consecutiveFailures":
            policy: _Policy = _Consecutive(cfg.failures)
        elif kind == "io.l5d.successRate":
            policy = _SuccessRate(cfg.success_rate, cfg.requests)
        elif kind == "io.l5d.successRateWindowed":
            policy = _SuccessRateWindowed(cfg.success_rate, cfg.window, now)
        else:
            raise ValueError(f"failure accrual {kind} is not supported")
        b = cfg.backoff
        bkind = getattr(b, "kind", None) or type(b).__struct_config__.tag  # type: ignore[attr-defined]
        backoff = ConstantBackoff(b.ms) if bkind == "constant" else JitteredBackoff(b.min_ms, b.max_ms)
        return cls(policy, backoff)

    @property
    def alive(self) -> bool:
        return self.state is ALIVE

    def available(self, now: float) -> bool:
        """Whether the endpoint may take a request now (dead past its backoff becomes a probe)."""
        if self.state is DEAD and now >= self.until:
            self.state = PROBING
        return self.state is ALIVE or self.state is PROBING

    def picked(self) -> bool:
        """A request was sent to the endpoint; True when it was the probe (then the endpoint is
        busy until the probe's result)."""
        if self.state is PROBING:
            self.state = PROBE_SENT
            self.probes += 1
            return True
        return False

    def reopen(self) -> bool:
        """The probe ended without a result (the request was answered otherwise): the next request
        probes instead. True when the endpoint became available again."""
        if self.state is PROBE_SENT:
            self.state = PROBING
            return True
        return False

    def record(self, ok: bool, now: float, draw: float) -> bool:
        """Record a result; returns True when the endpoint's availability changed."""
        state = self.state
        if ok:
            if state is PROBE_SENT:
                self.state = ALIVE
                self.delay = 0.0
                self.policy.revive(now)
                self.revivals += 1
                self.policy.record_success(now)
                return True
            self.policy.record_success(now)
            return False
        if state is not ALIVE and state is not PROBE_SENT:
            return False  # dead or waiting for its probe: the result of a request sent before
        if self.policy.mark_dead_on_failure(now) or state is PROBE_SENT:
            return self._kill(now, draw)
        return False

    def fail_fast(self, now: float, draw: float) -> bool:
        """A connection to the endpoint could not be made (``failFast``): dead now, whatever the
        policy's count says; returns True when its availability changed."""
        if self.state is DEAD:
            return False
        return self._kill(now, draw)

    @classmethod
    def never(cls) -> "Accrual":
        """No policy marks the endpoint dead (kind ``none``), but ``failFast`` still may."""
        return cls(_Policy(), JitteredBackoff(5000, 300000))

    def _kill(self, now: float, draw: float) -> bool:
        if self.state is ALIVE:
            self.removals += 1
        self.delay = self.backoff.next(self.delay, draw)
        self.until = now + self.delay
        self.removed_for_ms += int(self.delay * 1000)
        self.state = DEAD
        return True
