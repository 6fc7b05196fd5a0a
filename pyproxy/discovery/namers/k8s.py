"""``io.l5d.k8s`` and ``io.l5d.k8s.ns``: services of a Kubernetes cluster (Linkerd's Kubernetes namers).

Names: ``/#/io.l5d.k8s/<namespace>/<port>/<service>[/<label value>][/residual]`` (``io.l5d.k8s.ns``:
the namespace comes from an environment variable and is not in the name). The first three segments
(four with ``labelSelector``) are lower-cased and form the bound id; the rest is the residual. With
``labelSelector: version``, ``/default/http/world/v2`` selects the endpoints labelled ``version=v2``.

Per service (and label value) the namer keeps one :class:`~..k8s.watch.Watch` of its Endpoints object
(or, with ``endpointSlices``, of its EndpointSlices), started on the first lookup, plus a watch of
the Service for numbered ports; every port asked for is a live address set (``AddrVar``) that
changes with the endpoints, each address carrying the pod's ``nodeName``. A name is negative when the
service has no such port (or does not exist): binding falls through to the next alternative of the
dtab, as in Linkerd. Until the first answer for a service has arrived, a lookup raises
:class:`~pyproxy.errors.NamePending` and the router waits (``bindingTimeoutMs``).

A namespace from which :data:`SHARE_AT` or more services (without ``labelSelector``) are watched gets
one watch of all its endpoints instead: one stream and connection per namespace rather than one per
service, for this proxy's memory and the API server's load (a DaemonSet multiplies both by the
nodes). Its services keep their answers while it lists (their own watches stop once it knows), and
each change reaches only the services whose endpoints it changed.

Watched services are bounded (:data:`MAX_SERVICES`): past it, the least recently looked-up service
whose address sets no client observes stops being watched. ``state_json`` is Linkerd's
``/namer_state/io.l5d.k8s.json``; ``metrics`` the counters of all its watches.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from types import MappingProxyType
from typing import Any, Dict, Iterator, List, Optional, Tuple

import trio

from ...errors import NamePending
from ...naming.name import ADDR_NEG, Address, AddrBound, AddrVar, Bound
from ...naming.namer import Namer
from ...naming.path import Path
from ...naming.tree import Leaf, NameTree, Neg
from ..k8s.api import KubeApi
from ..k8s.objects import ServiceEndpoints, port_mappings
from ..k8s.watch import Ready, Watch

__all__ = ["K8sNamer", "MAX_PORTS", "MAX_SERVICES", "NODE_NAME", "SHARE_AT"]

log = logging.getLogger("pyproxy.k8s")

#: Services watched at most by one namer.
MAX_SERVICES = 10_000
#: Address sets kept per service, one per port name or number asked (the port segment of a name
#: can come from a request's override, so it is bounded like the services).
MAX_PORTS = 16
#: Services of one namespace watched one by one at most; from this many on, one watch of the namespace.
SHARE_AT = 32
#: The label that names an EndpointSlice's service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: The address metadata key of the pod's node (Linkerd's ``Metadata.nodeName``).
NODE_NAME = "nodeName"


class _Service:
    """One watched service (and label selector): its endpoints, port mappings, address sets."""

    def __init__(self, namer: "K8sNamer", ns: str, name: str, label: Optional[str]) -> None:
        self.namer = namer
        self.ns, self.name, self.label = ns, name, label
        self.endpoints = ServiceEndpoints([])
        self.mappings: Dict[int, str] = {}
        self.vars: Dict[str, AddrVar] = {}  # by port as asked (name or number)
        self.endpoints_ready = Ready()
        self.service_ready = Ready()
        self.endpoints_watch: Optional[Watch] = None  # None once its namespace's watch answers for it
        self.service_watch: Optional[Watch] = None
        self.scopes: Dict[Watch, trio.CancelScope] = {}  # of the running watches: cancelled when evicted

    def stop(self, watch: Optional[Watch]) -> None:
        scope = self.scopes.pop(watch, None) if watch is not None else None
        if scope is not None:
            scope.cancel()

    @property
    def what(self) -> str:
        return f"{self.ns}/{self.name}" + (f" ({self.label})" if self.label else "")

    def observed(self) -> bool:
        return any(v.observed for v in self.vars.values())

    # --- the watches' callbacks ---

    def on_endpoints(self, objects: Dict[str, ServiceEndpoints]) -> None:
        """The parsed Endpoints object (or, with EndpointSlices, the parsed slices) changed."""
        self.endpoints = ServiceEndpoints.merged(objects.values())
        self.endpoints_ready.set()
        self._update()

    def on_own_endpoints(self, objects: Dict[str, ServiceEndpoints]) -> None:
        """What the service's own watch found (ignored once its namespace's watch answers for it:
        events it had already read may still come out after it was stopped)."""
        if self.endpoints_watch is not None:
            self.on_endpoints(objects)

    def on_service(self, objects: Dict[str, Dict[int, str]]) -> None:
        self.mappings = next(iter(objects.values()), {})
        self.service_ready.set()
        self._update()

    def _update(self) -> None:
        flipped = False
        for port, var in self.vars.items():
            state = self.state(port)
            if (state is ADDR_NEG) != (var.value is ADDR_NEG):
                flipped = True
            var.update(state)
        if flipped:
            self.namer.version += 1  # a name appeared or vanished: cached bindings are recomputed

    # --- answers ---

    def state(self, port: str) -> object:
        """The address set of ``port`` now (``ADDR_NEG`` when the service has no such port)."""
        if port.isdigit():
            target = self.mappings.get(int(port))
            if target is None:
                return ADDR_NEG
            found = self.endpoints.numbered(int(target)) if target.isdigit() else self.endpoints.named(target)
        else:
            found = self.endpoints.named(port)
        if found is None:
            return ADDR_NEG
        return AddrBound(tuple(Address(ip, p, _node_meta(node)) for ip, p, node in found))

    def var(self, port: str) -> AddrVar:
        var = self.vars.get(port)
        if var is None:
            if len(self.vars) >= MAX_PORTS:
                self._forget_ports()
            var = self.vars[port] = AddrVar(self.state(port))
        return var

    def _forget_ports(self) -> None:
        """Drop the address sets nobody observes (oldest first) down to half the bound. A binding
        cached elsewhere may still hold one, which would no longer follow the endpoints: the
        namer's version moves so that every cached binding is computed again."""
        before = len(self.vars)
        for port, var in list(self.vars.items()):
            if len(self.vars) < MAX_PORTS // 2:
                break
            if not var.observed:
                del self.vars[port]
        if len(self.vars) != before:
            self.namer.version += 1


