"""Header rules of a Linkerd 1.x HTTP proxy: the ``l5d-*`` names, hop-by-hop removal, the edge scrub.

Sans-IO helpers over header lists (``list[tuple[bytes, bytes]]``, names as received). Order matters
(http-hardening §1.9): fields a client nominates in ``Connection`` are removed from the *received*
message before the proxy adds its own (``Via``, ``l5d-ctx-*``, ``l5d-dst-*``), so a client cannot
delete what the proxy adds; and ``Host``, ``Content-Length``, ``Transfer-Encoding`` and the proxy's own
context fields cannot be nominated away.

At an edge (``clearContext: true``) every ``l5d-*`` field is removed in any spelling: case, and the
underscore form ``l5d_dtab`` that CGI/WSGI backends fold into ``l5d-dtab``.
"""

from __future__ import annotations

from typing import Container, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import quote_plus

__all__ = [
    "Headers",
    "DTAB",
    "DTAB_SIG",
    "CTX_DTAB",
    "CTX_DEADLINE",
    "CTX_TRACE",
    "REQID",
    "SAMPLE",
    "DST_SERVICE",
    "DST_CLIENT",
    "DST_RESIDUAL",
    "ERR",
    "RETRYABLE",
    "HOP_BY_HOP",
    "is_l5d",
    "get",
    "remove_hop_by_hop",
    "remove_l5d",
    "err_header_value",
    "scan_request",
    "CONTEXT",
]

Headers = List[Tuple[bytes, bytes]]

DTAB = b"l5d-dtab"
#: The signature of an ``l5d-dtab`` sent to an edge with ``signedOverrides`` (http/signature.py).
DTAB_SIG = b"l5d-dtab-sig"
CTX_DTAB = b"l5d-ctx-dtab"
CTX_DEADLINE = b"l5d-ctx-deadline"
CTX_TRACE = b"l5d-ctx-trace"
REQID = b"l5d-reqid"
SAMPLE = b"l5d-sample"
DST_SERVICE = b"l5d-dst-service"
DST_CLIENT = b"l5d-dst-client"
DST_RESIDUAL = b"l5d-dst-residual"
ERR = b"l5d-err"
RETRYABLE = b"l5d-retryable"
#: This router's classification of a response (``1.0`` success, ``0.0`` failure), as Linkerd's path stack sets it.
SUCCESS_CLASS = b"l5d-success-class"
VIA = b"via"

#: Removed from every forwarded request and response (RFC 9110 §7.6.1, Linkerd 1.x's list).
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
    )
)

# Fields a client may not remove by naming them in Connection: framing, routing, and what we add.
_NOT_NOMINABLE = frozenset((b"host", b"content-length", b"transfer-encoding", VIA))


def is_l5d(name: bytes) -> bool:
    """True for ``l5d-*`` in any case, and for the underscore spelling ``l5d_*``."""
    return len(name) > 4 and name[:4].lower() in (b"l5d-", b"l5d_")


def get(headers: Sequence[Tuple[bytes, bytes]], name: bytes) -> Optional[bytes]:
    """The first value of ``name`` (lower-case), or None."""
    for k, v in headers:
        if len(k) == len(name) and k.lower() == name:
            return v
    return None



def remove_hop_by_hop(headers: Headers, connection: Iterable[bytes], *, edge: bool) -> Headers:
    """``headers`` without hop-by-hop fields and without the fields named in ``Connection``.

    A nomination of a protected field is ignored; at an edge, nominating an ``l5d-*`` field removes
    nothing extra (the scrub removes them all anyway).
    """
    nominated = {t for t in connection if t not in _NOT_NOMINABLE and not (edge and is_l5d(t))}
    drop = HOP_BY_HOP | nominated if nominated else HOP_BY_HOP
    return [(k, v) for k, v in headers if k.lower() not in drop]


#: Context fields a router reads and then re-writes itself; the received copies never travel on.
CONTEXT = frozenset((DTAB, CTX_DTAB, CTX_TRACE, CTX_DEADLINE, SAMPLE, REQID, DST_SERVICE, DST_CLIENT, DST_RESIDUAL))
_KEEP_ALIVE_TOKENS = frozenset((b"close", b"keep-alive"))
#: Linkerd 1.x removes a received ``x-forwarded-client-cert`` unless the client's
#: ``forwardClientCert`` is on (its default is off: linkerd/linkerd#2068, against spoofing). pyproxy
#: has no TLS, so a request never keeps it (the lane's twin: ``native/src/lane/head.rs``).
XFCC = b"x-forwarded-client-cert"
_REQUEST_DROP = HOP_BY_HOP | {XFCC}


def scan_request(
    headers: Sequence[Tuple[bytes, bytes]], connection: Sequence[bytes], *, edge: bool, capture: Optional[Container[bytes]] = None,
) -> Tuple[Headers, dict, List[bytes]]:
    """One pass over a request's fields (the hot path): what to forward, the context, the Via values.

    ``capture``: more lower-case field names whose values go into the context and are not
    forwarded as received, even at an edge (the carriers of a router's ``dtabBaggage``, and at an
    edge with ``signedOverrides`` ``l5d-dtab`` and ``l5d-dtab-sig``), after hop-by-hop removal.

    Returns:
        ``(kept, context, via)``: the fields to forward (hop-by-hop, nominated, ``Content-Length``,
        ``Via``, ``x-forwarded-client-cert`` and context fields removed; at an edge every ``l5d-*``/``l5d_*`` field too), the values of the context
        fields by lower-case name (empty at an edge: they are ignored there), and the received
        ``Via`` values.
    """
    drop = _REQUEST_DROP
    if connection and not _KEEP_ALIVE_TOKENS.issuperset(connection):
        nominated = {t for t in connection if t not in _NOT_NOMINABLE and not (edge and is_l5d(t))}
        drop = _REQUEST_DROP | nominated
    kept: Headers = []
    context: dict = {}
    via: List[bytes] = []
    for kv in headers:
        name = kv[0].lower()
        if name in drop:
            continue
        if capture is not None and name in capture:
            context.setdefault(name, []).append(kv[1])
            continue
        if name[:4] in (b"l5d-", b"l5d_") and len(name) > 4:
            if edge:
                continue
            if name in CONTEXT:
                context.setdefault(name, []).append(kv[1])
                continue
        elif name == VIA:
            via.append(kv[1])
            continue
        elif name == b"content-length":
            continue  # the framing field is written once, canonically, by the forwarder
        kept.append(kv)
    return kept, context, via


def remove_l5d(headers: Headers) -> Headers:
    """``headers`` without any ``l5d-*`` / ``l5d_*`` field (the edge scrub)."""
    return [(k, v) for k, v in headers if not is_l5d(k)]


def err_header_value(message: str, limit: int) -> bytes:
    """Linkerd's ``l5d-err``: the message form-URL-encoded as ISO-8859-1, cut to ``limit`` bytes."""
    encoded = quote_plus(message, safe="", encoding="latin-1", errors="replace").encode("ascii")
    return encoded[:limit]

