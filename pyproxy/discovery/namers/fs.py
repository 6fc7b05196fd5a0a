"""``io.l5d.fs``: services described by files in a directory (Linkerd's file-system namer).

Each file under ``rootDir`` is a service; a sub-directory adds a path level. A file holds one endpoint
per line, ``host port`` or ``host port * weight``; blank lines are ignored and ``#`` starts a comment.
``/#/io.l5d.fs/world/x`` binds to the file ``world`` with residual ``/x``; a missing file is Neg.

The namer keeps one live address set per file it has been asked about; :meth:`FsNamer.poll` (in a
worker thread) re-reads them when the directory changes, and :meth:`FsNamer.apply` (on the loop)
publishes the result, so clients holding the set see the new endpoints without dropping in-flight
requests. A file is first read on the loop when a name is looked up (files are small: Linkerd
refuses files over 500 KB, and so do we), but host names in it are never looked up there: such a
file's address set stays pending until the next poll resolves it in the thread, and files with
host names are read again every ``HOST_REFRESH`` seconds so their addresses follow DNS.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Dict, List, Optional, Set, Tuple

from ...naming.name import ADDR_NEG, ADDR_PENDING, Address, AddrBound, AddrFailed, AddrVar, Bound
from ...naming.namer import Namer
from ...naming.path import Path
from ...naming.system import literal_ip, parse_java_int
from ...naming.tree import Leaf, NameTree, Neg
from ..dns import blocking_lookup

__all__ = ["FsNamer", "parse_endpoints", "MAX_FILE_BYTES"]

#: Linkerd's limit on one service file.
MAX_FILE_BYTES = 500 * 1024
#: Seconds between re-reads of a file that names hosts (their addresses may change).
HOST_REFRESH = 5.0

#: Turns a host name into its IP addresses; raises ``ValueError`` when it cannot.
HostLookup = Callable[[str], List[str]]


class NeedsLookup(Exception):
    """A service file names a host, and no lookup may run here (on the event loop)."""


def parse_endpoints(text: str, lookup: Optional[HostLookup] = None) -> Tuple[Address, ...]:
    """Endpoints of one service file; host names resolved with ``lookup``.

    Raises:
        ValueError: a line that is not ``host port`` or ``host port * weight``, or a host that
            does not resolve.
        NeedsLookup: a host name, and ``lookup`` is None.
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
        literal = literal_ip(parts[0])
        if literal is not None:
            ips = [literal]
        elif lookup is None:
            raise NeedsLookup(parts[0])
        else:
            ips = lookup(parts[0])
        for ip in ips:
            out.append(Address(ip, port, meta))
    return tuple(out)


def lookup_host(host: str) -> List[str]:
    """The IP addresses of ``host`` by the system resolver (blocking: worker threads only)."""
    found = blocking_lookup(host, 0)
    if not isinstance(found, AddrBound):
        raise ValueError(getattr(found, "cause", str(found)))
    return [a.host for a in found.addresses]


class FsNamer(Namer):
    """Answers ``/#/<prefix>/<file>[/<more>]`` from the files under ``root``."""

    def __init__(self, root: str, prefix: Path = Path.read("/#/io.l5d.fs")) -> None:
        self.root = os.path.abspath(root)
        self.prefix = prefix
        self.version = 0
        self._files: Dict[Tuple[bytes, ...], AddrVar] = {}
        self._hosts: Set[Tuple[bytes, ...]] = set()  # files that name hosts
        self._hosts_read = 0.0  # time.monotonic() of their last read
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
                    var = self._files[key] = AddrVar(self._read(candidate, key, None))
                return Leaf(Bound(self.prefix + path.take(i + 1), path.drop(i + 1), var))
            if not os.path.isdir(candidate):
                return Neg
            directory = candidate
        return Neg

    def poll(self) -> Optional[Dict[Tuple[bytes, ...], object]]:
        """Look for changes; runs in a worker thread (it reads files and looks host names up).

        Returns:
            None when nothing under ``root`` changed, else the new state of every file handed out
            so far, to be given to :meth:`apply` on the event loop's thread.
        """
        signature = self._signature()
        keys = list(self._files)  # one C-level copy: safe while the loop thread adds entries
        now = time.monotonic()
        changed = signature != self._last
        hosts_due = bool(self._hosts) and now - self._hosts_read >= HOST_REFRESH
        if not changed:  # only files still waiting for a host lookup, and those due a new one
            keys = [k for k in keys if self._files[k].value is ADDR_PENDING or (hosts_due and k in self._hosts)]
            if not keys:
                return None
        self._last = signature
        if changed or hosts_due:
            self._hosts_read = now
        return {key: self._read(self._filename(key), key, lookup_host) for key in keys}

    def _filename(self, key: Tuple[bytes, ...]) -> str:
        return os.path.join(self.root, *(e.decode("utf-8", "replace") for e in key))

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

    def _read(self, filename: str, key: Tuple[bytes, ...], lookup: Optional[HostLookup]) -> object:
        """The address state a file gives (``lookup``: None on the loop, where host names wait)."""
        try:
            if os.path.getsize(filename) > MAX_FILE_BYTES:
                return AddrFailed(f"{filename}: larger than {MAX_FILE_BYTES} bytes")
            with open(filename, encoding="utf-8") as f:
                text = f.read()
            try:
                found = AddrBound(parse_endpoints(text, lookup))
            except NeedsLookup:
                self._hosts.add(key)
                return ADDR_PENDING
            if lookup is not None and any(literal_ip(line.split()[0]) is None for line in _lines(text)):
                self._hosts.add(key)
            return found
        except FileNotFoundError:
            return ADDR_NEG
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return AddrFailed(f"{filename}: {exc}")


def _lines(text: str) -> List[str]:
    return [ln for ln in (raw.split("#", 1)[0].strip() for raw in text.splitlines()) if ln]
