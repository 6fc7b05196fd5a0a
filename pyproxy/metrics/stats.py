"""Per-request stats of one scope (:class:`RequestStats`) and the scopes of one router (:class:`RouterStats`)."""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

from .histogram import ZERO_BUCKET, Histogram
from .registry import Counter, Registry, Scope

__all__ = ["RequestStats", "RouterStats"]


class RequestStats:
    """What one scope counts per request (server, service, client, client x service)."""

    __slots__ = ("scope", "requests", "success", "failures", "latency", "_status", "_failures", "_retries")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.requests = scope.counter("requests")
        self.success = scope.counter("success")
        self.failures = scope.counter("failures")
        self.latency = scope.histogram("request_latency_ms")
        self._status: Dict[int, Tuple[Counter, ...]] = {}
        self._failures: Dict[str, Counter] = {}
        self._retries: Optional[Tuple[Counter, Histogram, Counter, Counter]] = None

    def record(self, status: int, latency_ms: float, failure: Optional[str] = None, success: Optional[bool] = None) -> None:
        """Count one finished request (see the module docstring for the arguments)."""
        self.requests.value += 1
        self.latency.add(latency_ms)
        counters = self._status.get(status)
        if counters is None:
            counters = self._status_counters(status)
        for c in counters:
            c.value += 1
        if success is None:
            success = failure is None and 0 < status < 500
        if success:
            self.success.value += 1
            return
        self.failures.value += 1
        if failure:
            c = self._failures.get(failure)
            if c is None:
                c = self._failures[failure] = self.scope.counter("failures/" + failure)
            c.value += 1

    def record_batch(self, status: int, count: int, latency: tuple) -> None:
        """Count ``count`` successful requests answered ``status`` at once, their latencies summed
        as a histogram (``(count, sum, min, max, buckets)``, see :meth:`Histogram.merge`)."""
        self.requests.value += count
        self.latency.merge(*latency)
        counters = self._status.get(status)
        if counters is None:
            counters = self._status_counters(status)
        for c in counters:
            c.value += count
        self.success.value += count

    def record_no_retries(self, count: int) -> None:
        """Service scope: ``count`` requests that needed no retry (``record_retries(0)`` each)."""
        r = self._retries or self._retry_metrics()
        r[1].merge(count, 0.0, 0.0, 0.0, ((ZERO_BUCKET, count),))

    def record_retries(self, retries: int, budget_exhausted: bool = False) -> None:
        """Service scope, once per request: ``retries/total`` += retries, ``retries/per_request``
        (histogram) and ``retries/budget_exhausted`` when a retry was wanted but the budget said no."""
        r = self._retries or self._retry_metrics()
        r[0].value += retries
        r[1].add(retries)
        if budget_exhausted:
            r[2].value += 1

    def record_requeue(self) -> None:
        """Client scope: a request that never reached the endpoint was sent again (``retries/requeues``)."""
        (self._retries or self._retry_metrics())[3].value += 1

    def _retry_metrics(self) -> Tuple[Counter, Histogram, Counter, Counter]:
        s = self.scope
        r = (s.counter("retries/total"), s.histogram("retries/per_request"), s.counter("retries/budget_exhausted"), s.counter("retries/requeues"))
        self._retries = r
        return r

    def _status_counters(self, status: int) -> Tuple[Counter, ...]:
        if 100 <= status <= 999:
            out: Tuple[Counter, ...] = (self.scope.counter(f"status/{status}"), self.scope.counter(f"status/{status // 100}XX"))
        else:
            out = (self.scope.counter("status/error"),)
        self._status[status] = out
        return out


class RouterStats:
    """The request scopes of one router (``rt/<label>/...``), created on first use and cached.

    Each getter is one dict look-up keyed by its arguments as given (no name is built when the
    scope exists already), so calling it per request is fine; keeping the result is cheaper still.
    """

    def __init__(self, registry: Registry, label: str) -> None:
        self.registry = registry
        self.label = label
        self.root = registry.scope("rt", label)
        self._servers: Dict[Tuple[str, Union[int, str]], RequestStats] = {}
        self._services: Dict[str, RequestStats] = {}
        self._clients: Dict[str, RequestStats] = {}
        self._client_services: Dict[Tuple[str, str], RequestStats] = {}

    def server(self, ip: str, port: Union[int, str]) -> RequestStats:
        """``rt/<label>/server/<ip>/<port>/`` (name it by the bound port: port 0 is the OS's pick)."""
        s = self._servers.get((ip, port))
        if s is None:
            s = self._servers[(ip, port)] = RequestStats(self.root.scope("server", f"{ip}/{port}"))
        return s

    def service(self, name: str) -> RequestStats:
        """``rt/<label>/service/<name without its leading slash>/`` (``/svc/hello``)."""
        s = self._services.get(name)
        if s is None:
            s = self._services[name] = RequestStats(self.root.scope("service", name.lstrip("/")))
        return s

    def client(self, client_id: str) -> RequestStats:
        """``rt/<label>/client/<id without its leading slash>/`` (``/#/io.l5d.fs/world``)."""
        s = self._clients.get(client_id)
        if s is None:
            s = self._clients[client_id] = RequestStats(self.root.scope("client", client_id.lstrip("/")))
        return s

    def client_service(self, client_id: str, name: str) -> RequestStats:
        """``rt/<label>/client/<id>/service/<name>/``."""
        s = self._client_services.get((client_id, name))
        if s is None:
            s = RequestStats(self.root.scope("client", client_id.lstrip("/"), "service", name.lstrip("/")))
            self._client_services[(client_id, name)] = s
        return s
