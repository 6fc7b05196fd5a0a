"""namerd's config (``pyproxy namerd CONFIG``): ``storage``, ``namers``, ``interfaces``, ``admin``,
``telemetry`` (namerd's own format, its ``docs/config.md``, ``storage.md``, ``interface.md``).

Strict as the proxy's config: unknown keys are errors naming their path, bounds are checked, the
experimental gate applies (``io.l5d.etcd`` storage needs ``experimental: true``, as in namerd).
Kinds that parse but are not built (the thrift and gRPC interfaces, Consul storage, TLS) pass
``--validate`` and are refused by name when namerd is run (:meth:`NamerdConfig.require_built`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Dict, FrozenSet, List, Mapping, Optional, Tuple, Union

import msgspec
from msgspec import Meta

from ..errors import ConfigError
from .admin import Admin
from .base import Base, Plugin, Port, PosInt, SocketOptions, check_dtab, check_host, check_path, invalid, tag_of, walk
from .namers import Namer, ZkAddr
from .policy import Backoff
from .telemetry import Telemeter
from .tls import ClientTls, ServerTls

__all__ = ["NamerdConfig", "NAMERD_BUILT", "Storage", "Interface", "load_namerd", "NAMESPACE"]

Name = Annotated[str, Meta(min_length=1)]

#: A dtab namespace: what every storage can hold as one key (etcd key, znode, Kubernetes name).
NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}\Z")


# === storage ===


class _Storage(Plugin, kw_only=True):
    FAMILY = "storage"


class InMemoryStorage(_Storage, tag_field="kind", tag="io.l5d.inMemory", kw_only=True):
    """Dtabs in the process's memory (lost at exit; one replica only)."""

    namespaces: Dict[str, str] = {}

    def __post_init__(self) -> None:
        for ns, text in self.namespaces.items():
            if not NAMESPACE.match(ns):
                raise invalid(f"namespaces[{ns!r}]", "a namespace is letters, digits, '-', '_' or '.'")
            check_dtab(text, f"namespaces[{ns!r}]")


class EtcdStorage(_Storage, tag_field="kind", tag="io.l5d.etcd", kw_only=True):
    """Dtabs under ``pathPrefix`` in etcd's v2 keys API."""

    EXPERIMENTAL = True

    host: str = "localhost"
    port: Port = 2379
    path_prefix: str = "/namerd/dtabs"
    tls: Optional[ClientTls] = None

    def __post_init__(self) -> None:
        check_host(self.host, "host")
        check_path(self.path_prefix, "pathPrefix")


class ZkAuthInfo(Base, kw_only=True):
    scheme: Name
    auth: str


class ZkAcl(Base, kw_only=True):
    scheme: Name
    id: str
    perms: Name

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[crwda]+", self.perms) or len(set(self.perms)) != len(self.perms):
            raise invalid("perms", f"{self.perms} is not a valid permission string")


class ZkStorage(_Storage, tag_field="kind", tag="io.l5d.zk", kw_only=True):
    """Dtabs in znodes ``pathPrefix/<namespace>``."""

    zk_addrs: Annotated[Tuple[ZkAddr, ...], Meta(min_length=1)]
    path_prefix: str = "/dtabs"
    session_timeout_ms: PosInt = 10000
    auth_info: Optional[ZkAuthInfo] = None
    acls: Tuple[ZkAcl, ...] = ()

    def __post_init__(self) -> None:
        check_path(self.path_prefix, "pathPrefix")


class K8sStorage(_Storage, tag_field="kind", tag="io.l5d.k8s", kw_only=True):
    """Dtabs as ``dtabs.l5d.io`` custom resources of one Kubernetes namespace."""

    host: str = "localhost"
    port: Port = 8001
    namespace: Name = "default"

    def __post_init__(self) -> None:
        check_host(self.host, "host")


class ConsulStorage(_Storage, tag_field="kind", tag="io.l5d.consul", kw_only=True):
    """Dtabs in Consul's KV store (parsed, not built)."""

    host: str = "localhost"
    port: Port = 8500
    path_prefix: str = "/namerd/dtabs"
    token: Optional[str] = None
    datacenter: Optional[str] = None
    read_consistency_mode: Optional[str] = None
    write_consistency_mode: Optional[str] = None
    fail_fast: bool = False
    backoff: Optional[Backoff] = None
    tls: Optional[ClientTls] = None


