"""Transformers keep their derived address sets in a bounded cache. An evicted set stops following
its source, and a router may still hold it in a cached binding, so an eviction must move a version
that routers compare before they use a cached binding (the transformer's own, counted by
:meth:`Discovery.versions`)."""

from __future__ import annotations

import tempfile

from pyproxy.config import loads
from pyproxy.discovery.transformers.perhost import PortTransformer
from pyproxy.naming import Path
from pyproxy.naming.name import Address, AddrBound, AddrVar, Bound
from pyproxy.naming.system import SystemNamer
from pyproxy.runtime.discovery import Discovery


def _bound(name: str, port: int) -> Bound:
    return Bound(Path.read(f"/#/io.l5d.fs/{name}"), Path(), AddrVar(AddrBound((Address("127.0.0.1", port),))))


def test_an_evicted_derived_set_moves_the_version_and_a_new_bind_follows_the_source() -> None:
    t = PortTransformer(Path.read("/io.l5d.port/4141"), 4141)
    t.max_names = 2
    a, b, c = _bound("a", 1), _bound("b", 2), _bound("c", 3)
    first = t.transform_bound(a).addr
    t.transform_bound(b)
    before = t.version
    t.transform_bound(c)  # a's derived set is pushed out: nothing observes it
    assert t.version == before + 1
    a.addr.update(AddrBound((Address("127.0.0.9", 9),)))
    assert first.value.addresses[0].host == "127.0.0.1"  # type: ignore[attr-defined] # no longer follows
    again = t.transform_bound(a).addr
    assert again is not first and again.value.addresses == (Address("127.0.0.9", 4141),)  # type: ignore[attr-defined]


def test_an_observed_derived_set_is_kept() -> None:
    t = PortTransformer(Path.read("/io.l5d.port/4141"), 4141)
    t.max_names = 1
    a = _bound("a", 1)
    kept = t.transform_bound(a).addr
    stop = kept.observe(lambda _: None)  # a client uses it
    t.transform_bound(_bound("b", 2))
    assert t.transform_bound(a).addr is kept and t.version == 0
    stop()


def test_discovery_counts_the_transformers_versions() -> None:
    root = tempfile.mkdtemp(prefix="pyproxy-disco-")
    config = loads(f"""
namers:
- kind: io.l5d.fs
  rootDir: {root}
  transformers: [{{kind: io.l5d.port, port: 4141}}]
routers:
- protocol: http
  dtab: /svc => /#/io.l5d.fs
  interpreter:
    kind: default
    transformers: [{{kind: io.l5d.port, port: 4242}}]
  servers: [{{port: 0}}]
""")
    d = Discovery(config, SystemNamer())
    interp = d.interpreter(0, config.routers[0].interpreter)
    before = d.versions()
    for t in interp.transformers + d.namers[0][1].transformers:
        t.version += 1  # what an eviction does
        assert d.versions() != before
        before = d.versions()
