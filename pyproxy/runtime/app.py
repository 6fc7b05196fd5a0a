"""The running proxy: builds namers, routers, servers and the admin server from a config, and runs them.

``App(config).run()`` binds every listener first (so a port conflict fails before anything serves),
prints one readiness line per listener (``pyproxy: listening name=<label> addr=<ip>:<port>``), then
serves until cancelled or asked to stop (SIGTERM/SIGINT, ``POST /admin/shutdown``): listeners close,
requests in flight finish within ``admin.shutdownGraceMs``, then everything is cancelled.
"""

from __future__ import annotations

import gc
import logging
import random
import sys
from typing import Any, Dict, List, Optional, Tuple

import trio

from ..config.base import tag_of
from ..errors import ConfigError
from .footprint import trim_heap
from ..http.forwarded import Forwarded, Labeler
from ..datapath.lane import LaneDriver
from ..datapath.lane import enabled as lane_enabled
from ..routing.identifiers import (
    HeaderPathIdentifier,
    HeaderTokenIdentifier,
    Identifier,
    MethodAndHostIdentifier,
    PathIdentifier,
    StaticIdentifier,
    IngressIdentifier,
)
from ..discovery.interpreters.dtabfile import DtabFile
from ..discovery.namers.fs import FsNamer
from ..discovery.dns import DnsResolver
from .discovery import Discovery
from ..naming.system import SystemNamer
from ..naming.dtab import Dtab
from ..naming.path import Path
from ..routing.keyfile import KeyFile
from ..routing.overrides import OverrideRules, SignedOverrides
from ..routing.policy import Policies
from ..http.baggage import BaggageRules
from ..http.signature import KeyringError
from ..routing.router import Router, RouterParams, ServerRules
from ..datapath.forwarder import Forwarder, Observers
from ..datapath.server import TIMEOUT_RESPONSE, Server, ServerOptions
from ..datapath.stream import WRITE_TIMEOUT
from ..telemetry import Telemetry
from ..view import ProxyView

__all__ = ["App", "build_identifiers"]

log = logging.getLogger("pyproxy")

#: How often file-system namers look for changes.
FS_POLL_SECONDS = 1.0
#: A head must arrive within this long once its first byte has (``socketOptions.readTimeoutMs`` overrides).
DEFAULT_HEADER_TIMEOUT = 10.0
#: A connection idle between requests closes after this long (``serverSession.idleTimeMs`` overrides);
#: Linkerd keeps idle connections forever, which lets idle clients pin sockets indefinitely.
DEFAULT_IDLE_TIMEOUT = 300.0


def build_identifiers(router_cfg: Any, dst_prefix: Path, discovery: Optional["Discovery"] = None) -> List[Identifier]:
    """The identifiers of an HTTP router (``identifier`` may be one object or a list); ``discovery``
    makes the Kubernetes Ingress rules ``io.l5d.ingress`` reads."""
    cfg = router_cfg.identifier
    items = [] if cfg is None else (list(cfg) if isinstance(cfg, (list, tuple)) else [cfg])
    if not items:
        return [HeaderTokenIdentifier(dst_prefix, "Host")]
    out: List[Identifier] = []
    for it in items:
        kind = getattr(it, "kind", None) or type(it).__struct_config__.tag  # type: ignore[attr-defined]
        if kind == "io.l5d.header.token":
            out.append(HeaderTokenIdentifier(dst_prefix, it.header))
        elif kind == "io.l5d.methodAndHost":
            out.append(MethodAndHostIdentifier(dst_prefix, it.http_uri_in_dst))
        elif kind == "io.l5d.path":
            out.append(PathIdentifier(dst_prefix, it.segments, it.consume))
        elif kind == "io.l5d.header":
            out.append(HeaderPathIdentifier(dst_prefix, it.header))
        elif kind == "io.l5d.static":
            out.append(StaticIdentifier(dst_prefix, Path.read(it.path)))
        elif kind == "io.l5d.ingress" and discovery is not None:
            out.append(IngressIdentifier(dst_prefix, discovery.ingress_rules(it)))
        else:
            raise ConfigError(f"identifier {kind} is known but not built yet")
    return out


