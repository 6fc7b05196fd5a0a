"""Shared pieces of the end-to-end benchmarks (``proxy_bench.py``, ``suite.py``).

Processes under test are started in their own session (process group), pinned with ``taskset`` where
it exists, and stopped as a group: SIGTERM, then SIGKILL. A proxy's CPU time and RSS are summed over
its whole process group, because nginx does its work in a worker, a child of the master whose pid
``Popen`` returns (the master alone uses almost no CPU).

Everything listens and connects on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _stat_fields(pid: int) -> List[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # fields from the 3rd on: state is [0]


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_seconds(pid: int) -> float:
    """stime of one process: the part of its CPU time spent in the kernel."""
    return int(_stat_fields(pid)[12]) / CLK_TCK


def group_pids(pgid: int) -> List[int]:
    """The live processes of process group ``pgid``."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if int(_stat_fields(int(name))[2]) == pgid:
                pids.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def taskset(cpu: int) -> List[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


NGINX_ORIGIN = """
worker_processes 1;
daemon off;
pid {dir}/origin.pid;
error_log {dir}/origin-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{ return 200 "hello\\n"; }}
  }}
}}
"""

NGINX_PROXY = """
worker_processes 1;
daemon off;
pid {dir}/proxy.pid;
error_log {dir}/proxy-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the benchmark dies (Linux PR_SET_PDEATHSIG), so
    that even a killed benchmark leaves no proxy running. Best effort."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class Proc:
    """A process started in its own process group; CPU and memory are summed over the group."""

    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None) -> None:
        self.p = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def pids(self) -> List[int]:
        return group_pids(self.p.pid) or [self.p.pid]

    def _summed(self, of: Callable[[int], float]) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                total += of(pid)
            except OSError:
                pass  # exited meanwhile
        return total

    def cpu_seconds(self) -> float:
        return self._summed(cpu_seconds)

    def system_seconds(self) -> float:
        """Kernel CPU time of the group (part of :meth:`cpu_seconds`)."""
        return self._summed(system_seconds)

    def rss_kib(self, key: str = "VmRSS") -> int:
        """``VmRSS`` (or ``VmHWM``, the peak) summed over the group, KiB."""
        total = 0
        for pid in self.pids():
            try:
                total += _status_kib(pid, key)
            except OSError:
                pass
        return total

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
            except ProcessLookupError:
                pass
        else:  # the leader is gone; leftovers of its group (nginx workers) are not
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def start_nginx(conf: str, tmp: str, name: str, cpu: int) -> Proc:
    path = os.path.join(tmp, f"{name}.conf")
    with open(path, "w") as f:
        f.write(conf)
    return Proc(taskset(cpu) + ["nginx", "-c", path, "-p", tmp, "-e", os.path.join(tmp, f"{name}-error.log")])


TELEMETRY = "telemetry:\n- kind: io.l5d.prometheus\n- kind: io.l5d.recentRequests\n  sampleRate: 0.25\n"


def start_pyproxy(
    impl: str, origin: int, port: int, tmp: str, cpu: Optional[int], *, telemetry: bool = False, workers: int = 1,
    lane: bool = True, total_timeout_ms: Optional[int] = None, max_concurrent: Optional[int] = None,
    dtab_baggage: bool = False, signed_keys: Optional[str] = None,
) -> Proc:
    """``python -m pyproxy run`` with one router in front of ``origin`` (an io.l5d.fs file), on
    CPU ``cpu`` (None: not pinned); ``telemetry`` adds prometheus and recentRequests at 0.25;
    ``lane=False`` keeps every request on the trio path (``PYPROXY_LANE=off``); ``total_timeout_ms``
    sets the router's ``service.totalTimeoutMs`` (every request then has a deadline);
    ``max_concurrent`` the server's ``maxConcurrentRequests``; ``dtab_baggage`` the router's
    ``dtabBaggage`` (W3C baggage); ``signed_keys`` makes the server an edge (``clearContext``) that
    accepts overrides signed with a key of that file (``signedOverrides``)."""
    name = f"{impl}-{port}"
    root = os.path.join(tmp, f"disco-{name}")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "origin"), "w") as f:
        f.write(f"127.0.0.1 {origin}\n")
    conf = os.path.join(tmp, f"pyproxy-{name}.yaml")
    with open(conf, "w") as f:
        f.write(
            f"admin: {{ip: 127.0.0.1, port: {free_port()}}}\n"
            f"namers:\n- kind: io.l5d.fs\n  rootDir: {root}\n"
            + (TELEMETRY if telemetry else "")
            + "routers:\n- protocol: http\n  label: bench\n"
            "  dtab: /svc => /#/io.l5d.fs; /srv => /#/io.l5d.fs; /host/world => /#/io.l5d.fs/world\n"
            + (f"  service: {{totalTimeoutMs: {total_timeout_ms}}}\n" if total_timeout_ms else "")
            + ("  dtabBaggage: {carriers: [baggage]}\n" if dtab_baggage else "")
            + f"  servers:\n  - ip: 127.0.0.1\n    port: {port}\n"
            + (f"    maxConcurrentRequests: {max_concurrent}\n" if max_concurrent else "")
            + (f"    clearContext: true\n    signedOverrides: {{keysFile: {signed_keys}}}\n" if signed_keys else "")
        )
    env = dict(os.environ, PYPROXY_IMPL=impl, PYPROXY_LANE="on" if lane else "off")
    extra = ["--workers", str(workers)] if workers > 1 else []
    pin = taskset(cpu) if cpu is not None else []
    return Proc(pin + [sys.executable, "-m", "pyproxy", "run", *extra, conf], env=env)


def wrk(port: int, seconds: float, connections: int, headers: List[str]) -> Tuple[int, float]:
    """Closed loop, one wrk thread on CPU 1: (requests completed, seconds). Raises on failed responses.

    wrk takes whole seconds only (``-d1.0s`` is a usage error), so ``seconds`` is rounded, at least 1.
    """
    argv = taskset(1) + ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    argv.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not m:
        raise RuntimeError(f"wrk said:\n{out}")
    requests = int(m.group(1))
    dur = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses on port {port}:\n{out}")
    return requests, dur


def measure(proc: Optional[Proc], port: int, seconds: float, connections: int, headers: List[str]) -> Dict[str, float]:
    """wrk against ``port``; with ``proc``, also its CPU per request (process group) and RSS."""
    before = proc.cpu_seconds() if proc else 0.0
    requests, dur = wrk(port, seconds, connections, headers)
    after = proc.cpu_seconds() if proc else 0.0
    out = {"rps": requests / dur, "requests": requests}
    if proc:
        out["cpu_us_per_req"] = (after - before) / requests * 1e6
        out["rss_kib"] = proc.rss_kib()
    return out
