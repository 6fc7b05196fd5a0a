"""``pyproxy run --workers N``: N worker processes sharing the listeners, one admin view.

The supervisor (this process) runs no router. It reserves each listener's port (a port of 0 is given
one by the OS) with an SO_REUSEPORT socket, starts N workers (``python -m pyproxy run CONFIG`` with
``PYPROXY_WORKER`` describing their ports), which bind the same ports with SO_REUSEPORT so the
kernel spreads connections among them, then closes its reservation. Each worker runs the whole
config (routers, namers polling their files, telemetry) with a private admin server on loopback.

The supervisor serves the configured admin address, behind ``admin.security`` as a single process's
admin server is (a denied path answers 404), with the same bounds on slow clients (a request begun
must arrive within ``admin.socketOptions.readTimeoutMs``, else 408). ``/admin/metrics.json`` is
the group's: counters and gauges summed over the workers (``process/rss_bytes`` too: the totals of
the group), histograms merged bucket by bucket (each worker's ``/admin/metrics.json?buckets=true``)
so that count, sum, min, max and every percentile are those of the union of the workers' samples,
plus ``workers/restarts``; the Prometheus path gives the workers' series with a ``worker`` label;
``/admin/workers.json`` lists the workers (index, pid, private admin address, restarts);
``/admin/ping`` is the supervisor's own, and ``POST /admin/shutdown`` stops the group; every other
admin path is answered by worker 0. SIGTERM/SIGINT stop the workers gracefully (each finishes its
requests in flight) and exit 0. A worker that dies is restarted (at most a few times a minute).
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

from ..admin.request import AdminRequest
from ..admin.routes import render_metrics, rows_summary
from ..admin.security import Security
from ..admin.server import IDLE_TIMEOUT, read_request
from ..config.base import tag_of
from ..datapath.fetch import fetch
from ..listener import Listener
from ..errors import ListenError, RemoteProtocolError
from ..http.message import Request, reason_phrase, serialize_response_head
from ..datapath.stream import Conn
from ..metrics import Histogram, Key, Number, Summary, tree_of
from .app import admin_read_timeout

__all__ = ["Supervisor", "WORKER_ENV"]

WORKER_ENV = "PYPROXY_WORKER"
#: The longest piece of a worker's stderr the supervisor holds before passing it on.
MAX_LOG_LINE = 64 << 10
_READY = re.compile(r"pyproxy: listening name=(\S+) addr=(\S+)")
_TEXT = b"text/plain; charset=utf-8"
#: A worker that dies is restarted, at most this many times per minute.
MAX_RESTARTS_PER_MINUTE = 5


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: Optional[trio.Process] = None
        self.admin: Optional[Tuple[str, int]] = None  # its private admin server, while it runs
        self.ready = trio.Event()  # set once its first process listens
        self.restarts = 0


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
        self.security = Security.from_config(config.admin.security)
        self.read_timeout = admin_read_timeout(config.admin)
        prom = next((t for t in config.telemetry if tag_of(t)[1] == "io.l5d.prometheus"), None)
        self.prometheus_path = prom.path.encode() if prom is not None else None

    def _reserve_ports(self) -> None:
        for i, rc in enumerate(self.config.routers):
            for j, sc in enumerate(rc.servers):
                s = socket.socket(socket.AF_INET6 if ":" in sc.ip else socket.AF_INET)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                try:
                    s.bind((sc.ip, sc.port))  # not listening: it only holds the port number
                except OSError as exc:
                    for held in self._reserved + [s]:
                        held.close()
                    raise ListenError(f"$.routers[{i}].servers[{j}]: cannot listen on {sc.ip}:{sc.port}: {exc.strerror or exc}") from None
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
            admin = Listener(admin_cfg.ip, admin_cfg.port, "$.admin", self._admin_connection)
            await admin.bind()
            for key in sorted(self.ports):
                label, ip = self.labels[key]
                addr = f"[{ip}]" if ":" in ip else ip
                print(f"pyproxy: listening name={label} addr={addr}:{self.ports[key]}", file=sys.stderr, flush=True)
            print(f"pyproxy: listening name=admin addr={admin.address}", file=sys.stderr, flush=True)
            await nursery.start(admin.serve)
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
                lines, buf = split_lines(buf, chunk)
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
            w.admin = None  # its admin server is gone with it
            await w.proc.wait()
            if self._stopping:
                return
            w.restarts += 1
            now = trio.current_time()
            self._restarts = [t for t in self._restarts if now - t < 60] + [now]
            print(f"pyproxy: worker {w.index} exited with {w.proc.returncode}; restarting", file=sys.stderr, flush=True)
            if len(self._restarts) > MAX_RESTARTS_PER_MINUTE:
                await trio.sleep(5)

    # === the group's admin ===

    async def _admin_connection(self, stream: trio.SocketStream) -> None:
        conn = Conn(stream)
        try:
            with trio.move_on_after(IDLE_TIMEOUT):
                while not conn.buf:
                    if not await conn.fill():
                        return
            if not conn.buf:
                return
            got = await read_request(conn, self.read_timeout)  # 408 when the client is too slow
            if got is None:
                return
            req, _, body = got
            status, ctype, payload, extra = await self._admin(req, body)
            fields = [(b"Content-Type", ctype), (b"Content-Length", b"%d" % len(payload)), *extra, (b"Connection", b"close")]
            if req.method == b"HEAD":
                payload = b""
            await conn.send_all(serialize_response_head(req.minor, status, reason_phrase(status), fields) + payload)
        except (RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            return
        except Exception:  # noqa: BLE001 - one admin request must never stop the group
            return
        finally:
            await conn.aclose()

    async def _admin(self, req: Request, body: bytes) -> Tuple[int, bytes, bytes, List[Tuple[bytes, bytes]]]:
        """(status, content type, body, more fields) of one request to the group's admin address."""
        path = req.target.split(b"?")[0]
        if not self.security.allowed(path.decode("latin-1")):
            return 404, _TEXT, b"", []  # as AdminRoutes: a denied path does not exist
        own = path in (b"/admin/ping", b"/admin/metrics.json", b"/admin/workers.json") or path == self.prometheus_path
        if own and req.method not in (b"GET", b"HEAD"):
            return 405, _TEXT, b"method not allowed", [(b"Allow", b"GET, HEAD")]
        if path == b"/admin/ping":
            return 200, _TEXT, b"pong", []
        if path == b"/admin/shutdown":
            if req.method != b"POST":
                return 405, _TEXT, b"POST required", [(b"Allow", b"POST")]
            os.kill(os.getpid(), signal.SIGTERM)
            return 200, _TEXT, b"shutting down", []
        if path == b"/admin/workers.json":
            return 200, b"application/json", json.dumps(self._workers_json()).encode(), []
        ready = [w for w in self.workers if w.admin is not None and w.ready.is_set()]
        if not ready:
            return 503, _TEXT, b"no worker is ready", []
        if path == b"/admin/metrics.json":
            parts = [await _fetch_quietly(w.admin, b"/admin/metrics.json?buckets=true") for w in ready]  # type: ignore[arg-type]
            rows = merge_metrics([json.loads(p) for p in parts if p is not None])
            rows.append((("workers", "restarts"), sum(w.restarts for w in self.workers), "counter"))
            areq = AdminRequest("GET", req.target.decode("latin-1"))
            reply = render_metrics(tree_of(sorted(rows, key=lambda r: r[0])), areq)
            return reply.status, reply.ctype, reply.body, []
        if path == self.prometheus_path:
            out: List[bytes] = []
            seen: set = set()
            for w in ready:
                payload = await _fetch_quietly(w.admin, req.target)  # type: ignore[arg-type]
                if payload is not None:
                    out.extend(_label(payload, w.index, seen))
            return 200, b"text/plain; version=0.0.4", b"".join(out), []
        fields = [(k, v) for k, v in req.headers if k.lower() in (b"content-type", b"accept")]
        status, ctype, data = await _fetch(ready[0].admin, req.method, req.target, fields, body)  # type: ignore[arg-type]
        return status, ctype, data, []

    def _workers_json(self) -> List[Dict[str, Any]]:
        out = []
        for w in self.workers:
            proc = w.proc
            running = proc is not None and proc.returncode is None
            out.append({
                "index": w.index, "pid": proc.pid if running else None,  # type: ignore[union-attr]
                "admin": f"{w.admin[0]}:{w.admin[1]}" if w.admin is not None else None, "restarts": w.restarts,
            })
        return out


