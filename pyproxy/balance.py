"""Load balancing over a client's endpoints: power of two choices on outstanding requests (Linkerd's ``p2c``).

Sans-IO and deterministic: the caller passes the random draw. An endpoint marked down is skipped
unless every endpoint is down, in which case one is tried anyway (a request is never refused only
because all endpoints look dead).
"""

from __future__ import annotations

from typing import Generic, Optional, Sequence, TypeVar

__all__ = ["Endpoint", "pick_p2c"]

T = TypeVar("T")


class Endpoint(Generic[T]):
    """One balanced endpoint: its address, its outstanding requests, and its connection pool."""

    __slots__ = ("host", "port", "pending", "down", "pool", "weight")

    def __init__(self, host: str, port: int, pool: T, weight: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.pending = 0
        self.down = False
        self.pool = pool
        self.weight = weight

    def __repr__(self) -> str:
        return f"Endpoint({self.host}:{self.port}, pending={self.pending})"


def pick_p2c(endpoints: Sequence[Endpoint], draw: int) -> Optional[Endpoint]:
    """Pick the less loaded of two endpoints chosen by ``draw`` (a random 64-bit integer).

    Returns None only for an empty set.
    """
    n = len(endpoints)
    if n == 0:
        return None
    if n == 1:
        return endpoints[0]
    live: Sequence[Endpoint] = [e for e in endpoints if not e.down] or endpoints
    n = len(live)
    if n == 1:
        return live[0]
    i = draw % n
    j = (draw >> 32) % (n - 1)
    if j >= i:
        j += 1
    a, b = live[i], live[j]
    return a if a.pending <= b.pending else b
