"""``io.l5d.fs``: services described by files in a directory (Linkerd's file-system namer).

Each file under ``rootDir`` is a service; a sub-directory adds a path level. A file holds one endpoint
per line, ``host port`` or ``host port * weight``; blank lines are ignored and ``#`` starts a comment.
``/#/io.l5d.fs/world/x`` binds to the file ``world`` with residual ``/x``; a missing file is Neg.

The namer keeps one live address set per file it has been asked about; :meth:`FsNamer.refresh`
re-reads them (the proxy calls it when the directory changes), so clients holding the set see the
new endpoints without dropping in-flight requests. Reads are synchronous and small (Linkerd refuses
files over 500 KB, and so do we).
"""

from __future__ import annotations

import os
import socket
from typing import Dict, List, Optional, Tuple

from ...naming.name import Address, AddrBound, AddrFailed, AddrVar, Bound, ADDR_NEG
from ...naming.namer import Namer
from ...naming.path import Path
from ...naming.system import literal_ip, parse_java_int
from ...naming.tree import Leaf, NameTree, Neg

__all__ = ["FsNamer", "parse_endpoints", "MAX_FILE_BYTES"]

#: Linkerd's limit on one service file.
MAX_FILE_BYTES = 500 * 1024


def parse_endpoints(text: str) -> Tuple[Address, ...]:
    """Endpoints of one service file.

    Raises:
        ValueError: a line that is not ``host port`` or ``host port * weight``.
    """
    out: List[Address] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        weight: Optional[float] = None
        if len(parts) == 4 and parts[2] == "*":
            try:
                weight = float(parts[3])
            except ValueError:
                raise ValueError(f"line {n}: bad weight {parts[3]!r}") from None
            parts = parts[:2]
        port = parse_java_int(parts[1]) if len(parts) == 2 else None
        if port is None or not 0 < port <= 65535:
            raise ValueError(f"line {n}: expected 'host port' or 'host port * weight', got {line!r}")
        meta = {} if weight is None else {"endpoint_addr_weight": weight}
        for ip in _resolve(parts[0]):
            out.append(Address(ip, port, meta))
    return tuple(out)


def _resolve(host: str) -> List[str]:
    literal = literal_ip(host)
    if literal is not None:
        return [literal]
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    seen: List[str] = []
    for info in infos:
        if info[4][0] not in seen:
            seen.append(info[4][0])
    return seen


class FsNamer(Namer):
    """Answers ``/#/<prefix>/<file>[/<more>]`` from the files under ``root``."""

    def __init__(self, root: str, prefix: Path = Path.read("/#/io.l5d.fs")) -> None:
        self.root = os.path.abspath(root)
        self.prefix = prefix
        self.version = 0
        self._files: Dict[Tuple[bytes, ...], AddrVar] = {}
        self._last = self._signature()

    def lookup(self, path: Path) -> NameTree:
        directory = self.root
        for i, elem in enumerate(path.elems):
            name = elem.decode("utf-8", "replace")
            if name in (".", "..") or "/" in name or "\0" in name:
                return Neg
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                key = path.elems[: i + 1]
                var = self._files.get(key)
                if var is None:
                    var = self._files[key] = AddrVar(self._read(candidate))
                return Leaf(Bound(self.prefix + path.take(i + 1), path.drop(i + 1), var))
            if not os.path.isdir(candidate):
                return Neg
            directory = candidate
        return Neg

    def poll(self) -> Optional[Dict[Tuple[bytes, ...], object]]:
        """Look for changes; safe to run in a worker thread (it only reads files).

        Returns:
            None when nothing under ``root`` changed, else the new state of every file handed out
            so far, to be given to :meth:`apply` on the event loop's thread.
        """
        signature = self._signature()
        if signature == self._last:
            return None
        self._last = signature
        keys = list(self._files)  # one C-level copy: safe while the loop thread adds entries
        return {key: self._read(os.path.join(self.root, *(e.decode("utf-8", "replace") for e in key))) for key in keys}

    def apply(self, states: Dict[Tuple[bytes, ...], object]) -> None:
        """Publish what :meth:`poll` found: address sets notify their observers (clients), and
        :attr:`version` moves so cached bindings, which may hold a negative answer for a file that
        now exists, are recomputed."""
        self.version += 1
        for key, state in states.items():
            var = self._files.get(key)
            if var is not None:
                var.update(state)

    def refresh(self) -> None:
        """:meth:`poll` and :meth:`apply` in one step (single-threaded callers, tests, the CLI)."""
        states = self.poll()
        if states is not None:
            self.apply(states)

    def _signature(self) -> Tuple[Tuple[str, int, int], ...]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                out.append((full, st.st_mtime_ns, st.st_size))
            if len(out) > 100_000:  # a runaway directory: stop scanning, still detect most changes
                break
        return tuple(out)

    def _read(self, filename: str) -> object:
        try:
            if os.path.getsize(filename) > MAX_FILE_BYTES:
                return AddrFailed(f"{filename}: larger than {MAX_FILE_BYTES} bytes")
            with open(filename, encoding="utf-8") as f:
                return AddrBound(parse_endpoints(f.read()))
        except FileNotFoundError:
            return ADDR_NEG
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return AddrFailed(f"{filename}: {exc}")
