"""Dtab overrides carried in the context apps already propagate: W3C ``baggage``, Jaeger's
``uberctx-<key>``, OpenTracing's ``ot-baggage-<key>`` (a router's ``dtabBaggage``, a pyproxy extension).

Apps instrumented with OpenTelemetry (or Jaeger, or OpenTracing) forward these on every outgoing
call without code for it, where most apps drop ``l5d-ctx-*`` headers. A router with ``dtabBaggage``
reads the override from one member (``key``, ``l5d-dtab`` by default) of the first configured
carrier that holds it, when the request carries no ``l5d-dtab``/``l5d-ctx-dtab``, and writes the
effective override back into every configured carrier on the way out (besides ``l5d-ctx-dtab``).

The rules, shared with the lane (``native/src/lane/head.rs``, compared by ``tests/test_diff_lane.py``):

* **Members** (W3C): every ``baggage`` field split on ``,``, each trimmed of spaces and tabs,
  empty ones skipped. A member's key is its text up to the first ``=`` or ``;``, trimmed; it has a
  value when that character is ``=``: the text after it up to the next ``;`` (properties follow),
  trimmed. Keys are compared exactly (case-sensitive, as OpenTelemetry does).
* **Reading**: the raw member texts (W3C) or field values (``uberctx-``/``ot-baggage-``, every
  field of that name) of the first carrier that holds the key are what the route is keyed by
  (:attr:`Found.raw`); :func:`decode` turns them into dtab text: W3C values are percent-decoded
  strictly with ``+`` read as a space (OpenTelemetry's injector writes spaces so; ``+`` is no dtab
  character), Jaeger values percent-decoded (``+`` kept), OpenTracing values taken as they are.
  A member without a value, a bad ``%`` escape, or two members that decode differently is the
  client's fault: :class:`BaggageError` (the router answers 400).
* **Writing** (only when an override is in play: the request carried one, in an ``l5d-*`` field or
  a member of any carrier the listener looks at): every received member of ``key`` is removed;
  with a non-empty override, ``key=<value>`` goes first in ``baggage``, then the other members in
  their order, each kept while the whole holds at most :data:`MAX_MEMBERS` members and
  :data:`MAX_BYTES` bytes (W3C's minimum limits: a member that does not fit is dropped, never the
  header); ``uberctx-<key>`` and ``ot-baggage-<key>`` fields are replaced by ours. The value is
  written percent-encoded where W3C's ``baggage-octet`` forbids the byte (and ``%`` and ``+``).
* **At an edge** (``clearContext``) no member is read; ``key`` is removed from all three carriers
  (the configured key, or ``l5d-dtab`` when the router has no ``dtabBaggage``), the rest kept.

Sans-IO, over header values as bytes.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import PyproxyError

__all__ = [
    "BaggageError",
    "BaggageRules",
    "CARRIERS",
    "DEFAULT_KEY",
    "Found",
    "MAX_BYTES",
    "MAX_MEMBERS",
    "W3C",
    "JAEGER",
    "OT",
    "decode",
    "encode_value",
    "find",
    "member_key",
    "members",
    "rewrite",
]

#: Carrier ids (the lane uses the same numbers), by their configured names.
W3C, JAEGER, OT = 0, 1, 2
CARRIERS: Dict[str, int] = {"baggage": W3C, "uberctx": JAEGER, "ot-baggage": OT}
CARRIER_NAMES = {v: k for k, v in CARRIERS.items()}
DEFAULT_KEY = "l5d-dtab"
#: W3C baggage: implementations must propagate at least 64 members and 8,192 bytes.
MAX_MEMBERS = 64
MAX_BYTES = 8192

_OWS = b" \t"
_HEX = b"0123456789abcdefABCDEF"
# W3C baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E; '%' is written escaped too, and
# '+' (which OpenTelemetry decodes as a space)
_PLAIN = frozenset(c for c in range(0x21, 0x7F) if c not in b'",;\\%+')


class BaggageError(PyproxyError):
    """A baggage member named for the override that does not read (the router answers 400)."""


class Found(NamedTuple):
    """The override member of one carrier: which carrier, and its raw texts as received."""

    carrier: int
    raw: Tuple[bytes, ...]


class BaggageRules:
    """How one listener treats the carriers: the member's key, the carriers read (in order: the first
    holding the key wins), the carriers written, and the fields taken out of the request
    (``fields``: lower-case name -> carrier id)."""

    __slots__ = ("key", "read", "write", "fields", "jaeger_field", "ot_field")

    def __init__(self, key: str, read: Sequence[int], write: Sequence[int], capture: Sequence[int]) -> None:
        self.key = key.encode("latin-1")
        self.read = tuple(read)
        self.write = tuple(write)
        self.jaeger_field = b"uberctx-" + self.key.lower()
        self.ot_field = b"ot-baggage-" + self.key.lower()
        names = {W3C: b"baggage", JAEGER: self.jaeger_field, OT: self.ot_field}
        self.fields: Dict[bytes, int] = {names[c]: c for c in sorted(set(capture))}

    @classmethod
    def of(cls, key: Optional[str], carriers: Sequence[str], edge: bool) -> Optional["BaggageRules"]:
        """A listener's rules: ``key``/``carriers`` from its router's ``dtabBaggage`` (None: not
        configured); at an edge nothing is read and ``key`` (or the default) leaves every carrier."""
        ids = [CARRIERS[c] for c in carriers]
        if edge:
            return cls(key or DEFAULT_KEY, (), ids, (W3C, JAEGER, OT))
        if key is None:
            return None
        return cls(key, ids, ids, ids)

    def fixed_fields(self, value: bytes) -> List[Tuple[bytes, bytes]]:
        """The ``uberctx-``/``ot-baggage-`` fields written for a non-empty override ``value``."""
        out = []
        if JAEGER in self.write:
            out.append((b"uberctx-" + self.key, encode_value(value)))
        if OT in self.write:
            out.append((b"ot-baggage-" + self.key, value))
        return out

    def member(self, value: bytes) -> Optional[bytes]:
        """The W3C member written for a non-empty override ``value`` (None: W3C is not written)."""
        return self.key + b"=" + encode_value(value) if W3C in self.write else None


def members(values: Sequence[bytes]) -> List[bytes]:
    """The list members of ``baggage`` field values, trimmed, empty ones skipped."""
    out = []
    for v in values:
        for m in v.split(b","):
            m = m.strip(_OWS)
            if m:
                out.append(m)
    return out


def _split(member: bytes) -> Tuple[bytes, Optional[bytes]]:
    """``(key, value or None)`` of one trimmed member."""
    eq, semi = member.find(b"="), member.find(b";")
    cut = min(i for i in (eq, semi, len(member)) if i >= 0)
    key = member[:cut].strip(_OWS)
    if cut == eq:
        return key, member[cut + 1 :].split(b";", 1)[0].strip(_OWS)
    return key, None


def member_key(member: bytes) -> bytes:
    return _split(member)[0]


def find(carried: Dict[int, List[bytes]], rules: BaggageRules, order: Sequence[int]) -> Optional[Found]:
    """The override member of the first carrier in ``order`` that holds ``rules.key``.

    ``carried``: the captured field values by carrier id (as :func:`~.headers.scan_request` returns).
    """
    key = rules.key
    for c in order:
        values = carried.get(c)
        if not values:
            continue
        if c == W3C:
            raw = tuple(m for m in members(values) if _split(m)[0] == key)
            if raw:
                return Found(W3C, raw)
        else:
            return Found(c, tuple(values))
    return None


def holds(carried: Dict[int, List[bytes]], rules: BaggageRules) -> bool:
    """Whether any captured carrier holds the override member."""
    return find(carried, rules, (W3C, JAEGER, OT)) is not None


def _unescape(raw: bytes, plus: bool) -> bytes:
    if b"%" not in raw and not (plus and b"+" in raw):
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x25:  # %
            if i + 2 >= n:
                raise BaggageError("bad percent-encoding")
            hi, lo = raw[i + 1], raw[i + 2]
            if hi not in _HEX or lo not in _HEX:
                raise BaggageError("bad percent-encoding")
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(0x20 if plus and c == 0x2B else c)
        i += 1
    return bytes(out)


def decode(found: Found, key: bytes) -> bytes:
    """The override text of a found member (see the module docstring).

    Raises:
        BaggageError: no value, a bad escape, or members that disagree.
    """
    what = f"{CARRIER_NAMES[found.carrier]} member {key.decode('latin-1')}"
    texts = set()
    for raw in found.raw:
        if found.carrier == W3C:
            value = _split(raw)[1]
            if value is None:
                raise BaggageError(f"{what}: missing '='")
        else:
            value = raw.strip(_OWS)
        try:
            texts.add(value if found.carrier == OT else _unescape(value, found.carrier == W3C))
        except BaggageError as exc:
            raise BaggageError(f"{what}: {exc}") from None
    if len(texts) > 1:
        raise BaggageError(f"{what}: duplicated with different values")
    return texts.pop()


def encode_value(value: bytes) -> bytes:
    """``value`` with every byte outside W3C's ``baggage-octet`` (and ``%``, ``+``) percent-encoded."""
    if all(c in _PLAIN for c in value):
        return value
    return b"".join(bytes((c,)) if c in _PLAIN else b"%%%02X" % c for c in value)


def rewrite(values: Sequence[bytes], key: bytes, ours: Optional[bytes]) -> Tuple[Optional[bytes], int]:
    """The ``baggage`` value sent on: the received members without ``key``'s, ``ours`` (a whole
    member) first, within W3C's limits. Returns ``(value or None when no member is left, members
    dropped for the limits)``."""
    kept: List[bytes] = []
    size = 0
    dropped = 0
    if ours is not None:
        if len(ours) <= MAX_BYTES:
            kept.append(ours)
            size = len(ours)
        else:
            dropped += 1
    for m in members(values):
        if _split(m)[0] == key:
            continue
        extra = len(m) + (1 if kept else 0)
        if len(kept) < MAX_MEMBERS and size + extra <= MAX_BYTES:
            kept.append(m)
            size += extra
        else:
            dropped += 1
    return (b",".join(kept) if kept else None), dropped
