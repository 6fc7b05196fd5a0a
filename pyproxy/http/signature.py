"""Signed dtab overrides: the ``l5d-dtab-sig`` field, its HMAC, and the key file's format.

An edge (``clearContext``) with ``signedOverrides`` accepts the ``l5d-dtab`` of a request that also
carries a valid signature, made by someone holding one of its keys:

    l5d-dtab: /host/world => /srv/world-v2
    l5d-dtab-sig: kid=dev-1; exp=1767225600; sig=3q2+7w...=

* ``l5d-dtab-sig`` is three parameters separated by ``;`` (spaces or tabs around each allowed), in
  any order, each exactly once, and nothing else: ``kid`` the key id (1 to 64 of
  ``A-Z a-z 0-9 . _ -``), ``exp`` the expiry in Unix seconds (1 to 12 ASCII digits), ``sig`` the
  signature: standard base64 (RFC 4648 §4, ``+`` and ``/``, with its ``=`` padding) of the 32-byte
  HMAC-SHA256 below.
* The HMAC is keyed with the key named ``kid`` and taken over the bytes
  ``l5d-dtab-sig/v1`` LF ``<kid>`` LF ``<exp>`` LF ``<dtab>``, where ``kid`` and ``exp`` are
  exactly as written in the field and ``dtab`` is the ``l5d-dtab`` field's value without its
  leading and trailing spaces and tabs (exactly one ``l5d-dtab`` field, exactly one
  ``l5d-dtab-sig`` field).
* The signature is valid until ``exp`` plus the server's ``clockSkewMs``; it is compared in constant
  time (:func:`hmac.compare_digest`).
* The key file holds one key per line, ``<kid> <base64 key>`` (standard base64, at least 16 bytes
  once decoded); blank lines and lines starting with ``#`` are ignored; a kid appears once.
  Several keys are valid at once, so a key is rotated by adding the new one, moving the signers
  over, then removing the old one.

Verdicts (:func:`verify`): ``valid``, or why not: ``unsigned`` (an ``l5d-dtab`` without signature),
``malformed`` (a signature without ``l5d-dtab``, several fields, or a field that does not read),
``unknown_key``, ``expired``, ``tampered`` (the HMAC does not match: the dtab, kid or exp changed,
or the wrong key). Sans-IO: the clock is an argument.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

__all__ = [
    "SIG",
    "VERDICTS",
    "Keyring",
    "KeyringError",
    "Signature",
    "parse_signature",
    "sign",
    "signed_bytes",
    "verify",
]

SIG = b"l5d-dtab-sig"
VALID, UNSIGNED, MALFORMED, UNKNOWN_KEY, EXPIRED, TAMPERED = "valid", "unsigned", "malformed", "unknown_key", "expired", "tampered"
#: Every verdict but ``valid``, in the order metrics list them.
VERDICTS = (UNSIGNED, MALFORMED, UNKNOWN_KEY, EXPIRED, TAMPERED)
#: What each verdict means, for the playground and the 403's body.
WHY = {
    VALID: "signature valid",
    UNSIGNED: "the override carries no l5d-dtab-sig",
    MALFORMED: "l5d-dtab-sig does not read (or there is none, or several, of l5d-dtab and l5d-dtab-sig)",
    UNKNOWN_KEY: "l5d-dtab-sig names a key this server does not hold",
    EXPIRED: "l5d-dtab-sig has expired",
    TAMPERED: "l5d-dtab-sig does not match the override (changed, or signed with another key)",
}

_KID = re.compile(rb"[A-Za-z0-9._-]{1,64}\Z")
_EXP = re.compile(rb"[0-9]{1,12}\Z")
_B64 = re.compile(rb"[A-Za-z0-9+/]{43}=\Z")  # 32 bytes, standard alphabet, padded
_CONTEXT = b"l5d-dtab-sig/v1"
_OWS = b" \t"
MIN_KEY_BYTES = 16


class Signature(NamedTuple):
    kid: bytes
    exp: bytes
    mac: bytes  # the 32 bytes of the HMAC


class KeyringError(ValueError):
    """A key file that does not read (its line number in the message)."""


class Keyring:
    """The keys of one key file, by id."""

    __slots__ = ("keys",)

    def __init__(self, keys: Optional[Dict[bytes, bytes]] = None) -> None:
        self.keys = dict(keys or {})

    @classmethod
    def parse(cls, text: str) -> "Keyring":
        """Read a key file's text.

        Raises:
            KeyringError: ``line 3: ...`` for the first line that does not read.
        """
        keys: Dict[bytes, bytes] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise KeyringError(f"line {n}: expected '<kid> <base64 key>'")
            kid, secret = parts[0].encode("latin-1", "replace"), parts[1]
            if not _KID.match(kid):
                raise KeyringError(f"line {n}: a key id is 1 to 64 of A-Z a-z 0-9 . _ -")
            if kid in keys:
                raise KeyringError(f"line {n}: key id {kid.decode()} appears twice")
            try:
                key = base64.b64decode(secret, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(f"line {n}: the key is not base64") from None
            if len(key) < MIN_KEY_BYTES:
                raise KeyringError(f"line {n}: the key has {len(key)} bytes, at least {MIN_KEY_BYTES} are needed")
            keys[kid] = key
        return cls(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def first(self) -> Tuple[bytes, bytes]:
        """The file's first key ``(kid, key)`` (what ``pyproxy stage --sign`` uses by default)."""
        for kid, key in self.keys.items():
            return kid, key
        raise KeyringError("no key in the file")


