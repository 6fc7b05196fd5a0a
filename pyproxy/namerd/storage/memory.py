"""``io.l5d.inMemory``: dtabs in this process only (lost at exit; one replica).

Versions are namerd's: eight bytes, a big-endian counter per namespace that starts at 1
(``Etag: AAAAAAAAAAE=``) and grows by one with each update.
"""

from __future__ import annotations

import struct
from typing import Mapping

from ...naming.dtab import Dtab
from ..store import DtabStore, NamespaceExists, NamespaceMissing, VersionedDtab, VersionMismatch

__all__ = ["InMemoryStore"]


def _version(n: int) -> bytes:
    return struct.pack(">q", n)


class InMemoryStore(DtabStore):
    kind = "io.l5d.inMemory"

    def __init__(self, namespaces: Mapping[str, Dtab]) -> None:
        super().__init__()
        self._order = 0
        for ns, dtab in namespaces.items():
            self._set(ns, dtab, 1)
        self.ready.set()

    def _set(self, ns: str, dtab: Dtab, n: int) -> None:
        self._order += 1
        self.observed(ns, VersionedDtab(dtab, _version(n), self._order), self._order)

    def _count(self, ns: str) -> int:
        return struct.unpack(">q", self.dtabs[ns].version)[0]  # type: ignore[no-any-return]

    async def create(self, ns: str, dtab: Dtab) -> None:
        if ns in self.dtabs:
            raise NamespaceExists(ns)
        self._set(ns, dtab, 1)

    async def update(self, ns: str, dtab: Dtab, version: bytes) -> None:
        current = self.dtabs.get(ns)
        if current is None:
            raise NamespaceMissing(ns)
        if current.version != version:
            raise VersionMismatch()
        self._set(ns, dtab, self._count(ns) + 1)

    async def put(self, ns: str, dtab: Dtab) -> None:
        self._set(ns, dtab, self._count(ns) + 1 if ns in self.dtabs else 1)

    async def delete(self, ns: str) -> None:
        if ns not in self.dtabs:
            raise NamespaceMissing(ns)
        self._order += 1
        self.observed(ns, None, self._order)
