"""``io.l5d.etcd``: dtabs in etcd's v2 keys API, as namerd keeps them.

Each namespace is the key ``<pathPrefix>/<ns>`` holding the dtab's text; its version is the key's
``modifiedIndex`` (the ``Etag`` is the base64 of its decimal digits). ``create`` is a put with
``prevExist=false`` (412 "key exists": 409), ``update`` a compare-and-swap with ``prevIndex`` (412
"compare failed": the version is stale), ``delete`` a delete (404: the namespace does not exist).

The mirror: one recursive listing of the prefix, then one recursive wait-watch from the index after
it (``?wait=true&recursive=true&waitIndex=N``), each event applied in order. An outdated index
(etcd keeps the last 1,000 events), a watch silent for :data:`WATCH_SECONDS`, or a lost connection
re-lists. While etcd cannot be reached the store is unavailable (503) and re-tries with a backoff.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote, urlencode

import trio

from ...discovery.client import ClientError, HttpClient
from ...naming.dtab import Dtab
from ..store import DtabStore, NamespaceExists, NamespaceMissing, StoreUnavailable, VersionedDtab, VersionMismatch

__all__ = ["EtcdStore"]

log = logging.getLogger("pyproxy.namerd")

#: A wait-watch that saw nothing for this long is re-issued after a re-list.
WATCH_SECONDS = 30.0
BACKOFF = (0.2, 5.0)

_DATA_ACTIONS = ("set", "create", "compareAndSwap", "update", "get")
_GONE_ACTIONS = ("delete", "compareAndDelete", "expire")


class _EtcdError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class EtcdStore(DtabStore):
    kind = "io.l5d.etcd"

    def __init__(self, base_url: str, prefix: str, rng: Optional[random.Random] = None) -> None:
        super().__init__()
        self.client = HttpClient(base_url, timeout=10.0)
        self.watch_client = HttpClient(base_url, timeout=WATCH_SECONDS)
        self.prefix = "/" + prefix.strip("/")
        self.rng = rng or random.Random()

    def _path(self, ns: str = "") -> str:
        return "/v2/keys" + quote(self.prefix + ("/" + ns if ns else ""))

    async def _call(self, client: HttpClient, method: str, path: str, params: Optional[Dict[str, str]] = None,
                    form: Optional[Dict[str, str]] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """(body, headers) of an etcd answer; raises :class:`_EtcdError` for its errors and
        :class:`ClientError` when it cannot be reached."""
        body = urlencode(form).encode() if form is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
        rsp = await client.request(method, path, params, headers, body)
        try:
            doc = json.loads(rsp.body) if rsp.body else {}
        except ValueError:
            raise ClientError(f"etcd answered {rsp.status} with a body that is not JSON") from None
        if not isinstance(doc, dict):
            raise ClientError(f"etcd answered {rsp.status} with an unexpected body")
        if rsp.status >= 400:
            raise _EtcdError(rsp.status, int(doc.get("errorCode") or 0), str(doc.get("message") or rsp.status))
        hdrs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in rsp.headers}
        return doc, hdrs

    async def _write(self, method: str, ns: str, params: Optional[Dict[str, str]], form: Optional[Dict[str, str]]) -> Dict[str, Any]:
        try:
            doc, _ = await self._call(self.client, method, self._path(ns), params, form)
        except ClientError as exc:
            self.unhealthy(f"etcd: {exc}")
            raise StoreUnavailable(f"dtab store io.l5d.etcd unavailable: {exc}") from None
        self._apply(doc)
        return doc

    # === writes ===

    async def create(self, ns: str, dtab: Dtab) -> None:
        try:
            await self._write("PUT", ns, {"prevExist": "false"}, {"value": dtab.show})
        except _EtcdError as exc:
            if exc.code == 105:  # Key already exists
                raise NamespaceExists(ns) from None
            raise StoreUnavailable(f"etcd: {exc}") from None

    async def update(self, ns: str, dtab: Dtab, version: bytes) -> None:
        try:
            index = int(version.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise VersionMismatch() from None
        try:
            await self._write("PUT", ns, {"prevIndex": str(index)}, {"value": dtab.show})
        except _EtcdError as exc:
            if exc.code == 101:  # Compare failed
                raise VersionMismatch() from None
            if exc.code == 100:  # Key not found
                raise NamespaceMissing(ns) from None
            raise StoreUnavailable(f"etcd: {exc}") from None

    async def put(self, ns: str, dtab: Dtab) -> None:
        try:
            await self._write("PUT", ns, None, {"value": dtab.show})
        except _EtcdError as exc:
            raise StoreUnavailable(f"etcd: {exc}") from None

    async def delete(self, ns: str) -> None:
        try:
            await self._write("DELETE", ns, None, None)
        except _EtcdError as exc:
            if exc.code == 100:
                raise NamespaceMissing(ns) from None
            raise StoreUnavailable(f"etcd: {exc}") from None

    # === the mirror ===

    def _namespace(self, key: str) -> Optional[str]:
        head = self.prefix + "/"
        if not key.startswith(head):
            return None
        ns = key[len(head):]
        return ns if ns and "/" not in ns else None

    def _value(self, ns: str, node: Dict[str, Any]) -> Optional[VersionedDtab]:
        if node.get("dir") or not isinstance(node.get("value"), str):
            return None
        dtab = self.parse(ns, node["value"])
        if dtab is None:
            return None
        index = int(node.get("modifiedIndex") or 0)
        return VersionedDtab(dtab, str(index).encode(), index)

    def _apply(self, doc: Dict[str, Any]) -> int:
        """Apply one event (or a write's answer) to the mirror; returns its index."""
        node = doc.get("node") or {}
        index = int(node.get("modifiedIndex") or 0)
        ns = self._namespace(str(node.get("key") or ""))
        if ns is None:
            return index
        action = doc.get("action")
        if action in _GONE_ACTIONS:
            self.observed(ns, None, index)
        elif action in _DATA_ACTIONS:
            value = self._value(ns, node)
            if value is not None:
                self.observed(ns, value, index)
        return index

    async def _list(self) -> int:
        """Re-read every namespace; returns the etcd index to watch from."""
        try:
            doc, headers = await self._call(self.client, "GET", self._path(), {"recursive": "true"})
        except _EtcdError as exc:
            if exc.code != 100:  # the prefix does not exist yet: no namespaces
                raise ClientError(f"listing {self.prefix}: {exc}") from None
            rsp = await self.client.request("GET", self._path())
            index = next((v for k, v in rsp.headers if k.lower() == b"x-etcd-index"), b"0")
            self.replace_all({})
            return int(index)
        values: Dict[str, VersionedDtab] = {}
        for node in (doc.get("node") or {}).get("nodes") or ():
            ns = self._namespace(str(node.get("key") or ""))
            if ns is None:
                continue
            value = self._value(ns, node)
            if value is None and ns in self.dtabs:
                value = self.dtabs[ns]  # a value that does not parse: the last good one stays
            if value is not None:
                values[ns] = value
        self.replace_all(values)
        return int(headers.get("x-etcd-index") or 0)

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        delay = BACKOFF[0]
        started = False
        while True:
            try:
                index = await self._list()
                self.healthy()
                delay = BACKOFF[0]
                if not started:
                    started = True
                    task_status.started()
                while True:
                    try:
                        doc, _ = await self._call(self.watch_client, "GET", self._path(),
                                                  {"wait": "true", "recursive": "true", "waitIndex": str(index + 1)})
                    except _EtcdError as exc:
                        if exc.code == 401:  # the index is outdated and cleared: read everything again
                            break
                        raise ClientError(f"watch: {exc}") from None
                    index = max(index, self._apply(doc))
            except (ClientError, ValueError) as exc:
                if "nothing received" in str(exc):
                    continue  # a quiet watch: re-list and watch again
                self.unhealthy(f"etcd: {exc}")
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(delay * (0.5 + self.rng.random()))
                delay = min(delay * 2, BACKOFF[1])