class _Namespace:
    """One watch of all the endpoints of a namespace, fanned out to its watched services."""

    def __init__(self, namer: "K8sNamer", ns: str) -> None:
        self.namer = namer
        self.ns = ns
        self.services: Dict[str, _Service] = {}  # the namespace's watched services without label, by name
        self.watch: Optional[Watch] = None  # started at the namer's share_at services
        self.parts: Dict[str, Dict[str, ServiceEndpoints]] = {}  # by service: its objects, by key

    def keep(self, obj: Any) -> Tuple[Optional[str], ServiceEndpoints]:
        """An object as kept: the service it belongs to, its endpoints."""
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if self.namer.slices:
            labels = meta.get("labels") if isinstance(meta, dict) else None
            svc = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
            return (svc if isinstance(svc, str) else None), ServiceEndpoints.from_slices_one(obj)
        return meta["name"], ServiceEndpoints.from_endpoints(obj)  # Watch only keeps named objects

    def on_objects(self, objects: Dict[str, Tuple[Optional[str], ServiceEndpoints]]) -> None:
        parts: Dict[str, Dict[str, ServiceEndpoints]] = {}
        for key, (name, endpoints) in objects.items():
            if name is not None:
                parts.setdefault(name, {})[key] = endpoints
        old, self.parts = self.parts, parts
        for name, svc in list(self.services.items()):
            if svc.endpoints_watch is not None:  # answered by its own watch until now: that one stops
                svc.stop(svc.endpoints_watch)
                svc.endpoints_watch = None
            elif svc.endpoints_ready.is_set() and _same(old.get(name), parts.get(name)):
                continue  # not changed by this event
            svc.on_endpoints(parts.get(name, {}))

    def answer(self, svc: _Service) -> None:
        """Gives a service looked up after the namespace's watch answered its endpoints."""
        svc.on_endpoints(self.parts.get(svc.name, {}))


def _same(a: Optional[Dict[str, ServiceEndpoints]], b: Optional[Dict[str, ServiceEndpoints]]) -> bool:
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a)


