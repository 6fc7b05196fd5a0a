"""The parts shared by the HTTP/1.1 head and trailer parsers of ``h1``: errors, lines, field lines, framing.

Grammar (RFC 9112 §2.2, §5, §6; RFC 9110 §5.5, §5.6.2, §8.6; ``token`` = 1*tchar)::

    line        = *( any byte but CR and LF ) CRLF   ; a CR before another byte: bare-cr; LF alone: bare-lf
    field-line  = token ":" OWS [ field-value ] OWS  ; no SP before ":" (RFC 9112 §5.1), no obs-fold (§5.2)
    field-value = 1*fvchar *( 1*( SP / HTAB ) 1*fvchar )      fvchar = VCHAR / obs-text
    Content-Length    = 1*18DIGIT *( OWS "," OWS 1*18DIGIT )   ; all identical, byte for byte
    Transfer-Encoding = OWS "chunked" OWS                      ; over all its lines, any case
    Host        = ( "[" 1*( HEXDIG / ":" / "." ) "]" / 1*( reg-char / "%" 2HEXDIG ) ) [ ":" *5DIGIT ]
                  reg-char = ALPHA / DIGIT / "-" / "." / "_" / "~" / "!" / "$" / "&" / "'" / "("
                             / ")" / "*" / "+" / ";" / "="    ; RFC 3986 reg-name without ","

Each error is a ``Why`` = ``(kind, status for a request, text)``; the parsers raise ``Fail(why,
offset)`` and the public functions of ``h1`` turn it into ``RemoteProtocolError(f"{text} at offset
{offset}", status, kind, offset)`` (status 502 for a response).
"""

from __future__ import annotations

import re
from typing import List, NoReturn, Optional, Tuple, Union

from ..errors import RemoteProtocolError

__all__ = ["Buffer", "Fields", "Fail", "error", "view", "line_end", "fields", "framing"]

Buffer = Union[bytes, bytearray, memoryview]
Fields = Tuple[Tuple[bytes, bytes], ...]
Why = Tuple[str, int, str]  # (kind, status for a request, text)

LINE_TOO_LONG: Why = ("line-too-long", 414, "request line too long")
HEADERS_TOO_LARGE: Why = ("headers-too-large", 431, "header section too large")
TRAILERS_TOO_LARGE: Why = ("headers-too-large", 431, "trailer section too large")
TOO_MANY_HEADERS: Why = ("too-many-headers", 431, "too many field lines")
BAD_REQUEST_LINE: Why = ("bad-request-line", 400, "malformed request line")
BAD_METHOD: Why = ("bad-method", 400, "method is not a token")
METHOD_TOO_LONG: Why = ("bad-method", 501, "method too long")
BAD_TARGET: Why = ("bad-target", 400, "invalid request target")
BAD_VERSION: Why = ("bad-version", 400, "invalid HTTP version")
VERSION_NOT_SUPPORTED: Why = ("http-version-not-supported", 505, "HTTP version not supported")
BAD_STATUS_LINE: Why = ("bad-status-line", 502, "malformed status line")
BARE_CR: Why = ("bare-cr", 400, "CR not followed by LF")
BARE_LF: Why = ("bare-lf", 400, "LF not preceded by CR")
OBS_FOLD: Why = ("obs-fold", 400, "obsolete line folding")
BAD_HEADER_NAME: Why = ("bad-header-name", 400, "field name is not a token")
SPACE_BEFORE_COLON: Why = ("space-before-colon", 400, "whitespace between field name and colon")
BAD_HEADER_VALUE: Why = ("bad-header-value", 400, "invalid byte in field value")
CL_AND_TE: Why = ("cl-and-te", 400, "both Content-Length and Transfer-Encoding")
BAD_CONTENT_LENGTH: Why = ("bad-content-length", 400, "invalid Content-Length")
CONFLICTING_CONTENT_LENGTH: Why = ("conflicting-content-length", 400, "conflicting Content-Length values")
UNSUPPORTED_TE: Why = ("unsupported-transfer-coding", 501, "transfer coding other than one chunked")
TE_IN_HTTP10: Why = ("te-in-http10", 400, "Transfer-Encoding in HTTP/1.0")
MISSING_HOST: Why = ("missing-host", 400, "HTTP/1.1 request without Host")
DUPLICATE_HOST: Why = ("duplicate-host", 400, "more than one Host")
BAD_HOST: Why = ("bad-host", 400, "invalid Host")
BAD_CHUNK_SIZE: Why = ("bad-chunk-size", 400, "invalid chunk size")
CHUNK_SIZE_TOO_LARGE: Why = ("chunk-size-too-large", 400, "chunk size over 16 hex digits")
BAD_CHUNK_EXT: Why = ("bad-chunk-ext", 400, "invalid chunk extension")
CHUNK_LINE_TOO_LONG: Why = ("line-too-long", 400, "chunk line too long")

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_FV = rb"[\x21-\x7e\x80-\xff]"
HOSTNAME = rb"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})+)"
TOKEN = re.compile(_TCHAR + rb"+")
WS = re.compile(rb"[ \t]*")
NOT_FIELD_VALUE = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")
_FIELD = re.compile(rb"(" + _TCHAR + rb"+):[ \t]*((?:" + _FV + rb"+(?:[ \t]+" + _FV + rb"+)*)?)[ \t]*\r\n")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_HOST = re.compile(HOSTNAME + rb"(?::[0-9]{0,5})?")

# Fields whose values drive framing or routing, by lower-case name; others are not even lower-cased.
REQUEST_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection", b"host", b"expect"})
RESPONSE_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_SPECIAL_LENS = frozenset(len(n) for n in REQUEST_SPECIAL)


