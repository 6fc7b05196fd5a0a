"""Start the real ``pyproxy`` CLI as a subprocess for black-box tests, and talk to it on loopback.

``ProxyProcess(config_text, impl)`` runs ``python -m pyproxy run <file>`` in its own process group
with every listener on port 0, waits (bounded) for the readiness lines
``pyproxy: listening name=<name> addr=<ip>:<port>``, and on ``stop()`` sends SIGTERM, then SIGKILL
after a deadline, and fails if the proxy logged a traceback (nothing a client sends, and no
configuration, may put one in the log). ``raw(addr, data)`` sends bytes and reads the answer until the server closes or a
timeout passes. ``one_router(...)`` is a proxy with one router in front of one origin.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

READY = re.compile(r"pyproxy: listening name=(\S+) addr=(\S+)")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def child_options() -> Dict[str, object]:
    """``Popen`` options for every process a test starts: its own process group (stopped as a
    whole), and killed by the kernel if the test process dies first (a killed ``pytest`` must not
    leave proxies, namerds or stores running: one left behind once grew for an hour). The death
    signal follows the *thread* that started the child, so it is only asked for from the main one."""
    opts: Dict[str, object] = {"start_new_session": True}
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        opts["preexec_fn"] = _die_with_parent
    return opts


class ProxyProcess:
    def __init__(self, config_text: str, impl: str, *, timeout: float = 20.0, extra_env: Optional[Dict[str, str]] = None,
                 command: str = "run") -> None:
        self.dir = tempfile.mkdtemp(prefix="pyproxy-test-")
        self.config_path = os.path.join(self.dir, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write(config_text)
        env = dict(os.environ, PYPROXY_IMPL=impl, PYTHONUNBUFFERED="1")
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyproxy", command, self.config_path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            **child_options(),  # type: ignore[arg-type]
        )
        self.stopped = False  # stop() checks the log for tracebacks once (the suite fails on any)
        self.addrs: Dict[str, List[Tuple[str, int]]] = {}
        self.stderr_lines: List[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("proxy did not become ready:\n" + "\n".join(self.stderr_lines))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            m = READY.search(line)
            if m:
                host, _, port = m.group(2).rpartition(":")
                self.addrs.setdefault(m.group(1), []).append((host.strip("[]"), int(port)))
                if m.group(1) == "admin":
                    self._ready.set()

    def addr(self, name: str) -> Tuple[str, int]:
        return self.addrs[name][0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(2)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        tracebacks = [i for i, line in enumerate(self.stderr_lines) if "Traceback" in line]
        if tracebacks and not self.stopped:
            self.stopped = True
            first = tracebacks[0]
            raise AssertionError("the proxy logged a traceback:\n" + "\n".join(self.stderr_lines[max(0, first - 3): first + 30]))
        self.stopped = True
        return self.proc.returncode


def raw(addr: Tuple[str, int], data: bytes, *, timeout: float = 10.0, half_close: bool = False) -> bytes:
    """Send ``data`` on a new connection and return everything received until close or timeout."""
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        s.close()


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def split_response(response: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """(status, lower-cased headers (last wins), body) of one Content-Length-framed response."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, headers, body


@contextlib.contextmanager
def one_router(
    port: int, service: str, impl: str, *, label: str = "http", top: str = "", server: str = "",
    extra_env: Optional[Dict[str, str]] = None,
) -> Iterator[ProxyProcess]:
    """A proxy with one router (``label``) in front of one origin at ``port`` named ``service`` (an
    io.l5d.fs file); ``top`` adds top-level config (e.g. telemetry), ``server`` keys of the listener."""
    root = tempfile.mkdtemp(prefix="pyproxy-disco-")
    with open(os.path.join(root, service), "w") as f:
        f.write(f"127.0.0.1 {port}\n")
    proxy = ProxyProcess(
        f"admin: {{ip: 127.0.0.1, port: 0}}\n{top}"
        f"namers:\n- {{kind: io.l5d.fs, rootDir: {root}}}\n"
        f"routers:\n- protocol: http\n  label: {label}\n  dtab: /svc => /#/io.l5d.fs\n"
        f"  servers:\n  - {{ip: 127.0.0.1, port: 0{', ' + server if server else ''}}}\n",
        impl,
        extra_env=extra_env,
    )
    try:
        yield proxy
    finally:
        proxy.stop()
        shutil.rmtree(root, ignore_errors=True)


def admin_json(proxy: ProxyProcess, path: str) -> dict:
    """A JSON document from the proxy's admin server (``/admin/metrics.json``, ...)."""
    a = http.client.HTTPConnection(*proxy.addr("admin"), timeout=10)
    try:
        a.request("GET", path)
        return json.loads(a.getresponse().read())  # type: ignore[no-any-return]
    finally:
        a.close()
