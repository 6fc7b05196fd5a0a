"""The metrics tree: counters, gauges and histograms keyed by scope tuples; exports and subtrees.

Owns registration (once per scope), histogram rotation on an injectable clock, collectors of live
gauges, and the two JSON shapes of ``/admin/metrics.json`` (flat names, and ``tree=true`` nodes).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from .histogram import Histogram, Number, Summary

__all__ = ["Counter", "Gauge", "Registry", "Node", "Scope", "Key", "Collector", "tree_of"]

Key = Tuple[str, ...]


def _split(name: str) -> Key:
    return tuple(p for p in name.split("/") if p)


class Counter:
    """A monotonic count. Per request: ``c.incr()``."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def incr(self, n: int = 1) -> None:
        self.value += n


class Gauge:
    """A value read when metrics are exported (``fn()``)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Number]) -> None:
        self.fn = fn

    @property
    def value(self) -> Optional[Number]:
        try:
            return self.fn()
        except Exception:  # noqa: BLE001 - a broken gauge must not break the export
            return None


Metric = Union[Counter, Gauge, Histogram]
Collector = Callable[[], Iterable[Tuple[Key, Number]]]


class Registry:
    """Every metric of the process, keyed by its scope tuple, plus collectors of live gauges.

    Args:
        clock: seconds, monotonic (injectable: tests move time by hand).
        interval: seconds between histogram snapshots (Linkerd: 60).
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, interval: float = 60.0) -> None:
        self.clock = clock
        self.interval = interval
        self.metrics: Dict[Key, Metric] = {}
        self._histograms: Dict[int, Histogram] = {}  # by id: forgetting one is O(1)
        self._collectors: List[Collector] = []
        self._last = clock()

    # === registration (once per scope, never per request) ===

    def scope(self, *elems: str) -> "Scope":
        """A scope whose elements are kept whole (an id containing ``/`` stays one element)."""
        return Scope(self, tuple(elems))

    def _get(self, key: Key, kind: type, make: Callable[[], Metric]) -> Metric:
        m = self.metrics.get(key)
        if m is None:
            m = self.metrics[key] = make()
            if kind is Histogram:
                self._histograms[id(m)] = m  # type: ignore[assignment]
        elif type(m) is not kind:
            raise ValueError(f"{'/'.join(key)} is already a {type(m).__name__.lower()}")
        return m

    def counter(self, key: Key) -> Counter:
        return self._get(key, Counter, Counter)  # type: ignore[return-value]

    def histogram(self, key: Key) -> Histogram:
        return self._get(key, Histogram, Histogram)  # type: ignore[return-value]

    def gauge(self, key: Key, fn: Callable[[], Number]) -> Gauge:
        """Register (or replace) the gauge at ``key``."""
        old = self.metrics.get(key)
        if old is not None and type(old) is not Gauge:
            raise ValueError(f"{'/'.join(key)} is already a {type(old).__name__.lower()}")
        g = self.metrics[key] = Gauge(fn)
        return g

    def add_collector(self, fn: Collector) -> None:
        """``fn()`` yields ``(key, value)`` gauges each time metrics are read (live objects)."""
        self._collectors.append(fn)

    def remove(self, prefix: Key) -> None:
        """Forget every metric under ``prefix`` (a scan of every metric: see :meth:`forget`)."""
        n = len(prefix)
        self.forget([k for k in self.metrics if k[:n] == prefix])

    def forget(self, keys: Iterable[Key]) -> None:
        """Forget the metrics at ``keys`` (those of a closed client, an idle service)."""
        for key in keys:
            m = self.metrics.pop(key, None)
            if type(m) is Histogram:
                self._histograms.pop(id(m), None)

    # === snapshots ===

    def tick(self) -> bool:
        """Rotate every histogram if an interval has passed since the last rotation."""
        now = self.clock()
        if now - self._last < self.interval:
            return False
        self._last += self.interval * math.floor((now - self._last) / self.interval)
        self.snapshot()
        return True

    def snapshot(self) -> None:
        """Rotate every histogram now."""
        for h in self._histograms.values():
            h.rotate()

    # === export ===

    def items(self) -> Iterator[Tuple[Key, Union[Number, Summary], str]]:
        """``(key, value, kind)`` sorted by key; kind is counter, gauge or stat (snapshot summary)."""
        rows: Dict[Key, Tuple[Union[Number, Summary], str]] = {}
        for key, m in self.metrics.items():
            t = type(m)
            if t is Counter:
                rows[key] = (m.value, "counter")  # type: ignore[union-attr]
            elif t is Histogram:
                rows[key] = (m.snapshot, "stat")  # type: ignore[union-attr]
            else:
                v = m.value  # type: ignore[union-attr]
                if v is not None:
                    rows[key] = (v, "gauge")
        for fn in self._collectors:
            try:
                pairs = list(fn())
            except Exception:  # noqa: BLE001 - live objects may be mid-change; skip this read
                continue
            for key, v in pairs:
                prev = rows.get(key)
                # Several live objects may share one name (clients of one id): their values add up.
                rows[key] = ((prev[0] + v) if prev is not None and prev[1] == "gauge" else v, "gauge")  # type: ignore[operator]
        for key in sorted(rows):
            v, kind = rows[key]
            yield key, v, kind

    def tree(self) -> "Node":
        return tree_of(self.items())


