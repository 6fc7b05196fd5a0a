"""Hypothesis strategies for the naming kernels: values in their tuple form, and parser inputs.

Values (the kernels' tuple forms, see ``pyproxy/_pure/parse.py``) are drawn over a deliberately tiny
alphabet so that prefixes collide, ``*`` wildcards match, a literal ``*`` label (``\\x2a``) meets the
wildcard, and non-showable elements (``a b``, ``é``) force ``\\xhh`` escapes.

Texts come in three families, for every kind (``path``, ``prefix``, ``tree``, ``dentry``, ``dtab``):

* :func:`valid_texts`: the canonical ``show`` of a generated value, or a noisy but faithful rendering
  of it (:func:`rendered`: random whitespace and ``#`` comments, escaped showable bytes in either hex
  case, redundant parentheses, written-out and discarded weights, a trailing ``;``);
* :func:`mutated_texts`: valid texts with a few characters inserted, deleted or replaced from a
  syntax-heavy alphabet (including U+FFFF, the JVM parser's end-of-input sentinel, and a lone surrogate);
* :data:`arbitrary_texts`: ``st.text()``.
"""

from __future__ import annotations

import decimal
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from hypothesis import strategies as st

from pyproxy.naming.dtab import Dentry, Dtab, Prefix
from pyproxy.naming.path import Path
from pyproxy.naming.tree import from_kernel

__all__ = [
    "KINDS",
    "ELEMENTS",
    "elements",
    "paths",
    "prefixes",
    "weights",
    "trees",
    "dentries",
    "dtabs",
    "dtabs_and_paths",
    "values",
    "show",
    "shown_texts",
    "rendered",
    "rendered_texts",
    "valid_texts",
    "mutated_texts",
    "arbitrary_texts",
    "any_texts",
    "service_dtab",
]

LEAF, ALT, UNION, NEG, FAIL, EMPTY = range(6)
ATOMS = ((NEG,), (FAIL,), (EMPTY,))

KINDS = ("path", "prefix", "tree", "dentry", "dtab")

# === values ===

ELEMENTS = (b"a", b"b", b"c", b"a b", b"*", b"\xc3\xa9")
elements = st.sampled_from(ELEMENTS)
# A third of the prefix elements are wildcards.
_prefix_elements = st.sampled_from((None, None, None) + ELEMENTS)


def paths(max_size: int = 4) -> st.SearchStrategy[Tuple[bytes, ...]]:
    return st.lists(elements, max_size=max_size).map(tuple)


def prefixes(max_size: int = 4) -> st.SearchStrategy[Tuple[Optional[bytes], ...]]:
    return st.lists(_prefix_elements, max_size=max_size).map(tuple)


_INT_WEIGHTS = st.integers(0, 9).map(float)
# At most two decimals: ``show`` prints weights with ``%.2f``, so these still round-trip.
_DECIMAL_WEIGHTS = st.sampled_from((0.5, 0.25, 1.5, 2.75, 0.1, 0.01, 9.99))
# Lossy under ``show`` (rounded HALF_UP to two places) or printed long; fine for parsing.
_LOSSY_WEIGHTS = st.sampled_from((0.125, 0.005, 0.001, 12.345, 0.995, 1e22, 123456789.0))


def weights(kind: str = "decimal") -> st.SearchStrategy[float]:
    """``int``: 0.0..9.0; ``decimal``: those and a few two-decimal ones; ``any``: also lossy ones."""
    if kind == "int":
        return _INT_WEIGHTS
    if kind == "decimal":
        return st.one_of(_INT_WEIGHTS, _DECIMAL_WEIGHTS)
    if kind == "any":
        return st.one_of(_INT_WEIGHTS, _DECIMAL_WEIGHTS, _LOSSY_WEIGHTS)
    raise ValueError(kind)


