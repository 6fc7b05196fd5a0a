"""Deliberately naive reference implementations that the kernels are checked against.

Nothing here is clever or fast, and nothing here imports the kernels: ``lookup`` is Finagle's
``DtabBase.lookup`` written as the plain reverse linear scan it is upstream (every dentry, last to
first, keep each one whose prefix matches, ``None`` = ``*`` matches exactly one element), over the
kernels' tuple forms (see ``pyproxy/_pure/parse.py``):

* a path is ``tuple[bytes, ...]``, a prefix ``tuple[bytes | None, ...]``;
* a tree is ``(0, path)`` leaf, ``(1, (tree, ...))`` alt, ``(2, ((weight, tree), ...))`` union,
  ``(3,)`` neg, ``(4,)`` fail, ``(5,)`` empty;
* a dtab is a sequence of ``(prefix, tree)`` dentries.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

__all__ = ["LEAF", "ALT", "UNION", "NEG", "FAIL", "EMPTY", "NEG_TREE", "prefix_matches", "rewrite", "matches", "lookup"]

# Written out again on purpose (not imported from the kernels): the oracle must not share their code.
LEAF, ALT, UNION, NEG, FAIL, EMPTY = 0, 1, 2, 3, 4, 5
NEG_TREE = (NEG,)

PathT = Tuple[bytes, ...]
PrefixT = Tuple[Optional[bytes], ...]


def prefix_matches(prefix: PrefixT, path: PathT) -> bool:
    """Finagle ``Dentry.Prefix.matches``: not longer than the path, and element-wise equal or ``*``."""
    if len(prefix) > len(path):
        return False
    for i in range(len(prefix)):
        if prefix[i] is not None and prefix[i] != path[i]:
            return False
    return True


def rewrite(tree: tuple, suffix: PathT) -> tuple:
    """``tree`` with ``suffix`` appended to every leaf path (structure, weights and atoms kept)."""
    tag = tree[0]
    if tag == LEAF:
        return (LEAF, tuple(tree[1]) + tuple(suffix))
    if tag == ALT:
        return (ALT, tuple(rewrite(child, suffix) for child in tree[1]))
    if tag == UNION:
        return (UNION, tuple((weight, rewrite(child, suffix)) for weight, child in tree[1]))
    if tag in (NEG, FAIL, EMPTY):
        return tree
    raise ValueError(f"not a name tree: {tree!r}")


def matches(dentries: Sequence[Tuple[PrefixT, tuple]], path: PathT) -> List[int]:
    """Indices of the dentries whose prefix matches ``path``, latest (highest index) first."""
    out = []
    i = len(dentries) - 1
    while i >= 0:
        if prefix_matches(tuple(dentries[i][0]), tuple(path)):
            out.append(i)
        i -= 1
    return out


def lookup(dentries: Sequence[Tuple[PrefixT, tuple]], path: PathT) -> tuple:
    """One rewriting step: ``NEG_TREE`` for no match, the rewritten tree for one, ``(ALT, trees)`` for several."""
    path = tuple(path)
    trees = []
    for prefix, dst in reversed(list(dentries)):
        prefix = tuple(prefix)
        if prefix_matches(prefix, path):
            trees.append(rewrite(dst, path[len(prefix) :]))
    if not trees:
        return NEG_TREE
    if len(trees) == 1:
        return trees[0]
    return (ALT, tuple(trees))
