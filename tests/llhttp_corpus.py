"""llhttp's parser test cases (``tests/data/llhttp/cases.jsonl``) as ``(name, type, input, error)``.

The cases are converted from llhttp's markdown test corpus (MIT, ``tests/data/llhttp/LICENSE``;
provenance in ``tests/data/README.md``) by :func:`convert`, which follows the corpus README's byte
rules (llhttp's own driver does the same, in this order): drop the final newline of the ``http``
block, remove every backslash that ends a line together with that line break, turn the remaining
line breaks into CRLF, then replace the escapes ``\\r \\n \\t \\f \\xHH \\NNN``. Inputs holding a
JavaScript template ``${...}`` are left out and listed. A case's verdict is llhttp's: the
``error code=N reason="..."`` line at the end of its ``log`` block, or ``None``. Regenerate with
``python tests/llhttp_corpus.py --convert <llhttp checkout>/test``.

``decide(kernels, case)`` plays a whole input through the kernels the way the codec will (heads,
Content-Length and chunked bodies, trailers, pipelined messages) and returns None when nothing was
rejected, else the kind of the first rejection. ``STRICTER`` and ``LAXER`` list, case by case with
the reason, where our verdict differs from llhttp's on purpose (``lenient`` cases aside: we reject
them all). ``python tests/llhttp_corpus.py`` prints every case with both verdicts (a reading aid).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator, List, NamedTuple, Optional, Tuple

from pyproxy.errors import RemoteProtocolError

DATA = Path(__file__).resolve().parent / "data" / "llhttp" / "cases.jsonl"

# llhttp's "pause" codes hand the connection over (CONNECT, Upgrade, PRI): not a rejection.
PAUSE_CODES = frozenset({21, 22, 23})

# One case: the meta comment, its http block, then (maybe after prose) its log block.
_CASE = re.compile(
    r"<!-- meta=(?P<meta>\{[^\n]*\}) -->\s*```http\n(?P<http>(?:(?!```).)*?)```"
    r"(?:(?!<!-- meta=).)*?```log\n(?P<log>(?:(?!```).)*)```",
    re.S,
)
_HEADING = re.compile(r"^#{2,4} ([^\n]+)$", re.M)
_ESCAPE = re.compile(rb"\\(?:x([0-9a-fA-F]{2})|([0-7]{3})|([rntf]))")
_ERROR = re.compile(r'error code=(\d+) reason="([^"]*)"')
_SIMPLE = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"f": b"\f"}


class Case(NamedTuple):
    name: str  # "request/invalid.md: Headers separated by CR"
    type: str  # the meta type: "request", "response", "request-lenient-headers", ...
    data: bytes
    error: Optional[Tuple[int, str]]  # llhttp's (code, reason), or None when it accepted


def to_bytes(block: str) -> bytes:
    """The input bytes of one ``http`` block, by the corpus README's rules."""
    text = block[:-1] if block.endswith("\n") else block
    text = text.replace("\\\n", "").replace("\n", "\r\n")

    def sub(m: "re.Match[bytes]") -> bytes:
        if m.group(1):
            return bytes([int(m.group(1), 16)])
        if m.group(2):
            return bytes([int(m.group(2), 8) & 0xFF])
        return _SIMPLE[m.group(3)]

    return _ESCAPE.sub(sub, text.encode("utf-8"))


def _verdict(log: str) -> Optional[Tuple[int, str]]:
    m = _ERROR.search(log)
    return (int(m.group(1)), m.group(2)) if m else None


def load(kind: str) -> Tuple[List[Case], List[str]]:
    """Every case of ``request`` or ``response`` files, and the names left out at conversion."""
    cases: List[Case] = []
    skipped: List[str] = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if not rec["name"].startswith(kind + "/"):
            continue
        if rec.get("skipped"):
            skipped.append(rec["name"])
            continue
        err = rec["error"]
        cases.append(Case(rec["name"], rec["type"], rec["input"].encode("latin-1"), (err[0], err[1]) if err else None))
    return cases, skipped


def convert(source: Path) -> List[dict]:
    """Records of every case under ``source/{request,response}/*.md`` (``pausing.md`` excluded: it
    tests llhttp's own API), in the JSON Lines form :func:`load` reads."""
    out: List[dict] = []
    for kind in ("request", "response"):
        for path in sorted((source / kind).glob("*.md")):
            if path.name == "pausing.md":
                continue
            seen: dict = {}
            text = path.read_text(encoding="utf-8")
            headings = [(h.start(), h.group(1).strip()) for h in _HEADING.finditer(text)]
            for m in _CASE.finditer(text):
                title = [t for at, t in headings if at < m.start()][-1]
                seen[title] = seen.get(title, 0) + 1
                name = f"{kind}/{path.name}: {title}" + (f" #{seen[title]}" if seen[title] > 1 else "")
                if "${" in m.group("http"):
                    out.append({"name": name, "skipped": "a JavaScript template"})
                    continue
                meta = json.loads(m.group("meta"))
                err = _verdict(m.group("log"))
                out.append({"name": name, "type": meta["type"], "input": to_bytes(m.group("http")).decode("latin-1"),
                            "error": list(err) if err else None})
    return out


