"""``io.l5d.replace`` and ``io.l5d.const``: answer another name (validate with one namer, route elsewhere).

Both bind their ``path`` with the system namers only (``/$/inet/...``) and name the result
``/%/<prefix>/<path>``. ``io.l5d.replace`` swaps every bound leaf of a tree for it but keeps a
negative (or failed, or empty) tree as it is; ``io.l5d.const`` answers it whatever the tree was.
"""

from __future__ import annotations

from ...naming.binding import DefaultInterpreter
from ...naming.dtab import Dtab
from ...naming.name import AddrVar, Bound, DerivedAddrVar
from ...naming.path import Path
from ...naming.tree import NameTree
from .base import Transformer, map_leaves

__all__ = ["ReplaceTransformer", "ConstTransformer"]


class ReplaceTransformer(Transformer):
    name = "ReplaceTransformer"

    def __init__(self, prefix: Path, path: Path, system: DefaultInterpreter) -> None:
        super().__init__(prefix)
        self.path = path
        self._system = system
        self._bound: "NameTree | None" = None

    def replacement(self) -> NameTree:
        if self._bound is None:
            tree = self._system.bind(Dtab(), self.path)
            self._bound = map_leaves(tree, lambda b: _leaf(Bound(self.prefix + self.path, b.residual, b.addr, b.weight)))
        return self._bound

    def derive(self, source: AddrVar) -> DerivedAddrVar:  # not used: leaves are replaced whole
        return DerivedAddrVar([source], lambda v: v[0])

    def transform(self, tree: NameTree) -> NameTree:
        replacement = self.replacement()
        return map_leaves(tree, lambda _b: replacement)


class ConstTransformer(ReplaceTransformer):
    name = "ConstTransformer"

    def transform(self, tree: NameTree) -> NameTree:
        return self.replacement()


def _leaf(b: Bound) -> NameTree:
    from ...naming.tree import Leaf

    return Leaf(b)
