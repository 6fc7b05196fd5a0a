"""Prefix, Dentry and Dtab: delegation rules and one rewriting step through them (spec §3).

``Dtab.lookup`` is Finagle's: every dentry whose prefix matches, *later first*, each destination
rewritten with the unmatched suffix; ``Neg`` for none, the tree for one, ``Alt`` for several. The scan
is done by the kernels' prefix index (:class:`pyproxy._impl.DtabIndex`), built once per dtab, so
its cost does not grow with dentries that cannot match.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence, Tuple

from .. import _impl
from .path import Path, show_elem
from .tree import Fail, NameTree, Neg, from_kernel, map_leaves, simplify, to_kernel

__all__ = ["Prefix", "Dentry", "Dtab"]

PrefixElems = Tuple[Optional[bytes], ...]


class Prefix:
    """A dentry prefix: labels and ``*`` wildcards (``None``), each matching one path element."""

    __slots__ = ("elems",)

    def __init__(self, elems: Iterable[Optional[bytes]] = ()) -> None:
        object.__setattr__(self, "elems", tuple(elems))

    @classmethod
    def read(cls, text: str) -> "Prefix":
        return cls(_impl.read_prefix(text))

    @classmethod
    def of_path(cls, path: Path) -> "Prefix":
        return cls(path.elems)

    def __len__(self) -> int:
        return len(self.elems)

    def matches(self, path: Path) -> bool:
        pe = path.elems
        if len(self.elems) > len(pe):
            return False
        return all(e is None or e == p for e, p in zip(self.elems, pe))

    @property
    def show(self) -> str:
        return "/" + "/".join("*" if e is None else show_elem(e) for e in self.elems)

    def debug(self) -> str:
        return "Prefix(" + ",".join("*" if e is None else show_elem(e) for e in self.elems) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prefix) and self.elems == other.elems

    def __hash__(self) -> int:
        return hash(("Prefix", self.elems))

    def __repr__(self) -> str:
        return self.debug()


class Dentry:
    """One delegation rule ``prefix => dst``."""

    __slots__ = ("prefix", "dst")

    def __init__(self, prefix: Prefix, dst: NameTree) -> None:
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "dst", dst)

    @classmethod
    def read(cls, text: str) -> "Dentry":
        return cls._from_kernel(_impl.read_dentry(text))

    @classmethod
    def _from_kernel(cls, d: Tuple[PrefixElems, tuple]) -> "Dentry":
        return cls(Prefix(d[0]), from_kernel(d[1]))

    def _to_kernel(self) -> Tuple[PrefixElems, tuple]:
        return (self.prefix.elems, to_kernel(self.dst))

    @property
    def show(self) -> str:
        return f"{self.prefix.show}=>{self.dst.show}"

    def debug(self) -> str:
        return f"Dentry({self.show})"

    def equiv(self, other: "Dentry") -> bool:
        """Same prefix and equal simplified destinations (Finagle ``Dentry.equiv``)."""
        return self.prefix == other.prefix and simplify(self.dst) == simplify(other.dst)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dentry) and (self.prefix, self.dst) == (other.prefix, other.dst)

    def __hash__(self) -> int:
        return hash((self.prefix, self.dst))

    def __repr__(self) -> str:
        return self.debug()


# The delegator's "no dentry": a one-element prefix holding the byte '/', destination Neg.
Dentry.NOP = Dentry(Prefix((b"/",)), Neg)  # type: ignore[attr-defined]


class Dtab(Sequence[Dentry]):
    """An ordered, immutable list of dentries; later entries take precedence."""

    __slots__ = ("dentries", "_kernel", "_index", "_show")

    def __init__(self, dentries: Iterable[Dentry] = ()) -> None:
        object.__setattr__(self, "dentries", tuple(dentries))
        object.__setattr__(self, "_kernel", None)
        object.__setattr__(self, "_index", None)
        object.__setattr__(self, "_show", None)

    @classmethod
    def read(cls, text: str) -> "Dtab":
        """Parse a dtab (``/a => /b; /c => /d;``); raises :class:`~pyproxy.errors.DtabError`."""
        kernel = _impl.read_dtab(text)
        d = cls(Dentry._from_kernel(k) for k in kernel)
        object.__setattr__(d, "_kernel", kernel)
        return d

    # === sequence ===

    def __len__(self) -> int:
        return len(self.dentries)

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if isinstance(i, slice):
            return Dtab(self.dentries[i])
        return self.dentries[i]

    def __iter__(self) -> Iterator[Dentry]:
        return iter(self.dentries)

    def __add__(self, other: object) -> "Dtab":
        """``d + dentry`` appends one entry; ``d + dtab`` is ``d ++ dtab``."""
        if isinstance(other, Dentry):
            return Dtab(self.dentries + (other,))
        if isinstance(other, Dtab):
            return self.concat(other)
        return NotImplemented

    def concat(self, other: "Dtab") -> "Dtab":
        """``self ++ other``: other's entries come last and take precedence."""
        if not other.dentries:
            return self
        if not self.dentries:
            return other
        return Dtab(self.dentries + other.dentries)

    def strip_prefix(self, prefix: "Dtab") -> "Dtab":
        """The entries after ``prefix`` if this dtab starts with exactly its entries, else self."""
        n = len(prefix.dentries)
        if n == 0 or self.dentries[:n] != prefix.dentries:
            return self
        return Dtab(self.dentries[n:])

    def simplified(self) -> "Dtab":
        """Every destination simplified; entries whose destination becomes Neg dropped."""
        out = []
        for d in self.dentries:
            s = simplify(d.dst)
            if s is not Neg:
                out.append(Dentry(d.prefix, s))
        return Dtab(out)

    def equiv(self, other: "Dtab") -> bool:
        return len(self) == len(other) and all(a.equiv(b) for a, b in zip(self, other))

    # === lookup ===

    @property
    def index(self) -> "_impl.DtabIndex":
        """The kernel prefix index, built on first use."""
        idx = self._index
        if idx is None:
            kernel = self._kernel
            if kernel is None:
                kernel = tuple(d._to_kernel() for d in self.dentries)
                object.__setattr__(self, "_kernel", kernel)
            idx = _impl.DtabIndex(kernel)
            object.__setattr__(self, "_index", idx)
        return idx

    def lookup(self, path: Path) -> NameTree:
        """One rewriting step of ``path`` (unsimplified): Neg, one tree, or Alt(later..earlier)."""
        if not self.dentries:
            return Neg
        return from_kernel(self.index.lookup(path.elems))

    def lookup_dentries(self, path: Path) -> Tuple[Tuple[Dentry, NameTree], ...]:
        """Each matching dentry (later first) with its destination rewritten for ``path``."""
        if not self.dentries:
            return ()
        out = []
        for i in self.index.matches(path.elems):
            d = self.dentries[i]
            suffix = path.drop(len(d.prefix))
            out.append((d, map_leaves(d.dst, lambda p, s=suffix: p + s)))
        return tuple(out)

    # === printing ===

    @property
    def show(self) -> str:
        s = self._show
        if s is None:
            s = ";".join(d.show for d in self.dentries)
            object.__setattr__(self, "_show", s)
        return s

    def debug(self) -> str:
        return f"Dtab({self.show})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dtab) and self.dentries == other.dentries

    def __hash__(self) -> int:
        return hash(self.dentries)

    def __repr__(self) -> str:
        return self.debug()


Dtab.EMPTY = Dtab()  # type: ignore[attr-defined]
Dtab.FAIL = Dtab((Dentry(Prefix(), Fail),))  # type: ignore[attr-defined]
