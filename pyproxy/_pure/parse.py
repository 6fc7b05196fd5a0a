"""Finagle's naming syntax (paths, prefixes, name trees, dentries, dtabs): the pure twin of ``native/src/parse.rs``.

Grammar (Finagle ``NameTreeParsers``; ``WS`` skips Java whitespace and ``#`` comments up to a newline)::

    path     := WS '/' [ label ( '/' label )* ]
    label    := ( showable | '\\' 'x' hex hex )+       showable = [0-9A-Za-z_:.#$%-]
    prefix   := WS '/' [ pelem ( '/' pelem )* ]        pelem = '*' | label
    tree     := tree1 ( WS '|' tree1 )*                n > 1 -> Alt
    tree1    := weighted ( WS '&' weighted )*          n > 1 -> Union, else the tree (weight dropped)
    weighted := WS [ number WS '*' WS ] simple
    simple   := WS ( '(' tree WS ')' | path | '!' | '~' | '$' )
    number   := ( digit | '.' )+                       at most one '.', not '.' alone
    dentry   := prefix WS '=' '>' tree
    dtab     := ( WS [ dentry WS ] ) separated by ';'

Every ``read_*`` function consumes its whole input (trailing ``WS`` allowed) or raises
:class:`~pyproxy.errors.DtabError` with Finagle's exact message and the character offset.

Values crossing the kernel seam are plain tuples so that both twins build them cheaply:

* a path is ``tuple[bytes, ...]``; a prefix is ``tuple[bytes | None, ...]`` (``None`` is ``*``);
* a tree is ``(LEAF, path)``, ``(ALT, (tree, ...))``, ``(UNION, ((weight, tree), ...))``,
  or one of the singletons ``NEG_TREE``, ``FAIL_TREE``, ``EMPTY_TREE``;
* a dentry is ``(prefix, tree)``; a dtab is ``tuple[dentry, ...]``.

Divergences from the JVM original, on purpose: offsets count code points (Java counts UTF-16 units,
which differs only for characters outside the BMP), and weights accept ASCII digits only (Java's
``isDigit`` also admits other Unicode digits, which ``toDouble`` then rejects with a crash).
"""

from __future__ import annotations

import re
from typing import NoReturn, Optional, Tuple

from ..errors import DtabError

__all__ = [
    "LEAF",
    "ALT",
    "UNION",
    "NEG",
    "FAIL",
    "EMPTY",
    "NEG_TREE",
    "FAIL_TREE",
    "EMPTY_TREE",
    "read_path",
    "read_prefix",
    "read_tree",
    "read_dentry",
    "read_dtab",
]

LEAF, ALT, UNION, NEG, FAIL, EMPTY = range(6)
NEG_TREE = (NEG,)
FAIL_TREE = (FAIL,)
EMPTY_TREE = (EMPTY,)

PathT = Tuple[bytes, ...]
PrefixT = Tuple[Optional[bytes], ...]
Tree = tuple

# Java's Character.isWhitespace: Unicode space separators except the no-break ones, line and
# paragraph separators, and the ASCII controls \t \n \v \f \r \x1c-\x1f.
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2008\u2009\u200a\u2028\u2029\u205f\u3000"
)
_SHOWABLE = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:.#$%-")
_LABEL_START = _SHOWABLE | {"\\"}
_PREFIX_START = _LABEL_START | {"*"}
_HEX = frozenset("0123456789abcdefABCDEF")
_NUMBER = frozenset("0123456789.")
_SHOWABLE_RUN = re.compile(r"[0-9A-Za-z_:.#$%\-]+")
# The JVM parser's end-of-input sentinel is Char.MaxValue, so a literal U+FFFF reads as the end.
_EOI = "\uffff"


