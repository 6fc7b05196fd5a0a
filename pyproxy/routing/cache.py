"""A bounded cache (least recently used out first), for the per-name state of a router.

Names come from requests (hosts, paths, ``l5d-dtab`` overrides), so every cache keyed by a name
must be bounded or a client could grow the proxy without limit. Linkerd's ``bindingCache`` sizes
them (``paths``, ``trees``, ``bounds``, ``clients``); this is the structure behind each.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Hashable, Iterator, Optional, Tuple, TypeVar

__all__ = ["Lru"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most ``capacity`` entries; ``on_evict(key, value)`` runs for each entry pushed out."""

    __slots__ = ("capacity", "_data", "_on_evict")

    def __init__(self, capacity: int, on_evict: Optional[Callable[[K, V], None]] = None) -> None:
        self.capacity = max(1, capacity)
        self._data: "OrderedDict[K, V]" = OrderedDict()
        self._on_evict = on_evict

    def get(self, key: K) -> Optional[V]:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            old_key, old = self._data.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old_key, old)

    def pop(self, key: K) -> Optional[V]:
        return self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def items(self) -> Iterator[Tuple[K, V]]:
        return iter(list(self._data.items()))

    def values(self) -> Iterator[V]:
        return iter(list(self._data.values()))

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data
