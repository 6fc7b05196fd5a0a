"""Regression tests for what ``tests/fuzz.py`` found, black-box with the exact bytes, per path (the
native kernels with the lane on and off, marked ``native``, and the pure kernels)."""

from __future__ import annotations

import socket
import time
from typing import Iterator

import pytest

import fuzz

PATHS = [
    pytest.param(("native", True), marks=pytest.mark.native, id="lane-on"),
    pytest.param(("native", False), marks=pytest.mark.native, id="lane-off"),
    pytest.param(("pure", False), id="pure"),
]


# === regressions found by the fuzzer ===


@pytest.fixture(scope="module", params=PATHS)
def target(request: pytest.FixtureRequest) -> Iterator[fuzz.Target]:
    t = fuzz.Target(*request.param)
    try:
        t.warm_up(2)
        yield t
    finally:
        t.close()


def _reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # l_onoff=1, l_linger=0
    s.close()


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 9000\r\n\r\nhello",
    ],
    ids=["chunked", "content-length"],
)
def test_a_client_reset_inside_a_streamed_body_ends_the_upstream_exchange(target: fuzz.Target, head: bytes) -> None:
    """Found by the fuzzer (reset ending): the pump took the client's reset for the upstream's, the
    exchange waited for a response the upstream (waiting for the rest of the body) never sent, and
    both connections stayed open for ever."""
    origin = target.origin
    origin.case = case = 1_000_000 + len(head)
    s = socket.create_connection(target.addr, timeout=5)
    try:
        s.sendall(head)
        deadline = time.monotonic() + 5
        while not origin.inside(case) and time.monotonic() < deadline:  # the head reached the origin
            time.sleep(0.005)
        assert origin.inside(case), "the request never reached the origin"
    finally:
        _reset(s)
    assert origin.quiet(case, 2.0), "the upstream connection stayed inside the request after the client reset"
    assert not origin.take(case)
    assert target.normal_get() == 200
    assert target.alive() and "Traceback" not in target.stderr()
