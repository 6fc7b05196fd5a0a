"""Binding: from a logical path to a tree of bound names, through a dtab and the namers (spec §4.1-§4.2).

:func:`bind` is Finagle's ``Namer.bind`` made synchronous: it replaces path leaves by what the lookup
function answers until only bound leaves remain. Alt becomes fail-over (the first child that is not Neg
wins, Fail stops, errors propagate), Union keeps its weights (errors are tolerated while one branch
succeeds), and a chain of more than ``max_depth`` rewrites is a loop (:class:`MaxDepthError`).

Two interpreters supply the lookup function:

* :class:`DefaultInterpreter` (Finagle): the dtab, then the ``/$/`` system namer.
* :class:`ConfiguredNamersInterpreter` (Linkerd's ``default`` interpreter): the dtab, then the
  configured namers by prefix (``/#/io.l5d.fs``; later-configured first; Neg falls through), then the
  system namer, whose unknown classes become ``Unknown namer: <class> for path: <path>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple

from ..errors import MaxDepthError, NamePending, PyproxyError, UnknownNamerError
from .dtab import Dtab
from .namer import Lookup, Namer
from .path import Path
from .system import SYSTEM, SystemNamer
from .tree import Alt, Fail, Leaf, NameTree, Neg, Union, Weighted, simplify

if TYPE_CHECKING:
    from .delegation import DelegateTree

__all__ = ["bind", "DefaultInterpreter", "ConfiguredNamersInterpreter", "MAX_DEPTH"]

#: Finagle's ``namerMaxDepth`` flag default.
MAX_DEPTH = 100


def bind(lookup: Lookup, tree: NameTree, max_depth: int = MAX_DEPTH) -> NameTree:
    """Bind every path leaf of ``tree``; the result has only Bound leaves, no Alt, simplified Unions.

    Raises:
        MaxDepthError: more than ``max_depth`` successive rewrites along one chain.
        NamingError, DtabError, PathError: a lookup failed where no Union branch could absorb it.
    """
    return _bind(lookup, tree, 0, None, max_depth)


def _bind(lookup: Lookup, tree: NameTree, depth: int, weight: Optional[float], max_depth: int) -> NameTree:
    if depth > max_depth:
        raise MaxDepthError(f"Max recursion level: {max_depth} reached in Namer lookup")
    kind = type(tree)
    if kind is Leaf:
        value = tree.value  # type: ignore[attr-defined]
        if isinstance(value, Path):
            return _bind(lookup, lookup(value), depth + 1, weight, max_depth)
        return tree if weight is None else Leaf(value.with_weight(weight))
    if kind is Union:
        branches = tree.weighted  # type: ignore[attr-defined]
        if not branches:
            return Neg
        if len(branches) == 1:
            return _bind(lookup, branches[0].tree, depth, branches[0].weight, max_depth)
        ok = []
        first_error: Optional[BaseException] = None
        for w in branches:
            try:
                ok.append(Weighted(w.weight, _bind(lookup, w.tree, depth, w.weight, max_depth)))
            except NamePending:
                raise  # a Union waits for every branch (Finagle: pending while one is pending)
            except PyproxyError as exc:
                if first_error is None:
                    first_error = exc
        if not ok:
            assert first_error is not None
            raise first_error
        if len(ok) == 1:
            return ok[0].tree
        return simplify(Union(*ok))
    if kind is Alt:
        children = tree.trees  # type: ignore[attr-defined]
        if not children:
            return Neg
        if len(children) == 1:
            return _bind(lookup, children[0], depth, weight, max_depth)
        for child in children:
            r = _bind(lookup, child, depth, weight, max_depth)
            if r is Fail:
                return Fail
            if r is not Neg:
                return r
        return Neg
    return tree  # Neg, Fail, Empty


class DefaultInterpreter:
    """Finagle's default interpreter: the dtab, then ``Namer.global`` (the ``/$/`` namers)."""

    def __init__(self, system: Optional[SystemNamer] = None, max_depth: int = MAX_DEPTH) -> None:
        self.system = system or SYSTEM
        self.max_depth = max_depth

    def lookup(self, dtab: Dtab, path: Path) -> NameTree:
        t = dtab.lookup(path)
        return self.system.lookup(path) if t is Neg else t

    def bind(self, dtab: Dtab, path: Path) -> NameTree:
        return bind(lambda p: self.lookup(dtab, p), Leaf(path), self.max_depth)


class ConfiguredNamersInterpreter:
    """Linkerd's ``default`` interpreter: the dtab, then configured namers, then the system namer.

    Args:
        namers: ``(prefix, namer)`` pairs in *configuration* order, prefixes like ``/#/io.l5d.fs``;
            they are consulted in reverse (a later-configured namer wins on overlapping prefixes).
    """

    def __init__(
        self,
        namers: Sequence[Tuple[Path, Namer]] = (),
        system: Optional[SystemNamer] = None,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self.namers: Tuple[Tuple[Path, Namer], ...] = tuple(reversed(tuple(namers)))
        self.system = system or SYSTEM
        self.max_depth = max_depth

    def lookup_namers(self, path: Path) -> NameTree:
        """A path that no dentry matched: the configured namers, then the system namer."""
        for prefix, namer in self.namers:
            if path.startswith(prefix):
                t = namer.lookup(path.drop(len(prefix)))
                if t is not Neg:
                    return t
        try:
            return self.system.lookup(path)
        except UnknownNamerError as exc:
            raise UnknownNamerError(
                f"Unknown namer: {exc.class_name} for path: {path.show}", class_name=exc.class_name
            ) from None

    def lookup(self, dtab: Dtab, path: Path) -> NameTree:
        t = dtab.lookup(path)
        return self.lookup_namers(path) if t is Neg else t

    def bind(self, dtab: Dtab, path: Path) -> NameTree:
        return bind(lambda p: self.lookup(dtab, p), Leaf(path), self.max_depth)

    def delegate(self, dtab: Dtab, path: Path) -> "DelegateTree":
        """The delegation tree of ``path`` through ``dtab`` and these namers."""
        from .delegation import delegate

        return delegate(dtab, path, self.lookup_namers)
