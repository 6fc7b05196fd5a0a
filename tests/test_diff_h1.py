"""Differential tests of the HTTP/1.1 kernels: the native twin answers exactly as the pure one.

Inputs: (a) valid heads, chunk lines and trailer sections built from the grammar, whose parse must
also equal the model they were built from; (b) those inputs mutated with syntax-heavy bytes; (c)
arbitrary bytes; as ``bytes`` and as other buffers. An outcome is ``("ok", value)`` or ``("err", type, str, status, kind, offset)``;
anything but a value, None or ``RemoteProtocolError`` (another exception, a panic) fails. On every
input, every prefix gives None or the outcome of the whole ("one chunk vs. growing prefixes").
"""

from __future__ import annotations

import string
from types import ModuleType
from typing import Any, Callable, List, Tuple

from hypothesis import given
from hypothesis import strategies as st

from pyproxy.errors import RemoteProtocolError

TCHAR = (string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode()
FVCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
TARGET = bytes(c for c in range(0x21, 0x7F) if c != 0x23)
HOSTCHAR = (string.ascii_lowercase + string.digits + "-.").encode()
SYNTAX = b"\r\n\t :;,\x00\x7f\x80\"/-aZ09"
SPECIAL = {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect"}
L, H, N = 8192, 65536, 100


def chars(alphabet: bytes, lo: int = 1, hi: int = 12) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(alphabet), min_size=lo, max_size=hi).map(bytes)


tokens = chars(TCHAR)
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t "])
words = st.lists(chars(FVCHAR, 1, 8), min_size=0, max_size=4)
value = st.builds(lambda ws, seps: b"".join(w + (s if i < len(ws) - 1 else b"") for i, (w, s) in enumerate(zip(ws, seps))),
                  words, st.lists(st.sampled_from([b" ", b"\t", b"  "]), min_size=4, max_size=4))
names = tokens.filter(lambda n: n.lower() not in SPECIAL)
fields = st.lists(st.tuples(names, value), max_size=6)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple:
    try:
        return ("ok", fn(*args))
    except RemoteProtocolError as e:
        return ("err", type(e).__name__, str(e), e.status, e.kind, e.offset)


def twins(native: ModuleType, pure: ModuleType, name: str, data: bytes, *limits: int) -> tuple:
    """The shared outcome, after checking the twins agree and prefixes are consistent with it."""
    n_fn, p_fn = getattr(native, name), getattr(pure, name)
    whole = outcome(p_fn, data, *limits)
    assert outcome(n_fn, data, *limits) == whole
    assert outcome(n_fn, bytearray(data), *limits) == outcome(p_fn, memoryview(data), *limits) == whole
    for cut in range(len(data)):
        part = outcome(p_fn, data[:cut], *limits)
        assert part in (("ok", None), whole), (cut, part, whole)
        assert outcome(n_fn, data[:cut], *limits) == part
    return whole


@st.composite
def requests(draw: st.DrawFn) -> Tuple[bytes, tuple]:
    """A valid request head and the tuple it must parse to."""
    minor = draw(st.sampled_from([0, 1]))
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT"]) | tokens)
    host = draw(chars(HOSTCHAR)) + draw(st.sampled_from([b"", b":", b":8080"]))
    if method == b"CONNECT":
        target = host.split(b":")[0] + b":443"
    else:
        target = draw(st.sampled_from([b"/", b"http://" + host + b"/", b"HTTPS://" + host + b"?"])) + draw(chars(TARGET, 0))
        target = b"*" if method == b"OPTIONS" and draw(st.booleans()) else target
    extra = draw(fields)
    chosen: List[Tuple[bytes, bytes]] = list(extra)
    framing = draw(st.sampled_from(["none", "cl", "te"] if minor else ["none", "cl"]))
    cl, chunked = -1, False
    if framing == "cl":
        digits = draw(st.text("0123456789", min_size=1, max_size=18)).encode()
        cl = int(digits)
        chosen.insert(draw(st.integers(0, len(chosen))), (b"Content-Length", digits))
    elif framing == "te":
        chunked = True
        chosen.insert(draw(st.integers(0, len(chosen))), (b"Transfer-Encoding", draw(st.sampled_from([b"chunked", b"Chunked"]))))
    if minor or draw(st.booleans()):
        chosen.insert(draw(st.integers(0, len(chosen))), (draw(st.sampled_from([b"Host", b"host"])), host))
    conn = draw(st.lists(tokens, max_size=3))
    if conn:
        chosen.append((b"Connection", b", ".join(conn)))
    expect = draw(st.booleans())
    if expect:
        chosen.append((b"Expect", b"100-Continue"))
    lines = b"".join(n + b":" + draw(ows) + v + draw(ows) + b"\r\n" for n, v in chosen)
    head = draw(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"])) + method + b" " + target + b" HTTP/1.%d\r\n" % minor + lines + b"\r\n"
    has_host = any(n.lower() == b"host" for n, _ in chosen)
    model = (method, target, minor, tuple(chosen), len(head), cl, chunked, tuple(t.lower() for t in conn),
             expect and minor == 1, host if has_host else None)
    return head, model


@st.composite
def responses(draw: st.DrawFn) -> Tuple[bytes, tuple]:
    minor = draw(st.sampled_from([0, 1]))
    status = draw(st.integers(100, 599))
    reason = draw(st.sampled_from([b"", b"OK", b"Not  Found\xff", b" \tx"]))
    start = b"HTTP/1.%d %d" % (minor, status) + (b" " + reason if reason or draw(st.booleans()) else b"")
    chosen = draw(fields)
    if minor and draw(st.booleans()):
        chosen.append((b"transfer-encoding", b"chunked"))
    head = start + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in chosen) + b"\r\n"
    chunked = any(n == b"transfer-encoding" for n, _ in chosen)
    return head, (minor, status, reason, tuple(chosen), len(head), -1, chunked, ())


quoted = st.lists(st.sampled_from([b"a", b" ", b"\t", b";", b"=", b"\\\"", b"\\\\", b"\xe9"]), max_size=5).map(lambda p: b'"' + b"".join(p) + b'"')
extension = st.builds(lambda a, n, b, v: a + b";" + b + n + v, ows, tokens, ows, st.just(b"") | st.builds(lambda a, v: a + b"=" + v, ows, tokens | quoted))
chunk_lines = st.builds(lambda size, exts: (size + b"".join(exts) + b"\r\n", int(size, 16)),
                        chars(b"0123456789abcdefABCDEF", 1, 16), st.lists(extension, max_size=3))
trailers = st.builds(lambda fs: (b"".join(n + b": " + v + b"\r\n" for n, v in fs) + b"\r\n", tuple(fs)), fields)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data)))
        op, c = draw(st.sampled_from(["insert", "delete", "replace"])), draw(st.sampled_from(SYNTAX))
        if op == "insert":
            data[i:i] = bytes([c])
        elif i < len(data):
            data[i : i + 1] = b"" if op == "delete" else bytes([c])
    return bytes(data)


