"""The naming kernels, differentially: native == pure (== oracle), plus the invariants both must keep.

* ``read_*`` on valid, mutated and arbitrary text: same value, or the same error (class, message,
  offset, expected) on both twins (``native``-marked: they need the built module);
* ``DtabIndex.matches`` / ``.lookup``: native == pure == :mod:`oracle` (a reverse linear scan);
* round trips through the Python domain layer on each twin (``Dtab.read(d.show) == d`` ...);
* any string parses or raises :class:`~pyproxy.errors.DtabError` with Finagle's exact message shape;
  a non-``str`` argument raises ``TypeError``; absurd nesting raises ``RecursionError`` (no crash).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import ModuleType
from typing import Any, Callable, Optional

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import oracle
import strategies as S
from pyproxy.errors import DtabError
from pyproxy.naming import Dentry, Dtab, Path, Prefix
from pyproxy.naming.tree import from_kernel, to_kernel
from pyproxy.naming.tree import read as read_name_tree

READERS = ("read_path", "read_prefix", "read_tree", "read_dentry", "read_dtab")
KIND = {reader: reader[len("read_") :] for reader in READERS}

LEAF, ALT, UNION, NEG, FAIL, EMPTY = range(6)

# ``kernels`` is function-scoped (it monkeypatches the seam); sharing it across examples is what we want.
with_kernels = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def outcome(fn: Callable[[Any], Any], x: Any) -> tuple:
    """``("ok", value)`` or ``("err", class name, message, offset, expected)``."""
    try:
        return ("ok", fn(x))
    except Exception as e:  # noqa: BLE001 - any exception is an outcome to compare
        return ("err", type(e).__name__, str(e), getattr(e, "offset", None), getattr(e, "expected", None))


def typed(v: Any) -> Any:
    """``v`` with every type spelled out, so ``1 == 1.0`` or ``[1] != (1,)`` cannot hide a difference."""
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(typed(x) for x in v))
    return (type(v).__name__, v)


def assert_same(a: Any, b: Any) -> None:
    assert a == b
    assert typed(a) == typed(b)


# === kernel value shapes ===


def is_path(p: Any) -> bool:
    return type(p) is tuple and all(type(e) is bytes and e for e in p)


def is_prefix(p: Any) -> bool:
    return type(p) is tuple and all(e is None or (type(e) is bytes and e) for e in p)


def is_tree(t: Any) -> bool:
    """A tree as the *parser* makes it: Alt and Union have at least two children, weights are floats >= 0."""
    if type(t) is not tuple or not t or type(t[0]) is not int:
        return False
    tag = t[0]
    if tag == LEAF:
        return len(t) == 2 and is_path(t[1])
    if tag == ALT:
        return len(t) == 2 and type(t[1]) is tuple and len(t[1]) >= 2 and all(is_tree(c) for c in t[1])
    if tag == UNION:
        return len(t) == 2 and type(t[1]) is tuple and len(t[1]) >= 2 and all(is_weighted(wt) for wt in t[1])
    return t in ((NEG,), (FAIL,), (EMPTY,))


def is_weighted(wt: Any) -> bool:
    return type(wt) is tuple and len(wt) == 2 and type(wt[0]) is float and wt[0] >= 0 and is_tree(wt[1])


def is_dentry(d: Any) -> bool:
    return type(d) is tuple and len(d) == 2 and is_prefix(d[0]) and is_tree(d[1])


SHAPES = {
    "path": is_path,
    "prefix": is_prefix,
    "tree": is_tree,
    "dentry": is_dentry,
    "dtab": lambda d: type(d) is tuple and all(is_dentry(x) for x in d),
}

EXPECTED = {"'/'", "'x'", "'='", "'>'", "'*'", "')'", "label char", "hex char", "number char", "weight", "simple", "end of input"}


def check_dtab_error(text: str, e: BaseException) -> None:
    """Finagle's ``<expected> expected but <found> found at '<display>'``, offset in code points."""
    assert type(e) is DtabError, repr(e)
    assert e.kind == "syntax"
    off, exp = e.offset, e.expected
    assert type(off) is int and 0 <= off <= len(text), off
    assert exp in EXPECTED, exp
    display = text + "[]" if off == len(text) else f"{text[:off]}[{text[off]}]{text[off + 1:]}"
    if exp == "weight":  # a lone '.': Finagle brackets the character after it (spec 1.6)
        found = "'.'"
    elif off == len(text) or text[off] == "\uffff":  # U+FFFF is the JVM parser's end-of-input sentinel
        found = "end of input"
    else:
        found = f"'{text[off]}'"
    assert str(e) == f"{exp} expected but {found} found at '{display}'"


