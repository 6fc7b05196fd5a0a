"""What every transformer shares: bound names rewritten, address sets derived, interpreters wrapped.

A :class:`Transformer` rewrites one bound name (:meth:`Transformer.transform_bound`): its id gets the
transformer's prefix (``/%/io.l5d.port/4141`` ++ id), its address set is a
:class:`~pyproxy.naming.name.DerivedAddrVar` of the original's, kept in a bounded cache by original
id so that binding the same name again hands out the same live set (clients keep observing it).
An evicted set stops following its source, so an eviction moves the transformer's ``version``
(counted among the namers' versions that routers compare before using a cached binding).
:class:`TransformingInterpreter` applies transformers, in order, to every tree an interpreter binds
and to the delegation trees it explains (a ``transformation`` node per rewritten leaf);
:class:`TransformingNamer` does the same for one namer's answers (``namers[].transformers``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, List, Optional, Sequence, Tuple

from ...naming.delegation import DelegateTree, delegate, transform_leaves
from ...naming.dtab import Dtab
from ...naming.name import AddrVar, Bound, DerivedAddrVar
from ...naming.namer import Namer
from ...naming.path import Path
from ...naming.tree import Alt, Leaf, NameTree, Union, Weighted

__all__ = ["Transformer", "TransformingInterpreter", "TransformingNamer", "map_leaves", "MAX_NAMES"]

#: Transformed names kept per transformer (their derived address sets).
MAX_NAMES = 10_000
#: ``/%``: the root of transformed ids.
PERCENT = Path.read("/%")


def map_leaves(tree: NameTree, fn: Callable[[Bound], NameTree]) -> NameTree:
    """``tree`` with each bound leaf replaced by ``fn(bound)``."""
    kind = type(tree)
    if kind is Leaf:
        v = tree.value  # type: ignore[attr-defined]
        return fn(v) if isinstance(v, Bound) else tree
    if kind is Alt:
        return Alt(*(map_leaves(t, fn) for t in tree.trees))  # type: ignore[attr-defined]
    if kind is Union:
        return Union(*(Weighted(w.weight, map_leaves(w.tree, fn)) for w in tree.weighted))  # type: ignore[attr-defined]
    return tree


class Transformer:
    """Rewrites bound names; subclasses set ``name`` (Linkerd's class name) and implement
    :meth:`derive` (or override :meth:`transform_bound`)."""

    name = "Transformer"

    def __init__(self, prefix: Path, max_names: int = MAX_NAMES) -> None:
        self.prefix = PERCENT + prefix  # /%/<prefix>
        self.max_names = max_names
        self.version = 0  # moves when a derived set is evicted (see the module documentation)
        self._vars: "OrderedDict[Tuple[bytes, ...], DerivedAddrVar]" = OrderedDict()

    def derive(self, source: AddrVar) -> DerivedAddrVar:
        """The transformed address set of ``source`` (a new live set)."""
        raise NotImplementedError

    def transform_bound(self, bound: Bound) -> Bound:
        key = bound.id.elems
        var = self._vars.get(key)
        if var is None:
            var = self._vars[key] = self.derive(bound.addr)
            self._evict(key)
        else:
            self._vars.move_to_end(key)
        return Bound(self.prefix + bound.id, bound.residual, var, bound.weight)

    def transform(self, tree: NameTree) -> NameTree:
        return map_leaves(tree, lambda b: Leaf(self.transform_bound(b)))

    def _evict(self, added: Tuple[bytes, ...]) -> None:
        """Unobserved sets out, oldest first, down to ``max_names``; never the one just ``added``
        (its caller is about to use it), so with every other set observed the cache stays over."""
        if len(self._vars) <= self.max_names:
            return
        for key, var in list(self._vars.items()):
            if len(self._vars) <= self.max_names:
                return
            if key != added and not var.observed:
                var.close()
                del self._vars[key]
                self.version += 1


class TransformingInterpreter:
    """An interpreter whose bound trees (and delegation trees) go through ``transformers`` in order."""

    def __init__(self, inner: object, transformers: Sequence[Transformer]) -> None:
        self.inner = inner
        self.transformers: List[Transformer] = list(transformers)

    def bind(self, dtab: Dtab, path: Path) -> NameTree:
        tree = self.inner.bind(dtab, path)  # type: ignore[attr-defined]
        for t in self.transformers:
            tree = t.transform(tree)
        return tree

    def lookup_namers(self, path: Path) -> NameTree:
        return self.inner.lookup_namers(path)  # type: ignore[attr-defined,no-any-return]

    def delegate(self, dtab: Dtab, path: Path) -> DelegateTree:
        inner = getattr(self.inner, "delegate", None)
        tree = inner(dtab, path) if inner is not None else delegate(dtab, path, self.lookup_namers)
        for t in self.transformers:
            tree = transform_leaves(tree, _shown(t))
        return tree


def _shown(t: Transformer) -> Callable[[Bound], Optional[Tuple[str, Bound]]]:
    return lambda b: (t.name, t.transform_bound(b))


class TransformingNamer(Namer):
    """One namer whose answers (when wholly bound) go through ``transformers`` in order."""

    def __init__(self, inner: Namer, transformers: Sequence[Transformer]) -> None:
        self.inner = inner
        self.transformers = list(transformers)

    @property
    def version(self) -> Optional[int]:  # type: ignore[override]
        return self.inner.version

    def lookup(self, path: Path) -> NameTree:
        tree = self.inner.lookup(path)
        if not _all_bound(tree):
            return tree  # a rewrite to look up again through the dtab: nothing to transform yet
        for t in self.transformers:
            tree = t.transform(tree)
        return tree


def _all_bound(tree: NameTree) -> bool:
    kind = type(tree)
    if kind is Leaf:
        return isinstance(tree.value, Bound)  # type: ignore[attr-defined]
    if kind is Alt:
        return all(_all_bound(t) for t in tree.trees)  # type: ignore[attr-defined]
    if kind is Union:
        return all(_all_bound(w.tree) for w in tree.weighted)  # type: ignore[attr-defined]
    return True
