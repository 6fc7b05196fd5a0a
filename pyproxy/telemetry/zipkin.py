"""``io.l5d.zipkin``: server and client spans as Zipkin v2 JSON, batched and POSTed over HTTP.

Transport: Linkerd's ``io.l5d.zipkin`` speaks Scribe (default port 9410); we POST JSON arrays of
Zipkin v2 spans to ``http://<host>:<port>/api/v2/spans`` instead (Zipkin's HTTP collector listens on
9411: set ``port: 9411``). ``sampleRate`` is kept: a trace whose ``l5d-ctx-trace`` flags say
"sampled" or "not sampled" follows them; otherwise the trace id decides, so every hop and both spans
of one request agree without coordination.

Hooks (per request; ``tracer`` is None when the telemeter is not configured)::

    tracer = app.telemetry.tracer
    if tracer is not None and tracer.sampled(trace):
        tracer.record_server_span(server_trace, router=label, name="get", start_us=t0_us,
                                  duration_us=d_us, tags={"http.path": "/x", "http.status_code": "200"},
                                  remote=peer, shared=bool(incoming))
        tracer.record_client_span(trace, router=label, name="get", start_us=t1_us, duration_us=d1_us,
                                  tags={...}, remote=(ep.host, ep.port))

Which ids: the server span uses the id the request arrived with (its ``l5d-ctx-trace``; then
``shared=True``, the caller's client span has the same id) or, at the root, a fresh root id; the
client span uses the id sent upstream (a child of the server span). ``start_us`` is wall-clock
microseconds (:func:`now_us`). Spans wait in a bounded queue (overflow drops the oldest); a trio task
(:meth:`Tracer.run`) sends them every ``flush_interval`` seconds or once ``batch_size`` are waiting.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional

import trio

from ..http.context import TraceId

__all__ = ["Tracer", "now_us", "span_json"]

log = logging.getLogger("pyproxy.zipkin")


def now_us() -> int:
    """Wall-clock time in microseconds (Zipkin's timestamp unit)."""
    return time.time_ns() // 1000


def _endpoint(remote: Any) -> Optional[Dict[str, Any]]:
    if not isinstance(remote, tuple) or len(remote) < 2:
        return None
    host = str(remote[0])
    return {"ipv6" if ":" in host else "ipv4": host, "port": int(remote[1])}


def span_json(
    trace: TraceId, kind: str, *, router: str, name: str, start_us: int, duration_us: int,
    tags: Optional[Mapping[str, Any]] = None, remote: Any = None, shared: bool = False,
) -> Dict[str, Any]:
    """One Zipkin v2 span (ids as 16 lower-case hex digits; a root has no ``parentId``)."""
    span: Dict[str, Any] = {"traceId": "%016x" % trace.trace_id}
    if trace.parent_id != trace.span_id:
        span["parentId"] = "%016x" % trace.parent_id
    span["id"] = "%016x" % trace.span_id
    span["kind"] = kind
    span["name"] = name
    span["timestamp"] = int(start_us)
    span["duration"] = max(1, int(duration_us))  # Zipkin rejects 0
    span["localEndpoint"] = {"serviceName": router}
    ep = _endpoint(remote)
    if ep is not None:
        span["remoteEndpoint"] = ep
    if tags:
        span["tags"] = {str(k): str(v) for k, v in tags.items()}
    if shared:
        span["shared"] = True
    return span


class Tracer:
    """Collects sampled spans and sends them to a Zipkin HTTP collector."""

    def __init__(
        self, host: str, port: int, sample_rate: float, *, batch_size: int = 100, flush_interval: float = 1.0,
        max_pending: int = 10000, timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self._threshold = int(sample_rate * 10000)
        self.pending: Deque[Dict[str, Any]] = deque(maxlen=max_pending)
        self.sent = 0
        self.failed = 0
        self._wake = trio.Event()

    def sampled(self, trace: TraceId) -> bool:
        """Whether spans of this trace are recorded: its sampled flag when known, else the rate."""
        flag = trace.sampled
        if flag is not None:
            return flag
        # Finagle samples by trace id so that all spans of one trace are kept or dropped together.
        return (trace.trace_id % 10000) < self._threshold

    def record_server_span(self, trace: TraceId, **kw: Any) -> None:
        """A SERVER span (keywords as :func:`span_json`); no-op unless the trace is sampled."""
        if self.sampled(trace):
            self._add(span_json(trace, "SERVER", **kw))

    def record_client_span(self, trace: TraceId, **kw: Any) -> None:
        """A CLIENT span (keywords as :func:`span_json`); no-op unless the trace is sampled."""
        if self.sampled(trace):
            self._add(span_json(trace, "CLIENT", **kw))

    def _add(self, span: Dict[str, Any]) -> None:
        self.pending.append(span)
        if len(self.pending) >= self.batch_size:
            self._wake.set()

    async def run(self) -> None:
        """Send batches until cancelled; on cancellation try one last flush (bounded)."""
        try:
            while True:
                with trio.move_on_after(self.flush_interval):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self.flush()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await self.flush()

    async def flush(self) -> None:
        while self.pending:
            batch: List[Dict[str, Any]] = []
            while self.pending and len(batch) < self.batch_size:
                batch.append(self.pending.popleft())
            try:
                with trio.fail_after(self.timeout):
                    status = await self._post(json.dumps(batch, separators=(",", ":")).encode())
            except (OSError, trio.TooSlowError, ValueError) as exc:
                self.failed += len(batch)
                log.warning("zipkin: cannot send %d spans to %s:%d: %s", len(batch), self.host, self.port, exc)
                return  # the collector is down: drop this batch, try the rest next time
            if 200 <= status < 300:
                self.sent += len(batch)
            else:
                self.failed += len(batch)
                log.warning("zipkin: collector %s:%d answered %d", self.host, self.port, status)

    async def _post(self, body: bytes) -> int:
        """POST ``body`` to ``/api/v2/spans`` on a fresh connection; returns the status code."""
        stream = await trio.open_tcp_stream(self.host, self.port)
        async with stream:
            host = f"[{self.host}]" if ":" in self.host else self.host
            head = (
                f"POST /api/v2/spans HTTP/1.1\r\nHost: {host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            await stream.send_all(head + body)
            data = b""
            while b"\r\n" not in data and len(data) < 8192:
                piece = await stream.receive_some(4096)
                if not piece:
                    break
                data += piece
        parts = data.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1][:3].isdigit():
            raise ValueError(f"not an HTTP response: {data[:40]!r}")
        return int(parts[1][:3])
