"""What each admin path answers (Linkerd 1.x shapes, linkerd1.md §5.4), behind ``admin.security``.

:meth:`AdminRoutes.dispatch` checks security first (a denied path answers 404 with an empty body, as
Linkerd does), then finds the handler by exact path (``/static/<file>`` by prefix). Handlers return
a whole :class:`~.server.Reply`; they run on the event loop, so they only read in-memory state.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from typing import Any, Callable, Dict, Iterable, List, Tuple, Union
from urllib.parse import parse_qs

from .. import _impl
from .._version import __version__
from ..metrics import Key, Node, Number, Summary, tree_of
from ..telemetry import Telemetry, prometheus
from ..view import ProxyView
from .delegator import delegator_json, request_route_json
from .pages import Static, index_page, requests_page
from .security import Security
from .request import AdminRequest, Reply

__all__ = ["AdminRoutes", "render_metrics", "metric_rows", "rows_summary"]

_JSON = b"application/json"
_HTML = b"text/html; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"

Handler = Callable[[AdminRequest], Reply]

# Linkerd's level names; Python has no TRACE, ALL or OFF: map them around the standard levels.
_LEVELS = {"ALL": 1, "TRACE": 5, "DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50, "OFF": 60}


def _json(obj: Any, status: int = 200, pretty: bool = False) -> Reply:
    text = json.dumps(obj, indent=2 if pretty else None, sort_keys=pretty, separators=None if pretty else (",", ":"))
    return Reply(status, _JSON, text.encode())


def render_metrics(node: Node, req: AdminRequest) -> Reply:
    """``/admin/metrics.json`` of the tree ``node``: flat, or ``tree=true``; ``q=<subtree>``, ``pretty``."""
    q = req.query.get("q")
    if q:
        found = node.resolve(q)
        if found is None:
            return _json({"error": f"No such subtree: {q}"}, 404)
        node = found
    if req.flag("tree"):
        return _json(node.nested(), pretty=req.flag("pretty"))
    return _json(node.flat(), pretty=req.flag("pretty"))


def metric_rows(items: Iterable[Tuple[Key, Union[Number, Summary], str]]) -> List[list]:
    """``/admin/metrics.json?buckets=true``: every metric as ``[key elements, kind, value]``, a
    histogram's value being its snapshot's ``{count, sum, min, max, buckets: [[bucket, n], ...]}``:
    what the ``--workers`` supervisor merges (:func:`rows_summary` reads a histogram back)."""
    out: List[list] = []
    for key, v, kind in items:
        if isinstance(v, Summary):
            v = {"count": v.count, "sum": v.sum, "min": v.min, "max": v.max, "buckets": sorted(v.buckets.items())}
        out.append([list(key), kind, v])
    return out


def rows_summary(value: Dict[str, Any]) -> Summary:
    """A histogram of :func:`metric_rows` read back (its percentiles are not needed to merge it)."""
    return Summary(value["count"], value["sum"], value["min"], value["max"], buckets={int(k): int(n) for k, n in value["buckets"]})


class AdminRoutes:
    """The paths of the admin server, over the proxy's read-only view and its telemetry."""

    def __init__(self, view: ProxyView, telemetry: Telemetry) -> None:
        self.view = view
        self.telemetry = telemetry
        self.security = Security.from_config(view.config.admin.security)
        self.static = Static()
        self.started = time.time()
        t = self.telemetry
        self.routes: Dict[str, Tuple[Handler, str]] = {
            "/": (self.dashboard, "dashboard: request rates, success rates, latencies per router, server and client"),
            "/delegator": (self.delegator_page, "dtab playground: evaluate a path through a router's dtab"),
            "/delegator.json": (lambda r: delegator_json(self.view, r), "delegation tree API (GET or POST JSON)"),
            "/request-route.json": (lambda r: request_route_json(self.view, r), "where a request goes: POST JSON {router, server, request}"),
            "/admin": (self.index, "this list"),
            "/admin/index.txt": (self.index_txt, "this list, as text"),
            "/admin/ping": (lambda r: Reply(200, _TEXT, b"pong"), "health check: pong"),
            "/admin/metrics.json": (self.metrics_json, "metrics (pretty=true, tree=true, q=<subtree>; buckets=true: histograms as buckets)"),
            "/admin/routers.json": (self.routers_json, "routers: label, dtab, servers"),
            "/admin/server_info": (self.server_info, "version and build"),
            "/admin/shutdown": (self.shutdown, "POST: graceful shutdown"),
            "/config.json": (self.config_json, "the parsed config"),
            "/client_state.json": (self.client_state, "addresses of every client"),
            "/logging.json": (self.logging_json, "logger levels (POST logger=&level= to change)"),
        }
        for namer in view.namers:
            self.routes[namer.state_path] = (lambda r, n=namer: _json(n.state()), f"state of the {namer.prefix} namer's watches")
        if view.namers:
            self.routes["/bound-names.json"] = (
                lambda r: _json(sorted(name for n in self.view.namers for name in n.bound_names())), "names bound by watching namers")
        if t.prometheus is not None:
            self.routes[t.prometheus.path] = (self.prometheus, "Prometheus text exposition")
        if t.recent is not None:
            self.routes["/requests"] = (self.requests_html, "recent requests (io.l5d.recentRequests)")
            self.routes["/requests.json"] = (self.requests_json, "recent requests as JSON")

    # === dispatch ===

    def dispatch(self, req: AdminRequest) -> Reply:
        if not self.security.allowed(req.path):
            return Reply(404, _TEXT)
        hit = self.routes.get(req.path)
        if hit is not None:
            if req.path not in ("/delegator.json", "/request-route.json", "/admin/shutdown", "/logging.json") and req.method not in ("GET", "HEAD"):
                return Reply(405, _TEXT, b"method not allowed", [(b"Allow", b"GET, HEAD")])
            return hit[0](req)
        if req.path.startswith("/static/") or req.path == "/favicon.ico":
            name = "favicon.svg" if req.path == "/favicon.ico" else req.path[len("/static/") :]
            try:
                ctype, data = self.static.get(name)
            except KeyError:
                return Reply(404, _TEXT, b"not found")
            return Reply(200, ctype, data, [(b"Cache-Control", b"max-age=60")])
        return Reply(404, _TEXT, b"not found")

    def endpoints(self) -> List[Tuple[str, str]]:
        return sorted((p, d) for p, (_, d) in self.routes.items() if self.security.allowed(p))

    # === pages ===

    def dashboard(self, req: AdminRequest) -> Reply:
        return Reply(200, _HTML, self.static.page("dashboard.html"))

    def delegator_page(self, req: AdminRequest) -> Reply:
        return Reply(200, _HTML, self.static.page("delegator.html"))

    def index(self, req: AdminRequest) -> Reply:
        return Reply(200, _HTML, index_page(self.endpoints()))

    def index_txt(self, req: AdminRequest) -> Reply:
        return Reply(200, _TEXT, "".join(f"{p}\n" for p, _ in self.endpoints()).encode())

    def requests_html(self, req: AdminRequest) -> Reply:
        recent = self.telemetry.recent
        return Reply(200, _HTML, requests_page(recent.entries(), recent.sample_rate, recent.capacity))

    def requests_json(self, req: AdminRequest) -> Reply:
        recent = self.telemetry.recent
        return _json({"sampleRate": recent.sample_rate, "capacity": recent.capacity, "requests": recent.entries()})

    # === metrics ===

    def metrics_json(self, req: AdminRequest) -> Reply:
        registry = self.telemetry.metrics
        registry.tick()
        if req.flag("buckets"):
            return _json(metric_rows(registry.items()))
        return render_metrics(tree_of(registry.items()), req)

    def prometheus(self, req: AdminRequest) -> Reply:
        text = prometheus.render(self.telemetry.metrics, self.telemetry.prometheus.prefix)
        return Reply(200, prometheus.CONTENT_TYPE, text.encode())

    # === state ===

    def routers_json(self, req: AdminRequest) -> Reply:
        out = []
        for router in self.view.routers:
            dtab = router.dtab
            servers = [{"ip": s.ip, "port": s.port, "id": s.id, "clearContext": s.edge, "signedOverrides": s.signed} for s in router.servers]
            out.append(
                {
                    "label": router.label,
                    "protocol": "http",
                    "dtab": dtab.show,
                    "dentries": [{"prefix": d.prefix.show, "dst": d.dst.show} for d in dtab],
                    "servers": servers,
                }
            )
        return _json(out)

    def server_info(self, req: AdminRequest) -> Reply:
        return _json(
            {
                "name": "pyproxy",
                "version": __version__,
                "kernels": _impl.IMPL,
                "python": platform.python_version(),
                "startTime": int(self.started * 1000),
                "uptimeMs": int((time.time() - self.started) * 1000),
            }
        )

    def config_json(self, req: AdminRequest) -> Reply:
        import msgspec

        return Reply(200, _JSON, msgspec.json.encode(self.view.config))

    def client_state(self, req: AdminRequest) -> Reply:
        out: Dict[str, Any] = {}
        for router in self.view.routers:
            for client in router.clients():
                out[client.id] = client.state
        return _json(out)

    def shutdown(self, req: AdminRequest) -> Reply:
        if req.method != "POST":
            return Reply(405, _TEXT, b"POST required", [(b"Allow", b"POST")])
        self.view.request_stop()
        return Reply(200, _TEXT, b"shutting down")

    def logging_json(self, req: AdminRequest) -> Reply:
        if req.method == "POST":
            form = {k: v[0] for k, v in parse_qs(req.body.decode("latin-1"), keep_blank_values=True).items()}
            form = {**req.query, **form}
            name, level = form.get("logger"), (form.get("level") or "").upper()
            if not name or level not in _LEVELS:
                return Reply(400, _TEXT, f"expected logger=<name or root>&level=<{'|'.join(_LEVELS)}>".encode())
            logging.getLogger(None if name == "root" else name).setLevel(_LEVELS[level])
        elif req.method not in ("GET", "HEAD"):
            return Reply(405, _TEXT, b"", [(b"Allow", b"GET, POST")])
        names = ["root"] + sorted(n for n, lg in logging.Logger.manager.loggerDict.items() if n.startswith("pyproxy") and isinstance(lg, logging.Logger))
        out = []
        for n in names:
            lg = logging.getLogger(None if n == "root" else n)
            out.append({"logger": n, "level": logging.getLevelName(lg.getEffectiveLevel())})
        return _json(out)
