"""``io.l5d.k8s.configMap``: a router's dtab kept in a Kubernetes ConfigMap key, watched.

The router binds with the ConfigMap's dtab, then its own ``dtab``, then the request's overrides (as
Linkerd's ``ConfiguredDtabNamer``). As in Linkerd: a ConfigMap or key that does not exist is an
empty dtab (logged); an edit that does not parse keeps the last good dtab (logged once); until the
first answer arrives, requests wait (``bindingTimeoutMs``). Every change is applied at once (cached
bindings and lane routes are dropped by the router).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

import trio

from ...errors import DtabError
from ...naming.dtab import Dtab
from ..k8s.api import KubeApi
from ..k8s.watch import Watch

__all__ = ["ConfigMapDtab"]

log = logging.getLogger("pyproxy.k8s")


class ConfigMapDtab:
    """The dtab at ``data[filename]`` of ConfigMap ``namespace/name``; ``on_dtab`` gets each new one."""

    def __init__(self, api: KubeApi, namespace: str, name: str, filename: str, on_dtab: Callable[[Dtab], None]) -> None:
        self.namespace, self.name, self.filename = namespace, name, filename
        self.on_dtab = on_dtab
        self.dtab: Optional[Dtab] = None
        self.problem: Optional[str] = None
        self.watch = Watch(api, f"/api/v1/namespaces/{namespace}/configmaps", {"fieldSelector": f"metadata.name={name}"},
                           self._changed, f"configmap {namespace}/{name}")

    @property
    def what(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name} key {self.filename}"

    def _changed(self, objects: Dict[str, Any]) -> None:
        obj = next(iter(objects.values()), None)
        data = obj.get("data") if isinstance(obj, dict) else None
        if obj is None or not isinstance(data, dict) or self.filename not in data:
            problem = "does not exist" if obj is None else "has no such key"
            if self.problem != problem:
                log.warning("%s %s: the dtab is empty until it does", self.what, problem)
            self.problem = problem
            self._use(Dtab())
            return
        text = data[self.filename]
        try:
            dtab = Dtab.read(text if isinstance(text, str) else "")
        except DtabError as exc:
            problem = f"does not parse: {exc}"
            if self.problem != problem:
                log.warning("%s %s; the previous dtab stays in use", self.what, problem)
            self.problem = problem
            if self.dtab is None:
                self._use(Dtab())
            return
        self.problem = None
        self._use(dtab)

    def _use(self, dtab: Dtab) -> None:
        if self.dtab is None or dtab.show != self.dtab.show:
            self.dtab = dtab
            self.on_dtab(dtab)

    def state_json(self) -> Dict[str, Any]:
        return {"state": self.dtab.show if self.dtab is not None else None, "problem": self.problem, "watch": self.watch.stats.to_json()}

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await self.watch.run()