NO_HOST = "missing-host", "HTTP/1.1 without Host: a proxy must answer 400 (RFC 9112 §3.2; http-hardening §1.5)"
# Inputs llhttp accepts and we reject on purpose (edge strictness, RFC 9112 / http-hardening.md): case name -> (our kind, why).
STRICTER = {
    **{f"request/{name}": NO_HOST for name in (
        "connection.md: Setting flag", "connection.md: Restarting when keep-alive is explicitly",
        "connection.md: Setting flag on `close`", "connection.md: Setting flag on `close` followed by tab",
        "connection.md: Sample", "connection.md: Multiple tokens with folding and LWS",
        "connection.md: Setting a flag and pausing", "connection.md: Emitting part of body and pausing",
        "content-length.md: `Content-Length` with zeroes", "content-length.md: `Content-Length` with follow-up headers",
        "content-length.md: Spaces in `Content-Length` (surrounding)", "content-length.md: Tabs in `Content-Length` (surrounding)",
        "content-length.md: Content-Length reset when no body is received",
        "finish.md: It should be safe to finish after GET request", "method.md: REPORT request",
        "pipelining.md: Should parse multiple events", "sample.md: Simple request",
        "sample.md: Request with method starting with `H`", "sample.md: DUMBPACK", "sample.md: No headers and no body",
        "sample.md: One header and no body", "sample.md: Prefix newline", "sample.md: Request starting with CRLF",
        "sample.md: Extended Characters", "sample.md: 255 ASCII in header value",
        "transfer-encoding.md: Parsing and setting flag", "transfer-encoding.md: Parse chunks with lowercase size",
        "transfer-encoding.md: Parse chunks with uppercase size", "transfer-encoding.md: POST with `Transfer-Encoding: chunked`",
        "transfer-encoding.md: Two chunks and triple zero prefixed end chunk", "transfer-encoding.md: Trailing headers",
        "transfer-encoding.md: Chunk extensions", "transfer-encoding.md: Chunk extensions quoting",
        "uri.md: Quotes in URI", "uri.md: Query URL with question mark", "uri.md: Host terminated by a query string",
        "uri.md: `host:port` terminated by a query string", "uri.md: Query URL with vertical bar character",
        "uri.md: `host:port` terminated by a space")},
    "request/method.md: M-SEARCH request": ("bad-target", "asterisk-form only with OPTIONS (RFC 9112 §3.2.4)"),
    "request/method.md: PRI request HTTP2": ("bad-target", "the h2 preface is not an HTTP/1.1 request (no prior-knowledge h2 here)"),
    "request/method.md: SOURCE request with ICE": ("bad-version", "ICE/1.0 is not HTTP"),
    "request/method.md: OPTIONS request with RTSP": ("bad-version", "RTSP/1.0 is not HTTP"),
    "request/method.md: ANNOUNCE request with RTSP": ("bad-version", "RTSP/1.0 is not HTTP"),
    "request/sample.md: No HTTP version": ("bad-request-line", "HTTP/0.9 request lines are not supported"),
    "request/uri.md: Fragment in URI": ("bad-target", "'#' is not request-target syntax (RFC 9112 §3.2; Envoy CVE-2021-32779)"),
    "request/uri.md: `host:port` and basic auth": ("bad-target", "userinfo in a target is an error (RFC 9110 §4.2.4)"),
    "request/transfer-encoding.md: POST with `chunked` as last transfer-encoding": ("bad-target", "'#' in the target"),
    "request/transfer-encoding.md: POST with `chunked` as last transfer-encoding (multiple headers)": ("bad-target", "'#' in the target"),
    "response/sample.md: RTSP response": ("bad-version", "RTSP/1.1 is not HTTP"),
    "response/sample.md: ICE response": ("bad-version", "ICE/1.1 is not HTTP"),
    "response/sample.md: HTTP version 0.9": ("bad-version", "only HTTP/1.0 and HTTP/1.1 status lines"),
    "response/sample.md: Response starting with CRLF": ("bad-version", "only a server skips empty lines (RFC 9112 §2.2)"),
    "response/connection.md: HTTP 304 with Content-Length": ("bad-version", "an empty line before the next status line"),
    "response/connection.md: HTTP 100 first, then 400": ("bad-version", "an empty line before the next status line"),
    "response/pipelining.md: Should parse multiple events": ("bad-version", "an empty line before the next status line"),
    **{f"response/transfer-encoding.md: {name}": ("unsupported-transfer-coding", "TE other than one chunked: 502, not read-until-close")
       for name in ("`chunked` before other transfer-encoding", "multiple transfer-encoding where chunked is not the last one",
                    "`chunkedchunked` transfer-encoding does not enable chunked enconding")},
}
# Inputs llhttp rejects and we accept: case name -> (why, bytes that complete the message or None, our kind then).
INCOMPLETE = "llhttp rejects the field at once; we check framing when the head is complete"
LAXER = {
    "request/content-length.md: Error on `Content-Length` overflow": (INCOMPLETE, b"Host: h\r\n\r\n", "bad-content-length"),
    "request/content-length.md: Error on duplicate `Content-Length`": (INCOMPLETE, b"Host: h\r\n\r\n", "conflicting-content-length"),
    "request/invalid.md: Invalid HTTP version": ("the line is not complete yet", b"\r\n", "http-version-not-supported"),
    "request/invalid.md: Invalid space after start line": ("the line is not complete yet", b"\r\n", "obs-fold"),
    "response/invalid.md: Invalid space after start line": ("the line is not complete yet", b"\r\n", "obs-fold"),
    "request/invalid.md: HTTP protocol and ANNOUNCE method": ("any token is a method (RFC 9110 §9.1); policy is not the parser's", None, None),
}

