"""Namer configs (``namers[]``): service-discovery plugins addressed in dtabs as ``/#/<prefix>``
(Linkerd 1.x sections 1.3 and 4.1). The built-in ``/$/...`` namers need no config.

``prefix`` defaults to ``/<kind>`` (``/io.l5d.k8s``); two namers of one kind differ by prefix.
Only ``io.l5d.fs`` touches the file system at load: its ``rootDir`` must be an existing directory.
"""

from __future__ import annotations

import os
from typing import Annotated, Dict, Literal, Optional, Tuple, Union

import msgspec
from msgspec import Meta

from .base import Base, NonNegInt, Plugin, Port, PosInt, check_host, check_path, check_pattern, invalid
from .tls import ClientTls
from .transformers import Transformer

__all__ = [
    "ZkAddr",
    "Fs",
    "K8s",
    "K8sNs",
    "K8sExternal",
    "Consul",
    "ConsulWeight",
    "Serversets",
    "ZkLeader",
    "Curator",
    "DnsSrv",
    "Marathon",
    "Rancher",
    "Rewrite",
    "Namer",
]

Name = Annotated[str, Meta(min_length=1)]


class ZkAddr(Base, kw_only=True):
    """One ZooKeeper server."""

    host: Name
    port: Port = 2181  # ZooKeeper's client port, Linkerd's ZkAddr default

    def __post_init__(self) -> None:
        check_host(self.host, "host")


ZkAddrs = Annotated[Tuple[ZkAddr, ...], Meta(min_length=1)]


class _Namer(Plugin, kw_only=True):
    FAMILY = "namer"

    prefix: Optional[str] = None  # set to /<kind> when absent (see __post_init__)
    transformers: Tuple[Transformer, ...] = ()

    def __post_init__(self) -> None:
        if self.prefix is None:
            # Linkerd's NamerConfig.defaultPrefix: the kind as a one-segment path.
            msgspec.structs.force_setattr(self, "prefix", "/" + self.__struct_config__.tag)
        else:
            check_path(self.prefix, "prefix")


class _K8sApi(_Namer, kw_only=True):
    """Kubernetes API through ``kubectl proxy`` (no TLS, no auth), or, with ``inCluster``, directly."""

    host: str = "localhost"
    port: Port = 8001
    label_selector: Optional[str] = None  # a label *key*; its value becomes a name segment
    # pyproxy extensions (not in Linkerd 1.x): the API server of the pod's own cluster, with its
    # service-account token and CA (no kubectl proxy sidecar; host and port are then not used), and
    # EndpointSlices (discovery.k8s.io/v1) instead of Endpoints objects.
    in_cluster: bool = False
    endpoint_slices: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_host(self.host, "host")


class Fs(_Namer, tag_field="kind", tag="io.l5d.fs", kw_only=True):
    """One file per service under ``rootDir`` (``host port [* weight]`` per line), watched."""

    root_dir: Name

    def __post_init__(self) -> None:
        super().__post_init__()
        # Linkerd fails at startup on a missing directory; so do we, naming the key.
        if not os.path.exists(self.root_dir):
            raise invalid("rootDir", f"directory does not exist: {self.root_dir!r}")
        if not os.path.isdir(self.root_dir):
            raise invalid("rootDir", f"not a directory: {self.root_dir!r}")


class K8s(_K8sApi, tag_field="kind", tag="io.l5d.k8s", kw_only=True):
    """``/<namespace>/<port name or number>/<service>[/<label value>]`` from Endpoints."""


class K8sNs(_K8sApi, tag_field="kind", tag="io.l5d.k8s.ns", kw_only=True):
    """Like io.l5d.k8s with the namespace taken from an environment variable."""

    env_var: Name = "POD_NAMESPACE"


class K8sExternal(_K8sApi, tag_field="kind", tag="io.l5d.k8s.external", kw_only=True):
    """A Service's external load-balancer IPs, for proxies outside the cluster."""

    EXPERIMENTAL = True


class ConsulWeight(Base, kw_only=True):
    """Weight of the addresses carrying ``tag`` (the highest matching weight wins, else 1.0)."""

    tag: Name
    weight: Annotated[float, Meta(ge=0.0)]


HealthStatus = Literal["passing", "warning", "critical", "maintenance"]


class Consul(_Namer, tag_field="kind", tag="io.l5d.consul", kw_only=True):
    """``/<datacenter>[/<tag>]/<service>`` from Consul's catalog (blocking queries)."""

    host: str = "localhost"
    port: Port = 8500
    include_tag: bool = False
    use_health_check: bool = False
    health_statuses: Tuple[HealthStatus, ...] = ("passing",)
    token: Optional[str] = None
    set_host: bool = False
    consistency_mode: Optional[Literal["default", "stale", "consistent"]] = None
    fail_fast: bool = False
    prefer_service_address: bool = True
    weights: Tuple[ConsulWeight, ...] = ()
    fixed_length_streamed_after_kb: NonNegInt = msgspec.field(default=5120, name="fixedLengthStreamedAfterKB")
    tls: Optional[ClientTls] = None
    transfer_metadata: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_host(self.host, "host")


class Serversets(_Namer, tag_field="kind", tag="io.l5d.serversets", kw_only=True):
    """ZooKeeper ServerSets: ``/<zk hosts>/<zk path>[:<endpoint>]``."""

    zk_addrs: ZkAddrs


class ZkLeader(_Namer, tag_field="kind", tag="io.l5d.zkLeader", kw_only=True):
    """The current leader of a ZooKeeper leader-election group."""

    zk_addrs: ZkAddrs


class Curator(_Namer, tag_field="kind", tag="io.l5d.curator", kw_only=True):
    """Apache Curator service discovery."""

    EXPERIMENTAL = True

    zk_addrs: ZkAddrs
    base_path: Name = "/"


class DnsSrv(_Namer, tag_field="kind", tag="io.l5d.dnssrv", kw_only=True):
    """Periodic DNS SRV lookups: ``/<srv record name>``."""

    EXPERIMENTAL = True

    refresh_interval_seconds: PosInt = 5
    dns_hosts: Optional[Tuple[Name, ...]] = None  # None: the system resolver


class Marathon(_Namer, tag_field="kind", tag="io.l5d.marathon", kw_only=True):
    """Marathon apps (polls ``/v2/apps``; credentials from the environment)."""

    host: str = "marathon.mesos"
    port: Port = 80
    uri_prefix: Optional[str] = None
    ttl_ms: PosInt = 5000
    use_health_check: bool = False
    tls: Optional[ClientTls] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_host(self.host, "host")


class Rancher(_Namer, tag_field="kind", tag="io.l5d.rancher", kw_only=True):
    """Rancher's metadata API: ``/<port>/<stack>/<service>``."""

    EXPERIMENTAL = True

    port_mappings: Dict[str, Port] = {}  # port name -> number, besides the known http/https
    max_wait: PosInt = 30  # seconds, as Linkerd's RancherConfig


class Rewrite(_Namer, tag_field="kind", tag="io.l5d.rewrite", kw_only=True):
    """Rewrite a matching name (``pattern`` with ``{vars}``) to ``name``, delegated again."""

    prefix: str  # required: a rewrite has no natural prefix
    pattern: str
    name: str

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pattern(self.pattern, "pattern")
        if not self.name.startswith("/"):
            raise invalid("name", f"must start with '/': {self.name!r}")


Namer = Union[Fs, K8s, K8sNs, K8sExternal, Consul, Serversets, ZkLeader, Curator, DnsSrv, Marathon, Rancher, Rewrite]
