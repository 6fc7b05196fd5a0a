"""The ``io.l5d.fs`` interpreter's dtab file: a router's base dtab read from a file and re-read live.

Linkerd binds through ``file dtab ++ router dtab ++ the request's overrides``, so operators change
routing by editing one file, with no restart (the poor man's namerd). :class:`DtabFile` owns the
file: :meth:`poll` notices a change (size, modification time, inode) and parses the new text; a
text that does not parse, or a file that is missing or too large, keeps the last good dtab (and says
why once, in :attr:`problem`). Until a first good read there is no dtab at all: the router waits
for one, as Linkerd waits on a pending binding, up to ``bindingTimeoutMs``.

Reads are small and synchronous (:meth:`poll` is safe in a worker thread; :meth:`apply` publishes on
the event loop's thread).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple, Union

from ...errors import DtabError
from ...naming.dtab import Dtab
from ..namers.fs import MAX_FILE_BYTES

__all__ = ["DtabFile"]

_Signature = Optional[Tuple[int, int, int]]


class DtabFile:
    """One watched dtab file (``interpreter.dtabFile``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dtab: Optional[Dtab] = None  # the last good dtab; None until one was read
        self.problem: Optional[str] = None  # why the file's current content is not in use
        self.version = 0  # moves each time a new dtab is applied
        self._last: Union[_Signature, str] = "unread"

    def poll(self) -> Optional[Union[Dtab, str]]:
        """Look for a change: None when there is none, else the new dtab or what is wrong with the file."""
        try:
            st = os.stat(self.path)
            signature: _Signature = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            signature = None
        if signature == self._last:
            return None
        self._last = signature
        if signature is None:
            return f"dtab file {self.path}: not found"
        if signature[0] > MAX_FILE_BYTES:
            return f"dtab file {self.path}: larger than {MAX_FILE_BYTES} bytes"
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
            return Dtab.read(text)
        except (OSError, UnicodeDecodeError) as exc:
            return f"dtab file {self.path}: {exc}"
        except DtabError as exc:
            return f"dtab file {self.path}: {exc}"

    def apply(self, found: Union[Dtab, str]) -> bool:
        """Take what :meth:`poll` found; True when the dtab in use changed."""
        if isinstance(found, str):
            self.problem = found
            return False
        self.problem = None
        if found == self.dtab:
            return False
        self.dtab = found
        self.version += 1
        return True