class Fail(Exception):
    """Where and why parsing stopped; the public functions turn it into RemoteProtocolError."""

    def __init__(self, why: Why, offset: int) -> None:
        self.why, self.offset = why, offset


def error(f: Fail, shift: int, response: bool) -> RemoteProtocolError:
    kind, status, text = f.why
    offset = f.offset + shift
    return RemoteProtocolError(f"{text} at offset {offset}", 502 if response else status, kind, offset)


def view(buf: Buffer, pos: int, size: int, *limits: int) -> Tuple[bytes, int, int]:
    """``(data, start, shift)``: bytes holding buf[pos:pos+size] at ``start``, and ``data``'s offset in buf."""
    if pos < 0 or size < 0 or any(n < 0 for n in limits):
        raise ValueError("positions and limits must be >= 0")
    if type(buf) is bytes:
        if pos > len(buf):
            raise ValueError("pos out of range")
        return buf, pos, 0
    with memoryview(buf) as mv, mv.cast("B") as flat:
        if pos > len(flat):
            raise ValueError("pos out of range")
        return bytes(flat[pos : pos + size]), 0, pos


def line_end(data: bytes, s: int, wend: int, too_long: Why) -> int:
    """The index of the CR that ends the line starting at ``s`` (its LF must be before ``wend``), or -1."""
    n = len(data)
    e = wend if wend < n else n
    p = data.find(b"\n", s, e)
    q = data.find(b"\r", s, p if p >= 0 else e)
    if q >= 0:
        if q + 1 == p:
            return q
        if q + 1 < e:  # the byte after this CR is known and is not LF
            raise Fail(BARE_CR, q)
    elif p >= 0:
        raise Fail(BARE_LF, p)
    if n >= wend:
        raise Fail(too_long, wend)
    return -1


def _bad_field(data: bytes, s: int, e: int) -> NoReturn:
    """Diagnoses the field line data[s:e] (CRLF-terminated, no CR inside) that ``_FIELD`` refused."""
    if data[s] in b" \t":
        raise Fail(OBS_FOLD, s)
    m = TOKEN.match(data, s, e)
    n = m.end() if m else s
    if n == s:
        raise Fail(BAD_HEADER_NAME, s)
    if n == e or data[n] != 0x3A:
        k = WS.match(data, n, e).end()  # type: ignore[union-attr]
        if k > n and k < e and data[k] == 0x3A:
            raise Fail(SPACE_BEFORE_COLON, n)
        raise Fail(BAD_HEADER_NAME, n)
    bad = NOT_FIELD_VALUE.search(data, n + 1, e)
    raise Fail(BAD_HEADER_VALUE, bad.start() if bad else e)


def fields(data: bytes, s: int, limit: int, max_headers: int, special: frozenset, too_large: Why) -> Optional[tuple]:
    """Field lines from ``s`` up to the empty line: ``(headers, marks, blank_line_start)`` or None.

    ``marks`` lists ``(lower-case name, index, line start)`` of the fields named in ``special``.
    """
    headers: List[Tuple[bytes, bytes]] = []
    marks = []
    end = limit if limit < len(data) else len(data)
    match = _FIELD.match
    while not data.startswith(b"\r\n", s, limit):
        m = match(data, s, end)
        if m is None:
            q = line_end(data, s, limit, too_large)
            if q < 0:
                return None
            if len(headers) >= max_headers:
                raise Fail(TOO_MANY_HEADERS, s)
            _bad_field(data, s, q)
        if len(headers) >= max_headers:
            raise Fail(TOO_MANY_HEADERS, s)
        pair = m.group(1, 2)
        if len(pair[0]) in _SPECIAL_LENS:
            low = pair[0].lower()
            if low in special:
                marks.append((low, len(headers), s))
        headers.append(pair)
        s = m.end()
    return headers, marks, s


def framing(headers: list, marks: list, minor: int) -> tuple:
    """``(content_length, chunked, connection, host, expect_continue)`` from the marked fields, in order."""
    cl_text: Optional[bytes] = None
    te = chunked = expect = False
    connection: List[bytes] = []
    host: Optional[bytes] = None
    for low, i, at in marks:
        value = headers[i][1]
        if low == b"content-length":
            parts = [p.strip(b" \t") for p in value.split(b",")]
            if not all(_DIGITS.fullmatch(p) for p in parts):
                raise Fail(BAD_CONTENT_LENGTH, at)
            if any(p != parts[0] for p in parts) or (cl_text is not None and cl_text != parts[0]):
                raise Fail(CONFLICTING_CONTENT_LENGTH, at)
            cl_text = parts[0]
            if te:
                raise Fail(CL_AND_TE, at)
        elif low == b"transfer-encoding":
            if minor == 0:
                raise Fail(TE_IN_HTTP10, at)
            if cl_text is not None:
                raise Fail(CL_AND_TE, at)
            for p in value.split(b","):
                if chunked or p.strip(b" \t").lower() != b"chunked":
                    raise Fail(UNSUPPORTED_TE, at)
                chunked = True
            te = True
        elif low == b"connection":
            connection.extend(t.lower() for t in (p.strip(b" \t") for p in value.split(b",")) if t)
        elif low == b"host":
            if host is not None:
                raise Fail(DUPLICATE_HOST, at)
            if (value or minor) and not _HOST.fullmatch(value):
                raise Fail(BAD_HOST, at)
            host = value
        elif low == b"expect" and minor and value.lower() == b"100-continue":
            expect = True  # ignored in HTTP/1.0 (RFC 9110 §10.1.1)
    return (-1 if cl_text is None else int(cl_text)), chunked, tuple(connection), host, expect


