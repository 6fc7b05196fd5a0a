"""Transformer configs (``interpreter.transformers[]``, ``namers[].transformers[]``): post-processing of
bound address sets, each adding a ``/%/<prefix>`` to the client name (Linkerd 1.x section 4.2).
"""

from __future__ import annotations

from typing import Annotated, Optional, Union

from msgspec import Meta

from .base import Plugin, Port, check_host, check_path

__all__ = [
    "Localhost",
    "SpecificHost",
    "PortTransformer",
    "DaemonSet",
    "LocalNode",
    "Replace",
    "Const",
    "Transformer",
]

Name = Annotated[str, Meta(min_length=1)]


class _Transformer(Plugin, kw_only=True):
    FAMILY = "transformer"

    # Overrides the client-name prefix this transformer adds (None: the kind's own, built at run time
    # from the kind and its parameters, e.g. /io.l5d.k8s.daemonset/<ns>/<port>/<service>).
    prefix: Optional[str] = None

    def __post_init__(self) -> None:
        if self.prefix is not None:
            check_path(self.prefix, "prefix")


class Localhost(_Transformer, tag_field="kind", tag="io.l5d.localhost", kw_only=True):
    """Keep only addresses equal to this host's IP."""


class SpecificHost(_Transformer, tag_field="kind", tag="io.l5d.specificHost", kw_only=True):
    """Keep only addresses equal to ``host``'s IP."""

    host: Name

    def __post_init__(self) -> None:
        super().__post_init__()
        check_host(self.host, "host")


class PortTransformer(_Transformer, tag_field="kind", tag="io.l5d.port", kw_only=True):
    """Replace every address's port (send to a per-host proxy on a fixed port)."""

    port: Port


class DaemonSet(_Transformer, tag_field="kind", tag="io.l5d.k8s.daemonset", kw_only=True):
    """Replace each address with the DaemonSet member on the same node."""

    namespace: Name
    service: Name
    port: Name  # a port *name* of the DaemonSet's Service
    k8s_host: str = "localhost"
    k8s_port: Port = 8001
    host_network: bool = False  # same node by k8s node name instead of the /24 subnet

    def __post_init__(self) -> None:
        super().__post_init__()
        check_host(self.k8s_host, "k8sHost")


class LocalNode(_Transformer, tag_field="kind", tag="io.l5d.k8s.localnode", kw_only=True):
    """Keep only addresses on this node (POD_IP's /24, or NODE_NAME with hostNetwork)."""

    host_network: bool = False


class Replace(_Transformer, tag_field="kind", tag="io.l5d.replace", kw_only=True):
    """Replace every bound name with ``path``; a negative result stays negative."""

    path: str

    def __post_init__(self) -> None:
        super().__post_init__()
        check_path(self.path, "path")


class Const(_Transformer, tag_field="kind", tag="io.l5d.const", kw_only=True):
    """Always answer ``path``, even when the original result was negative."""

    path: str

    def __post_init__(self) -> None:
        super().__post_init__()
        check_path(self.path, "path")


Transformer = Union[Localhost, SpecificHost, PortTransformer, DaemonSet, LocalNode, Replace, Const]
