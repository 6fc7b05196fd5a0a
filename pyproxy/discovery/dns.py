"""Host names of ``/$/inet``: resolved off the event loop, kept fresh, bounded.

:class:`DnsResolver` is the running proxy's :class:`~pyproxy.naming.system.InetResolver`. A host
name's address set starts pending; the resolver's task (:meth:`DnsResolver.run`) looks it up with
the system resolver (``getaddrinfo``, so ``/etc/hosts`` and the NSS configuration apply as for any
program) in a worker thread, never on the loop, and looks it up again every ``refresh`` seconds
(Finagle's ``InetResolver`` polls every 5 s the same way; the system resolver does not report
TTLs, so the interval stands in for them). A lookup that fails after a success keeps the last good
addresses (a resolver outage must not unroute a service); one that fails before any success fails
the name with the resolver's message. The cache is bounded as the base class's is.

:func:`blocking_lookup` is the same lookup for offline tools (``pyproxy delegate``).
"""

from __future__ import annotations

import logging
import socket
from typing import Callable, Dict, List, Optional

import trio

from ..naming.name import Address, AddrBound, AddrFailed, AddrVar
from ..naming.system import InetResolver

__all__ = ["DnsResolver", "blocking_lookup"]

log = logging.getLogger("pyproxy.dns")

#: Seconds between lookups of a name (Finagle's InetResolver default poll interval).
REFRESH_SECONDS = 5.0
#: Lookups running at once (each holds a worker thread).
CONCURRENCY = 8


def blocking_lookup(host: str, port: int) -> object:
    """``AddrBound`` of every address ``host`` has (first-seen order), or ``AddrFailed``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return AddrFailed(f"{host}: {getattr(exc, 'strerror', None) or exc}")
    seen: List[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in seen:
            seen.append(ip)
    if not seen:
        return AddrFailed(f"{host}: no addresses")
    return AddrBound(tuple(Address(ip, port) for ip in seen))


class _Name:
    __slots__ = ("host", "port", "due", "ok")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.due = 0.0  # trio time of the next lookup
        self.ok = False  # a lookup succeeded once


class DnsResolver(InetResolver):
    """Resolves host names asynchronously (see the module documentation)."""

    def __init__(
        self, refresh: float = REFRESH_SECONDS, max_names: int = 10_000,
        lookup: Callable[[str, int], object] = blocking_lookup,
    ) -> None:
        super().__init__(max_names=max_names)
        self.refresh = refresh
        self._blocking = lookup
        self._names: Dict[AddrVar, _Name] = {}
        self._wake: Optional[trio.Event] = None
        self.lookups = 0
        self.failures = 0

    def host_var(self, host: str, port: int) -> AddrVar:
        var = AddrVar()  # pending until the first lookup answers
        self._names[var] = _Name(host, port)
        if self._wake is not None:
            self._wake.set()
        return var

    def forget(self, var: AddrVar) -> None:
        self._names.pop(var, None)

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        """Look up names that are due, at most ``CONCURRENCY`` at a time, until cancelled."""
        limiter = trio.CapacityLimiter(CONCURRENCY)
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._wake = trio.Event()
                now = trio.current_time()
                next_due = now + self.refresh
                for var, name in list(self._names.items()):
                    if name.due <= now:
                        name.due = now + self.refresh
                        nursery.start_soon(self._look_up, var, name, limiter)
                    next_due = min(next_due, name.due)
                with trio.move_on_at(next_due):
                    await self._wake.wait()

    async def _look_up(self, var: AddrVar, name: _Name, limiter: trio.CapacityLimiter) -> None:
        self.lookups += 1
        found = await trio.to_thread.run_sync(self._blocking, name.host, name.port, limiter=limiter, abandon_on_cancel=True)
        if isinstance(found, AddrBound):
            name.ok = True
            var.update(found)
            return
        self.failures += 1
        if name.ok:  # keep the last good addresses through a resolver outage
            log.warning("dns: %s: lookup failed (%s); keeping the last addresses", name.host, getattr(found, "cause", found))
            return
        var.update(found)
