"""Native kernels (Rust, ``native/src``): the twins of ``pyproxy._pure``, with identical behaviour.

Values are plain tuples: a path is ``tuple[bytes, ...]``; a prefix is ``tuple[bytes | None, ...]``
(``None`` is ``*``); a tree is ``(0, path)``, ``(1, (tree, ...))``, ``(2, ((weight, tree), ...))``,
``(3,)``, ``(4,)`` or ``(5,)``; a dentry is ``(prefix, tree)``; a dtab is ``tuple[dentry, ...]``.
Parse errors raise :class:`pyproxy.errors.DtabError`; HTTP/1.1 errors :class:`pyproxy.errors.RemoteProtocolError`.
"""

from typing import List, Optional, Sequence, Tuple, Union

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

_Buffer = Union[bytes, bytearray, memoryview]
_Fields = Tuple[Tuple[bytes, bytes], ...]

def parse_request_head(buf: _Buffer, max_line: int, max_head: int, max_headers: int) -> Optional[
    Tuple[bytes, bytes, int, _Fields, int, int, bool, Tuple[bytes, ...], bool, Optional[bytes]]
]:
    """``(method, target, minor, headers, head_len, content_length, chunked, connection,
    expect_continue, host)`` or None while incomplete; raises ``RemoteProtocolError`` (see ``pyproxy._pure.h1``)."""

def parse_response_head(buf: _Buffer, max_head: int, max_headers: int) -> Optional[
    Tuple[int, int, bytes, _Fields, int, int, bool, Tuple[bytes, ...]]
]:
    """``(minor, status, reason, headers, head_len, content_length, chunked, connection)`` or None."""

def parse_chunk_line(buf: _Buffer, pos: int, max_line: int) -> Optional[Tuple[int, int]]:
    """``(size, next_pos)`` of the chunk-size line at ``buf[pos]``, or None while incomplete."""

def parse_trailers(buf: _Buffer, pos: int, max_head: int, max_headers: int) -> Optional[Tuple[_Fields, int]]:
    """``(fields, next_pos)`` of the trailer section at ``buf[pos]``, or None while incomplete."""

class DtabIndex:
    """An immutable prefix index over a dtab's dentries."""

    def __init__(self, dentries: Sequence[Tuple[tuple, tuple]]) -> None:
        """Index ``(prefix, tree)`` tuples in dtab order, as :func:`read_dtab` returns them."""
    def __len__(self) -> int: ...
    def matches(self, path: _Path) -> List[int]:
        """Indices of every dentry whose prefix matches ``path``, latest first."""
    def lookup(self, path: _Path) -> _Tree:
        """One rewriting step of ``path`` through the dtab (Finagle's ``Dtab.lookup``), unsimplified."""

class Balancer:
    """The endpoints of one client and their load; picks one per request (see ``pyproxy._pure.balance``)."""

    def __init__(self, kind: str, decay_s: float = 10.0, default_rtt_s: float = 0.030) -> None: ...
    def add(self, slot: int, now: float) -> None: ...
    def remove(self, slot: int) -> None: ...
    def set_down(self, slot: int, down: bool) -> None: ...
    def __len__(self) -> int: ...
    def slots(self) -> List[int]: ...
    def panics(self) -> int: ...
    def pick(self, now: float, draw: int) -> int: ...
    def end(self, slot: int, now: float, rtt_s: float) -> None: ...
    def load(self, slot: int, now: float) -> float: ...
    def pending(self, slot: int) -> int: ...
    def cost(self, slot: int, now: float) -> float: ...
