"""namerd, measured. One run; real etcd (Debian's, v2 API on), real processes on loopback.

1. **A PUT to the first request routed by it**: two ``pyproxy namerd`` replicas on one etcd, one
   pyproxy (native, ``io.l5d.namerd.http``, both replicas in its ``dst``) in front of two origins
   ("a" and "b"). ``--changes`` times: the namespace's dtab is switched between the origins with a
   PUT (If-Match) on one replica, alternately the first and the second; a closed loop of requests
   through the proxy measures the time from the PUT's answer to the first response of the new
   origin. Goal: p99 <= 1 s.
2. **Bind watches at scale**: one namerd (in-memory store, io.l5d.fs namer) holding ``--proxies``
   x ``--names`` bind watches (``watch=true`` streams, one connection each, as Linkerd's and
   pyproxy's interpreters open them; every proxy watches the same names with the same router
   dtab). Its RSS idle and with the watches open; then ``--updates`` dtab changes, each rebinding
   every name (a PUT, then wait until every stream has its new document): namerd's CPU time per
   update (from /proc), and the time until the last stream had it.

    python bench/namerd.py [--changes 100] [--proxies 100] [--names 100] [--updates 20]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from namerdproc import get_dtab, put_dtab, start_namerd  # noqa: E402
from proxyproc import ProxyProcess  # noqa: E402
from stores import EtcdServer  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class _Origin:
    def __init__(self, text: str) -> None:
        body = text.encode()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # head and body go in two writes: without this, Nagle and the proxy's delayed ACK
                # hold the body ~40 ms (nginx sets it too)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pct(values: List[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def put_to_route(changes: int) -> Dict[str, float]:
    origins = {"a": _Origin("a"), "b": _Origin("b")}
    disco = tempfile.mkdtemp(prefix="bench-namerd-")
    for name, o in origins.items():
        with open(os.path.join(disco, name), "w") as f:
            f.write(f"127.0.0.1 {o.port}\n")
    etcd = EtcdServer()
    namerds: List[ProxyProcess] = []
    proxy = None
    try:
        etcd.start()
        cfg = ("admin: {ip: 127.0.0.1, port: 0}\n"
               f"storage: {{kind: io.l5d.etcd, experimental: true, host: 127.0.0.1, port: {etcd.port}}}\n"
               f"namers: [{{kind: io.l5d.fs, rootDir: {disco}}}]\n"
               "interfaces: [{kind: io.l5d.httpController, ip: 127.0.0.1, port: 0}]\n")
        namerds = [start_namerd(cfg) for _ in range(2)]
        ctl = [n.addr("io.l5d.httpController") for n in namerds]
        assert put_dtab(ctl[0], "bench", "/svc/web => /#/io.l5d.fs/a", method="POST")[0] == 204
        local = tempfile.mkdtemp(prefix="bench-proxy-")
        with open(os.path.join(local, "namerd"), "w") as f:
            f.write("".join(f"{h} {p}\n" for h, p in ctl))
        proxy = ProxyProcess(
            "admin: {ip: 127.0.0.1, port: 0}\n"
            f"namers: [{{kind: io.l5d.fs, rootDir: {local}}}]\n"
            "routers:\n- protocol: http\n  label: out\n"
            "  interpreter: {kind: io.l5d.namerd.http, experimental: true, dst: /#/io.l5d.fs/namerd, namespace: bench}\n"
            "  servers: [{ip: 127.0.0.1, port: 0}]\n", "native")
        conn = http.client.HTTPConnection(*proxy.addr("out"), timeout=10)

        def ask() -> str:
            conn.request("GET", "/", headers={"Host": "web"})
            return conn.getresponse().read().decode()

        deadline = time.monotonic() + 20
        while ask() != "a" and time.monotonic() < deadline:
            time.sleep(0.05)
        times: List[float] = []
        current = "a"
        for i in range(changes):
            target = "b" if current == "a" else "a"
            via = ctl[i % 2]
            _, version, _ = get_dtab(via, "bench")
            assert put_dtab(via, "bench", f"/svc/web => /#/io.l5d.fs/{target}", version=version)[0] == 204
            t0 = time.perf_counter()
            limit = t0 + 10
            while ask() != target:
                if time.perf_counter() > limit:
                    raise RuntimeError(f"change {i}: not routed to {target} within 10 s")
            times.append(time.perf_counter() - t0)
            current = target
        conn.close()
        return {"changes": changes, "p50_ms": _pct(times, 50) * 1000, "p99_ms": _pct(times, 99) * 1000, "max_ms": max(times) * 1000}
    finally:
        if proxy is not None:
            proxy.stop()
        for n in namerds:
            n.stop()
        etcd.close()
        for o in origins.values():
            o.close()


def watches(proxies: int, names: int, updates: int, profile: str = "") -> Dict[str, float]:
    import trio

    disco = tempfile.mkdtemp(prefix="bench-namerd-")
    for side, port in (("a", 1111), ("b", 2222)):
        os.makedirs(os.path.join(disco, side))
        for i in range(names):
            with open(os.path.join(disco, side, f"svc-{i}"), "w") as f:
                f.write(f"127.0.0.1 {port}\n127.0.0.2 {port}\n")
    namerd = start_namerd(
        "admin: {ip: 127.0.0.1, port: 0}\n"
        "storage: {kind: io.l5d.inMemory, namespaces: {bench: /svc => /#/io.l5d.fs/a}}\n"
        f"namers: [{{kind: io.l5d.fs, rootDir: {disco}}}]\n"
        "interfaces: [{kind: io.l5d.httpController, ip: 127.0.0.1, port: 0}]\n")
    pid = namerd.proc.pid
    ctl = namerd.addr("io.l5d.httpController")
    out: Dict[str, float] = {}
    try:
        time.sleep(1.0)
        out["rss_idle_mib"] = _rss_mib(pid)
        total = proxies * names
        counts = [0] * total

        async def watch(i: int, opened: "trio.MemorySendChannel[int]") -> None:
            stream = await trio.open_tcp_stream(*ctl)
            name = f"/svc/svc-{i % names}"
            await stream.send_all(f"GET /api/1/bind/bench?path={name}&watch=1&dtab= HTTP/1.1\r\nHost: namerd\r\n\r\n".encode())
            await opened.send(i)
            buf = b""
            async with stream:
                while True:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                    # chunked framing: each document is one chunk ending in "}\n"
                    n = buf.count(b"}\n")
                    if n:
                        counts[i] += n
                        buf = buf[buf.rfind(b"}\n") + 2:]

        async def wait_all(k: int, limit: float) -> float:
            t0 = time.perf_counter()
            with trio.fail_after(limit):
                while min(counts) < k:
                    await trio.sleep(0.005)
            return time.perf_counter() - t0

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                send, recv = trio.open_memory_channel[int](total)
                for i in range(total):
                    nursery.start_soon(watch, i, send)
                    if i % 200 == 199:
                        await trio.sleep(0.02)
                await wait_all(1, 120)
                await trio.sleep(1.0)
                out["rss_watches_mib"] = _rss_mib(pid)
                spy = None
                if profile:  # py-spy's view of namerd while it serves the updates
                    import subprocess

                    spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-o", profile, "-f", "raw", "-r", "200"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    await trio.sleep(1.0)
                cpu0 = _cpu_seconds(pid)
                lags = []
                side = "a"
                for k in range(updates):
                    side = "b" if side == "a" else "a"
                    _, version, _ = await trio.to_thread.run_sync(get_dtab, ctl, "bench")
                    await trio.to_thread.run_sync(lambda: put_dtab(ctl, "bench", f"/svc => /#/io.l5d.fs/{side}", version=version))
                    lags.append(await wait_all(k + 2, 60))
                cpu = _cpu_seconds(pid) - cpu0
                if spy is not None:
                    import signal as _signal

                    spy.send_signal(_signal.SIGINT)
                    spy.wait(30)
                out["cpu_ms_per_update"] = cpu / updates * 1000
                out["cpu_us_per_watch_update"] = cpu / updates / total * 1e6
                out["last_stream_p50_ms"] = statistics.median(lags) * 1000
                out["last_stream_max_ms"] = max(lags) * 1000
                nursery.cancel_scope.cancel()

        trio.run(main)
        out["watches"] = total
    finally:
        namerd.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--proxies", type=int, default=100)
    ap.add_argument("--names", type=int, default=100)
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--profile", default="", metavar="FILE", help="py-spy record namerd during the updates (raw stacks)")
    ap.add_argument("--only", choices=("route", "watches"), default=None, help="run one of the two measurements")
    args = ap.parse_args()
    if args.only != "watches":
        _route(args)
    if args.only != "route":
        _watches(args)


def _route(args: argparse.Namespace) -> None:
    first = put_to_route(args.changes)
    print(json.dumps({"put_to_route": first}), flush=True)
    print(f"PUT on one replica -> first request routed by it ({first['changes']} changes, two replicas on etcd): "
          f"p50 {first['p50_ms']:.1f} ms, p99 {first['p99_ms']:.1f} ms, max {first['max_ms']:.1f} ms "
          f"(goal p99 <= 1000 ms: {'met' if first['p99_ms'] <= 1000 else 'NOT met'})")


def _watches(args: argparse.Namespace) -> None:
    second = watches(args.proxies, args.names, args.updates, args.profile)
    print(json.dumps({"watches": second}), flush=True)
    print(f"{second['watches']:.0f} bind watches ({args.proxies} proxies x {args.names} names) on one namerd: "
          f"RSS {second['rss_idle_mib']:.1f} MiB idle, {second['rss_watches_mib']:.1f} MiB with the watches; "
          f"CPU {second['cpu_ms_per_update']:.1f} ms per update ({second['cpu_us_per_watch_update']:.1f} µs per watch); "
          f"last stream updated after p50 {second['last_stream_p50_ms']:.0f} ms, max {second['last_stream_max_ms']:.0f} ms")


if __name__ == "__main__":
    main()
