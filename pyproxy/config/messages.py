"""msgspec's validation errors rewritten as pyproxy's one-line config errors: the key path first.

msgspec says ``Expected `int` <= 65535 - at `$.routers[0].servers[0].port```; pyproxy says
``$.routers[0].servers[0].port: Expected int <= 65535``. Three messages are reworded because the
key, not the object holding it, is what the user must fix:

* ``Object contains unknown field `dtabb` - at `$.routers[0]``` -> ``$.routers[0].dtabb: unknown key``
  (with a "did you mean" from the keys the object accepts);
* ``Object missing required field `kind``` -> ``$.namers[0].kind: missing required key``;
* ``Invalid value 'ewmaa' - at `$..kind``` -> ``$..kind: unknown kind 'ewmaa' (expected one of: ...)``.

Errors raised by ``__post_init__`` carry ``@<relative key>: `` (see :func:`.base.invalid`), which is
spliced onto the struct's path. Listing the accepted keys or kinds needs the type at a path; it is
found by walking ``msgspec.inspect`` type info alongside the data, which also picks the member of a
tagged union that the data's tag selects.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple, Union

import msgspec
import msgspec.inspect as mi

from .base import join

__all__ = ["format_error"]

_AT = re.compile(r"^(?P<msg>.*) - at `(?P<path>\$[^`]*)`$", re.S)
_KEY_AT = re.compile(r"^(?P<msg>.*) - at `key` in `(?P<path>\$[^`]*)`$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\[\.\.\.\]")


def format_error(exc: msgspec.ValidationError, data: Any, root: Any, base: str = "$") -> str:
    """One line, ``<key path>: <message>``, for a msgspec error raised converting ``data`` to ``root``.

    Args:
        base: the path of ``data`` inside the whole config (``$`` unless checking a sub-document).
    """
    text = str(exc)
    m = _KEY_AT.match(text)
    if m:  # a mapping key of the wrong type (YAML 1.1 reads `on:` as true, `80:` as an int)
        return _line(_rebase(m.group("path"), base), _bad_key(m.group("path"), data))
    m = _AT.match(text)
    rel, msg = (m.group("path"), m.group("msg")) if m else ("$", text)
    if msg.startswith("@"):
        key, _, msg = msg[1:].partition(": ")
        if key:
            rel = rel + key if key.startswith("[") else f"{rel}.{key}"
        return _line(_rebase(rel, base), msg)
    found = re.match(r"Object contains unknown field `(.*)`$", msg, re.S)
    if found:
        key = found.group(1)
        return _line(_rebase(join(rel, key), base), "unknown key" + _did_you_mean(key, rel, data, root))
    found = re.match(r"Object missing required field `(.*)`$", msg, re.S)
    if found:
        return _line(_rebase(join(rel, found.group(1)), base), "missing required key")
    found = re.match(r"Invalid (enum )?value (.*)$", msg, re.S)
    if found:
        return _line(_rebase(rel, base), _invalid_value(found.group(2), bool(found.group(1)), rel, data, root))
    return _line(_rebase(rel, base), msg.replace("`", ""))


def _line(path: str, msg: str) -> str:
    # One line whatever the message holds (a dtab parse error quotes the whole, multi-line dtab).
    msg = msg.replace("\r", "\\r").replace("\n", "\\n")
    return f"{path}: {msg}"


def _rebase(rel: str, base: str) -> str:
    return base + rel[1:]


def _did_you_mean(key: str, path: str, data: Any, root: Any) -> str:
    info = _type_at(path, data, root)
    if isinstance(info, mi.StructType):
        keys = [f.encode_name for f in info.fields]
        import difflib  # only for a config error

        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
        if close:
            return f" (did you mean {close[0]}?)"
    return ""


def _invalid_value(value: str, is_enum: bool, path: str, data: Any, root: Any) -> str:
    if is_enum:
        info = _type_at(path, data, root)
        options = _literals(info)
        suffix = f" (expected one of: {', '.join(sorted(options))})" if options else ""
        return f"invalid value {value}{suffix}"
    # A tag that selects no member of a tagged union: list the member tags.
    parent, _, field = path.rpartition(".")
    info = _type_at(parent or "$", data, root, pick=False)
    tags = sorted({t.tag for t in _members(info) if isinstance(t, mi.StructType) and t.tag_field == field})
    what = "protocol" if field == "protocol" else "kind"
    suffix = f" (expected one of: {', '.join(tags)})" if tags else ""
    return f"unknown {what} {value}{suffix}"


def _bad_key(path: str, data: Any) -> str:
    for seg in _segments(path):
        if isinstance(data, dict) and seg in data:
            data = data[seg]
        elif isinstance(data, list) and isinstance(seg, int) and seg < len(data):
            data = data[seg]
        else:
            return "every key must be a string"
    bad = next((k for k in data if not isinstance(k, str)), None) if isinstance(data, dict) else None
    if isinstance(bad, bool):
        return f"key {bad!r} is not a string (YAML reads on/off/yes/no as booleans: quote the key)"
    return f"key {bad!r} is not a string" if bad is not None else "every key must be a string"


def _literals(info: Optional[mi.Type]) -> List[str]:
    out: List[str] = []
    for t in _members(info):
        if isinstance(t, mi.LiteralType):
            out.extend(str(v) for v in t.values)
    return out


def _members(info: Optional[mi.Type]) -> Tuple[mi.Type, ...]:
    if isinstance(info, mi.UnionType):
        return info.types
    if isinstance(info, mi.Metadata):
        return _members(info.type)
    return (info,) if info is not None else ()


def _segments(path: str) -> List[Union[str, int, None]]:
    out: List[Union[str, int, None]] = []
    for m in _SEGMENT.finditer(path[1:]):
        name, index, quoted = m.groups()
        if name is not None:
            out.append(name)
        elif index is not None:
            out.append(int(index))
        elif quoted is not None:
            out.append(quoted)
        else:
            out.append(None)  # msgspec's "[...]": a dict key it does not name
    return out


def _pick(info: Any, data: Any) -> Any:
    """The member of a union that ``data`` selects (by tag, or by being an object or an array)."""
    while isinstance(info, mi.Metadata):
        info = info.type
    if not isinstance(info, mi.UnionType):
        return info
    members = [t.type if isinstance(t, mi.Metadata) else t for t in info.types]
    if isinstance(data, dict):
        structs = [t for t in members if isinstance(t, mi.StructType)]
        for t in structs:
            if t.tag_field is not None and data.get(t.tag_field) == t.tag:
                return t
        return structs[0] if len(structs) == 1 else None
    if isinstance(data, list):
        arrays = [t for t in members if isinstance(t, (mi.ListType, mi.VarTupleType, mi.TupleType))]
        return arrays[0] if arrays else None
    return None


def _type_at(path: str, data: Any, root: Any, pick: bool = True) -> Any:
    """The type info at ``path`` (following ``data``), or None when it cannot be told."""
    info: Any = mi.type_info(root)
    for seg in _segments(path):
        info = _pick(info, data)
        if isinstance(info, mi.StructType) and isinstance(seg, str):
            field = next((f for f in info.fields if f.encode_name == seg), None)
            if field is None:
                return None
            info, data = field.type, data.get(seg) if isinstance(data, dict) else None
        elif isinstance(info, (mi.ListType, mi.VarTupleType)) and isinstance(seg, int):
            info = info.item_type
            data = data[seg] if isinstance(data, list) and seg < len(data) else None
        elif isinstance(info, mi.DictType):
            info, data = info.value_type, None
        else:
            return None
    return _pick(info, data) if pick else info
