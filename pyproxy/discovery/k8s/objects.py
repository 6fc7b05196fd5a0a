"""What discovery reads of Kubernetes objects: the endpoints of a service and its port mappings.

:class:`ServiceEndpoints` is built from the Endpoints object of a service (``subsets``) or from its
EndpointSlices (``discovery.k8s.io/v1``), keeping only **ready** addresses (``addresses`` of a
subset; slice endpoints whose ``conditions.ready`` is not false) and TCP ports, each address with
its ``nodeName`` (the transformers' ``hostNetwork`` mode matches on it).

Ports, as Linkerd 1.x reads them: a **named** port is the port of that name, per subset (pods whose
named port differs in number are in different subsets, and each keeps its own number); a
**numbered** port is the Service's port, mapped to its ``targetPort`` (a number, or a name looked up
as above). A port a service does not have is no answer at all (``None``: the name is negative).

Parsing is defensive: an object of the wrong shape raises ``ValueError`` with the field named.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

__all__ = ["ServiceEndpoints", "port_mappings"]

#: (ip, node name or None)
Host = Tuple[str, Optional[str]]


def _list(obj: Any, key: str) -> List[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value


def _tcp_ports(ports: Iterable[Any]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for p in ports:
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            raise ValueError("a port without a number")
        if str(p.get("protocol") or "TCP").upper() != "TCP":
            continue
        out[str(p.get("name") or "")] = p["port"]
    return out


class ServiceEndpoints:
    """The ready endpoints of one service, in groups that share their ports."""

    __slots__ = ("groups",)

    def __init__(self, groups: List[Tuple[List[Host], Dict[str, int]]]) -> None:
        self.groups = groups

    @classmethod
    def from_endpoints(cls, obj: Any) -> "ServiceEndpoints":
        groups = []
        for subset in _list(obj, "subsets"):
            hosts = []
            for a in _list(subset, "addresses"):  # notReadyAddresses are not routed to
                if not isinstance(a, dict) or not isinstance(a.get("ip"), str):
                    raise ValueError("an address without an ip")
                node = a.get("nodeName")
                hosts.append((a["ip"], node if isinstance(node, str) else None))
            groups.append((hosts, _tcp_ports(_list(subset, "ports"))))
        return cls(groups)

    @classmethod
    def merged(cls, parts: Iterable["ServiceEndpoints"]) -> "ServiceEndpoints":
        """The endpoints of several objects (a service's EndpointSlices) together."""
        return cls([g for p in parts for g in p.groups])

    @classmethod
    def from_slices(cls, slices: Iterable[Any]) -> "ServiceEndpoints":
        groups = []
        for s in slices:
            if not isinstance(s, dict):
                raise ValueError("an EndpointSlice that is not an object")
            if s.get("addressType") not in ("IPv4", "IPv6", None):
                continue  # FQDN slices name hosts, not addresses
            hosts = []
            for e in _list(s, "endpoints"):
                cond = e.get("conditions") if isinstance(e, dict) else None
                if isinstance(cond, dict) and cond.get("ready") is False:
                    continue
                node = e.get("nodeName") if isinstance(e, dict) else None
                for ip in _list(e, "addresses"):
                    if not isinstance(ip, str):
                        raise ValueError("an endpoint address that is not a string")
                    hosts.append((ip, node if isinstance(node, str) else None))
            groups.append((hosts, _tcp_ports(_list(s, "ports"))))
        return cls(groups)

    @classmethod
    def from_slices_one(cls, s: Any) -> "ServiceEndpoints":
        """One EndpointSlice (a service's slices are :meth:`merged`)."""
        return cls.from_slices([s])

    def named(self, name: str) -> Optional[List[Tuple[str, int, Optional[str]]]]:
        """``(ip, port, node)`` of every ready endpoint for the port ``name``; None when no group
        has a port of that name."""
        found = False
        out = []
        for hosts, ports in self.groups:
            if name in ports:
                found = True
                out.extend((ip, ports[name], node) for ip, node in hosts)
        return out if found else None

    def numbered(self, port: int) -> List[Tuple[str, int, Optional[str]]]:
        """Every ready endpoint on ``port`` (a target port number)."""
        return [(ip, port, node) for hosts, _ in self.groups for ip, node in hosts]


def port_mappings(service: Any) -> Dict[int, str]:
    """A Service's ``port -> targetPort`` (the target as text: a number or a port name)."""
    spec = service.get("spec") if isinstance(service, dict) else None
    out: Dict[int, str] = {}
    for p in _list(spec, "ports"):
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            raise ValueError("a service port without a number")
        if str(p.get("protocol") or "TCP").upper() != "TCP":
            continue
        target = p.get("targetPort", p["port"])  # Kubernetes defaults targetPort to port
        if not isinstance(target, (int, str)):
            raise ValueError("a targetPort that is neither a number nor a name")
        out[p["port"]] = str(target)
    return out
