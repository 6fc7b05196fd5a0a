"""The naming core beyond the conformance vectors: construction rules, binding corner cases, the fs namer."""

from __future__ import annotations

from pathlib import Path as FsPath

import pytest

from pyproxy.errors import DtabError, MaxDepthError, NamerError, PathError, UnknownNamerError
from pyproxy.discovery.namers.fs import FsNamer, parse_endpoints
from pyproxy.naming import (
    AddrBound,
    Address,
    ConfiguredNamersInterpreter,
    DefaultInterpreter,
    Dtab,
    Fail,
    Leaf,
    Namer,
    Neg,
    Path,
    SystemNamer,
    Union,
    delegate,
)
from pyproxy.naming.name import ADDR_NEG, AddrFailed
from pyproxy.naming.tree import format_weight, java_double, read


def test_path_rejects_empty_elements() -> None:
    with pytest.raises(PathError, match="requirement failed"):
        Path((b"a", b""))
    with pytest.raises(PathError):
        Path.utf8("a", "")


def test_path_show_round_trips_any_bytes(kernels: object) -> None:
    p = Path((b"a b", b"\xff", b"*", b"ok"))
    assert p.show == "/\\x61\\x20\\x62/\\xff/\\x2a/ok"
    assert Path.read(p.show) == p


def test_dtab_error_carries_offset_and_expected(kernels: object) -> None:
    with pytest.raises(DtabError) as info:
        Dtab.read("/a => /b; /c => ")
    assert info.value.offset == len("/a => /b; /c => ")
    assert info.value.expected == "simple"


def test_dtab_concat_puts_the_override_last(kernels: object) -> None:
    base = Dtab.read("/svc => /host; /host/world => /srv/world-v1")
    override = Dtab.read("/host/world => /srv/world-v2")
    d = base.concat(override)
    assert d.show == "/svc=>/host;/host/world=>/srv/world-v1;/host/world=>/srv/world-v2"
    assert d.lookup(Path.read("/host/world")).show == "/srv/world-v2 | /srv/world-v1"
    assert d.strip_prefix(base) == override


def test_weight_formatting_follows_java() -> None:
    assert [format_weight(w) for w in (1.005, 2.675, 0.125, 0.0025, 0.995, 1e22)] == [
        "1.01", "2.68", "0.13", "0.00", "1.00", "10000000000000000000000.00"]
    assert [java_double(d) for d in (1.0, 0.001, 1e7, 1.2345678901234567e19, 1e-5)] == [
        "1.0", "0.001", "1.0E7", "1.2345678901234567E19", "1.0E-5"]


class _Flaky(Namer):
    def lookup(self, path: Path):  # type: ignore[no-untyped-def]
        raise NamerError("boom")


def test_union_tolerates_a_failing_branch_but_alt_does_not(kernels: object) -> None:
    interp = ConfiguredNamersInterpreter([(Path.read("/#/bad"), _Flaky())])
    t = interp.bind(Dtab.read("/svc => /#/bad & /$/inet/127.0.0.1/80"), Path.read("/svc"))
    assert t.debug() == "Leaf(/$/inet/127.0.0.1/80#w=1.0)"
    with pytest.raises(NamerError):
        interp.bind(Dtab.read("/svc => /#/bad | /$/inet/127.0.0.1/80"), Path.read("/svc"))


def test_bind_depth_limit_is_configurable(kernels: object) -> None:
    interp = DefaultInterpreter(max_depth=3)
    with pytest.raises(MaxDepthError, match="Max recursion level: 3 reached"):
        interp.bind(Dtab.read("/a => /a/x"), Path.read("/a"))


def test_later_dentry_wins_and_earlier_is_fallback(kernels: object) -> None:
    d = Dtab.read("/svc => /$/inet/127.0.0.1/1; /svc => /nowhere")
    t = DefaultInterpreter().bind(d, Path.read("/svc/x"))
    assert t.debug() == "Leaf(/$/inet/127.0.0.1/1#residual=/x)"


