"""Telemetry of a running App: the metrics registry and the configured telemeters (``telemetry[]``).

:class:`Telemetry` is what the request path and the admin server share:

* ``metrics``: the :class:`~pyproxy.metrics.Registry` behind ``/admin/metrics.json`` (always on);
* ``router(label)``: the :class:`~pyproxy.metrics.RouterStats` of one router (hook API in
  :mod:`pyproxy.metrics`);
* ``prometheus``: the ``io.l5d.prometheus`` config (``path``, ``prefix``) or None;
* ``recent``: :class:`~.recent.RecentRequests` (``io.l5d.recentRequests``) or None;
* ``tracer``: :class:`~.zipkin.Tracer` (``io.l5d.zipkin``) or None.

:meth:`Telemetry.run` is one trio task: it snapshots histograms once per interval and runs the tracer.
The interval is a minute, as in Linkerd; ``PYPROXY_METRICS_SNAPSHOT_SECONDS`` changes it (Linkerd's
``-io.buoyant.telemetry.admin.histogramSnapshotInterval`` flag). ``io.l5d.influxdb``,
``io.l5d.statsd`` and ``io.l5d.tracelog`` are not built (``pyproxy run`` refuses them by name).

May import: ``errors``, ``naming``, ``http``, ``metrics`` and ``view`` (the live gauges read the
running proxy through it), and trio.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional

import trio

from ..errors import ConfigError
from ..metrics import Registry, RouterStats
from ..view import ProxyView
from .gauges import view_collector
from .recent import RecentRequests
from .zipkin import Tracer

__all__ = ["Telemetry", "RecentRequests", "Tracer"]

SNAPSHOT_ENV = "PYPROXY_METRICS_SNAPSHOT_SECONDS"


def _kind(obj: Any) -> str:
    return str(getattr(obj, "kind", None) or type(obj).__struct_config__.tag)  # type: ignore[attr-defined]


def snapshot_interval(default: float = 60.0) -> float:
    raw = os.environ.get(SNAPSHOT_ENV)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{SNAPSHOT_ENV}: expected a positive number of seconds, got {raw!r}")
    return value


class Telemetry:
    def __init__(
        self,
        metrics: Optional[Registry] = None,
        *,
        prometheus: Any = None,
        recent: Optional[RecentRequests] = None,
        tracer: Optional[Tracer] = None,
    ) -> None:
        self.metrics = metrics or Registry()
        self.prometheus = prometheus
        self.recent = recent
        self.tracer = tracer
        self._routers: Dict[str, RouterStats] = {}

    @classmethod
    def from_config(cls, telemeters: Iterable[Any]) -> "Telemetry":
        prometheus = recent = tracer = None
        for t in telemeters:
            kind = _kind(t)
            if kind == "io.l5d.prometheus":
                prometheus = t
            elif kind == "io.l5d.recentRequests":
                recent = RecentRequests(t.sample_rate, t.capacity)
            elif kind == "io.l5d.zipkin":
                tracer = Tracer(t.host, t.port, t.sample_rate)
            elif kind != "io.l5d.commonMetrics":  # that one is /admin/metrics.json, always on
                raise ConfigError(f"telemeter {kind} is known but not built yet")
        return cls(Registry(interval=snapshot_interval()), prometheus=prometheus, recent=recent, tracer=tracer)

    def watch(self, view: "ProxyView") -> None:
        """Export live gauges (connections, pool sizes, process) of the running proxy's servers and clients."""
        self.metrics.add_collector(view_collector(view))

    def router(self, label: str) -> RouterStats:
        rs = self._routers.get(label)
        if rs is None:
            rs = self._routers[label] = RouterStats(self.metrics, label)
        return rs

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            if self.tracer is not None:
                nursery.start_soon(self.tracer.run)
            while True:
                self.metrics.tick()
                await trio.sleep(1.0)