def _kind(obj: Any) -> str:
    k = getattr(obj, "kind", None)
    if k:
        return str(k)
    return str(type(obj).__struct_config__.tag)  # type: ignore[attr-defined]


def _ms(value: Optional[int]) -> Optional[float]:
    return None if value is None else value / 1000.0


class App:
    """Everything one config describes, ready to run."""

    def __init__(
        self,
        config: Any,
        *,
        rng: Optional[random.Random] = None,
        ports: Optional[Dict[Tuple[int, int], int]] = None,
        reuse_port: bool = False,
        admin_addr: Optional[Tuple[str, int]] = None,
    ) -> None:
        """Args:
            ports: listener ports that replace the configured ones, by (router index, server index);
                used by worker processes, which all bind the same ports.
            reuse_port: bind every listener with SO_REUSEPORT (worker processes).
            admin_addr: where the admin server listens instead of ``admin.ip:admin.port``.
        """
        self.config = config
        self._ports = ports or {}
        self._reuse_port = reuse_port
        self._admin_addr = admin_addr
        self.rng = rng or random.Random()
        # Metrics registry and telemeters first: routers and servers take their stats from it.
        self.telemetry = Telemetry.from_config(config.telemetry)
        self.dns = DnsResolver()  # /$/inet host names, resolved off the loop
        self.system = SystemNamer(self.dns)
        self.discovery = Discovery(config, self.system, rng=random.Random(self.rng.getrandbits(64)))
        self.fs_namers = self.discovery.fs_namers
        self.dtab_files: List[Tuple[DtabFile, Router]] = []  # io.l5d.fs interpreters
        self.key_files: List[Tuple[KeyFile, SignedOverrides, Router]] = []  # signedOverrides.keysFile
        self.routers: List[Router] = []
        self.forwarders: List[Forwarder] = []
        self.servers: List[Tuple[str, Server]] = []
        self.access_logs: List[Any] = []  # AccessLog (imported when one is configured)
        # The native data path, unless Zipkin tracing needs to see every request in Python.
        use_lane = lane_enabled() and self.telemetry.tracer is None
        self.lane: Optional[LaneDriver] = LaneDriver(self.rng.getrandbits(64), self.telemetry.recent) if use_lane else None
        if not use_lane:
            why = "io.l5d.zipkin traces every request in Python" if lane_enabled() else "PYPROXY_LANE=off or pure kernels"
            log.info("lane: off (%s)", why)
        for i, rc in enumerate(config.routers):
            self._add_router(i, rc)
        self.view = ProxyView.of(config, self.forwarders, [s for _, s in self.servers], self.lane, self.stop, self.discovery.k8s_namers)
        self.telemetry.watch(self.view)
        self.admin: Optional[Any] = None
        self._stop = trio.Event()

    def namer_versions(self) -> object:
        """Changes whenever a namer's answers may have changed (bind caches compare it)."""
        return self.discovery.versions()

    def _add_router(self, index: int, rc: Any) -> None:
        if getattr(rc, "protocol", "http") != "http":
            raise ConfigError(f"protocol {rc.protocol} is known but not built yet")
        dst_prefix = Path.read(rc.dst_prefix)
        service = getattr(rc, "service", None)
        client = getattr(rc, "client", None)
        params = RouterParams(
            label=rc.label,
            dtab=Dtab.read(rc.dtab),
            identifiers=build_identifiers(rc, dst_prefix, self.discovery),
            interpreter=self.discovery.interpreter(index, getattr(rc, "interpreter", None)),
            namer_versions=self.namer_versions,
            binding_timeout=rc.binding_timeout_ms / 1000.0,
            max_line=rc.max_initial_line_kb * 1024,
            max_head=rc.max_headers_kb * 1024,
            max_err_response=rc.max_err_response_kb * 1024,
            stream_after=rc.stream_after_content_length_kb * 1024,
            policies=Policies(client, service, rc.binding_cache.clients, rc.binding_cache.paths),
            bind_cache=rc.binding_cache.trees,
        )
        router = Router(params, random.Random(self.rng.getrandbits(64)))
        observers = Observers(self.telemetry.recent, self.telemetry.tracer, self._access_log(index, rc))
        bc = rc.binding_cache
        forwarder = Forwarder(router, self.telemetry.router(rc.label), observers, router.rng, bc.clients, float(bc.idle_ttl_secs),
                              bc.bounds, bc.paths)
        if rc.originator:  # Linkerd's marker for de-duplicating stats of linker-to-linker hops
            self.telemetry.metrics.scope("rt", rc.label).gauge("originator", lambda: 1)
        self.routers.append(router)
        self.forwarders.append(forwarder)
        interpreter = getattr(rc, "interpreter", None)
        if interpreter is not None and tag_of(interpreter)[1] == "io.l5d.fs":
            dtab_file = DtabFile(interpreter.dtab_file)
            self.dtab_files.append((dtab_file, router))
            self._apply_dtab_file(dtab_file, router, dtab_file.poll())
        elif interpreter is not None and tag_of(interpreter)[1] == "io.l5d.namerd.http":
            # a new tree from namerd: the lane forgets its routes (the router's bind cache follows
            # the interpreter's version)
            self.discovery.namerd_interpreters[index].on_change.append(router.rebind)
        elif interpreter is not None and tag_of(interpreter)[1] == "io.l5d.k8s.configMap":
            source = self.discovery.config_map_dtab(interpreter, router.use_dtab_file)
            router.await_dtab_file(f"waiting for the dtab of {source.what}")
        for j, sc in enumerate(rc.servers):
            pseudonym = rc.label.encode("latin-1", "replace").replace(b" ", b"_")
            stamp = getattr(sc, "timestamp_header", None)
            fwd = getattr(sc, "add_forwarded_header", None)
            rules = ServerRules(
                clear_context=sc.clear_context,
                via=b"1.1 pyproxy-" + pseudonym,
                max_call_depth=sc.max_call_depth,
                timestamp_header=stamp.encode("latin-1") if stamp else None,
                forwarded=_forwarded_rule(fwd, rc.label) if fwd is not None else None,
                overrides=self._override_rules(rc, sc, router, f"$.routers[{index}].servers[{j}]"),
            )
            opts = sc.socket_options
            session = sc.server_session
            server = Server(
                forwarder,
                sc.ip,
                self._ports.get((index, j), sc.port),
                rules,
                max_concurrent=sc.max_concurrent_requests,
                max_connections=sc.max_connections,
                header_timeout=_ms(opts.read_timeout_ms) if opts and opts.read_timeout_ms else DEFAULT_HEADER_TIMEOUT,
                idle_timeout=_ms(session.idle_time_ms) if session.idle_time_ms else DEFAULT_IDLE_TIMEOUT,
                reuse_port=self._reuse_port or bool(opts and opts.reuse_port),
                key=f"$.routers[{index}].servers[{j}]",
                options=_server_options(sc),
            )
            self.servers.append((rc.label, server))
            self._use_lane(forwarder, server)

    def _override_rules(self, rc: Any, sc: Any, router: Router, key: str) -> Optional[OverrideRules]:
        """What a listener does with overrides beyond Linkerd's: its router's ``dtabBaggage``, and
        at an edge the carriers' scrub and ``signedOverrides`` (None: Linkerd's rules alone)."""
        bag = getattr(rc, "dtab_baggage", None)
        baggage = BaggageRules.of(bag.key if bag else None, bag.carriers if bag else (), sc.clear_context)
        signed = None
        cfg = getattr(sc, "signed_overrides", None)
        if cfg is not None:
            key_file = KeyFile(cfg.keys_file)
            try:
                keyring = key_file.load()
            except KeyringError as exc:
                raise ConfigError(f"{key}.signedOverrides.keysFile: {cfg.keys_file}: {exc}") from None
            signed = SignedOverrides(keyring, cfg.clock_skew_ms / 1000.0, cfg.on_invalid == "refuse", cfg.keys_file)
            self.key_files.append((key_file, signed, router))
        if baggage is None and signed is None:
            return None
        return OverrideRules(sc.clear_context, baggage, signed)

    def _use_lane(self, forwarder: Forwarder, server: Server) -> None:
        """Let ``server`` hand its connections to the lane when its router and it qualify."""
        lane = self.lane
        router = forwarder.router
        idents = router.params.identifiers
        if lane is None:
            return
        why = None
        if len(idents) != 1 or type(idents[0]) is not HeaderTokenIdentifier:
            why = "an identifier other than one io.l5d.header.token"
        elif server.rules.forwarded is not None:
            why = "addForwardedHeader"
        elif server.options.life_time is not None:
            why = "serverSession.lifeTimeMs"
        elif server.options.request_timeout is not None:
            why = "timeoutMs"
        if why is not None:
            log.info("lane: router %s, server %s:%s stays on the trio path (%s)", router.label, server.ip, server.port, why)
            return
        ident = idents[0].header.lower().encode("latin-1")
        p = router.params
        index = lane.add_server(
            server, server.rules, ident, router.limits, p.stream_after, server.idle_timeout, server.header_timeout, TIMEOUT_RESPONSE,
            write_timeout=server.options.write_timeout, max_concurrent=server.max_concurrent,
        )
        server.lane, server.lane_index = lane, index
        forwarder.use_route_table(lane, ident)

    def _access_log(self, index: int, rc: Any) -> Optional[Any]:
        path = getattr(rc, "http_access_log", None)
        if not path:
            return None
        from ..datapath.accesslog import AccessLog, handler_for  # logging.handlers costs memory: only when used

        handler = handler_for(
            path, rc.http_access_log_roll_policy, rc.http_access_log_append, rc.http_access_log_rotate_count,
            f"$.routers[{index}].httpAccessLog",
        )
        log_ = AccessLog(handler)
        self.access_logs.append(log_)
        return log_

    def listening(self) -> List[Tuple[str, Server]]:
        out = list(self.servers)
        if self.admin is not None:
            out.append(("admin", self.admin))
        return out

    def stop(self) -> None:
        """Begin a graceful stop (idempotent)."""
        self._stop.set()

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        from ..admin import AdminServer

        admin_cfg = self.config.admin
        ip, port = self._admin_addr or (admin_cfg.ip, admin_cfg.port)
        self.admin = AdminServer(self.view, self.telemetry, ip, port, admin_read_timeout(admin_cfg))
        for _, server in self.servers:
            await server.bind()
        await self.admin.bind()
        grace = admin_cfg.shutdown_grace_ms / 1000.0
        async with trio.open_nursery() as nursery:
            for _, server in self.servers:
                await nursery.start(server.serve)
            await nursery.start(self.admin.serve)
            if self.lane is not None:
                nursery.start_soon(self.lane.run)
            nursery.start_soon(self.dns.run)
            for task in self.discovery.tasks():
                await nursery.start(task)
            for name, server in self.listening():
                print(f"pyproxy: listening name={name} addr={server.address}", file=sys.stderr, flush=True)
            if self.fs_namers or self.dtab_files or self.key_files:
                nursery.start_soon(self._watch_fs)
            nursery.start_soon(self._sweep_clients)
            nursery.start_soon(self.telemetry.run)
            # Everything built so far (config, routers, modules) lives as long as the process: move
            # it out of the collector's sight so collections during traffic scan only new objects.
            gc.collect()
            gc.freeze()
            trim_heap()
            task_status.started()
            await self._stop.wait()
            for _, server in self.listening():
                server.drain()
            with trio.move_on_after(grace):
                while any(s.held() for _, s in self.servers):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        if self.lane is not None:
            self.lane.close()
        await self.discovery.aclose()
        for access_log in self.access_logs:
            access_log.close()

    async def _sweep_clients(self) -> None:
        """Once a second: idle pooled connections past their time, idle clients and service
        metrics past bindingCache's TTL (:meth:`Forwarder.sweep`)."""
        while True:
            await trio.sleep(1.0)
            for f in self.forwarders:
                f.sweep()

    async def _watch_fs(self) -> None:
        while True:
            await trio.sleep(FS_POLL_SECONDS)
            for fs in self.fs_namers:
                try:
                    await self._refresh(fs)
                except Exception:  # noqa: BLE001 - discovery trouble must not stop the proxy
                    log.exception("io.l5d.fs: cannot refresh %s", fs.root)
            for dtab_file, router in self.dtab_files:
                try:
                    self._apply_dtab_file(dtab_file, router, await trio.to_thread.run_sync(dtab_file.poll))
                except Exception:  # noqa: BLE001 - as above
                    log.exception("io.l5d.fs interpreter: cannot refresh %s", dtab_file.path)
            for key_file, signed, router in self.key_files:
                keyring, problem = await trio.to_thread.run_sync(key_file.poll)
                if keyring is not None:
                    signed.keyring = keyring
                    for hook in router.on_rebind:  # routes the lane holds for signed overrides go
                        hook()
                    log.info("router %s: %d signing key(s) from %s", router.label, len(keyring), key_file.path)
                elif problem is not None:
                    log.warning("router %s: signedOverrides: %s", router.label, problem)

    @staticmethod
    def _apply_dtab_file(dtab_file: DtabFile, router: Router, found: Any) -> None:
        """Publish what a dtab file's poll found to its router (None: nothing changed)."""
        if found is None:
            return
        if dtab_file.apply(found):
            router.use_dtab_file(dtab_file.dtab)  # type: ignore[arg-type]
            log.info("router %s: dtab from %s: %s", router.label, dtab_file.path, dtab_file.dtab.show)  # type: ignore[union-attr]
        elif dtab_file.problem is not None:
            if dtab_file.dtab is None:
                router.await_dtab_file(dtab_file.problem)
                log.warning("router %s: %s; requests wait for it (bindingTimeoutMs)", router.label, dtab_file.problem)
            else:
                log.warning("router %s: %s; the previous dtab stays in use", router.label, dtab_file.problem)

    @staticmethod
    async def _refresh(fs: FsNamer) -> None:
        # Read files in a worker thread; publish the result on the loop's thread, where the
        # observers (clients, pools) live.
        states = await trio.to_thread.run_sync(fs.poll)
        if states is not None:
            fs.apply(states)


