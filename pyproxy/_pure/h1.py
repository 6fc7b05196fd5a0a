"""HTTP/1.1 heads and chunk framing, strict (RFC 9112): the pure twin and specification of ``native/src/h1/``.

Grammar (RFC 9112 §2-§7; ``token`` is 1*tchar, RFC 9110 §5.6.2)::

    request-head   = *4( CRLF ) request-line *( field-line CRLF ) CRLF
    request-line   = method SP request-target SP ( "HTTP/1.0" / "HTTP/1.1" ) CRLF
    method         = token                              ; at most 32 bytes, else 501
    request-target = 1*( %x21-22 / %x24-7E )            ; visible ASCII but "#", in one of the forms
        origin-form  "/" ...             ; any method but CONNECT
        absolute-form http[s]://host-port [ ( "/" / "?" ) ... ]   ; scheme in any case; not CONNECT
        authority-form host ":" 1*5DIGIT ; CONNECT only
        asterisk-form "*"                ; OPTIONS only
    response-head  = status-line *( field-line CRLF ) CRLF
    status-line    = ( "HTTP/1.0" / "HTTP/1.1" ) SP %x31-35 2DIGIT [ SP reason ] CRLF
    reason         = *( HTAB / SP / VCHAR / obs-text )
    field-line, host-port: see ``h1_fields``
    chunk-line     = 1*16HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF
    trailer-section = *( field-line CRLF ) CRLF

Every line ends with CRLF: a CR followed by another byte is ``bare-cr``, a LF without CR ``bare-lf``.
Results depend only on whole lines, so feeding a message in pieces gives, for every prefix, ``None``
or the error of the whole (the "growing prefixes" invariant the tests check); the exceptions are a
bare CR (an error as soon as the byte after it is seen) and the limits (as soon as the bytes are
buffered). The limits count bytes: ``max_line`` the request line with its CRLF and the empty lines
before it (414), ``max_head`` the whole head (431), a chunk line with its CRLF (``max_line``), the
trailer section (``max_head``); a too-long error's offset is the first byte past the limit.
Positions and limits are ints in [0, 2**63) (the native twin reads them as i64).

Framing (RFC 9112 §6, checked in field order once the head is complete): Content-Length is a list
of identical ``1*18DIGIT`` (byte-for-byte: ``5, 05`` conflicts); Transfer-Encoding, over all its
lines, is exactly one ``chunked`` (else 501), never in HTTP/1.0, never with Content-Length; an
HTTP/1.1 request has exactly one valid Host (an empty Host is accepted only in HTTP/1.0, where Host
is optional: stricter than RFC 9112 §3.2, which allows it when the target has no authority).

Errors are :class:`~pyproxy.errors.RemoteProtocolError` ``(f"{text} at offset {offset}", status,
kind, offset)`` (the table is in ``h1_fields``); every error of ``parse_response_head`` has status 502. The
chunk and trailer parsers answer as a server would (400/431); a client maps them to 502 itself. A
chunk's data and the CRLF after it are the codec's to check (kind ``bad-chunk-terminator``).
"""

from __future__ import annotations

import re
from typing import NoReturn, Optional, Tuple

from .h1_fields import (
    BAD_CHUNK_EXT,
    BAD_CHUNK_SIZE,
    BAD_METHOD,
    BAD_REQUEST_LINE,
    BAD_STATUS_LINE,
    BAD_TARGET,
    BAD_VERSION,
    CHUNK_LINE_TOO_LONG,
    CHUNK_SIZE_TOO_LARGE,
    HEADERS_TOO_LARGE,
    HOSTNAME,
    LINE_TOO_LONG,
    METHOD_TOO_LONG,
    MISSING_HOST,
    NOT_FIELD_VALUE,
    REQUEST_SPECIAL,
    RESPONSE_SPECIAL,
    TOKEN,
    TRAILERS_TOO_LARGE,
    VERSION_NOT_SUPPORTED,
    WS,
    Buffer,
    Fail,
    Fields,
    error,
    fields,
    framing,
    line_end,
    view,
)

__all__ = ["parse_request_head", "parse_response_head", "parse_chunk_line", "parse_trailers"]

