"""Path: a sequence of non-empty byte-string elements, Finagle's unit of naming (spec §1).

A path prints canonically (``show``): an element made only of the 69 showable characters
``[0-9A-Za-z_:.#$%-]`` prints as itself, any other element prints every byte as ``\\xhh``.
``Path.read(p.show) == p`` for every path.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Tuple, Union, overload

from .. import _impl
from ..errors import PathError

__all__ = ["Path", "show_elem", "SHOWABLE"]

SHOWABLE = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:.#$%-")


def show_elem(elem: bytes) -> str:
    """One element as Finagle prints it: as is when every byte is showable, else all ``\\xhh``."""
    if elem and all(b in SHOWABLE for b in elem):
        return elem.decode("ascii")
    return "".join(f"\\x{b:02x}" for b in elem)


class Path:
    """An immutable sequence of non-empty byte strings; hashable, ordered like tuples."""

    __slots__ = ("elems", "_hash", "_show")

    elems: Tuple[bytes, ...]

    def __init__(self, elems: Iterable[bytes] = ()) -> None:
        t = elems if type(elems) is tuple else tuple(elems)
        for e in t:
            if not e or type(e) is not bytes:
                raise PathError()
        object.__setattr__(self, "elems", t)
        object.__setattr__(self, "_hash", None)
        object.__setattr__(self, "_show", None)

    @classmethod
    def _trusted(cls, elems: Tuple[bytes, ...]) -> "Path":
        """A path from elements already known to be non-empty bytes (kernel output)."""
        p = object.__new__(cls)
        object.__setattr__(p, "elems", elems)
        object.__setattr__(p, "_hash", None)
        object.__setattr__(p, "_show", None)
        return p

    @classmethod
    def read(cls, text: str) -> "Path":
        """Parse ``text`` (``/a/b\\x2fc``); raises :class:`~pyproxy.errors.DtabError`."""
        return cls._trusted(_impl.read_path(text))

    @classmethod
    def utf8(cls, *elems: str) -> "Path":
        """A path whose elements are the UTF-8 encodings of ``elems``, unsplit and unescaped."""
        return cls(tuple(e.encode("utf-8") for e in elems))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Path is immutable")

    # === sequence behaviour ===

    def __len__(self) -> int:
        return len(self.elems)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.elems)

    @overload
    def __getitem__(self, i: int) -> bytes: ...

    @overload
    def __getitem__(self, i: slice) -> "Path": ...

    def __getitem__(self, i: Union[int, slice]) -> Union[bytes, "Path"]:
        if isinstance(i, slice):
            return Path._trusted(self.elems[i])
        return self.elems[i]

    def __add__(self, other: "Path") -> "Path":
        if not other.elems:
            return self
        if not self.elems:
            return other
        return Path._trusted(self.elems + other.elems)

    def take(self, n: int) -> "Path":
        return Path._trusted(self.elems[:n])

    def drop(self, n: int) -> "Path":
        return Path._trusted(self.elems[n:])

    def startswith(self, other: "Path") -> bool:
        """Element-wise prefix test: ``/ab`` does not start with ``/a``; every path starts with ``/``."""
        n = len(other.elems)
        return self.elems[:n] == other.elems

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and self.elems == other.elems

    def __lt__(self, other: "Path") -> bool:
        return self.elems < other.elems

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(("Path", self.elems))
            object.__setattr__(self, "_hash", h)
        return h

    # === printing ===

    @property
    def show(self) -> str:
        """The canonical text form, ``/`` for the empty path (computed once: paths are immutable)."""
        s = self._show
        if s is None:
            s = "/" + "/".join(show_elem(e) for e in self.elems)
            object.__setattr__(self, "_show", s)
        return s

    def debug(self) -> str:
        """Finagle's ``toString``: ``Path(foo,bar)``."""
        return "Path(" + ",".join(show_elem(e) for e in self.elems) + ")"

    def utf8_elems(self) -> Tuple[str, ...]:
        """Elements decoded as UTF-8 (invalid bytes replaced), like Finagle's ``Path.Utf8`` extractor."""
        return tuple(e.decode("utf-8", "replace") for e in self.elems)

    def __str__(self) -> str:
        return self.show

    def __repr__(self) -> str:
        return f"Path.read({self.show!r})"

    def __reduce__(self) -> tuple:
        return (Path, (self.elems,))


Path.EMPTY = Path._trusted(())  # type: ignore[attr-defined]