def test_unknown_system_namer_names_the_class() -> None:
    with pytest.raises(UnknownNamerError) as info:
        SystemNamer().lookup(Path.read("/$/no.such.Namer/x"))
    assert info.value.class_name == "no.such.Namer"


def test_inet_forms_resolve_like_java() -> None:
    s = SystemNamer()
    leaf = s.lookup(Path.read("/$/inet/127.1/8080/rest"))
    b = leaf.value  # type: ignore[attr-defined]
    assert (b.id.show, b.residual.show) == ("/$/inet/127.1/8080", "/rest")
    assert b.addr.value == AddrBound((Address("127.0.0.1", 8080),))
    port_only = s.lookup(Path.read("/$/inet/9090")).value  # type: ignore[attr-defined]
    assert port_only.addr.value == AddrBound((Address("0.0.0.0", 9090),))
    bad_port = s.lookup(Path.read("/$/inet/127.0.0.1/70000")).value  # type: ignore[attr-defined]
    assert bad_port.addr.value == AddrFailed("port out of range:70000")


def test_fs_endpoints_parse_weights_and_comments() -> None:
    eps = parse_endpoints("# header\n127.0.0.1 80\n\n10.0.0.1 81 * 0.5  # half\n")
    assert [(a.host, a.port, dict(a.meta)) for a in eps] == [
        ("127.0.0.1", 80, {}), ("10.0.0.1", 81, {"endpoint_addr_weight": 0.5})]
    with pytest.raises(ValueError, match="line 1"):
        parse_endpoints("127.0.0.1\n")


def test_fs_namer_binds_files_and_sees_changes(tmp_path: FsPath, kernels: object) -> None:
    (tmp_path / "world").write_text("127.0.0.1 7777\n")
    (tmp_path / "team").mkdir()
    (tmp_path / "team" / "api").write_text("127.0.0.1 7000\n")
    fs = FsNamer(str(tmp_path))
    interp = ConfiguredNamersInterpreter([(Path.read("/#/io.l5d.fs"), fs)])
    dtab = Dtab.read("/svc => /#/io.l5d.fs")
    world = interp.bind(dtab, Path.read("/svc/world/extra")).value  # type: ignore[attr-defined]
    assert (world.id.show, world.residual.show) == ("/#/io.l5d.fs/world", "/extra")
    nested = interp.bind(dtab, Path.read("/svc/team/api")).value  # type: ignore[attr-defined]
    assert nested.id.show == "/#/io.l5d.fs/team/api"
    assert interp.bind(dtab, Path.read("/svc/nope")) is Neg
    seen = []
    world.addr.observe(seen.append)
    (tmp_path / "world").write_text("127.0.0.1 7777\n127.0.0.1 7778\n")
    fs.refresh()
    assert len(seen) == 1 and len(world.addr.value.addresses) == 2
    (tmp_path / "world").unlink()
    fs.refresh()
    assert world.addr.value is ADDR_NEG


def test_delegate_marks_exceptions_per_branch(kernels: object) -> None:
    interp = ConfiguredNamersInterpreter([(Path.read("/#/bad"), _Flaky())])
    tree = delegate(Dtab.read("/svc => /#/bad & /$/inet/127.0.0.1/80"), Path.read("/svc"), interp.lookup_namers)
    j = tree.to_json()
    assert j["type"] == "union"
    assert [b["tree"]["type"] for b in j["union"]] == ["exception", "leaf"]
    assert j["union"][0]["tree"]["message"] == "boom"


def test_tree_simplify_and_show_are_consistent(kernels: object) -> None:
    t = read("~ | (~ | $) | /x")
    assert t.simplified().show == "$ | /x"
    assert read("! & !").simplified() is Neg
    assert read("! | /a").simplified() is Fail
    assert isinstance(read("2*/a & /b"), Union) and isinstance(read("2 * /a"), Leaf)
