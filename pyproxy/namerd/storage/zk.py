"""``io.l5d.zk``: dtabs in ZooKeeper znodes ``<pathPrefix>/<ns>``, as namerd keeps them (kazoo as
the client).

A namespace's version is its znode's data version (``stat.version``; the ``Etag`` is the base64 of
it as four big-endian bytes, namerd's encoding); ``update`` is ``set`` with that version
(``BadVersion``: stale), ``create`` a persistent znode with the configured ACLs (``NodeExists``:
409), ``put`` a create or an unconditional set, ``delete`` a delete (``NoNode``: 404).

The mirror: kazoo's ``ChildrenWatch`` on the prefix and a ``DataWatch`` per namespace (kazoo runs
them in its own threads and re-arms them across reconnections; each callback hands its news to
the trio loop). Writes run in worker threads. While the session is suspended or lost the store is
unavailable (503) and the mirror stands; kazoo reconnects by itself.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import trio

from ...naming.dtab import Dtab
from ..store import DtabStore, NamespaceExists, NamespaceMissing, StoreUnavailable, VersionedDtab, VersionMismatch

__all__ = ["ZkStore"]

log = logging.getLogger("pyproxy.namerd")

#: How long start-up waits for the first connection before namerd serves without it.
CONNECT_WAIT = 5.0


def _version(v: int) -> bytes:
    return struct.pack(">i", v)


class ZkStore(DtabStore):
    kind = "io.l5d.zk"

    def __init__(self, hosts: str, prefix: str, session_timeout: float = 10.0,
                 auth: Optional[Tuple[str, str]] = None, acls: Sequence[Tuple[str, str, str]] = ()) -> None:
        super().__init__()
        from kazoo.client import KazooClient

        self.hosts = hosts
        self.prefix = "/" + prefix.strip("/")
        self.zk = KazooClient(hosts=hosts, timeout=session_timeout, connection_retry={"max_tries": -1, "max_delay": 2},
                              auth_data=[auth] if auth is not None else None)
        self.auth = auth
        self.acls = self._acls(acls)
        self._token: Optional[trio.lowlevel.TrioToken] = None
        self._watched: Dict[str, Any] = {}
        self._children: Optional[Any] = None
        self._new: Optional[trio.MemorySendChannel[str]] = None

    @staticmethod
    def _acls(specs: Sequence[Tuple[str, str, str]]) -> Optional[List[Any]]:
        if not specs:
            return None  # kazoo's default: OPEN_ACL_UNSAFE, namerd's default too
        from kazoo.security import ACL, Id, Permissions

        bits = {"r": Permissions.READ, "w": Permissions.WRITE, "c": Permissions.CREATE, "d": Permissions.DELETE, "a": Permissions.ADMIN}
        return [ACL(sum(bits[c] for c in perms), Id(scheme, ident)) for scheme, ident, perms in specs]

    # === from kazoo's threads to the loop ===

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        token = self._token
        if token is None:
            return
        try:
            trio.from_thread.run_sync(fn, *args, trio_token=token)
        except (trio.RunFinishedError, RuntimeError):
            pass  # the loop has ended (namerd is stopping)

    def _state(self, state: str) -> None:
        from kazoo.client import KazooState

        if state == KazooState.CONNECTED:
            self._to_loop(self.healthy)
        else:
            self._to_loop(self.unhealthy, f"ZooKeeper session {state.lower()} ({self.hosts})")

    def _on_children(self, children: List[str]) -> None:
        self._to_loop(self._children_changed, list(children))

    def _children_changed(self, children: List[str]) -> None:
        for ns in [n for n in self.dtabs if n not in children]:
            self.observed(ns, None, 0)
        for ns in children:
            self._want_watch(ns)

    def _want_watch(self, ns: str) -> None:
        """Start watching ``ns`` (kazoo's DataWatch reads the node at once, a blocking call: it is
        made in a worker thread by :meth:`run`)."""
        if ns not in self._watched and self._new is not None:
            self._watched[ns] = None
            try:
                self._new.send_nowait(ns)
            except trio.WouldBlock:
                self._watched.pop(ns, None)

    def _watch(self, ns: str) -> None:
        from kazoo.recipe.watchers import DataWatch

        def changed(data: Optional[bytes], stat: Any) -> Optional[bool]:
            self._to_loop(self._data_changed, ns, data, stat)
            if stat is None:
                self._to_loop(self._watched.pop, ns, None)
                return False  # the znode is gone: this watch ends (a new one starts if it returns)
            return None

        self._watched[ns] = DataWatch(self.zk, f"{self.prefix}/{ns}", changed)

    def _data_changed(self, ns: str, data: Optional[bytes], stat: Any) -> None:
        if stat is None:
            self.observed(ns, None, 0)
            return
        self._observe_node(ns, data or b"", stat)

    def _observe_node(self, ns: str, data: bytes, stat: Any) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "\0"  # does not parse either: logged, the last good dtab stays
        dtab = self.parse(ns, text)
        if dtab is not None:
            self.observed(ns, VersionedDtab(dtab, _version(stat.version), stat.mzxid), stat.mzxid)

    # === writes (kazoo is blocking: worker threads) ===

    async def _op(self, fn: Callable[[], Any]) -> Any:
        from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, SessionExpiredError

        if self.problem is not None:
            raise StoreUnavailable(f"dtab store io.l5d.zk unavailable: {self.problem}")
        try:
            return await trio.to_thread.run_sync(fn)
        except (ConnectionLoss, SessionExpiredError, ConnectionClosedError) as exc:
            raise StoreUnavailable(f"dtab store io.l5d.zk unavailable: {type(exc).__name__}") from None

    async def create(self, ns: str, dtab: Dtab) -> None:
        from kazoo.exceptions import NodeExistsError

        path = f"{self.prefix}/{ns}"
        try:
            await self._op(lambda: self.zk.create(path, dtab.show.encode(), acl=self.acls, makepath=True))
        except NodeExistsError:
            raise NamespaceExists(ns) from None
        await self._reread(ns)

    async def update(self, ns: str, dtab: Dtab, version: bytes) -> None:
        from kazoo.exceptions import BadVersionError, NoNodeError

        if len(version) != 4:
            raise VersionMismatch()
        expected = struct.unpack(">i", version)[0]
        try:
            stat = await self._op(lambda: self.zk.set(f"{self.prefix}/{ns}", dtab.show.encode(), version=expected))
        except BadVersionError:
            raise VersionMismatch() from None
        except NoNodeError:
            raise NamespaceMissing(ns) from None
        self.observed(ns, VersionedDtab(dtab, _version(stat.version), stat.mzxid), stat.mzxid)

    async def put(self, ns: str, dtab: Dtab) -> None:
        from kazoo.exceptions import NodeExistsError

        path = f"{self.prefix}/{ns}"

        def create_or_set() -> Any:
            try:
                self.zk.create(path, dtab.show.encode(), acl=self.acls, makepath=True)
                return None
            except NodeExistsError:
                return self.zk.set(path, dtab.show.encode())

        await self._op(create_or_set)
        await self._reread(ns)

    async def delete(self, ns: str) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            await self._op(lambda: self.zk.delete(f"{self.prefix}/{ns}"))
        except NoNodeError:
            raise NamespaceMissing(ns) from None
        self.observed(ns, None, 0)

    async def _reread(self, ns: str) -> None:
        from kazoo.exceptions import NoNodeError

        try:
            data, stat = await self._op(lambda: self.zk.get(f"{self.prefix}/{ns}"))
        except NoNodeError:
            return
        self._observe_node(ns, data, stat)
        self._want_watch(ns)

    # === running ===

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        from kazoo.recipe.watchers import ChildrenWatch

        self._token = trio.lowlevel.current_trio_token()
        self._new, new = trio.open_memory_channel[str](10_000)
        self.zk.add_listener(self._state)
        self.unhealthy(f"connecting to ZooKeeper ({self.hosts})")
        try:
            connecting = self.zk.start_async()  # kazoo keeps trying in its own thread
            await trio.to_thread.run_sync(connecting.wait, CONNECT_WAIT, abandon_on_cancel=True)
            while True:
                try:
                    await trio.to_thread.run_sync(lambda: self.zk.ensure_path(self.prefix, acl=self.acls), abandon_on_cancel=True)
                    break
                except Exception as exc:  # noqa: BLE001 - not connected yet: kazoo keeps trying
                    self.unhealthy(f"ZooKeeper ({self.hosts}): {type(exc).__name__ or exc}")
                    task_status.started()  # namerd serves (503 from the API) while ZooKeeper is away
                    task_status = trio.TASK_STATUS_IGNORED
                    await trio.sleep(0.5)
            self._children = await trio.to_thread.run_sync(ChildrenWatch, self.zk, self.prefix, self._on_children)
            if self.zk.connected:
                self.healthy()
            task_status.started()
            async for ns in new:
                await trio.to_thread.run_sync(self._watch, ns)
        finally:
            self._token = None

    async def aclose(self) -> None:
        def stop() -> None:
            try:
                self.zk.stop()
                self.zk.close()
            except Exception:  # noqa: BLE001 - closing a client that never connected
                pass

        await trio.to_thread.run_sync(stop)
