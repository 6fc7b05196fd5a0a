"""Live gauges read off the running proxy's view when metrics are exported (no hook in the request path).

Owns: ``lane/{routes,pooled,requests,handoffs,resumes,failed,installs}`` (the native data path),
``rt/<r>/server/<ip>/<port>/{connections,pending}``, ``rt/<r>/client/<id>/{loadbalancer/size,
loadbalancer/available,failure_accrual/{removals,probes,revivals,removed_for_ms},pending,
connections}``, ``namer/#/<prefix>/{watches,watches_connected,watch/{lists,streams,resumes,gone,
errors,events,dropped}}`` (Kubernetes watches: restarts, 410s, errors) and
``process/{uptime_ms,rss_bytes,cpu_ms}``.

Everything is read through :class:`pyproxy.view.ProxyView`, by name: a renamed attribute fails
the tests that read these gauges instead of exporting a silent zero.
"""

from __future__ import annotations

import os
import time
from typing import Iterator, Tuple

from ..metrics import Collector, Key, Number
from ..view import ProxyView

__all__ = ["view_collector"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def view_collector(view: ProxyView) -> Collector:
    started = time.monotonic()

    def collect() -> Iterator[Tuple[Key, Number]]:
        yield ("process", "uptime_ms"), int((time.monotonic() - started) * 1000)
        yield ("process", "rss_bytes"), _rss()
        t = os.times()
        yield ("process", "cpu_ms"), int((t.user + t.system) * 1000)
        for router in view.routers:
            for server in router.servers:
                base = ("rt", router.label, "server", server.id)
                yield base + ("connections",), server.connections
                yield base + ("pending",), server.pending
            for client in router.clients():
                base = ("rt", router.label, "client", client.id.lstrip("/"))
                yield base + ("loadbalancer", "size"), client.size
                yield base + ("loadbalancer", "available"), client.available
                removals, probes, revivals, removed_for_ms = client.accrual
                yield base + ("failure_accrual", "removals"), removals
                yield base + ("failure_accrual", "probes"), probes
                yield base + ("failure_accrual", "revivals"), revivals
                yield base + ("failure_accrual", "removed_for_ms"), removed_for_ms
                pending = client.pending
                yield base + ("pending",), pending
                yield base + ("connections",), client.idle_connections + pending
        if view.lane is not None:
            for name, value in view.lane.gauges():
                yield ("lane", name), value
        for namer in view.namers:
            for name, value in namer.metrics():
                yield ("namer", namer.prefix.lstrip("/")) + tuple(name.split("/")), value

    return collect
