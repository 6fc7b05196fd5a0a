"""Native kernels (Rust, ``native/src``): the twins of ``pyproxy._pure``, with identical behaviour.

Values are plain tuples: a path is ``tuple[bytes, ...]``; a prefix is ``tuple[bytes | None, ...]``
(``None`` is ``*``); a tree is ``(0, path)``, ``(1, (tree, ...))``, ``(2, ((weight, tree), ...))``,
``(3,)``, ``(4,)`` or ``(5,)``; a dentry is ``(prefix, tree)``; a dtab is ``tuple[dentry, ...]``.
Parse errors raise :class:`pyproxy.errors.DtabError`.
"""

from typing import List, Optional, Sequence, Tuple

__version__: str

_Path = Tuple[bytes, ...]
_Prefix = Tuple[Optional[bytes], ...]
_Tree = tuple
_Dentry = Tuple[_Prefix, _Tree]

def read_path(s: str) -> _Path:
    """Parse a whole path such as ``/s/foo\\x2fbar``."""

def read_prefix(s: str) -> _Prefix:
    """Parse a whole dentry prefix; ``*`` elements come back as ``None``."""

def read_tree(s: str) -> _Tree:
    """Parse a whole name tree (``/a | 2 * /b & /c``) into the tuple form."""

def read_dentry(s: str) -> _Dentry:
    """Parse a whole dentry ``prefix => tree``."""

def read_dtab(s: str) -> Tuple[_Dentry, ...]:
    """Parse a whole dtab (``;``-separated dentries, one trailing ``;`` allowed)."""

class DtabIndex:
    """An immutable prefix index over a dtab's dentries."""

    def __init__(self, dentries: Sequence[Tuple[tuple, tuple]]) -> None:
        """Index ``(prefix, tree)`` tuples in dtab order, as :func:`read_dtab` returns them."""
    def __len__(self) -> int: ...
    def matches(self, path: _Path) -> List[int]:
        """Indices of every dentry whose prefix matches ``path``, latest first."""
    def lookup(self, path: _Path) -> _Tree:
        """One rewriting step of ``path`` through the dtab (Finagle's ``Dtab.lookup``), unsimplified."""
