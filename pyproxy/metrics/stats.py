"""Per-request stats of one scope (:class:`RequestStats`) and the scopes of one router (:class:`RouterStats`).

Names come from requests (a service scope per logical name, a client scope per bound name), so the
scopes of a router are bounded as its other per-name state is: a client's scope goes when the
client is evicted (:meth:`RouterStats.drop_client`), and a service's when it has served nothing for
``bindingCache.idleTtlSecs`` or, past ``bindingCache.paths`` services, when it served nothing since
the last sweep (:meth:`RouterStats.sweep`). A scope that comes back starts from zero, as a restarted
process's would (Prometheus reads that as a counter reset).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

from .histogram import ZERO_BUCKET, Histogram
from .registry import Counter, Key, Registry, Scope

__all__ = ["RequestStats", "RouterStats"]


class RequestStats:
    """What one scope counts per request (server, service, client, client x service)."""

    __slots__ = ("scope", "requests", "success", "failures", "latency", "_status", "_failures", "_retries",
                 "_keys", "seen", "idle")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._keys: List[Key] = []  # what this scope registered (forgotten whole by drop)
        self.requests = self._counter("requests")
        self.success = self._counter("success")
        self.failures = self._counter("failures")
        self.latency = self._histogram("request_latency_ms")
        self._status: Dict[int, Tuple[Counter, ...]] = {}
        self._failures: Dict[str, Counter] = {}
        self._retries: Optional[Tuple[Counter, Histogram, Counter, Counter]] = None
        self.seen = 0  # requests at the last sweep
        self.idle = 0  # sweeps since the last request

    def _counter(self, name: str) -> Counter:
        self._keys.append(self.scope.key(name))
        return self.scope.counter(name)

    def _histogram(self, name: str) -> Histogram:
        self._keys.append(self.scope.key(name))
        return self.scope.histogram(name)

    def drop(self) -> None:
        """Take this scope's metrics out of the registry (what is recorded here afterwards is lost)."""
        self.scope.registry.forget(self._keys)
        self._keys = []

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
                c = self._failures[failure] = self._counter("failures/" + failure)
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
        r = (self._counter("retries/total"), self._histogram("retries/per_request"), self._counter("retries/budget_exhausted"),
             self._counter("retries/requeues"))
        self._retries = r
        return r

    def _status_counters(self, status: int) -> Tuple[Counter, ...]:
        if 100 <= status <= 999:
            out: Tuple[Counter, ...] = (self._counter(f"status/{status}"), self._counter(f"status/{status // 100}XX"))
        else:
            out = (self._counter("status/error"),)
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

    # === bounds (see the module documentation) ===

    def drop_client(self, client_id: str) -> None:
        """The client ``client_id`` was evicted: its scopes go (with its per-service ones)."""
        s = self._clients.pop(client_id, None)
        if s is not None:
            s.drop()
        for key in [k for k in self._client_services if k[0] == client_id]:
            self._client_services.pop(key).drop()

    def sweep(self, idle_sweeps: int, most: int) -> int:
        """One sweep of the service scopes: those without a request for ``idle_sweeps`` sweeps go,
        then, while more than ``most`` remain, those without one since the last sweep (the longest
        idle first). Returns how many went."""
        gone = 0
        for table in (self._services, self._client_services):
            idle: List[Tuple[int, object]] = []
            for key, s in list(table.items()):
                n = s.requests.value
                if n != s.seen:
                    s.seen, s.idle = n, 0
                    continue
                s.idle += 1
                if s.idle >= idle_sweeps:
                    del table[key]  # type: ignore[arg-type]
                    s.drop()
                    gone += 1
                else:
                    idle.append((s.idle, key))
            if len(table) > most:
                idle.sort(key=lambda t: -t[0])
                for _, key in idle[: len(table) - most]:
                    table.pop(key).drop()  # type: ignore[call-overload]
                    gone += 1
        return gone
