"""Small real origin servers for black-box tests: threads on 127.0.0.1, HTTP/1.1 keep-alive.

Routes (by path prefix):
  /echo            JSON of what arrived: method, target, version, headers (in order), body length, sha256
  /size/N          N bytes of body with Content-Length, streamed
  /chunked/N       N bytes of body with Transfer-Encoding: chunked, plus a trailer (two, with
                   ``?l5d``: also ``l5d-secret``), chunk lines carrying an extension
  /status/N        an empty response with status N
  /slow/MS         sleeps MS milliseconds, then answers 200
  /close           closes the connection without answering
  /text/WORD       answers WORD
  /header/NAME/V   answers 200 with header NAME: V (and l5d-err when NAME is l5d-err)
Every server counts the requests it received (``hits``), logs when each head arrived with its method,
target and fields (``received``: ``(time.monotonic(), method, target, {lower-cased name: value})``),
and stops with ``close()``; one made with ``fail_status=503`` answers every request with that status
(with ``fail_headers`` added), one made with ``delay=0.2`` answers every request 0.2 s late. All three
may be changed while it runs (``origin.server.fail_status = 0``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Tuple


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "origin"
    disable_nagle_algorithm = True  # head and body are separate writes: no delayed-ACK stalls

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _read_body(self) -> Tuple[int, str, bytes]:
        h = hashlib.sha256()
        n = 0
        keep = bytearray()
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, 65536))
                    h.update(data)
                    n += len(data)
                    if len(keep) < 4096:
                        keep += data[: 4096 - len(keep)]
                    remaining -= len(data)
                self.rfile.read(2)
        else:
            remaining = int(self.headers.get("Content-Length", "0") or 0)
            while remaining:
                data = self.rfile.read(min(remaining, 65536))
                if not data:
                    break
                h.update(data)
                n += len(data)
                if len(keep) < 4096:
                    keep += data[: 4096 - len(keep)]
                remaining -= len(data)
        return n, h.hexdigest(), bytes(keep)

    def _send(self, status: int, body: bytes = b"", headers: List[Tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status >= 200 and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        arrived = time.monotonic()
        self.server.hits += 1  # type: ignore[attr-defined]
        self.server.methods.append(self.command)  # type: ignore[attr-defined]
        fields = {k.lower(): v for k, v in self.headers.items()}
        self.server.received.append((arrived, self.command, self.path, fields))  # type: ignore[attr-defined]
        parts = self.path.split("?")[0].strip("/").split("/")
        route = parts[0]
        n, digest, head = self._read_body()
        if self.server.delay:  # type: ignore[attr-defined]
            time.sleep(self.server.delay)  # type: ignore[attr-defined]
        fail = self.server.fail_status  # type: ignore[attr-defined]
        if fail:
            self._send(fail, b"failing on purpose", self.server.fail_headers)  # type: ignore[attr-defined]
            return
        if route == "echo":
            payload = {
                "method": self.command,
                "target": self.path,
                "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_len": n,
                "body_sha256": digest,
                "body_head": head.decode("latin-1"),
            }
            self._send(200, json.dumps(payload).encode(), [("Content-Type", "application/json")])
        elif route == "size":
            size = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command == "HEAD":
                return
            block = b"x" * 65536
            left = size
            while left:
                k = min(left, len(block))
                self.wfile.write(block[:k])
                left -= k
        elif route == "chunked":
            size = int(parts[1])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            left = size
            while left:
                k = min(left, 1000)
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (k, b"y" * k))
                left -= k
            extra = b"l5d-secret: hidden\r\n" if "l5d" in self.path.split("?", 1)[-1:][0] and "?" in self.path else b""
            self.wfile.write(b"0\r\nX-Checksum: done\r\n" + extra + b"\r\n")
        elif route == "status":
            self._send(int(parts[1]))
        elif route == "slow":
            time.sleep(int(parts[1]) / 1000)
            self._send(200, b"slow")
        elif route == "close":
            self.close_connection = True
            self.connection.shutdown(2)
        elif route == "text":
            self._send(200, parts[1].encode())
        elif route == "header":
            self._send(200, b"with header", [(parts[1], parts[2])])
        else:
            self._send(404, b"no such route")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _handle


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the proxy closed a connection mid-response (on purpose, in some tests)
        super().handle_error(request, client_address)


class Origin:
    """A threaded origin on 127.0.0.1 with a free port."""

    def __init__(self, fail_status: int = 0, delay: float = 0.0, fail_headers: List[Tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.hits = 0  # type: ignore[attr-defined]
        self.server.methods = []  # type: ignore[attr-defined]
        self.server.received = []  # type: ignore[attr-defined]
        self.server.fail_status = fail_status  # type: ignore[attr-defined]
        self.server.fail_headers = list(fail_headers)  # type: ignore[attr-defined]
        self.server.delay = delay  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> int:
        return self.server.hits  # type: ignore[attr-defined,no-any-return]

    @property
    def received(self) -> List[Tuple[float, str, str, Dict[str, str]]]:
        return self.server.received  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class HangUpOrigin:
    """An origin that answers each request with 200 and then closes the connection without saying
    so (no ``Connection: close``), as a server does when it drops idle keep-alive connections: every
    connection a proxy pools to it is stale by the time it is reused. Counts the requests it read."""

    def __init__(self) -> None:
        import socket as _socket

        self.sock = _socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket as _socket

        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (_socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        piece = conn.recv(65536)
                        if not piece:
                            break
                        data += piece
                except OSError:
                    continue
                if b"\r\n\r\n" not in data:
                    continue  # a stale connection closed by the proxy: nothing was asked
                self.hits += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
