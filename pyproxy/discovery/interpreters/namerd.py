"""``io.l5d.namerd.http``: a router's names bound by namerd, over its HTTP streaming API.

As Linkerd's ``StreamingNamerClient``: each (dtab, path) a router binds gets its own watch,
``GET /api/1/bind/<namespace>?path=<path>&dtab=<dtab>&watch=1``, where the dtab is the router's
``dtab`` followed by the request's local dtab (``l5d-ctx-dtab``, ``l5d-dtab``), so namerd binds
``namespace dtab ++ router dtab ++ overrides`` and per-request overrides keep working. Each bound
id in the answers gets one address watch, ``GET /api/1/addr/<namespace>?path=<id>&watch=1``,
shared by every tree that holds it; its documents update the id's live address set, which the
router's clients (and the lane's routes) follow. Every new tree moves :attr:`version` (bind caches
recompute) and runs :attr:`on_change` (the lane forgets its routes).

``dst`` is bound through the proxy's own namers and ``/$/``: ``/$/inet/<host>/<port>`` (a host
name may have several addresses), or, a pyproxy extension, a configured namer's name such as
``/#/io.l5d.fs/namerd`` listing every replica. A watch that fails moves to the next replica at
once; when all failed since the last success it backs off (``retry``: jittered exponential from
``baseSeconds`` to ``maxSeconds``). Until a name's first answer, binding it waits (the router's
``bindingTimeoutMs``); after that, whatever happens to namerd, the last tree and addresses stay.
Watches are bounded (:data:`MAX_WATCHES`, least recently bound out first).
"""

from __future__ import annotations

import json
import logging
import random
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

import trio

from ...errors import NamePending, NamingError
from ...naming.delegation import EXCEPTION, NEG, DelegateTree
from ...naming.dtab import Dentry, Dtab
from ...naming.name import ADDR_NEG, ADDR_PENDING, Address, AddrBound, AddrFailed, AddrVar, Bound
from ...naming.path import Path
from ...naming.tree import Alt, Empty, Fail, Leaf, NameTree, Neg, Union, Weighted
from ..client import ClientError, HttpClient

__all__ = ["NamerdHttpInterpreter", "MAX_WATCHES", "MAX_ADDR_WATCHES", "parse_addr", "parse_tree"]

log = logging.getLogger("pyproxy.namerd.client")

#: Bind watches kept (each a (dtab, path) a router bound recently: one connection to namerd each,
#: and requests choose the dtab with l5d-dtab, so the bound is Linkerd's bindingCache.trees default).
MAX_WATCHES = 1_000
#: Address watches kept (each a bound id of a kept tree; those in use are never dropped).
MAX_ADDR_WATCHES = 10_000
#: How long a watch waits for ``dst`` to have addresses (a host name being resolved) before that
#: counts as a failure.
DST_WAIT = (0.05, 100)
#: A document (one line of a stream) longer than this is a broken stream.
MAX_LINE = 1 << 20
#: namerd's streams are silent between changes: only a closed connection ends one.
STREAM_IDLE = 24 * 3600.0


def parse_addr(doc: Any) -> object:
    """An address state from namerd's JSON (``{"type":"bound","addrs":[...],"meta":{}}``, ...)."""
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "bound":
        addrs = []
        for a in doc.get("addrs") or ():
            meta = a.get("meta") if isinstance(a.get("meta"), dict) else None
            addrs.append(Address(str(a["ip"]), int(a["port"]), meta))
        return AddrBound(tuple(addrs), doc.get("meta") if isinstance(doc.get("meta"), dict) else None)
    if kind == "neg":
        return ADDR_NEG
    if kind == "pending":
        return ADDR_PENDING
    if kind == "failed":
        return AddrFailed(str(doc.get("cause", "")))
    raise ValueError(f"not an address document: {str(doc)[:200]}")


def parse_tree(doc: Any, addr_of: Callable[[Path, object], AddrVar]) -> NameTree:
    """A bound tree from namerd's JSON; ``addr_of(id, state in the document)`` gives each id's live set."""
    if not isinstance(doc, dict):
        raise ValueError(f"not a tree document: {str(doc)[:200]}")
    kind = doc.get("type")
    if kind == "leaf":
        b = doc["bound"]
        bound_id = Path.read(b["id"])
        return Leaf(Bound(bound_id, Path.read(b.get("path") or "/"), addr_of(bound_id, parse_addr(b.get("addr") or {"type": "pending"}))))
    if kind == "union":
        return Union(*(Weighted(float(w["weight"]), parse_tree(w["tree"], addr_of)) for w in doc["union"]))
    if kind == "alt":
        return Alt(*(parse_tree(t, addr_of) for t in doc["alt"]))
    if kind in ("delegate",):
        return parse_tree(doc["delegate"], addr_of)
    if kind == "transformation":
        return parse_tree(doc["tree"], addr_of)
    if kind == "neg":
        return Neg
    if kind == "fail":
        return Fail
    if kind == "empty":
        return Empty
    if kind == "exception":
        raise ValueError(str(doc.get("message")))
    raise ValueError(f"not a tree document: {str(doc)[:200]}")


