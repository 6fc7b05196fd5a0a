"""The HTTP/1.1 kernels, rule by rule, on both twins; then llhttp's corpus, case by case.

Each rejection is checked as ``(status, kind, offset)``. The corpus runner plays every input of
llhttp's test cases (``tests/data/llhttp/cases.jsonl``) through the kernels (``llhttp_corpus.decide``)
and asserts llhttp's accept/reject verdict, except for ``lenient`` cases (which we must reject) and
the cases where we differ on purpose: ``llhttp_corpus.STRICTER`` and ``LAXER``, each with its reason.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Optional

import llhttp_corpus
import pytest

from pyproxy.errors import LocalProtocolError, ProtocolError, PyproxyError, RemoteProtocolError

L, H, N = 8192, 65536, 100
OK = b"GET / HTTP/1.1\r\nHost: h\r\n"


def rejection(fn: Callable[..., Any], *args: Any) -> tuple:
    with pytest.raises(RemoteProtocolError) as info:
        fn(*args)
    e = info.value
    assert str(e) == f"{str(e).rsplit(' at offset ', 1)[0]} at offset {e.offset}"
    return e.status, e.kind, e.offset


def test_error_classes() -> None:
    e = RemoteProtocolError("bad", 431, "headers-too-large", 7)
    assert isinstance(e, ProtocolError) and isinstance(e, PyproxyError)
    assert (str(e), e.status, e.kind, e.offset) == ("bad", 431, "headers-too-large", 7)
    assert LocalProtocolError("x").status == 400 and LocalProtocolError("x").offset == -1


def test_request_values(kernels: ModuleType) -> None:
    head = b"\r\nPOST http://h/p?q HTTP/1.1\r\nHost: h:8080\r\nX-A:\t a  b \r\nConnection: Keep-Alive, ,X\r\n"
    head += b"connection: close\r\nContent-Length: 5, 5\r\nEXPECT: 100-continue\r\nEmpty:\r\n\r\nhello"
    r = kernels.parse_request_head(head, L, H, N)
    headers = ((b"Host", b"h:8080"), (b"X-A", b"a  b"), (b"Connection", b"Keep-Alive, ,X"),
               (b"connection", b"close"), (b"Content-Length", b"5, 5"), (b"EXPECT", b"100-continue"), (b"Empty", b""))
    assert r == (b"POST", b"http://h/p?q", 1, headers, len(head) - 5, 5, False,
                 (b"keep-alive", b"x", b"close"), True, b"h:8080")
    r = kernels.parse_request_head(b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", L, H, N)
    assert (r[2], r[8], r[9]) == (0, False, None)  # Expect is ignored in HTTP/1.0
    assert kernels.parse_request_head(b"GET / HTTP/1.0\r\nHost:\r\n\r\n", L, H, N)[9] == b""
    chunked = kernels.parse_request_head(OK + b"Transfer-Encoding: \tCHUNKED \r\n\r\n", L, H, N)
    assert chunked[5:7] == (-1, True)
    for target in (b"OPTIONS *", b"CONNECT h:443", b"CONNECT [::1]:1", b"GET HTTPS://a.b:1", b"GET http://a%2d;=~_!$&'()*+b.c"):
        method, t = target.split(b" ")
        assert kernels.parse_request_head(target + b" HTTP/1.1\r\nHost: a\r\n\r\n", L, H, N)[:2] == (method, t)


def _with(fields: bytes, start: bytes = b"POST / HTTP/1.1\r\n") -> bytes:
    return start + fields + b"\r\n"


REQUEST_ERRORS = [
    # line endings (RFC 9112 §2.2)
    (b"GET / HTTP/1.1\n", 400, "bare-lf", 14),
    (b"GET / HTTP/1.1\rX", 400, "bare-cr", 14),
    (b"GET /\r HTTP/1.1\r\n", 400, "bare-cr", 5),
    (OK + b"A: b\nC: d\r\n\r\n", 400, "bare-lf", 29),
    (OK + b"A: b\r\r\n", 400, "bare-cr", 29),
    (b"\n", 400, "bare-lf", 0),
    # request line (RFC 9112 §3)
    (b"GET  / HTTP/1.1\r\n", 400, "bad-request-line", 4),
    (b"GET\t/ HTTP/1.1\r\n", 400, "bad-request-line", 3),
    (b"GET / HTTP/1.1 \r\n", 400, "bad-version", 6),
    (b"GET /\r\n", 400, "bad-request-line", 5),
    (b"GET\r\n", 400, "bad-request-line", 3),
    (b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n", 400, "bad-request-line", 8),
    (b" GET / HTTP/1.1\r\n", 400, "bad-method", 0),
    (b"G@T / HTTP/1.1\r\n", 400, "bad-method", 1),
    (b"GET\x0b/ HTTP/1.1\r\n", 400, "bad-method", 3),
    (b"A" * 33 + b" / HTTP/1.1\r\n", 501, "bad-method", 0),
    (b"GET /a#b HTTP/1.1\r\n", 400, "bad-target", 6),
    (b"GET /\xc3\xa9 HTTP/1.1\r\n", 400, "bad-target", 5),
    (b"GET /\x00 HTTP/1.1\r\n", 400, "bad-target", 5),
    (b"GET a/b HTTP/1.1\r\n", 400, "bad-target", 4),
    (b"GET * HTTP/1.1\r\n", 400, "bad-target", 4),
    (b"GET h:80 HTTP/1.1\r\n", 400, "bad-target", 4),
    (b"CONNECT /x HTTP/1.1\r\n", 400, "bad-target", 8),
    (b"CONNECT h HTTP/1.1\r\n", 400, "bad-target", 8),
    (b"CONNECT http://h:1 HTTP/1.1\r\n", 400, "bad-target", 8),
    (b"GET http://u@h/ HTTP/1.1\r\n", 400, "bad-target", 4),
    (b"GET http:/// HTTP/1.1\r\n", 400, "bad-target", 4),
    (b"GET ftp://h/ HTTP/1.1\r\n", 400, "bad-target", 4),
    (b"GET / HTTP/2.0\r\n", 505, "http-version-not-supported", 6),
    (b"GET / HTTP/0.9\r\n", 505, "http-version-not-supported", 6),
    (b"GET / HTTP/1.10\r\n", 400, "bad-version", 6),
    (b"GET / HTTP/01.1\r\n", 400, "bad-version", 6),
    (b"GET / http/1.1\r\n", 400, "bad-version", 6),
    (b"GET / HTTP/1\r\n", 400, "bad-version", 6),
    # field lines (RFC 9112 §5)
    (OK + b" X: y\r\n", 400, "obs-fold", 25),
    (b"GET / HTTP/1.1\r\n\tHost: h\r\n", 400, "obs-fold", 16),
    (OK + b"X : y\r\n", 400, "space-before-colon", 26),
    (OK + b"X\t: y\r\n", 400, "space-before-colon", 26),
    (OK + b"X y: z\r\n", 400, "bad-header-name", 26),
    (OK + b": z\r\n", 400, "bad-header-name", 25),
    (OK + b"X\r\n", 400, "bad-header-name", 26),
    (OK + b"X(: z\r\n", 400, "bad-header-name", 26),
    (OK + b"\xc2\xa0X: z\r\n", 400, "bad-header-name", 25),
    (OK + b"X: a\x00b\r\n", 400, "bad-header-value", 29),
    (OK + b"X: a\x7f\r\n", 400, "bad-header-value", 29),
    (OK + b"X: \x0c\r\n", 400, "bad-header-value", 28),
    # framing (RFC 9112 §6)
    (_with(b"Host: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n"), 400, "cl-and-te", 54),
    (_with(b"Host: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n"), 400, "cl-and-te", 45),
    (_with(b"Transfer-Encoding: chunked\r\n", b"POST / HTTP/1.0\r\n"), 400, "te-in-http10", 17),
    (_with(b"Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 501, "unsupported-transfer-coding", 54),
    (_with(b"Host: h\r\nContent-Length: 5, 6\r\n"), 400, "conflicting-content-length", 26),
    (_with(b"Host: h\r\nContent-Length: 5\r\nContent-Length: 05\r\n"), 400, "conflicting-content-length", 45),
    (_with(b"Host: h\r\nContent-Length: 5\r\nContent-Length: x\r\n"), 400, "bad-content-length", 45),
    # Host (RFC 9112 §3.2)
    (_with(b""), 400, "missing-host", 17),
    (_with(b"X: y\r\n"), 400, "missing-host", 23),
    (_with(b"Host: a\r\nhost: a\r\n"), 400, "duplicate-host", 26),
    (_with(b"Host: a\r\nHost: a\r\n", b"GET / HTTP/1.0\r\n"), 400, "duplicate-host", 25),
]
REQUEST_ERRORS += [(_with(b"Host: h\r\nTransfer-Encoding: " + te + b"\r\n"), 501, "unsupported-transfer-coding", 26)
                   for te in (b"identity", b"chunked, gzip", b"gzip, chunked", b"chunked, chunked", b'"chunked"',
                              b"xchunked", b"", b"chunked,", b"\x85chunked", b"chunked\xa0")]
REQUEST_ERRORS += [(_with(b"Host: h\r\nContent-Length: " + cl + b"\r\n"), 400, "bad-content-length", 26)
                   for cl in (b"+5", b"-1", b"0x5", b"5_0", b"1 2", b"", b"1234567890123456789", b"5,", b",5", b"\xd9\xa1")]
REQUEST_ERRORS += [(_with(b"Host: h\r\nContent-Length: 5\x0b\r\n"), 400, "bad-header-value", 43)]  # not str.strip()
REQUEST_ERRORS += [(_with(b"Host: " + host + b"\r\n"), 400, "bad-host", 17)
                   for host in (b"", b"u@h", b"h/p", b"a,b", b"a b", b"h:123456", b"[::1", b"[]", b"h%zz", b"h:x", b":80")]


@pytest.mark.parametrize("data,status,kind,offset", REQUEST_ERRORS)
def test_request_rejections(kernels: ModuleType, data: bytes, status: int, kind: str, offset: int) -> None:
    assert rejection(kernels.parse_request_head, data, L, H, N) == (status, kind, offset)


def test_limits(kernels: ModuleType) -> None:
    head = b"GET /" + b"a" * 30 + b" HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"
    line = head.index(b"\n") + 1
    p = kernels.parse_request_head
    assert p(head, line, len(head), 3)[4] == len(head)  # every limit exactly met
    assert rejection(p, head, line - 1, len(head), 3) == (414, "line-too-long", line - 1)
    assert rejection(p, head[: line - 1], line - 1, H, 3) == (414, "line-too-long", line - 1)  # as soon as buffered
    assert p(head[: line - 2], line - 1, H, 3) is None
    assert rejection(p, head, line, len(head) - 1, 3) == (431, "headers-too-large", len(head) - 1)
    assert rejection(p, head[:50], L, 50, 3) == (431, "headers-too-large", 50)
    assert rejection(p, head, 100, 20, 3) == (431, "headers-too-large", 20)  # max_head binds the line too
    assert rejection(p, head, line, len(head), 2) == (431, "too-many-headers", line + 15)
    assert rejection(kernels.parse_response_head, b"HTTP/1.1 200 OK\r\nA: b\r\n", 20, 3) == (502, "headers-too-large", 20)


def test_incomplete_and_buffers(kernels: ModuleType) -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    for cut in (0, 1, 14, 15, 16, 24, 26):
        assert kernels.parse_request_head(head[:cut], L, H, N) is None
    expected = kernels.parse_request_head(head, L, H, N)
    for buf in (bytearray(head), memoryview(head), memoryview(b"xx" + head)[2:]):
        assert kernels.parse_request_head(buf, L, H, N) == expected
    assert kernels.parse_chunk_line(bytearray(b"..5;x\r\n"), 2, 10) == (5, 7)
    assert rejection(kernels.parse_chunk_line, memoryview(b"..5;\r\n"), 2, 10) == (400, "bad-chunk-ext", 4)
    for bad in ((head, -1, H, N), (head, L, -1, N), (head, L, H, -1)):
        with pytest.raises(ValueError, match="must be >= 0"):
            kernels.parse_request_head(*bad)
    with pytest.raises(ValueError, match="pos out of range"):
        kernels.parse_chunk_line(b"5\r\n", 4, 10)
    with pytest.raises(TypeError):
        kernels.parse_request_head("GET / HTTP/1.1\r\n", L, H, N)


def test_responses(kernels: ModuleType) -> None:
    p = kernels.parse_response_head
    head = b"HTTP/1.0 404 Not  Found\xff\r\nContent-Length: 0\r\nConnection: Keep-Alive\r\n\r\n"
    fields = ((b"Content-Length", b"0"), (b"Connection", b"Keep-Alive"))
    assert p(head + b"x", H, N) == (0, 404, b"Not  Found\xff", fields, len(head), 0, False, (b"keep-alive",))
    assert p(b"HTTP/1.1 204\r\n\r\n", H, N) == (1, 204, b"", (), 16, -1, False, ())
    assert p(b"HTTP/1.1 200 \r\nHost: x\r\nhost: y\r\n\r\n", H, N)[3] == ((b"Host", b"x"), (b"host", b"y"))


RESPONSE_ERRORS = [
    (b"HTTP/2.0 200 OK\r\n\r\n", "bad-version", 0),
    (b"\r\nHTTP/1.1 200 OK\r\n\r\n", "bad-version", 0),
    (b"RTSP/1.1 200 OK\r\n\r\n", "bad-version", 0),
    (b"HTTP/1.1\t200 OK\r\n\r\n", "bad-status-line", 8),
    (b"HTTP/1.1  200 OK\r\n\r\n", "bad-status-line", 9),
    (b"HTTP/1.1 2 OK\r\n\r\n", "bad-status-line", 9),
    (b"HTTP/1.1 600 OK\r\n\r\n", "bad-status-line", 9),
    (b"HTTP/1.1 200OK\r\n\r\n", "bad-status-line", 12),
    (b"HTTP/1.1 200 O\x00K\r\n\r\n", "bad-status-line", 14),
    (b"HTTP/1.1 200 OK\n\r\n", "bare-lf", 15),
    (b"HTTP/1.1 200 OK\r\n A: b\r\n\r\n", "obs-fold", 17),
    (b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n", "space-before-colon", 18),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported-transfer-coding", 17),
    (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "te-in-http10", 17),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "cl-and-te", 36),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "conflicting-content-length", 17),
]


@pytest.mark.parametrize("data,kind,offset", RESPONSE_ERRORS)
def test_response_rejections(kernels: ModuleType, data: bytes, kind: str, offset: int) -> None:
    assert rejection(kernels.parse_response_head, data, H, N) == (502, kind, offset)


CHUNK_LINES = [
    (b"a\r\n", (10, 3)),
    (b"000\r\n", (0, 5)),
    (b"ffffFFFFffffFFFF\r\n", (2**64 - 1, 18)),
    (b'5 ;\ta = "x\\"y; z" ; b=c;d\r\n', (5, 27)),
    (b"5;a", None),
    (b"5\r", None),
    (b"0x5\r\n", ("bad-chunk-size", 1)),
    (b"-5\r\n", ("bad-chunk-size", 0)),
    (b" 5\r\n", ("bad-chunk-size", 0)),
    (b"\r\n", ("bad-chunk-size", 0)),
    (b"5_0\r\n", ("bad-chunk-size", 1)),
    (b"00000000000000000\r\n", ("chunk-size-too-large", 0)),
    (b"5 \r\n", ("bad-chunk-ext", 2)),
    (b"5 x\r\n", ("bad-chunk-ext", 2)),
    (b"5;\r\n", ("bad-chunk-ext", 2)),
    (b"5;a=\r\n", ("bad-chunk-ext", 4)),
    (b"5;a=b c\r\n", ("bad-chunk-ext", 6)),
    (b'5;a="b\r\n', ("bad-chunk-ext", 6)),
    (b'5;a="\\\x01"\r\n', ("bad-chunk-ext", 5)),
    (b"5;a=\x80\r\n", ("bad-chunk-ext", 4)),
    (b"5\n", ("bare-lf", 1)),
    (b"5\rx", ("bare-cr", 1)),
    (b"1" * 64, ("line-too-long", 64)),
]


@pytest.mark.parametrize("data,expected", CHUNK_LINES)
def test_chunk_lines(kernels: ModuleType, data: bytes, expected: Any) -> None:
    if isinstance(expected, tuple) and isinstance(expected[0], str):
        assert rejection(kernels.parse_chunk_line, b"xx" + data, 2, 64) == (400, expected[0], expected[1] + 2)
    else:
        assert kernels.parse_chunk_line(b"xx" + data, 2, 64) == (expected and (expected[0], expected[1] + 2))


def test_trailers(kernels: ModuleType) -> None:
    t = kernels.parse_trailers
    assert t(b"0\r\nA: b\r\nc:d \r\n\r\nX", 3, H, N) == (((b"A", b"b"), (b"c", b"d")), 17)
    assert t(b"0\r\n\r\n", 3, H, N) == ((), 5)
    assert t(b"0\r\nA: b\r\n", 3, H, N) is None
    assert rejection(t, b"0\r\nA: b\r\n\r\n", 3, 7, N) == (431, "headers-too-large", 10)
    assert rejection(t, b"0\r\nA: b\r\n\r\n", 3, H, 0) == (431, "too-many-headers", 3)
    assert rejection(t, b"0\r\nA : b\r\n\r\n", 3, H, N) == (400, "space-before-colon", 4)


# --- llhttp's corpus --------------------------------------------------------------------------

CASES = [c for kind in ("request", "response") for c in llhttp_corpus.load(kind)[0]]


def test_corpus_is_there_and_lists_are_current() -> None:
    assert len(CASES) > 200 and not any(llhttp_corpus.load(k)[1] for k in ("request", "response"))
    names = {c.name for c in CASES}
    assert not (set(llhttp_corpus.STRICTER) | set(llhttp_corpus.LAXER)) - names, "a listed case is not in the corpus any more"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_llhttp_corpus(kernels: ModuleType, case: llhttp_corpus.Case) -> None:
    ours: Optional[str] = llhttp_corpus.decide(kernels, case)
    theirs_ok = case.error is None or case.error[0] in llhttp_corpus.PAUSE_CODES
    if "lenient" in case.type:
        assert ours is not None, "a lenient-only input must be rejected"
    elif case.name in llhttp_corpus.STRICTER:
        assert theirs_ok and ours == llhttp_corpus.STRICTER[case.name][0]
    elif case.name in llhttp_corpus.LAXER:
        _, more, kind = llhttp_corpus.LAXER[case.name]
        assert not theirs_ok and ours is None
        if more is not None:
            assert llhttp_corpus.decide(kernels, case._replace(data=case.data + more)) == kind
    else:
        assert (ours is None) == theirs_ok, f"llhttp: {case.error}, ours: {ours}"
