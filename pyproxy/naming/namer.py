"""The Namer interface: how service discovery answers a name (spec §4.1).

A namer gets the part of a path after its prefix (``/#/io.l5d.fs/world/x`` reaches the io.l5d.fs
namer as ``/world/x``) and answers, synchronously, a :class:`~pyproxy.naming.tree.NameTree` whose
leaves are :class:`~pyproxy.naming.name.Bound` names (found: an id, a residual and a live address
set) or :class:`~pyproxy.naming.path.Path` names (a rewrite, looked up again through the dtab), or
``Neg`` when it does not know the name. A namer that cannot answer raises
:class:`~pyproxy.errors.NamingError`. Namers that watch something (files, Kubernetes, ZooKeeper)
keep their current answer in memory and update the address sets they handed out.
"""

from __future__ import annotations

from typing import Callable, Optional

from .path import Path
from .tree import NameTree

__all__ = ["Namer", "Lookup"]

#: A lookup function: the tree a path rewrites or binds to in one step.
Lookup = Callable[[Path], NameTree]


class Namer:
    """Base class of namers; subclasses implement :meth:`lookup`."""

    #: How many times the answers may have changed; bind caches key on it (None: never changes).
    version: Optional[int] = None

    def lookup(self, path: Path) -> NameTree:
        """The tree ``path`` (relative to this namer's prefix) binds or rewrites to; Neg if unknown."""
        raise NotImplementedError