Storage = Union[InMemoryStorage, EtcdStorage, ZkStorage, K8sStorage, ConsulStorage]


# === interfaces ===


class _Interface(Plugin, kw_only=True):
    FAMILY = "interface"
    DEFAULT_PORT = 0

    ip: str = "127.0.0.1"
    port: Optional[Port] = None  # None: the interface's default port
    socket_options: Optional[SocketOptions] = None
    tls: Optional[ServerTls] = None

    def __post_init__(self) -> None:
        check_host(self.ip, "ip")

    @property
    def bind_port(self) -> int:
        return self.DEFAULT_PORT if self.port is None else self.port


class HttpController(_Interface, tag_field="kind", tag="io.l5d.httpController", kw_only=True):
    """The dtab API and the HTTP name interpreter (``io.l5d.namerd.http`` on the proxy side)."""

    DEFAULT_PORT = 4180


class InterpreterCache(Base, kw_only=True):
    binding_cache_active: PosInt = 1000
    binding_cache_inactive: PosInt = 100
    binding_cache_inactive_ttl_secs: PosInt = msgspec.field(default=600, name="bindingCacheInactiveTTLSecs")
    addr_cache_active: PosInt = 1000
    addr_cache_inactive: PosInt = 100
    addr_cache_inactive_ttl_secs: PosInt = msgspec.field(default=600, name="addrCacheInactiveTTLSecs")


class ThriftNameInterpreter(_Interface, tag_field="kind", tag="io.l5d.thriftNameInterpreter", kw_only=True):
    """The ThriftMux long-poll interface (parsed, not built)."""

    DEFAULT_PORT = 4100

    retry_base_secs: Optional[PosInt] = None
    retry_jitter_secs: Optional[PosInt] = None
    cache: InterpreterCache = InterpreterCache()


class MeshInterface(_Interface, tag_field="kind", tag="io.l5d.mesh", kw_only=True):
    """The gRPC mesh interface (parsed, not built)."""

    DEFAULT_PORT = 4321

    h2_access_log: Optional[str] = msgspec.field(default=None, name="h2AccessLog")
    h2_access_log_roll_policy: Optional[str] = msgspec.field(default=None, name="h2AccessLogRollPolicy")
    h2_access_log_append: Optional[bool] = msgspec.field(default=None, name="h2AccessLogAppend")
    h2_access_log_rotate_count: Optional[int] = msgspec.field(default=None, name="h2AccessLogRotateCount")


class DestinationInterface(_Interface, tag_field="kind", tag="io.l5d.destination", kw_only=True):
    """Linkerd 2's destination API (parsed, not built)."""

    DEFAULT_PORT = 8086

    prefix: str = "/svc"
    namespace: Name = "default"


Interface = Union[HttpController, ThriftNameInterpreter, MeshInterface, DestinationInterface]

#: What ``pyproxy namerd`` runs, per family; other kinds pass ``--validate`` and are refused by run.
NAMERD_BUILT: Mapping[str, FrozenSet[str]] = {
    "storage": frozenset({"io.l5d.inMemory", "io.l5d.etcd", "io.l5d.zk", "io.l5d.k8s"}),
    "interface": frozenset({"io.l5d.httpController"}),
    "namer": frozenset({"io.l5d.fs", "io.l5d.k8s", "io.l5d.k8s.ns"}),
    "telemeter": frozenset({"io.l5d.commonMetrics"}),
    "transformer": frozenset({"io.l5d.port", "io.l5d.localhost", "io.l5d.specificHost", "io.l5d.replace", "io.l5d.const"}),
    "tls": frozenset(),
}

_ALTERNATIVE = {
    "io.l5d.thriftNameInterpreter": "use io.l5d.httpController (proxies: the io.l5d.namerd.http interpreter)",
    "io.l5d.mesh": "use io.l5d.httpController (proxies: the io.l5d.namerd.http interpreter)",
}


