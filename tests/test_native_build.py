"""The native kernels (``pyproxy._native``) against their pure-Python twins (``pyproxy._pure``).

The pure twins are the specification: for every input both must return equal values (same types)
or raise the same exception class with the same message, ``offset`` and ``expected``.
"""

from __future__ import annotations

import pytest

from pyproxy import _native as native
from pyproxy import _pure as pure
from pyproxy._impl import LANE
from pyproxy._version import __version__
from pyproxy.errors import DtabError

pytestmark = pytest.mark.native

READERS = ["read_path", "read_prefix", "read_tree", "read_dentry", "read_dtab"]

# From tests/data/vectors/naming.jsonl (path/prefix/nametree/dentry/dtab .read), then edge cases.
VECTORS = [
    "/", "  /foo/bar  ", "", "/foo/bar/", "/{}", "/\\?", "/\\x?", "/\\x0?", "/foo//bar",
    "/$/inet/127.1/8080", "/a b", "/foo # comment", "/_:.#$%-", "/foo*", "/é", "/\\xc3\\xa9",
    "/a\\x2Db", "/ /foo", "/foo/ bar", "/foo\n/bar", "/a,b", "/a\\X41",
    "1 * /foo & 2 * /bar | .5 * /bar & .5 * /baz", "/foo &", "/foo & 0.1.2 * /bar",
    "(/a | /b) & /c", "(/a & /b) & /c", "3 * (/a | /b) & /c", "(/a | /b) | /c", "$", "(/a", "/a)",
    "1 /a", "-1 * /a", "1e3 * /a & /b", "/a | ", "| /a", "/a\n# c\n| /b", "00.5 * /a & /b",
    "5. * /a & /b", "100*/a&/b", "12345678901234567890 * /a & /b", "1/3 * /a", "/a|/b|/c",
    "/foo/*/bar => !", "/* => /a", "/foo => ", "/foo = > /bar", "/foo/ => /bar", "/foo => bar",
    "/foo -> /bar", "/s/*/x=>/a&/b", "/a=>/b;", "/\\x2a => /b", "/*/*", "/a*",
    "/=>!;/foo=>/bar", "/a=>/b;;/c=>/d", "/a=>/b /c=>/d", "/a => /b; /c => /d ;", "/a=>/b;#/c=>/d",
    "/a=>/b#x\n;/c=>/d", " ; ", "/a=>1.5*/b & /c", "/a=>/b,/c=>/d", "/svc/* => /$/inet/127.1/8080",
]
EDGE_CASES = [
    # Java whitespace: these are spaces ...
    "\u3000/a\u2028", "\u1680/a\u205f", "\u2000\u2006\u2008\u200a/a\u2029", "\x1c\x1d\x1e\x1f/a\x0b\x0c",
    # ... these are not
    "\u00a0/a", "/a\u0085", "\u2007/a", "\u200b/a", "\ufeff/a", "/a=>\u202f/b",
    # U+FFFF reads as "end of input" in the found part
    "\uffff", "/a\uffff", "/a\uffffb", "/a=>/b;\uffff", "/a & \uffff",
    # non-ASCII and surrogates: offsets in code points, whole characters bracketed
    "/a/\U0001f600", "/é/x", "/e\u0301", "/\U0001f600\U0001f600", "/a\ud800", "\udfff/a", "/\ud83d\ude00",
    # comments
    "#", "# only a comment", "/a #c\n#d\n", "/a#b # c", "/a=>/b # c\n;/c=>/d", "/a=>/b # c;/c=>/d",
    # weights
    ". * /a & /b", "/a & .", "/a & . ", "/a & .\u3000* /b", "5.*/a&/b", ".5*/a&/b", "0.1.2*/a",
    "9" * 400 + "*/a&/b", "0." + "0" * 400 + "1*/a&/b", "2 */a & 3* /b & 0 * /c", "1..", "1.5.",
    # labels, escapes, prefixes
    "/a\\x2F\\x2a", "/\\x", "/\\x4", "/\\xg0", "/a\\", "/*/\\x2a/*", "/**", "/*a", "/*/", "/a/*/",
    # trees and dtabs
    "((/a))", "()", "(/a | /b", "/a & (", " ! | ~ & $ ", "(" * 40 + "/a" + ")" * 40,
    "/a=>/b;;", ";", "/a=>", "/a =>/b", "/a=/b", "/a=>/b;\n# tail\n", "/a=>~;/a=>/b|!",
]
INPUTS = VECTORS + EDGE_CASES


def outcome(fn, s):
    try:
        value = fn(s)
    except Exception as exc:  # noqa: BLE001 - the comparison is the point
        return ("error", type(exc), str(exc), getattr(exc, "offset", None), getattr(exc, "expected", None))
    return ("value", value, repr(value))


@pytest.mark.parametrize("s", INPUTS)
@pytest.mark.parametrize("name", READERS)
def test_readers_agree(name, s):
    assert outcome(getattr(native, name), s) == outcome(getattr(pure, name), s)


@pytest.mark.parametrize(
    ("name", "s", "message", "offset"),
    [
        ("read_path", "", "'/' expected but end of input found at '[]'", 0),
        ("read_path", "/\\x0?", "hex char expected but '?' found at '/\\x0[?]'", 4),
        ("read_tree", "/foo & . * /bar", "weight expected but '.' found at '/foo & .[ ]* /bar'", 8),
        ("read_path", "/a\uffffb", "end of input expected but end of input found at '/a[\uffff]b'", 2),
        ("read_path", "/é/\U0001f600", "end of input expected but 'é' found at '/[é]/\U0001f600'", 1),
        ("read_dentry", "/foo/*bar/baz => !", "'=' expected but 'b' found at '/foo/*[b]ar/baz => !'", 6),
    ],
)
def test_exact_errors(name, s, message, offset):
    with pytest.raises(DtabError) as info:
        getattr(native, name)(s)
    assert (str(info.value), info.value.offset, info.value.kind) == (message, offset, "syntax")


