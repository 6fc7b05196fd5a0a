"""One attempt of a request on one endpoint: the balancer's pick paired with its done, by construction.

An :class:`Attempt` owns two resources from the moment it exists and gives both back whatever ends
it (a response, an error, a timeout, cancellation, the client leaving):

* the **pick**: the endpoint counts as outstanding in its client's balancer from
  :meth:`Attempt.pick` until :meth:`Attempt.done` reports the attempt's latency and result (to the
  balancer, failure accrual and the client's metrics), or :meth:`Attempt.abandon` ends it without a
  result (the request was answered otherwise);
* the **upstream connection**: pooled by :meth:`Attempt.release` when it may carry another request,
  else closed.

Used as a context manager, leaving the block settles whatever is left: an attempt cut by
cancellation (``totalTimeoutMs``, ``l5d-ctx-deadline``, a graceful stop's grace running out) is
done as a failed request ("RequestTimeout"), one left for any other reason is abandoned, and a
connection not released is closed (its state is unknown). So no path, however it leaves, can leave
an endpoint looking busy forever, which with p2c or Peak-EWMA would mean never picked again.

:class:`Resume` is an attempt the lane made and handed over, with the request head as received,
and why the lane stopped when a deadline passed (``EXPIRED_*``, the lane's ``Expired``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Optional, Type

import trio

from .stream import Conn

if sys.version_info < (3, 11):  # trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ..resilience.endpoint import Endpoint
    from .client import Client

__all__ = ["Attempt", "Resume", "EXPIRED_NONE", "EXPIRED_CONNECT", "EXPIRED_ATTEMPT", "EXPIRED_REQUEST"]

#: Why the lane handed an exchange over before its response head (``LaneResume.expired``): no
#: deadline passed; ``requestAttemptTimeoutMs`` while connecting (nothing was sent); that timeout
#: after the request was sent; the request's deadline (``totalTimeoutMs``, ``l5d-ctx-deadline``).
EXPIRED_NONE, EXPIRED_CONNECT, EXPIRED_ATTEMPT, EXPIRED_REQUEST = range(4)


class Attempt:
    """One try of a request on ``endpoint`` of ``client``, begun at ``started`` (trio clock)."""

    __slots__ = ("client", "endpoint", "started", "up", "ended")

    def __init__(self, client: "Client", endpoint: "Endpoint", started: float, up: Optional[Conn] = None) -> None:
        self.client = client
        self.endpoint = endpoint
        self.started = started
        self.up = up  # the upstream connection, once there is one
        self.ended = False

    @classmethod
    def pick(cls, client: "Client", now: float) -> "Attempt":
        """A new attempt on the endpoint the client's balancer picks now (raises ``NoEndpoints``)."""
        return cls(client, client.pick(now), now)

    def done(self, now: float, ok: bool, status: int = 0, failure: Optional[str] = None) -> None:
        """The attempt has its result: latency to the balancer, result to failure accrual and the
        client's metrics. Only the first call counts."""
        if self.ended:
            return
        self.ended = True
        rtt = now - self.started
        self.client.done(self.endpoint, now, rtt, ok=ok, connect_failed=failure == "ConnectionFailed")
        stats = self.client.stats
        if stats is not None:
            stats.record(status, rtt * 1000.0, failure, success=ok)

    def abandon(self, now: float) -> None:
        """The request was answered without this attempt: end the pick (no result) and close."""
        if not self.ended:
            self.ended = True
            self.client.abandon(self.endpoint, now, now - self.started)
        self.close_connection()

    def release(self, reusable: bool) -> None:
        """The exchange is over with the upstream connection: pooled if ``reusable``, else closed."""
        up, self.up = self.up, None
        if up is not None:
            self.endpoint.pool.release(up, reusable)

    def close_connection(self) -> None:
        up, self.up = self.up, None
        if up is not None:
            self.endpoint.pool.discard(up)

    def __enter__(self) -> "Attempt":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Any) -> None:
        if not self.ended:
            now = trio.current_time()
            if _cancelled(exc):
                self.done(now, ok=False, failure="RequestTimeout")
            else:
                self.abandon(now)
        self.close_connection()


def _cancelled(exc: Optional[BaseException]) -> bool:
    """Whether ``exc`` is trio's cancellation (alone, or grouped by a nursery such as the one of
    ``open_tcp_stream``)."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return False


class Resume:
    """An exchange the lane started and Python continues: its attempt (endpoint, upstream connection,
    start time: when the request started, on the trio clock) and the request head as the client
    sent it; ``expired``: which deadline passed (``EXPIRED_*``); ``up_error``: the errno that ended
    the upstream connection (0: none, or a plain end of stream)."""

    __slots__ = ("attempt", "head", "expired", "up_error")

    def __init__(
        self, client: "Client", endpoint: "Endpoint", up: Conn, started: float, head: bytes, expired: int = EXPIRED_NONE,
        up_error: int = 0,
    ) -> None:
        self.attempt = Attempt(client, endpoint, started, up)
        self.head = head
        self.expired = expired
        self.up_error = up_error

    @property
    def started(self) -> float:
        return self.attempt.started

    @property
    def client(self) -> "Client":
        return self.attempt.client

    def abandon(self, now: float) -> None:
        """The request was answered without this attempt: close it and end its pick."""
        self.attempt.abandon(now)