class NamerdConfig(Base, kw_only=True):
    """A whole namerd config."""

    admin: Admin = Admin(port=9991)
    storage: Storage
    namers: Tuple[Namer, ...] = ()
    interfaces: Annotated[Tuple[Interface, ...], Meta(min_length=1)]
    telemetry: Tuple[Telemeter, ...] = ()

    def __post_init__(self) -> None:
        self._check_namers()
        self._check_listeners()
        for path, obj in walk(self, skip_defaults=True):
            if obj.EXPERIMENTAL and not getattr(obj, "experimental", False):
                tag_field, tag = tag_of(obj)
                raise invalid(f"{path[2:]}.{tag_field}", f"{tag} is experimental and must be explicitly enabled (experimental: true)")

    def _check_namers(self) -> None:
        # namerd refuses overlapping prefixes (NamerdConfig.ConflictingNamers)
        seen: List[Tuple[Tuple[bytes, ...], str]] = []
        for i, n in enumerate(self.namers):
            prefix = n.prefix or f"/{tag_of(n)[1]}"
            elems = tuple(e.encode() for e in prefix.strip("/").split("/") if e)
            for other, shown in seen:
                short = min(len(other), len(elems))
                if other[:short] == elems[:short]:
                    raise invalid(f"namers[{i}].prefix", f"Namers must not have overlapping prefixes: {shown} & {prefix}")
            seen.append((elems, prefix))

    def _check_listeners(self) -> None:
        taken: Dict[Tuple[str, int], str] = {}
        pairs = [(self.admin.ip, self.admin.port, "admin.port")]
        pairs += [(iface.ip, iface.bind_port, f"interfaces[{i}].port") for i, iface in enumerate(self.interfaces)]
        for ip, port, key in pairs:
            if not port:
                continue
            for (oip, oport), okey in taken.items():
                if oport == port and (oip == ip or "0.0.0.0" in (ip, oip) or "::" in (ip, oip)):
                    raise invalid(key, f"server conflict: {ip}:{port} is also used by $.{okey}")
            taken[(ip, port)] = key

    def unsupported(self) -> List[Tuple[str, str]]:
        """``(key path, kind)`` of every configured kind ``pyproxy namerd`` does not run."""
        out: List[Tuple[str, str]] = []
        for path, obj in walk(self, skip_defaults=True):
            family = obj.FAMILY
            if family in NAMERD_BUILT:
                tag_field, tag = tag_of(obj)
                key, kind = (path, family) if tag is None else (f"{path}.{tag_field}", tag)
                if kind not in NAMERD_BUILT[family]:
                    out.append((key, kind))
        if self.admin.tls is not None:
            out.append(("$.admin.tls", "tls"))
        # keys namerd's listeners parse but do not honour (the proxy's admin does: not namerd's)
        if self.admin.security != Admin().security:
            out.append(("$.admin.security", "security (namerd's admin serves every endpoint)"))
        if self.admin.http_identifier_port is not None:
            out.append(("$.admin.httpIdentifierPort", "httpIdentifierPort"))
        if self.admin.socket_options is not None:
            out.append(("$.admin.socketOptions", "socketOptions of namerd's admin"))
        for i, iface in enumerate(self.interfaces):
            if iface.socket_options is not None and tag_of(iface)[1] in NAMERD_BUILT["interface"]:
                out.append((f"$.interfaces[{i}].socketOptions", "socketOptions of namerd's interfaces"))
        return out

    def require_built(self) -> None:
        for key, kind in self.unsupported():
            alt = _ALTERNATIVE.get(kind)
            raise ConfigError(f"{key}: {kind} is known but not built yet" + (f" ({alt})" if alt else ""))


def load_namerd(text: str) -> NamerdConfig:
    """A namerd config from its text (YAML, or JSON when it starts with ``{``).

    Raises:
        ConfigError: one line starting with the key path.
    """
    from . import source
    from .messages import format_error

    data: Any = source.parse(text)
    if data is None:
        raise ConfigError("$: the config is empty")
    if isinstance(data, dict) and "routers" in data:
        raise ConfigError("$: this is a proxy config (it has routers): run it with `pyproxy run`")
    try:
        return msgspec.convert(data, NamerdConfig, strict=True)
    except msgspec.ValidationError as e:
        raise ConfigError(format_error(e, data, NamerdConfig)) from None
