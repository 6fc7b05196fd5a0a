"""``io.l5d.k8s``: dtabs as ``dtabs.l5d.io`` custom resources (group ``l5d.io``, version
``v1alpha1``, kind ``DTab``), one per namespace of dtabs, in one Kubernetes namespace, as namerd
keeps them: ``{"apiVersion": "l5d.io/v1alpha1", "kind": "DTab", "metadata": {"name": <ns>},
"dentries": [{"prefix": ..., "dst": ...}]}``.

A dtab's version is its ``resourceVersion`` (the ``Etag`` is the base64 of its text); ``update`` is a
PUT carrying that resourceVersion (409 Conflict: stale), ``create`` a POST (409 AlreadyExists),
``delete`` a DELETE (404: no such namespace). The mirror is one list-then-watch of the resources
(:class:`~pyproxy.discovery.k8s.watch.Watch`: resumed streams, 410 re-lists, backoff; an object
that does not parse keeps its last good state, logged once).
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional
from urllib.parse import quote

import trio

from ...discovery.k8s.api import KubeApi, KubeError
from ...discovery.k8s.watch import Watch
from ...errors import DtabError, PathError
from ...naming.dtab import Dtab
from ..codec import dtab_json, read_dtab
from ..store import DtabStore, NamespaceExists, NamespaceMissing, StoreUnavailable, VersionedDtab, VersionMismatch

__all__ = ["K8sStore", "GROUP_VERSION"]

GROUP_VERSION = "l5d.io/v1alpha1"


class K8sStore(DtabStore):
    kind = "io.l5d.k8s"

    def __init__(self, api: KubeApi, namespace: str) -> None:
        super().__init__()
        self.api = api
        self.namespace = namespace
        self.path = f"/apis/{GROUP_VERSION}/namespaces/{quote(namespace)}/dtabs"
        self._seen: Dict[str, VersionedDtab] = {}
        self.watch = Watch(api, self.path, {}, self._changed, f"dtabs {namespace}", keep=self._parse)

    @staticmethod
    def _parse(obj: Any) -> VersionedDtab:
        """A DTab resource's dtab and version (ValueError: it does not parse; the last good stays)."""
        meta = obj.get("metadata") or {}
        rv = meta.get("resourceVersion")
        if not isinstance(rv, str):
            raise ValueError("no metadata.resourceVersion")
        try:
            dtab = read_dtab(json.dumps(obj.get("dentries") or []).encode(), "json")
        except (DtabError, PathError) as exc:
            raise ValueError(str(exc)) from None
        return VersionedDtab(dtab, rv.encode(), int(rv) if rv.isdigit() else 0)

    def _changed(self, objects: Dict[str, Any]) -> None:
        # Apply what changed since the watch's previous state (not the whole map): a write this
        # replica just made, not yet seen by the watch, is not undone by an older event.
        before = self._seen
        for key, vd in objects.items():
            if before.get(key) is not vd:
                self.observed(key.split("/", 1)[1], vd, vd.order)
        for key in before:
            if key not in objects:
                self.observed(key.split("/", 1)[1], None, 0)
        self._seen = dict(objects)
        self.healthy()

    def check_available(self) -> None:
        if self.watch._failing:
            raise StoreUnavailable(f"dtab store io.l5d.k8s unavailable: {self.watch.stats.last_error}")
        super().check_available()

    def _object(self, ns: str, dtab: Dtab, version: Optional[str] = None) -> Dict[str, Any]:
        meta: Dict[str, Any] = {"name": ns, "namespace": self.namespace}
        if version is not None:
            meta["resourceVersion"] = version
        return {"apiVersion": GROUP_VERSION, "kind": "DTab", "metadata": meta, "dentries": dtab_json(dtab)}

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            status, answer = await self.api.request(method, path, None, body)
        except KubeError as exc:
            raise StoreUnavailable(f"dtab store io.l5d.k8s unavailable: {exc}") from None
        if status in (200, 201):
            if method != "DELETE" and isinstance(answer, dict):
                try:
                    vd = self._parse(answer)
                    self.observed(answer["metadata"]["name"], vd, vd.order)
                except (ValueError, KeyError, TypeError):
                    pass
            return answer
        reason = answer.get("reason") if isinstance(answer, dict) else None
        raise _Refused(status, str(reason or ""))

    async def create(self, ns: str, dtab: Dtab) -> None:
        try:
            await self._call("POST", self.path, self._object(ns, dtab))
        except _Refused as exc:
            if exc.status == 409:
                raise NamespaceExists(ns) from None
            raise StoreUnavailable(f"dtab store io.l5d.k8s: {exc}") from None

    async def update(self, ns: str, dtab: Dtab, version: bytes) -> None:
        try:
            rv = version.decode("ascii")
        except UnicodeDecodeError:
            raise VersionMismatch() from None
        if not rv.isdigit():
            raise VersionMismatch()
        try:
            await self._call("PUT", f"{self.path}/{quote(ns)}", self._object(ns, dtab, rv))
        except _Refused as exc:
            if exc.status == 409:
                raise VersionMismatch() from None
            if exc.status == 404:
                raise NamespaceMissing(ns) from None
            raise StoreUnavailable(f"dtab store io.l5d.k8s: {exc}") from None

    async def put(self, ns: str, dtab: Dtab) -> None:
        try:
            current = await self._call("GET", f"{self.path}/{quote(ns)}")
        except _Refused as exc:
            if exc.status != 404:
                raise StoreUnavailable(f"dtab store io.l5d.k8s: {exc}") from None
            return await self.create(ns, dtab)
        rv = (current.get("metadata") or {}).get("resourceVersion") if isinstance(current, dict) else None
        try:
            await self._call("PUT", f"{self.path}/{quote(ns)}", self._object(ns, dtab, rv))
        except _Refused as exc:
            if exc.status == 404:
                return await self.create(ns, dtab)
            if exc.status == 409:
                raise VersionMismatch() from None
            raise StoreUnavailable(f"dtab store io.l5d.k8s: {exc}") from None

    async def delete(self, ns: str) -> None:
        try:
            await self._call("DELETE", f"{self.path}/{quote(ns)}")
        except _Refused as exc:
            if exc.status == 404:
                raise NamespaceMissing(ns) from None
            raise StoreUnavailable(f"dtab store io.l5d.k8s: {exc}") from None
        self.observed(ns, None, 0)

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.watch.run)
            with trio.move_on_after(5.0):  # serve once the first list is in, or (503) without it
                while not self.watch.known and not self.watch._failing:
                    await trio.sleep(0.01)
            task_status.started()


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"the API answered {status} {reason}".strip())
        self.status = status
