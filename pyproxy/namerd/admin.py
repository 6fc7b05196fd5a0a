"""namerd's admin endpoints: ``/admin/ping``, ``/config.json``, ``/admin/metrics.json``,
``/dtab/delegator.json`` (namerd serves the delegator there, not at ``/delegator.json``),
``POST /admin/shutdown``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List

from ..errors import DtabError, PathError, PyproxyError
from ..naming.dtab import Dtab
from ..naming.path import Path
from .core import Namerd
from .http import ApiRequest, HttpServer, Responder

__all__ = ["NamerdAdmin"]

_JSON = "application/json"
_TEXT = "text/plain"


class NamerdAdmin:
    """The admin handler of one namerd process."""

    def __init__(self, namerd: Namerd, config_data: Dict[str, Any], servers: List[HttpServer], stop: Callable[[], None]) -> None:
        self.namerd = namerd
        self.config_data = config_data
        self.servers = servers
        self.stop = stop

    def metrics(self) -> Dict[str, Any]:
        store = self.namerd.store
        out: Dict[str, Any] = {
            "dtabstore/namespaces": len(store.dtabs),
            "dtabstore/available": 1 if store.problem is None and store.ready.is_set() else 0,
            "dtabstore/changes": store.changes.generation,
            "namerd/changes": self.namerd.changes.generation,
            "namerd/bindings_computed": self.namerd.bindings_computed,
        }
        for s in self.servers:
            out[f"interface/{s.name}/connections"] = s.connections
        return out

    async def __call__(self, req: ApiRequest, rsp: Responder) -> None:
        p = req.path
        if p == "/admin/ping":
            return await rsp.whole(200, b"pong", _TEXT)
        if p == "/config.json":
            return await rsp.whole(200, json.dumps(self.config_data).encode(), _JSON)
        if p == "/admin/metrics.json":
            return await rsp.whole(200, json.dumps(self.metrics()).encode(), _JSON)
        if p == "/admin/shutdown":
            if req.method != "POST":
                return await rsp.whole(405, b"use POST\n", _TEXT)
            await rsp.whole(200, b"shutting down\n", _TEXT)
            self.stop()
            return
        if p == "/dtab/delegator.json":
            try:
                dtab = Dtab.read(req.query.get("dtab") or "")
            except (DtabError, PathError) as exc:
                return await rsp.whole(400, f"Invalid dtab: {exc}".encode(), _TEXT)
            try:
                path = Path.read(req.query.get("path", "null"))
            except (DtabError, PathError) as exc:
                return await rsp.whole(400, f"Invalid path: {exc}".encode(), _TEXT)
            try:
                tree = self.namerd.interpreter.delegate(dtab, path)
            except PyproxyError as exc:
                return await rsp.whole(500, str(exc).encode(), _TEXT)
            return await rsp.whole(200, json.dumps(tree.to_json(), separators=(",", ":")).encode(), _JSON)
        await rsp.whole(404)
