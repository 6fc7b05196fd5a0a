"""Running a server process until SIGTERM or SIGINT: the signal starts its graceful stop."""

from __future__ import annotations

import signal
from typing import Awaitable, Callable, Protocol

import trio

__all__ = ["Stoppable", "run_until_signal"]


class Stoppable(Protocol):
    """What a process runs: the proxy's App, namerd's NamerdApp."""

    run: Callable[[], Awaitable[None]]

    def stop(self) -> None: ...


async def run_until_signal(app: Stoppable) -> None:
    """Run ``app``; SIGTERM or SIGINT starts a graceful stop (``app.stop()``)."""
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

            async def watch() -> None:
                async for _ in signals:
                    app.stop()
                    return

            nursery.start_soon(watch)
            await app.run()
            nursery.cancel_scope.cancel()
