"""Evaluates the ``op`` expressions of ``path.ops`` and ``dtab.ops`` vectors over pyproxy's naming API.

The vectors write operations in Finagle's Scala API: infix (``/a/b startsWith /a``, ``d1 ++ /x=>/y``,
``/a/b take 1``), method calls (``d1.stripPrefix(d1 + /s=>/b)``, ``(/a=>/b).show``), functions
(``simplified(/a=>~;/b=>/c)``) and named values (``d1``, ``Dtab.empty``, ``Dentry.nop``). Operands are
written as literals: a path ``/a/b``, a dentry ``/a=>/b``, a dtab ``/a=>/b;/c=>/d`` (or quoted
``"..."`` text); a literal becomes the type its use asks for. Scala's precedence holds: symbolic
operators (``++``, ``+``) bind tighter than ``==`` and than alphanumeric ones (``startsWith``,
``stripPrefix``, ``take``, ``drop``); all are left-associative.

An operation this module does not know raises ``UnknownOp`` (the runner turns it into a failure,
never a skip).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from pyproxy.naming import Dentry, Dtab, NameTree, Path, Prefix, simplify
from pyproxy.naming.tree import read as read_tree

__all__ = ["UnknownOp", "evaluate", "render"]

#: The named dtab of the vectors' README.
D1 = "/foo=>/bar;/baz=>/xxx/yyy"

#: Operations written without their operand (the vectors' README names it).
IMPLICIT: Dict[str, Callable[[], Any]] = {
    "Dtab.toString": lambda: Dtab.read("/a=>/b;/c=>/d").debug(),
    "Dentry.toString": lambda: Dentry.read("/a=>/b").debug(),
}


class UnknownOp(Exception):
    """An operation, name or operand type the evaluator does not know."""


class Lit:
    """Literal text whose type (path, prefix, dentry, dtab, tree) is fixed by how it is used."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def path(self) -> Path:
        return Path.read(self.text)

    def dtab(self) -> Dtab:
        return Dtab.read(self.text)

    def dentry(self) -> Dentry:
        return Dentry.read(self.text)

    def prefix(self) -> Prefix:
        return Prefix.read(self.text)

    def tree(self) -> NameTree:
        return read_tree(self.text)

    def natural(self) -> Any:
        """The literal as what it most plainly is (used when nothing asks for a type)."""
        t = self.text
        if "=>" in t:
            return self.dtab() if ";" in t else self.dentry()
        if re.fullmatch(r"-?[0-9]+", t):
            return int(t)
        if t in ("true", "false"):
            return t == "true"
        if t.startswith("/"):
            try:
                return self.path()
            except Exception:  # noqa: BLE001 - not a path: a tree such as /a|/b
                pass
        return self.tree()


