"""A seeded mutation fuzzer of request heads and bodies, run against a real proxy process (issue 11).

**Cases.** ``make_case(seed, index)`` draws one case from ``random.Random(f"pyproxy-fuzz:{seed}:{index}")``,
so a seed and a case index reproduce it exactly, on any machine and Python version: a seed of the
corpus (:data:`SEEDS`: GET/HEAD/POST with Content-Length and chunked bodies, a body large enough to
stream, pipelined pairs, ``Expect: 100-continue``, absolute-form targets, ``l5d-dtab``/``l5d-ctx-*``,
Connection nominations, obs-fold, CONNECT and ``OPTIONS *``, HTTP/1.0, lines near the limits), zero
to three mutations (byte flips; inserts of CR, LF, NUL, 0x80-0xff, ``:``, SP, HTAB, ...; deletes;
duplicated, cut and re-ended lines; a framing field repeated (Content-Length, Transfer-Encoding,
Host); another seed appended; truncation at any point, or inside the last body), then an ending
(:data:`ENDINGS`): a half-close (``shutdown(SHUT_WR)``), nothing, or, once every complete request
is answered, an abortive close (RST: a client that vanishes, e.g. in the middle of a body).

**The reference.** :func:`expect` reads the case's bytes as the proxy's specification says it must
(the pure-Python HTTP/1.1 kernel, ``pyproxy._pure.h1``, the twin every native parser is
differentially tested against, with the proxy's default limits): the complete requests at the
start, in order (``complete``), and what follows the last of them (``tail``): ``end`` (nothing),
``close`` (the last request ends the connection: ``Connection: close`` or HTTP/1.0), ``head``
(an incomplete head), ``body`` (an incomplete body the proxy buffers whole: Content-Length up to
:data:`STREAM_AFTER`, no ``Expect``), ``stream`` (an incomplete body the proxy streams: chunked,
larger, or with ``Expect: 100-continue``) or ``error`` (a request the proxy must reject, with the
status the parser names).

**The driver and its budget.** :func:`run_case` opens a fresh loopback connection, sends the bytes
in one ``sendall`` (a send the proxy cuts short by closing is not an error), half-closes when the
case says so, and from then on (the end of sending, or the half-close) allows :data:`BUDGET`
(1 s). It reads and parses responses (:class:`ResponseReader`) until the case *settles*:

* the proxy closes the connection (EOF or reset): final;
* or the connection is open, no response is half-received, every complete request has its final
  response (``finals >= len(complete)``) and the tail leaves the proxy nothing to answer: ``end``
  (an idle keep-alive connection: "a keep-alive connection that answered every complete request
  counts as answered"), or ``stream`` (the client has not finished a streamed body; with no body
  read timeout the proxy may rightly wait for it forever, so the driver then half-closes, as that
  client eventually would, and the budget starts again: the proxy must now answer or close);
* or, with the ``reset`` ending, as soon as every complete request has its final response (at
  once if there is none; inside a streamed body, once its head reached the origin, polled within
  the budget): the driver resets the connection and the case is judged by what reached the origin.

Every other tail requires the proxy to act by itself within the budget: ``head`` and ``body`` by
its read timeout (the fuzz config sets ``readTimeoutMs`` to :data:`READ_TIMEOUT_MS` so a 408 fits
in the budget) or at once after a half-close; ``error`` and ``close`` by answering and closing.
A half-closed case whose tail is ``end`` settles like a keep-alive one; whether the proxy then
closes within :data:`LINGER` is recorded (``lingered``), not judged.

**Outcomes** (:class:`Result`): ``answered`` with the statuses received in order (interim ones
included, e.g. ``(100, 200)``; settled open, or closed by the proxy after at least one response),
``closed`` (closed by the proxy without a byte of response), ``reset`` (the client's reset, with
the statuses received before it), or ``timeout`` (the budget ran out before the case settled).
A case **fails** (``Result.failure``, led by its kind) on a ``timeout``; on a response that is not
a well-formed HTTP/1.x response (``malformed``: strict status line and fields, framing by
Content-Length, chunks, or the connection's close, nothing after a ``Connection: close`` response,
a body cut by the close); on more final responses than requests (``extra-response``); on a
request head the reference rejects answered with another status than the reference's
(``status``); on a CONNECT not answered 501 with the connection closed (``connect``, the expected
behaviour being implemented on main); and on what the origin sees (``origin``, ``forwarded``,
``upstream-open``, below). :func:`describe` prints the seed, the case index, the exact bytes and
the command that replays it.

**The origin** (:class:`RecordingOrigin`) answers every request it can parse and checks what
reaches it, the smuggling check: every upstream connection must carry a sequence of complete
requests, each head byte-identical to its own canonical serialisation (one SP after each colon, no
leading or trailing whitespace in values, CRLF line ends; so no bare CR/LF, obs-fold, or odd
spacing survives), exactly one framing field (``Transfer-Encoding: chunked`` re-chunked with bare
lower-case hex sizes and no extensions, or ``Content-Length``), no hop-by-hop field; a connection
the proxy closes inside a body is an aborted request (allowed), anywhere else a violation. Per case
it also counts the requests that reached it whole, which may not exceed the reference's complete
requests (a request the proxy should have rejected must never reach the origin). Requests are
attributed to the case being run when their first bytes leave the origin's kernel buffer; after
each case the driver waits (bounded, :data:`QUIESCE`) until the origin has read everything the
proxy sent (no connection waiting to be accepted, no unread byte) and no upstream connection is
inside a request that began during the case, else that is a failure too (an exchange the proxy
left open upstream after its client went away). The proxy writes a request upstream before it
answers it, and a reset comes only once every complete request is answered (inside a streamed
body, once its head reached the origin), so nothing of one case is counted for another.

**Comparing the paths.** :func:`compare` lines up the results of the same cases against the lane
and against the trio path (``PYPROXY_LANE=off``): the same outcome and the same final statuses
(:attr:`Result.key`), except the differences listed in :data:`KNOWN`, the one allowlist (each
entry names its issue, and says which failures of one path and which differences between the
paths it excuses).

Everything talks to 127.0.0.0/8 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import select
import shutil
import socket
import struct
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from pyproxy._pure import h1 as ref_h1
from pyproxy.errors import RemoteProtocolError
from pyproxy.http.headers import HOP_BY_HOP
from pyproxy.http.message import Request, no_body_status, serialize_request_head

#: Seconds a case has, from the end of sending (or the half-close), to be answered or closed.
BUDGET = 1.0
#: The fuzz proxy's ``socketOptions.readTimeoutMs``: the 408 for an incomplete head or small body
#: must fit in :data:`BUDGET` (the default, 10 s, would not); the lane's sweep adds at most a quarter.
READ_TIMEOUT_MS = 250
#: How long after a half-closed case settled the driver looks whether the proxy closed (recorded only).
LINGER = 0.2
#: The proxy's default limits (``maxInitialLineKB``, ``maxHeadersKB``, at most 100 field lines) and
#: ``streamAfterContentLengthKB``: bodies up to it are buffered whole before the request is routed.
LIMITS = (4096, 8192, 100)
STREAM_AFTER = 5 * 1024
#: How long after a case the driver waits for the origin to be between requests on every connection.
QUIESCE = 1.0
#: How many bytes of what the proxy sent a result keeps (for replays).
RECEIVED_KEPT = 2048

HOST = b"svc"  # the io.l5d.fs name the fuzz router binds to the origin


# === the corpus ===


def _req(method: bytes, target: bytes, fields: Sequence[Tuple[bytes, bytes]] = (), body: bytes = b"", version: bytes = b"1.1") -> bytes:
    head = b"%s %s HTTP/%s\r\n" % (method, target, version) + b"".join(b"%s: %s\r\n" % kv for kv in fields) + b"\r\n"
    return head + body


_SMALL = b"name=value&x=1"
_LARGE = bytes((97 + i % 26) for i in range(STREAM_AFTER + 900))  # streams on both paths
_CHUNKED = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
_H = (b"Host", HOST)

#: The valid (and a few deliberately invalid) requests mutations start from: (name, bytes).
SEEDS: List[Tuple[str, bytes]] = [
    ("get", _req(b"GET", b"/p?q=1", [_H, (b"User-Agent", b"fuzz"), (b"Accept", b"*/*")])),
    ("head", _req(b"HEAD", b"/p", [_H])),
    ("post-cl", _req(b"POST", b"/form", [_H, (b"Content-Type", b"application/x-www-form-urlencoded"), (b"Content-Length", b"%d" % len(_SMALL))], _SMALL)),
    ("post-large", _req(b"POST", b"/upload", [_H, (b"Content-Length", b"%d" % len(_LARGE))], _LARGE)),
    ("post-chunked", _req(b"POST", b"/chunks", [_H, (b"Transfer-Encoding", b"chunked")], _CHUNKED)),
    ("put-empty", _req(b"PUT", b"/empty", [_H, (b"Content-Length", b"0")])),
    ("pipelined-gets", _req(b"GET", b"/one", [_H]) + _req(b"GET", b"/two", [_H])),
    ("pipelined-post-get", _req(b"POST", b"/a", [_H, (b"Content-Length", b"%d" % len(_SMALL))], _SMALL) + _req(b"GET", b"/b", [_H])),
    ("pipelined-chunked-get", _req(b"POST", b"/c", [_H, (b"Transfer-Encoding", b"chunked")], _CHUNKED) + _req(b"HEAD", b"/d", [_H])),
    ("close-then-get", _req(b"GET", b"/first", [_H, (b"Connection", b"close")]) + _req(b"GET", b"/ignored", [_H])),
    ("expect-continue", _req(b"POST", b"/expect", [_H, (b"Expect", b"100-continue"), (b"Content-Length", b"%d" % len(_SMALL))], _SMALL)),
    ("absolute-form", _req(b"GET", b"http://svc/abs?x=y", [_H])),
    ("absolute-form-other-host", _req(b"GET", b"HTTP://svc:80/abs", [(b"Host", b"elsewhere")])),
    ("l5d-dtab", _req(b"GET", b"/o", [(b"Host", b"other"), (b"l5d-dtab", b"/svc/other => /svc/svc")])),
    ("l5d-ctx", _req(b"GET", b"/ctx", [_H, (b"l5d-ctx-dtab", b"/svc/x => /svc/svc"), (b"l5d-ctx-trace", b"AAAAAAAAAAEAAAAAAAAAAQAAAAAAAAABAAAAAAAAAAA="), (b"l5d-ctx-deadline", b"0 9000000000000000000")])),
    ("l5d-expired-deadline", _req(b"GET", b"/late", [_H, (b"l5d-ctx-deadline", b"1 2")])),
    ("l5d-bad-dtab", _req(b"GET", b"/bad", [_H, (b"l5d-dtab", b"/svc => ;;")])),
    ("connection-nominates", _req(b"GET", b"/nom", [_H, (b"Connection", b"x-gone, keep-alive, l5d-dtab"), (b"X-Gone", b"1"), (b"Keep-Alive", b"timeout=5"), (b"l5d-dtab", b"/a => /b")])),
    ("obs-fold", _req(b"GET", b"/fold", [_H, (b"X-Folded", b"one\r\n two")])),
    ("connect", _req(b"CONNECT", b"svc:443", [(b"Host", b"svc:443")])),
    ("options-star", _req(b"OPTIONS", b"*", [_H])),
    ("http10", _req(b"GET", b"/old", [], version=b"1.0")),
    ("http10-keep-alive", _req(b"GET", b"/old", [_H, (b"Connection", b"keep-alive")], version=b"1.0")),
    ("chunked-response", _req(b"GET", b"/chunked", [_H])),
    ("failing-origin", _req(b"GET", b"/fail", [_H])),
    ("no-content", _req(b"DELETE", b"/nocontent", [_H])),
    ("unknown-host", _req(b"GET", b"/x", [(b"Host", b"nowhere")])),
    ("via-loop", _req(b"GET", b"/loop", [_H, (b"Via", b"1.1 pyproxy-fuzz")])),
    ("long-target", _req(b"GET", b"/" + b"t" * (LIMITS[0] - 40), [_H])),
    ("long-field", _req(b"GET", b"/lf", [_H, (b"X-Long", b"v" * (LIMITS[1] - 200))])),
    ("many-fields", _req(b"GET", b"/many", [_H] + [(b"X-F%d" % i, b"%d" % i) for i in range(LIMITS[2] - 2)])),
    ("cl-and-te", _req(b"POST", b"/smuggle", [_H, (b"Content-Length", b"4"), (b"Transfer-Encoding", b"chunked")], b"0\r\n\r\n")),
    ("connect-routable", _req(b"CONNECT", b"svc:443", [_H])),
    ("upgrade", _req(b"GET", b"/ws", [_H, (b"Connection", b"Upgrade, TE"), (b"Upgrade", b"websocket"), (b"TE", b"trailers"), (b"Proxy-Connection", b"keep-alive")])),
    ("chunked-trailers", _req(b"POST", b"/t", [_H, (b"Transfer-Encoding", b"chunked")], b"3\r\nabc\r\n0\r\nContent-Length: 9\r\nHost: x\r\nl5d-dtab: /a=>/b\r\nX-Ok: 1\r\n\r\n")),
    ("chunked-many", _req(b"PATCH", b"/many-chunks", [_H, (b"Transfer-Encoding", b"chunked")], b"".join(b"%x\r\n%s\r\n" % (n, b"c" * n) for n in (1, 16, 255, 4096, 3)) + b"0\r\n\r\n")),
    ("chunked-huge-size", _req(b"POST", b"/huge", [_H, (b"Transfer-Encoding", b"chunked")], b"ffffffffffffffff\r\nabc")),
    ("expect-large", _req(b"PUT", b"/big", [_H, (b"Expect", b"100-continue"), (b"Content-Length", b"%d" % len(_LARGE))], _LARGE)),
    ("head-chunked-response", _req(b"HEAD", b"/chunked", [_H])),
    ("host-forms", _req(b"GET", b"/h", [(b"Host", b"svc:80")]) + _req(b"GET", b"/h", [(b"Host", b"[::1]:8080")]) + _req(b"GET", b"/h", [(b"Host", b"s%76c")])),
    ("absolute-odd", _req(b"GET", b"https://svc:/x", [_H]) + _req(b"GET", b"http://[::1]/y", [_H])),
    ("via-deep", _req(b"GET", b"/deep", [_H, (b"Via", b", ".join(b"1.1 hop%d" % i for i in range(60)))])),
    ("l5d-long-dtab", _req(b"GET", b"/d", [_H, (b"l5d-dtab", b";".join(b"/svc/n%d => /svc/svc" % i for i in range(120)))])),
]

#: Bytes inserted by the ``insert`` mutation (and a random byte of 0x80-0xff, drawn separately).
SPECIAL = [b"\r", b"\n", b"\0", b":", b" ", b"\t", b"\r\n", b",", b";", b'"', b"\x7f", b"\x0b", b"\r\n\r\n", b"0"]
#: Field lines the ``repeat-framing`` mutation adds to a head.
FRAMING_LINES = [
    b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: 14", b"Content-Length: 014", b"Content-Length: -1",
    b"Content-Length: 99999999999999999999", b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity",
    b"Transfer-Encoding: chunked, chunked", b"Transfer-encoding: \x0bchunked", b"Host: svc", b"Host: other", b"Host:",
]


#: How a case ends once its bytes are sent: ``half-close`` (``shutdown(SHUT_WR)``), ``open`` (nothing),
#: ``reset`` (an abortive close, RST, once every complete request is answered: see the module docstring).
ENDINGS = ("half-close", "open", "reset")


@dataclass(frozen=True)
class Case:
    seed: int
    index: int
    data: bytes
    ending: str  # one of ENDINGS
    origin: str  # the corpus seed it came from
    mutations: Tuple[str, ...]

    @property
    def half_close(self) -> bool:
        return self.ending == "half-close"

    def replay(self) -> str:
        return f"python bench/fuzz.py --seed {self.seed} --case {self.index}"


def _head_end(data: bytes) -> int:
    end = data.find(b"\r\n\r\n")
    return len(data) if end < 0 else end + 2


def _lines(data: bytes) -> List[Tuple[int, int]]:
    """(start, end past CRLF) of each line of the first head."""
    out = []
    end = _head_end(data)
    s = 0
    while s < end:
        e = data.find(b"\r\n", s, end)
        e = end if e < 0 else e + 2
        out.append((s, e))
        s = e
    return out


def _pos(rng: random.Random, data: bytes, past_end: bool = False) -> int:
    """A position, biased to the head (where the parsers decide) 3 times out of 4."""
    n = len(data) + (1 if past_end else 0)
    if n <= 0:
        return 0
    if rng.random() < 0.75:
        return rng.randrange(min(n, _head_end(data) + (1 if past_end else 0)) or 1)
    return rng.randrange(n)


def _mutate(rng: random.Random, data: bytes) -> Tuple[bytes, str]:
    op = rng.choices(
        ["flip", "insert", "delete", "dup-line", "cut-line", "reend-line", "repeat-framing", "append-seed", "truncate", "cut-body"],
        weights=[14, 18, 10, 8, 8, 6, 12, 6, 10, 16],
    )[0]
    if not data:
        return data, "noop"
    if op == "flip":
        i = _pos(rng, data)
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :], f"flip@{i}"
    if op == "insert":
        i = _pos(rng, data, past_end=True)
        what = bytes([rng.randrange(0x80, 0x100)]) if rng.random() < 0.2 else rng.choice(SPECIAL)
        return data[:i] + what + data[i:], f"insert{what!r}@{i}"
    if op == "delete":
        i = _pos(rng, data)
        n = rng.choice([1, 1, 1, 2, 3, 8])
        return data[:i] + data[i + n :], f"delete{n}@{i}"
    lines = _lines(data)
    if op in ("dup-line", "cut-line", "reend-line") and lines:
        k = rng.randrange(len(lines))
        s, e = lines[k]
        if op == "dup-line":
            return data[:e] + data[s:e] + data[e:], f"dup-line{k}"
        if op == "cut-line":
            return data[:s] + data[e:], f"cut-line{k}"
        if data[e - 2 : e] == b"\r\n":
            end = rng.choice([b"\n", b"\r", b"\r\r\n", b" \r\n", b"\n\r"])
            return data[: e - 2] + end + data[e:], f"reend-line{k}{end!r}"
        return data, "noop"
    if op == "repeat-framing" and lines:
        k = rng.randrange(1, len(lines)) if len(lines) > 1 else 0
        line = rng.choice(FRAMING_LINES) + b"\r\n"
        return data[: lines[k][0]] + line + data[lines[k][0] :], f"add-line{k}{line[:-2]!r}"
    if op == "append-seed":
        name, more = rng.choice(SEEDS)
        return data + more, f"append:{name}"
    if op == "cut-body":  # truncate after a blank line (inside a body, mostly), if any (else anywhere)
        blanks = [m.end() for m in re.finditer(b"\r\n\r\n", data) if m.end() < len(data)]
        if blanks:
            s = rng.choice(blanks)
            nxt = data.find(b"\r\n\r\n", s)
            i = rng.randrange(s, nxt + 2 if nxt > s else len(data))
            return data[:i], f"cut-body@{i}"
    i = rng.randrange(1, len(data) + 1)  # truncate, anywhere but before the first byte
    return data[:i], f"truncate@{i}"


def make_case(seed: int, index: int) -> Case:
    """Case ``index`` of the run seeded ``seed`` (deterministic)."""
    rng = random.Random(f"pyproxy-fuzz:{seed}:{index}")
    name, data = rng.choice(SEEDS)
    mutations = []
    for _ in range(rng.choices([0, 1, 2, 3], weights=[15, 50, 25, 10])[0]):
        data, what = _mutate(rng, data)
        mutations.append(what)
    ending = rng.choices(ENDINGS, weights=[40, 40, 20])[0]
    return Case(seed, index, data, ending, name, tuple(mutations))


def cases(seed: int, count: int, start: int = 0) -> Iterator[Case]:
    for i in range(start, start + count):
        yield make_case(seed, i)


# === the reference ===


@dataclass(frozen=True)
class Expectation:
    complete: Tuple[Request, ...]  # the complete requests at the start, in order
    tail: str  # end | close | head | body | stream | error
    status: int = 0  # with ``error``: the status the parser names (0: an error in a body, answered 400)
    pending: Optional[Request] = None  # with ``body``, ``stream`` and a body ``error``: that request's head

    @property
    def methods(self) -> List[bytes]:
        """The method of each request an answer may be to (a HEAD's has no body)."""
        return [r.method for r in self.complete] + ([self.pending.method] if self.pending is not None else [])

    @property
    def heads(self) -> List[Request]:
        """Every request head the proxy can read whole (the complete requests and the pending one)."""
        return list(self.complete) + ([self.pending] if self.pending is not None else [])


def _chunked_end(data: bytes, pos: int) -> Tuple[str, int]:
    """Walk a chunked body at ``data[pos:]``: ("ok", end) | ("incomplete", 0) | ("error", 0)."""
    try:
        for _ in range(len(data) + 1):
            t = ref_h1.parse_chunk_line(data, pos, LIMITS[0])
            if t is None:
                return "incomplete", 0
            size, pos = t
            if size == 0:
                tr = ref_h1.parse_trailers(data, pos, LIMITS[1], LIMITS[2])
                if tr is None:
                    return "incomplete", 0
                return "ok", tr[1]
            if len(data) < pos + size + 2:
                return ("incomplete", 0) if len(data) <= pos + size or data[pos + size : pos + size + 1] == b"\r" else ("error", 0)
            if data[pos + size : pos + size + 2] != b"\r\n":
                return "error", 0
            pos += size + 2
    except RemoteProtocolError:
        return "error", 0
    return "error", 0  # unreachable: each round consumes bytes


def expect(data: bytes) -> Expectation:
    """What the proxy's specification makes of ``data`` (see the module docstring)."""
    pos = 0
    done: List[Request] = []
    for _ in range(len(data) + 1):
        if pos >= len(data):
            return Expectation(tuple(done), "end")
        try:
            t = ref_h1.parse_request_head(data[pos:], *LIMITS)
        except RemoteProtocolError as exc:
            return Expectation(tuple(done), "error", exc.status)
        if t is None:
            return Expectation(tuple(done), "head")
        req = Request.from_kernel(t)
        pos += t[4]
        if req.chunked:
            verdict, end = _chunked_end(data, pos)
            if verdict == "incomplete":
                return Expectation(tuple(done), "stream", pending=req)
            if verdict == "error":
                return Expectation(tuple(done), "error", 0, req)
            pos = end
        elif req.content_length > 0:
            if len(data) - pos < req.content_length:
                streamed = req.content_length > STREAM_AFTER or req.expect_continue
                return Expectation(tuple(done), "stream" if streamed else "body", pending=req)
            pos += req.content_length
        done.append(req)
        if not req.keep_alive:
            return Expectation(tuple(done), "close")
    raise AssertionError("unreachable")


# === responses ===


class Malformed(Exception):
    pass


@dataclass
class ResponseReader:
    """Parses the responses of one connection as they arrive (strictly; :class:`Malformed` if not)."""

    methods: List[bytes]
    buf: bytes = b""
    statuses: List[int] = field(default_factory=list)
    finals: int = 0
    pos: int = 0  # where the next response starts in ``buf``
    closing: bool = False  # a response said Connection: close

    def feed(self, data: bytes, eof: bool = False) -> None:
        self.buf += data
        for _ in range(len(self.buf) + 1):
            if self.pos >= len(self.buf):
                return
            if self.closing:
                raise Malformed(f"bytes after a Connection: close response: {self.buf[self.pos:self.pos + 80]!r}")
            if not self._one(eof):
                if eof:
                    raise Malformed(f"the connection closed inside a response: {self.buf[self.pos:self.pos + 200]!r}")
                return

    @property
    def partial(self) -> bool:
        return self.pos < len(self.buf)

    def _one(self, eof: bool) -> bool:
        data = self.buf
        try:
            t = ref_h1.parse_response_head(data[self.pos :], 65536, 1000)
        except RemoteProtocolError as exc:
            raise Malformed(f"not an HTTP/1.x response head ({exc}): {data[self.pos:self.pos + 200]!r}") from None
        if t is None:
            return False
        minor, status, reason, headers, head_len, cl, chunked, connection = t
        start = self.pos + head_len
        method = self.methods[self.finals] if self.finals < len(self.methods) else b"GET"
        if status < 200:
            if cl >= 0 or chunked:
                raise Malformed(f"an interim {status} response with a framing field")
            end = start
        elif method == b"HEAD" or no_body_status(status):
            if chunked and no_body_status(status):
                raise Malformed(f"a {status} response with Transfer-Encoding")
            end = start
        elif chunked:
            verdict, end = _chunked_end(data, start)
            if verdict == "error":
                raise Malformed(f"bad chunked response body: {data[start:start + 200]!r}")
            if verdict == "incomplete":
                return False
        elif cl >= 0:
            end = start + cl
            if len(data) < end:
                return False
        else:  # close-delimited
            if not eof:
                return False
            if b"close" not in connection and minor == 1:
                raise Malformed("an HTTP/1.1 response without framing and without Connection: close")
            end = len(data)
        self.pos = end
        self.statuses.append(status)
        if status >= 200:
            self.finals += 1
            if b"close" in connection:
                self.closing = True
        return True


# === the origin ===


_CANONICAL_CHUNK = re.compile(rb"(0|[1-9a-f][0-9a-f]*)\r\n")


class _Need(Exception):
    """More bytes are needed."""


@dataclass
class Violation:
    case: int
    what: str
    data: bytes


class RecordingOrigin:
    """A threaded origin on 127.0.0.1 that checks every byte it receives (see the module docstring).

    Routes: ``/chunked...`` answers chunked, ``/fail...`` 500, ``/nocontent...`` 204, anything else
    200 with ``ok``; HEAD gets no body; ``Expect: 100-continue`` gets a 100 first.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.case = -1  # the case being run (set by the driver)
        # The lock makes "bytes the proxy sent" observable without a gap: a connection is registered
        # in the same step as it leaves the accept queue, and bytes leave a socket's kernel buffer in
        # the same step as their connection is marked busy with the current case (see quiet()).
        self.lock = threading.Lock()
        self.complete: Dict[int, int] = {}  # case -> requests that reached the origin whole
        self.aborted = 0
        self.violations: List[Violation] = []
        self.socks: Dict[int, socket.socket] = {}  # open connections
        self.busy: Dict[int, int] = {}  # connections inside a request (key -> the case it began in)
        self.stuck: Dict[int, int] = {}  # case -> connections it left inside a request
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            with self.lock:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    continue
                conn.settimeout(5.0)
                self.socks[id(conn)] = conn
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _violation(self, case: int, what: str, data: bytes) -> None:
        with self.lock:
            self.violations.append(Violation(case, what, bytes(data[:600])))

    def _serve(self, conn: socket.socket) -> None:
        key = id(conn)
        buf = bytearray()
        eof = False

        def more() -> None:
            """Receive more into ``buf`` (EOFError at the end); the first bytes of a request mark the
            connection busy with the case being run, under the lock."""
            nonlocal eof
            if eof:
                raise EOFError
            while not self._stop.is_set():
                r, _, _ = select.select([conn], [], [], 0.1)
                if not r:
                    continue
                with self.lock:
                    try:
                        d = conn.recv(65536)
                    except (BlockingIOError, socket.timeout):
                        continue
                    except OSError:
                        d = b""
                    if d and key not in self.busy:
                        self.busy[key] = self.case
                if not d:
                    eof = True
                    raise EOFError
                buf.extend(d)
                return
            raise EOFError

        try:
            while not self._stop.is_set():
                if not buf:
                    try:
                        more()
                    except EOFError:
                        return
                with self.lock:
                    case = self.busy.setdefault(key, self.case)
                try:
                    keep = self._one(conn, buf, more, case)
                except EOFError:
                    with self.lock:
                        self.aborted += 1
                    return
                finally:
                    with self.lock:
                        del self.busy[key]
                        if buf:  # bytes of a next request came with this one
                            self.busy[key] = case
                if not keep:
                    return
        finally:
            with self.lock:
                self.busy.pop(key, None)
                self.socks.pop(key, None)
            conn.close()

    def _one(self, conn: socket.socket, buf: bytearray, more: Callable[[], None], case: int) -> bool:
        """Read, check and answer one request at the start of ``buf``; False: close the connection."""
        for _ in range(1 << 20):
            try:
                t = ref_h1.parse_request_head(bytes(buf), 1 << 16, 1 << 17, 1000)
            except RemoteProtocolError as exc:
                self._violation(case, f"unparseable request head: {exc}", buf)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return False
            if t is not None:
                break
            try:
                more()
            except EOFError:
                self._violation(case, "the connection closed inside a request head", buf)
                raise
        else:
            return False
        req = Request.from_kernel(t)
        head = bytes(buf[: t[4]])
        canonical = serialize_request_head(req.method, req.target, req.minor, req.headers)
        if head != canonical:
            self._violation(case, "a non-canonical request head", head)
        names = [k.lower() for k, _ in req.headers]
        hop = sorted({n.decode("latin-1") for n in names if n in HOP_BY_HOP and n != b"transfer-encoding"})
        if hop:
            self._violation(case, f"hop-by-hop fields forwarded: {hop}", head)
        if req.chunked and (names.count(b"transfer-encoding") != 1 or h_get(req.headers, b"transfer-encoding") != b"chunked"):
            self._violation(case, "Transfer-Encoding is not exactly one 'chunked'", head)
        if names.count(b"content-length") > 1 or names.count(b"host") > 1:
            self._violation(case, "a repeated Content-Length or Host", head)
        if req.method == b"CONNECT":
            self._violation(case, "CONNECT reached the origin", head)
        del buf[: t[4]]
        if req.expect_continue:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if req.chunked:
            for _ in range(1 << 20):
                m = _CANONICAL_CHUNK.match(buf)
                if m is None:
                    if b"\r\n" in buf[:20] or len(buf) > 20:
                        self._violation(case, "a non-canonical chunk line", buf)
                        return False
                    more()
                    continue
                size = int(m.group(1), 16)
                if size == 0:
                    del buf[: m.end()]
                    break
                while len(buf) < m.end() + size + 2:
                    more()
                if buf[m.end() + size : m.end() + size + 2] != b"\r\n":
                    self._violation(case, "chunk data not followed by CRLF", buf)
                    return False
                del buf[: m.end() + size + 2]
            for _ in range(1 << 20):  # trailers: canonical field lines, then CRLF
                while b"\r\n" not in buf:
                    more()
                line, _, _ = bytes(buf).partition(b"\r\n")
                del buf[: len(line) + 2]
                if not line:
                    break
                name, sep, value = line.partition(b": ")
                if not sep or not re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name) or value != value.strip(b" \t"):
                    self._violation(case, "a non-canonical trailer line", line)
        elif req.content_length > 0:
            while len(buf) < req.content_length:
                more()
            del buf[: req.content_length]
        with self.lock:
            self.complete[case] = self.complete.get(case, 0) + 1
        path = req.target.split(b"?")[0]
        if b"/chunked" in path:
            resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"" if req.method == b"HEAD" else b"2\r\nok\r\n0\r\n\r\n")
        elif b"/fail" in path:
            resp = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\n" + (b"" if req.method == b"HEAD" else b"fail")
        elif b"/nocontent" in path:
            resp = b"HTTP/1.1 204 No Content\r\n\r\n"
        else:
            resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + (b"" if req.method == b"HEAD" else b"ok")
        keep = req.keep_alive
        if not keep:
            resp = resp.replace(b"\r\n", b"\r\nConnection: close\r\n", 1)
        try:
            conn.sendall(resp)
        except OSError:
            return False
        return keep

    def take_all(self) -> List[Violation]:
        with self.lock:
            out, self.violations = self.violations, []
        return out

    def take(self, case: int) -> List[Violation]:
        """The violations attributed to ``case`` (removed from :attr:`violations`)."""
        with self.lock:
            mine = [v for v in self.violations if v.case == case]
            self.violations = [v for v in self.violations if v.case != case]
        return mine

    def quiet(self, case: int, timeout: float) -> bool:
        """Wait (bounded, polled) until everything the proxy sent is read (no connection waiting to
        be accepted, no unread byte in a connection's kernel buffer) and no connection is inside a
        request begun during ``case``; whether it happened (if not, the connections still inside a
        request of ``case`` are counted in :attr:`stuck`)."""
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            with self.lock:
                unread = bool(select.select([self.sock], [], [], 0)[0]) or any(_unread(c) for c in self.socks.values())
                left = sum(1 for c in self.busy.values() if c == case)
                if not unread and not left:
                    return True
                if time.monotonic() >= deadline:
                    self.stuck[case] = left
                    return False
            time.sleep(0.002)
        return False

    def inside(self, case: int) -> bool:
        with self.lock:
            return case in self.busy.values()

    def close(self) -> None:
        self._stop.set()
        self._accepter.join(5)
        for t in self._threads:
            t.join(2)
        self.sock.close()


def _unread(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s kernel receive buffer (0 once it is closed)."""
    if sock.fileno() < 0:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def h_get(headers: Sequence[Tuple[bytes, bytes]], name: bytes) -> Optional[bytes]:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


# === the driver ===


@dataclass
class Result:
    case: Case
    outcome: str  # answered | closed | timeout | reset
    statuses: Tuple[int, ...]  # every status received, in order, interim ones included
    failure: Optional[str] = None  # what is wrong, led by its kind (``timeout: ...``); None: nothing
    elapsed: float = 0.0  # from the end of sending to the settling (seconds)
    closed: bool = False  # the proxy closed the connection (else the case settled on an open one)
    lingered: bool = False  # a half-closed, answered connection still open LINGER after settling
    tail: str = ""
    complete: int = 0
    known: Optional[str] = None  # the KNOWN entry that excuses the failure, if any
    received: bytes = b""  # the first RECEIVED_KEPT bytes the proxy sent

    @property
    def kind(self) -> Optional[str]:
        return self.failure.split(":", 1)[0] if self.failure else None

    @property
    def finals(self) -> Tuple[int, ...]:
        return tuple(s for s in self.statuses if s >= 200)

    @property
    def key(self) -> Tuple[str, Tuple[int, ...]]:
        """What the two paths must agree on: the outcome and the final statuses (whether an interim
        ``100 Continue`` is relayed before the client's half-close is read is a race on both paths;
        so, after a reset, is any answer beyond those to the complete requests, which it waited for)."""
        return self.outcome, self.finals[: self.complete] if self.outcome == "reset" else self.finals


def run_case(addr: Tuple[str, int], case: Case, origin: Optional[RecordingOrigin] = None, budget: float = BUDGET) -> Result:
    """Send one case on a fresh connection and judge what comes back (see the module docstring)."""
    ref = expect(case.data)
    if origin is not None:
        origin.case = case.index
    reader = ResponseReader(ref.methods)
    failure: Optional[str] = None
    lingered = closed = False
    outcome = "timeout"
    s = socket.create_connection(addr, timeout=budget)
    try:
        try:
            s.sendall(case.data)
        except OSError:
            pass  # the proxy answered and closed before it read everything: judged below
        half_closed = False
        if case.ending == "half-close":
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            half_closed = True
        t0 = time.monotonic()
        deadline = t0 + budget
        tail = ref.tail
        # after a CONNECT's answer the proxy must close: read on until it does (or the budget ends)
        must_close = any(q.method == b"CONNECT" for q in ref.heads)
        for _ in range(100_000):  # each round receives bytes or waits until the deadline
            answered_all = not reader.partial and reader.finals >= len(ref.complete)
            if case.ending == "reset" and answered_all and not must_close:
                if tail == "stream" and origin is not None:
                    _wait_forwarded(s, origin, deadline)  # what this looks for needs the head upstream
                _reset(s)
                outcome = "reset"
                break
            if answered_all and (tail == "end" or (tail == "stream" and not half_closed)) and not must_close:
                if tail == "stream":  # the client has not finished its body: it gives up now
                    try:
                        s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    half_closed = True
                    tail = "head"  # from now on the proxy must answer or close by itself
                    deadline = time.monotonic() + budget
                    continue
                outcome = "answered"
                if half_closed:
                    lingered = not _closes_within(s, LINGER)
                break
            left = deadline - time.monotonic()
            if left <= 0:
                if must_close and answered_all:
                    outcome = "answered"  # but not closed: judged below
                break
            try:
                r, _, _ = select.select([s], [], [], left)
                if not r:
                    continue
                data = s.recv(65536)
                closed = not data
            except (ConnectionResetError, BrokenPipeError):
                data, closed = b"", True
            try:
                reader.feed(data, eof=closed)
            except Malformed as exc:
                failure = f"malformed: {exc}"
            if closed or failure:
                outcome = "answered" if reader.statuses else "closed"
                break
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    if failure is None:
        failure = _judge(ref, reader, outcome, closed)
    if origin is not None:
        if not origin.quiet(case.index, QUIESCE):
            failure = failure or f"upstream-open: an upstream connection still inside a request {QUIESCE:g} s after the case"
        seen = origin.take(case.index)
        if seen and failure is None:
            failure = f"{'connect' if all(v.what.startswith('CONNECT') for v in seen) else 'origin'}: " + "; ".join(
                f"{v.what}: {v.data[:200]!r}" for v in seen
            )
        reached = origin.complete.get(case.index, 0)
        if failure is None and reached > len(ref.complete):
            failure = f"forwarded: {reached} requests reached the origin whole, the reference has {len(ref.complete)} complete (tail {ref.tail})"
    result = Result(
        case, outcome, tuple(reader.statuses), failure, elapsed, closed, lingered, ref.tail, len(ref.complete), None, reader.buf[:RECEIVED_KEPT]
    )
    result.known = next((k.name for k in KNOWN if k.failure(result)), None) if failure else None
    return result


def _reset(s: socket.socket) -> None:
    """Close abortively: the peer gets a RST, and the bytes it had not read yet are lost."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def _wait_forwarded(s: socket.socket, origin: RecordingOrigin, deadline: float) -> None:
    """Until the origin is inside a request, the proxy answers or closes, or the deadline (polled)."""
    for _ in range(10_000):
        if origin.inside(origin.case) or time.monotonic() >= deadline:
            return
        r, _, _ = select.select([s], [], [], 0.005)
        if r:
            return


def _closes_within(s: socket.socket, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([s], [], [], left)
        if r:
            try:
                return s.recv(65536) == b""
            except OSError:
                return True
    return False


def _judge(ref: Expectation, reader: ResponseReader, outcome: str, closed: bool) -> Optional[str]:
    if outcome == "timeout":
        got = f"{reader.finals} final responses ({list(reader.statuses)})" + (", one half-received" if reader.partial else "")
        return f"timeout: not answered or closed within {BUDGET:g} s; {got}; the reference has {len(ref.complete)} complete requests, tail {ref.tail!r}"
    finals = [s for s in reader.statuses if s >= 200]
    extra = 1 if ref.tail in ("head", "body", "stream", "error") else 0
    if len(finals) > len(ref.complete) + extra:
        return f"extra-response: {len(finals)} final responses to {len(ref.complete)} complete requests (tail {ref.tail!r})"
    if ref.tail == "error" and ref.status and len(finals) == len(ref.complete) + 1 and finals[-1] != ref.status:
        return f"status: a rejected head answered {finals[-1]}, the reference says {ref.status}"
    connect = next((i for i, q in enumerate(ref.heads) if q.method == b"CONNECT"), None)
    if connect is not None and len(finals) > connect and (finals[connect] != 501 or len(finals) > connect + 1 or not closed):
        return f"connect: a CONNECT answered {finals[connect]}{'' if closed else ', the connection kept open'} (expected 501 and close)"
    return None


def describe(result: Result, path: str = "") -> str:
    """Everything needed to replay a case."""
    c = result.case
    return (
        f"[{path}] seed={c.seed} case={c.index} ({c.origin}, {', '.join(c.mutations) or 'unmutated'}; "
        f"ending {c.ending}): {result.failure or result.outcome} -> {result.outcome} {list(result.statuses)} "
        f"in {result.elapsed:.3f} s\n  bytes={c.data!r}\n  replay: {c.replay()}"
    )


# === the proxy under test ===


def proxy_config(root: str) -> str:
    return f"""admin: {{ip: 127.0.0.1, port: 0}}
namers:
- {{kind: io.l5d.fs, rootDir: {root}}}
routers:
- protocol: http
  label: fuzz
  dtab: /svc => /#/io.l5d.fs
  client: {{failureAccrual: {{kind: none}}}}
  servers:
  - {{ip: 127.0.0.1, port: 0, socketOptions: {{readTimeoutMs: {READ_TIMEOUT_MS}}}}}
"""


class Target:
    """A recording origin and a proxy (``impl``; ``lane`` on or off) in front of it; ``close()`` stops both."""

    def __init__(self, impl: str, lane: bool) -> None:
        from proxyproc import ProxyProcess  # tests/ is on sys.path for tests and bench alike

        self.path = f"{impl}, lane {'on' if lane else 'off'}" if impl == "native" else impl
        self.root = tempfile.mkdtemp(prefix="pyproxy-fuzz-")
        self.origin = RecordingOrigin()
        self.proxy = None
        try:
            with open(os.path.join(self.root, "svc"), "w") as f:
                f.write(f"127.0.0.1 {self.origin.port}\n")
            self.proxy = ProxyProcess(proxy_config(self.root), impl, extra_env={"PYPROXY_LANE": "on" if lane else "off"})
        except BaseException:
            self.close()
            raise
        self.addr = self.proxy.addr("fuzz")

    def rss_kib(self) -> int:
        assert self.proxy is not None
        with open(f"/proc/{self.proxy.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def alive(self) -> bool:
        return self.proxy is not None and self.proxy.proc.poll() is None

    def stderr(self) -> str:
        return "\n".join(self.proxy.stderr_lines) if self.proxy is not None else ""

    def normal_get(self) -> int:
        """The status of a plain GET on a new connection (0: no answer)."""
        from proxyproc import raw

        r = raw(self.addr, b"GET /after HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n", timeout=5)
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", r)
        return int(m.group(1)) if m else 0

    def warm_up(self, n: int = 20) -> None:
        for _ in range(n):
            assert self.normal_get() == 200, f"{self.path}: the warm-up request was not served"

    def close(self) -> None:
        try:
            if self.proxy is not None:
                self.proxy.stop()
        finally:
            self.origin.close()
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Run:
    path: str
    results: List[Result]
    rss_before: int  # KiB, after the warm-up
    rss_after: int
    rss_max: int
    seconds: float
    late_violations: List[Violation]  # seen at the origin after their case was judged
    alive: bool
    traceback: bool
    after_status: int  # a normal GET after the cases
    stderr: str

    @property
    def failures(self) -> List[Result]:
        """Failures no :data:`KNOWN` entry excuses."""
        return [r for r in self.results if r.failure and not r.known]

    @property
    def known_failures(self) -> List[Result]:
        return [r for r in self.results if r.failure and r.known]


def run(target: Target, seed: int, count: int, start: int = 0, progress: Optional[Callable[[int], None]] = None, rss_every: int = 100) -> Run:
    """Run ``count`` cases from ``start`` against ``target``, then the checks of a healthy proxy."""
    target.warm_up()
    rss_before = rss_max = target.rss_kib()
    results: List[Result] = []
    t0 = time.monotonic()
    for k, case in enumerate(cases(seed, count, start)):
        results.append(run_case(target.addr, case, target.origin))
        if k % rss_every == rss_every - 1:
            rss_max = max(rss_max, target.rss_kib())
            if progress is not None:
                progress(k + 1)
        if not target.alive():
            break
    seconds = time.monotonic() - t0
    alive = target.alive()
    target.origin.case = -1
    after = target.normal_get() if alive else 0
    rss_after = target.rss_kib() if alive else 0
    err = target.stderr()
    return Run(
        target.path, results, rss_before, rss_after, max(rss_max, rss_after), seconds, target.origin.take_all(),
        alive, "Traceback" in err, after, err,
    )


# === what is known ===


def _has_connect(r: Result) -> bool:
    return any(q.method == b"CONNECT" for q in expect(r.case.data).heads)


def _lane_misses_half_close(lane: Result, trio: Result) -> bool:
    """A half-closed case ending inside a head or a small body: the trio path answers 400 at once,
    the lane only at its read timeout (408); every answer before that one alike."""
    return (
        lane.case.half_close
        and lane.tail in ("head", "body")
        and lane.outcome == trio.outcome == "answered"
        and lane.finals[:-1] == trio.finals[:-1]
        and lane.finals[-1:] == (408,)
        and trio.finals[-1:] == (400,)
    )


def _never(*_: Result) -> bool:
    return False


@dataclass(frozen=True)
class Known:
    name: str
    issue: str
    failure: Callable[[Result], bool]  # excuses a failure of one path
    difference: Callable[[Result, Result], bool]  # excuses a difference (lane result, trio path result)


#: The one allowlist: what the fuzzer finds that is known, filed, and expected to go. Keep it
#: minimal and exact; an entry leaves with its fix.
KNOWN: List[Known] = [
    # Empty: CONNECT is 501 with the connection closed on both paths, and the lane sees a client's
    # half-close that comes with its last bytes (read-closed events). A new entry names its issue.
]


# === comparing the lane with the trio path ===


@dataclass
class Difference:
    lane: Result
    trio: Result
    known: Optional[str]  # the KNOWN entry that covers it, if any


def compare(lane: Sequence[Result], trio: Sequence[Result]) -> List[Difference]:
    """Every case whose outcome or final statuses differ between the two paths."""
    out = []
    for a, b in zip(lane, trio):
        assert a.case == b.case
        if a.key == b.key:
            continue
        out.append(Difference(a, b, next((k.name for k in KNOWN if k.difference(a, b)), None)))
    return out


def describe_difference(d: Difference) -> str:
    c = d.lane.case
    return (
        f"seed={c.seed} case={c.index} ({c.origin}, {', '.join(c.mutations) or 'unmutated'}; ending {c.ending}; "
        f"tail {d.lane.tail}): lane {d.lane.outcome} {list(d.lane.statuses)} in {d.lane.elapsed:.3f} s, "
        f"trio path {d.trio.outcome} {list(d.trio.statuses)} in {d.trio.elapsed:.3f} s"
        f"{' (known: ' + d.known + ')' if d.known else ''}\n  bytes={c.data!r}\n  replay: {c.replay()}"
    )
