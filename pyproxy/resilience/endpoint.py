"""An endpoint as the client layer sees it: address, balancer slot, connection pool, failure accrual.

The balancing itself is a kernel (:class:`pyproxy._impl.Balancer`, native with a pure twin): the
client gives each endpoint a slot number and asks the kernel which slot to use next.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["Endpoint"]


class Endpoint:
    """One balanced endpoint."""

    __slots__ = ("host", "port", "pool", "slot", "accrual")

    def __init__(self, host: str, port: int, pool: Any, slot: int, accrual: Optional[Any] = None) -> None:
        self.host = host
        self.port = port
        self.pool = pool
        self.slot = slot
        self.accrual = accrual

    def __repr__(self) -> str:
        return f"Endpoint({self.host}:{self.port}, slot={self.slot})"
