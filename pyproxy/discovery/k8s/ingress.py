"""Kubernetes Ingress resources as routing rules (what the ``io.l5d.ingress`` identifier reads).

:class:`IngressRules` watches the Ingresses of one namespace (or all) and answers
:meth:`IngressRules.match`: the backend ``(namespace, service port, service name)`` of a request's
host and path, as Linkerd 1.x's ``IngressCache`` decides it: the explicit rules of every resource
first (in the order the resources came), then the resources' default backends (unless
``ignoreDefaultBackends``). A rule matches when its ``host`` equals the request's host (its port
removed) and its ``path`` matches the whole request path; a rule without one of them matches any.
A resource whose ``kubernetes.io/ingress.class`` annotation (or ``spec.ingressClassName``) names
another class than ours is not ours; an unannotated one is.

Paths: Linkerd read ``extensions/v1beta1`` Ingresses and treated a path as a regular expression of
the whole path; so do we for ``pathType: ImplementationSpecific`` and paths without a type. For
``networking.k8s.io/v1``'s ``Exact`` (equality) and ``Prefix`` (element-wise prefix) pathTypes, we
follow their definitions. Both backend shapes are read (``serviceName``/``servicePort`` and
``service: {name, port: {number|name}}``). A resource of the wrong shape is skipped (logged once).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Tuple

import trio

from .api import KubeApi
from .watch import Ready, Watch

__all__ = ["IngressRules", "ANNOTATION"]

log = logging.getLogger("pyproxy.k8s")

ANNOTATION = "kubernetes.io/ingress.class"
Backend = Tuple[str, str, str]  # (namespace, port, service)


class _Rule:
    __slots__ = ("host", "path", "kind", "regex", "backend")

    def __init__(self, host: Optional[str], path: Optional[str], kind: Optional[str], backend: Backend) -> None:
        self.host = host or None
        self.path = path or None
        self.kind = kind
        self.backend = backend
        self.regex = None
        if self.path is not None and kind not in ("Exact", "Prefix"):
            try:
                self.regex = re.compile(self.path)
            except re.error:
                self.regex = re.compile(re.escape(self.path))  # a path that is no regex matches itself

    def matches(self, host: Optional[str], path: str) -> bool:
        if self.host is not None and host != self.host:
            return False
        if self.path is None:
            return True
        if self.kind == "Exact":
            return path == self.path
        if self.kind == "Prefix":
            want = [s for s in self.path.split("/") if s]
            have = [s for s in path.split("/") if s]
            return have[: len(want)] == want
        return self.regex is not None and self.regex.fullmatch(path) is not None


def _backend(b: Any, ns: str) -> Optional[Backend]:
    if not isinstance(b, dict):
        return None
    if "serviceName" in b:  # extensions/v1beta1, networking.k8s.io/v1beta1
        name, port = b.get("serviceName"), b.get("servicePort")
    else:  # networking.k8s.io/v1
        svc = b.get("service")
        if not isinstance(svc, dict):
            return None
        name = svc.get("name")
        p = svc.get("port") if isinstance(svc.get("port"), dict) else {}
        port = p.get("number", p.get("name"))
    if not isinstance(name, str) or not isinstance(port, (int, str)):
        raise ValueError("a backend without a service name and port")
    return (ns, str(port), name)


class IngressRules:
    """The rules of the watched Ingresses (see the module documentation)."""

    def __init__(self, api: KubeApi, namespace: Optional[str], ingress_class: str, ignore_default_backends: bool) -> None:
        self.ingress_class = ingress_class
        self.ignore_default_backends = ignore_default_backends
        path = f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses" if namespace else "/apis/networking.k8s.io/v1/ingresses"
        self.watch = Watch(api, path, {}, self._changed, f"ingresses {namespace or '(all namespaces)'}")
        self.rules: List[_Rule] = []
        self.defaults: List[_Rule] = []
        self._bad: Dict[str, str] = {}
        self.ready = Ready()

    @property
    def known(self) -> bool:
        return self.ready.is_set()

    def _changed(self, objects: Dict[str, Any]) -> None:
        rules: List[_Rule] = []
        defaults: List[_Rule] = []
        for key, obj in objects.items():
            try:
                mine = self._ours(obj)
                if mine is None:
                    continue
                r, d = mine
                rules.extend(r)
                defaults.extend(d)
                self._bad.pop(key, None)
            except (ValueError, AttributeError, TypeError) as exc:
                if self._bad.get(key) != str(exc):
                    log.warning("k8s ingress %s: skipped, it does not parse (%s)", key, exc)
                self._bad[key] = str(exc)
        self.rules, self.defaults = rules, defaults
        self.ready.set()

    def _ours(self, obj: Dict[str, Any]) -> Optional[Tuple[List[_Rule], List[_Rule]]]:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        cls = (meta.get("annotations") or {}).get(ANNOTATION) or spec.get("ingressClassName")
        if cls is not None and cls != self.ingress_class:
            return None
        ns = meta.get("namespace") or "default"
        rules = []
        for rule in spec.get("rules") or []:
            http = rule.get("http") or {}
            for p in http.get("paths") or []:
                backend = _backend(p.get("backend"), ns)
                if backend is not None:
                    rules.append(_Rule(rule.get("host"), p.get("path"), p.get("pathType"), backend))
        defaults = []
        fallback = spec.get("defaultBackend", spec.get("backend"))
        if fallback is not None and not self.ignore_default_backends:
            backend = _backend(fallback, ns)
            if backend is not None:
                defaults.append(_Rule(None, None, None, backend))
        return rules, defaults

    def match(self, host: Optional[str], path: str) -> Optional[Backend]:
        """The backend for a request to ``host`` (port included or not) and ``path`` (no query)."""
        if host is not None:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        for rule in self.rules:
            if rule.matches(host, path):
                return rule.backend
        for rule in self.defaults:
            return rule.backend
        return None

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        """Watches the Ingresses until cancelled."""
        task_status.started()
        await self.watch.run()
