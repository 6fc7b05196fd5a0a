"""A bare trio byte pump: the floor of trio I/O for the proxy benchmarks.

For every accepted connection it opens one connection to the upstream and copies bytes both ways with
trio ``SocketStream``s (``receive_some`` / ``send_all``), with no HTTP parsing, routing or balancing.
Whatever pyproxy costs above this pump per request is its own logic; this is what trio itself costs
for the four socket operations of a proxied request.

    python bench/trio_pump.py --listen PORT --upstream PORT

Listens and connects on 127.0.0.1 only. Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from functools import partial
from typing import List, Optional

import trio

CHUNK = 65536


async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
    """Copies ``src`` to ``dst`` until EOF, then half-closes ``dst``."""
    try:
        while True:
            data = await src.receive_some(CHUNK)
            if not data:
                break
            await dst.send_all(data)
        await dst.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


def handler(upstream_port: int):
    async def handle(client: trio.SocketStream) -> None:
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", upstream_port)
        except OSError:
            await client.aclose()
            return
        async with client, upstream:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, client, upstream)
                nursery.start_soon(pump, upstream, client)

    return handle


async def serve(listen_port: int, upstream_port: int) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.serve_tcp, handler(upstream_port), listen_port, host="127.0.0.1"))
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", type=int, required=True, help="port to listen on (127.0.0.1)")
    ap.add_argument("--upstream", type=int, required=True, help="port to connect to (127.0.0.1)")
    args = ap.parse_args(argv)
    gc.freeze()  # as a tuned proxy would: startup objects out of the collector's way
    trio.run(serve, args.listen, args.upstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