def parse_signature(value: bytes) -> Optional[Signature]:
    """An ``l5d-dtab-sig`` value read, or None when it does not read."""
    params: Dict[bytes, bytes] = {}
    for part in value.split(b";"):
        name, eq, v = part.strip(_OWS).partition(b"=")
        if not eq or name not in (b"kid", b"exp", b"sig") or name in params:
            return None
        params[name] = v
    if len(params) != 3:
        return None
    kid, exp, sig = params[b"kid"], params[b"exp"], params[b"sig"]
    if not (_KID.match(kid) and _EXP.match(exp) and _B64.match(sig)):
        return None
    return Signature(kid, exp, base64.b64decode(sig))


def signed_bytes(kid: bytes, exp: bytes, dtab: bytes) -> bytes:
    """What the HMAC is taken over."""
    return b"\n".join((_CONTEXT, kid, exp, dtab.strip(_OWS)))


def _mac(key: bytes, message: bytes) -> bytes:
    # imported when first used: hashlib links OpenSSL, which a proxy without signed overrides does
    # not load (runtime/footprint.py)
    import hashlib
    import hmac

    return hmac.new(key, message, hashlib.sha256).digest()


def sign(key: bytes, kid: bytes, exp: int, dtab: bytes) -> bytes:
    """The ``l5d-dtab-sig`` value for ``dtab`` (as sent in ``l5d-dtab``), valid until ``exp``."""
    e = b"%d" % exp
    mac = _mac(key, signed_bytes(kid, e, dtab))
    return b"kid=%s; exp=%s; sig=%s" % (kid, e, base64.b64encode(mac))


def verify(keyring: Keyring, dtabs: Sequence[bytes], sigs: Sequence[bytes], now: float, skew: float) -> Tuple[str, float]:
    """The verdict on one request's ``l5d-dtab`` values and ``l5d-dtab-sig`` values, and, when
    valid, until when (Unix seconds, skew included)."""
    if not sigs:
        return UNSIGNED, 0.0
    if len(sigs) != 1 or len(dtabs) != 1:
        return MALFORMED, 0.0
    sig = parse_signature(sigs[0])
    if sig is None:
        return MALFORMED, 0.0
    key = keyring.keys.get(sig.kid)
    if key is None:
        return UNKNOWN_KEY, 0.0
    import hmac

    mac = _mac(key, signed_bytes(sig.kid, sig.exp, dtabs[0]))
    if not hmac.compare_digest(mac, sig.mac):
        return TAMPERED, 0.0
    until = int(sig.exp) + skew
    if now > until:
        return EXPIRED, 0.0
    return VALID, until