def admin_read_timeout(admin_cfg: Any) -> float:
    """Seconds an admin request may take to arrive once begun (``admin.socketOptions.readTimeoutMs``;
    the proxy's listeners' default when unset)."""
    opts = admin_cfg.socket_options
    return opts.read_timeout_ms / 1000.0 if opts is not None and opts.read_timeout_ms else DEFAULT_HEADER_TIMEOUT


def _server_options(sc: Any) -> ServerOptions:
    """A listener's socket and session options from its ``servers[j]`` block."""
    opts = sc.socket_options
    life = sc.server_session.life_time_ms
    return ServerOptions(
        no_delay=opts.no_delay if opts else True,
        reuse_addr=opts.reuse_addr if opts else True,
        keep_alive=opts.keep_alive if opts else None,
        backlog=opts.backlog if opts and opts.backlog else 1024,
        write_timeout=opts.write_timeout_ms / 1000.0 if opts and opts.write_timeout_ms else WRITE_TIMEOUT,
        life_time=life / 1000.0 if life else None,
        request_timeout=sc.timeout_ms / 1000.0 if sc.timeout_ms else None,
    )


def _forwarded_rule(cfg: Any, router_label: str) -> Forwarded:
    def labeler(c: Any) -> Labeler:
        return Labeler(tag_of(c)[1], getattr(c, "label", None), router_label)

    return Forwarded(labeler(cfg.by), labeler(cfg.for_))