MAX_METHOD = 32  # bytes; a longer method gets 501 (RFC 9112 §3)
LEADING_CRLF = 8  # bytes of empty lines skipped before a request line (RFC 9112 §2.2)

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_HEX = re.compile(rb"[0-9A-Fa-f]*")
_NOT_TARGET = re.compile(rb"[^\x21\x22\x24-\x7e]")
_QUOTED_BODY = re.compile(rb'(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*')
_REQUEST_LINE = re.compile(rb"(" + _TCHAR + rb"+) ([\x21\x22\x24-\x7e]+) HTTP/1\.([01])\r\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n")
_ANY_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_CODE = re.compile(rb"[1-5][0-9][0-9]")
_AUTHORITY = re.compile(HOSTNAME + rb":[0-9]{1,5}")
_ABSOLUTE = re.compile(rb"[hH][tT][tT][pP][sS]?://" + HOSTNAME + rb"(?::[0-9]{0,5})?(?:[/?][\x21-\x7e]*)?")
_EXT = rb"[ \t]*;[ \t]*" + _TCHAR + rb'+(?:[ \t]*=[ \t]*(?:' + _TCHAR + rb'+|"' + _QUOTED_BODY.pattern + rb'"))?'
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:" + _EXT + rb")*\r\n")


def _bad_request_line(data: bytes, s: int, e: int) -> NoReturn:
    """Diagnoses the request line data[s:e] (CRLF-terminated, no CR inside) that ``_REQUEST_LINE`` refused."""
    if s == e:
        raise Fail(BAD_REQUEST_LINE, s)
    m = TOKEN.match(data, s, e)
    me = m.end() if m else s
    if me - s > MAX_METHOD:
        raise Fail(METHOD_TOO_LONG, s)
    if me == s:
        raise Fail(BAD_METHOD, s)
    if me == e or data[me] == 0x09:
        raise Fail(BAD_REQUEST_LINE, me)
    if data[me] != 0x20:
        raise Fail(BAD_METHOD, me)
    ts = me + 1
    te = data.find(b" ", ts, e)
    te = e if te < 0 else te
    if te == ts:
        raise Fail(BAD_REQUEST_LINE, ts)
    bad = _NOT_TARGET.search(data, ts, te)
    if bad:
        raise Fail(BAD_TARGET, bad.start())
    if te == e:
        raise Fail(BAD_REQUEST_LINE, te)  # no version: HTTP/0.9 is not supported
    if _ANY_VERSION.fullmatch(data, te + 1, e):
        raise Fail(VERSION_NOT_SUPPORTED, te + 1)
    raise Fail(BAD_VERSION, te + 1)


def _check_target(method: bytes, target: bytes, at: int) -> None:
    first = target[0]
    if first == 0x2F:  # origin-form
        ok = method != b"CONNECT"
    elif target == b"*":
        ok = method == b"OPTIONS"
    elif method == b"CONNECT":
        ok = _AUTHORITY.fullmatch(target) is not None
    else:
        ok = _ABSOLUTE.fullmatch(target) is not None
    if not ok:
        raise Fail(BAD_TARGET, at)


def _request(data: bytes, max_line: int, max_head: int, max_headers: int) -> Optional[tuple]:
    s = 0
    while s < LEADING_CRLF and data.startswith(b"\r\n", s):
        s += 2
    wend = min(max_line, max_head)
    # The regex is the grammar of a good line; when it refuses, the diagnosis below finds the first
    # problem in the order the native twin checks (line end, then method, target, version).
    m = _REQUEST_LINE.match(data, s, min(wend, len(data)))
    if m is None:
        q = line_end(data, s, wend, LINE_TOO_LONG if max_line <= max_head else HEADERS_TOO_LARGE)
        if q < 0:
            return None
        _bad_request_line(data, s, q)
    method, target, version = m.group(1, 2, 3)
    if len(method) > MAX_METHOD:
        raise Fail(METHOD_TOO_LONG, s)
    _check_target(method, target, s + len(method) + 1)
    minor = 1 if version == b"1" else 0
    r = fields(data, m.end(), max_head, max_headers, REQUEST_SPECIAL, HEADERS_TOO_LARGE)
    if r is None:
        return None
    headers, marks, blank = r
    cl, chunked, connection, host, expect = framing(headers, marks, minor)
    if minor and host is None:
        raise Fail(MISSING_HOST, blank)
    return method, target, minor, tuple(headers), blank + 2, cl, chunked, connection, expect, host


def parse_request_head(buf: Buffer, max_line: int, max_head: int, max_headers: int) -> Optional[tuple]:
    """Parse the request head at the start of ``buf``; None while it is incomplete and within limits.

    Returns ``(method, target, minor, headers, head_len, content_length, chunked, connection,
    expect_continue, host)``: ``headers`` are ``(name, value)`` pairs as received (values without
    surrounding SP/HTAB), ``content_length`` is -1 when absent, ``connection`` the lower-cased
    tokens of every Connection field, ``host`` the Host value or None (HTTP/1.0 only).
    """
    data, _, _ = view(buf, 0, max_head, max_line, max_headers)
    try:
        return _request(data, max_line, max_head, max_headers)
    except Fail as f:
        raise error(f, 0, False) from None


