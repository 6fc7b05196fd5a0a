"""``io.l5d.httpController``: namerd's HTTP API, as namerd serves it (its ``HttpControlService``).

Dtabs: ``GET /api/1/dtabs`` (the namespaces), ``GET|HEAD /api/1/dtabs/<ns>`` (JSON or
``application/dtab`` by ``Accept``; the version in ``Etag``), ``POST`` (create: 204, 409),
``PUT`` (replace, or with ``If-Match`` compare-and-swap: 204, 404, 412), ``DELETE`` (204, 404). A
body that does not parse is 400 with Finagle's message and nothing is stored; a body over
:data:`~.http.MAX_BODY` is 413; a store that cannot be reached is 503 (nothing written).

Names: ``GET /api/1/bind/<ns>?path=&dtab=`` (the bound tree), ``/api/1/addr/<ns>?path=`` (a bound
id's addresses), ``/api/1/resolve/<ns>?path=&dtab=`` (both: one branch's addresses),
``/api/1/delegate/<ns>?path=&dtab=`` (the delegation tree), ``/api/1/bound-names``.

``watch=true`` (or ``1``) turns dtabs, bind, addr, resolve and bound-names into chunked streams of
JSON documents, one per change, each followed by a newline, a document equal to the previous one
never sent twice. Streams stay open while the store is down (the last known state stands).
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any, Awaitable, Callable, List, Optional, Tuple
from urllib.parse import unquote

import trio

from ..errors import DtabError, NamePending, PathError, PyproxyError
from ..naming.dtab import Dtab
from ..naming.name import ADDR_PENDING, AddrVar, addr_json
from ..naming.path import Path
from ..naming.tree import Alt, Leaf, NameTree, Union
from .codec import JSON, accept, codec_for, document, leaves, read_dtab, tree_json, tree_key, write_dtab
from .core import Namerd
from .http import ApiRequest, Responder
from .store import NAMESPACE_RE, StoreError, version_string

__all__ = ["HttpController", "SETTLE_SECONDS"]

log = logging.getLogger("pyproxy.namerd")

PREFIX = "/api/1"
#: How long a bound tree waits for its leaves' addresses to leave "pending" before it is written
#: (namerd renders a leaf once its address set is known).
SETTLE_SECONDS = 5.0
_TEXT = "text/plain"


class HttpController:
    """The API of one namerd (see the module documentation)."""

    def __init__(self, namerd: Namerd, rng: Optional[random.Random] = None) -> None:
        self.namerd = namerd
        self.store = namerd.store
        self.rng = rng or random.Random()

    async def __call__(self, req: ApiRequest, rsp: Responder) -> None:
        path = req.path
        if path == PREFIX + "/dtabs" or path.startswith(PREFIX + "/dtabs/"):
            ns = unquote(path[len(PREFIX + "/dtabs/"):]) if path.startswith(PREFIX + "/dtabs/") else ""
            return await self._dtabs(req, rsp, ns)
        if path == PREFIX + "/bound-names" and req.method == "GET":
            return await self._bound_names(req, rsp)
        for name, handler in (("bind", self._bind), ("addr", self._addr), ("resolve", self._resolve), ("delegate", self._delegate)):
            base = f"{PREFIX}/{name}"
            if path == base or path.startswith(base + "/"):
                ns = unquote(path[len(base) + 1:]) if path.startswith(base + "/") else None
                try:
                    target = Path.read(req.query.get("path", "null"))
                except (DtabError, PathError) as exc:
                    return await rsp.whole(400, f"Invalid path: {req.query.get('path', 'null')} / {exc}".encode(), _TEXT)
                if not ns and name != "delegate":
                    return await rsp.whole(404)
                return await handler(req, rsp, ns, target)
        await rsp.whole(404)

    # === dtabs ===

    async def _dtabs(self, req: ApiRequest, rsp: Responder, ns: str) -> None:
        m = req.method
        if not ns:
            return await self._list(req, rsp)
        if not NAMESPACE_RE.match(ns):
            return await rsp.whole(400, f"invalid dtab namespace {ns}: a namespace is letters, digits, '-', '_' or '.'\n".encode(), _TEXT)
        if m == "GET" and req.flag("watch"):
            return await self._watch_dtab(req, rsp, ns)
        try:
            if m in ("GET", "HEAD"):
                self.store.check_available()
                found = self.store.get(ns)
                if found is None:
                    return await rsp.whole(404)
                mt, codec = accept(req.header("accept"))
                etag = [("Etag", version_string(found.version))]
                body = b"" if m == "HEAD" else write_dtab(found.dtab, codec)
                return await rsp.whole(200, body, mt if m == "GET" else None, etag)
            if m in ("PUT", "POST"):
                ctype = req.header("content-type") or ""
                codec = codec_for(ctype)
                if codec is None:
                    return await rsp.whole(400, f'Invalid Content-Type "{ctype}". '.encode(), _TEXT)
                try:
                    dtab = read_dtab(req.body, codec)
                except (DtabError, PathError) as exc:
                    return await rsp.whole(400, str(exc).encode(), _TEXT)
                self.store.check_available()
                if m == "POST":
                    await self.store.create(ns, dtab)
                else:
                    stamp = req.header("if-match")
                    if stamp is None:
                        await self.store.put(ns, dtab)
                    else:
                        await self.store.update(ns, dtab, _unbase64(stamp))
                return await rsp.whole(204)
            if m == "DELETE":
                self.store.check_available()
                await self.store.delete(ns)
                return await rsp.whole(204)
        except StoreError as exc:
            body = b"" if exc.status in (404, 409, 412) else str(exc).encode()  # namerd's: empty
            return await rsp.whole(exc.status, body, _TEXT if body else None)
        await rsp.whole(404)

    async def _list(self, req: ApiRequest, rsp: Responder) -> None:
        if req.flag("watch"):
            return await self._stream(rsp, JSON, lambda: document(self.store.namespaces()), self._store_change)
        try:
            self.store.check_available()
        except StoreError as exc:
            return await rsp.whole(exc.status, str(exc).encode(), _TEXT)
        await rsp.whole(200, document(self.store.namespaces()), JSON)

    async def _watch_dtab(self, req: ApiRequest, rsp: Responder, ns: str) -> None:
        mt, codec = accept(req.header("accept"))

        def render() -> Optional[Tuple[Any, bytes]]:
            found = self.store.get(ns)
            if found is None:
                return None  # nothing is written while the namespace does not exist
            return (found.version, found.dtab.show), write_dtab(found.dtab, codec)

        await self._stream(rsp, mt, render, self._store_change)

    async def _store_change(self, generation: int) -> None:
        await self.store.changes.wait(generation)

    async def _stream(self, rsp: Responder, ctype: str, render: Callable[[], Any],
                      changed: Callable[[int], Awaitable[None]]) -> None:
        """A watch: ``render()`` gives bytes, or (dedup key, bytes), or None (nothing yet); it is
        written when it differs from the last one written, then the stream waits for a change."""
        out = await rsp.stream(200, ctype)
        last: Any = object()
        changes = self.store.changes
        while True:
            gen = changes.generation
            got = render()
            if got is not None:
                key, data = got if isinstance(got, tuple) else (got, got)
                if key != last:
                    await out.send(data)
                    last = key
            await changed(gen)

    # === names ===

    def _extra(self, req: ApiRequest) -> Dtab:
        return Dtab.read(req.query.get("dtab") or "")

    async def _bind(self, req: ApiRequest, rsp: Responder, ns: Optional[str], path: Path) -> None:
        assert ns is not None
        try:
            extra = self._extra(req)
        except (DtabError, PathError) as exc:
            return await rsp.whole(400, f"Invalid dtab: {exc}".encode(), _TEXT)
        watch = req.flag("watch")
        out = await rsp.stream(200, JSON) if watch else None
        last: Any = object()
        changes = self.namerd.changes
        while True:
            gen = changes.generation
            try:
                entry = self.namerd.binding(ns, extra, path)
            except NamePending as pending:
                await _pending(pending, changes, gen)
                continue
            except PyproxyError as exc:
                return await _failed(rsp, out, exc)
            tree = entry.value
            if entry.key is None:
                entry.key = tree_key(tree)  # type: ignore[arg-type]
            if entry.key != last:
                data = entry.doc
                if data is None:  # rendered once per binding and change, whoever watches it
                    await _settle(tree)  # type: ignore[arg-type]
                    data = document(tree_json(tree))  # type: ignore[arg-type]
                    if entry.generation == changes.generation and not _any_pending(tree):  # type: ignore[arg-type]
                        entry.doc = data
                if out is None:
                    return await rsp.whole(200, data, JSON)
                await out.send(data)
                last = entry.key
            await changes.wait(gen)

    async def _addr_loop(self, rsp: Responder, watch: bool, current: Callable[[], Tuple[Any, Optional[AddrVar]]]) -> None:
        """Writes the address state ``current()`` gives (state, live set) whenever it changes;
        pending states are never written (namerd waits until the set is known)."""
        out = await rsp.stream(200, JSON) if watch else None
        last: Any = object()
        changes = self.namerd.changes
        while True:
            gen = changes.generation
            try:
                state, var = current()
            except NamePending as pending:
                await _pending(pending, changes, gen)
                continue
            except PyproxyError as exc:
                return await _failed(rsp, out, exc)
            version = var.version if var is not None else 0
            if state is not ADDR_PENDING:
                body = addr_json(state)
                if body != last:
                    data = document(body)
                    if out is None:
                        return await rsp.whole(200, data, JSON)
                    await out.send(data)
                    last = body
            if var is None:
                await changes.wait(gen)
            else:
                await _first(lambda: changes.wait(gen), lambda: _var_changed(var, version))

    async def _addr(self, req: ApiRequest, rsp: Responder, ns: Optional[str], path: Path) -> None:
        def current() -> Tuple[Any, Optional[AddrVar]]:
            found = self.namerd.addr(path)
            return (found.value, found) if isinstance(found, AddrVar) else (found, None)

        await self._addr_loop(rsp, req.flag("watch"), current)

    async def _resolve(self, req: ApiRequest, rsp: Responder, ns: Optional[str], path: Path) -> None:
        assert ns is not None
        try:
            extra = self._extra(req)
        except (DtabError, PathError) as exc:
            return await rsp.whole(400, f"Invalid dtab: {exc}".encode(), _TEXT)
        from ..naming.name import ADDR_NEG

        def current() -> Tuple[Any, Optional[AddrVar]]:
            picked = _pick(self.namerd.bind(ns, extra, path), self.rng)
            if picked is None:
                return ADDR_NEG, None
            found = self.namerd.addr(picked)
            return (found.value, found) if isinstance(found, AddrVar) else (found, None)

        await self._addr_loop(rsp, req.flag("watch"), current)

    async def _delegate(self, req: ApiRequest, rsp: Responder, ns: Optional[str], path: Path) -> None:
        try:
            extra = self._extra(req)
        except (DtabError, PathError) as exc:
            return await rsp.whole(400, f"Invalid dtab: {exc}".encode(), _TEXT)
        try:
            tree = self.namerd.delegate(ns, extra, path)
        except PyproxyError as exc:
            return await rsp.whole(500, f"{exc}\n".encode(), _TEXT)
        await rsp.whole(200, json.dumps(tree.to_json(), separators=(",", ":")).encode(), JSON)

    async def _bound_names(self, req: ApiRequest, rsp: Responder) -> None:
        if req.flag("watch"):
            return await self._stream(rsp, JSON, lambda: document(self.namerd.bound_names()), self.namerd.changes.wait)
        await rsp.whole(200, document(self.namerd.bound_names()), JSON)


def _unbase64(stamp: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(stamp.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b"\xff-not-a-version"  # matches no stored version: 412


def _pick(tree: NameTree, rng: random.Random) -> Optional[Path]:
    """One bound id of a tree (namerd's resolve: a weighted random Union branch, Alt's first)."""
    if type(tree) is Leaf:
        return tree.value.id  # type: ignore[attr-defined,no-any-return]
    if type(tree) is Union:
        ws = tree.weighted  # type: ignore[attr-defined]
        total = sum(w.weight for w in ws)
        x = rng.random() * total
        for w in ws:
            x -= w.weight
            if x < 0:
                return _pick(w.tree, rng)
        return _pick(ws[-1].tree, rng) if ws else None
    if type(tree) is Alt:
        for t in tree.trees:  # type: ignore[attr-defined]
            p = _pick(t, rng)
            if p is not None:
                return p
    return None


async def _failed(rsp: Responder, out: Any, exc: PyproxyError) -> None:
    """A binding or address lookup failed: 500 with the message, or, on a stream already open, the
    message as its last line (namerd's error line) and the end of the stream."""
    if out is None:
        return await rsp.whole(500, f"{exc}\n".encode(), _TEXT)
    await out.send(f"{exc}\n".encode())
    await rsp.end()


async def _first(*waits: Callable[[], Awaitable[Any]]) -> None:
    """Return when the first of ``waits`` returns (the others are cancelled)."""
    async with trio.open_nursery() as nursery:
        for w in waits:
            async def run(w: Callable[[], Awaitable[Any]] = w) -> None:
                await w()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)


