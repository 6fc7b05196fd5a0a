"""The admin HTTP server (default 127.0.0.1:9990): Linkerd's health, control and dtab endpoints.

Served now: ``GET /admin/ping`` (``pong``), ``POST /admin/shutdown`` (graceful stop), ``GET /config.json``,
``GET|POST /delegator.json`` (Linkerd's request and response shape, spec §4.7, against a router's live
namers), and ``GET /admin/metrics.json`` with the request counters kept so far.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import trio

from . import _impl
from .errors import DtabError, PyproxyError, RemoteProtocolError
from .http1 import Request, reason_phrase, serialize_response_head
from .naming.binding import ConfiguredNamersInterpreter
from .naming.delegation import delegate
from .naming.dtab import Dtab
from .naming.path import Path
from .stream import Body, Conn

if TYPE_CHECKING:
    from .app import App

__all__ = ["AdminServer"]

_LIMITS = (8192, 65536, 100)
_MAX_BODY = 1 << 20


class AdminServer:
    """The admin listener of an :class:`~pyproxy.app.App`."""

    def __init__(self, app: "App", ip: str, port: int) -> None:
        self.app = app
        self.ip = ip
        self.port = port
        self.listeners: list = []
        self.connections = 0
        self._idle: set = set()
        self._accepting = trio.CancelScope()

    @property
    def address(self) -> str:
        host, port = self.listeners[0].socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def bind(self) -> None:
        self.listeners = await trio.open_tcp_listeners(self.port, host=self.ip)

    async def serve(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            # Connections live in this nursery; the accept loops in their own scope, which drain()
            # cancels, so stopping to accept never interrupts a request in flight.
            with self._accepting:
                task_status.started()
                await trio.serve_listeners(self._connection, self.listeners, handler_nursery=nursery)
            for listener in self.listeners:
                await listener.aclose()

    def drain(self) -> None:
        self._accepting.cancel()
        for scope in list(self._idle):
            scope.cancel()

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = Conn(stream)
        self.connections += 1
        try:
            while True:
                with trio.CancelScope() as idle:
                    self._idle.add(idle)
                    try:
                        with trio.move_on_after(60):
                            t = await conn.read_head(_impl.parse_request_head, *_LIMITS)
                    finally:
                        self._idle.discard(idle)
                if idle.cancelled_caught or t is None:
                    return
                req = Request.from_kernel(t)
                body = Body.of(conn, req, _LIMITS)
                data = bytearray()
                while len(data) <= _MAX_BODY:
                    piece = await body.read()
                    if not piece:
                        break
                    data += piece
                status, ctype, payload = self.handle(req, bytes(data))
                fields = [(b"Content-Type", ctype), (b"Content-Length", b"%d" % len(payload))]
                keep = req.keep_alive and body.done
                if not keep:
                    fields.append((b"Connection", b"close"))
                await conn.send_all(serialize_response_head(req.minor, status, reason_phrase(status), fields) + payload)
                if not keep:
                    return
        except (RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return
        finally:
            self.connections -= 1
            await conn.aclose()

    # === routes ===

    def handle(self, req: Request, body: bytes) -> Tuple[int, bytes, bytes]:
        url = urlsplit(req.target.decode("latin-1"))
        path = url.path
        method = req.method
        if path == "/admin/ping":
            return 200, b"text/plain", b"pong"
        if path == "/admin/shutdown":
            if method != b"POST":
                return 405, b"text/plain", b"POST required"
            self.app.stop()
            return 200, b"text/plain", b"shutting down"
        if path == "/config.json":
            import msgspec

            return 200, b"application/json", msgspec.json.encode(self.app.config.source if hasattr(self.app.config, "source") else self.app.config)
        if path == "/admin/metrics.json":
            return 200, b"application/json", json.dumps(self._metrics()).encode()
        if path == "/delegator.json":
            return self._delegator(method, url.query, req, body)
        return 404, b"text/plain", b"not found"

    def _metrics(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for router in self.app.routers:
            out[f"rt/{router.label}/requests"] = router.requests
            for (cid, _res), client in router.clients.items():
                out[f"rt/{router.label}/client/{cid.lstrip('/')}/requests"] = client.requests
                out[f"rt/{router.label}/client/{cid.lstrip('/')}/loadbalancer/size"] = len(client.live)
        for label, server in self.app.servers:
            out[f"rt/{label}/server/{server.ip}/{server.port}/connections"] = server.connections
        return out

    def _delegator(self, method: bytes, query: str, req: Request, body: bytes) -> Tuple[int, bytes, bytes]:
        if method == b"GET":
            q = parse_qs(query, keep_blank_values=True)
            params: Dict[str, Optional[str]] = {k: v[0] for k, v in q.items()}
        elif method == b"POST":
            ctype = (req.header("Content-Type") or b"").split(b";")[0].strip().lower()
            if ctype != b"application/json":
                return 415, b"text/plain", b""
            try:
                parsed = json.loads(body)
                params = {"namespace": parsed.get("namespace"), "dtab": parsed["dtab"], "path": parsed["path"]}
            except (ValueError, KeyError, AttributeError):
                return 400, b"text/plain", b"Malformed delegation request: " + body
        else:
            return 405, b"text/plain", b""
        try:
            dtab = Dtab.read(params.get("dtab") or "")
        except DtabError as exc:
            return 400, b"text/plain", f"Invalid dtab: {exc}".encode()
        try:
            path = Path.read(params.get("path") if params.get("path") is not None else "null")  # type: ignore[arg-type]
        except DtabError as exc:
            return 400, b"text/plain", f"Invalid path: {exc}".encode()
        namespace = params.get("namespace")
        if namespace:
            routers = [r for r in self.app.routers if r.label == namespace]
            if not routers:
                return 501, b"text/plain", f"Name Interpreter for {namespace} cannot show delegations".encode()
            interp = routers[0].params.interpreter
        else:
            interp = ConfiguredNamersInterpreter(())
        try:
            tree = delegate(dtab, path, interp.lookup_namers)
        except PyproxyError as exc:
            return 500, b"text/plain", str(exc).encode()
        return 200, b"application/json", json.dumps(tree.to_json(), separators=(",", ":")).encode()
