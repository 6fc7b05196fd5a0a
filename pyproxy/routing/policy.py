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
from typing import Any, Dict, Optional

from ..resilience.classify import Classifier
from ..resilience.retry import ConstantBackoff, JitteredBackoff, RetryBudget

__all__ = ["ClientPolicy", "ServicePolicy", "Policies", "prefix_matches"]

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


class ClientPolicy:
    """What a client needs: balancer, failure accrual config, requeue budget, attempt timeout."""

    __slots__ = ("balancer", "decay_s", "accrual", "requeue", "attempt_timeout")

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
    """Resolves and caches the policy of each client and service of one router."""

    def __init__(self, client_block: Any = None, service_block: Any = None) -> None:
        self._client_block = client_block
        self._service_block = service_block
        self._clients: Dict[str, ClientPolicy] = {}
        self._services: Dict[str, ServicePolicy] = {}

    def client(self, name: str) -> ClientPolicy:
        p = self._clients.get(name)
        if p is None:
            p = self._clients[name] = ClientPolicy(_resolve(self._client_block, name))
        return p

    def service(self, name: str) -> ServicePolicy:
        p = self._services.get(name)
        if p is None:
            p = self._services[name] = ServicePolicy(_resolve(self._service_block, name))
        return p


def _resolve(block: Any, name: str) -> Any:
    if block is None:
        return None
    if _kind(block) == "io.l5d.static":
        return block.merge([e for e in block.configs if prefix_matches(e.prefix, name)])
    return block

