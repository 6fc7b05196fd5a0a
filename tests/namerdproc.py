"""Black-box helpers for namerd tests: start ``pyproxy namerd`` as a process, call its API, read
its watch streams (chunked JSON documents, one per line) from a thread with bounded waits."""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
from typing import Any, Dict, Optional, Tuple

from proxyproc import ProxyProcess


def start_namerd(config_text: str, impl: str = "pure", **kw: Any) -> ProxyProcess:
    return ProxyProcess(config_text, impl, command="namerd", **kw)


def api(addr: Tuple[str, int], method: str, path: str, body: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None, timeout: float = 10.0) -> Tuple[int, Dict[str, str], bytes]:
    c = http.client.HTTPConnection(*addr, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def put_dtab(addr: Tuple[str, int], ns: str, text: str, version: Optional[str] = None, method: str = "PUT") -> Tuple[int, bytes]:
    headers = {"Content-Type": "application/dtab"}
    if version is not None:
        headers["If-Match"] = version
    status, _, body = api(addr, method, f"/api/1/dtabs/{ns}", text.encode(), headers)
    return status, body


def get_dtab(addr: Tuple[str, int], ns: str) -> Tuple[int, Optional[str], Any]:
    status, headers, body = api(addr, "GET", f"/api/1/dtabs/{ns}")
    return status, headers.get("etag"), json.loads(body) if status == 200 else body


class Watch:
    """A ``watch=true`` stream: each JSON document lands in :attr:`docs` (a queue)."""

    def __init__(self, addr: Tuple[str, int], path: str, headers: Optional[Dict[str, str]] = None) -> None:
        self.docs: "queue.Queue[Any]" = queue.Queue()
        self.conn = http.client.HTTPConnection(*addr, timeout=30)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                text = line.decode().strip()
                try:
                    self.docs.put(json.loads(text))
                except ValueError:
                    self.docs.put(text)
        except Exception:  # noqa: BLE001 - the stream ended (closed by either side)
            pass
        self.docs.put(EOFError)

    def next(self, timeout: float = 10.0) -> Any:
        return self.docs.get(timeout=timeout)

    def quiet(self, seconds: float) -> bool:
        """True when no document arrives for ``seconds``."""
        try:
            self.docs.get(timeout=seconds)
            return False
        except queue.Empty:
            return True

    def close(self) -> None:
        try:
            sock = self.conn.sock
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(5)
        self.conn.close()
