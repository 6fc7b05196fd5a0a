"""The keys of an edge's signed overrides, from a file re-read when it changes (``signedOverrides.keysFile``).

The file (format in http/signature.py) must read when the proxy starts (else ``pyproxy run``
exits 2 naming the key). Afterwards :meth:`KeyFile.poll`, called about once a second off the event
loop, reads it again when its identity, size or modification time changed: a file that reads
replaces every key at once (several may be valid together: rotation is adding the new key, moving
signers, removing the old one); one that disappears or does not read keeps the last good keys,
and says why once per change (logged by the caller).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

from ..http.signature import Keyring, KeyringError

__all__ = ["KeyFile"]


class KeyFile:
    """One key file and the last keys read from it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.keyring: Optional[Keyring] = None
        #: why the last change was not applied (None: the keys in use are the file's)
        self.problem: Optional[str] = None
        self._stamp: Optional[Tuple[int, int, int, int]] = None

    def _identity(self) -> Optional[Tuple[int, int, int, int]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def load(self) -> Keyring:
        """Read the file now.

        Raises:
            KeyringError: it does not read (``line N: ...``) or cannot be opened.
        """
        stamp = self._identity()
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyringError(f"cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
        keyring = Keyring.parse(text)
        self.keyring, self._stamp, self.problem = keyring, stamp, None
        return keyring

    def poll(self) -> Tuple[Optional[Keyring], Optional[str]]:
        """``(new keys, None)`` when the file changed and reads; ``(None, why)`` when it changed
        and does not (the last good keys stay); ``(None, None)`` when nothing changed."""
        stamp = self._identity()
        if stamp == self._stamp:
            return None, None
        self._stamp = stamp
        if stamp is None:
            self.problem = f"{self.path} is gone; the last keys read stay in use"
            return None, self.problem
        try:
            keyring = self.load()
        except KeyringError as exc:
            self._stamp = stamp
            self.problem = f"{self.path}: {exc}; the last keys read stay in use"
            return None, self.problem
        return keyring, None