LINE, HEAD, COUNT = 8192, 65536, 100


class _Reject(Exception):
    pass


def _chunked_body(k: ModuleType, data: bytes, pos: int) -> Optional[int]:
    """The end of the chunked body at ``pos`` (trailers included), or None while incomplete."""
    while True:
        r = k.parse_chunk_line(data, pos, LINE)
        if r is None:
            return None
        size, pos = r
        if size == 0:
            t = k.parse_trailers(data, pos, HEAD, COUNT)
            return None if t is None else t[1]
        if pos + size >= len(data):
            return None
        pos += size
        crlf = data[pos : pos + 2]
        if crlf != b"\r\n"[: len(crlf)]:
            raise _Reject("bad-chunk-terminator")  # the codec's check, not a kernel's
        if len(crlf) < 2:
            return None
        pos += 2


def _message(k: ModuleType, data: bytes, pos: int, request: bool) -> Optional[int]:
    """Where the message at ``pos`` ends (None: incomplete, or the rest is not HTTP any more)."""
    if request:
        head = k.parse_request_head(data[pos:], LINE, HEAD, COUNT)
        if head is None:
            return None
        method, _, minor, headers, n, cl, chunked, conn = head[:8]
        status = 0
    else:
        head = k.parse_response_head(data[pos:], HEAD, COUNT)
        if head is None:
            return None
        minor, status, _, headers, n, cl, chunked, conn = head
        method = b""
    pos += n
    upgrade = b"upgrade" in conn and any(name.lower() == b"upgrade" for name, _ in headers)
    if method == b"CONNECT" or status == 101:
        return None  # a tunnel: the rest is not HTTP
    if 100 <= status < 200 or status in (204, 304):
        end: Optional[int] = pos  # never a body, whatever the framing fields say (RFC 9112 §6.3)
    elif chunked:
        end = _chunked_body(k, data, pos)
    elif cl >= 0:
        end = pos + cl if pos + cl <= len(data) else None
    elif status:
        end = None  # delimited by the close: the rest is body
    else:
        end = pos
    if end is None or (request and upgrade):
        return None  # incomplete, or the rest belongs to the upgraded protocol
    if 100 <= status < 200:
        return end  # an interim response: the final one follows
    if (b"close" in conn or (minor == 0 and b"keep-alive" not in conn)) and end < len(data):
        raise _Reject("data-after-close")  # a server answers, closes, and reads no further
    return end


def decide(k: ModuleType, case: Case) -> Optional[str]:
    """None when the kernels accept the whole input (maybe incomplete), else the first rejection's kind."""
    pos, request = 0, case.type.startswith("request")
    try:
        while pos < len(case.data):
            end = _message(k, case.data, pos, request)
            if end is None:
                return None
            pos = end
    except RemoteProtocolError as e:
        return e.kind
    except _Reject as e:
        return str(e)
    return None


def main() -> Iterator[str]:
    from pyproxy import _impl

    for kind in ("request", "response"):
        cases, skipped = load(kind)
        for c in cases:
            yield f"{c.name} [{c.type}] llhttp={c.error} ours={decide(_impl, c)} {c.data[:60]!r}"
        for s in skipped:
            yield f"SKIPPED {s}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--convert"]:
        records = convert(Path(sys.argv[2]))
        DATA.write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in records), encoding="utf-8")
        print(f"{DATA}: {len(records)} cases")
    else:
        sys.stdout.writelines(line + "\n" for line in main())
