"""``/delegator.json``: explain how a path delegates through a dtab (naming spec §4.7); and
``/request-route.json``: where a whole request would go (the playground's "where will my request go").

``GET ?namespace=&dtab=&path=`` or ``POST`` JSON ``{"namespace", "dtab", "path"}``. The namespace is a
router label and selects that router's namers; without one only the ``/$/`` system namers apply;
an unknown label answers 501 as Linkerd's plain ``NameInterpreter`` does. The caller sends the whole
dtab to evaluate (the playground sends the router's dtab plus edits); nothing is prepended.
"""

from __future__ import annotations

import json
from typing import Dict, Optional

from ..errors import DtabError, PyproxyError
from ..naming.binding import ConfiguredNamersInterpreter
from ..naming.dtab import Dtab
from ..naming.path import Path
from ..view import ProxyView
from .request import AdminRequest, Reply

__all__ = ["delegator_json", "request_route_json"]

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


def delegator_json(view: ProxyView, req: AdminRequest) -> Reply:
    if req.method in ("GET", "HEAD"):
        params: Dict[str, Optional[str]] = dict(req.query)
    elif req.method == "POST":
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return Reply(415, _TEXT)
        try:
            parsed = json.loads(req.body)
            params = {"namespace": parsed.get("namespace"), "dtab": parsed["dtab"], "path": parsed["path"]}
            if not isinstance(params["dtab"], str) or not isinstance(params["path"], str):
                raise ValueError
        except (ValueError, KeyError, AttributeError, TypeError):
            return Reply(400, _TEXT, b"Malformed delegation request: " + req.body)
    else:
        return Reply(405, _TEXT)
    try:
        dtab = Dtab.read(params.get("dtab") or "")
    except DtabError as exc:
        return Reply(400, _TEXT, f"Invalid dtab: {exc}".encode())
    try:
        path = Path.read(params.get("path") if params.get("path") is not None else "null")  # type: ignore[arg-type]
    except DtabError as exc:
        return Reply(400, _TEXT, f"Invalid path: {exc}".encode())
    namespace = params.get("namespace")
    if namespace:
        router = view.router(namespace)
        if router is None:
            return Reply(501, _TEXT, f"Name Interpreter for {namespace} cannot show delegations".encode())
        interp = router.interpreter
    else:
        interp = ConfiguredNamersInterpreter(())
    try:
        tree = interp.delegate(dtab, path)
    except PyproxyError as exc:
        return Reply(500, _TEXT, str(exc).encode())
    return Reply(200, _JSON, json.dumps(tree.to_json(), separators=(",", ":")).encode())


def request_route_json(view: ProxyView, req: AdminRequest) -> Reply:
    """``POST /request-route.json`` ``{"router", "server" (index, default 0), "request" (head text)}``:
    "where will my request go" (``routing.explain``): the identification, every override and why
    it was used or not, the effective dtab and the delegation tree. 400 for what does not read."""
    if req.method != "POST":
        return Reply(405, _TEXT, b"POST required", [(b"Allow", b"POST")])
    try:
        parsed = json.loads(req.body)
        label, server, text = parsed["router"], parsed.get("server", 0), parsed["request"]
        if not isinstance(label, str) or not isinstance(text, str) or not isinstance(server, int):
            raise ValueError
    except (ValueError, KeyError, AttributeError, TypeError):
        return Reply(400, _TEXT, b"expected JSON {\"router\": label, \"server\": index, \"request\": head text}")
    router = view.router(label)
    if router is None:
        return Reply(404, _TEXT, f"no router {label}".encode())
    try:
        answer = router.explain(server, text)
    except ValueError as exc:
        return Reply(400, _TEXT, str(exc).encode())
    return Reply(200, _JSON, json.dumps(answer, separators=(",", ":")).encode())