def test_values():
    assert native.read_path("/a\\x2fb/c") == (b"a/b", b"c")
    assert native.read_prefix("/a/*") == (b"a", None)
    assert native.read_tree("/a | 2 * /b & ~") == (1, ((0, (b"a",)), (2, ((2.0, (0, (b"b",))), (1.0, (3,))))))
    assert native.read_dtab("/a=>!;/b=>$") == (((b"a",), (4,)), ((b"b",), (5,)))
    assert native.read_tree("9" * 400 + " * /a & /b")[1][0][0] == float("inf")


@pytest.mark.parametrize("bad", [None, b"/a", 1, ["/a"]])
@pytest.mark.parametrize("name", READERS)
def test_non_str_is_a_type_error(name, bad):
    assert outcome(getattr(native, name), bad) == outcome(getattr(pure, name), bad)
    assert outcome(getattr(native, name), bad)[1] is TypeError


def test_str_subclass():
    class S(str):
        pass

    assert native.read_path(S("/a/b")) == pure.read_path(S("/a/b")) == (b"a", b"b")


def test_deep_nesting_raises_instead_of_crashing():
    with pytest.raises(RecursionError):
        native.read_tree("(" * 100_000 + "/a" + ")" * 100_000)


def test_exports_and_version():
    assert set(pure.__all__) | set(LANE) == {n for n in dir(native) if not n.startswith("_")}
    assert native.__version__ == __version__ == "0.1.0"
    assert native.DtabIndex.__module__ == "pyproxy._native"


DTABS = [
    "/srv=>/#/io.l5d.fs;/host=>/srv;/svc=>/host;/host/world=>/srv/world-v1",
    "/=>/r;/a=>/1;/*=>/2;/a/b=>/3;/*/b=>/4;/a/*=>/5;/*/*/c=>/6;/a=>/7;/b/*/c=>/8;/*/*=>/9 & 2 * /9b",
    "/s/*/x => /a & (/b | ~) & !;/s => $;/s/*/* => ~;/\\x2a => /lit;/* => /w | /v",
    "",
]
PATHS = [(), (b"a",), (b"b",), (b"*",), (b"a", b"b"), (b"a", b"b", b"c"), (b"b", b"x", b"c", b"d"),
         (b"svc", b"world", b"x"), (b"host", b"world"), (b"s", b"q", b"x", b"y"), (b"s",), (b"\xff", b"b")]


@pytest.mark.parametrize("dtab", DTABS)
def test_index_agrees(dtab):
    dentries = pure.read_dtab(dtab)
    n, p = native.DtabIndex(dentries), pure.DtabIndex(dentries)
    assert len(n) == len(p) == len(dentries)
    for path in PATHS:
        assert n.matches(path) == p.matches(path), path
        assert repr(n.lookup(path)) == repr(p.lookup(path)), path


def test_index_lookup_examples():
    ix = native.DtabIndex(native.read_dtab("/foo=>/bar;/foo=>/baz;/a/*/c=>/d;/x=>/y & 2 * /z"))
    assert ix.lookup((b"foo", b"x")) == (1, ((0, (b"baz", b"x")), (0, (b"bar", b"x"))))
    assert ix.lookup((b"a", b"b", b"c", b"e")) == (0, (b"d", b"e"))
    assert ix.lookup((b"food",)) == (3,)
    assert ix.lookup((b"x", b"q")) == (2, ((1.0, (0, (b"y", b"q"))), (2.0, (0, (b"z", b"q")))))
    path = (b"foo", b"suffix")
    assert all(leaf[1][1] is path[1] for leaf in ix.lookup(path)[1])  # the caller's bytes are reused


def test_index_many_dentries():
    dtab = ";".join(f"/svc/s{i}=>/srv/s{i}" for i in range(20_000)) + ";/svc/*=>/fallback"
    ix = native.DtabIndex(native.read_dtab(dtab))
    assert len(ix) == 20_001
    assert ix.matches((b"svc", b"s123", b"x")) == [20_000, 123]
    assert ix.lookup((b"svc", b"s7")) == (1, ((0, (b"fallback",)), (0, (b"srv", b"s7"))))


@pytest.mark.parametrize(
    "bad",
    [None, 1, [(1, 2)], [((b"a",), (9,))], [((b"a",), (0, [b"x"]))], [((b"a", 3), (3,))],
     [((b"a",), (2, ((1.0,),)))], [((b"a",),)], [((), (0, (b"a", "b")))], [((), (2, (("x", (3,)),)))],
     [((), ())], [((), (3, 1))], [((), "~")]],
)
def test_index_rejects_malformed_dentries(bad):
    with pytest.raises((TypeError, ValueError)):
        native.DtabIndex(bad)


@pytest.mark.parametrize("path", [[b"a"], (b"a", "x"), ("a",), None])
def test_index_rejects_malformed_paths(path):
    ix = native.DtabIndex(native.read_dtab("/a=>/b"))
    with pytest.raises(TypeError):
        ix.lookup(path)
    with pytest.raises(TypeError):
        ix.matches(path)


def test_the_stub_covers_every_native_name():
    """``pyproxy/_native.pyi`` declares every public name of the native module."""
    import ast
    from pathlib import Path

    stub = ast.parse((Path(__file__).resolve().parents[1] / "pyproxy" / "_native.pyi").read_text(encoding="utf-8"))
    declared = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert {n for n in dir(native) if not n.startswith("_")} <= declared
