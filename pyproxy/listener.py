"""A control-plane listener on trio: the admin server's, namerd's interfaces', the supervisor's admin.

:class:`Listener` binds ``ip:port`` (a failure is one :class:`~pyproxy.errors.ListenError` naming the
config key and the address), shows the bound address as the readiness lines print it, and serves
each accepted connection with its handler until :meth:`Listener.drain`: the accept loops stop at
once, connections in flight finish (or, with ``cancel_at_drain``, are cancelled: namerd's watch
streams never end by themselves). The data path's listeners are not these (SO_REUSEPORT, the lane).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, List

import trio

from .errors import ListenError

__all__ = ["Listener"]


class Listener:
    """``ip``/``port`` to listen on, ``key`` the config path named when binding fails, ``handler``
    called with each accepted stream."""

    def __init__(self, ip: str, port: int, key: str, handler: Callable[[trio.SocketStream], Awaitable[None]],
                 *, cancel_at_drain: bool = False) -> None:
        self.ip = ip
        self.port = port
        self.key = key
        self.listeners: List[Any] = []
        self._handler = handler
        self._cancel_at_drain = cancel_at_drain
        self._accepting = trio.CancelScope()

    @property
    def address(self) -> str:
        host, port = self.listeners[0].socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def bind(self) -> None:
        try:
            self.listeners = await trio.open_tcp_listeners(self.port, host=self.ip)
        except OSError as exc:
            raise ListenError(f"{self.key}: cannot listen on {self.ip}:{self.port}: {exc.strerror or exc}") from None

    async def serve(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            # Connections live in this nursery; the accept loops in their own scope, which drain()
            # cancels, so stopping to accept never interrupts a request in flight.
            try:
                with self._accepting:
                    task_status.started()
                    await trio.serve_listeners(self._handler, self.listeners, handler_nursery=nursery)
            finally:  # however serving ends, the sockets close (a cancelled stop included)
                with trio.CancelScope(shield=True):
                    for listener in self.listeners:
                        await listener.aclose()
            if self._cancel_at_drain:
                nursery.cancel_scope.cancel()

    def drain(self) -> None:
        self._accepting.cancel()