def tree_of(rows: Iterable[Tuple[Key, Union[Number, Summary], str]]) -> "Node":
    """The exported tree of ``(key, value, kind)`` rows (as :meth:`Registry.items` yields them)."""
    root = Node()
    for key, v, kind in rows:
        node = root
        for e in key:
            node = node.children.setdefault(e, Node())
        node.kind, node.value = kind, v
    return root


class Node:
    """One node of the exported tree: an optional metric and named children."""

    __slots__ = ("kind", "value", "children")

    def __init__(self) -> None:
        self.kind: Optional[str] = None
        self.value: Union[Number, Summary, None] = None
        self.children: Dict[str, Node] = {}

    def resolve(self, query: str) -> Optional["Node"]:
        """The sub-tree named by ``query`` (``rt/out/client/#/io.l5d.fs/x``): at each level the
        longest run of ``/``-separated parts that names a child wins (ids hold slashes)."""
        parts = [p for p in query.split("/") if p]
        node: Node = self
        i = 0
        while i < len(parts):
            for j in range(len(parts), i, -1):
                child = node.children.get("/".join(parts[i:j]))
                if child is not None:
                    node, i = child, j
                    break
            else:
                return None
        return node

    def flat(self, prefix: str = "") -> Dict[str, Number]:
        """``{"a/b/c": value}``; a stat expands to ``name.count`` (and the rest when count > 0)."""
        out: Dict[str, Number] = {}
        self._flat(prefix, out)
        return out

    def _flat(self, name: str, out: Dict[str, Number]) -> None:
        if self.kind == "stat":
            for field, v in self.value.items():  # type: ignore[union-attr]
                out[f"{name}.{field}"] = v
        elif self.kind is not None:
            out[name] = self.value  # type: ignore[assignment]
        for k, child in self.children.items():
            child._flat(f"{name}/{k}" if name else k, out)

    def nested(self) -> Dict[str, object]:
        """Linkerd's ``tree=true`` JSON: ``{"counter": n}``, ``{"gauge": x}`` or ``{"stat.count": n,
        "stat.p50": ...}`` at a node, beside its children by name."""
        out: Dict[str, object] = {}
        if self.kind == "stat":
            for field, v in self.value.items():  # type: ignore[union-attr]
                out[f"stat.{field}"] = v
        elif self.kind is not None:
            out[self.kind] = self.value
        for k, child in self.children.items():
            out[k] = child.nested()
        return out


class Scope:
    """A prefix of the tree; metric names below it may contain ``/`` (``status/200``)."""

    __slots__ = ("registry", "prefix")

    def __init__(self, registry: Registry, prefix: Key) -> None:
        self.registry = registry
        self.prefix = prefix

    def scope(self, *elems: str) -> "Scope":
        return Scope(self.registry, self.prefix + tuple(elems))

    def key(self, name: str) -> Key:
        """The registry key of ``name`` below this scope."""
        return self.prefix + _split(name)

    def counter(self, name: str) -> Counter:
        return self.registry.counter(self.prefix + _split(name))

    def histogram(self, name: str) -> Histogram:
        return self.registry.histogram(self.prefix + _split(name))

    def gauge(self, name: str, fn: Callable[[], Number]) -> Gauge:
        return self.registry.gauge(self.prefix + _split(name), fn)
