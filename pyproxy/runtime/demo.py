"""``pyproxy demo``: the ephemeral-staging story of the Linkerd article, on loopback, in one process.

Started here: the apps ``hello`` (calls ``world`` through the proxy, copying the ``l5d-ctx-*`` headers
it received onto that call, and answers ``Hello (<ip>) <world's answer>!``), ``world-v1``
(``world (<ip>)!``) and ``world-v2`` (``earth (<ip>)!``), all discovered through ``io.l5d.fs`` files;
and a proxy built from an ordinary Linkerd config with three routers: an **edge** (``clearContext``:
outsiders cannot override routing, unless the override is signed with the demo's key, made at
start in a temporary file), an **internal ingress** (trusted: ``l5d-dtab`` works there), and the
**outgoing** router the apps call each other through; all three carry overrides in baggage too
(``dtabBaggage``).
"""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from typing import Dict, List, Tuple

import trio

from .. import _impl
from ..http.message import Request, reason_phrase, serialize_response_head
from ..datapath.fetch import fetch
from ..datapath.stream import Body, Conn

__all__ = ["run_demo", "demo_config", "DTAB"]

DTAB = """\
/srv => /#/io.l5d.fs;
/host => /$/io.buoyant.http.domainToPathPfx/domain;
/domain/world/hello/www => /srv/hello;
/host => /srv;
/svc => /host;
/host/world => /srv/world-v1;
"""

_LIMITS = (8192, 65536, 100)


async def _respond(conn: Conn, status: int, text: str, minor: int) -> None:
    payload = text.encode()
    fields = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(payload))]
    await conn.send_all(serialize_response_head(minor, status, reason_phrase(status), fields) + payload)


async def _serve_app(port_holder: List[int], handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:  # type: ignore[no-untyped-def]
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port_holder.append(listeners[0].socket.getsockname()[1])
    task_status.started()

    async def connection(stream: trio.SocketStream) -> None:
        conn = Conn(stream)
        try:
            while True:
                t = await conn.read_head(_impl.parse_request_head, *_LIMITS)
                if t is None:
                    return
                req = Request.from_kernel(t)
                await Body.of(conn, req, _LIMITS).drain(1 << 20)
                status, text = await handler(req)
                await _respond(conn, status, text, req.minor)
                if not req.keep_alive:
                    return
        except Exception:  # noqa: BLE001 - a demo app drops the connection on any error
            return
        finally:
            await conn.aclose()

    await trio.serve_listeners(connection, listeners)


def _world(text: str):  # type: ignore[no-untyped-def]
    async def handler(req: Request) -> Tuple[int, str]:
        return 200, f"{text} (127.0.0.1)!"

    return handler


def _hello(outgoing: List[int]):  # type: ignore[no-untyped-def]
    async def handler(req: Request) -> Tuple[int, str]:
        ctx = [(k, v) for k, v in req.headers if k.lower().startswith(b"l5d-ctx-")]
        status, body = await http_get("127.0.0.1", outgoing[0], b"world", ctx)
        if status != 200:
            return 502, f"Hello (127.0.0.1) could not reach world: {status} {body}"
        return 200, f"Hello (127.0.0.1) {body}!"

    return handler


async def http_get(host: str, port: int, authority: bytes, fields: List[Tuple[bytes, bytes]]) -> Tuple[int, str]:
    """One GET through the proxy; returns (status, body text)."""
    status, _, body = await fetch(host, port, b"GET", b"/", [(b"Host", authority), *fields])
    return status, body.decode("utf-8", "replace")


def demo_config(root: str, admin_port: int, edge_port: int, ingress_port: int, outgoing_port: int, keys: str = "<keysFile>") -> str:
    """The Linkerd 1.x config the demo's proxy runs (printed by ``pyproxy demo --print-config``):
    every router reads and writes overrides in baggage (``dtabBaggage``), and the edge accepts
    overrides signed with a key of ``keys`` (``signedOverrides``)."""
    dtab = "\n".join("      " + line for line in DTAB.strip().splitlines())
    return f"""\
admin:
  ip: 127.0.0.1
  port: {admin_port}
namers:
- kind: io.l5d.fs
  rootDir: {root}
routers:
- protocol: http
  label: edge
  dtab: |
{dtab}
  dtabBaggage: {{}}
  servers:
  - ip: 127.0.0.1
    port: {edge_port}
    clearContext: true
    signedOverrides: {{keysFile: {keys}}}
- protocol: http
  label: ingress
  dtab: |
{dtab}
  dtabBaggage: {{}}
  servers:
  - ip: 127.0.0.1
    port: {ingress_port}
- protocol: http
  label: outgoing
  dtab: |
{dtab}
  dtabBaggage: {{}}
  servers:
  - ip: 127.0.0.1
    port: {outgoing_port}
"""


async def run_demo(ports: Dict[str, int], out=sys.stdout) -> None:  # type: ignore[no-untyped-def]
    """Start the apps and the proxy; run until cancelled (Ctrl-C)."""
    from .app import App
    from ..config import loads

    with tempfile.TemporaryDirectory(prefix="pyproxy-demo-") as root, tempfile.TemporaryDirectory(prefix="pyproxy-demo-keys-") as secrets:
        keys = os.path.join(secrets, "dtab-keys")  # not in root: every file there is a service
        with open(keys, "w") as f:
            f.write(f"# the demo's signing key (signedOverrides of the edge)\ndemo {base64.b64encode(os.urandom(32)).decode()}\n")
        hello_port: List[int] = []
        v1: List[int] = []
        v2: List[int] = []
        outgoing: List[int] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(_serve_app, v1, _world("world"))
            await nursery.start(_serve_app, v2, _world("earth"))
            await nursery.start(_serve_app, hello_port, _hello(outgoing))
            for name, port in (("hello", hello_port[0]), ("world-v1", v1[0]), ("world-v2", v2[0])):
                with open(os.path.join(root, name), "w") as f:
                    f.write(f"127.0.0.1 {port}\n")
            text = demo_config(root, ports["admin"], ports["edge"], ports["ingress"], ports["outgoing"], keys)
            app = App(loads(text))
            await nursery.start(app.run)
            addr = {name: srv.address for name, srv in app.listening()}
            outgoing.append(int(addr["outgoing"].rsplit(":", 1)[1]))
            print(
                "pyproxy demo is running (Ctrl-C stops it).\n\n"
                "Through the edge (clearContext: overrides from outside are ignored):\n"
                f"  curl -H 'Host: www.hello.world' http://{addr['edge']}/\n\n"
                "Through the internal ingress, with a per-request override to stage world-v2:\n"
                f"  curl -H 'Host: www.hello.world' -H 'l5d-dtab: /host/world => /srv/world-v2;' http://{addr['ingress']}/\n\n"
                "The same override, signed so that the edge accepts it from outside:\n"
                f"  pyproxy stage world=world-v2 --router edge --host www.hello.world --admin http://{addr['admin']} --sign {keys}\n",
                file=out,
                flush=True,
            )
            await trio.sleep_forever()