def split_lines(buf: bytes, chunk: bytes) -> Tuple[List[bytes], bytes]:
    """The whole lines of ``buf + chunk`` and the rest; a rest longer than :data:`MAX_LOG_LINE`
    (a line without end) is passed on as a line of its own rather than kept growing."""
    *lines, rest = (buf + chunk).split(b"\n")
    if len(rest) > MAX_LOG_LINE:
        lines.append(rest)
        rest = b""
    return lines, rest


def merge_metrics(parts: List[List[list]]) -> List[Tuple[Key, Any, str]]:
    """The group's metrics from each worker's ``/admin/metrics.json?buckets=true`` rows: counters and
    gauges summed, histograms merged bucket by bucket (:meth:`Histogram.merged`)."""
    numbers: Dict[Key, Tuple[Number, str]] = {}
    stats: Dict[Key, List[Summary]] = {}
    for rows in parts:
        for elems, kind, value in rows:
            key = tuple(elems)
            if kind == "stat":
                stats.setdefault(key, []).append(rows_summary(value))
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                prev = numbers.get(key)
                numbers[key] = (prev[0] + value if prev is not None else value, kind)
    out: List[Tuple[Key, Any, str]] = [(k, v, kind) for k, (v, kind) in numbers.items()]
    out.extend((k, Histogram.merged(ss), "stat") for k, ss in stats.items())
    return out


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


async def _fetch_quietly(addr: Tuple[str, int], target: bytes) -> Optional[bytes]:
    """The body of a 200 answer to ``GET target`` from a worker's admin server; None when there is
    none (the worker is restarting, or stopping): the group's answer is then the others'."""
    try:
        status, _, data = await _fetch(addr, b"GET", target, [])
    except (OSError, trio.TooSlowError, RemoteProtocolError):
        return None
    return data if status == 200 else None


async def _fetch(addr: Tuple[str, int], method: bytes, target: bytes, fields: List[Tuple[bytes, bytes]], body: bytes = b"") -> Tuple[int, bytes, bytes]:
    """One request to a worker's admin server: (status, content type, body)."""
    status, headers, data = await fetch(addr[0], addr[1], method, target, [(b"Host", b"admin"), *fields], body)
    ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"text/plain")
    return status, ctype, data
