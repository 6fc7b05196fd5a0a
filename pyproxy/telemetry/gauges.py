"""Live gauges read off the running App when metrics are exported (no hook in the request path).

Owns: ``lane/{routes,pooled,requests,handoffs,resumes,failed,installs}`` (the native data path),
``rt/<r>/server/<ip>/<port>/{connections,pending}``, ``rt/<r>/client/<id>/{loadbalancer/size,
loadbalancer/available,pending,connections}`` and ``process/{uptime_ms,rss_bytes,cpu_ms}``.

The objects are read duck-typed with ``getattr`` defaults: the server, client and balancer classes
evolve (load balancing, failure accrual) and a renamed attribute must cost one gauge, not the
whole export.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterator, List, Tuple

from ..metrics import Collector, Key, Number

__all__ = ["app_collector", "server_id"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def server_id(server: Any) -> str:
    """``ip/port`` of a listener: the bound port once bound (port 0 asks the OS for one)."""
    listeners = getattr(server, "listeners", None)
    if listeners:
        try:
            host, port = listeners[0].socket.getsockname()[:2]
            return f"{server.ip}/{port}"
        except (OSError, AttributeError):
            pass
    return f"{server.ip}/{server.port}"


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _pending(client: Any, endpoints: List[Any]) -> int:
    """Requests picked and not yet done: the balancer kernel counts them per slot."""
    balancer = getattr(client, "balancer", None)
    if balancer is not None and hasattr(balancer, "pending"):
        return sum(balancer.pending(e.slot) for e in endpoints)
    return sum(getattr(e, "pending", 0) for e in endpoints)


def app_collector(app: Any) -> Collector:
    started = time.monotonic()

    def collect() -> Iterator[Tuple[Key, Number]]:
        yield ("process", "uptime_ms"), int((time.monotonic() - started) * 1000)
        yield ("process", "rss_bytes"), _rss()
        t = os.times()
        yield ("process", "cpu_ms"), int((t.user + t.system) * 1000)
        for label, server in getattr(app, "servers", ()):
            base = ("rt", label, "server", server_id(server))
            held = getattr(server, "held", None)
            yield base + ("connections",), held() if held is not None else getattr(server, "connections", 0)
            yield base + ("pending",), getattr(server, "active", 0)
        for router in getattr(app, "routers", ()):
            for client in list(getattr(router, "clients", {}).values()):
                base = ("rt", router.label, "client", str(getattr(client, "id", "?")).lstrip("/"))
                endpoints = list(getattr(client, "endpoints", {}).values())
                yield base + ("loadbalancer", "size"), len(endpoints)
                # failure accrual marks an endpoint dead ("dead" state); the rest are available
                dead = sum(1 for e in endpoints if getattr(getattr(e, "accrual", None), "state", None) == "dead" or getattr(e, "down", False))
                yield base + ("loadbalancer", "available"), len(endpoints) - dead
                pending = _pending(client, endpoints)
                yield base + ("pending",), pending
                idle = sum(len(getattr(getattr(e, "pool", None), "idle", ())) for e in endpoints)
                yield base + ("connections",), idle + pending

        lane = getattr(app, "lane", None)
        if lane is not None:
            yield ("lane", "routes"), lane.native.routes()
            yield ("lane", "pooled"), lane.native.pooled()
            for name, value in lane.counts.items():
                yield ("lane", name), value

    return collect
