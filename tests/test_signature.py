"""Signed overrides, sans-IO: the ``l5d-dtab-sig`` format, the HMAC, the verdicts, the key file
(pyproxy/http/signature.py, pyproxy/routing/keyfile.py), and the edge's decision
(pyproxy/routing/overrides.py). The signature format is checked against an independent
computation with the standard library, as the README documents it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyproxy.http import headers as h
from pyproxy.http.context import OverrideCache
from pyproxy.http.signature import Keyring, KeyringError, parse_signature, sign, verify
from pyproxy.metrics import Registry
from pyproxy.routing.keyfile import KeyFile
from pyproxy.routing.overrides import OverrideCounts, OverrideRefused, OverrideRules, SignedOverrides, resolve

K1, K2 = b"1" * 32, b"2" * 24
RING = Keyring({b"dev-1": K1, b"dev-2": K2})
DTAB = b"/host/world => /srv/world-v2"
NOW = 1_767_225_600.0


def test_the_signature_is_the_documented_hmac() -> None:
    value = sign(K1, b"dev-1", 1767229200, DTAB)
    message = b"l5d-dtab-sig/v1\ndev-1\n1767229200\n/host/world => /srv/world-v2"
    mac = base64.b64encode(hmac.new(K1, message, hashlib.sha256).digest())
    assert value == b"kid=dev-1; exp=1767229200; sig=" + mac


@pytest.mark.parametrize(
    "value",
    [
        b"kid=dev-1;exp=1767229200;sig=%s",
        b"  sig=%s ;\texp=1767229200 ; kid=dev-1 ",  # any order, spaces and tabs around parameters
    ],
)
def test_parameters_in_any_order_with_spaces(value: bytes) -> None:
    mac = sign(K1, b"dev-1", 1767229200, DTAB).split(b"sig=")[1]
    assert verify(RING, [DTAB], [value % mac], NOW, 0) == ("valid", 1767229200.0)


@pytest.mark.parametrize(
    "value",
    [
        b"kid=dev-1; exp=1767229200",  # no sig
        b"kid=dev-1; exp=1767229200; sig=AAAA; sig=AAAA",  # twice
        b"kid=dev-1; exp=1767229200; sig=" + b"A" * 43 + b"=; v=1",  # an unknown parameter
        b"kid=dev 1; exp=1767229200; sig=" + b"A" * 43 + b"=",  # a space in the kid
        b"kid=dev-1; exp=-5; sig=" + b"A" * 43 + b"=",
        b"kid=dev-1; exp=1234567890123; sig=" + b"A" * 43 + b"=",  # 13 digits
        b"kid=dev-1; exp=1767229200; sig=" + b"A" * 42 + b"==",  # 31 bytes
        b"kid=dev-1; exp=1767229200; sig=" + b"-" * 43 + b"=",  # base64url is not base64
        b"kid=dev-1; exp=1767229200; sig=not base64 at all!",
        b"KID=dev-1; exp=1767229200; sig=" + b"A" * 43 + b"=",
        b"",
    ],
)
def test_a_signature_that_does_not_read_is_malformed(value: bytes) -> None:
    assert parse_signature(value) is None
    assert verify(RING, [DTAB], [value], NOW, 30)[0] == "malformed"


def test_verdicts() -> None:
    good = sign(K1, b"dev-1", int(NOW) + 60, DTAB)
    assert verify(RING, [DTAB], [good], NOW, 0) == ("valid", NOW + 60)
    assert verify(RING, [b"  " + DTAB + b"\t"], [good], NOW, 0)[0] == "valid"  # the field's value, trimmed
    assert verify(RING, [DTAB], [], NOW, 0)[0] == "unsigned"
    assert verify(RING, [], [good], NOW, 0)[0] == "malformed"  # a signature of nothing
    assert verify(RING, [DTAB, DTAB], [good], NOW, 0)[0] == "malformed"
    assert verify(RING, [DTAB], [good, good], NOW, 0)[0] == "malformed"
    assert verify(RING, [DTAB + b";/a=>/b"], [good], NOW, 0)[0] == "tampered"
    assert verify(RING, [DTAB], [good.replace(b"dev-1", b"dev-2")], NOW, 0)[0] == "tampered"  # another valid key
    assert verify(RING, [DTAB], [good.replace(b"exp=%d" % (NOW + 60), b"exp=%d" % (NOW + 600))], NOW, 0)[0] == "tampered"
    assert verify(RING, [DTAB], [good.replace(b"dev-1", b"dev-9")], NOW, 0)[0] == "unknown_key"
    assert verify(Keyring({b"dev-1": K2}), [DTAB], [good], NOW, 0)[0] == "tampered"


def test_expiry_counts_the_clock_skew() -> None:
    value = sign(K2, b"dev-2", int(NOW), DTAB)
    assert verify(RING, [DTAB], [value], NOW + 29.9, 30)[0] == "valid"
    assert verify(RING, [DTAB], [value], NOW + 30.1, 30)[0] == "expired"
    assert verify(RING, [DTAB], [value], NOW + 0.1, 0)[0] == "expired"


@given(st.binary(min_size=1, max_size=80).filter(lambda b: b.strip(b" \t") == b and b"\n" not in b), st.integers(0, 10**12 - 1))
def test_any_dtab_text_signs_and_verifies_and_any_change_is_tampered(dtab: bytes, exp: int) -> None:
    value = sign(K1, b"dev-1", exp, dtab)
    assert verify(RING, [dtab], [value], exp - 1, 0)[0] == "valid"
    assert verify(RING, [dtab + b"x"], [value], exp - 1, 0)[0] == "tampered"


# === the key file ===


def test_key_file_format() -> None:
    text = f"# rotation: dev-2 replaces dev-1\n\ndev-1 {base64.b64encode(K1).decode()}\n  dev-2   {base64.b64encode(K2).decode()}  \n"
    assert Keyring.parse(text).keys == {b"dev-1": K1, b"dev-2": K2}


@pytest.mark.parametrize(
    "text, message",
    [
        ("dev-1\n", "line 1: expected '<kid> <base64 key>'"),
        ("dev 1 AAAA\n", "line 1: expected '<kid> <base64 key>'"),
        (f"d/1 {base64.b64encode(K1).decode()}\n", "line 1: a key id is 1 to 64 of A-Z a-z 0-9 . _ -"),
        ("# c\ndev-1 !!!!\n", "line 2: the key is not base64"),
        (f"dev-1 {base64.b64encode(b'short').decode()}\n", "line 1: the key has 5 bytes, at least 16 are needed"),
        (f"a {base64.b64encode(K1).decode()}\na {base64.b64encode(K2).decode()}\n", "line 2: key id a appears twice"),
    ],
)
def test_a_key_file_that_does_not_read(text: str, message: str) -> None:
    with pytest.raises(KeyringError) as exc:
        Keyring.parse(text)
    assert str(exc.value) == message


def test_a_changed_key_file_replaces_the_keys_and_a_bad_or_missing_one_keeps_them() -> None:
    d = tempfile.mkdtemp()
    path = os.path.join(d, "keys")

    def write(text: str, when: int) -> None:
        with open(path, "w") as f:
            f.write(text)
        os.utime(path, ns=(when, when))

    write(f"a {base64.b64encode(K1).decode()}\n", 1_000_000_000)
    kf = KeyFile(path)
    assert kf.load().keys == {b"a": K1}
    assert kf.poll() == (None, None)
    write(f"a {base64.b64encode(K1).decode()}\nb {base64.b64encode(K2).decode()}\n", 2_000_000_000)
    ring, problem = kf.poll()
    assert problem is None and ring is not None and set(ring.keys) == {b"a", b"b"}
    write("b not-base64!\n", 3_000_000_000)
    ring, problem = kf.poll()
    assert ring is None and problem == f"{path}: line 1: the key is not base64; the last keys read stay in use"
    assert kf.poll() == (None, None)  # said once per change
    assert set(kf.keyring.keys) == {b"a", b"b"}  # type: ignore[union-attr]
    os.remove(path)
    ring, problem = kf.poll()
    assert ring is None and problem == f"{path} is gone; the last keys read stay in use"
    assert set(kf.keyring.keys) == {b"a", b"b"}  # type: ignore[union-attr]
    write(f"c {base64.b64encode(K2).decode()}\n", 4_000_000_000)
    ring, problem = kf.poll()
    assert problem is None and ring is not None and set(ring.keys) == {b"c"}
    with pytest.raises(KeyringError, match="cannot read it"):
        KeyFile(os.path.join(d, "absent")).load()


# === the edge's decision ===


def _edge(refuse: bool = False) -> OverrideRules:
    return OverrideRules(True, None, SignedOverrides(RING, 30.0, refuse))


def _decide(rules: OverrideRules, fields: list, counts: OverrideCounts, now: float = NOW):
    _, ctx, _ = h.scan_request(fields, (), edge=True, capture=rules.capture)
    return resolve(rules, ctx, OverrideCache(), now, counts)


def test_an_edge_accepts_a_valid_signature_and_strips_or_refuses_the_rest() -> None:
    counts = OverrideCounts(Registry().scope("o"))
    good = sign(K1, b"dev-1", int(NOW) + 60, DTAB)
    got = _decide(_edge(), [(b"l5d-dtab", DTAB), (b"L5D-Dtab-Sig", good)], counts)
    assert got.local.show == "/host/world=>/srv/world-v2" and got.until == NOW + 60 + 30
    assert got.extra == b"s" + good
    for fields, verdict in (
        ([(b"l5d-dtab", DTAB)], "unsigned"),
        ([(b"l5d-dtab", DTAB), (b"l5d-dtab-sig", b"kid=dev-1; exp=1; sig=%%%")], "malformed"),
        ([(b"l5d-dtab", b"/a=>/b"), (b"l5d-dtab-sig", good)], "tampered"),
    ):
        got = _decide(_edge(), fields, counts)
        assert got.local.show == "" and got.until is None
        with pytest.raises(OverrideRefused) as exc:
            _decide(_edge(refuse=True), fields, counts)
        assert exc.value.status == 403 and str(exc.value).startswith("l5d-dtab refused: ")
        assert counts.scope.registry.counter(("o", "signature", verdict)).value == 2
    got = _decide(_edge(), [(b"l5d-dtab", DTAB), (b"l5d-dtab-sig", good)], counts, NOW + 91)
    assert got.local.show == "" and counts.scope.registry.counter(("o", "signature", "expired")).value == 1
    # l5d-ctx-dtab is never accepted at an edge, signed or not
    got = _decide(_edge(), [(b"l5d-ctx-dtab", DTAB), (b"l5d-dtab-sig", good)], counts)
    assert got.local.show == ""