class _Watch:
    """One stream's state: what it asks, its last answer, its task's scope."""

    __slots__ = ("path", "params", "value", "ready", "scope", "problem", "next_addr")

    def __init__(self, path: str, params: Dict[str, str]) -> None:
        self.path = path
        self.params = params
        self.value: Any = None  # the last answer (a tree, or the address set of an address watch)
        self.ready = trio.Event()
        self.scope = trio.CancelScope()
        self.problem: Optional[str] = None
        self.next_addr = 0


class NamerdHttpInterpreter:
    """One router's ``io.l5d.namerd.http`` interpreter (see the module documentation).

    Args:
        dst_addresses: the namerd replicas' addresses now (``dst`` bound by the proxy's namers).
    """

    def __init__(self, dst_addresses: Callable[[], List[Tuple[str, int]]], dst: str, namespace: str,
                 base_seconds: float = 5.0, max_seconds: float = 600.0, rng: Optional[random.Random] = None) -> None:
        self.dst_addresses = dst_addresses
        self.dst = dst
        self.namespace = namespace
        self.backoff = (base_seconds, max_seconds)
        self.rng = rng or random.Random()
        self.version = 0
        self.on_change: List[Callable[[], None]] = []
        self._binds: "OrderedDict[Tuple[str, Tuple[bytes, ...]], _Watch]" = OrderedDict()
        self._addrs: "OrderedDict[Tuple[bytes, ...], Tuple[_Watch, AddrVar]]" = OrderedDict()
        self._start, self._starts = trio.open_memory_channel[_Watch](float("inf"))
        self._clients: Dict[Tuple[str, int], HttpClient] = {}
        self.reconnects = 0

    # === the interpreter (called synchronously by routers) ===

    def bind(self, dtab: Dtab, path: Path) -> NameTree:
        key = (dtab.show, path.elems)
        w = self._binds.get(key)
        if w is None:
            w = _Watch(f"/api/1/bind/{quote(self.namespace)}", {"path": path.show, "watch": "1", "dtab": dtab.show})
            self._binds[key] = w
            self._start.send_nowait(w)
            while len(self._binds) > MAX_WATCHES:
                _, old = self._binds.popitem(last=False)
                old.scope.cancel()
                # a router may have cached what this watch answered, which nothing follows now:
                # moving the version makes it bind again (and so watch again)
                self.version += 1
        else:
            self._binds.move_to_end(key)
        if w.value is None:
            why = f": {w.problem}" if w.problem else ""
            raise NamePending(f"waiting for namerd ({self.dst}) to bind {path.show} in namespace {self.namespace}{why}", w.ready)
        return w.value  # type: ignore[no-any-return]

    def delegate(self, dtab: Dtab, path: Path) -> DelegateTree:
        """What namerd answered for ``path`` (a delegation needs namerd's namers: only the result
        is shown here)."""
        try:
            tree = self.bind(dtab, path)
        except NamingError as exc:
            return DelegateTree(EXCEPTION, path, Dentry.NOP, error=exc)  # type: ignore[attr-defined]
        from ...naming.delegation import _from_name_tree

        if tree is Neg:
            return DelegateTree(NEG, path, Dentry.NOP)  # type: ignore[attr-defined]
        return _from_name_tree(path, Dentry.NOP, tree)  # type: ignore[attr-defined]

    def addr_var(self, bound_id: Path, seen: object = ADDR_PENDING) -> AddrVar:
        """The live address set of a bound id (one watch per id, shared)."""
        key = bound_id.elems
        hit = self._addrs.get(key)
        if hit is not None:
            self._addrs.move_to_end(key)
            var = hit[1]
        else:
            var = AddrVar()
            w = _Watch(f"/api/1/addr/{quote(self.namespace)}", {"path": bound_id.show, "watch": "1"})
            w.value = var
            self._addrs[key] = (w, var)
            self._start.send_nowait(w)
            self._evict_addrs(key)
        if var.value is ADDR_PENDING and seen is not ADDR_PENDING:
            var.update(seen)  # the bind answer already says where it is: no need to wait for the addr stream
        return var

    def _evict_addrs(self, added: Tuple[bytes, ...]) -> None:
        """Unobserved address watches out, oldest first; never the one just ``added``."""
        if len(self._addrs) <= MAX_ADDR_WATCHES:
            return
        for key, (w, var) in list(self._addrs.items()):
            if len(self._addrs) <= MAX_ADDR_WATCHES:
                return
            if key != added and not var.observed:
                w.scope.cancel()
                del self._addrs[key]
                self.version += 1  # as for a bind watch: cached bindings holding ``var`` bind again

    def state_json(self) -> Dict[str, Any]:
        return {"dst": self.dst, "namespace": self.namespace, "binds": len(self._binds), "addrs": len(self._addrs),
                "reconnects": self.reconnects, "problems": sorted({w.problem for w in self._binds.values() if w.problem})[:10]}

    # === the watches ===

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for w in self._starts:
                nursery.start_soon(self._watch, w)

    def _client(self, addr: Tuple[str, int]) -> HttpClient:
        c = self._clients.get(addr)
        if c is None:
            host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
            c = self._clients[addr] = HttpClient(f"http://{host}:{addr[1]}", timeout=10.0)
        return c

    def _bind_answer(self, w: _Watch, doc: Any) -> None:
        tree = parse_tree(doc, self.addr_var)
        old = w.value
        w.value = tree
        w.problem = None
        w.ready.set()
        if old is None or _key(old) != _key(tree):
            self.version += 1
            for fn in list(self.on_change):
                fn()

    def _addr_answer(self, w: _Watch, doc: Any) -> None:
        w.problem = None
        w.value.update(parse_addr(doc))  # type: ignore[union-attr]

    async def _watch(self, w: _Watch) -> None:
        on_doc = self._addr_answer if isinstance(w.value, AddrVar) else self._bind_answer
        delay = self.backoff[0]
        failures = 0
        waited = 0
        with w.scope:
            while True:
                addrs = self.dst_addresses()
                if not addrs and waited < DST_WAIT[1]:  # dst not resolved yet (DNS): not a failure yet
                    waited += 1
                    await trio.sleep(DST_WAIT[0])
                    continue
                if not addrs:
                    problem = f"{self.dst} has no addresses"
                else:
                    addr = addrs[w.next_addr % len(addrs)]
                    try:
                        got = await self._stream(addr, w, on_doc)
                        if got:
                            delay, failures, waited = self.backoff[0], 0, 0
                        problem = f"namerd at {addr[0]}:{addr[1]} ended the stream"
                    except (ClientError, ValueError, KeyError, TypeError) as exc:
                        problem = f"namerd at {addr[0]}:{addr[1]}: {exc}"
                    w.next_addr += 1
                if w.problem != problem:
                    log.warning("namerd watch %s %s: %s; the last answer stays in use", w.path, w.params["path"], problem)
                w.problem = problem
                self.reconnects += 1
                failures += 1
                if failures >= max(1, len(addrs)):  # every replica tried since the last answer: back off
                    await trio.sleep(delay * (0.5 + self.rng.random() / 2))
                    delay = min(delay * 2, self.backoff[1])
                    failures = 0

    async def _stream(self, addr: Tuple[str, int], w: _Watch, on_doc: Callable[[_Watch, Any], None]) -> bool:
        """Follow one stream until it ends; True when it gave at least one document."""
        got = False
        pending = b""
        stream = self._client(addr).stream(w.path, w.params, idle_timeout=STREAM_IDLE)
        try:
            async for piece in stream:
                if not isinstance(piece, bytes):
                    if piece.status != 200:  # type: ignore[attr-defined]
                        raise ClientError(f"answered {piece.status}")  # type: ignore[attr-defined]
                    continue
                pending += piece
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if not line.strip():
                        continue
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        raise ClientError(line.decode("utf-8", "replace")[:300]) from None  # namerd's error line
                    on_doc(w, doc)
                    got = True
                if len(pending) > MAX_LINE:
                    raise ClientError(f"a document longer than {MAX_LINE} bytes")
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return got


def _key(tree: NameTree) -> Tuple[Any, ...]:
    kind = type(tree)
    if kind is Leaf:
        v = tree.value  # type: ignore[attr-defined]
        return ("leaf", v.id.elems, v.residual.elems)
    if kind is Union:
        return ("union",) + tuple((w.weight, _key(w.tree)) for w in tree.weighted)  # type: ignore[attr-defined]
    if kind is Alt:
        return ("alt",) + tuple(_key(t) for t in tree.trees)  # type: ignore[attr-defined]
    return (repr(tree),)
