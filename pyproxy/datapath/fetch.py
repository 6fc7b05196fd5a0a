"""A minimal HTTP/1.1 client on trio for the proxy's own calls (demo apps, the worker supervisor).

One request per connection (``Connection: close``), the response read whole up to a limit. Not for
the data path: upstream exchanges go through :mod:`pyproxy.datapath.exchange` and its pools.
"""

from __future__ import annotations

from typing import List, Tuple

import trio

from .. import _impl
from ..http.message import Response, serialize_request_head
from .stream import Body, Conn

__all__ = ["fetch"]

_LIMITS = (8192, 65536, 200)


async def fetch(
    host: str,
    port: int,
    method: bytes,
    target: bytes,
    fields: List[Tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    timeout: float = 10.0,
    max_body: int = 16 << 20,
) -> Tuple[int, List[Tuple[bytes, bytes]], bytes]:
    """Send one request and return ``(status, response fields, body)``; 502 when there is no answer.

    ``fields`` must include ``Host``. Raises ``trio.TooSlowError`` after ``timeout`` seconds and
    ``OSError`` when the connection fails.
    """
    with trio.fail_after(timeout):
        conn = Conn(await trio.open_tcp_stream(host, port))
        try:
            head = [*fields, (b"Content-Length", b"%d" % len(body)), (b"Connection", b"close")]
            await conn.send_all(serialize_request_head(method, target, 1, head) + body)
            t = await conn.read_head(_impl.parse_response_head, _LIMITS[1], _LIMITS[2])
            if t is None:
                return 502, [], b"no response"
            resp = Response.from_kernel(t)
            rbody = Body.of(conn, resp, _LIMITS, until_close=True)
            data = bytearray()
            while len(data) <= max_body:
                piece = await rbody.read()
                if not piece:
                    break
                data += piece
            return resp.status, resp.headers, bytes(data)
        finally:
            await conn.aclose()
