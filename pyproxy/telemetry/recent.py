"""``io.l5d.recentRequests``: an in-memory ring of sampled recent requests, shown at ``/requests``.

Hook (once per routed request, after the endpoint was picked; cheap when not sampled: one random
draw, and the arguments are stored as given and only turned into text when the page is read)::

    recent = app.telemetry.recent            # None when the telemeter is not configured
    if recent is not None:
        recent.record(router=label, source=peer, server=server_addr, logical=dst_path,
                      concrete=client_id, destination=(ep.host, ep.port),
                      method=req.method, uri=req.target, status=status, latency_ms=ms)
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional

__all__ = ["RecentRequests"]


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("latin-1")
    if isinstance(v, tuple) and len(v) >= 2:  # (host, port) as sockets give them
        host = str(v[0])
        return f"[{host}]:{v[1]}" if ":" in host else f"{host}:{v[1]}"
    show = getattr(v, "show", None)  # Path, Dtab
    if isinstance(show, str):
        return show
    return str(v)


class _Entry:
    __slots__ = ("ts", "router", "source", "server", "logical", "concrete", "destination", "method", "uri", "status", "latency_ms")


class RecentRequests:
    """The last ``capacity`` sampled requests (each request is kept with probability ``sample_rate``)."""

    def __init__(
        self, sample_rate: float, capacity: int = 10, *, rng: Optional[Callable[[], float]] = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.sample_rate = sample_rate
        self.capacity = capacity
        self._draw = rng or random.random
        self._clock = clock
        self._ring: Deque[_Entry] = deque(maxlen=capacity)

    def record(
        self,
        *,
        router: str,
        source: Any = None,
        server: Any = None,
        logical: Any = None,
        concrete: Any = None,
        destination: Any = None,
        method: Any = None,
        uri: Any = None,
        status: Optional[int] = None,
        latency_ms: Optional[float] = None,
        sampled: bool = False,
    ) -> None:
        """Keep this request with probability ``sample_rate`` (``sampled``: already drawn, by the lane)."""
        if not sampled and (self.sample_rate <= 0.0 or (self.sample_rate < 1.0 and self._draw() >= self.sample_rate)):
            return
        e = _Entry()
        e.ts, e.router, e.source, e.server, e.logical = self._clock(), router, source, server, logical
        e.concrete, e.destination, e.method, e.uri, e.status, e.latency_ms = concrete, destination, method, uri, status, latency_ms
        self._ring.append(e)

    def entries(self) -> List[Dict[str, Any]]:
        """Newest first, every field as text (``timestamp`` in epoch milliseconds)."""
        out = []
        for e in reversed(self._ring):
            out.append(
                {
                    "timestamp": int(e.ts * 1000),
                    "router": e.router,
                    "source": _text(e.source),
                    "server": _text(e.server),
                    "method": _text(e.method),
                    "uri": _text(e.uri),
                    "logical": _text(e.logical),
                    "concrete": _text(e.concrete),
                    "destination": _text(e.destination),
                    "status": e.status,
                    "latencyMs": e.latency_ms,
                }
            )
        return out
