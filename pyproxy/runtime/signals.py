"""Running a server process until SIGTERM or SIGINT: the signal starts its graceful stop.

A worker of ``--workers`` also stops (gracefully) when its supervisor is gone: a supervisor killed
outright (SIGKILL, the OOM killer) must not leave workers serving its ports unsupervised, where a
new supervisor would share them by SO_REUSEPORT with a group it does not know.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Awaitable, Callable, Optional, Protocol

import trio

__all__ = ["Stoppable", "run_until_signal"]


class Stoppable(Protocol):
    """What a process runs: the proxy's App, namerd's NamerdApp."""

    run: Callable[[], Awaitable[None]]

    def stop(self) -> None: ...


#: How often a worker looks for its supervisor.
PARENT_POLL_SECONDS = 1.0


async def run_until_signal(app: Stoppable, parent: Optional[int] = None) -> None:
    """Run ``app``; SIGTERM or SIGINT starts a graceful stop (``app.stop()``), and so does the end
    of process ``parent`` (this process's parent when it started) when one is given."""
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

            async def watch() -> None:
                async for _ in signals:
                    app.stop()
                    return

            async def orphaned() -> None:
                # Polled: Linux's PR_SET_PDEATHSIG would follow the supervisor's *thread* that
                # started the worker, and trio starts processes from its worker threads.
                while os.getppid() == parent:
                    await trio.sleep(PARENT_POLL_SECONDS)
                logging.getLogger("pyproxy").warning("the supervisor (pid %d) is gone: stopping", parent)
                app.stop()

            nursery.start_soon(watch)
            if parent is not None:
                nursery.start_soon(orphaned)
            await app.run()
            nursery.cancel_scope.cancel()
