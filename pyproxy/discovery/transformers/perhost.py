"""Host-level transformers: ``io.l5d.port``, ``io.l5d.localhost``, ``io.l5d.specificHost``.

* ``io.l5d.port``: every address keeps its IP and gets the configured port (send to the per-host
  router listening there);
* ``io.l5d.localhost``: keep the addresses that are one of this host's own IPs (its interfaces', read
  once at start, plus loopback);
* ``io.l5d.specificHost``: keep the addresses equal to one host's IP.
"""

from __future__ import annotations

import socket
from typing import List, Sequence

from ...naming.name import Address, AddrBound, AddrVar, DerivedAddrVar
from ...naming.path import Path
from .base import Transformer
from .subnet import FilterTransformer, near_ips

__all__ = ["PortTransformer", "localhost", "specific_host", "local_ips"]


class PortTransformer(Transformer):
    name = "PortTransformer"

    def __init__(self, prefix: Path, port: int) -> None:
        super().__init__(prefix)
        self.port = port

    def derive(self, source: AddrVar) -> DerivedAddrVar:
        def compute(values: Sequence[object]) -> object:
            addr = values[0]
            if not isinstance(addr, AddrBound):
                return addr
            return AddrBound(tuple(Address(a.host, self.port, a.meta) for a in addr.addresses), addr.meta)

        return DerivedAddrVar([source], compute)


def local_ips() -> List[str]:
    """This host's IP addresses (loopback included), as ``getaddrinfo`` of its name gives them."""
    found = {"127.0.0.1", "::1"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    return sorted(found)


def localhost(prefix: Path, ips: Sequence[str]) -> FilterTransformer:
    return FilterTransformer(prefix, near_ips(list(ips), 32), "SubnetLocalTransformer")


def specific_host(prefix: Path, ip: str) -> FilterTransformer:
    return FilterTransformer(prefix, near_ips([ip], 32), "SubnetLocalTransformer")