def _as(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` (a literal is read as one; a dentry can stand for a one-entry dtab)."""
    if isinstance(value, Lit):
        reader = {Path: value.path, Dtab: value.dtab, Dentry: value.dentry, Prefix: value.prefix, NameTree: value.tree, int: lambda: int(value.text)}
        if kind not in reader:
            raise UnknownOp(f"a literal cannot be read as {kind.__name__}")
        return reader[kind]()
    if kind is Dtab and isinstance(value, Dentry):
        return Dtab((value,))
    if kind is NameTree and isinstance(value, NameTree):
        return value
    if not isinstance(value, kind):
        raise UnknownOp(f"expected a {kind.__name__}, got {type(value).__name__}")
    return value


def _natural(v: Any) -> Any:
    return v.natural() if isinstance(v, Lit) else v


# === operations, by name: (receiver type, argument type or None, function) ===


def _binary(name: str, left: Any, right: Any) -> Any:
    if name == "==":
        return _equal(left, right)
    if name == "!=":
        return not _equal(left, right)
    recv = _natural(left)
    if isinstance(recv, Path):
        if name == "startsWith":
            return recv.startswith(_as(right, Path))
        if name in ("++", "+", "concat"):
            return recv + _as(right, Path)
        if name == "take":
            return recv.take(_as(right, int))
        if name == "drop":
            return recv.drop(_as(right, int))
    if isinstance(recv, (Dtab, Dentry)):
        d = _as(recv, Dtab)
        if name == "+":
            return d + _as(right, Dentry)
        if name in ("++", "concat"):
            return d.concat(_as(right, Dtab))
        if name == "stripPrefix":
            return d.strip_prefix(_as(right, Dtab))
        if name == "lookup":
            return d.lookup(_as(right, Path))
    if isinstance(recv, Prefix) and name == "matches":
        return recv.matches(_as(right, Path))
    raise UnknownOp(f"{type(recv).__name__} {name} {type(_natural(right)).__name__}")


def _unary(name: str, value: Any) -> Any:
    v = _natural(value)
    if name == "show":
        return v.show if not isinstance(v, (bool, int)) else str(v).lower()
    if name == "toString":
        return v.debug() if hasattr(v, "debug") else str(v)
    if name == "size":
        return len(v)
    if name == "isEmpty":
        return len(v) == 0
    if name == "nonEmpty":
        return len(v) > 0
    if name == "simplified":
        if isinstance(v, (Dtab, Dentry)):
            return _as(v, Dtab).simplified()
        return simplify(_as(value, NameTree) if isinstance(value, Lit) else v)
    if name == "prefix" and isinstance(v, Dentry):
        return v.prefix
    if name == "dst" and isinstance(v, Dentry):
        return v.dst
    raise UnknownOp(f"{type(v).__name__}.{name}")


def _equal(a: Any, b: Any) -> bool:
    a, b = _natural(a), _natural(b)
    if isinstance(a, Dentry) and isinstance(b, Dtab) or isinstance(a, Dtab) and isinstance(b, Dentry):
        return _as(a, Dtab) == _as(b, Dtab)
    return bool(a == b)


_NAMED: Dict[str, Callable[[], Any]] = {
    "d1": lambda: Dtab.read(D1),
    "Dtab.empty": lambda: Dtab.EMPTY,  # type: ignore[attr-defined]
    "Dtab.fail": lambda: Dtab.FAIL,  # type: ignore[attr-defined]
    "Dentry.nop": lambda: Dentry.NOP,  # type: ignore[attr-defined]
    "Path.empty": lambda: Path.EMPTY,  # type: ignore[attr-defined]
}

_FUNCTIONS: Dict[str, Callable[[List[Any]], Any]] = {
    "simplified": lambda a: _unary("simplified", a[0]),
    "Path.read": lambda a: _as(a[0], Path),
    "Dtab.read": lambda a: _as(a[0], Dtab),
    "Dentry.read": lambda a: _as(a[0], Dentry),
    "Path": lambda a: Path.utf8(*(x.text if isinstance(x, Lit) else str(x) for x in a)),
    "Path.Utf8": lambda a: Path.utf8(*(x.text if isinstance(x, Lit) else str(x) for x in a)),
}

#: Scala precedence: lower binds looser. Alphanumeric operators are the loosest.
_SYMBOLIC = {"==": 1, "!=": 1, "++": 3, "+": 3}
_ALPHA_PRECEDENCE = 0
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<lit>/[^\s(),"]*)|(?P<punct>[().,])|(?P<word>[^\s().,"]+))')
#: Methods that may follow a literal without a space (``/a/b.take(1)``): path elements may hold
#: dots (``/$/inet/127.1/80``), so only these names are split off a literal.
_METHODS = ("show", "toString", "size", "isEmpty", "nonEmpty", "take", "drop", "startsWith", "stripPrefix",
            "simplified", "lookup", "concat", "prefix", "dst", "matches")
_TRAILING_METHOD = re.compile(r"^(?P<lit>.+?)\.(?P<method>" + "|".join(_METHODS) + r")$")


def _tokens(text: str) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UnknownOp(f"cannot read {text[pos:]!r}")
        pos = m.end()
        if m.group("str"):
            out.append(("lit", m.group("str")[1:-1].encode().decode("unicode_escape")))
        elif m.group("lit"):
            split = _TRAILING_METHOD.match(m.group("lit"))
            if split:
                out += [("lit", split.group("lit")), ("punct", "."), ("word", split.group("method"))]
            else:
                out.append(("lit", m.group("lit")))
        elif m.group("punct"):
            out.append(("punct", m.group("punct")))
        else:
            out.append(("word", m.group("word")))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> Optional[Tuple[str, str]]:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> Tuple[str, str]:
        t = self.peek()
        if t is None:
            raise UnknownOp("unexpected end of expression")
        self.i += 1
        return t

    def expect(self, punct: str) -> None:
        t = self.take()
        if t != ("punct", punct):
            raise UnknownOp(f"expected {punct!r}, got {t[1]!r}")

    def expr(self, min_prec: int = 0) -> Any:
        left = self.postfix()
        while True:
            t = self.peek()
            if t is None or t[0] != "word":
                return left
            name = t[1]
            prec = _SYMBOLIC.get(name, _ALPHA_PRECEDENCE if re.fullmatch(r"[A-Za-z]\w*", name) else None)  # type: ignore[arg-type]
            if prec is None:
                raise UnknownOp(f"operator {name!r}")
            if prec < min_prec:
                return left
            self.take()
            right = self.expr(prec + 1)
            left = _binary(name, left, right)

    def args(self) -> List[Any]:
        self.expect("(")
        out: List[Any] = []
        if self.peek() == ("punct", ")"):
            self.take()
            return out
        while True:
            out.append(self.expr())
            t = self.take()
            if t == ("punct", ")"):
                return out
            if t != ("punct", ","):
                raise UnknownOp(f"expected ',' or ')', got {t[1]!r}")

    def postfix(self) -> Any:
        value = self.primary()
        while self.peek() == ("punct", "."):
            self.take()
            name = self.take()[1]
            if self.peek() == ("punct", "("):
                args = self.args()
                value = _binary(name, value, args[0]) if len(args) == 1 else _unary(name, value) if not args else None
                if value is None:
                    raise UnknownOp(f"{name} with {len(args)} arguments")
            else:
                value = _unary(name, value)
        return value

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "lit":
            return Lit(text)
        if (kind, text) == ("punct", "("):
            value = self.expr()
            self.expect(")")
            return value
        if kind != "word":
            raise UnknownOp(f"unexpected {text!r}")
        # a qualified name: Dtab.empty, Dentry.nop, Path.read(...)
        while self.peek() == ("punct", ".") and self.i + 1 < len(self.toks) and (text + "." + self.toks[self.i + 1][1]) in _QUALIFIED:
            self.take()
            text += "." + self.take()[1]
        if self.peek() == ("punct", "(") and text in _FUNCTIONS:
            return _FUNCTIONS[text](self.args())
        if text in _NAMED:
            return _NAMED[text]()
        if text in _FUNCTIONS:
            raise UnknownOp(f"{text} without arguments")
        return Lit(text)  # a bare word: an argument such as Path(a,b)'s elements, or a literal


_QUALIFIED = set(_NAMED) | set(_FUNCTIONS)


def evaluate(op: str) -> Any:
    """The value of ``op`` (a Path, Dtab, Dentry, NameTree, bool, int or str)."""
    if op.strip() in IMPLICIT:
        return IMPLICIT[op.strip()]()
    p = _Parser(op)
    value = p.expr()
    if p.peek() is not None:
        raise UnknownOp(f"trailing {p.peek()[1]!r} in {op!r}")  # type: ignore[index]
    return _natural(value)


def render(value: Any) -> Any:
    """A result as the vectors write it: ``show`` text for naming values, else the value."""
    if isinstance(value, (Path, Dtab, Dentry, Prefix, NameTree)):
        return value.show
    return value
