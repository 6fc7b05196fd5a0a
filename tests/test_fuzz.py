"""The quick fuzz run (issue 11): 300 seeded cases of ``tests/fuzz.py`` against a real proxy, per path.

Paths: the native kernels with the lane on, the same with ``PYPROXY_LANE=off`` (both marked
``native``), and the pure kernels (no lane). Per path, after the cases: no case failed (timeouts,
malformed responses, non-canonical bytes at the origin, ...; see ``tests/fuzz.py``), the proxy is
alive, its stderr holds no ``Traceback``, its RSS grew by less than :data:`RSS_BOUND_KIB`, and a
normal GET is served with 200. Then the lane and the trio path must give every case the same
outcome and final statuses, but for the differences of ``fuzz.KNOWN``. A failure prints the seed,
the case index, the exact bytes and the command that replays the case
(``python bench/fuzz.py --seed S --case I``). The long run: ``python bench/fuzz.py --cases 10000``.

Then regression tests, black-box with the exact bytes the fuzzer found.
"""

from __future__ import annotations

import socket
import time
from typing import Dict, Iterator, Tuple

import pytest

import fuzz

SEED = 20260906
CASES = 300
#: How much the proxy's RSS may grow over the quick run. Measured here: under 1 MiB over 1,500
#: cases on every path (bounded caches, metric scopes, allocator slack). A leak of one 64 KiB read
#: piece (the streaming unit, ``datapath/stream.py``) per case would be 19 MiB over 300 cases; 8 MiB
#: fails anything leaking 28 KiB per case while leaving the allocator 8x the measured slack.
RSS_BOUND_KIB = 8 * 1024

PATHS = [
    pytest.param(("native", True), marks=pytest.mark.native, id="lane-on"),
    pytest.param(("native", False), marks=pytest.mark.native, id="lane-off"),
    pytest.param(("pure", False), id="pure"),
]

_RUNS: Dict[Tuple[str, bool], fuzz.Run] = {}


def quick_run(impl: str, lane: bool) -> fuzz.Run:
    """The quick run of one path (once per test session; the comparison reuses it)."""
    key = (impl, lane)
    if key not in _RUNS:
        target = fuzz.Target(impl, lane)
        try:
            _RUNS[key] = fuzz.run(target, SEED, CASES)
        finally:
            target.close()
    return _RUNS[key]


@pytest.mark.parametrize("path", PATHS)
def test_quick_fuzz_run(path: Tuple[str, bool]) -> None:
    run = quick_run(*path)
    assert len(run.results) == CASES, f"{run.path}: stopped after {len(run.results)} cases (alive: {run.alive})"
    failures = run.failures
    if failures:
        pytest.fail(f"{run.path}: {len(failures)} of {CASES} cases failed:\n" + "\n".join(fuzz.describe(r, run.path) for r in failures[:10]))
    assert not run.late_violations, f"{run.path}: seen at the origin after their case: {run.late_violations[:5]}"
    assert run.alive, f"{run.path}: the proxy died:\n{run.stderr[-3000:]}"
    assert not run.traceback, f"{run.path}: a traceback on stderr:\n{run.stderr[-5000:]}"
    assert run.after_status == 200, f"{run.path}: a normal GET after the cases got {run.after_status}"
    grew = run.rss_max - run.rss_before
    assert grew < RSS_BOUND_KIB, f"{run.path}: RSS grew by {grew} KiB ({run.rss_before} -> max {run.rss_max})"


@pytest.mark.native
def test_lane_and_trio_path_answer_alike() -> None:
    lane, trio = quick_run("native", True), quick_run("native", False)
    differences = fuzz.compare(lane.results, trio.results)
    unknown = [d for d in differences if d.known is None]
    if unknown:
        pytest.fail(f"{len(unknown)} cases differ between the lane and the trio path:\n" + "\n".join(fuzz.describe_difference(d) for d in unknown[:10]))


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
