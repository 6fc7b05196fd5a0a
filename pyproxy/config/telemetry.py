"""Telemeter configs (``telemetry[]``): metrics and tracing exporters (Linkerd 1.x sections 1.4, 5.1).

``/admin/metrics.json`` always exists and is not configured here. The pre-0.9 ``io.l5d.commonMetrics``
telemeter (now built in) is accepted as a no-op with a warning from :mod:`.legacy`; the pre-0.9
``tracers:`` lists are moved here by :mod:`.legacy` too.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from .base import Fraction, Plugin, Port, PosInt, check_host, invalid

__all__ = [
    "Prometheus",
    "InfluxDb",
    "StatsD",
    "Zipkin",
    "TraceLog",
    "RecentRequests",
    "CommonMetrics",
    "Telemeter",
]


class _Telemeter(Plugin, kw_only=True):
    FAMILY = "telemeter"


class Prometheus(_Telemeter, tag_field="kind", tag="io.l5d.prometheus", kw_only=True):
    """Prometheus text exposition on the admin port."""

    path: str = "/admin/metrics/prometheus"
    prefix: str = ""  # prepended to every metric name

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise invalid("path", f"must start with '/': {self.path!r}")


class InfluxDb(_Telemeter, tag_field="kind", tag="io.l5d.influxdb", kw_only=True):
    """InfluxDB line protocol at ``/admin/metrics/influxdb`` (for Telegraf's exec input)."""


class StatsD(_Telemeter, tag_field="kind", tag="io.l5d.statsd", kw_only=True):
    """Push metrics to statsd over UDP (Linkerd marks it experimental and unsupported)."""

    EXPERIMENTAL = True

    prefix: str = "linkerd"
    hostname: str = "127.0.0.1"
    port: Port = 8125
    gauge_interval_ms: PosInt = 10000
    sample_rate: Fraction = 0.01

    def __post_init__(self) -> None:
        check_host(self.hostname, "hostname")


class Zipkin(_Telemeter, tag_field="kind", tag="io.l5d.zipkin", kw_only=True):
    """Zipkin spans over Scribe (Zipkin's scribe collector, not its HTTP port)."""

    host: str = "localhost"
    port: Port = 9410
    sample_rate: Fraction = 0.001

    def __post_init__(self) -> None:
        check_host(self.host, "host")


LogLevel = Literal["ALL", "CRITICAL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARNING"]


class TraceLog(_Telemeter, tag_field="kind", tag="io.l5d.tracelog", kw_only=True):
    """Log trace annotations."""

    sample_rate: Fraction = 1.0
    level: LogLevel = "INFO"
    host: Optional[str] = None


class RecentRequests(_Telemeter, tag_field="kind", tag="io.l5d.recentRequests", kw_only=True):
    """An in-memory ring of recent requests, shown at ``/requests``."""

    sample_rate: Fraction  # required: Linkerd has no default here
    capacity: PosInt = 10


class CommonMetrics(_Telemeter, tag_field="kind", tag="io.l5d.commonMetrics", kw_only=True):
    """Pre-0.9 telemeter whose job ``/admin/metrics.json`` now does; accepted and ignored."""


Telemeter = Union[Prometheus, InfluxDb, StatsD, Zipkin, TraceLog, RecentRequests, CommonMetrics]
