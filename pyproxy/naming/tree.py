"""NameTree: Finagle's tree of names (Leaf, Alt, Union of Weighted, Neg, Fail, Empty) and its algebra (spec §2).

* ``Alt`` is fail-over (first non-negative child wins), ``Union`` a weighted split, ``Neg`` "not here,
  keep looking", ``Fail`` "stop", ``Empty`` "exists, no addresses".
* :func:`show` prints the form :func:`read` accepts again; weights print as Java's ``%.2f`` does
  (shortest round-trip digits, rounded HALF_UP), so ``show`` is lossy for weights by design.
* :func:`simplified` and :func:`evaluate` follow Finagle exactly, including that ``Empty`` does not stop
  an Alt scan while simplifying, and that a Fail inside a Union is dropped.

Leaf values are :class:`~pyproxy.naming.path.Path` (a name still to look up) or
:class:`~pyproxy.naming.name.Bound` (a name a namer has bound).
"""

from __future__ import annotations

import decimal
from typing import Callable, FrozenSet, Optional, Tuple, TypeVar

from .. import _impl
from .path import Path

__all__ = [
    "NameTree",
    "Leaf",
    "Alt",
    "Union",
    "Weighted",
    "Neg",
    "Fail",
    "Empty",
    "read",
    "from_kernel",
    "to_kernel",
    "format_weight",
    "java_double",
]

T = TypeVar("T")


class NameTree:
    """Base of the node classes; nodes are immutable and compare structurally."""

    __slots__ = ()

    @property
    def show(self) -> str:
        return _show(self)

    def debug(self) -> str:
        """Finagle's ``toString`` (``Alt(Leaf(/a),Union(1.0*Leaf(/b)))``), used by the conformance vectors."""
        return _debug(self)

    def simplified(self) -> "NameTree":
        return simplify(self)

    def __repr__(self) -> str:
        return self.debug()


class Leaf(NameTree):
    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        object.__setattr__(self, "value", value)

    def __eq__(self, other: object) -> bool:
        return type(other) is Leaf and self.value == other.value  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(("Leaf", self.value))


class Weighted:
    """A Union branch: ``weight * tree``; the default weight is 1.0."""

    __slots__ = ("weight", "tree")

    DEFAULT = 1.0

    def __init__(self, weight: float, tree: NameTree) -> None:
        object.__setattr__(self, "weight", float(weight))
        object.__setattr__(self, "tree", tree)

    def __eq__(self, other: object) -> bool:
        return type(other) is Weighted and (self.weight, self.tree) == (other.weight, other.tree)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.weight, self.tree))

    def __repr__(self) -> str:
        return f"{java_double(self.weight)}*{_debug(self.tree)}"


class Alt(NameTree):
    __slots__ = ("trees",)

    def __init__(self, *trees: NameTree) -> None:
        object.__setattr__(self, "trees", tuple(trees))

    def __eq__(self, other: object) -> bool:
        return type(other) is Alt and self.trees == other.trees  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(("Alt", self.trees))


class Union(NameTree):
    __slots__ = ("weighted",)

    def __init__(self, *weighted: Weighted) -> None:
        object.__setattr__(self, "weighted", tuple(weighted))

    def __eq__(self, other: object) -> bool:
        return type(other) is Union and self.weighted == other.weighted  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(("Union", self.weighted))


class _Atom(NameTree):
    __slots__ = ("_name", "_text")

    def __init__(self, name: str, text: str) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_text", text)

    def __reduce__(self) -> str:
        return self._name


Neg = _Atom("Neg", "~")
Fail = _Atom("Fail", "!")
Empty = _Atom("Empty", "$")

# === kernel conversion ===

_LEAF, _ALT, _UNION, _NEG, _FAIL, _EMPTY = range(6)
_ATOMS = {_NEG: Neg, _FAIL: Fail, _EMPTY: Empty}
_ATOM_TAGS = {id(Neg): (_NEG,), id(Fail): (_FAIL,), id(Empty): (_EMPTY,)}


def from_kernel(t: tuple) -> NameTree:
    """A tree from the kernels' tuple form (see ``pyproxy._pure.parse``)."""
    tag = t[0]
    if tag == _LEAF:
        return Leaf(Path._trusted(t[1]))
    if tag == _ALT:
        return Alt(*[from_kernel(c) for c in t[1]])
    if tag == _UNION:
        return Union(*[Weighted(w, from_kernel(c)) for w, c in t[1]])
    return _ATOMS[tag]


def to_kernel(tree: NameTree) -> tuple:
    """The kernels' tuple form of a tree whose leaves are paths."""
    if type(tree) is Leaf:
        return (_LEAF, tree.value.elems)  # type: ignore[attr-defined]
    if type(tree) is Alt:
        return (_ALT, tuple(to_kernel(c) for c in tree.trees))  # type: ignore[attr-defined]
    if type(tree) is Union:
        return (_UNION, tuple((w.weight, to_kernel(w.tree)) for w in tree.weighted))  # type: ignore[attr-defined]
    return _ATOM_TAGS[id(tree)]


def read(text: str) -> NameTree:
    """Parse a name tree (``/a | 2 * /b & /c``); raises :class:`~pyproxy.errors.DtabError`."""
    return from_kernel(_impl.read_tree(text))


# === printing ===

_WEIGHT_CONTEXT = decimal.Context(prec=1200, rounding=decimal.ROUND_HALF_UP)
_CENT = decimal.Decimal("0.01")


def format_weight(w: float) -> str:
    """Java's ``String.format("%.2f", w)``: shortest round-trip digits rounded HALF_UP, positional."""
    if w != w:
        return "NaN"
    if w in (float("inf"), float("-inf")):
        return "Infinity" if w > 0 else "-Infinity"
    q = decimal.Decimal(repr(w)).quantize(_CENT, context=_WEIGHT_CONTEXT)
    return format(q, "f")


