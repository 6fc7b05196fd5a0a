"""Overrides carried in baggage (pyproxy/http/baggage.py) and which override a request carries
(pyproxy/routing/overrides.py), sans-IO.

The carrier rules are checked against what OpenTelemetry's own propagators read and write (the
W3C ``baggage`` propagator and Jaeger's, from PyPI): a value pyproxy writes is read back by them as
the same text, and what they write is read by pyproxy as the same text.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyproxy.errors import DtabError
from pyproxy.http import headers as h
from pyproxy.http.baggage import (
    JAEGER, MAX_BYTES, MAX_MEMBERS, OT, W3C, BaggageError, BaggageRules, Found, decode, encode_value, find, member_key,
    members, rewrite,
)
from pyproxy.http.context import OverrideCache
from pyproxy.metrics import Registry
from pyproxy.routing.overrides import OverrideCounts, OverrideRefused, OverrideRules, resolve

KEY = b"l5d-dtab"
ALL = ("baggage", "uberctx", "ot-baggage")


# === members ===


def test_members_are_split_on_commas_and_trimmed() -> None:
    assert members([b" a=1 ,\tb=2;p", b",,", b"c=3"]) == [b"a=1", b"b=2;p", b"c=3"]


@pytest.mark.parametrize(
    "member, key",
    [(b"l5d-dtab=/a=>/b", KEY), (b"l5d-dtab =/a", KEY), (b"l5d-dtab;p=1", KEY), (b"l5d-dtab", KEY), (b"x=l5d-dtab", b"x"), (b"=v", b"")],
)
def test_a_members_key_ends_at_the_first_equals_or_semicolon(member: bytes, key: bytes) -> None:
    assert member_key(member) == key


# === reading ===


def _found(carrier: int, *raw: bytes) -> Found:
    return Found(carrier, raw)


@pytest.mark.parametrize(
    "found, text",
    [
        (_found(W3C, b"l5d-dtab=/a=>/b"), b"/a=>/b"),
        (_found(W3C, b"l5d-dtab = /a=>/b ; prop=1"), b"/a=>/b"),
        (_found(W3C, b"l5d-dtab=%2Fa%20%3D%3E%20%2Fb%3B"), b"/a => /b;"),
        (_found(W3C, b"l5d-dtab=/a+=>+/b"), b"/a => /b"),  # OpenTelemetry writes spaces as '+'
        (_found(W3C, b"l5d-dtab=/a=>/b", b"l5d-dtab=%2Fa=>/b"), b"/a=>/b"),  # duplicates that agree
        (_found(JAEGER, b"%2Fa%3D%3E%2Fb"), b"/a=>/b"),
        (_found(JAEGER, b"/a+"), b"/a+"),  # Jaeger's decoding keeps '+'
        (_found(OT, b"/a=>/b%20"), b"/a=>/b%20"),  # OpenTracing values are taken as they are
    ],
)
def test_decoding_a_member(found: Found, text: bytes) -> None:
    assert decode(found, KEY) == text


@pytest.mark.parametrize(
    "found, message",
    [
        (_found(W3C, b"l5d-dtab"), "baggage member l5d-dtab: missing '='"),
        (_found(W3C, b"l5d-dtab;p=1"), "baggage member l5d-dtab: missing '='"),
        (_found(W3C, b"l5d-dtab=/a%2"), "baggage member l5d-dtab: bad percent-encoding"),
        (_found(W3C, b"l5d-dtab=/a%zz"), "baggage member l5d-dtab: bad percent-encoding"),
        (_found(JAEGER, b"%"), "uberctx member l5d-dtab: bad percent-encoding"),
        (_found(W3C, b"l5d-dtab=/a=>/b", b"l5d-dtab=/a=>/c"), "baggage member l5d-dtab: duplicated with different values"),
        (_found(OT, b"/a", b"/b"), "ot-baggage member l5d-dtab: duplicated with different values"),
    ],
)
def test_a_member_that_does_not_read_is_the_clients_fault(found: Found, message: str) -> None:
    with pytest.raises(BaggageError) as exc:
        decode(found, KEY)
    assert str(exc.value) == message


def test_the_first_configured_carrier_holding_the_key_wins() -> None:
    rules = BaggageRules("l5d-dtab", (JAEGER, W3C), (JAEGER, W3C), (JAEGER, W3C))
    both = {W3C: [b"a=1, l5d-dtab=/w"], JAEGER: [b"/j"]}
    assert find(both, rules, rules.read) == Found(JAEGER, (b"/j",))
    assert find({W3C: [b"a=1, l5d-dtab=/w"]}, rules, rules.read) == Found(W3C, (b"l5d-dtab=/w",))
    assert find({W3C: [b"a=1, l5d-dtabx=/w"]}, rules, rules.read) is None


# === writing ===

OCTETS = st.binary(max_size=60)


@given(OCTETS)
def test_an_encoded_value_is_w3c_baggage_octets_and_decodes_back(value: bytes) -> None:
    enc = encode_value(value)
    assert all(0x21 <= c <= 0x7E and c not in b'",;\\' for c in enc)
    assert decode(Found(W3C, (b"k=" + enc,)), b"k") == value
    assert decode(Found(JAEGER, (enc,)), b"k") == value


def test_rewrite_puts_ours_first_and_keeps_the_others_in_order() -> None:
    value, dropped = rewrite([b"a=1, l5d-dtab=/old", b"b=2;p"], KEY, b"l5d-dtab=/new")
    assert (value, dropped) == (b"l5d-dtab=/new,a=1,b=2;p", 0)
    assert rewrite([b"l5d-dtab=/old"], KEY, None) == (None, 0)


def test_rewrite_keeps_64_members_and_8192_bytes_dropping_what_does_not_fit() -> None:
    many = [b",".join(b"m%d=%d" % (i, i) for i in range(70))]
    value, dropped = rewrite(many, KEY, b"l5d-dtab=/x")
    assert value is not None and len(members([value])) == MAX_MEMBERS and dropped == 7
    assert members([value])[:2] == [b"l5d-dtab=/x", b"m0=0"]
    big = b"big=" + b"x" * 5000
    value, dropped = rewrite([big, big, b"small=1"], KEY, b"l5d-dtab=/x")
    # the second big member does not fit; the small one after it still does
    assert (value, dropped) == (b"l5d-dtab=/x," + big + b",small=1", 1)
    assert len(value) <= MAX_BYTES


@given(st.lists(st.binary(min_size=1, max_size=300).map(lambda b: b"k" + b.replace(b",", b"")), max_size=90))
def test_rewrite_never_exceeds_the_limits_and_drops_only_what_does_not_fit(raw: List[bytes]) -> None:
    value, dropped = rewrite([b",".join(raw)], KEY, None)
    kept = members([value]) if value else []
    assert len(kept) <= MAX_MEMBERS and len(value or b"") <= MAX_BYTES
    assert len(kept) + dropped == len(members([b",".join(raw)]))


# === OpenTelemetry's propagators read what pyproxy writes, and pyproxy reads what they write ===

@pytest.mark.parametrize("dtab", ["/host/world=>/srv/world-v2", "/a => /b; /c=>/$/inet/127.1/80", "/x=>/y%25z"])
def test_otel_reads_the_member_pyproxy_writes_and_the_other_way_round(dtab: str) -> None:
    from opentelemetry import baggage, trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.context import Context
    from opentelemetry.propagators.jaeger import JaegerPropagator

    p = W3CBaggagePropagator()
    ours = b"l5d-dtab=" + encode_value(dtab.encode())
    ctx = p.extract({"baggage": "a=1," + ours.decode()})
    assert baggage.get_baggage("l5d-dtab", ctx) == dtab and baggage.get_baggage("a", ctx) == "1"
    carrier: Dict[str, str] = {}
    p.inject(carrier, baggage.set_baggage("l5d-dtab", dtab, Context()))
    found = find({W3C: [carrier["baggage"].encode()]}, BaggageRules("l5d-dtab", (W3C,), (W3C,), (W3C,)), (W3C,))
    assert found is not None and decode(found, KEY) == dtab.encode()
    # Jaeger: uberctx-<key>, percent-encoded both ways (read only beside a valid uber-trace-id)
    j = JaegerPropagator()
    span = trace.NonRecordingSpan(trace.SpanContext(10, 11, is_remote=True, trace_flags=trace.TraceFlags(1)))
    jaeger: Dict[str, str] = {}
    j.inject(jaeger, baggage.set_baggage("l5d-dtab", dtab, trace.set_span_in_context(span)))
    assert decode(Found(JAEGER, (jaeger["uberctx-l5d-dtab"].encode(),)), KEY) == dtab.encode()
    ctx = j.extract({"uber-trace-id": jaeger["uber-trace-id"], "uberctx-l5d-dtab": encode_value(dtab.encode()).decode()})
    assert baggage.get_baggage("l5d-dtab", ctx) == dtab


# === which override a request carries (routing/overrides.py) ===


def _rules(edge: bool = False, carriers=ALL, key: Optional[str] = "l5d-dtab", signed=None) -> OverrideRules:
    return OverrideRules(edge, BaggageRules.of(key, carriers, edge), signed)


def _ctx(rules: OverrideRules, fields: List[tuple]) -> dict:
    _, ctx, _ = h.scan_request(fields, (), edge=rules.edge, capture=rules.capture)
    return ctx


def _counts() -> OverrideCounts:
    return OverrideCounts(Registry().scope("rt", "r", "overrides"))


def _resolve(rules: OverrideRules, fields: List[tuple], counts: Optional[OverrideCounts] = None, notes=None):
    return resolve(rules, _ctx(rules, fields), OverrideCache(), 1e9, counts, notes)


def test_precedence_l5d_dtab_then_l5d_ctx_dtab_then_baggage() -> None:
    r = _rules()
    bag = (b"baggage", b"l5d-dtab=/b=>/bag")
    assert _resolve(r, [bag]).local.show == "/b=>/bag"
    assert _resolve(r, [bag, (b"l5d-ctx-dtab", b"/c=>/ctx")]).local.show == "/c=>/ctx"
    both = _resolve(r, [bag, (b"l5d-ctx-dtab", b"/c=>/ctx"), (b"l5d-dtab", b"/u=>/user")])
    assert both.local.show == "/c=>/ctx;/u=>/user"
    # the member that lost is replaced by the effective override, in every carrier
    assert both.carried == [
        (b"uberctx-l5d-dtab", b"/c=>/ctx%3B/u=>/user"), (b"ot-baggage-l5d-dtab", b"/c=>/ctx;/u=>/user"),
        (b"baggage", b"l5d-dtab=/c=>/ctx%3B/u=>/user"),
    ]
    assert _resolve(r, [(b"baggage", b"a=1")]).local.show == ""


def test_a_request_without_an_override_keeps_its_baggage_as_it_came() -> None:
    got = _resolve(_rules(), [(b"Baggage", b"a=1 , b=2"), (b"baggage", b"c=3")])
    assert (got.local.show, got.extra, got.carried) == ("", b"", [(b"baggage", b"a=1 , b=2"), (b"baggage", b"c=3")])


def test_what_keys_the_lane_route_is_the_raw_member_of_the_winning_carrier() -> None:
    got = _resolve(_rules(carriers=("uberctx", "baggage")), [(b"baggage", b"l5d-dtab=/a=>/b"), (b"uberctx-l5d-dtab", b"/a=>/c")])
    assert got.extra == b"b1/a=>/c" and got.local.show == "/a=>/c"
    got = _resolve(_rules(), [(b"baggage", b"x=1, l5d-dtab=/a=>/b;p")])
    assert got.extra == b"b0l5d-dtab=/a=>/b;p"


def test_a_bad_member_is_400_and_counted_but_a_bad_dtab_is_finagles_400() -> None:
    counts = _counts()
    with pytest.raises(OverrideRefused) as exc:
        _resolve(_rules(), [(b"baggage", b"l5d-dtab=%G1")], counts)
    assert exc.value.status == 400 and "bad percent-encoding" in str(exc.value)
    assert counts.scope.registry.counter(("rt", "r", "overrides", "baggage", "malformed")).value == 1
    with pytest.raises(DtabError):
        _resolve(_rules(), [(b"baggage", b"l5d-dtab=/a=>")])
    # a bad member that l5d-dtab overrules is not read at all: replaced on the way out
    got = _resolve(_rules(), [(b"baggage", b"l5d-dtab=%G1,a=1"), (b"l5d-dtab", b"/a=>/b")])
    assert got.local.show == "/a=>/b" and (b"baggage", b"l5d-dtab=/a=>/b,a=1") in got.carried


def test_dropped_members_are_counted() -> None:
    counts = _counts()
    many = b",".join(b"m%d=1" % i for i in range(64))
    got = _resolve(_rules(carriers=("baggage",)), [(b"baggage", many), (b"l5d-dtab", b"/a=>/b")], counts)
    assert len(members([got.carried[0][1]])) == 64
    assert counts.scope.registry.counter(("rt", "r", "overrides", "baggage", "dropped")).value == 1


@pytest.mark.parametrize("key", [None, "l5d-dtab"])
def test_an_edge_removes_the_member_from_every_carrier_and_keeps_the_rest(key: Optional[str]) -> None:
    counts = _counts()
    r = _rules(edge=True, key=key, carriers=ALL if key else ())
    fields = [
        (b"baggage", b"a=1, l5d-dtab=/s=>/evil"), (b"UBERCTX-L5D-DTAB", b"/s=>/evil"), (b"ot-baggage-l5d-dtab", b"/s=>/evil"),
        (b"uberctx-other", b"1"), (b"l5d-dtab", b"/s=>/evil"),
    ]
    kept, ctx, _ = h.scan_request(fields, (), edge=True, capture=r.capture)
    got = resolve(r, ctx, OverrideCache(), 1e9, counts)
    assert got.local.show == "" and got.carried == [(b"baggage", b"a=1")]
    assert kept == [(b"uberctx-other", b"1")]
    assert counts.scope.registry.counter(("rt", "r", "overrides", "baggage", "scrubbed")).value == 1


def test_notes_say_why_each_override_was_used_or_not() -> None:
    notes: list = []
    _resolve(_rules(), [(b"baggage", b"l5d-dtab=/b=>/bag"), (b"l5d-dtab", b"/u=>/user")], notes=notes)
    assert [(n["source"], n["used"]) for n in notes] == [("l5d-dtab", True), ("baggage", False)]
    assert "precedence" in notes[1]["why"]
