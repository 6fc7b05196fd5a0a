"""Dtab lookup through a prefix index: the pure twin of ``native/src/index.rs``.

Finagle's ``Dtab.lookup`` scans every dentry from last to first and keeps *each* one whose prefix
matches (``*`` matches any one element); the result is ``Neg`` for none, the rewritten destination for
one, and ``Alt(last, ..., first)`` for several. A longest-prefix rule would be a bug: later dentries
win and earlier ones stay as fallbacks.

:class:`DtabIndex` gives the same answer without scanning: the prefixes are stored in a trie whose
edges are labels or ``*``, so a lookup walks at most ``len(path)`` levels (branching only where a
``*`` edge exists) and never touches dentries that cannot match. Each trie node lists the indices of
the dentries whose prefix ends there; the matches are those lists along every walk, sorted descending.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from .parse import ALT, LEAF, NEG_TREE, UNION

__all__ = ["DtabIndex"]


class _Node:
    __slots__ = ("labels", "any", "ends")

    def __init__(self) -> None:
        self.labels: Dict[bytes, _Node] = {}
        self.any: Optional[_Node] = None
        self.ends: List[int] = []


def _rewrite(tree: tuple, suffix: Tuple[bytes, ...]) -> tuple:
    """The destination tree with ``suffix`` appended to every leaf path."""
    tag = tree[0]
    if tag == LEAF:
        return (LEAF, tree[1] + suffix)
    if tag == ALT:
        return (ALT, tuple(_rewrite(t, suffix) for t in tree[1]))
    if tag == UNION:
        return (UNION, tuple((w, _rewrite(t, suffix)) for w, t in tree[1]))
    return tree  # Neg, Fail, Empty


class DtabIndex:
    """An immutable prefix index over a dtab's dentries.

    Args:
        dentries: ``(prefix, tree)`` pairs in dtab order, as :func:`read_dtab` returns them.
    """

    __slots__ = ("_root", "_dentries", "_wild")

    def __init__(self, dentries: Sequence[Tuple[tuple, tuple]]) -> None:
        self._root = _Node()
        self._dentries = tuple((tuple(p), t) for p, t in dentries)
        self._wild = False
        for i, (prefix, _tree) in enumerate(self._dentries):
            node = self._root
            for elem in prefix:
                if elem is None:
                    self._wild = True
                    if node.any is None:
                        node.any = _Node()
                    node = node.any
                else:
                    nxt = node.labels.get(elem)
                    if nxt is None:
                        nxt = node.labels[elem] = _Node()
                    node = nxt
            node.ends.append(i)

    def __len__(self) -> int:
        return len(self._dentries)

    def matches(self, path: Tuple[bytes, ...]) -> List[int]:
        """Indices of every dentry whose prefix matches ``path``, latest first."""
        found: List[int] = []
        if not self._wild:
            # No '*' anywhere: a single walk down the labels.
            node: Optional[_Node] = self._root
            found.extend(self._root.ends)
            for elem in path:
                node = node.labels.get(elem)  # type: ignore[union-attr]
                if node is None:
                    break
                found.extend(node.ends)
        else:
            stack = [(self._root, 0)]
            n = len(path)
            while stack:
                node, depth = stack.pop()
                found.extend(node.ends)
                if depth < n:
                    nxt = node.labels.get(path[depth])
                    if nxt is not None:
                        stack.append((nxt, depth + 1))
                    if node.any is not None:
                        stack.append((node.any, depth + 1))
        found.sort(reverse=True)
        return found

    def lookup(self, path: Tuple[bytes, ...]) -> tuple:
        """One rewriting step of ``path`` through the dtab (Finagle's ``Dtab.lookup``), unsimplified."""
        idx = self.matches(path)
        if not idx:
            return NEG_TREE
        trees = []
        for i in idx:
            prefix, dst = self._dentries[i]
            trees.append(_rewrite(dst, path[len(prefix) :]))
        return trees[0] if len(trees) == 1 else (ALT, tuple(trees))
