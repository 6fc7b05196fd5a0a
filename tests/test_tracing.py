"""Zipkin spans of forwarded requests, through the real CLI and a collector on loopback: the server
span covers the request, a client span covers each upstream attempt (Finagle's client stack under
the path stack's retries: one span per attempt, each with its own id, sent upstream in
``l5d-ctx-trace``), with the client, the endpoint and the status."""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import struct
import tempfile
import time
from typing import Iterator, List, Tuple

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess
from pyproxy.http.context import TraceId
from test_admin import Collector
from upstream import Origin

_SAMPLED = 2 | 4  # Finagle's flags: sampling known, sampled


class Env:
    def __init__(self, impl: str) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-tracing-")
        self.ok = Origin()
        self.failing = Origin(fail_status=503)
        self.collector = Collector()
        for name, origin in (("ok", self.ok), ("failing", self.failing)):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(f"127.0.0.1 {origin.port}\n")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {self.root}}}]
telemetry: [{{kind: io.l5d.zipkin, host: 127.0.0.1, port: {self.collector.port}, sampleRate: 0.0}}]
routers:
- protocol: http
  label: traced
  dtab: /svc => /#/io.l5d.fs
  service:
    responseClassifier: {{kind: io.l5d.http.retryableRead5XX}}
    retries:
      budget: {{minRetriesPerSec: 0, percentCanRetry: 1.0}}
      backoff: {{kind: constant, ms: 100}}
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proxy = ProxyProcess(config, impl)
        self.addr = self.proxy.addr("traced")

    def close(self) -> None:
        try:
            self.proxy.stop()
        finally:
            self.ok.close()
            self.failing.close()
            self.collector.close()
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param)
    try:
        yield e
    finally:
        e.close()


def _traced_call(env: Env, host: str, path: str, trace_id: int) -> int:
    """A request that continues the caller's trace ``trace_id`` (span ``trace_id + 1``), sampled."""
    header = base64.b64encode(struct.pack(">QQQQ", trace_id + 1, trace_id, trace_id, _SAMPLED)).decode()
    c = http.client.HTTPConnection(*env.addr, timeout=20)
    try:
        c.request("GET", path, headers={"Host": host, "l5d-ctx-trace": header})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def _spans(env: Env, trace_id: int, n: int) -> Tuple[dict, List[dict]]:
    """The server span and the client spans (by start) of one trace, once ``n`` spans arrived."""
    want = "%016x" % trace_id
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = [s for s in list(env.collector.spans) if s["traceId"] == want]
        if len(got) >= n:
            break
        time.sleep(0.05)
    (server,) = [s for s in got if s["kind"] == "SERVER"]
    clients = sorted((s for s in got if s["kind"] == "CLIENT"), key=lambda s: s["timestamp"])
    assert len(got) == n, got
    return server, clients


def _span_ids_sent(origin: Origin, since: int) -> List[str]:
    out = []
    for _, _, _, fields in origin.received[since:]:
        span_id = struct.unpack(">QQQQ", base64.b64decode(fields["l5d-ctx-trace"]))[0]
        out.append("%016x" % span_id)
    return out


def _within(server: dict, client: dict) -> None:
    assert client["timestamp"] >= server["timestamp"]
    assert client["timestamp"] + client["duration"] <= server["timestamp"] + server["duration"]
    assert client["duration"] <= server["duration"]


def test_a_client_span_covers_the_upstream_attempt(env: Env) -> None:
    seen = len(env.ok.received)
    assert _traced_call(env, "ok", "/slow/150", 0x5100) == 200
    server, (client,) = _spans(env, 0x5100, 2)
    assert server["id"] == "%016x" % 0x5101 and server.get("shared") is True  # the caller's span
    assert client["parentId"] == server["id"] and client["id"] != server["id"]
    _within(server, client)
    # the attempt, not the whole request: routing comes before it, the relay of the body after it
    assert (client["timestamp"], client["duration"]) != (server["timestamp"], server["duration"])
    assert client["duration"] >= 150_000  # the origin's 150 ms are inside the attempt
    assert client["tags"]["l5d.dst.client"] == "/#/io.l5d.fs/ok" and client["tags"]["http.status_code"] == "200"
    assert client["remoteEndpoint"] == {"ipv4": "127.0.0.1", "port": env.ok.port}
    assert _span_ids_sent(env.ok, seen) == [client["id"]]  # the upstream continues this span


def test_one_client_span_per_attempt_when_a_request_is_retried(env: Env) -> None:
    seen = len(env.failing.received)
    assert _traced_call(env, "failing", "/x", 0x7200) == 503
    server, clients = _spans(env, 0x7200, 3)  # percentCanRetry 1, minRetriesPerSec 0: one retry
    first, second = clients
    assert {c["parentId"] for c in clients} == {server["id"]}
    assert len({server["id"], first["id"], second["id"]}) == 3
    for c in clients:
        _within(server, c)
        assert c["tags"]["http.status_code"] == "503"
        assert c["remoteEndpoint"] == {"ipv4": "127.0.0.1", "port": env.failing.port}
    assert second["timestamp"] >= first["timestamp"] + first["duration"] + 100_000  # the backoff is between them
    assert _span_ids_sent(env.failing, seen) == [first["id"], second["id"]]  # each attempt its own id


def test_trace_flags_are_finagles() -> None:
    """``l5d-ctx-trace`` carries Finagle's flags: SamplingKnown is 2 and Sampled 4 (Debug 1)."""

    def flags(value: int) -> TraceId:
        t = TraceId.from_header(base64.b64encode(struct.pack(">QQQQ", 1, 2, 3, value)))
        assert t is not None
        return t

    assert flags(0).sampled is None and flags(6).sampled is True and flags(2).sampled is False
    assert flags(7).sampled is True and flags(4).sampled is None  # Sampled without SamplingKnown means nothing
    assert struct.unpack(">QQQQ", base64.b64decode(TraceId(1, 2, 3).with_sampled(True).header()))[3] == 6
    assert struct.unpack(">QQQQ", base64.b64decode(TraceId(1, 2, 3, 1).with_sampled(False).header()))[3] == 3