async def _pending(pending: NamePending, changes: Any, gen: int) -> None:
    """Wait until a namer that was still learning a name knows it, or anything changes."""
    ready = pending.ready
    if ready.is_set():  # type: ignore[attr-defined]
        await trio.sleep(0.05)  # known already, yet still pending: do not spin
        return
    await _first(ready.wait, lambda: changes.wait(gen))  # type: ignore[attr-defined]


async def _var_changed(var: AddrVar, seen: int) -> None:
    """Return once ``var`` changed after its version ``seen``."""
    if var.version != seen:
        return
    event = trio.Event()
    stop = var.observe(lambda _: event.set())
    try:
        if var.version == seen:
            await event.wait()
    finally:
        stop()


def _any_pending(tree: NameTree) -> bool:
    return any(b.addr.value is ADDR_PENDING for b in leaves(tree))


async def _settle(tree: NameTree) -> None:
    """Wait (at most :data:`SETTLE_SECONDS`) until no leaf's address set is pending."""
    pending: List[AddrVar] = [b.addr for b in leaves(tree) if b.addr.value is ADDR_PENDING]
    if not pending:
        return
    with trio.move_on_after(SETTLE_SECONDS):
        for var in pending:
            while var.value is ADDR_PENDING:
                await _var_changed(var, var.version)
