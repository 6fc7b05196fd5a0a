"""namerd's name interpreter: a namespace's stored dtab, then namerd's namers, then ``/$/``.

:class:`Namerd` binds ``namespace dtab ++ the caller's dtab`` through the configured namers
(Linkerd's ``ConfiguredDtabNamer``), resolves a bound id to its live address set, and explains
delegations. Bindings are cached per (namespace, caller's dtab, path) and computed once per
*generation*: :attr:`Namerd.changes` moves whenever the store's mirror or a namer's answers may
have changed, so a thousand watches of one name cost one binding per change, and every watch wakes
once per change (never polled).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Callable, List, Optional, Sequence, Tuple, Union as TUnion

import trio

from ..errors import NamePending, NamingError, PyproxyError
from ..naming.binding import ConfiguredNamersInterpreter, bind
from ..naming.delegation import DelegateTree
from ..naming.dtab import Dtab
from ..naming.name import ADDR_NEG, AddrBound, AddrVar, Bound
from ..naming.namer import Namer
from ..naming.path import Path
from ..naming.system import SystemNamer
from ..naming.tree import Empty, Fail, Leaf, NameTree, Neg
from .store import Changes, DtabStore

__all__ = ["Namerd", "MAX_BINDINGS"]

#: Bindings (and address lookups) kept, each per (namespace, dtab, path) of a recent request.
MAX_BINDINGS = 20_000
#: How often the namers' change counters are compared (their answers change the bindings).
NAMER_POLL_SECONDS = 0.1

_Key = Tuple[str, str, Tuple[bytes, ...]]


class _Cached:
    __slots__ = ("generation", "value", "key", "doc")

    def __init__(self, generation: int, value: object) -> None:
        self.generation = generation
        self.value = value  # a NameTree, or the PyproxyError binding raised
        # what the API made of it, once for every watch of this binding: its identity and document
        self.key: object = None
        self.doc: Optional[bytes] = None


class Namerd:
    """The interpreter behind namerd's interfaces (see the module documentation)."""

    def __init__(self, store: DtabStore, namers: Sequence[Tuple[Path, Namer]], system: SystemNamer,
                 namer_versions: Callable[[], object] = lambda: 0) -> None:
        self.store = store
        self.namers = list(namers)
        self.interpreter = ConfiguredNamersInterpreter(namers, system)
        self.namer_versions = namer_versions
        self.changes = Changes()
        self._binds: "OrderedDict[_Key, _Cached]" = OrderedDict()
        self._dtabs: "OrderedDict[Tuple[str, str], Tuple[int, Dtab]]" = OrderedDict()
        self.bindings_computed = 0  # binds actually run (the rest came from the cache)

    # === binding ===

    def dtab(self, ns: str, extra: Dtab) -> Dtab:
        """``namespace dtab ++ extra`` (a missing namespace is an empty dtab), kept per generation
        so its lookup index is built once."""
        key = (ns, extra.show)
        gen = self.changes.generation
        hit = self._dtabs.get(key)
        if hit is not None and hit[0] == gen:
            return hit[1]
        stored = self.store.get(ns)
        base = stored.dtab if stored is not None else Dtab()
        dtab = base.concat(extra) if extra.dentries else base  # type: ignore[attr-defined]
        self._dtabs[key] = (gen, dtab)
        self._dtabs.move_to_end(key)
        if len(self._dtabs) > MAX_BINDINGS:
            self._dtabs.popitem(last=False)
        return dtab

    def bind(self, ns: str, extra: Dtab, path: Path) -> NameTree:
        """The bound tree of ``path`` in namespace ``ns`` with ``extra`` appended (cached).

        Raises:
            NamePending: a namer is still learning a name (wait on its ``ready``, or on a change).
            NamingError, DtabError: binding failed.
        """
        return self.binding(ns, extra, path).value  # type: ignore[return-value]

    def binding(self, ns: str, extra: Dtab, path: Path) -> "_Cached":
        """:meth:`bind`'s cache entry (its ``value`` a tree; ``key`` and ``doc`` for the API)."""
        key = (ns, extra.show, path.elems)
        gen = self.changes.generation
        hit = self._binds.get(key)
        if hit is None or hit.generation != gen:
            try:
                value: object = self.interpreter.bind(self.dtab(ns, extra), path)
            except NamePending:
                raise  # not an answer: the caller waits for the namer, then binds again
            except PyproxyError as exc:
                value = exc
            self.bindings_computed += 1
            hit = _Cached(gen, value)
            self._binds[key] = hit
            if len(self._binds) > MAX_BINDINGS:
                self._binds.popitem(last=False)
        self._binds.move_to_end(key)
        if isinstance(hit.value, BaseException):
            raise hit.value
        return hit

    def addr(self, bound_id: Path) -> TUnion[AddrVar, object]:
        """The live address set of a bound id (``/#/io.l5d.fs/world``), or a fixed state (neg,
        an empty set) when the id binds to no leaf.

        Raises:
            NamePending: the namer is still learning the name.
            NamingError: the id does not bind to one concrete name.
        """
        tree = bind(self.interpreter.lookup_namers, Leaf(bound_id))
        if type(tree) is Leaf and isinstance(tree.value, Bound):  # type: ignore[attr-defined]
            return tree.value.addr  # type: ignore[attr-defined]
        if tree is Empty:
            return AddrBound(())
        if tree is Neg:
            return ADDR_NEG
        if tree is Fail:
            raise NamingError("name tree failed")
        raise NamingError(f"{bound_id.show} is not a concrete bound id")

    def delegate(self, ns: Optional[str], extra: Dtab, path: Path) -> DelegateTree:
        dtab = self.dtab(ns, extra) if ns is not None else extra
        return self.interpreter.delegate(dtab, path)

    def bound_names(self) -> List[str]:
        """The concrete names the namers can enumerate (io.l5d.fs: one per file)."""
        out = set()
        for prefix, namer in self.namers:
            root = getattr(namer, "root", None)
            if not isinstance(root, str):
                continue
            for dirpath, _, files in os.walk(root):
                rel = os.path.relpath(dirpath, root)
                for f in files:
                    parts = [p for p in (rel.split(os.sep) if rel != "." else []) + [f]]
                    out.add((prefix + Path.read("/" + "/".join(parts))).show if all(parts) else prefix.show)
        return sorted(out)

    # === keeping current ===

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        """Move :attr:`changes` with the store's mirror and the namers' answers (until cancelled)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._follow_store)
            nursery.start_soon(self._follow_namers)
            task_status.started()

    async def _follow_store(self) -> None:
        changes = self.store.changes
        while True:
            gen = changes.generation
            await changes.wait(gen)
            self.changes.bump()

    async def _follow_namers(self) -> None:
        last = self.namer_versions()
        while True:
            await trio.sleep(NAMER_POLL_SECONDS)
            now = self.namer_versions()
            if now != last:
                last = now
                self.changes.bump()
