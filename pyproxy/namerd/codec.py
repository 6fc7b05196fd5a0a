"""The shapes namerd's HTTP API speaks: dtabs as JSON or ``application/dtab`` text, bound trees,
address sets (Linkerd's ``DtabCodec`` and ``DelegateApiHandler`` JSON, field for field).

* a dtab in JSON is ``[{"prefix":"/svc","dst":"/#/io.l5d.fs"}]``; as text, ``Dtab.show``;
* a bound tree is a delegate tree without paths: ``{"type":"leaf","bound":{"addr":{...},"id":...,
  "path":<residual>}}``, ``{"type":"union","union":[{"weight":1.0,"tree":...}]}``, ``alt``,
  ``neg``, ``fail``, ``empty``;
* an address set is ``{"type":"bound","addrs":[{"ip","port","meta"}],"meta":{}}``, ``neg``,
  ``pending``, ``failed`` (with ``cause``).

Every document on the wire is compact JSON followed by one newline.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import DtabError, PathError
from ..naming.dtab import Dentry, Dtab, Prefix
from ..naming.name import Bound, addr_json
from ..naming.tree import Alt, Empty, Fail, Leaf, NameTree, Union
from ..naming.tree import read as read_tree

__all__ = [
    "JSON",
    "DTAB",
    "accept",
    "codec_for",
    "dtab_json",
    "read_dtab",
    "write_dtab",
    "tree_json",
    "tree_key",
    "document",
]

JSON = "application/json"
DTAB = "application/dtab"
_TEXT_TYPES = (DTAB, "text/plain")


def document(value: Any) -> bytes:
    """One document on the wire: compact JSON and a newline."""
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def dtab_json(dtab: Dtab) -> List[Dict[str, str]]:
    return [{"prefix": d.prefix.show, "dst": d.dst.show} for d in dtab]


def codec_for(media_type: str) -> Optional[str]:
    """``json`` or ``text`` for a media type namerd reads and writes dtabs in (None: not one)."""
    mt = media_type.split(";", 1)[0].strip().lower()
    if mt == JSON:
        return "json"
    if mt in _TEXT_TYPES:
        return "text"
    return None


def accept(header: Optional[str]) -> Tuple[str, str]:
    """``(media type, codec)`` for an ``Accept`` header: the first type namerd writes, else JSON."""
    for item in (header or "").split(","):
        mt = item.split(";", 1)[0].strip().lower()
        codec = codec_for(mt)
        if codec is not None:
            return mt, codec
    return JSON, "json"


def write_dtab(dtab: Dtab, codec: str) -> bytes:
    if codec == "json":
        return document(dtab_json(dtab))
    return dtab.show.encode() + b"\n"


def read_dtab(body: bytes, codec: str) -> Dtab:
    """The dtab of a request body.

    Raises:
        DtabError: the text does not parse (Finagle's message), or the JSON is not a list of
            ``{"prefix", "dst"}`` objects.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DtabError(f"the dtab is not UTF-8 (byte {exc.start})") from None
    if codec == "text":
        return Dtab.read(text)
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise DtabError(f"malformed JSON dtab: {exc}") from None
    if not isinstance(items, list):
        raise DtabError("a JSON dtab is a list of {\"prefix\", \"dst\"} objects")
    dentries = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("prefix"), str) or not isinstance(item.get("dst"), str):
            raise DtabError(f"The dtab contains invalid dentries: {text}")
        try:
            dentries.append(Dentry(Prefix.read(item["prefix"]), read_tree(item["dst"])))
        except PathError as exc:
            raise DtabError(str(exc)) from None
    return Dtab(dentries)


def _bound_json(b: Bound) -> Dict[str, Any]:
    return {"addr": addr_json(b.addr.value), "id": b.id.show, "path": b.residual.show}


def tree_json(tree: NameTree) -> Dict[str, Any]:
    """A bound tree as namerd's bind API writes it (a delegate tree whose paths are null)."""
    kind = type(tree)
    if kind is Leaf:
        v = tree.value  # type: ignore[attr-defined]
        if isinstance(v, Bound):
            return {"type": "leaf", "bound": _bound_json(v)}
        return {"type": "neg"}
    if kind is Union:
        return {"type": "union", "union": [{"weight": w.weight, "tree": tree_json(w.tree)} for w in tree.weighted]}  # type: ignore[attr-defined]
    if kind is Alt:
        return {"type": "alt", "alt": [tree_json(t) for t in tree.trees]}  # type: ignore[attr-defined]
    if tree is Fail:
        return {"type": "fail"}
    if tree is Empty:
        return {"type": "empty"}
    return {"type": "neg"}


def tree_key(tree: NameTree) -> Tuple[Any, ...]:
    """What makes two bound trees the same tree (ids, residuals, weights; not their addresses),
    as Finagle compares ``NameTree[Name.Bound]`` when a stream drops repeats."""
    kind = type(tree)
    if kind is Leaf:
        v = tree.value  # type: ignore[attr-defined]
        return ("leaf", v.id.elems, v.residual.elems) if isinstance(v, Bound) else ("leaf?",)
    if kind is Union:
        return ("union",) + tuple((w.weight, tree_key(w.tree)) for w in tree.weighted)  # type: ignore[attr-defined]
    if kind is Alt:
        return ("alt",) + tuple(tree_key(t) for t in tree.trees)  # type: ignore[attr-defined]
    return (repr(tree),)


def leaves(tree: NameTree) -> Sequence[Bound]:
    out: List[Bound] = []
    stack = [tree]
    while stack:
        t = stack.pop()
        if type(t) is Leaf and isinstance(t.value, Bound):  # type: ignore[attr-defined]
            out.append(t.value)  # type: ignore[attr-defined]
        elif type(t) is Union:
            stack.extend(w.tree for w in t.weighted)  # type: ignore[attr-defined]
        elif type(t) is Alt:
            stack.extend(t.trees)  # type: ignore[attr-defined]
    return out

