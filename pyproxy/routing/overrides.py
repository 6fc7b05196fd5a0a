"""Which dtab override a request carries, as one listener reads it, and what goes on with it.

Inside (no ``clearContext``): ``l5d-dtab`` > ``l5d-ctx-dtab`` > a member of the router's
``dtabBaggage`` carriers (only read when neither ``l5d-*`` field came) > none; the route binds with
``router dtab ++ l5d-ctx-dtab ++ l5d-dtab`` as Linkerd's, or ``router dtab ++ member``. At an edge:
none, except an ``l5d-dtab`` with a valid signature (``signedOverrides``, http/signature.py); the
override member leaves every carrier. The effective override travels on as ``l5d-ctx-dtab`` and in
every configured carrier (http/baggage.py has the carrier rules).

:func:`resolve` is the one place that decides, for :meth:`Router.decide <.router.Router.decide>`
and for the playground's "where will my request go" (which passes ``notes`` to hear why each
override was used or not, and no counters). The lane keys its routes by what decided here: the
``l5d-*`` values, plus :attr:`Resolved.extra` (the raw member that was read, or the signature).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..http import headers as h
from ..http.baggage import W3C, BaggageError, BaggageRules, decode, find, rewrite
from ..http.context import OverrideCache
from ..http.signature import VALID, WHY, Keyring, verify
from ..metrics import Counter, Scope
from ..naming.dtab import Dtab

__all__ = ["OverrideCounts", "OverrideRefused", "OverrideRules", "Resolved", "SignedOverrides", "resolve"]

_EMPTY = Dtab()


class OverrideRefused(Exception):
    """A request answered by the router because of its override: 400 (a baggage member that does
    not read) or 403 (an unsigned or badly signed override at an edge with ``onInvalid: refuse``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OverrideCounts:
    """``rt/<router>/overrides/<what>``: overrides ignored or refused, by why (made on first use)."""

    __slots__ = ("scope", "_counters")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._counters: Dict[str, Counter] = {}

    def add(self, name: str, n: int = 1) -> None:
        c = self._counters.get(name)
        if c is None:
            c = self._counters[name] = self.scope.counter(name)
        c.value += n


class SignedOverrides:
    """An edge's ``signedOverrides``: the keys (replaced whole when the key file changes), the
    clock skew in seconds, and whether an override not validly signed is refused (403) or removed."""

    __slots__ = ("keyring", "skew", "refuse", "path")

    def __init__(self, keyring: Keyring, skew: float, refuse: bool, path: str = "") -> None:
        self.keyring = keyring
        self.skew = skew
        self.refuse = refuse
        self.path = path


class OverrideRules:
    """What one listener does with overrides: an edge or not, its carrier rules, its signature check."""

    __slots__ = ("edge", "baggage", "signed", "capture")

    def __init__(self, edge: bool, baggage: Optional[BaggageRules] = None, signed: Optional[SignedOverrides] = None) -> None:
        self.edge = edge
        self.baggage = baggage
        self.signed = signed if edge else None
        names = set(baggage.fields) if baggage is not None else set()
        if self.signed is not None:
            names |= {h.DTAB, h.DTAB_SIG}
        #: the fields :func:`~pyproxy.http.headers.scan_request` takes into the context for it
        self.capture = frozenset(names) or None


class Resolved:
    """The override of one request: the local dtab, what else keys its route in the lane
    (``extra``), the carrier fields to send on (after ``l5d-ctx-dtab``), and until when a signed
    override is valid (Unix seconds; None: not signed)."""

    __slots__ = ("local", "extra", "carried", "until")

    def __init__(self, local: Dtab, extra: bytes, carried: List[Tuple[bytes, bytes]], until: Optional[float]) -> None:
        self.local = local
        self.extra = extra
        self.carried = carried
        self.until = until


def _note(notes: Optional[list], source: str, value: object, used: bool, why: str) -> None:
    if notes is not None:
        text = b"\n".join(value).decode("latin-1") if isinstance(value, (list, tuple)) else str(value)
        notes.append({"source": source, "value": text, "used": used, "why": why})


def resolve(
    rules: OverrideRules, ctx: dict, cache: OverrideCache, now: float,
    counts: Optional[OverrideCounts] = None, notes: Optional[list] = None,
) -> Resolved:
    """The override of a request whose context fields (and captured carriers) are ``ctx``.

    ``now``: Unix seconds (signature expiry). Raises :class:`OverrideRefused`, or
    :class:`~pyproxy.errors.DtabError` for an override that does not parse (400).
    """
    b = rules.baggage
    carried: Dict[int, List[bytes]] = {}
    if b is not None:
        for name, cid in b.fields.items():
            values = ctx.get(name)
            if values:
                carried[cid] = values
    extra = b""
    until: Optional[float] = None
    local = _EMPTY
    present = b is not None and bool(carried) and find(carried, b, tuple(carried)) is not None
    if rules.edge:
        s = rules.signed
        if s is not None:
            user, sigs = ctx.get(h.DTAB, ()), ctx.get(h.DTAB_SIG, ())
            if user or sigs:
                extra = b"s" + b"\n".join(sigs)
                verdict, valid_until = verify(s.keyring, user, sigs, now, s.skew)
                if verdict == VALID:
                    local = cache.get((), user)
                    until = valid_until
                    _note(notes, "l5d-dtab", user, True, f"{WHY[verdict]} (until {valid_until:.0f})")
                else:
                    if counts is not None:
                        counts.add(f"signature/{verdict}")
                    _note(notes, "l5d-dtab", user, False, f"edge: {WHY[verdict]}")
                    if s.refuse:
                        raise OverrideRefused(403, f"l5d-dtab refused: {WHY[verdict]}")
        if present:
            if counts is not None:
                counts.add("baggage/scrubbed")
            _note(notes, "baggage", b.key, False, "edge (clearContext): the override member is removed from every carrier")  # type: ignore[union-attr]
    else:
        dtab_ctx, dtab_user = ctx.get(h.CTX_DTAB, ()), ctx.get(h.DTAB, ())
        if dtab_ctx or dtab_user:
            local = cache.get(dtab_ctx, dtab_user)
            if dtab_ctx:
                _note(notes, "l5d-ctx-dtab", dtab_ctx, True, "appended to the router's dtab")
            if dtab_user:
                _note(notes, "l5d-dtab", dtab_user, True, "appended last: it wins over l5d-ctx-dtab")
            if present:
                _note(notes, "baggage", b.key, False, "l5d-dtab and l5d-ctx-dtab take precedence over baggage")  # type: ignore[union-attr]
        elif b is not None and b.read and present:
            found = find(carried, b, b.read)
            if found is not None:
                extra = b"b%d" % found.carrier + b"\n".join(found.raw)
                try:
                    text = decode(found, b.key)
                except BaggageError as exc:
                    if counts is not None:
                        counts.add("baggage/malformed")
                    _note(notes, "baggage", found.raw, False, str(exc))
                    raise OverrideRefused(400, str(exc)) from None
                local = cache.get((text,), ())
                _note(notes, "baggage", text, True, f"member {b.key.decode('latin-1')} (no l5d-dtab or l5d-ctx-dtab came)")
    out: List[Tuple[bytes, bytes]] = []
    if b is not None:
        w3c = carried.get(W3C, ())
        if local.dentries or present:
            value = local.show.encode("latin-1") if local.dentries else None
            if value is not None:
                out += b.fixed_fields(value)
            if W3C in b.fields.values():
                member = b.member(value) if value is not None else None
                v, dropped = rewrite(w3c, b.key, member)
                if dropped and counts is not None:
                    counts.add("baggage/dropped", dropped)
                if dropped:
                    _note(notes, "baggage", f"{dropped} member(s)", False, "dropped: W3C's limits (64 members, 8,192 bytes) were reached")
                if v is not None:
                    out.append((b"baggage", v))
        else:
            out += [(b"baggage", v) for v in w3c]
    return Resolved(local, extra, out, until)