def trees(weight: str = "decimal", parseable: bool = True, max_leaves: int = 8) -> st.SearchStrategy[tuple]:
    """Kernel-form trees. ``parseable=False`` also allows the 0- and 1-child Alt/Union the parser never makes."""
    ws = weights(weight)
    lo = 2 if parseable else 0
    leaves = st.one_of(paths().map(lambda p: (LEAF, p)), st.sampled_from(ATOMS))

    def extend(children: st.SearchStrategy[tuple]) -> st.SearchStrategy[tuple]:
        return st.one_of(
            st.lists(children, min_size=lo, max_size=3).map(lambda ts: (ALT, tuple(ts))),
            st.lists(st.tuples(ws, children), min_size=lo, max_size=3).map(lambda ts: (UNION, tuple(ts))),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


def dentries(weight: str = "decimal", parseable: bool = True) -> st.SearchStrategy[tuple]:
    return st.tuples(prefixes(), trees(weight, parseable, max_leaves=4))


def dtabs(weight: str = "decimal", parseable: bool = True, max_size: int = 6) -> st.SearchStrategy[tuple]:
    return st.lists(dentries(weight, parseable), max_size=max_size).map(tuple)


@st.composite
def dtabs_and_paths(draw: Callable, parseable: bool = False, max_size: int = 8) -> Tuple[tuple, tuple]:
    """A dtab and a path to look up; half the time the path is built to match one of its prefixes."""
    dtab = draw(dtabs("any", parseable, max_size))
    if dtab and draw(st.booleans()):
        prefix, _ = draw(st.sampled_from(dtab))
        head = tuple(draw(elements) if e is None else e for e in prefix)
        return dtab, head + draw(paths(max_size=2))
    return dtab, draw(paths())


_VALUES: Dict[str, Callable[[str], st.SearchStrategy]] = {
    "path": lambda w: paths(),
    "prefix": lambda w: prefixes(),
    "tree": lambda w: trees(w),
    "dentry": lambda w: dentries(w),
    "dtab": lambda w: dtabs(w),
}


def values(kind: str, weight: str = "decimal") -> st.SearchStrategy:
    """Parser-producible values of one kind (what ``read_<kind>`` can return)."""
    return _VALUES[kind](weight)


# === canonical text (the domain layer's ``show``) ===


def show(kind: str, value: object) -> str:
    """The canonical printed form of a kernel value, through the Python domain layer."""
    if kind == "path":
        return Path(value).show  # type: ignore[arg-type]
    if kind == "prefix":
        return Prefix(value).show  # type: ignore[arg-type]
    if kind == "tree":
        return from_kernel(value).show  # type: ignore[arg-type]
    if kind == "dentry":
        return Dentry._from_kernel(value).show  # type: ignore[arg-type]
    if kind == "dtab":
        return Dtab(Dentry._from_kernel(d) for d in value).show  # type: ignore[union-attr]
    raise ValueError(kind)


def shown_texts(kind: str, weight: str = "decimal") -> st.SearchStrategy[str]:
    return values(kind, weight).map(lambda v: show(kind, v))


# === noisy but faithful rendering ===

# Whitespace per Java's Character.isWhitespace, and comments; a comment always follows a blank, since
# a '#' right after a label is a label character.
_WS = ("", "", "", "", " ", "  ", "\t", "\n", "\r\n", " # note\n", "\t#\n", "\u3000", "\u2028", "\x0b", "\x1f")
_SHOWABLE = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:.#$%-")
_ATOM_TEXT = {NEG: "~", FAIL: "!", EMPTY: "$"}


class _Renderer:
    """Writes one value as text, drawing every optional choice from hypothesis (shrinks to the plain form)."""

    def __init__(self, draw: Callable) -> None:
        self.draw = draw

    def ws(self) -> str:
        return self.draw(st.sampled_from(_WS))

    def flag(self, one_in: int) -> bool:
        # Shrinks towards False (the plain form), so shrinking always terminates.
        return self.draw(st.integers(0, one_in - 1)) == one_in - 1

    def escape(self, b: int) -> str:
        h = f"{b:02x}"
        return "\\x" + (h.upper() if self.flag(2) else h)

    def label(self, elem: bytes) -> str:
        if all(b in _SHOWABLE for b in elem):
            return "".join(self.escape(b) if self.flag(4) else chr(b) for b in elem)
        return "".join(self.escape(b) for b in elem)

    def path(self, p: Sequence[bytes]) -> str:
        return "/" + "/".join(self.label(e) for e in p)

    def prefix(self, p: Sequence[Optional[bytes]]) -> str:
        return "/" + "/".join("*" if e is None else self.label(e) for e in p)

    def weight(self, w: float) -> str:
        base = format(decimal.Decimal(repr(w)), "f")
        if "." in base:
            forms = [base, base + "0"] + ([base[1:]] if base.startswith("0.") else [])
        else:
            forms = [base, base + ".", base + ".0", "0" + base]
        text = self.draw(st.sampled_from(forms))
        assert float(text) == w, (text, w)
        return text

    def tree(self, t: tuple, depth: int = 0) -> str:
        if t[0] == ALT and len(t[1]) >= 2:
            out = self.tree1(t[1][0], depth)
            for child in t[1][1:]:
                out += self.ws() + "|" + self.ws() + self.tree1(child, depth)
            return out
        return self.tree1(t, depth)

    def tree1(self, t: tuple, depth: int) -> str:
        if t[0] == UNION and len(t[1]) >= 2:
            parts = [self.weighted(w, child, depth) for w, child in t[1]]
            out = parts[0]
            for part in parts[1:]:
                out += self.ws() + "&" + self.ws() + part
            return out
        if self.flag(6):  # a weight on a lone term is parsed and then dropped
            w = self.draw(weights("any"))
            return self.weight(w) + self.ws() + "*" + self.ws() + self.simple(t, depth)
        return self.simple(t, depth)

    def weighted(self, w: float, t: tuple, depth: int) -> str:
        if w == 1.0 and not self.flag(3):
            return self.simple(t, depth)
        return self.weight(w) + self.ws() + "*" + self.ws() + self.simple(t, depth)

    def simple(self, t: tuple, depth: int) -> str:
        tag = t[0]
        if tag in (ALT, UNION) or (depth < 3 and self.flag(8)):  # parentheses around one term add no node
            return "(" + self.ws() + self.tree(t, depth + 1) + self.ws() + ")"
        if tag == LEAF:
            return self.path(t[1])
        return _ATOM_TEXT[tag]

    def dentry(self, d: tuple) -> str:
        return self.prefix(d[0]) + self.ws() + "=>" + self.ws() + self.tree(d[1])

    def dtab(self, d: Sequence[tuple]) -> str:
        if not d:
            return self.ws()
        out = self.ws() + self.dentry(d[0])
        for dentry in d[1:]:
            out += self.ws() + ";" + self.ws() + self.dentry(dentry)
        if self.flag(3):
            out += self.ws() + ";"
        return out

    def render(self, kind: str, value: object) -> str:
        body = {
            "path": self.path,
            "prefix": self.prefix,
            "tree": self.tree,
            "dentry": self.dentry,
            "dtab": self.dtab,
        }[kind](value)
        return self.ws() + body + self.ws()


@st.composite
def rendered(draw: Callable, kind: str, weight: str = "any") -> Tuple[object, str]:
    """``(value, text)``: ``read_<kind>(text) == value`` on a correct parser."""
    value = draw(values(kind, weight))
    return value, _Renderer(draw).render(kind, value)


def rendered_texts(kind: str) -> st.SearchStrategy[str]:
    return rendered(kind).map(lambda vt: vt[1])


def valid_texts(kind: Optional[str] = None) -> st.SearchStrategy[str]:
    """Texts that parse as ``kind`` (any kind when None): canonical ``show`` forms and noisy renderings."""
    kinds = KINDS if kind is None else (kind,)
    return st.one_of(*[s for k in kinds for s in (shown_texts(k), rendered_texts(k))])


# === mutations and arbitrary text ===

MUTATION_CHARS = "/\\x*&|()=>;#~!$ .0123456789ab\n\t" + "é\u3000\u2028\uffff\U0001F600\ud800"


@st.composite
def _mutate(draw: Callable, base: st.SearchStrategy[str]) -> str:
    chars: List[str] = list(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("insert", "delete", "replace")))
        if op == "insert" or not chars:
            chars.insert(draw(st.integers(0, len(chars))), draw(st.sampled_from(MUTATION_CHARS)))
        else:
            i = draw(st.integers(0, len(chars) - 1))
            if op == "delete":
                del chars[i]
            else:
                chars[i] = draw(st.sampled_from(MUTATION_CHARS))
    return "".join(chars)