def java_double(d: float) -> str:
    """Java's ``Double.toString`` (``1.0``, ``0.125``, ``1.2345678901234567E19``)."""
    if d != d:
        return "NaN"
    if d in (float("inf"), float("-inf")):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if str(d).startswith("-") else "0.0"
    sign = "-" if d < 0 else ""
    a = abs(d)
    digits, exp = _shortest_digits(a)
    if 1e-3 <= a < 1e7:
        text = format(decimal.Decimal(repr(a)), "f")
        if "." not in text:
            text += ".0"
        return sign + text
    mant = digits[0] + "." + (digits[1:] or "0")
    return f"{sign}{mant}E{exp}"


def _shortest_digits(a: float) -> Tuple[str, int]:
    """(digits, decimal exponent of the first digit) of ``repr(a)``."""
    tup = decimal.Decimal(repr(a)).as_tuple()
    ds = "".join(map(str, tup.digits)).rstrip("0") or "0"
    return ds, len(tup.digits) + int(tup.exponent) - 1


def _show(t: NameTree) -> str:
    if type(t) is Alt and len(t.trees) == 1 or type(t) is Union and len(t.weighted) == 1:
        return _show(_only(t))
    if type(t) is Alt:  # 0 or >= 2 children; zero children print as ""
        return " | ".join(_show1(c) for c in t.trees)
    return _show1(t)


def _show1(t: NameTree) -> str:
    if type(t) is Alt and len(t.trees) == 1 or type(t) is Union and len(t.weighted) == 1:
        return _show1(_only(t))
    if type(t) is Union:  # 0 or >= 2 children; zero children print as ""
        return " & ".join(
            _show_simple(w.tree) if w.weight == 1.0 else f"{format_weight(w.weight)}*{_show_simple(w.tree)}"
            for w in t.weighted
        )
    if type(t) is Alt:  # 0 or >= 2 children
        return "(" + _show(t) + ")"
    return _show_simple(t)


def _show_simple(t: NameTree) -> str:
    if type(t) is Alt and len(t.trees) == 1 or type(t) is Union and len(t.weighted) == 1:
        return _show_simple(_only(t))
    if type(t) is Alt or type(t) is Union:
        return "(" + _show(t) + ")"
    if type(t) is Leaf:
        return _value_show(t.value)
    return t._text  # type: ignore[attr-defined]


def _only(t: NameTree) -> NameTree:
    return t.trees[0] if type(t) is Alt else t.weighted[0].tree  # type: ignore[attr-defined]


def _value_show(v: object) -> str:
    show = getattr(v, "show")
    return show if isinstance(show, str) else show()


def _debug(t: NameTree) -> str:
    if type(t) is Leaf:
        v = t.value
        return f"Leaf({v.show if isinstance(v, Path) else v.debug()})"  # type: ignore[attr-defined]
    if type(t) is Alt:
        return "Alt(" + ",".join(_debug(c) for c in t.trees) + ")"
    if type(t) is Union:
        return "Union(" + ",".join(repr(w) for w in t.weighted) + ")"
    return t._name  # type: ignore[attr-defined]


# === algebra ===


def simplify(t: NameTree) -> NameTree:
    """An evaluation-equivalent tree (Finagle ``simplified``); idempotent."""
    if type(t) is Alt:
        if not t.trees:
            return Neg
        if len(t.trees) == 1:
            return simplify(t.trees[0])
        out = []
        for c in t.trees:
            s = simplify(c)
            if s is Fail:
                out.append(Fail)
                break
            if s is not Neg:
                out.append(s)
        if not out:
            return Neg
        return out[0] if len(out) == 1 else Alt(*out)
    if type(t) is Union:
        if not t.weighted:
            return Neg
        if len(t.weighted) == 1:
            return simplify(t.weighted[0].tree)
        kept = []
        for w in t.weighted:
            s = simplify(w.tree)
            if s is not Fail and s is not Neg:
                kept.append(Weighted(w.weight, s))
        if not kept:
            return Neg
        return kept[0].tree if len(kept) == 1 else Union(*kept)
    return t


def evaluate(t: NameTree) -> Optional[FrozenSet[object]]:
    """The set of leaf values the tree denotes, or None for Neg/Fail (Finagle ``eval``)."""
    r = _eval(t)
    return None if r is Neg or r is Fail else r  # type: ignore[return-value]


def _eval(t: NameTree) -> object:
    if type(t) is Leaf:
        return frozenset((t.value,))
    if t is Empty:
        return frozenset()
    if t is Neg or t is Fail:
        return t
    children = t.trees if type(t) is Alt else tuple(w.tree for w in t.weighted)  # type: ignore[attr-defined]
    if not children:
        return Neg
    if len(children) == 1:
        return _eval(children[0])
    if type(t) is Alt:
        for c in children:
            r = _eval(c)
            if r is not Neg:
                return r
        return Neg
    sets = [r for r in map(_eval, children) if r is not Neg and r is not Fail]
    if not sets:
        return Neg
    return frozenset().union(*sets)  # type: ignore[arg-type]


def map_leaves(t: NameTree, f: Callable[[object], object]) -> NameTree:
    """The same tree with every leaf value replaced by ``f(value)``."""
    if type(t) is Leaf:
        return Leaf(f(t.value))
    if type(t) is Alt:
        return Alt(*[map_leaves(c, f) for c in t.trees])
    if type(t) is Union:
        return Union(*[Weighted(w.weight, map_leaves(w.tree, f)) for w in t.weighted])
    return t
