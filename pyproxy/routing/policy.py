"""Per-client and per-service policies, resolved from a router's ``client`` and ``service`` blocks.

A client (one per bound name, e.g. ``/#/io.l5d.fs/world``) gets a :class:`ClientPolicy`: balancer kind
and decay, failure accrual, requeue budget, per-attempt timeout. A service (one per logical name,
e.g. ``/svc/world``) gets a :class:`ServicePolicy`: total timeout, retry budget and backoff, response
classifier. ``io.l5d.global`` blocks apply to all; ``io.l5d.static`` blocks apply every entry whose
``prefix`` pattern matches the name, later entries overriding earlier ones key by key (Linkerd's
``PathMatcher``: segments left to right, ``*`` any one segment, ``{var}`` a capture; the pattern only
has to match a prefix of the name). Policies are resolved once per name and cached by the router.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from ..resilience.classify import Classifier
from .cache import Lru
from ..resilience.retry import ConstantBackoff, JitteredBackoff, RetryBudget

__all__ = ["ClientPolicy", "PoolPolicy", "ServicePolicy", "Policies", "prefix_matches"]

_BALANCERS = frozenset(("p2c", "ewma", "roundRobin", "heap"))


def _kind(obj: Any) -> str:
    k = getattr(obj, "kind", None)
    return str(k) if k else str(type(obj).__struct_config__.tag)  # type: ignore[attr-defined]


def _segment_regex(seg: str) -> "re.Pattern[str]":
    parts = re.split(r"(\{[^}]*\})", seg)
    return re.compile("".join("(.*)" if p.startswith("{") else re.escape(p) for p in parts) + r"\Z")


def prefix_matches(pattern: str, name: str) -> bool:
    """Linkerd's ``PathMatcher`` on shown paths: does ``pattern`` match a prefix of ``name``?"""
    pat = [s for s in pattern.split("/") if s]
    segs = [s for s in name.split("/") if s]
    if len(pat) > len(segs):
        return False
    for p, s in zip(pat, segs):
        if p == "*":
            continue
        if not _segment_regex(p).match(s):
            return False
    return True


class PoolPolicy:
    """How a client keeps connections to each endpoint (``hostConnectionPool``, ``clientSession``,
    ``socketOptions``); times in seconds, None: unbounded."""

    __slots__ = ("min_size", "max_size", "max_waiters", "idle_time", "life_time", "no_delay", "keep_alive", "write_timeout")

    def __init__(self, params: Any = None) -> None:
        hcp = getattr(params, "host_connection_pool", None)
        session = getattr(params, "client_session", None)
        self.min_size: int = getattr(hcp, "min_size", 0)
        self.max_size: Optional[int] = getattr(hcp, "max_size", None)
        self.max_waiters: Optional[int] = getattr(hcp, "max_waiters", None)
        idle = [t / 1000.0 for t in (getattr(hcp, "idle_time_ms", None), getattr(session, "idle_time_ms", None)) if t is not None]
        self.idle_time: Optional[float] = min(idle) if idle else None
        life = getattr(session, "life_time_ms", None)
        self.life_time: Optional[float] = life / 1000.0 if life is not None else None
        so = getattr(params, "socket_options", None)
        self.no_delay: bool = getattr(so, "no_delay", True)
        self.keep_alive: Optional[bool] = getattr(so, "keep_alive", None)
        wt = getattr(so, "write_timeout_ms", None)
        self.write_timeout: Optional[float] = wt / 1000.0 if wt is not None else None

    @property
    def default(self) -> bool:
        """Nothing set: any pool (the lane's too) keeps connections as it likes."""
        return (self.max_size is None and self.max_waiters is None and self.idle_time is None and self.life_time is None
                and self.no_delay and self.keep_alive is None and self.write_timeout is None and self.min_size == 0)


class ClientPolicy:
    """What a client needs: balancer, failure accrual config, requeue budget, attempt timeout,
    connection pool, and whether a connect failure marks an endpoint down at once (``failFast``)."""

    __slots__ = ("balancer", "decay_s", "accrual", "requeue", "attempt_timeout", "pool", "fail_fast")

    def __init__(self, params: Any = None) -> None:
        lb = getattr(params, "load_balancer", None)
        kind = _kind(lb) if lb is not None else "p2c"
        if kind not in _BALANCERS:
            raise ValueError(f"load balancer {kind} is not supported")
        self.balancer = kind
        self.decay_s = getattr(lb, "decay_time_ms", 10000) / 1000.0
        self.accrual = getattr(params, "failure_accrual", None)
        b = getattr(params, "requeue_budget", None)
        self.requeue = (b.ttl_secs, b.min_retries_per_sec, b.percent_can_retry) if b is not None else (10, 10, 0.2)
        t = getattr(params, "request_attempt_timeout_ms", None)
        self.attempt_timeout: Optional[float] = t / 1000.0 if t else None
        self.pool = PoolPolicy(params)
        self.fail_fast: bool = bool(getattr(params, "fail_fast", False))


class ServicePolicy:
    """What a service needs: total timeout, retry budget and backoff, response classifier."""

    __slots__ = ("total_timeout", "budget", "backoff", "classifier")

    def __init__(self, params: Any = None) -> None:
        t = getattr(params, "total_timeout_ms", None)
        self.total_timeout: Optional[float] = t / 1000.0 if t else None
        retries = getattr(params, "retries", None)
        b = getattr(retries, "budget", None)
        self.budget = RetryBudget(b.ttl_secs, b.min_retries_per_sec, b.percent_can_retry) if b is not None else RetryBudget()
        bo = getattr(retries, "backoff", None)
        if bo is None or _kind(bo) == "constant":
            self.backoff: Any = ConstantBackoff(getattr(bo, "ms", 0) if bo is not None else 0)
        else:
            self.backoff = JitteredBackoff(bo.min_ms, bo.max_ms)
        rc = getattr(params, "response_classifier", None)
        self.classifier = Classifier(_kind(rc) if rc is not None else "io.l5d.http.nonRetryable5XX")


class Policies:
    """Resolves and caches the policy of each client and service of one router (at most
    ``clients`` and ``paths`` of them: ``bindingCache``)."""

    def __init__(self, client_block: Any = None, service_block: Any = None, clients: int = 1000, paths: int = 1000) -> None:
        self._client_block = client_block
        self._service_block = service_block
        self._clients: Lru[str, ClientPolicy] = Lru(clients)
        self._services: Lru[str, ServicePolicy] = Lru(paths)

    def client(self, name: str) -> ClientPolicy:
        p = self._clients.get(name)
        if p is None:
            p = ClientPolicy(_resolve(self._client_block, name))
            self._clients.put(name, p)
        return p

    def service(self, name: str) -> ServicePolicy:
        p = self._services.get(name)
        if p is None:
            p = ServicePolicy(_resolve(self._service_block, name))
            self._services.put(name, p)
        return p


def _resolve(block: Any, name: str) -> Any:
    if block is None:
        return None
    if _kind(block) == "io.l5d.static":
        return block.merge([e for e in block.configs if prefix_matches(e.prefix, name)])
    return block

