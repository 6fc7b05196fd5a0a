"""Host names: resolved off the event loop, refreshed, the last good addresses kept, the cache bounded.

The system resolver is real here (``localhost`` from ``/etc/hosts``); where a test needs the
resolver to fail or change its answer on demand, it passes the resolver a lookup function of its own.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path as FsPath
from typing import Dict, List

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from pyproxy.discovery.dns import DnsResolver, blocking_lookup
from pyproxy.discovery.namers.fs import FsNamer, NeedsLookup, parse_endpoints
from pyproxy.naming import Path, SystemNamer
from pyproxy.naming.name import ADDR_PENDING, Address, AddrBound, AddrFailed
from pyproxy.naming.system import InetResolver, literal_ip


@given(st.text(alphabet="0123456789.xXabcdefABCDEF", min_size=1, max_size=20))
def test_literal_ip_accepts_exactly_what_inet_aton_accepts(text: str) -> None:
    try:
        expected = socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        expected = None
    assert literal_ip(text) == expected


def test_literal_ip_reads_ipv6_and_refuses_names() -> None:
    assert literal_ip("[::1]") == "::1"
    assert literal_ip("::ffff:127.0.0.1") == "::ffff:7f00:1"
    assert literal_ip("localhost") is None
    assert literal_ip("1e3") is None


def test_without_a_lookup_a_host_name_fails_with_a_reason_and_never_blocks() -> None:
    var = InetResolver().resolve("localhost", "80")
    assert isinstance(var.value, AddrFailed) and "running proxy" in var.value.cause


def test_blocking_lookup_resolves_localhost_and_reports_unknown_names() -> None:
    found = blocking_lookup("localhost", 8080)
    assert isinstance(found, AddrBound)
    assert {a.host for a in found.addresses} <= {"127.0.0.1", "::1"} and all(a.port == 8080 for a in found.addresses)
    missing = blocking_lookup("no-such-host.invalid", 1)
    assert isinstance(missing, AddrFailed) and "no-such-host.invalid" in missing.cause


def test_the_resolver_cache_is_bounded_and_keeps_what_clients_observe() -> None:
    r = InetResolver(max_names=50)
    kept = r.resolve("127.0.0.1", "1")
    stop = kept.observe(lambda _: None)
    for port in range(2, 500):  # e.g. distinct /$/inet names sent in l5d-dtab overrides
        r.resolve("127.0.0.1", str(port))
    assert len(r) <= 50
    assert r.resolve("127.0.0.1", "1") is kept  # observed: never evicted
    stop()


def test_a_forgotten_name_moves_the_version_and_the_name_just_asked_is_never_forgotten() -> None:
    from pyproxy.naming.system import SystemNamer

    r = InetResolver(max_names=2)
    system = SystemNamer(r)
    stops = [r.resolve("127.0.0.1", str(p)).observe(lambda _: None) for p in (1, 2)]  # both in use
    before = system.version
    new = r.resolve("127.0.0.1", "3")  # over the bound, yet every other name is observed
    assert r.resolve("127.0.0.1", "3") is new  # kept: its caller is using it
    assert system.version == before
    for stop in stops:
        stop()
    r.resolve("127.0.0.1", "4")  # now the unobserved oldest go
    assert len(r) <= 2 and system.version > before  # cached bindings holding them bind again


class _Lookups:
    """A lookup whose answers the test sets; counts calls and the threads they ran on."""

    def __init__(self) -> None:
        self.answers: Dict[str, object] = {}
        self.calls: List[str] = []
        self.threads: List[int] = []

    def __call__(self, host: str, port: int) -> object:
        self.calls.append(host)
        self.threads.append(threading.get_ident())
        return self.answers.get(host, AddrFailed(f"{host}: unknown"))


def test_host_names_resolve_off_the_loop_refresh_and_survive_an_outage() -> None:
    lookups = _Lookups()
    a1, a2 = AddrBound((Address("10.0.0.1", 80),)), AddrBound((Address("10.0.0.2", 80),))
    lookups.answers["svc"] = a1

    async def main() -> None:
        r = DnsResolver(refresh=0.05, lookup=lookups)
        async with trio.open_nursery() as nursery:
            await nursery.start(r.run)
            var = SystemNamer(r).lookup(Path.read("/$/inet/svc/80")).value.addr  # type: ignore[attr-defined]
            assert var.value is ADDR_PENDING  # nothing was looked up on the loop
            with trio.fail_after(5):
                while var.value != a1:
                    await trio.sleep(0.01)
            assert threading.get_ident() not in lookups.threads
            lookups.answers["svc"] = a2  # the name moves: the next refresh follows it
            with trio.fail_after(5):
                while var.value != a2:
                    await trio.sleep(0.01)
            del lookups.answers["svc"]  # the resolver goes away: the last good answer stays
            with trio.fail_after(5):
                while r.failures < 3:
                    await trio.sleep(0.01)
            assert var.value == a2
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_name_that_never_resolved_fails_with_the_resolvers_message() -> None:
    lookups = _Lookups()

    async def main() -> None:
        r = DnsResolver(refresh=10, lookup=lookups)
        async with trio.open_nursery() as nursery:
            await nursery.start(r.run)
            var = r.resolve("nowhere", "80")
            with trio.fail_after(5):
                while var.value is ADDR_PENDING:
                    await trio.sleep(0.01)
            assert var.value == AddrFailed("nowhere: unknown")
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_fs_files_with_host_names_are_resolved_by_the_poll_not_the_lookup(tmp_path: FsPath) -> None:
    with pytest.raises(NeedsLookup):
        parse_endpoints("localhost 8080\n")
    (tmp_path / "web").write_text("localhost 8080\n127.0.0.2 8081\n")
    fs = FsNamer(str(tmp_path))
    var = fs.lookup(Path.read("/web")).value.addr  # type: ignore[attr-defined]
    assert var.value is ADDR_PENDING  # the loop never waits for DNS
    fs.refresh()  # what the proxy runs in a worker thread each second
    assert isinstance(var.value, AddrBound)
    hosts = [(a.host, a.port) for a in var.value.addresses]
    assert ("127.0.0.2", 8081) in hosts and any(h in ("127.0.0.1", "::1") and p == 8080 for h, p in hosts)