def mutated_texts(kind: Optional[str] = None) -> st.SearchStrategy[str]:
    """Valid texts with one to four single-character insertions, deletions or replacements."""
    return _mutate(valid_texts(kind))


arbitrary_texts: st.SearchStrategy[str] = st.text()


def any_texts(kind: Optional[str] = None) -> st.SearchStrategy[str]:
    return st.one_of(valid_texts(kind), mutated_texts(kind), arbitrary_texts)


# === large generated dtabs (plain functions, for tests and benchmarks) ===

WILDCARD_LABELS = (b"x", b"y", b"z")


def service_dtab(n: int) -> Tuple[tuple, str]:
    """A dtab of ``n`` dentries (``n >= 5``) as kernel tuples and as text, Linkerd-style.

    ``/svc => /#/io.l5d.fs``, then ``/svc/*/x``, ``/svc/*/y``, ``/svc/*/z`` wildcard rules, then
    ``/svc/svc-I => /#/io.l5d.fs/svc-I`` for the rest. ``/svc/svc-I/x`` is matched by three dentries.
    """
    if n < 5:
        raise ValueError("service_dtab needs at least 5 dentries")
    fs = (b"#", b"io.l5d.fs")
    out = [((b"svc",), (LEAF, fs))]
    out += [((b"svc", None, w), (LEAF, fs + (w,))) for w in WILDCARD_LABELS]
    for i in range(n - len(out)):
        name = b"svc-%d" % i
        out.append(((b"svc", name), (LEAF, fs + (name,))))
    lines = []
    for prefix, (_, dst) in out:  # every element here is showable ASCII: no escaping needed
        pre = "/".join("*" if e is None else e.decode() for e in prefix)
        lines.append(f"/{pre} => /{b'/'.join(dst).decode()}")
    text = ";\n".join(lines)
    return tuple(out), text


def service_path(n: int, last: bytes = b"x") -> Tuple[bytes, ...]:
    """A path into :func:`service_dtab` ``(n)`` matched by three of its dentries (two for ``last=b"w"``)."""
    return (b"svc", b"svc-%d" % ((n - 1 - len(WILDCARD_LABELS)) // 2), last)
