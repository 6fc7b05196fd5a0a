"""Interpreter configs (``routers[].interpreter``): how a router binds names, locally or through namerd
(Linkerd 1.x section 4.3). ``interpreter`` without ``kind`` means ``default`` (:mod:`.legacy` inserts it).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Tuple, Union

import msgspec
from msgspec import Meta

from .base import Base, Plugin, Port, PosInt, check_host, check_path, invalid
from .policy import Backoff
from .tls import ClientTls
from .transformers import Transformer

__all__ = [
    "DefaultInterpreter",
    "FsInterpreter",
    "NamerdInterpreter",
    "NamerdHttpInterpreter",
    "MeshInterpreter",
    "ConfigMapInterpreter",
    "ConsulInterpreter",
    "NamerdRetry",
    "NamerdTls",
    "FailureThreshold",
    "Interpreter",
    "DEFAULT_INTERPRETER",
]

Name = Annotated[str, Meta(min_length=1)]
Consistency = Literal["default", "stale", "consistent"]


class _Interpreter(Plugin, kw_only=True):
    FAMILY = "interpreter"

    transformers: Tuple[Transformer, ...] = ()


class DefaultInterpreter(_Interpreter, tag_field="kind", tag="default", kw_only=True):
    """Bind with this proxy's namers and the router dtab, then the built-in ``/$`` namers."""


class FsInterpreter(_Interpreter, tag_field="kind", tag="io.l5d.fs", kw_only=True):
    """Like default, with the dtab read from a watched file (edited live)."""

    dtab_file: Name  # may appear later: the file is watched, not required at load


class NamerdRetry(Base, kw_only=True):
    """Reconnect backoff towards namerd, in seconds."""

    base_seconds: PosInt = 5
    max_seconds: PosInt = 600

    def __post_init__(self) -> None:
        if self.max_seconds < self.base_seconds:
            raise invalid("maxSeconds", f"must be >= baseSeconds ({self.base_seconds})")


class NamerdTls(Base, kw_only=True):
    """TLS towards namerd's thrift interface."""

    FAMILY = "tls"

    common_name: Name
    ca_cert: Optional[Name] = None


class FailureThreshold(Base, kw_only=True):
    """Ping-based failure detector of the namerd connection."""

    min_period_ms: PosInt = 5000
    close_timeout_ms: PosInt = 4000


class _Namerd(_Interpreter, kw_only=True):
    """Delegate all binding to namerd at ``dst`` (local namers are unused)."""

    dst: str  # a path such as /$/inet/namerd.default.svc.cluster.local/4100
    retry: NamerdRetry = NamerdRetry()

    def __post_init__(self) -> None:
        check_path(self.dst, "dst")


class NamerdInterpreter(_Namerd, tag_field="kind", tag="io.l5d.namerd", kw_only=True):
    """namerd's ThriftMux long-poll interface."""

    namespace: Name = "default"
    tls: Optional[NamerdTls] = None
    failure_threshold: FailureThreshold = FailureThreshold()


class NamerdHttpInterpreter(_Namerd, tag_field="kind", tag="io.l5d.namerd.http", kw_only=True):
    """namerd's HTTP streaming API (``/api/1/bind/<ns>?watch=1`` ...)."""

    EXPERIMENTAL = True

    namespace: Name = "default"
    tls: Optional[ClientTls] = None


class MeshInterpreter(_Namerd, tag_field="kind", tag="io.l5d.mesh", kw_only=True):
    """namerd's gRPC mesh API (preferred since Linkerd ~1.2)."""

    root: str = "/default"  # the namespace as a one-segment path
    tls: Optional[ClientTls] = None
    failure_threshold: FailureThreshold = FailureThreshold()
    initial_stream_window_size_kb: PosInt = msgspec.field(default=1024, name="initialStreamWindowSizeKB")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_path(self.root, "root")


class ConfigMapInterpreter(_Interpreter, tag_field="kind", tag="io.l5d.k8s.configMap", kw_only=True):
    """The dtab read from a watched Kubernetes ConfigMap key."""

    EXPERIMENTAL = True

    name: Name
    filename: Name
    namespace: Name = "default"
    host: str = "localhost"
    port: Port = 8001

    def __post_init__(self) -> None:
        check_host(self.host, "host")


class ConsulInterpreter(_Interpreter, tag_field="kind", tag="io.l5d.consul.interpreter", kw_only=True):
    """The dtab read from Consul's KV store."""

    host: str = "localhost"
    port: Port = 8500
    path_prefix: str = "/namerd/dtabs"
    namespace: Name = "default"
    token: Optional[str] = None
    datacenter: Optional[str] = None
    read_consistency_mode: Optional[Consistency] = None
    write_consistency_mode: Optional[Consistency] = None
    fail_fast: bool = False
    backoff: Optional[Backoff] = None  # None: exponential 1 ms .. 1 min (Linkerd's built-in)
    tls: Optional[ClientTls] = None

    def __post_init__(self) -> None:
        check_host(self.host, "host")
        check_path(self.path_prefix, "pathPrefix")


Interpreter = Union[
    DefaultInterpreter,
    FsInterpreter,
    NamerdInterpreter,
    NamerdHttpInterpreter,
    MeshInterpreter,
    ConfigMapInterpreter,
    ConsulInterpreter,
]
DEFAULT_INTERPRETER = DefaultInterpreter()
