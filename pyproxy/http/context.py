"""Per-request context that travels between Linkerd hops: dtab overrides, trace ids, deadlines.

* Dtab overrides (spec §7.2): ``l5d-ctx-dtab`` values, then ``l5d-dtab`` values, each parsed as a whole
  dtab and concatenated; the request binds with ``router dtab ++ ctx ++ user``. Parsing is cached per
  header text (:class:`OverrideCache`), because the same override arrives on every request of a
  developer's session.
* ``l5d-ctx-trace``: base64 of Finagle's 32-byte TraceId (span, parent, trace, flags, big-endian).
* ``l5d-ctx-deadline``: ``"<timestamp_ns> <deadline_ns>"``; several values combine to the strictest.

Sans-IO: time and randomness come in as arguments.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

from ..naming.dtab import Dtab

__all__ = ["OverrideCache", "TraceId", "parse_deadline", "format_deadline", "parse_sample"]

_TRACE = struct.Struct(">QQQQ")
# Finagle's Flags bits (com.twitter.finagle.tracing.Flags): Debug 1, SamplingKnown 2, Sampled 4; a
# TraceId whose ``sampled`` is known is serialised with SamplingKnown (| Sampled when true).
_SAMPLED, _SAMPLING_KNOWN, _DEBUG = 1 << 2, 1 << 1, 1 << 0


class OverrideCache:
    """Parsed ``l5d-ctx-dtab`` + ``l5d-dtab`` overrides, keyed by the raw header values (LRU)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._entries: "OrderedDict[Tuple[Tuple[bytes, ...], Tuple[bytes, ...]], Dtab]" = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, ctx: Sequence[bytes], user: Sequence[bytes]) -> Dtab:
        """The local dtab ``ctx ++ user``.

        Raises:
            DtabError: a value does not parse (the request is answered 400 with this message).
        """
        key = (tuple(ctx), tuple(user))
        d = self._entries.get(key)
        if d is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return d
        self.misses += 1
        d = Dtab()
        for value in (*ctx, *user):
            d = d.concat(Dtab.read(value.decode("latin-1")))
        self._entries[key] = d
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return d


class TraceId:
    """Finagle's TraceId: 64-bit span, parent and trace ids plus flags."""

    __slots__ = ("span_id", "parent_id", "trace_id", "flags")

    def __init__(self, span_id: int, parent_id: int, trace_id: int, flags: int = 0) -> None:
        self.span_id, self.parent_id, self.trace_id, self.flags = span_id, parent_id, trace_id, flags

    @classmethod
    def root(cls, draw: int) -> "TraceId":
        """A new trace whose span, parent and trace ids are all ``draw`` (a random 64-bit int)."""
        return cls(draw, draw, draw)

    @classmethod
    def from_header(cls, value: bytes) -> Optional["TraceId"]:
        """Decode ``l5d-ctx-trace``; None when it is not a valid 32- (or 40-) byte TraceId."""
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) not in (32, 40):
            return None
        return cls(*_TRACE.unpack_from(raw))

    def child(self, draw: int) -> "TraceId":
        """The id of a call made on behalf of this span: same trace, this span as parent."""
        return TraceId(draw, self.span_id, self.trace_id, self.flags)

    def header(self) -> bytes:
        return base64.b64encode(_TRACE.pack(self.span_id, self.parent_id, self.trace_id, self.flags))

    @property
    def reqid(self) -> bytes:
        """``l5d-reqid``: the root trace id in hex, the same on every hop of one call graph."""
        return b"%016x" % self.trace_id

    def with_sampled(self, sampled: bool) -> "TraceId":
        flags = (self.flags | _SAMPLING_KNOWN) & ~_SAMPLED
        return TraceId(self.span_id, self.parent_id, self.trace_id, flags | (_SAMPLED if sampled else 0))

    @property
    def sampled(self) -> Optional[bool]:
        if not self.flags & _SAMPLING_KNOWN:
            return None
        return bool(self.flags & _SAMPLED)


def parse_deadline(values: Sequence[bytes]) -> Optional[Tuple[int, int]]:
    """The strictest ``(timestamp_ns, deadline_ns)`` of the valid ``l5d-ctx-deadline`` values, or None."""
    best: Optional[Tuple[int, int]] = None
    for v in values:
        parts = v.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            continue
        ts, dl = int(parts[0]), int(parts[1])
        if best is None or dl < best[1]:
            best = (max(ts, best[0]) if best else ts, dl)
    return best


def format_deadline(timestamp_ns: int, deadline_ns: int) -> bytes:
    return b"%d %d" % (timestamp_ns, deadline_ns)


def parse_sample(value: Optional[bytes]) -> Optional[float]:
    """``l5d-sample`` as a rate clamped to [0, 1]; None when absent or not a number."""
    if value is None:
        return None
    try:
        rate = float(value)
    except ValueError:
        return None
    if rate != rate:
        return None
    return min(1.0, max(0.0, rate))
