"""The lane's header rules against the trio path's own functions (hypothesis, differential).

The lane (``native/src/lane/head.rs``) decides per request whether it may forward it and what it
sends, and per response whether it relays it and with which head. Its twin is the trio path, so the
reference here is built from the very functions that path runs: ``headers.scan_request``, the
router's ``Via`` loop rule, ``TraceId.from_header``, ``lane.route_key``,
``http1.serialize_request_head`` for requests (``context.parse_deadline`` and ``format_deadline``
for ``l5d-ctx-deadline``); ``exchange._response_fields`` and ``http1.serialize_response_head`` for
responses. Heads are generated from a small vocabulary that
forces the interesting collisions: hop-by-hop fields, ``Connection`` nominations (of protected and
``l5d-*`` fields too), every context field in mixed case and the ``l5d_`` spelling, ``Via`` loops,
framing fields, ``x-forwarded-client-cert`` (never forwarded), deadlines valid, invalid and past 64 bits.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import List, Optional, Tuple

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from pyproxy import _impl
from pyproxy.http import headers as h
from pyproxy.resilience.classify import SUCCESS, Classifier
from pyproxy.http.context import TraceId, format_deadline, parse_deadline
from pyproxy.errors import DtabError, RemoteProtocolError
from pyproxy.datapath.exchange import _response_fields
from pyproxy.http.message import Request, Response, serialize_request_head, serialize_response_head
from pyproxy.datapath.lane import route_key
from pyproxy.metrics.histogram import Histogram, bucket_key
from pyproxy.routing.router import ServerRules

pytestmark = [
    pytest.mark.native,
    pytest.mark.skipif(_impl.Lane is None, reason="the lane exists with the native kernels only"),
]

VIA = b"1.1 pyproxy-r"
ROUTE = [(b"l5d-dst-service", b"/svc/web"), (b"l5d-dst-client", b"/#/io.l5d.fs/web")]
TRACE, REQID = b"VFJBQ0U=", b"00000000000000aa"
GOOD_TRACE = base64.b64encode(struct.pack(">QQQQ", 1, 2, 3, 6))
STREAM_AFTER = 5120  # the router's streamAfterContentLengthKB (5) in bytes


def _case(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper(), name.title()])


TOKENS = ["close", "keep-alive", "x-a", "X-B", "l5d-dtab", "L5D-CTX-DTAB", "via", "host", "content-length", "te", "upgrade", "l5d-foo"]
REQUEST_FIELDS = st.one_of(
    st.tuples(_case("X-A"), st.sampled_from(["1", "two words", ""])),
    st.tuples(_case("x-b"), st.just("b")),
    st.tuples(_case("Connection"), st.lists(st.sampled_from(TOKENS), min_size=1, max_size=3).map(", ".join)),
    st.tuples(_case("Via"), st.sampled_from(["1.1 a", "1.1 pyproxy-r", "a, b", "1.0 x,  1.1 y"])),
    st.tuples(_case("l5d-dtab"), st.sampled_from(["/a=>/b", "/c => /d;/e=>/f"])),
    st.tuples(_case("l5d-ctx-dtab"), st.sampled_from(["/x=>/y", "/a=>/b"])),
    st.tuples(_case("l5d-ctx-trace"), st.sampled_from([GOOD_TRACE.decode(), "not-base64", base64.b64encode(b"short").decode()])),
    st.tuples(st.sampled_from(["l5d-sample", "l5d-reqid", "l5d-dst-service", "l5d_dtab", "l5d-foo", "L5d-Bar"]), st.just("1")),
    st.tuples(_case("l5d-ctx-deadline"), st.sampled_from(["1", "5 100", "7 90", "x 9", "1 2 3", "3\t50", "1 18446744073709551616", "1 18446744073709551615"])),
    st.tuples(_case("X-Forwarded-Client-Cert"), st.sampled_from(["Hash=abc;Subject=\"CN=x\"", ""])),
    st.tuples(st.sampled_from(["Keep-Alive", "TE", "Upgrade", "Proxy-Connection", "Trailer", "Expect"]), st.sampled_from(["x", "100-continue"])),
    st.tuples(_case("Content-Length"), st.sampled_from(["0", "5", "5121"])),
    st.tuples(st.just("Transfer-Encoding"), st.just("chunked")),
    st.tuples(st.just("User-Agent"), st.just("probe/1")),
)


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "GET", "HEAD", "POST", "DELETE"]))
    target = draw(st.sampled_from(["/", "/a/b?c=d", "/", "http://web/x"]))
    minor = draw(st.sampled_from([0, 1]))
    fields: List[Tuple[str, str]] = draw(st.lists(REQUEST_FIELDS, max_size=6))
    if draw(st.integers(0, 9)):  # usually a Host: without one, HTTP/1.1 heads do not parse
        fields.insert(draw(st.integers(0, len(fields))), (draw(_case("Host")), draw(st.sampled_from(["web", "web:80"]))))
    lines = [f"{method} {target} HTTP/1.{minor}"] + [f"{k}: {v}" for k, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parsed_request(head: bytes) -> Optional[Request]:
    try:
        t = _impl.parse_request_head(head, 1 << 16, 1 << 20, 1000)
    except RemoteProtocolError:
        return None
    return Request.from_kernel(t) if t is not None else None


def trio_path_request(
    req: Request, server: int, edge: bool, ident: bytes, max_depth: int, stamp: Optional[Tuple[bytes, bytes]] = None
) -> Optional[Tuple[bytes, object, bytes]]:
    """What the trio path would forward for a request the lane may take (None: it may not)."""
    if req.content_length > STREAM_AFTER or req.chunked or req.expect_continue or not req.target.startswith(b"/"):
        return None
    kept, ctx, via_values = h.scan_request(req.headers, req.connection, edge=edge)
    if h.SAMPLE in ctx:
        return None
    deadline = parse_deadline(ctx.get(h.CTX_DEADLINE, ()))
    if _too_large(ctx.get(h.CTX_DEADLINE, ())):
        return None  # the lane declines a deadline it cannot hold in 64 bits
    via = [e.strip() for v in via_values for e in v.split(b",") if e.strip()]
    if len(via) > max_depth or VIA in via:
        return None  # the router answers 400
    value = req.host if ident == b"host" else h.get(req.headers, ident)
    if not value:
        return None  # the router answers 400
    raw_trace = ctx.get(h.CTX_TRACE)
    parent = TraceId.from_header(raw_trace[0]) if raw_trace else None
    if raw_trace and parent is None:
        return None  # the lane declines what it does not decode exactly as Python
    fields = list(kept)
    fields.append((b"Via", b", ".join([*via_values, VIA]) if via_values else VIA))
    fields += ROUTE + [(b"l5d-ctx-trace", TRACE), (b"l5d-reqid", REQID), (b"l5d-ctx-dtab", b"/x=>/y")]
    if stamp is not None:  # the router adds timestampHeader after the context fields
        fields.append(stamp)
    if req.content_length >= 0:
        fields.append((b"Content-Length", b"%d" % req.content_length))
    key = route_key(server, value, ctx.get(h.CTX_DTAB, ()), ctx.get(h.DTAB, ()))
    p = (parent.span_id, parent.parent_id, parent.trace_id, parent.flags) if parent else None
    return key, p, deadline, serialize_request_head(req.method, req.target, req.minor, fields)


def _too_large(values: List[bytes]) -> bool:
    """A valid ``l5d-ctx-deadline`` value (two runs of digits) with a number past 64 bits."""
    return any(len(p) == 2 and all(x.isdigit() for x in p) and max(int(x) for x in p) >= 2**64 for p in (v.split() for v in values))


DEADLINE_VALUES = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 2**64 + 5), st.integers(0, 2**64 + 5)).map(lambda t: b"%d %d" % t),
        st.tuples(st.integers(0, 50), st.integers(0, 50)).map(lambda t: b"%d %d" % t),
        st.lists(st.sampled_from([b"1", b"22", b" ", b"\t", b"\x0b", b"\x0c", b"x", b"-3", b"+4", b"007", b"\xd9\xa3"]), max_size=6).map(b"".join),
    ),
    max_size=5,
)


@settings(deadline=None)
@given(DEADLINE_VALUES)
def test_the_lane_reads_deadlines_as_parse_deadline(values: List[bytes]) -> None:
    got = _impl.Lane.parse_deadline(values)
    if _too_large(values):
        assert got == -1  # the lane declines such a request: the trio path serves it
    else:
        assert got == parse_deadline(values)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_the_lane_writes_deadlines_as_format_deadline(ts: int, dl: int) -> None:
    assert _impl.Lane.deadline_field(ts, dl) == b"l5d-ctx-deadline: " + format_deadline(ts, dl) + b"\r\n"


# Five times the profile's examples: most generated heads are refused by the parser or declined.
MORE = settings(settings.default, max_examples=settings.default.max_examples * 5, deadline=None)


STAMPS = st.sampled_from([None, (b"X-Request-Start", b"1764115200123"), (b"x-ts", b"0")])


@MORE
@given(request_heads(), st.booleans(), st.sampled_from([b"host", b"x-a"]), st.sampled_from([1, 1000]), st.integers(0, 3), STAMPS)
def test_requests_the_lane_takes_and_what_it_sends(
    head: bytes, edge: bool, ident: bytes, max_depth: int, server: int, stamp: Optional[Tuple[bytes, bytes]]
) -> None:
    req = parsed_request(head)
    if req is None:
        return  # the parser refuses it: the lane hands it to Python, which answers the error
    block = b"".join(b"%s: %s\r\n" % kv for kv in ROUTE)
    stamp_block = b"%s: %s\r\n" % stamp if stamp else b""
    lane = _impl.Lane.scan(head, server, edge, VIA, max_depth, ident, block, TRACE, REQID, b"l5d-ctx-dtab: /x=>/y\r\n", STREAM_AFTER, stamp_block)
    event("the lane takes it" if lane is not None else "the lane declines it")
    assert lane == trio_path_request(req, server, edge, ident, max_depth, stamp)


RESPONSE_FIELDS = st.one_of(
    st.tuples(_case("Content-Length"), st.sampled_from(["0", "12"])),
    st.tuples(st.just("Transfer-Encoding"), st.just("chunked")),
    st.tuples(_case("Connection"), st.lists(st.sampled_from(["close", "keep-alive", "x-a", "via", "content-length", "l5d-x"]), min_size=1, max_size=2).map(", ".join)),
    st.tuples(_case("X-A"), st.just("1")),
    st.tuples(_case("Via"), st.sampled_from(["1.1 up", "a, b"])),
    st.tuples(st.sampled_from(["l5d-err", "L5D-Err", "l5d-x", "l5d_y"]), st.just("e")),
    st.tuples(_case("l5d-success-class"), st.sampled_from(["0.0", "1.0"])),
    st.tuples(st.sampled_from(["Keep-Alive", "Trailer", "Upgrade", "Date"]), st.just("x")),
)


@st.composite
def response_heads(draw: st.DrawFn) -> bytes:
    status = draw(st.sampled_from([200, 200, 204, 206, 301, 304, 404, 499, 100, 103, 101, 503]))
    minor = draw(st.sampled_from([0, 1]))
    reason = draw(st.sampled_from(["OK", "", "Some Reason"]))
    fields = draw(st.lists(RESPONSE_FIELDS, max_size=6))
    if draw(st.integers(0, 3)):  # usually framed by a length, so that the lane may relay it
        fields.append(("Content-Length", draw(st.sampled_from(["0", "7"]))))
    lines = [f"HTTP/1.{minor} {status} {reason}".rstrip() if reason else f"HTTP/1.{minor} {status}"] + [f"{k}: {v}" for k, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def trio_path_response(resp: Response, head_request: bool, keep_down: bool, req_minor: int, edge: bool) -> Optional[Tuple[bytes, Optional[int]]]:
    """The head the trio path relays for a response the lane may relay (None: it may not)."""
    if not 200 <= resp.status < 500 or (edge and h.get(resp.headers, h.ERR) is not None):
        return None
    head_only = head_request or resp.status in (204, 304)
    chunked = not head_only and resp.content_length < 0 and resp.chunked and req_minor == 1
    if not head_only and resp.content_length < 0 and not chunked:
        return None  # close-delimited, or chunked to an HTTP/1.0 client: the full relay
    success = Classifier().classify(b"GET", resp.status) == SUCCESS  # the default classifier's verdict
    fields = _response_fields(resp, edge, ServerRules(clear_context=edge, via=VIA), success)
    if resp.content_length >= 0:
        fields.append((b"Content-Length", b"%d" % resp.content_length))
    elif chunked:
        fields.append((b"Transfer-Encoding", b"chunked"))
    if not keep_down:
        fields.append((b"Connection", b"close"))
    head = serialize_response_head(req_minor if req_minor == 0 else 1, resp.status, resp.reason, fields)
    return head, (None if head_only else -1 if chunked else resp.content_length)


@MORE
@given(response_heads(), st.booleans(), st.booleans(), st.sampled_from([0, 1]), st.booleans())
def test_responses_the_lane_relays_and_their_heads(head: bytes, head_request: bool, keep_down: bool, req_minor: int, edge: bool) -> None:
    try:
        t = _impl.parse_response_head(head, 1 << 20, 1000)
    except RemoteProtocolError:
        return  # the lane hands it over; the trio path answers 502
    assert t is not None
    lane = _impl.Lane.relay_head(head, head_request, keep_down, req_minor, edge, VIA)
    event("the lane relays it" if lane is not None else "the lane hands it over")
    assert lane == trio_path_response(Response.from_kernel(t), head_request, keep_down, req_minor, edge)


@MORE
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=0.0, max_value=1e6), st.integers(0, 10**6).map(float)))
def test_the_lanes_latency_buckets_are_the_histograms(v: float) -> None:
    """The lane sums latencies per histogram bucket before Python merges them: its bucket key must
    be the histogram's, and the histogram's own add must use that key."""
    assert _impl.Lane.bucket_key(v) == bucket_key(v)
    h = Histogram()
    h.add(v)
    assert list(h.buckets) == [bucket_key(v)]


@given(st.lists(st.floats(min_value=0.0, max_value=1e5), max_size=40), st.lists(st.floats(min_value=0.0, max_value=1e5), max_size=40))
def test_a_merged_batch_is_the_histogram_of_its_samples(before: List[float], batch: List[float]) -> None:
    one, merged = Histogram(), Histogram()
    for v in before + batch:
        one.add(v)
    for v in before:
        merged.add(v)
    summed: dict = {}
    for v in batch:
        summed[bucket_key(v)] = summed.get(bucket_key(v), 0) + 1
    merged.merge(len(batch), sum(batch), min(batch, default=math.inf), max(batch, default=-math.inf), summed.items())
    assert (merged.count, merged.min, merged.max, merged.buckets) == (one.count, one.min, one.max, one.buckets)
    assert merged.sum == pytest.approx(one.sum)
    assert merged.current().p99 == one.current().p99


# === overrides carried in baggage, signed overrides at an edge ===
#
# The same comparison with a listener's carrier rules (a router's dtabBaggage, an edge's scrub of
# the member, signedOverrides): the reference is routing.overrides.resolve, the function the trio
# path runs, and the route block the lane is given is built from what it resolved, as
# Forwarder._install builds it.

from pyproxy.http.baggage import BaggageRules, rewrite  # noqa: E402
from pyproxy.http.context import OverrideCache  # noqa: E402
from pyproxy.http.signature import Keyring, sign  # noqa: E402
from pyproxy.metrics import Registry  # noqa: E402
from pyproxy.routing.overrides import OverrideCounts, OverrideRefused, OverrideRules, SignedOverrides, resolve  # noqa: E402

SIGN_KEY = b"k" * 32
KEYRING = Keyring({b"dev": SIGN_KEY})
GOOD_SIG = sign(SIGN_KEY, b"dev", 4_000_000_000, b"/s=>/t").decode()
MANY = ",".join(f"m{i}=v" for i in range(70))
BIG = "big=" + "x" * 5000
CARRIER_FIELDS = st.one_of(
    st.tuples(_case("baggage"), st.sampled_from([
        "a=1", "l5d-dtab=/x=>/y", "l5d-dtab=%2Fa%3D%3E%2Fb", "l5d-dtab", "l5d-dtab = /p=>/q ;prop", "l5d-dtab=/bad%zz",
        "b=2, l5d-dtab=/x=>/y", ",,", "k=v;p=1", " c = 3 ", "l5d-dtabx=1", "l5d-dtab=/x=>/z", MANY, BIG,
        "l5d-dtab=%zz, a=1", MANY,
    ])),
    st.tuples(_case("uberctx-l5d-dtab"), st.sampled_from(["/x=>/y", "%2Fx%3D%3E%2Fy", "%zz", "/j=>/k"])),
    st.tuples(_case("ot-baggage-l5d-dtab"), st.sampled_from(["/x=>/y", "/o=>/p"])),
    st.tuples(_case("uberctx-other"), st.just("1")),
    st.tuples(_case("l5d-dtab"), st.sampled_from(["/s=>/t", "/a=>/b"])),
    st.tuples(_case("l5d-ctx-dtab"), st.sampled_from(["/c=>/d"])),
    st.tuples(_case("l5d-dtab-sig"), st.sampled_from([GOOD_SIG, "kid=dev; exp=1; sig=x", "garbage"])),
    st.tuples(_case("Connection"), st.sampled_from(["baggage", "uberctx-l5d-dtab", "l5d-dtab-sig", "keep-alive"])),
    st.tuples(_case("X-A"), st.just("1")),
)
CARRIER_SETS = st.sampled_from([("baggage",), ("uberctx", "baggage"), ("baggage", "uberctx", "ot-baggage"), ("ot-baggage",)])


@st.composite
def carrier_heads(draw: st.DrawFn) -> bytes:
    fields = draw(st.lists(CARRIER_FIELDS, max_size=6))
    fields.insert(draw(st.integers(0, len(fields))), ("Host", "web"))
    lines = ["GET /p HTTP/1.1"] + [f"{k}: {v}" for k, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@MORE
@given(carrier_heads(), st.sampled_from([False, False, True]), st.one_of(st.none(), CARRIER_SETS, CARRIER_SETS), st.booleans())
def test_overrides_in_baggage_take_the_lane_as_the_trio_path_reads_them(head: bytes, edge: bool, carriers, signed: bool) -> None:
    req = parsed_request(head)
    assert req is not None
    bag = BaggageRules.of("l5d-dtab" if carriers else None, carriers or (), edge)
    signer = SignedOverrides(KEYRING, 30.0, False) if signed else None
    rules = OverrideRules(edge, bag, signer)
    kept, ctx, via_values = h.scan_request(req.headers, req.connection, edge=edge, capture=rules.capture)
    counts = OverrideCounts(Registry().scope("o"))
    refused = False
    try:
        resolved = resolve(rules, ctx, OverrideCache(), 1.7e9, counts)
    except (OverrideRefused, DtabError):
        refused = True  # the trio path answers 400: no route is ever installed for it
    local = None if refused else resolved.local
    value = local.show.encode("latin-1") if local is not None and local.dentries else None
    ctx_block = b""
    member = None
    if value is not None:
        ctx_block = b"l5d-ctx-dtab: %s\r\n" % value
        if bag is not None:
            ctx_block += b"".join(b"%s: %s\r\n" % kv for kv in bag.fixed_fields(value))
            member = bag.member(value)
    lane_carriers = (bag.key, bytes(bag.read), bytes(sorted(bag.fields.values()))) if bag is not None else None
    block = b"".join(b"%s: %s\r\n" % kv for kv in ROUTE)
    lane = _impl.Lane.scan(head, 3, edge, VIA, 1000, b"host", block, TRACE, REQID, ctx_block, STREAM_AFTER, b"",
                           lane_carriers, rules.signed is not None, member)
    scrubbed = any(k[-1] == "scrubbed" for k, _, _ in counts.scope.registry.items())
    if edge and scrubbed:
        assert lane is None  # the trio path removes the member and counts it
        event("edge: the member goes to the trio path")
        return
    assert lane is not None
    key, _, _, fwd = lane
    if refused:
        event("refused: keyed, never installed")
        assert key[:2] == (3).to_bytes(2, "little")
        return
    assert key == route_key(3, b"web", ctx.get(h.CTX_DTAB, ()), ctx.get(h.DTAB, ()), resolved.extra)
    dropped = any(k[-1] == "dropped" for k, _, _ in counts.scope.registry.items())
    if dropped:
        assert fwd is None  # the lane declines: the trio path counts the members it drops
        event("members dropped: declined")
        return
    fields = list(kept)
    fields.append((b"Via", b", ".join([*via_values, VIA]) if via_values else VIA))
    fields += ROUTE + [(b"l5d-ctx-trace", TRACE), (b"l5d-reqid", REQID)]
    if value is not None:
        fields.append((b"l5d-ctx-dtab", value))
    fields += resolved.carried
    event("taken, with an override" if value is not None else "taken")
    assert fwd == serialize_request_head(req.method, req.target, req.minor, fields)


def test_the_lanes_baggage_rewrite_is_the_trio_paths() -> None:
    """Spot checks of the two twins of ``rewrite`` beyond the generated heads (limits, order)."""
    many = MANY.encode()
    cases = (
        ([many], b"l5d-dtab=/a"), ([BIG.encode(), BIG.encode(), b"s=1"], b"l5d-dtab=/a"), ([b"l5d-dtab=/x, a=1"], b"l5d-dtab=/y"),
        ([b"l5d-dtab=/x, a=1", many], None), ([b"l5d-dtab=" + b"x" * 9000], b"l5d-dtab=/y"), ([b"l5d-dtab=" + b"x" * 9000], None),
    )
    for values, ours in cases:
        head = b"GET / HTTP/1.1\r\nHost: web\r\n" + b"".join(b"baggage: %s\r\n" % v for v in values) + b"\r\n"
        got = _impl.Lane.scan(head, 0, False, VIA, 10, b"host", b"", TRACE, REQID, b"l5d-ctx-dtab: /a\r\n" if ours else b"", 0, b"",
                              (b"l5d-dtab", b"\x00", b"\x00"), False, ours)
        value, dropped = rewrite(values, b"l5d-dtab", ours)
        if dropped:
            assert got[3] is None
        elif value is None:
            assert b"baggage" not in got[3]
        else:
            assert b"\r\nbaggage: " + value + b"\r\n" in got[3]
