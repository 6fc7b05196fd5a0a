"""Metrics: counters, gauges and histograms in one tree with Linkerd 1.x's names (sans-IO, no trio).

Owns the in-memory metrics tree behind ``/admin/metrics.json`` (flat and ``tree=true`` forms) and
``/admin/metrics/prometheus`` (rendered by :mod:`pyproxy.telemetry.prometheus`). Names follow
``shared/reference/linkerd1.md`` §5.2; an id that contains ``/`` (a client id, a service name, a
server's ``ip/port``) is ONE element of the tree, as in Linkerd, so that the Prometheus labels and the
tree keys come out right while the flat names read the same (``rt/out/server/127.0.0.1/4140/requests``).

Hook API (what the request path calls; obtain the objects once, update them per request)::

    reg = app.telemetry.metrics                  # the process-wide Registry
    rt = app.telemetry.router(label)             # RouterStats for rt/<label>/ (cached)

    srv = rt.server(ip, port)                    # RequestStats, rt/<label>/server/<ip>/<port>/
    svc = rt.service("/svc/hello")               # RequestStats, rt/<label>/service/svc/hello/
    cli = rt.client("/#/io.l5d.fs/world")        # RequestStats, rt/<label>/client/#/io.l5d.fs/world/
    cs = rt.client_service(client_id, "/svc/hello")   # .../client/<id>/service/svc/hello/

    # once per finished request, on each scope that saw it:
    srv.record(status, latency_ms, failure=None)

``record(status, latency_ms, failure=None, success=None)``: ``status`` is the HTTP status answered
(0 when there was no response at all, counted as ``status/error``); ``latency_ms`` is the time from
the head read to the last response byte; ``failure`` names the exception class when the request
failed (``"ConnectionFailed"``; nested causes joined with ``/``), counted as ``failures/<name>``.
Success follows Linkerd's default HTTP classifier (5XX and exceptions fail) unless ``success`` is
given (a response classifier's verdict). :meth:`RouterStats.service` and friends are dict look-ups;
callers on the hot path keep the returned object (per server, per client, beside the bind cache).

Retries: ``svc.record_retries(n, budget_exhausted)`` once per request on the service scope
(``retries/total``, ``retries/per_request``, ``retries/budget_exhausted``) and
``cli.record_requeue()`` per requeue on the client scope (``retries/requeues``). Per attempt, the
client scope can take one ``record`` each (Linkerd counts client requests per attempt); server and
service scopes take one per request.

Live values (connections, pool sizes) are gauges: ``scope.gauge(name, fn)`` or a collector
(:meth:`Registry.add_collector`) that yields ``(key, value)`` pairs when metrics are read.

Histograms keep the current window and the last snapshot; :meth:`Registry.tick` (called every second
by the telemetry task, and before each read) rotates all of them once per ``interval`` (Linkerd: one
minute). Exports show the snapshot, as Linkerd does, so percentiles are "the last full minute". A
snapshot keeps its window's bucket counts: ``Histogram.merged`` combines the snapshots of several
processes (``--workers``) into the summary of their union, exactly.

May import: ``errors`` only (telemetry renders it; the request path updates it).
"""

from .histogram import QUANTILES, Histogram, Number, Summary
from .registry import Collector, Counter, Gauge, Key, Node, Registry, Scope, tree_of
from .stats import RequestStats, RouterStats

__all__ = [
    "Counter", "Gauge", "Histogram", "Summary", "Registry", "Node", "Scope", "RequestStats", "RouterStats",
    "Key", "Number", "Collector", "QUANTILES", "tree_of",
]  # fmt: skip
