""""Where will my request go": what a router would do with a pasted request, for the dtab playground.

Given a router, one of its listeners' rules and the text of a request head (a request line, or
just header lines), :func:`explain` answers as :meth:`Router.decide <.router.Router.decide>`
decides, without sending anything or counting anything: the identification (the logical name, or
why there is none), every override the request carries and whether it was used or why not (an
edge's scrub, a signature's verdict, precedence, a member that does not read), the effective dtab
(the router's, then the request's), and the delegation tree of the name under it, down to the
endpoints. A request the router would refuse (a baggage member that does not read, an override
refused at a strict edge, a dtab that does not parse) says so, with the status.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .. import _impl
from ..errors import DtabError, NamePending, PathError, ProtocolError, PyproxyError
from ..http import headers as h
from ..http.context import OverrideCache
from ..http.message import Request
from ..naming.dtab import Dtab
from .identifiers import Identified, compose
from .overrides import OverrideRefused, resolve
from .router import Router, ServerRules

__all__ = ["explain", "read_head"]

_LIMITS = (8192, 65536, 200)


def read_head(text: str) -> Request:
    """A request head from pasted text: header lines, optionally after a request line (``GET / HTTP/1.1``).

    Raises:
        ValueError: it does not read as a request (the message says why).
    """
    lines = [ln.rstrip("\r") for ln in text.strip().splitlines() if ln.strip()]
    if not lines or ":" in lines[0].split(" ", 1)[0] or len(lines[0].split(" ")) != 3:
        lines.insert(0, "GET / HTTP/1.1")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")
    try:
        parsed = _impl.parse_request_head(raw, *_LIMITS)
    except ProtocolError as exc:
        raise ValueError(f"the request does not read: {exc}") from None
    if parsed is None:
        raise ValueError("the request does not read: incomplete")
    return Request.from_kernel(parsed)


def _show(d: Dtab) -> List[Dict[str, str]]:
    return [{"prefix": e.prefix.show, "dst": e.dst.show} for e in d]


def explain(router: Router, rules: ServerRules, text: str, now: float) -> Dict[str, Any]:
    """The playground's answer for one pasted request (see the module docstring).

    Raises:
        ValueError: the text does not read as a request.
    """
    req = read_head(text)
    edge = rules.clear_context
    out: Dict[str, Any] = {"router": router.label, "edge": edge, "overrides": [], "refused": None}
    notes: List[Dict[str, Any]] = out["overrides"]
    ov = rules.overrides
    _, ctx, _ = h.scan_request(req.headers, req.connection, edge=edge, capture=ov.capture if ov is not None else None)
    captured = ov.capture or () if ov is not None else ()
    for name, value in req.headers:
        lower = name.lower()
        if edge and lower in (h.DTAB, h.CTX_DTAB) and lower not in captured:
            why = "edge (clearContext): every l5d-* field is removed" + ("" if lower == h.CTX_DTAB else "; signedOverrides would accept a signed one")
            notes.append({"source": lower.decode(), "value": value.decode("latin-1"), "used": False, "why": why})
        elif not edge and lower == b"baggage" and (ov is None or ov.baggage is None):
            notes.append({"source": "baggage", "value": value.decode("latin-1"), "used": False, "why": "this router has no dtabBaggage: baggage is not read"})
    local = Dtab()
    try:
        if ov is not None:
            local = resolve(ov, ctx, OverrideCache(), now, None, notes).local
        elif not edge:
            dtab_ctx, dtab_user = ctx.get(h.CTX_DTAB, ()), ctx.get(h.DTAB, ())
            if dtab_ctx or dtab_user:
                local = OverrideCache().get(dtab_ctx, dtab_user)
            for name, values in ((h.CTX_DTAB, dtab_ctx), (h.DTAB, dtab_user)):
                if values:
                    notes.append({"source": name.decode(), "value": b"\n".join(values).decode("latin-1"), "used": True, "why": "appended to the router's dtab"})
    except OverrideRefused as exc:
        out["refused"] = {"status": exc.status, "message": str(exc)}
    except DtabError as exc:
        out["refused"] = {"status": 400, "message": str(exc)}
    base = router.params.dtab
    dtab = base.concat(local) if local.dentries else base
    out["baseDtab"], out["localDtab"], out["dtab"] = _show(base), _show(local), dtab.show
    dst: Optional[Any] = None
    try:
        ident = compose(router.params.identifiers, req)
        if isinstance(ident, Identified):
            dst = ident.dst
            out["identification"] = {"dst": dst.show}
        else:
            out["identification"] = {"error": f"Unknown destination: {ident.reason}"}
    except NamePending as pending:
        out["identification"] = {"error": f"not known yet: {pending}"}
    except (PathError, PyproxyError) as exc:
        out["identification"] = {"error": str(exc)}
    out["tree"] = None
    if dst is not None and out["refused"] is None:
        try:
            out["tree"] = router.params.interpreter.delegate(dtab, dst).to_json()
        except PyproxyError as exc:
            out["tree"] = {"type": "exception", "path": dst.show, "message": str(exc)}
    return out