def _response(data: bytes, max_head: int, max_headers: int) -> Optional[tuple]:
    m = _STATUS_LINE.match(data, 0, min(max_head, len(data)))
    if m is None:  # diagnose: line end, version, SP, code, SP, reason
        e = line_end(data, 0, max_head, HEADERS_TOO_LARGE)
        if e < 0:
            return None
        if not data.startswith((b"HTTP/1.0", b"HTTP/1.1"), 0, e):
            raise Fail(BAD_VERSION, 0)
        if e == 8 or data[8] != 0x20:
            raise Fail(BAD_STATUS_LINE, 8)
        if not _CODE.fullmatch(data, 9, min(e, 12)):
            raise Fail(BAD_STATUS_LINE, 9)
        if data[12] != 0x20:  # e > 12 here: a bare code would have matched
            raise Fail(BAD_STATUS_LINE, 12)
        bad = NOT_FIELD_VALUE.search(data, 13, e)
        raise Fail(BAD_STATUS_LINE, bad.start() if bad else e)
    version, code, reason = m.group(1, 2, 3)
    r = fields(data, m.end(), max_head, max_headers, RESPONSE_SPECIAL, HEADERS_TOO_LARGE)
    if r is None:
        return None
    headers, marks, blank = r
    minor = 1 if version == b"1" else 0
    cl, chunked, connection, _, _ = framing(headers, marks, minor)
    return minor, int(code), reason or b"", tuple(headers), blank + 2, cl, chunked, connection


def parse_response_head(buf: Buffer, max_head: int, max_headers: int) -> Optional[tuple]:
    """Parse the response head at the start of ``buf`` (no empty lines skipped); every error is a 502.

    Returns ``(minor, status, reason, headers, head_len, content_length, chunked, connection)``.
    """
    data, _, _ = view(buf, 0, max_head, max_headers)
    try:
        return _response(data, max_head, max_headers)
    except Fail as f:
        raise error(f, 0, True) from None


def _chunk_line(data: bytes, s: int, wend: int) -> Optional[Tuple[int, int]]:
    m = _CHUNK_LINE.match(data, s, min(wend, len(data)))
    if m is not None:
        return int(m.group(1), 16), m.end()
    e = line_end(data, s, wend, CHUNK_LINE_TOO_LONG)
    if e < 0:
        return None
    i = _HEX.match(data, s, e).end()  # type: ignore[union-attr]
    if i == s:
        raise Fail(BAD_CHUNK_SIZE, s)
    if i - s > 16:  # 16 hex digits fit 64 bits: no overflow anywhere (http-hardening Appendix A)
        raise Fail(CHUNK_SIZE_TOO_LARGE, s)
    if data[i] not in b" \t;":
        raise Fail(BAD_CHUNK_SIZE, i)
    # chunk-ext, item by item, up to the first byte that breaks it (the whole line did not match).
    while True:
        i = WS.match(data, i, e).end()  # type: ignore[union-attr]
        if i == e or data[i] != 0x3B:
            raise Fail(BAD_CHUNK_EXT, i)
        i = WS.match(data, i + 1, e).end()  # type: ignore[union-attr]
        t = TOKEN.match(data, i, e)
        if t is None:
            raise Fail(BAD_CHUNK_EXT, i)
        i = t.end()
        j = WS.match(data, i, e).end()  # type: ignore[union-attr]
        if j == e or data[j] != 0x3D:
            continue
        i = WS.match(data, j + 1, e).end()  # type: ignore[union-attr]
        if i < e and data[i] == 0x22:
            i = _QUOTED_BODY.match(data, i + 1, e).end()  # type: ignore[union-attr]
            if i == e or data[i] != 0x22:
                raise Fail(BAD_CHUNK_EXT, i)
            i += 1
        else:
            t = TOKEN.match(data, i, e)
            if t is None:
                raise Fail(BAD_CHUNK_EXT, i)
            i = t.end()


def parse_chunk_line(buf: Buffer, pos: int, max_line: int) -> Optional[Tuple[int, int]]:
    """Parse the chunk-size line at ``buf[pos]``: ``(size, next_pos)`` (just past its CRLF) or None."""
    data, start, shift = view(buf, pos, max_line)
    try:
        r = _chunk_line(data, start, start + max_line)
    except Fail as f:
        raise error(f, shift, False) from None
    return None if r is None else (r[0], r[1] + shift)


def parse_trailers(buf: Buffer, pos: int, max_head: int, max_headers: int) -> Optional[Tuple[Fields, int]]:
    """Parse the trailer section at ``buf[pos]`` (after the last chunk): ``(fields, next_pos)`` or None."""
    data, start, shift = view(buf, pos, max_head, max_headers)
    try:
        r = fields(data, start, start + max_head, max_headers, frozenset(), TRAILERS_TOO_LARGE)
    except Fail as f:
        raise error(f, shift, False) from None
    return None if r is None else (tuple(r[0]), r[2] + 2 + shift)
