"""Filtering and gateway transformers: keep the addresses near here, or send to the gateway near them.

* :class:`FilterTransformer` keeps the addresses a predicate accepts; none left is a negative
  address set (Linkerd's ``FilteringNameTreeTransformer``). Its kinds: same subnet as some local IP
  (``SubnetLocalTransformer``: ``io.l5d.localhost`` and ``io.l5d.specificHost`` with a /32 mask,
  ``io.l5d.k8s.localnode`` with /24), or same metadata value (``io.l5d.k8s.localnode`` with
  ``hostNetwork``: the pod's node).
* :class:`GatewayTransformer` replaces each address by the gateways (a DaemonSet's pods) that share
  its subnet, /24 (``SubnetGatewayTransformer``), or its node (``MetadataGatewayTransformer``, with
  ``hostNetwork``); an address without a gateway near it is dropped, none left is negative. The
  set follows both the destination's and the gateways' changes.

The /24-means-same-node assumption is Linkerd's (it breaks with some CNI plugins, which is what
``hostNetwork: true`` is for).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, List, Optional, Sequence

from ...naming.name import ADDR_NEG, Address, AddrBound, AddrVar, DerivedAddrVar
from ...naming.path import Path
from .base import Transformer

__all__ = ["FilterTransformer", "GatewayTransformer", "same_subnet", "same_meta"]


def same_subnet(bits: int) -> Callable[[str, str], bool]:
    """Whether two IP addresses share their first ``bits`` (IPv4; IPv6 compare the same share of 128)."""

    def test(a: str, b: str) -> bool:
        try:
            x, y = ipaddress.ip_address(a), ipaddress.ip_address(b)
        except ValueError:
            return False
        if x.version != y.version:
            return False
        width = 32 if x.version == 4 else 128
        keep = bits if x.version == 4 else bits * 4
        shift = width - min(keep, width)
        return int(x) >> shift == int(y) >> shift

    return test


def same_meta(key: str) -> Callable[[Address, Address], bool]:
    """Equal metadata values (two addresses without the key are equal too, as in Linkerd)."""
    return lambda a, b: a.meta.get(key) == b.meta.get(key)


class FilterTransformer(Transformer):
    """Keeps the addresses ``keep`` accepts."""

    def __init__(self, prefix: Path, keep: Callable[[Address], bool], name: str) -> None:
        super().__init__(prefix)
        self.keep = keep
        self.name = name

    def derive(self, source: AddrVar) -> DerivedAddrVar:
        def compute(values: Sequence[object]) -> object:
            addr = values[0]
            if not isinstance(addr, AddrBound):
                return addr
            kept = tuple(a for a in addr.addresses if self.keep(a))
            return AddrBound(kept, addr.meta) if kept else ADDR_NEG

        return DerivedAddrVar([source], compute)


def near_ips(ips: Sequence[str], bits: int) -> Callable[[Address], bool]:
    """An address in the same /``bits`` as one of ``ips``."""
    test = same_subnet(bits)
    return lambda a: any(test(a.host, ip) for ip in ips)


def meta_is(key: str, value: Any) -> Callable[[Address], bool]:
    return lambda a: a.meta.get(key) == value


class GatewayTransformer(Transformer):
    """Replaces each address with the gateways near it (``near(address, gateway)``); the gateways are
    the live address set ``gateways`` (given by :meth:`set_gateways` before use)."""

    def __init__(self, prefix: Path, near: Callable[[Address, Address], bool], name: str) -> None:
        super().__init__(prefix)
        self.near = near
        self.name = name
        self.gateways: Optional[AddrVar] = None

    def set_gateways(self, gateways: AddrVar) -> None:
        self.gateways = gateways

    def derive(self, source: AddrVar) -> DerivedAddrVar:
        assert self.gateways is not None, "the gateways are bound before any name is transformed"

        def compute(values: Sequence[object]) -> object:
            addr, gw = values
            if not isinstance(addr, AddrBound):
                return addr
            gateways: List[Address] = list(gw.addresses) if isinstance(gw, AddrBound) else []
            chosen: List[Address] = []
            for a in addr.addresses:
                for g in gateways:
                    if self.near(a, g) and g not in chosen:
                        chosen.append(g)
            return AddrBound(tuple(chosen), addr.meta) if chosen else ADDR_NEG

        return DerivedAddrVar([source, self.gateways], compute)
