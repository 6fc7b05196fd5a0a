"""``pyproxy run --workers N``: N worker processes sharing the listeners, one admin view.

The supervisor (this process) runs no router. It reserves each listener's port (a port of 0 is given
one by the OS) with an SO_REUSEPORT socket, starts N workers (``python -m pyproxy run CONFIG`` with
``PYPROXY_WORKER`` describing their ports), which bind the same ports with SO_REUSEPORT so the
kernel spreads connections among them, then closes its reservation. Each worker runs the whole
config (routers, namers polling their files, telemetry) with a private admin server on loopback.

The supervisor serves the configured admin address: ``/admin/metrics.json`` is the sum of the
workers' metrics (gauges such as ``process/rss_bytes`` summed too: the totals of the group),
``/admin/metrics/prometheus`` their series with a ``worker`` label, ``/admin/ping`` itself, and
``POST /admin/shutdown`` stops the group; every other admin path is answered by worker 0.
SIGTERM/SIGINT stop the workers gracefully (each finishes its requests in flight) and exit 0. A
worker that dies is restarted (at most a few times a minute).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import trio

from .. import _impl
from ..datapath.fetch import fetch
from ..http.message import Request, reason_phrase, serialize_response_head
from ..datapath.stream import Body, Conn

__all__ = ["Supervisor", "WORKER_ENV"]

WORKER_ENV = "PYPROXY_WORKER"
_READY = re.compile(r"pyproxy: listening name=(\S+) addr=(\S+)")
_LIMITS = (8192, 65536, 100)
#: A worker that dies is restarted, at most this many times per minute.
MAX_RESTARTS_PER_MINUTE = 5


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: Optional[trio.Process] = None
        self.admin: Optional[Tuple[str, int]] = None
        self.ready = trio.Event()


class Supervisor:
    """Runs ``workers`` copies of the proxy described by ``config`` (already validated)."""

    def __init__(self, config: Any, config_path: str, workers: int, args: Optional[List[str]] = None) -> None:
        self.config = config
        self.args = list(args or [])
        self.config_path = config_path
        self.n = workers
        self.workers = [_Worker(i) for i in range(workers)]
        self.ports: Dict[Tuple[int, int], int] = {}
        self.labels: Dict[Tuple[int, int], Tuple[str, str]] = {}
        self._reserved: List[socket.socket] = []
        self._stopping = False
        self._restarts: List[float] = []

    def _reserve_ports(self) -> None:
        for i, rc in enumerate(self.config.routers):
            for j, sc in enumerate(rc.servers):
                s = socket.socket(socket.AF_INET6 if ":" in sc.ip else socket.AF_INET)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind((sc.ip, sc.port))  # not listening: it only holds the port number
                self._reserved.append(s)
                self.ports[(i, j)] = s.getsockname()[1]
                self.labels[(i, j)] = (rc.label, sc.ip)

    async def run(self) -> int:
        self._reserve_ports()
        admin_cfg = self.config.admin
        async with trio.open_nursery() as nursery:
            for w in self.workers:
                nursery.start_soon(self._keep_running, w)
            with trio.fail_after(60):
                for w in self.workers:
                    await w.ready.wait()
            for s in self._reserved:
                s.close()
            listeners = await trio.open_tcp_listeners(admin_cfg.port, host=admin_cfg.ip)
            for key in sorted(self.ports):
                label, ip = self.labels[key]
                addr = f"[{ip}]" if ":" in ip else ip
                print(f"pyproxy: listening name={label} addr={addr}:{self.ports[key]}", file=sys.stderr, flush=True)
            host, port = listeners[0].socket.getsockname()[:2]
            print(f"pyproxy: listening name=admin addr={host}:{port}", file=sys.stderr, flush=True)
            nursery.start_soon(trio.serve_listeners, self._admin_connection, listeners)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            await self.stop()
            nursery.cancel_scope.cancel()
        return 0

    async def stop(self) -> None:
        """Graceful stop of every worker, then the supervisor's own tasks end."""
        self._stopping = True
        grace = self.config.admin.shutdown_grace_ms / 1000.0 + 5
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            for w in self.workers:
                if w.proc is not None:
                    await w.proc.wait()
        for w in self.workers:
            if w.proc is not None and w.proc.returncode is None:
                w.proc.kill()

    async def _keep_running(self, w: _Worker) -> None:
        while not self._stopping:
            spec = json.dumps({"index": w.index, "ports": {f"{i}.{j}": p for (i, j), p in self.ports.items()}})
            env = dict(os.environ, **{WORKER_ENV: spec})
            w.proc = await trio.lowlevel.open_process(
                [sys.executable, "-m", "pyproxy", "run", *self.args, self.config_path], env=env, stderr=subprocess.PIPE
            )
            assert w.proc.stderr is not None
            buf = b""
            async for chunk in w.proc.stderr:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    text = line.decode("utf-8", "replace")
                    m = _READY.search(text)
                    if m:
                        if m.group(1) == "admin":
                            host, _, port = m.group(2).rpartition(":")
                            w.admin = (host.strip("[]"), int(port))
                            w.ready.set()
                    else:
                        print(text, file=sys.stderr, flush=True)  # log records pass through as written
            await w.proc.wait()
            if self._stopping:
                return
            now = trio.current_time()
            self._restarts = [t for t in self._restarts if now - t < 60] + [now]
            print(f"pyproxy: worker {w.index} exited with {w.proc.returncode}; restarting", file=sys.stderr, flush=True)
            if len(self._restarts) > MAX_RESTARTS_PER_MINUTE:
                await trio.sleep(5)

    # === the group's admin ===

    async def _admin_connection(self, stream: trio.SocketStream) -> None:
        conn = Conn(stream)
        try:
            t = await conn.read_head(_impl.parse_request_head, *_LIMITS)
            if t is None:
                return
            req = Request.from_kernel(t)
            body = Body.of(conn, req, _LIMITS)
            data = bytearray()
            while len(data) <= 1 << 20:
                piece = await body.read()
                if not piece:
                    break
                data += piece
            status, ctype, payload = await self._admin(req, bytes(data))
            fields = [(b"Content-Type", ctype), (b"Content-Length", b"%d" % len(payload)), (b"Connection", b"close")]
            await conn.send_all(serialize_response_head(req.minor, status, reason_phrase(status), fields) + payload)
        except Exception:  # noqa: BLE001 - one admin request must never stop the group
            return
        finally:
            await conn.aclose()

    async def _admin(self, req: Request, body: bytes) -> Tuple[int, bytes, bytes]:
        path = req.target.split(b"?")[0]
        if path == b"/admin/ping":
            return 200, b"text/plain", b"pong"
        if path == b"/admin/shutdown":
            if req.method != b"POST":
                return 405, b"text/plain", b"POST required"
            os.kill(os.getpid(), signal.SIGTERM)
            return 200, b"text/plain", b"shutting down"
        ready = [w for w in self.workers if w.admin is not None and w.ready.is_set()]
        if not ready:
            return 503, b"text/plain", b"no worker is ready"
        if path == b"/admin/metrics.json":
            parts = [await _fetch(w.admin, b"GET", req.target, []) for w in ready]  # type: ignore[arg-type]
            merged: Any = None
            for status, _, payload in parts:
                if status == 200:
                    merged = _sum(merged, json.loads(payload))
            return 200, b"application/json", json.dumps(merged if merged is not None else {}).encode()
        if path.startswith(b"/admin/metrics/prometheus"):
            out: List[bytes] = []
            seen = set()
            for w in ready:
                status, _, payload = await _fetch(w.admin, b"GET", req.target, [])  # type: ignore[arg-type]
                if status == 200:
                    out.extend(_label(payload, w.index, seen))
            return 200, b"text/plain; version=0.0.4", b"".join(out)
        fields = [(k, v) for k, v in req.headers if k.lower() in (b"content-type", b"accept")]
        return await _fetch(ready[0].admin, req.method, req.target, fields, body)  # type: ignore[arg-type]


def _sum(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _sum(out.get(k), v)
        return out
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a + b
    return a


_SERIES = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?(\s.*)$")


def _label(text: bytes, index: int, seen: set) -> List[bytes]:
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith(b"#"):
            if line not in seen:
                seen.add(line)
                out.append(line)
            continue
        m = _SERIES.match(line.rstrip(b"\n"))
        if not m:
            continue
        name, labels, rest = m.group(1), m.group(2), m.group(3)
        worker = b'worker="%d"' % index
        labels = b"{" + worker + b"}" if not labels or labels == b"{}" else labels[:-1] + b"," + worker + b"}"
        out.append(name + labels + rest + b"\n")
    return out


async def _fetch(addr: Tuple[str, int], method: bytes, target: bytes, fields: List[Tuple[bytes, bytes]], body: bytes = b"") -> Tuple[int, bytes, bytes]:
    """One request to a worker's admin server: (status, content type, body)."""
    status, headers, data = await fetch(addr[0], addr[1], method, target, [(b"Host", b"admin"), *fields], body)
    ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"text/plain")
    return status, ctype, data