class _Parser:
    __slots__ = ("s", "i", "n")

    def __init__(self, s: str) -> None:
        if not isinstance(s, str):
            raise TypeError(f"expected str, got {type(s).__name__}")
        self.s = s
        self.i = 0
        self.n = len(s)

    # === scanning ===

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else _EOI

    def illegal(self, expected: str, found: str) -> NoReturn:
        s, i = self.s, self.i
        found_text = "end of input" if found == _EOI else f"'{found}'"
        display = f"{s}[]" if i >= self.n else f"{s[:i]}[{s[i]}]{s[i + 1:]}"
        raise DtabError(f"{expected} expected but {found_text} found at '{display}'", i, expected)

    def eat(self, c: str) -> None:
        if self.i < self.n and self.s[self.i] == c:
            self.i += 1
        else:
            self.illegal(f"'{c}'", self.peek())

    def maybe_eat(self, c: str) -> bool:
        if self.i < self.n and self.s[self.i] == c:
            self.i += 1
            return True
        return False

    def skip_ws(self) -> None:
        s, i, n = self.s, self.i, self.n
        while i < n:
            c = s[i]
            if c == "#":
                nl = s.find("\n", i)
                i = n if nl < 0 else nl + 1
            elif c in _WHITESPACE:
                i += 1
            else:
                break
        self.i = i

    def ensure_end(self) -> None:
        if self.i < self.n:
            self.illegal("end of input", self.s[self.i])

    # === productions ===

    def label(self) -> bytes:
        s, n = self.s, self.n
        out = bytearray()
        while True:
            c = s[self.i] if self.i < n else _EOI
            if c in _SHOWABLE:
                m = _SHOWABLE_RUN.match(s, self.i)
                assert m is not None
                out += m.group().encode("ascii")
                self.i = m.end()
            elif c == "\\":
                self.i += 1
                self.eat("x")
                hi = self.hex_char()
                lo = self.hex_char()
                out.append(int(hi + lo, 16))
            else:
                self.illegal("label char", c)
            if self.i >= n or s[self.i] not in _LABEL_START:
                return bytes(out)

    def hex_char(self) -> str:
        c = self.peek()
        if c in _HEX:
            self.i += 1
            return c
        self.illegal("hex char", c)

    def path(self) -> PathT:
        self.skip_ws()
        self.eat("/")
        if self.peek() not in _LABEL_START:
            return ()
        labels = [self.label()]
        while self.maybe_eat("/"):
            labels.append(self.label())
        return tuple(labels)

    def prefix(self) -> PrefixT:
        self.skip_ws()
        self.eat("/")
        if self.peek() not in _PREFIX_START:
            return ()
        elems: list = []
        while True:
            if self.maybe_eat("*"):
                elems.append(None)
            else:
                elems.append(self.label())
            if not self.maybe_eat("/"):
                return tuple(elems)

    def number(self) -> float:
        start = self.i
        seen_dot = False
        while self.peek() in _NUMBER:
            if self.s[self.i] == ".":
                if seen_dot:
                    self.illegal("number char", ".")
                seen_dot = True
            self.i += 1
        text = self.s[start : self.i]
        if text == ".":
            # Finagle reports this one position after the dot (spec §1.6, reproduced on purpose).
            self.illegal("weight", ".")
        return float(text)

    def tree(self) -> Tree:
        trees = [self.tree1()]
        self.skip_ws()
        while self.maybe_eat("|"):
            trees.append(self.tree1())
            self.skip_ws()
        return trees[0] if len(trees) == 1 else (ALT, tuple(trees))

    def tree1(self) -> Tree:
        weighted = [self.weighted()]
        self.skip_ws()
        while self.maybe_eat("&"):
            weighted.append(self.weighted())
            self.skip_ws()
        return weighted[0][1] if len(weighted) == 1 else (UNION, tuple(weighted))

    def weighted(self) -> Tuple[float, Tree]:
        self.skip_ws()
        weight = 1.0
        if self.peek() in _NUMBER:
            weight = self.number()
            self.skip_ws()
            self.eat("*")
            self.skip_ws()
        return (weight, self.simple())

    def simple(self) -> Tree:
        self.skip_ws()
        c = self.peek()
        if c == "(":
            self.i += 1
            t = self.tree()
            self.skip_ws()
            self.eat(")")
            return t
        if c == "/":
            return (LEAF, self.path())
        if c == "!":
            self.i += 1
            return FAIL_TREE
        if c == "~":
            self.i += 1
            return NEG_TREE
        if c == "$":
            self.i += 1
            return EMPTY_TREE
        self.illegal("simple", c)

    def dentry(self) -> Tuple[PrefixT, Tree]:
        pfx = self.prefix()
        self.skip_ws()
        self.eat("=")
        self.eat(">")
        return (pfx, self.tree())

    def dtab(self) -> Tuple[Tuple[PrefixT, Tree], ...]:
        dentries = []
        while True:
            self.skip_ws()
            if self.i < self.n:
                dentries.append(self.dentry())
                self.skip_ws()
            if not self.maybe_eat(";"):
                return tuple(dentries)

    def finish(self, value: object) -> object:
        self.skip_ws()
        self.ensure_end()
        return value


def read_path(s: str) -> PathT:
    """Parse a whole path such as ``/s/foo\\x2fbar``.

    Raises:
        DtabError: with Finagle's message and the offending offset.
    """
    p = _Parser(s)
    return p.finish(p.path())  # type: ignore[return-value]


def read_prefix(s: str) -> PrefixT:
    """Parse a whole dentry prefix; ``*`` elements come back as ``None``."""
    p = _Parser(s)
    return p.finish(p.prefix())  # type: ignore[return-value]


def read_tree(s: str) -> Tree:
    """Parse a whole name tree (``/a | 2 * /b & /c``) into the tuple form."""
    p = _Parser(s)
    return p.finish(p.tree())  # type: ignore[return-value]


def read_dentry(s: str) -> Tuple[PrefixT, Tree]:
    """Parse a whole dentry ``prefix => tree``."""
    p = _Parser(s)
    return p.finish(p.dentry())  # type: ignore[return-value]


def read_dtab(s: str) -> Tuple[Tuple[PrefixT, Tree], ...]:
    """Parse a whole dtab (``;``-separated dentries, one trailing ``;`` allowed)."""
    p = _Parser(s)
    return p.finish(p.dtab())  # type: ignore[return-value]