@given(requests())
def test_valid_requests(native: ModuleType, pure: ModuleType, case: Tuple[bytes, tuple]) -> None:
    head, model = case
    assert twins(native, pure, "parse_request_head", head, L, H, N) == ("ok", model)
    assert twins(native, pure, "parse_request_head", head + b"GET", L, H, N) == ("ok", model)


@given(responses())
def test_valid_responses(native: ModuleType, pure: ModuleType, case: Tuple[bytes, tuple]) -> None:
    assert twins(native, pure, "parse_response_head", case[0], H, N) == ("ok", case[1])


@given(chunk_lines, trailers)
def test_valid_chunks_and_trailers(native: ModuleType, pure: ModuleType, line: tuple, trailer: tuple) -> None:
    assert twins(native, pure, "parse_chunk_line", line[0], 0, L) == ("ok", (line[1], len(line[0])))
    assert twins(native, pure, "parse_trailers", trailer[0], 0, H, N) == ("ok", (trailer[1], len(trailer[0])))


limits = st.sampled_from([(L, H, N), (40, 90, 3), (16, 16, 0), (0, 0, 0), (200, 64, 100)])


@given(mutated(requests().map(lambda c: c[0])), limits)
def test_mutated_requests(native: ModuleType, pure: ModuleType, data: bytes, lim: tuple) -> None:
    twins(native, pure, "parse_request_head", data, *lim)


@given(mutated(responses().map(lambda c: c[0])), limits)
def test_mutated_responses(native: ModuleType, pure: ModuleType, data: bytes, lim: tuple) -> None:
    twins(native, pure, "parse_response_head", data, lim[1], lim[2])


@given(mutated(chunk_lines.map(lambda c: c[0])), mutated(trailers.map(lambda c: c[0])), limits)
def test_mutated_chunks_and_trailers(native: ModuleType, pure: ModuleType, line: bytes, trailer: bytes, lim: tuple) -> None:
    twins(native, pure, "parse_chunk_line", line, 0, lim[0])
    twins(native, pure, "parse_trailers", trailer, 0, lim[1], lim[2])


@given(st.binary(max_size=80), limits, st.integers(0, 3))
def test_arbitrary_bytes(native: ModuleType, pure: ModuleType, data: bytes, lim: tuple, pos: int) -> None:
    twins(native, pure, "parse_request_head", data, *lim)
    twins(native, pure, "parse_response_head", data, lim[1], lim[2])
    pos = min(pos, len(data))
    assert outcome(native.parse_chunk_line, data, pos, lim[0]) == outcome(pure.parse_chunk_line, data, pos, lim[0])
    assert outcome(native.parse_trailers, data, pos, lim[1], lim[2]) == outcome(pure.parse_trailers, data, pos, lim[1], lim[2])
