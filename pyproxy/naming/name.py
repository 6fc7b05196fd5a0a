"""Bound names and their address sets: what a namer answers when it recognises a name.

* :class:`Address` is one endpoint (ip, port, metadata).
* An ``Addr`` is the state of a set: :class:`AddrBound`, :data:`ADDR_NEG`, :data:`ADDR_PENDING`,
  or :class:`AddrFailed`.
* :class:`AddrVar` is a live ``Addr`` that a namer updates (files change, DNS answers); clients
  observe it. It is sans-IO: observers are plain callbacks, run synchronously on every change.
* :class:`Bound` is Finagle's ``Name.Bound``: an id (the path the namer consumed), the residual path
  it did not consume, and the live address set; plus the Union weight it was reached through, which
  Finagle records as ``namer_nametree_weight`` address metadata.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .path import Path
from .tree import java_double

__all__ = [
    "Address",
    "AddrBound",
    "AddrFailed",
    "ADDR_NEG",
    "ADDR_PENDING",
    "AddrVar",
    "Bound",
    "DerivedAddrVar",
    "addr_json",
]


_NO_META: Mapping[str, Any] = MappingProxyType({})


class Address:
    """One endpoint: an IP address (or host name), a port and free-form metadata (e.g. weight)."""

    __slots__ = ("host", "port", "meta")

    def __init__(self, host: str, port: int, meta: Optional[Mapping[str, Any]] = None) -> None:
        self.host = host
        self.port = port
        # a read-only mapping is shared as it is (namers hand the same one to many addresses)
        self.meta: Mapping[str, Any] = meta if isinstance(meta, MappingProxyType) else (dict(meta) if meta else _NO_META)

    def _key(self) -> Tuple[str, int, Tuple[Tuple[str, Any], ...]]:
        return (self.host, self.port, tuple(sorted(self.meta.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Address) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Address({self.host!r}, {self.port})"


class AddrBound:
    """A bound address set (possibly empty: the name exists but has no endpoints)."""

    __slots__ = ("addresses", "meta")
    kind = "bound"

    def __init__(self, addresses: Tuple[Address, ...] = (), meta: Optional[Mapping[str, Any]] = None) -> None:
        self.addresses = tuple(addresses)
        self.meta: Mapping[str, Any] = dict(meta) if meta else {}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AddrBound)
            and set(self.addresses) == set(other.addresses)
            and dict(self.meta) == dict(other.meta)
        )

    def __hash__(self) -> int:
        return hash(frozenset(self.addresses))

    def __repr__(self) -> str:
        return f"AddrBound({list(self.addresses)!r})"


class AddrFailed:
    """Resolution failed; ``cause`` says why."""

    __slots__ = ("cause",)
    kind = "failed"

    def __init__(self, cause: str) -> None:
        self.cause = cause

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AddrFailed) and self.cause == other.cause

    def __hash__(self) -> int:
        return hash(("failed", self.cause))

    def __repr__(self) -> str:
        return f"AddrFailed({self.cause!r})"


class _AddrState:
    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Addr{self.kind.capitalize()}"


ADDR_NEG = _AddrState("neg")
ADDR_PENDING = _AddrState("pending")


class AddrVar:
    """A live address set: ``value`` is the current ``Addr``; ``version`` counts changes."""

    __slots__ = ("value", "version", "_observers")

    def __init__(self, value: object = ADDR_PENDING) -> None:
        self.value = value
        self.version = 0
        self._observers: List[Callable[[object], None]] = []

    def update(self, value: object) -> None:
        """Set a new state; observers run only when it differs from the current one."""
        if value == self.value:
            return
        self.value = value
        self.version += 1
        for fn in list(self._observers):
            fn(value)

    @property
    def observed(self) -> bool:
        """Whether anything (a client) observes this address set now."""
        return bool(self._observers)

    def observe(self, fn: Callable[[object], None]) -> Callable[[], None]:
        """Call ``fn(addr)`` on every change; returns a function that stops the observation."""
        self._observers.append(fn)

        def close() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return close

    def __repr__(self) -> str:
        return f"AddrVar({self.value!r})"


class DerivedAddrVar(AddrVar):
    """An address set computed from others (a transformer's output): ``compute(source values)``,
    kept current while :meth:`close` has not been called. Each source is observed once."""

    __slots__ = ("_sources", "_compute", "_stops")

    def __init__(self, sources: Sequence[AddrVar], compute: Callable[[Sequence[object]], object]) -> None:
        super().__init__(compute([s.value for s in sources]))
        self._sources = tuple(sources)
        self._compute = compute
        self._stops = [s.observe(self._changed) for s in self._sources]

    def _changed(self, _: object) -> None:
        self.update(self._compute([s.value for s in self._sources]))

    def close(self) -> None:
        """Stop following the sources."""
        for stop in self._stops:
            stop()
        self._stops = []


def addr_json(addr: object) -> Dict[str, Any]:
    """The ``/delegator.json`` rendering of an address state."""
    if isinstance(addr, AddrBound):
        return {
            "type": "bound",
            "addrs": [{"ip": a.host, "port": a.port, "meta": dict(a.meta)} for a in addr.addresses],
            "meta": dict(addr.meta),
        }
    if isinstance(addr, AddrFailed):
        return {"type": "failed", "cause": addr.cause}
    return {"type": addr.kind}  # type: ignore[attr-defined]


class Bound:
    """A bound name: ``id`` (consumed path), ``residual`` (the rest) and the live address set.

    Two bound names are the same client when their ids and residuals are equal.
    """

    __slots__ = ("id", "residual", "addr", "weight")

    def __init__(self, id: Path, residual: Path, addr: AddrVar, weight: Optional[float] = None) -> None:
        self.id = id
        self.residual = residual
        self.addr = addr
        self.weight = weight

    def with_weight(self, weight: float) -> "Bound":
        """The same name reached through a Union branch of ``weight``."""
        return Bound(self.id, self.residual, self.addr, weight)

    @property
    def show(self) -> str:
        return self.id.show

    def debug(self) -> str:
        """``<id>[#residual=<residual>][#w=<weight>]``, the conformance vectors' rendering."""
        out = self.id.show
        if self.residual.elems:
            out += f"#residual={self.residual.show}"
        if self.weight is not None:
            out += f"#w={java_double(self.weight)}"
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bound) and self.id == other.id and self.residual == other.residual

    def __hash__(self) -> int:
        return hash(("Bound", self.id, self.residual))

    def __repr__(self) -> str:
        return f"Bound({self.debug()})"
