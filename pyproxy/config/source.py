"""Config text to plain data (dicts, lists, scalars): JSON when the first non-blank character is ``{``,
YAML otherwise, as Linkerd's Parser does.

Both reject a key that appears twice in one mapping, as Linkerd's Jackson does with
``STRICT_DUPLICATE_DETECTION``; the error names the key path (``$.routers[0].label: duplicate key``).
YAML is read with PyYAML's safe loader (no Python objects), YAML 1.1 scalars as Jackson/SnakeYAML
read them (``on``/``off`` are booleans).
"""

from __future__ import annotations

import json
from typing import Any, List, Optional, Set

import yaml

from ..errors import ConfigError
from .base import join

__all__ = ["parse", "StrictSafeLoader"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictSafeLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, reporting the key path of the second occurrence."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self._check_duplicates(node, "$", set())
        return self.construct_document(node)

    def _check_duplicates(self, node: yaml.Node, path: str, visited: Set[int]) -> None:
        # Each node is checked once, at the first path that reaches it: an alias repeats a node
        # (possibly recursively), and re-walking it per reference would take exponential time.
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: Set[Any] = set()
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:  # `<<: *base` may legitimately repeat keys of base
                    continue
                key = self.construct_object(key_node, deep=True) if isinstance(key_node, yaml.ScalarNode) else None
                child = join(path, key) if key is not None else path
                try:
                    duplicate = key is not None and key in seen
                    seen.add(key)
                except TypeError:  # unhashable key: msgspec rejects it later with its path
                    duplicate = False
                if duplicate:
                    line = key_node.start_mark.line + 1
                    raise ConfigError(f"{child}: duplicate key (line {line})")
                self._check_duplicates(value_node, child, visited)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_duplicates(item, f"{path}[{i}]", visited)


class _Object(dict):
    """A JSON object that remembers which keys it saw twice (json.loads keeps the last)."""

    duplicates: List[str]


def _pairs(pairs: List[tuple]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for k, v in pairs:
        if k in obj:
            obj.duplicates.append(k)
        obj[k] = v
    return obj


def _first_duplicate(value: Any, path: str) -> Optional[str]:
    if isinstance(value, _Object):
        if value.duplicates:
            return join(path, value.duplicates[0])
        for k, v in value.items():
            found = _first_duplicate(v, join(path, k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _first_duplicate(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _plain(value: Any) -> Any:
    """The same data with every _Object turned back into a dict (msgspec wants exact dicts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _one_line(text: str) -> str:
    return " ".join(text.split())


def parse(text: str) -> Any:
    """Parse config ``text`` into plain data.

    Raises:
        ConfigError: ``$: invalid YAML: ...``, ``$: invalid JSON: ...`` or ``$.a.b: duplicate key``.
    """
    text = text.lstrip("\ufeff")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text, object_pairs_hook=_pairs)
        except json.JSONDecodeError as e:
            raise ConfigError(f"$: invalid JSON: {e}") from None
        dup = _first_duplicate(data, "$")
        if dup:
            raise ConfigError(f"{dup}: duplicate key")
        return _plain(data)
    loader = StrictSafeLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        where = e.problem_mark or e.context_mark
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ConfigError(f"$: invalid YAML: {_one_line(e.problem or e.context or 'syntax error')}{at}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"$: invalid YAML: {_one_line(str(e))}") from None
    finally:
        loader.dispose()
