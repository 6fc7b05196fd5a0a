"""The Kubernetes transformers of the article's DaemonSet setup.

* ``io.l5d.k8s.daemonset`` (on the ``outgoing`` router): each destination address becomes the pod of
  the given DaemonSet service (``namespace``, ``service``, ``port`` name) on the same node as the
  destination: the same /24 as its IP, or with ``hostNetwork`` the same ``nodeName``. The request
  then goes to the Linkerd (pyproxy) of the destination's node, its ``incoming`` router. Prefix
  ``/%/io.l5d.k8s.daemonset/<namespace>/<port>/<service>``.
* ``io.l5d.k8s.localnode`` (on the ``incoming`` router): keep the destination addresses on this
  node: the /24 of ``POD_IP``, or with ``hostNetwork`` the ``nodeName`` ``NODE_NAME``. Prefix
  ``/%/io.l5d.k8s.localnode/<POD_IP or NODE_NAME>``. A missing environment variable is a
  configuration error.
"""

from __future__ import annotations

from typing import Mapping

from ...errors import ConfigError
from ...naming.path import Path
from ...naming.tree import NameTree
from ..namers.k8s import NODE_NAME, K8sNamer
from .subnet import FilterTransformer, GatewayTransformer, meta_is, near_ips, same_meta, same_subnet

__all__ = ["DaemonSetTransformer", "localnode"]


class DaemonSetTransformer(GatewayTransformer):
    """The gateways are the DaemonSet's endpoints, watched by ``namer`` (a namer of its own API)."""

    def __init__(self, prefix: Path, namer: K8sNamer, namespace: str, port: str, service: str, host_network: bool) -> None:
        if host_network:
            super().__init__(prefix, same_meta(NODE_NAME), "MetadataGatewayTransformer")
        else:
            near = same_subnet(24)
            super().__init__(prefix, lambda a, g: near(a.host, g.host), "SubnetGatewayTransformer")
        self.namer = namer
        self.target = (namespace, port, service)

    def transform(self, tree: NameTree) -> NameTree:
        if self.gateways is None:  # raises NamePending until the DaemonSet's endpoints are known
            self.set_gateways(self.namer.address_set(*self.target))
        return super().transform(tree)


def localnode(prefix: Path, host_network: bool, env: Mapping[str, str], key: str) -> FilterTransformer:
    """The ``io.l5d.k8s.localnode`` transformer (``prefix``: its default or configured prefix,
    to which the node's IP or name is appended)."""
    if host_network:
        node = env.get("NODE_NAME")
        if not node:
            raise ConfigError(f"{key}: io.l5d.k8s.localnode with hostNetwork needs the NODE_NAME environment variable (the node's name)")
        return FilterTransformer(prefix + Path.utf8(node), meta_is(NODE_NAME, node), "MetadataFiltertingNameTreeTransformer")
    ip = env.get("POD_IP")
    if not ip:
        raise ConfigError(f"{key}: io.l5d.k8s.localnode needs the POD_IP environment variable (the pod's IP)")
    return FilterTransformer(prefix + Path.utf8(ip), near_ips([ip], 24), "SubnetLocalTransformer")
