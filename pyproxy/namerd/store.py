"""The dtab store interface (namerd's ``DtabStore``) and what every storage shares: a mirror.

A store holds one dtab per namespace, each with an opaque version (the bytes whose base64 is the
API's ``Etag``): ``create`` (fails when present), ``update`` (only from the version given:
compare-and-swap), ``put`` (create or replace), ``delete``. Every storage keeps a *mirror* of all
its namespaces current by watching the backend (:meth:`DtabStore.run`), so reads, bindings and
watches never wait on the backend; a write applies its own result to the mirror at once (read your
writes), and the watch confirms it. Each namespace's entry carries an ``order`` (the backend's
global change counter: etcd's ``modifiedIndex``, ZooKeeper's ``mzxid``, Kubernetes'
``resourceVersion``) so a late event never replaces a newer state.

While the backend cannot be reached, :attr:`DtabStore.problem` says why: the API answers 503
(nothing is written), and bindings keep using the mirror (proxies keep their routes). A stored
value that does not parse is logged once and its namespace keeps its last good dtab.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Dict, List, NamedTuple, Optional

import trio

from ..errors import DtabError, PathError
from ..naming.dtab import Dtab

__all__ = [
    "VersionedDtab",
    "DtabStore",
    "StoreError",
    "NamespaceExists",
    "NamespaceMissing",
    "VersionMismatch",
    "StoreUnavailable",
    "Changes",
    "version_string",
    "NAMESPACE_RE",
]

log = logging.getLogger("pyproxy.namerd")

#: A dtab namespace: what every storage can hold as one key (etcd key, znode, Kubernetes name).
NAMESPACE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}\Z")


class VersionedDtab(NamedTuple):
    dtab: Dtab
    version: bytes  # opaque; base64 in Etag / If-Match
    order: int = 0  # the backend's change counter (newer is larger)


def version_string(version: bytes) -> str:
    """The ``Etag`` of a version (namerd: base64 of the version's bytes)."""
    return base64.b64encode(version).decode("ascii")


class StoreError(Exception):
    """A store operation refused; ``status`` is the API's answer."""

    status = 500


class NamespaceExists(StoreError):
    status = 409

    def __init__(self, ns: str) -> None:
        super().__init__(f"The dtab namespace {ns} already exists")


class NamespaceMissing(StoreError):
    status = 404

    def __init__(self, ns: str) -> None:
        super().__init__(f"The dtab namespace {ns} does not exist")


class VersionMismatch(StoreError):
    status = 412

    def __init__(self) -> None:
        super().__init__("Could not update dtab: current version does not match provided version")


class StoreUnavailable(StoreError):
    status = 503


class Changes:
    """A change counter that tasks can wait on (one event per generation, never polled)."""

    def __init__(self) -> None:
        self.generation = 0
        self._event = trio.Event()

    def bump(self) -> None:
        self.generation += 1
        event, self._event = self._event, trio.Event()
        event.set()

    async def wait(self, generation: int) -> None:
        """Return once the counter has moved past ``generation``."""
        while self.generation == generation:
            await self._event.wait()


class DtabStore:
    """Base of the storages: the mirror, its change counter and the backend's health."""

    kind = ""

    def __init__(self) -> None:
        self.dtabs: Dict[str, VersionedDtab] = {}
        self.changes = Changes()
        self.ready = trio.Event()  # set once the mirror holds the backend's state
        self.problem: Optional[str] = None  # why the backend cannot be reached now
        self._bad: Dict[str, str] = {}  # namespace -> raw text that did not parse (logged once)
        self._tombstones: Dict[str, int] = {}  # namespace -> order of its deletion

    # === reads (from the mirror) ===

    def get(self, ns: str) -> Optional[VersionedDtab]:
        return self.dtabs.get(ns)

    def namespaces(self) -> List[str]:
        return sorted(self.dtabs)

    def check_available(self) -> None:
        """Raise :class:`StoreUnavailable` while the backend is unreachable or not yet read."""
        if self.problem is not None:
            raise StoreUnavailable(f"dtab store {self.kind} unavailable: {self.problem}")
        if not self.ready.is_set():
            raise StoreUnavailable(f"dtab store {self.kind}: not read yet")

    # === writes (subclasses) ===

    async def create(self, ns: str, dtab: Dtab) -> None:
        raise NotImplementedError

    async def update(self, ns: str, dtab: Dtab, version: bytes) -> None:
        raise NotImplementedError

    async def put(self, ns: str, dtab: Dtab) -> None:
        raise NotImplementedError

    async def delete(self, ns: str) -> None:
        raise NotImplementedError

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the mirror current (until cancelled); ``started`` once the first state is known or
        the first attempt failed (the API then answers 503 until the backend answers)."""
        self.ready.set()
        task_status.started()

    async def aclose(self) -> None:
        pass

    # === the mirror, maintained by subclasses ===

    def parse(self, ns: str, text: str) -> Optional[Dtab]:
        """The dtab of a stored value, or None (logged once per bad value) when it does not parse."""
        try:
            dtab = Dtab.read(text)
        except (DtabError, PathError) as exc:
            if self._bad.get(ns) != text:
                self._bad[ns] = text
                kept = "its last good dtab stays in use" if ns in self.dtabs else "it is left out until it parses"
                log.warning("dtab store %s: namespace %s does not parse (%s); %s", self.kind, ns, exc, kept)
            return None
        self._bad.pop(ns, None)
        return dtab

    def observed(self, ns: str, value: Optional[VersionedDtab], order: int) -> None:
        """The backend says ``ns`` is ``value`` (None: absent) as of ``order``; older news is dropped."""
        current = self.dtabs.get(ns)
        if current is not None and order and current.order > order:
            return
        if value is None:
            if order and self._tombstones.get(ns, 0) > order:
                return
            if current is not None:
                del self.dtabs[ns]
                self._tombstones[ns] = order
                self.changes.bump()
            return
        if order and self._tombstones.get(ns, 0) > order:
            return
        if current is not None and current.version == value.version and current.dtab == value.dtab:
            return
        self._tombstones.pop(ns, None)
        self.dtabs[ns] = value
        self.changes.bump()

    def replace_all(self, values: Dict[str, VersionedDtab]) -> None:
        """A whole listing: the mirror becomes ``values`` (each namespace as by :meth:`observed`)."""
        for ns in [n for n in self.dtabs if n not in values]:
            del self.dtabs[ns]
            self.changes.bump()
        self._tombstones.clear()
        for ns, value in values.items():
            self.observed(ns, value, value.order)

    def healthy(self) -> None:
        if self.problem is not None:
            log.info("dtab store %s: reachable again", self.kind)
            self.problem = None
            self.changes.bump()
        self.ready.set()

    def unhealthy(self, problem: str) -> None:
        if self.problem != problem:
            log.warning("dtab store %s: %s; the last known dtabs stay in use", self.kind, problem)
            self.problem = problem
            self.changes.bump()