def one_of_kind(reader: str, texts: Callable[[Optional[str]], st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """Texts of the reader's own kind, or of any kind (so the other readers' inputs meet it too)."""
    return st.one_of(texts(KIND[reader]), texts(None))


# === read_*: native == pure ===


@pytest.mark.native
@pytest.mark.parametrize("reader", READERS)
@given(data=st.data())
def test_read_valid_text_agrees(native: ModuleType, pure: ModuleType, reader: str, data: st.DataObject) -> None:
    text = data.draw(one_of_kind(reader, S.valid_texts), label="text")
    assert_same(outcome(getattr(native, reader), text), outcome(getattr(pure, reader), text))


@pytest.mark.native
@pytest.mark.parametrize("reader", READERS)
@given(data=st.data())
def test_read_mutated_text_agrees(native: ModuleType, pure: ModuleType, reader: str, data: st.DataObject) -> None:
    text = data.draw(one_of_kind(reader, S.mutated_texts), label="text")
    assert_same(outcome(getattr(native, reader), text), outcome(getattr(pure, reader), text))


@pytest.mark.native
@pytest.mark.parametrize("reader", READERS)
@given(text=S.arbitrary_texts)
@example(text="")
@example(text="\uffff")
@example(text="/a\uffff")
@example(text="/\ud800")
@example(text="/a & . * /b")
@example(text="/é=>/\U0001F600")
@example(text="9" * 400 + "*/a&/b")
@example(text="1.*/a&.5*/b")
def test_read_arbitrary_text_agrees(native: ModuleType, pure: ModuleType, reader: str, text: str) -> None:
    assert_same(outcome(getattr(native, reader), text), outcome(getattr(pure, reader), text))


@pytest.mark.native
@pytest.mark.parametrize("reader", READERS)
def test_read_non_str_errors_agree(native: ModuleType, pure: ModuleType, reader: str) -> None:
    class Text(str):
        pass

    for value in (None, b"/a", bytearray(b"/a"), 42, ["/a"], Text("/a"), Text("/a=>/b")):
        assert_same(outcome(getattr(native, reader), value), outcome(getattr(pure, reader), value))


@pytest.mark.native
@pytest.mark.parametrize("reader", READERS)
def test_read_long_and_nested_input_agrees(native: ModuleType, pure: ModuleType, reader: str) -> None:
    for text in (
        "(" * 100 + "/a" + ")" * 100,
        "/a=>" + "(" * 100 + "/b" + ")" * 100,
        " | ".join(["/a/b"] * 20_000),
        "/x=>" + " & ".join(["2*/a"] * 20_000),
        "/" + "/".join(["\\x2a"] * 20_000),
        ";".join(["/a=>/b"] * 20_000),
    ):
        assert_same(outcome(getattr(native, reader), text), outcome(getattr(pure, reader), text))


# === DtabIndex: native == pure == oracle ===


@pytest.mark.native
@given(S.dtabs_and_paths())
def test_dtab_index_agrees_with_oracle(native: ModuleType, pure: ModuleType, dtab_path: tuple) -> None:
    dtab, path = dtab_path
    n_idx, p_idx = native.DtabIndex(dtab), pure.DtabIndex(dtab)
    assert len(n_idx) == len(p_idx) == len(dtab)
    n_matches, p_matches = outcome(n_idx.matches, path), outcome(p_idx.matches, path)
    assert_same(n_matches, p_matches)
    assert_same(p_matches, ("ok", oracle.matches(dtab, path)))
    n_lookup, p_lookup = outcome(n_idx.lookup, path), outcome(p_idx.lookup, path)
    assert_same(n_lookup, p_lookup)
    assert_same(p_lookup, ("ok", oracle.lookup(dtab, path)))


@with_kernels
@given(S.dtabs_and_paths())
def test_dtab_index_matches_oracle(kernels: ModuleType, dtab_path: tuple) -> None:
    dtab, path = dtab_path
    idx = kernels.DtabIndex(dtab)
    assert_same(idx.matches(path), oracle.matches(dtab, path))
    assert_same(idx.lookup(path), oracle.lookup(dtab, path))


@with_kernels
@given(S.dtabs_and_paths(parseable=True))
def test_dtab_lookup_through_domain_layer(kernels: ModuleType, dtab_path: tuple) -> None:
    dtab, path = dtab_path
    d = Dtab(Dentry._from_kernel(x) for x in dtab)
    assert to_kernel(d.lookup(Path(path))) == oracle.lookup(dtab, path)
    rewritten = [to_kernel(t) for _, t in d.lookup_dentries(Path(path))]
    assert rewritten == [oracle.rewrite(dtab[i][1], path[len(dtab[i][0]) :]) for i in oracle.matches(dtab, path)]


LARGE = 100_000


@pytest.fixture(scope="module")
def large_dtab() -> tuple:
    return S.service_dtab(LARGE)


def _large_paths() -> list:
    return [
        S.service_path(LARGE),
        S.service_path(LARGE, b"w"),
        (b"svc", b"svc-0", b"x", b"y"),
        (b"svc", b"svc-%d" % (LARGE - 5), b"z"),
        (b"svc", b"nope", b"y"),
        (b"svc",),
        (b"other", b"svc-1"),
        (),
    ]


@pytest.mark.native
def test_large_dtab_index_agrees(native: ModuleType, pure: ModuleType, large_dtab: tuple) -> None:
    dtab, _text = large_dtab
    n_idx, p_idx = native.DtabIndex(dtab), pure.DtabIndex(dtab)
    assert len(n_idx) == len(p_idx) == LARGE
    for path in _large_paths():
        assert_same(n_idx.matches(path), p_idx.matches(path))
        assert_same(p_idx.matches(path), oracle.matches(dtab, path))
        assert_same(n_idx.lookup(path), p_idx.lookup(path))
        assert_same(p_idx.lookup(path), oracle.lookup(dtab, path))
    assert len(p_idx.matches(S.service_path(LARGE))) == 3


def test_large_dtab_reads(kernels: ModuleType, large_dtab: tuple) -> None:
    dtab, text = large_dtab
    assert_same(kernels.read_dtab(text), dtab)


# === round trips through the domain layer, on each twin ===


@with_kernels
@given(S.paths())
def test_path_show_round_trip(kernels: ModuleType, elems: tuple) -> None:
    p = Path(elems)
    assert Path.read(p.show) == p


@with_kernels
@given(S.prefixes())
def test_prefix_show_round_trip(kernels: ModuleType, elems: tuple) -> None:
    p = Prefix(elems)
    assert Prefix.read(p.show) == p


@with_kernels
@given(S.trees("decimal"))
def test_name_tree_show_round_trip(kernels: ModuleType, tree: tuple) -> None:
    t = from_kernel(tree)
    assert read_name_tree(t.show) == t


@with_kernels
@given(S.dentries("decimal"))
def test_dentry_show_round_trip(kernels: ModuleType, dentry: tuple) -> None:
    d = Dentry._from_kernel(dentry)
    assert Dentry.read(d.show) == d


@with_kernels
@given(S.dtabs("int"))
def test_dtab_show_round_trip(kernels: ModuleType, dtab: tuple) -> None:
    d = Dtab(Dentry._from_kernel(x) for x in dtab)
    assert Dtab.read(d.show) == d


@with_kernels
@pytest.mark.parametrize("reader", READERS)
@given(data=st.data())
def test_rendered_text_reads_back(kernels: ModuleType, reader: str, data: st.DataObject) -> None:
    value, text = data.draw(S.rendered(KIND[reader]), label="value, text")
    assert_same(getattr(kernels, reader)(text), value)


# === invariants, on each twin ===


@with_kernels
@pytest.mark.parametrize("reader", READERS)
@given(data=st.data())
def test_any_text_parses_or_raises_dtab_error(kernels: ModuleType, reader: str, data: st.DataObject) -> None:
    text = data.draw(one_of_kind(reader, S.any_texts), label="text")
    _check_parses_or_raises(getattr(kernels, reader), KIND[reader], text)


@pytest.mark.parametrize("reader", READERS)
def test_parses_or_raises_dtab_error_examples(kernels: ModuleType, reader: str) -> None:
    for text in ("", "#", "\uffff", "/a\uffff", "/\ud800", "/a & . * /b", "/a & 1..2*/b", "(", ")", "/=>", "=>", ";;", "/a=>/b;"):
        _check_parses_or_raises(getattr(kernels, reader), KIND[reader], text)


def _check_parses_or_raises(fn: Callable[[str], Any], kind: str, text: str) -> None:
    try:
        value = fn(text)
    except DtabError as e:
        check_dtab_error(text, e)
    else:
        assert SHAPES[kind](value), value


NON_STR = [None, b"/a", bytearray(b"/a"), 42, 1.5, ["/a"], object()]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("value", NON_STR, ids=lambda v: type(v).__name__)
def test_read_non_str_raises_type_error(kernels: ModuleType, reader: str, value: object) -> None:
    with pytest.raises(TypeError):
        getattr(kernels, reader)(value)


def test_read_absurd_nesting_raises_recursion_error(kernels: ModuleType) -> None:
    """Nesting past any stack: ``RecursionError`` on both twins, never a crash (run in a child process)."""
    n = 100_000
    code = textwrap.dedent(
        f"""
        import importlib
        mod = importlib.import_module({kernels.__name__!r})
        for reader, text in [
            ("read_tree", "(" * {n} + "/a" + ")" * {n}),
            ("read_tree", "(" * {n}),
            ("read_tree", "1*(" * {n}),
            ("read_dentry", "/a=>" + "(" * {n}),
            ("read_dtab", "/a=>/b;/c=>" + "(/d|" * {n}),
        ]:
            try:
                getattr(mod, reader)(text)
                print(reader, "ok")
            except Exception as e:
                print(reader, type(e).__name__)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [line.split() for line in proc.stdout.splitlines()]
    assert [r[1] for r in results] == ["RecursionError"] * 5, proc.stdout
