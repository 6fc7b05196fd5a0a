"""Checks one record of the naming vectors (``tests/data/vectors/*.jsonl``) against pyproxy's naming core.

``check(record)`` returns a list of mismatch descriptions (empty: the record passes) and raises
``UnknownKind`` for a kind it does not know, so a new kind can never be skipped silently. The stub
namers are the ones the vectors' README defines. Run a whole file from the command line with
``python tests/conformance.py FILE`` (one PASS/FAIL line per record).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Dict, List, Optional

from pyproxy.errors import DtabError, MaxDepthError, NamerError, PathError, UnknownNamerError
from pyproxy.routing.identifiers import (
    HeaderPathIdentifier,
    HeaderTokenIdentifier,
    Identified,
    MethodAndHostIdentifier,
    PathIdentifier,
)
from pyproxy.naming import (
    AddrVar,
    Alt,
    Bound,
    ConfiguredNamersInterpreter,
    DefaultInterpreter,
    Dentry,
    Dtab,
    Empty,
    Fail,
    Leaf,
    NameTree,
    Namer,
    Neg,
    Path,
    Prefix,
    SystemNamer,
    Union,
    Weighted,
    delegate,
    evaluate,
    simplify,
)
from pyproxy.naming.tree import read as read_tree

import conformance_ops as ops


class UnknownKind(Exception):
    """A record kind (or an operation) this runner does not know: a failure, never a skip."""


# === stub namers (vectors/README.md) ===


class SetNamer(Namer):
    """Binds the service names in ``names``: id = prefix + service, the rest is residual."""

    def __init__(self, prefix: str, names: List[str]) -> None:
        self.prefix = Path.read(prefix)
        self.names = {n.encode() for n in names}

    def lookup(self, path: Path) -> NameTree:
        if path.elems and path.elems[0] in self.names:
            return Leaf(Bound(self.prefix + path.take(1), path.drop(1), AddrVar()))
        return Neg


class ErrorNamer(Namer):
    def __init__(self, prefix: str) -> None:
        self.prefix = Path.read(prefix)

    def lookup(self, path: Path) -> NameTree:
        raise NamerError(f"error naming {(self.prefix + path).show}")


class KnownPathsNamer(Namer):
    """Binds exactly the listed paths (the user guide's serverset stand-in)."""

    def __init__(self, prefix: str, known: List[str]) -> None:
        self.prefix = Path.read(prefix)
        self.known = {Path.read(k) for k in known}

    def lookup(self, path: Path) -> NameTree:
        if path in self.known:
            return Leaf(Bound(self.prefix + path, Path.EMPTY, AddrVar()))  # type: ignore[attr-defined]
        return Neg


class RewriteToNamer(Namer):
    """Finagle's NamerTest ``testnamer``: rewrites everything to one path."""

    def __init__(self, to: str) -> None:
        self.to = Path.read(to)

    def lookup(self, path: Path) -> NameTree:
        return Leaf(self.to)


def _system() -> SystemNamer:
    s = SystemNamer()
    s.register("com.twitter.finagle.naming.testnamer", RewriteToNamer("/rewritten/by/test/namer"))
    return s


def _linkerd(record: Dict[str, Any]) -> ConfiguredNamersInterpreter:
    namers = [
        (Path.read("/#/io.l5d.fs"), SetNamer("/#/io.l5d.fs", ["web", "users"])),
        (Path.read("/#/namer"), SetNamer("/#/namer", ["bro", "a", "b"])),
        (Path.read("/#/error"), ErrorNamer("/#/error")),
    ]
    return ConfiguredNamersInterpreter(namers, _system(), record.get("maxDepth", 100))


def _guide(record: Dict[str, Any]) -> ConfiguredNamersInterpreter:
    namers = [(Path.read("/#/ss"), KnownPathsNamer("/#/ss", record["known"]))]
    return ConfiguredNamersInterpreter(namers, _system(), record.get("maxDepth", 100))


# === renderings in the vectors' notation ===


def java_error(exc: BaseException, kind: str) -> str:
    if isinstance(exc, (DtabError, PathError)):
        return f"IllegalArgumentException: {exc}"
    if isinstance(exc, MaxDepthError):
        return f"{'IllegalArgumentException' if kind.startswith('delegate') else 'Exception'}: {exc}"
    if isinstance(exc, UnknownNamerError) and kind == "bind.finagle":
        return f"ClassNotFoundException: {exc.class_name}"
    return f"Exception: {exc}"


def eval_text(t: NameTree) -> str:
    r = evaluate(t)
    if r is None:
        return "None"
    return "{" + ",".join(sorted(v.show for v in r)) + "}"  # type: ignore[attr-defined]


def _construct(text: str) -> NameTree:
    """A tree from the vectors' debug notation: ``Union(2*Alt(/a,/b),1*/c)``, ``Neg``, ``Leaf(/)``."""
    pos = 0

    def node() -> NameTree:
        nonlocal pos
        for atom, value in (("Neg", Neg), ("Fail", Fail), ("Empty", Empty)):
            if text.startswith(atom, pos):
                pos += len(atom)
                return value
        for head in ("Alt(", "Union(", "Leaf("):
            if text.startswith(head, pos):
                pos += len(head)
                items: List[Any] = []
                while text[pos] != ")":
                    if head == "Union(":
                        m = re.compile(r"(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)\*").match(text, pos)
                        assert m, f"weight expected at {pos} in {text!r}"
                        pos = m.end()
                        items.append(Weighted(float(m.group(1)), node()))
                    else:
                        items.append(node())
                    if text[pos] == ",":
                        pos += 1
                pos += 1
                if head == "Alt(":
                    return Alt(*items)
                if head == "Union(":
                    return Union(*items)
                return items[0]
        m = re.compile(r"/[^,()]*").match(text, pos)
        assert m, f"node expected at {pos} in {text!r}"
        pos = m.end()
        return Leaf(Path.read(m.group()))

    t = node()
    assert pos == len(text), f"trailing input in {text!r}"
    return t


class _Head:
    def __init__(self, method: str, target: str, version: str, headers: Dict[str, Optional[str]]) -> None:
        self.method, self.target, self.version = method, target, version
        self._headers = {k.lower(): v for k, v in headers.items() if v is not None}

    def header(self, name: str) -> Optional[str]:
        return self._headers.get(name.lower())


def _ident(record: Dict[str, Any]) -> str:
    kind = record["kind"]
    pfx = Path.read(record.get("dstPrefix", "/svc"))
    if kind == "ident.path":
        ident: Any = PathIdentifier(pfx, record["segments"], record["consume"])
        head = _Head("GET", record["uri"], "HTTP/1.1", {})
    elif kind == "ident.methodAndHost":
        ident = MethodAndHostIdentifier(pfx, record["httpUriInDst"])
        head = _Head(record["method"], record["uri"], record["version"], {"Host": record["host"]})
    else:
        ident = HeaderPathIdentifier(pfx) if record["headerPath"] else HeaderTokenIdentifier(pfx, "l5d-name")
        head = _Head("GET", "/", "HTTP/1.1", {"l5d-name": record["value"]})
    try:
        r = ident.identify(head)
    except (DtabError, PathError) as exc:
        return f"EXCEPTION IllegalArgumentException: {exc}"
    if isinstance(r, Identified):
        out = f"dst={r.dst.show}"
        if kind == "ident.path":
            out += f" uri={r.target if r.target is not None else head.target}"
        return out
    if r.error is not None:
        return f"FAILED(IllegalArgumentException: {r.error})"
    return f"UNIDENTIFIED: {r.reason}"


# === the checks ===


def _results(record: Dict[str, Any]) -> Dict[str, Any]:
    """What pyproxy computes for the fields the record specifies."""
    kind = record["kind"]
    if kind == "path.read":
        p = Path.read(record["in"])
        return {"show": p.show, "size": len(p), "toString": p.debug()}
    if kind == "path.utf8.show":
        return {"show": Path.utf8(*record["elems"]).show}
    if kind in ("path.ops", "dtab.ops"):
        value = ops.evaluate(record["op"])
        if "show" in record:
            return {"show": ops.render(value)}
        return {"v": ops.render(value)}
    if kind == "nametree.read":
        t = read_tree(record["in"])
        return {
            "struct": t.debug(),
            "show": t.show,
            "simplified": simplify(t).show,
            "reparse_equal": read_tree(t.show) == t,
        }
    if kind == "nametree.construct":
        t = _construct(record["name"])
        return {"show": t.show, "simplified": simplify(t).debug(), "eval": eval_text(t)}
    if kind == "nametree.eval":
        t = read_tree(record["in"])
        s = simplify(t)
        return {"eval": eval_text(t), "simplified": s.show, "simplified_eval": eval_text(s)}
    if kind == "dentry.read":
        d = Dentry.read(record["in"])
        return {"show": d.show, "prefix": d.prefix.debug(), "dst": d.dst.debug()}
    if kind == "prefix.read":
        p = Prefix.read(record["in"])
        return {"show": p.show, "toString": p.debug()}
    if kind == "prefix.matches":
        return {"matches": Prefix.read(record["prefix"]).matches(Path.read(record["path"]))}
    if kind == "dtab.read":
        d = Dtab.read(record["in"])
        return {"show": d.show, "size": len(d)}
    if kind == "dtab.lookup":
        t = Dtab.read(record["dtab"]).lookup(Path.read(record["path"]))
        return {"result": t.show, "struct": t.debug()}
    if kind in ("bind.finagle", "bind.linkerd", "bind.guide"):
        interp: Any
        if kind == "bind.finagle":
            interp = DefaultInterpreter(_system(), record.get("maxDepth", 100))
        else:
            interp = (_linkerd if kind == "bind.linkerd" else _guide)(record)
        try:
            return {"result": interp.bind(Dtab.read(record["dtab"]), Path.read(record["path"])).debug()}
        except Exception as exc:  # noqa: BLE001 - the vector names the error
            return {"result": {"error": java_error(exc, kind)}}
    if kind == "namer.rewrite":
        return {"result": _system().lookup(Path.read(record["path"])).debug()}
    if kind in ("delegate", "delegate.guide"):
        interp = (_linkerd if kind == "delegate" else _guide)(record)
        tree = delegate(Dtab.read(record["dtab"]), Path.read(record["path"]), interp.lookup_namers)
        return {"json": _placeholder_addrs(tree.to_json()), "tree": tree.debug()}
    if kind in ("ident.path", "ident.methodAndHost", "ident.header"):
        return {"result": _ident(record)}
    raise UnknownKind(kind)


def _placeholder_addrs(j: Any) -> Any:
    if isinstance(j, dict):
        return {k: ("<addr>" if k == "addr" else _placeholder_addrs(v)) for k, v in j.items()}
    if isinstance(j, list):
        return [_placeholder_addrs(v) for v in j]
    return j


_META = {"kind", "in", "prov", "upstream_test", "dtab", "path", "op", "name", "elems", "prefix",
         "known", "maxDepth", "segments", "consume", "uri", "dstPrefix", "httpUriInDst", "version", "method",
         "host", "headerPath", "value", "error"}


def check(record: Dict[str, Any]) -> List[str]:
    """Mismatches between the record's expectations and pyproxy (empty list: pass)."""
    kind = record["kind"]
    if "error" in record:
        try:
            got = _results(record)
        except UnknownKind:
            raise
        except ops.UnknownOp as exc:
            raise UnknownKind(f"{kind}: {exc}") from None
        except Exception as exc:  # noqa: BLE001
            text = java_error(exc, kind)
            return [] if text == record["error"] else [f"error: expected {record['error']!r}, got {text!r}"]
        return [f"expected error {record['error']!r}, got {got!r}"]
    try:
        got = _results(record)
    except UnknownKind:
        raise
    except ops.UnknownOp as exc:
        raise UnknownKind(f"{kind}: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        return [f"raised {type(exc).__name__}: {exc}"]
    expected = {k: v for k, v in record.items() if k not in _META and not k.startswith("note")}
    if kind in ("dentry.read",):
        expected["prefix"] = record["prefix"]
    if kind == "prefix.matches":
        expected = {"matches": record["matches"]}
    missing = set(expected) - set(got)
    if missing and kind not in ("prefix.matches",):
        raise UnknownKind(f"{kind}: fields {sorted(missing)} are not checked by this runner")
    return [f"{k}: expected {expected[k]!r}, got {got[k]!r}" for k in expected if got.get(k) != expected[k]]


def main(argv: List[str]) -> int:
    failed = 0
    with open(argv[1], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            try:
                problems = check(record)
            except UnknownKind as exc:
                problems = [f"unknown kind: {exc}"]
            failed += bool(problems)
            print(f"{'FAIL' if problems else 'PASS'} {n} {record['kind']} {'; '.join(problems)}")
    print(f"{n - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
