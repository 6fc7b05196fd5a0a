"""``pyproxy namerd CONFIG``: namerd built from its config and run.

:class:`NamerdApp` builds the dtab store (``storage``), the namers (``namers``, through the same
:class:`~.discovery.Discovery` as the proxy's), the interpreter and each interface, binds every
listener, prints one readiness line per listener (``pyproxy: listening name=io.l5d.httpController
addr=127.0.0.1:4180``, then ``name=admin``), and serves until SIGTERM/SIGINT or
``POST /admin/shutdown``.
"""

from __future__ import annotations

import gc
import logging
import random
import sys
from typing import Any, List, Optional

import msgspec
import trio

from ..config.base import tag_of
from ..discovery.dns import DnsResolver
from ..errors import ConfigError
from ..naming.dtab import Dtab
from ..naming.system import SystemNamer
from ..namerd.admin import NamerdAdmin
from ..namerd.api import HttpController
from ..namerd.core import Namerd
from ..namerd.http import HttpServer
from ..namerd.store import DtabStore
from .discovery import Discovery

__all__ = ["NamerdApp", "build_store"]

log = logging.getLogger("pyproxy.namerd")

FS_POLL_SECONDS = 1.0
#: Allocations between two young-generation collections (CPython's default: 700).
GC_THRESHOLD = 50_000


def build_store(cfg: Any) -> DtabStore:
    """The dtab store a ``storage`` block describes."""
    kind = tag_of(cfg)[1]
    if kind == "io.l5d.inMemory":
        from ..namerd.storage.memory import InMemoryStore

        return InMemoryStore({ns: Dtab.read(text) for ns, text in cfg.namespaces.items()})
    if kind == "io.l5d.etcd":
        from ..namerd.storage.etcd import EtcdStore

        shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        return EtcdStore(f"http://{shown}:{cfg.port}", cfg.path_prefix)
    if kind == "io.l5d.zk":
        try:
            import kazoo  # noqa: F401 - the ZooKeeper client, an optional dependency
        except ImportError:
            raise ConfigError("$.storage.kind: io.l5d.zk needs the kazoo package: pip install 'pyproxy[namerd]'") from None
        from ..namerd.storage.zk import ZkStore

        hosts = ",".join(f"{a.host}:{a.port}" for a in cfg.zk_addrs)
        auth = (cfg.auth_info.scheme, cfg.auth_info.auth) if cfg.auth_info is not None else None
        acls = [(a.scheme, a.id, a.perms) for a in cfg.acls]
        return ZkStore(hosts, cfg.path_prefix, cfg.session_timeout_ms / 1000.0, auth, acls)
    if kind == "io.l5d.k8s":
        from ..discovery.k8s.api import KubeApi
        from ..namerd.storage.k8s import K8sStore

        shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        return K8sStore(KubeApi(f"http://{shown}:{cfg.port}"), cfg.namespace)
    raise ConfigError(f"$.storage.kind: {kind} is known but not built yet")


class NamerdApp:
    """One namerd process (see the module documentation)."""

    def __init__(self, config: Any, rng: Optional[random.Random] = None) -> None:
        self.config = config
        self.rng = rng or random.Random()
        self.dns = DnsResolver()
        self.system = SystemNamer(self.dns)
        self.discovery = Discovery(config, self.system, rng=random.Random(self.rng.getrandbits(64)))
        self.store = build_store(config.storage)
        self.namerd = Namerd(self.store, self.discovery.namers, self.system, self.discovery.versions)
        self.servers: List[HttpServer] = []
        for i, iface in enumerate(config.interfaces):
            kind = tag_of(iface)[1]
            if kind != "io.l5d.httpController":
                raise ConfigError(f"$.interfaces[{i}].kind: {kind} is known but not built yet")
            self.servers.append(HttpServer(kind, iface.ip, iface.bind_port, HttpController(self.namerd, random.Random(self.rng.getrandbits(64))),
                                           f"$.interfaces[{i}]"))
        data = msgspec.to_builtins(config)
        self.admin = HttpServer("admin", config.admin.ip, config.admin.port, NamerdAdmin(self.namerd, data, self.servers, self.stop), "$.admin")
        self._stop = trio.Event()

    def stop(self) -> None:
        self._stop.set()

    def listening(self) -> List[HttpServer]:
        return self.servers + [self.admin]

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        for server in self.listening():
            await server.bind()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.dns.run)
                await nursery.start(self.store.run)
                await nursery.start(self.namerd.run)
                for task in self.discovery.tasks():
                    await nursery.start(task)
                if self.discovery.fs_namers:
                    nursery.start_soon(self._watch_fs)
                for server in self.listening():
                    await nursery.start(server.serve)
                # namerd's objects are long-lived (a watch lives as long as a proxy's router):
                # what start-up built moves out of the collector's sight, and collections run less
                # often, so waking ten thousand watches does not rescan them all each time
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_THRESHOLD, 20, 20)
                for server in self.listening():
                    print(f"pyproxy: listening name={server.name} addr={server.address}", file=sys.stderr, flush=True)
                task_status.started()
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.store.aclose()
                await self.discovery.aclose()

    async def _watch_fs(self) -> None:
        while True:
            await trio.sleep(FS_POLL_SECONDS)
            for fs in self.discovery.fs_namers:
                try:
                    states = await trio.to_thread.run_sync(fs.poll)
                    if states is not None:
                        fs.apply(states)
                except Exception:  # noqa: BLE001 - discovery trouble must not stop namerd
                    log.exception("io.l5d.fs: cannot refresh %s", fs.root)