class K8sNamer(Namer):
    """The ``io.l5d.k8s`` namer (``namespace`` set: ``io.l5d.k8s.ns``)."""

    def __init__(
        self, api: KubeApi, prefix: Path, label_selector: Optional[str] = None, namespace: Optional[str] = None,
        slices: bool = False, max_services: int = MAX_SERVICES, rng: Optional[random.Random] = None,
        share_at: int = SHARE_AT,
    ) -> None:
        self.api = api
        self.prefix = prefix
        self.label = label_selector
        self.namespace = namespace
        self.slices = slices
        self.max_services = max_services
        self.share_at = share_at
        self.rng = rng or random.Random()
        self.version = 0
        self._services: "OrderedDict[Tuple[str, str, Optional[str]], _Service]" = OrderedDict()
        self._namespaces: Dict[str, _Namespace] = {}
        self._nursery: Optional[trio.Nursery] = None

    # === lookup ===

    def lookup(self, path: Path) -> NameTree:
        width = (2 if self.namespace is not None else 3) + (1 if self.label else 0)
        elems = path.utf8_elems()
        if len(elems) < width:
            return Neg
        head = [e.lower() for e in elems[:width]]
        if self.namespace is not None:
            ns, port, name = self.namespace, head[0], head[1]
        else:
            ns, port, name = head[0], head[1], head[2]
        label = f"{self.label}={head[-1]}" if self.label else None
        svc = self._service(ns, name, label)
        if port.isdigit() and svc.service_watch is None:
            self._watch_service(svc)
        if not svc.endpoints_ready.is_set():
            raise NamePending(f"waiting for Kubernetes to answer for the endpoints of {svc.what}", svc.endpoints_ready)
        if port.isdigit() and not svc.service_ready.is_set():
            raise NamePending(f"waiting for Kubernetes to answer for the service {svc.what}", svc.service_ready)
        var = svc.var(port)
        if var.value is ADDR_NEG:
            return Neg
        return Leaf(Bound(self.prefix + Path.utf8(*head), path.drop(width), var))

    def address_set(self, ns: str, port: str, name: str) -> AddrVar:
        """The live address set of one service port (a DaemonSet's, for the gateway transformer):
        ``ADDR_NEG`` while the service or port does not exist. Raises ``NamePending`` until known."""
        svc = self._service(ns.lower(), name.lower(), None)
        port = port.lower()
        if port.isdigit() and svc.service_watch is None:
            self._watch_service(svc)
        if not svc.endpoints_ready.is_set():
            raise NamePending(f"waiting for Kubernetes to answer for the endpoints of {svc.what}", svc.endpoints_ready)
        if port.isdigit() and not svc.service_ready.is_set():
            raise NamePending(f"waiting for Kubernetes to answer for the service {svc.what}", svc.service_ready)
        return svc.var(port)

    def _service(self, ns: str, name: str, label: Optional[str]) -> _Service:
        key = (ns, name, label)
        svc = self._services.get(key)
        if svc is not None:
            self._services.move_to_end(key)
            return svc
        svc = self._services[key] = _Service(self, ns, name, label)
        self._start(svc)
        if len(self._services) > self.max_services:
            for old_key, old in list(self._services.items()):
                if len(self._services) <= self.max_services:
                    break
                if old is not svc and not old.observed():
                    for scope in old.scopes.values():
                        scope.cancel()
                    old.scopes.clear()
                    shared = self._namespaces.get(old.ns)
                    if shared is not None and shared.services.get(old.name) is old:
                        del shared.services[old.name]
                    del self._services[old_key]
                    # A binding cached by a router or namerd may hold this service's address sets,
                    # which no watch updates any more: moving the version makes them bind again.
                    self.version += 1
        return svc

    def _start(self, svc: _Service) -> None:
        if svc.label is None:
            shared = self._namespaces.get(svc.ns)
            if shared is None:
                shared = self._namespaces[svc.ns] = _Namespace(self, svc.ns)
            shared.services[svc.name] = svc
            if shared.watch is not None:  # the namespace's watch answers (or will) for it
                if shared.watch.known:
                    shared.answer(svc)
                return
            if len(shared.services) >= self.share_at:
                self._share(shared)
                return
        params = {}
        if self.slices:
            path = f"/apis/discovery.k8s.io/v1/namespaces/{svc.ns}/endpointslices"
            selector = f"kubernetes.io/service-name={svc.name}"
            params["labelSelector"] = f"{selector},{svc.label}" if svc.label else selector
        else:
            path = f"/api/v1/namespaces/{svc.ns}/endpoints"
            params["fieldSelector"] = f"metadata.name={svc.name}"
            if svc.label:
                params["labelSelector"] = svc.label
        keep = ServiceEndpoints.from_slices_one if self.slices else ServiceEndpoints.from_endpoints
        svc.endpoints_watch = Watch(self.api, path, params, svc.on_own_endpoints, f"endpoints {svc.what}", self.rng, keep)
        self._spawn(svc, svc.endpoints_watch)

    def _share(self, shared: _Namespace) -> None:
        if self.slices:
            path = f"/apis/discovery.k8s.io/v1/namespaces/{shared.ns}/endpointslices"
            params = {"labelSelector": SERVICE_NAME_LABEL}  # slices that belong to a service
        else:
            path, params = f"/api/v1/namespaces/{shared.ns}/endpoints", {}
        shared.watch = Watch(self.api, path, params, shared.on_objects, f"endpoints {shared.ns}/*", self.rng, shared.keep)
        self._spawn(None, shared.watch)

    def _watch_service(self, svc: _Service) -> None:
        params = {"fieldSelector": f"metadata.name={svc.name}"}
        svc.service_watch = Watch(self.api, f"/api/v1/namespaces/{svc.ns}/services", params, svc.on_service, f"service {svc.what}",
                                  self.rng, port_mappings)
        self._spawn(svc, svc.service_watch)

    def _spawn(self, svc: Optional[_Service], watch: Watch) -> None:
        if self._nursery is None:
            return  # not running (offline tools): the name stays pending
        scope = trio.CancelScope()
        if svc is not None:
            svc.scopes[watch] = scope

        async def run() -> None:
            try:
                with scope:
                    await watch.run()
            finally:
                if svc is not None and svc.scopes.get(watch) is scope:
                    del svc.scopes[watch]

        self._nursery.start_soon(run)

    # === running ===

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        """Runs the watches (started by lookups) until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for svc in list(self._services.values()):  # looked up before the namer ran
                    for w in (svc.endpoints_watch, svc.service_watch):
                        if w is not None:
                            self._spawn(svc, w)
                for shared in self._namespaces.values():
                    if shared.watch is not None:
                        self._spawn(None, shared.watch)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None

    # === what admin and metrics read ===

    def _watches(self) -> Iterator[Tuple[_Service, str, Watch]]:
        """The services' watches: an endpoints watch is the namespace's when that one answers."""
        for svc in list(self._services.values()):
            watch = svc.endpoints_watch
            if watch is None and svc.label is None:
                shared = self._namespaces.get(svc.ns)
                watch = shared.watch if shared is not None else None
            if watch is not None:
                yield svc, "endpoints", watch
            if svc.service_watch is not None:
                yield svc, "portMappings", svc.service_watch

    def _running(self) -> List[Watch]:
        """Every watch, once."""
        out = {id(w): w for _, _, w in self._watches()}
        out.update((id(ns.watch), ns.watch) for ns in self._namespaces.values() if ns.watch is not None)
        return list(out.values())

    def state_json(self) -> Dict[str, Any]:
        """Linkerd's ``/namer_state/io.l5d.k8s.json``: per watched service, its state and its watch."""
        out: Dict[str, Dict[str, Any]] = {"endpoints": {}, "portMappings": {}}
        for svc, kind, w in self._watches():
            key = f"{svc.ns}/{svc.name}" + (f":{svc.label}" if svc.label else "")
            if kind == "endpoints":
                state: Any = {port: _addr_json(v.value) for port, v in svc.vars.items()}
            else:
                state = {str(k): v for k, v in svc.mappings.items()}
            out[kind][key] = {"state": state, "watch": w.stats.to_json()}
        out["namespaces"] = {ns: {"services": len(shared.services), "watch": shared.watch.stats.to_json()}
                             for ns, shared in self._namespaces.items() if shared.watch is not None}
        return out

    def metrics(self) -> List[Tuple[str, int]]:
        """Counters of all the namer's watches (``namer/#/<prefix>/<name>``)."""
        names = ("lists", "streams", "resumes", "gone", "errors", "events", "dropped")
        totals = dict.fromkeys(names, 0)
        connected = 0
        watches = self._running()
        for w in watches:
            for n in names:
                totals[n] += getattr(w.stats, n)
            connected += w.stats.connected
        return [("watches", len(watches)), ("watches_connected", connected)] + [(f"watch/{n}", v) for n, v in totals.items()]

    def bound_names(self) -> List[str]:
        """The ids of the names bound so far (``/bound-names.json``)."""
        out = []
        for svc in self._services.values():
            for port, var in svc.vars.items():
                if var.value is not ADDR_NEG:
                    parts = [svc.ns, port, svc.name] if self.namespace is None else [port, svc.name]
                    if svc.label:
                        parts.append(svc.label.split("=", 1)[1])
                    out.append((self.prefix + Path.utf8(*parts)).show)
        return out


_NODE_META: Dict[Optional[str], Any] = {None: None}


def _node_meta(node: Optional[str]) -> Any:
    """The metadata of an address on ``node``: one shared read-only mapping per node."""
    meta = _NODE_META.get(node)
    if meta is None:
        if len(_NODE_META) > 100_000:
            _NODE_META.clear()
            _NODE_META[None] = None
        meta = _NODE_META[node] = MappingProxyType({NODE_NAME: node})
    return meta


def _addr_json(addr: object) -> Any:
    if isinstance(addr, AddrBound):
        return [f"{a.host}:{a.port}" for a in addr.addresses]
    return getattr(addr, "kind", str(addr))
