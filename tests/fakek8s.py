"""A fake Kubernetes API server, faithful to the wire, for tests of the k8s namer, transformers,
identifier, interpreter and namerd's k8s dtab storage. Standard library only.

It is a real HTTP/1.1 server on 127.0.0.1 (an ephemeral port, a thread per connection) that
answers like kube-apiserver seen through ``kubectl proxy``: plain HTTP, JSON bodies, no auth
unless ``FakeK8s(token=...)`` asks for ``Authorization: Bearer <token>`` (401 otherwise).
``tests/test_fakek8s.py`` proves it against the official ``kubernetes`` Python client.

Quick start::

    from fakek8s import FakeK8s, endpoints, service

    with FakeK8s() as k8s:                      # k8s.url == "http://127.0.0.1:PORT"
        k8s.apply(endpoints("default", "web", addresses=[("127.0.0.2", "node-a")], ports={"http": 7778}))
        k8s.apply(service("default", "web", ports=[("http", 80, 7778)]))
        ...                                     # point the code under test at k8s.url
        k8s.wait_watches(1, path="/api/v1/watch/namespaces/default/endpoints/web")
        k8s.apply(endpoints("default", "web", addresses=[("127.0.0.3", "node-b")], ports={"http": 7778}))
        k8s.delete("endpoints", "default", "web")

Served kinds (GET one, LIST, WATCH; POST, PUT, PATCH, DELETE)::

    /api/v1                          endpoints, services, configmaps, pods       (namespaced)
    /apis/discovery.k8s.io/v1        endpointslices
    /apis/networking.k8s.io/v1       ingresses   (stored form)
    /apis/networking.k8s.io/v1beta1  ingresses   (the same objects, converted: serviceName/servicePort)
    /apis/extensions/v1beta1         ingresses   (likewise; what Linkerd 1.x reads)
    /apis/l5d.io/v1alpha1            dtabs       (namerd's DTab custom resource)

each at ``{prefix}/namespaces/{ns}/{plural}[/{name}]`` and, for lists, ``{prefix}/{plural}`` (all
namespaces); watches at ``?watch=true`` (or ``1``) on a list URL and at the legacy
``{prefix}/watch/namespaces/{ns}/{plural}[/{name}]`` and ``{prefix}/watch/{plural}``. Also
``/version``, ``/healthz``, ``/livez``, ``/readyz``, ``/api``, ``/apis``, ``/api/v1`` and
``/apis/{group}/{version}`` (discovery documents).

Semantics kept from the apiserver (each has a test):
  * one global ``resourceVersion``, strictly increasing, a decimal string; it starts at 98, so it
    gains a digit after a couple of writes (``"99" < "100"`` only as integers);
  * a write that changes nothing (same content) is a no-op: no new version, no watch event;
  * lists carry ``metadata.resourceVersion``; items of built-in kinds' lists have no
    ``kind``/``apiVersion`` (custom resources' items do); ``labelSelector`` (``k=v``, ``k==v``,
    ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``), ``fieldSelector``
    (``metadata.name``, ``metadata.namespace``, ``=``/``==``/``!=``; pods also ``spec.nodeName``,
    ``status.phase``, ``status.podIP``), ``limit``/``continue`` (consistent pages);
  * watches: chunked ``application/json``, one ``{"type": ..., "object": ...}`` line per chunk;
    no ``resourceVersion`` (or ``"0"``): synthetic ADDED for current objects first; ``resourceVersion=N``:
    every change after N, replayed from the history window; N older than the window: 410, as an
    ERROR event (``fake.gone = "event"``, the default, as current apiservers do) or as the HTTP
    status (``fake.gone = "status"``); N newer than the fake: 504 ``ResourceVersionTooLarge``;
    ``timeoutSeconds`` ends the stream cleanly (after a BOOKMARK when ``allowWatchBookmarks``);
    ``allowWatchBookmarks`` gets BOOKMARKs from ``bookmark()`` and every ``bookmark_interval``;
    ``sendInitialEvents=true`` (with ``resourceVersionMatch=NotOlderThan``) ends the initial ADDED
    events with the ``k8s.io/initial-events-end`` bookmark; an object leaving a watch's label or
    field selector is DELETED for that watch, one entering it is ADDED; DELETED carries the last
    state with the deletion's resourceVersion;
  * writes: POST 201 (409 AlreadyExists), PUT 200 (409 Conflict when the body's
    ``metadata.resourceVersion`` is stale: namerd's compare-and-swap; 404 when absent except for
    endpoints and services, which PUT creates; a custom resource's PUT must carry a
    resourceVersion: 422), PATCH (``merge-patch+json``; ``json-patch+json``;
    ``strategic-merge-patch+json`` for built-in kinds, 415 for custom resources), DELETE (the
    object for pods, services and custom resources, a ``Status`` for the others; preconditions);
    uid, creationTimestamp, generation (ingresses, custom resources) kept by the server; services
    get a clusterIP (from 127.96.0.0/16: loopback, so nothing under test ever sends traffic off the
    machine), ``type``, ``sessionAffinity``, port ``protocol`` and ``targetPort`` defaults; the status
    of pods, services and ingresses is not writable through the main resource over HTTP (it is
    through ``apply``); light validation answers 422 ``Invalid`` like the apiserver;
  * errors are ``Status`` objects (``{"kind": "Status", "apiVersion": "v1", "status": "Failure",
    "reason": "NotFound", "code": 404, "message": "endpoints \\"x\\" not found", "details": ...}``);
    unknown paths answer ``404 page not found`` in text/plain;
  * responses over 2048 bytes are chunked, as Go's net/http sends them.

The Python API (thread-safe; every method may be called from any thread):

  lifecycle   FakeK8s(token=None, *, history=1000, gone="event", bookmark_interval=None,
              watch_timeout=None, max_object_bytes=1_572_864, max_body_bytes=3_145_728,
              max_connections=256, max_watches=200, max_objects=10_000, event_chunk_bytes=None,
              tls=None)   tls: a server SSLContext, to serve HTTPS (the in-cluster API)
              .start() / .stop() / ``with FakeK8s() as k8s``; .host, .port, .url; .token (settable)
  state       .apply(obj) -> stored copy; .create(obj); .delete(kind, ns, name) -> last state or None;
              .get(kind, ns, name) -> obj or None; .list(kind, ns=None) -> [obj];
              .resource_version -> str; .objects() -> number stored
  history     .compact(rv, gone=None); .expire_history(gone=None)  (watches from older versions: 410)
  watches     .watches(path=None) -> [WatchInfo]; .wait_watches(n=1, path=None, timeout=5.0);
              .end_watches(path=None) -> n; .bookmark(path=None) -> n;
              .stall_watches(headers=True) / .unstall_watches()  (also a context manager: stalled())
              .wait_until(probe, timeout=5.0)  (re-tried on every request, write and watch change)
              .send_raw(data, path=None, framed=True) -> n; .send_event(type, obj, path=None) -> n
  outages     .down(mode="refuse"|"503") / .up(); ``with k8s.outage(mode): ...``;
              .fail_next(path, status=500, body=None, times=1, method=None)
  counters    .requests(path=None, method=None, watch=None) -> [Request]; .count(...) -> int;
              .clear_requests(); .wait_requests(n, path=None, method=None, watch=None, timeout=5.0)
  builders    endpoints(), service(), endpoint_slice(), ingress(), config_map(), pod(), dtab()
              (module functions, also FakeK8s static methods), each returning a plain dict.

What it does not do (a real apiserver does): no controllers (a Service makes no Endpoints or
EndpointSlices, deleting a namespace deletes nothing, no garbage collection, finalizers or graceful
pod deletion); namespaces are not objects and need not exist; no Nodes, Secrets or other kinds; no
status subresources (``/status``), no server-side apply, ``dryRun``, ``fieldManager``,
``managedFields`` or ``selfLink``; no pruning of unknown fields (they are kept); validation covers
names, label and annotation maps and the fields the namer reads, nothing more; strategic merge
patch knows only the merge keys of service ports, containers and conditions (no ``$patch``
directives); ``resourceVersionMatch=Exact`` only at the current version (410 otherwise: no
snapshots); a resourceVersion newer than the fake answers 504 at once (the apiserver waits up to 3 s
first); no protobuf, CBOR, Table or gzip answers, no HTTP/2, TLS, websockets, ``/proxy`` or
``/log``; an HTTP/1.0 watch still gets a chunked answer; bookmarks come only from ``bookmark()``,
``bookmark_interval`` and a watch's ``timeoutSeconds`` (never on their own); one resourceVersion
history for every kind (the apiserver keeps one watch cache per resource); no priority and
fairness, no audit, no authorisation (a token is all or nothing).

``kind`` arguments take a kind or a plural, any case: ``"Endpoints"``, ``"services"``,
``"EndpointSlice"``, ``"ingresses"``, ``"dtabs"``... Errors of the Python API raise ``ApiError``
(``.code``, ``.status``: the Status object the HTTP API would have answered).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime
import http
import ipaddress
import json
import re
import select
import socket
import ssl
import struct
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "ApiError",
    "FakeK8s",
    "Request",
    "WatchInfo",
    "config_map",
    "dtab",
    "endpoint_slice",
    "endpoints",
    "ingress",
    "pod",
    "service",
]

Obj = Dict[str, Any]

#: Kubernetes' version as /version reports it (the fake serves the APIs of 1.19 to 1.21, where the
#: three Ingress versions were all served, plus discovery.k8s.io/v1 of 1.21).
GIT_VERSION = "v1.21.14"
FIRST_RV = 97  # the first write gets 98; after two more the versions gain a digit
CHUNK_THRESHOLD = 2048  # Go's net/http: bodies larger than this are sent chunked
CLUSTER_IP_NET = ipaddress.ip_network("127.96.0.0/16")


# --------------------------------------------------------------------------------------------
# errors


class ApiError(Exception):
    """An error the apiserver would answer: ``code`` (HTTP status) and ``status`` (the Status body)."""

    def __init__(self, code: int, reason: str, message: str, details: Optional[Obj] = None,
                 headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> Obj:
        return status_object(self.code, self.reason, self.message, self.details)


def status_object(code: int, reason: str, message: str, details: Optional[Obj] = None) -> Obj:
    """A ``Status`` as the apiserver encodes it (field order included)."""
    st: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {},
               "status": "Success" if code < 400 else "Failure", "message": message, "reason": reason}
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


# --------------------------------------------------------------------------------------------
# kinds


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    group: str  # "" for the core group
    version: str
    storage: str  # the store shared by every served version of a resource
    namespaced: bool = True
    builtin: bool = True  # False: a custom resource (items keep kind/apiVersion; delete returns it)
    status_subresource: bool = False
    create_on_update: bool = False
    unconditional_update: bool = True
    returns_deleted: bool = False
    generation: bool = False
    field_labels: Tuple[str, ...] = ("metadata.name", "metadata.namespace")
    canonical: bool = True  # the storage version (False: converted on the way in and out)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def qualified(self) -> str:
        """The group-qualified resource name used in messages: ``endpoints``, ``dtabs.l5d.io``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def details(self, name: str, uid: Optional[str] = None) -> Obj:
        d: Obj = {"name": name}
        if self.group:
            d["group"] = self.group
        d["kind"] = self.plural
        if uid:
            d["uid"] = uid
        return d


POD_FIELDS = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "status.podIP")
KINDS: Tuple[Kind, ...] = (
    Kind("Endpoints", "endpoints", "endpoints", "", "v1", "endpoints", create_on_update=True),
    Kind("Service", "services", "service", "", "v1", "services", status_subresource=True,
         create_on_update=True, returns_deleted=True),
    Kind("ConfigMap", "configmaps", "configmap", "", "v1", "configmaps"),
    Kind("Pod", "pods", "pod", "", "v1", "pods", status_subresource=True, returns_deleted=True,
         field_labels=POD_FIELDS),
    Kind("EndpointSlice", "endpointslices", "endpointslice", "discovery.k8s.io", "v1", "endpointslices"),
    Kind("Ingress", "ingresses", "ingress", "networking.k8s.io", "v1", "ingresses", status_subresource=True,
         generation=True),
    Kind("Ingress", "ingresses", "ingress", "networking.k8s.io", "v1beta1", "ingresses", status_subresource=True,
         generation=True, canonical=False),
    Kind("Ingress", "ingresses", "ingress", "extensions", "v1beta1", "ingresses", status_subresource=True,
         generation=True, canonical=False),
    # namerd's dtab storage: group l5d.io, version v1alpha1, kind DTab, plural dtabs, namespaced
    # (linkerd/linkerd namerd/storage/k8s/.../kubernetes/resources.scala: Owner = "l5d.io",
    # OwnerVersion = "v1alpha1"; DtabDescriptor.listName = "dtabs"; Dtab.scala: kind "DTab";
    # namerd/examples/k8s/3rdparty.yaml: the CRD, apiextensions.k8s.io/v1beta1 with no schema,
    # so the apiserver keeps any field). A custom resource: PUT needs metadata.resourceVersion
    # (the CR strategy's AllowUnconditionalUpdate is false), DELETE returns the object.
    Kind("DTab", "dtabs", "dtab", "l5d.io", "v1alpha1", "dtabs", builtin=False, unconditional_update=False,
         returns_deleted=True, generation=True),
)
_BY_PATH: Dict[Tuple[str, str, str], Kind] = {(k.group, k.version, k.plural): k for k in KINDS}
_BY_TYPE: Dict[Tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in KINDS}
_CANONICAL: Dict[str, Kind] = {k.storage: k for k in KINDS if k.canonical}
_GROUPS: Dict[str, List[str]] = {}
for _k in KINDS:
    if _k.group and _k.version not in _GROUPS.setdefault(_k.group, []):
        _GROUPS[_k.group].append(_k.version)


def kind_of(name: str) -> Kind:
    """The storage version of a kind named by kind, plural or singular, any case."""
    n = name.lower()
    for k in KINDS:
        if k.canonical and n in (k.kind.lower(), k.plural, k.singular):
            return k
    raise KeyError(f"the fake serves no kind {name!r}")


# --------------------------------------------------------------------------------------------
# Ingress conversion (networking.k8s.io/v1 is the stored form)


def _backend_to_beta(b: Obj) -> Obj:
    out = {k: v for k, v in b.items() if k != "service"}
    svc = b.get("service")
    if isinstance(svc, dict):
        out["serviceName"] = svc.get("name")
        port = svc.get("port") or {}
        if "number" in port:
            out["servicePort"] = port["number"]
        elif "name" in port:
            out["servicePort"] = port["name"]
    return out


def _backend_to_v1(b: Obj) -> Obj:
    out = {k: v for k, v in b.items() if k not in ("serviceName", "servicePort")}
    if "serviceName" in b or "servicePort" in b:
        port = b.get("servicePort")
        out["service"] = {"name": b.get("serviceName"),
                          "port": {"name": port} if isinstance(port, str) else {"number": port}}
    return out


def _map_ingress(obj: Obj, backend: Callable[[Obj], Obj], to_v1: bool) -> Obj:
    obj = copy.deepcopy(obj)
    spec = obj.get("spec")
    if isinstance(spec, dict):
        src, dst = ("backend", "defaultBackend") if to_v1 else ("defaultBackend", "backend")
        if src in spec:
            b = spec.pop(src)
            spec[dst] = backend(b) if isinstance(b, dict) else b
        for rule in spec.get("rules") or []:
            paths = ((rule or {}).get("http") or {}).get("paths") or []
            for p in paths:
                if isinstance(p, dict) and isinstance(p.get("backend"), dict):
                    p["backend"] = backend(p["backend"])
                if to_v1 and isinstance(p, dict) and "pathType" not in p:
                    p["pathType"] = "ImplementationSpecific"  # the v1beta1 default
    return obj


def to_storage(kind: Kind, obj: Obj) -> Obj:
    if kind.canonical:
        return obj
    out = _map_ingress(obj, _backend_to_v1, to_v1=True)
    canon = _CANONICAL[kind.storage]
    out["apiVersion"], out["kind"] = canon.api_version, canon.kind
    return out


def from_storage(kind: Kind, obj: Obj) -> Obj:
    """The stored object as ``kind``'s version serves it (a copy)."""
    if kind.canonical:
        return copy.deepcopy(obj)
    out = _map_ingress(obj, _backend_to_beta, to_v1=False)
    out["apiVersion"], out["kind"] = kind.api_version, kind.kind
    return out


def _ordered(kind: Kind, obj: Obj) -> Obj:
    """kind, apiVersion, metadata first, as the apiserver encodes objects."""
    out: Obj = {"kind": kind.kind, "apiVersion": kind.api_version}
    if "metadata" in obj:
        out["metadata"] = obj["metadata"]
    for k, v in obj.items():
        if k not in out:
            out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# selectors

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VAL = r"[-A-Za-z0-9_.]*"


def _split_top(s: str) -> List[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_label_selector(s: str) -> List[Tuple[str, str, Any]]:
    reqs: List[Tuple[str, str, Any]] = []
    for raw in _split_top(s or ""):
        part = raw.strip()
        if not part:
            continue
        m = re.fullmatch(rf"({_KEY})\s+(in|notin)\s*\(([^()]*)\)", part)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), vals))
            continue
        m = re.fullmatch(rf"!\s*({_KEY})", part)
        if m:
            reqs.append((m.group(1), "!", None))
            continue
        m = re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*({_VAL})", part)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
            continue
        if re.fullmatch(_KEY, part):
            reqs.append((part, "exists", None))
            continue
        raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")
    return reqs


def _labels_match(reqs: List[Tuple[str, str, Any]], labels: Mapping[str, str]) -> bool:
    for key, op, val in reqs:
        has = key in labels
        if op == "=" and (not has or labels[key] != val):
            return False
        if op == "!=" and has and labels[key] == val:
            return False
        if op == "exists" and not has:
            return False
        if op == "!" and has:
            return False
        if op == "in" and (not has or labels[key] not in val):
            return False
        if op == "notin" and has and labels[key] in val:
            return False
    return True


def parse_field_selector(kind: Kind, s: str) -> List[Tuple[str, bool, str]]:
    reqs: List[Tuple[str, bool, str]] = []
    for raw in (s or "").split(","):
        part = raw.strip()
        if not part:
            continue
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid selector: '{s}'; can't understand '{part}'")
        if m.group(1) not in kind.field_labels:
            raise ApiError(400, "BadRequest", f'"{m.group(1)}" is not a known field selector: only '
                           + ", ".join(f'"{f}"' for f in kind.field_labels))
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return reqs


def _field(obj: Obj, path: str) -> str:
    cur: Any = obj
    for p in path.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def _fields_match(reqs: List[Tuple[str, bool, str]], obj: Obj) -> bool:
    return all((_field(obj, f) == v) == eq for f, eq, v in reqs)


# --------------------------------------------------------------------------------------------
# patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


#: Lists that a strategic merge patch merges by a key (the rest are replaced, as merge patch does).
SMP_KEYS = {("spec", "ports"): "port", ("spec", "containers"): "name", ("status", "conditions"): "type"}


def strategic_merge_patch(target: Any, patch: Any, path: Tuple[str, ...] = ()) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        sub = path + (k,)
        key = SMP_KEYS.get(sub)
        if v is None:
            out.pop(k, None)
        elif key and isinstance(v, list) and isinstance(out.get(k), list):
            merged = [copy.deepcopy(x) for x in out[k]]
            for item in v:
                idx = next((i for i, x in enumerate(merged)
                            if isinstance(x, dict) and isinstance(item, dict) and x.get(key) == item.get(key)), None)
                if idx is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[idx] = merge_patch(merged[idx], item)
            out[k] = merged
        else:
            out[k] = strategic_merge_patch(out.get(k), v, sub)
    return out


def _pointer(doc: Any, ptr: str) -> Tuple[Any, Union[str, int]]:
    if not ptr.startswith("/"):
        raise ValueError(f"bad pointer {ptr!r}")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ptr[1:].split("/")]
    cur = doc
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    last: Union[str, int] = parts[-1]
    if isinstance(cur, list):
        last = len(cur) if last == "-" else int(last)
    return cur, last


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902."""
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind = op["op"]
            if kind in ("add", "replace", "test"):
                parent, key = _pointer(doc, op["path"])
                if kind == "test":
                    if parent[key] != op["value"]:
                        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                       f"request: testing value {op['path']} failed")
                elif kind == "add" and isinstance(parent, list):
                    parent.insert(int(key), copy.deepcopy(op["value"]))
                else:
                    if kind == "replace":
                        parent[key]  # noqa: B018 - must exist
                    parent[key] = copy.deepcopy(op["value"])
            elif kind == "remove":
                parent, key = _pointer(doc, op["path"])
                del parent[key]
            elif kind in ("move", "copy"):
                sparent, skey = _pointer(doc, op["from"])
                val = sparent[skey]
                if kind == "move":
                    del sparent[skey]
                parent, key = _pointer(doc, op["path"])
                if isinstance(parent, list):
                    parent.insert(int(key), copy.deepcopy(val))
                else:
                    parent[key] = copy.deepcopy(val)
            else:
                raise ApiError(400, "BadRequest", f"Unexpected kind: {kind}")
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}")
    return doc


# --------------------------------------------------------------------------------------------
# validation and defaults

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _cause(field_: str, reason: str, message: str) -> Obj:
    return {"reason": reason, "message": message, "field": field_}


def _invalid(kind: Kind, name: str, causes: List[Obj]) -> ApiError:
    msg = "; ".join(f"{c['field']}: {c['message']}" for c in causes)
    if len(causes) > 1:
        msg = "[" + ", ".join(f"{c['field']}: {c['message']}" for c in causes) + "]"
    details = {"name": name}
    if kind.group:
        details["group"] = kind.group
    details.update({"kind": kind.kind, "causes": causes})
    return ApiError(422, "Invalid", f'{kind.kind} "{name}" is invalid: {msg}', details)


def _port_ok(p: Any) -> bool:
    return isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535


def _validate(kind: Kind, obj: Obj) -> None:
    """The apiserver's validation, in part: names, maps of strings, the fields the namer reads."""
    md = obj.get("metadata")
    name = md.get("name", "") if isinstance(md, dict) else ""
    causes: List[Obj] = []
    pattern, limit = (_LABEL1035, 63) if kind.storage == "services" else (_SUBDOMAIN, 253)
    if not isinstance(name, str) or not pattern.fullmatch(name) or len(name) > limit:
        causes.append(_cause("metadata.name", "FieldValueInvalid",
                             f'Invalid value: "{name}": a lowercase RFC 1123 '
                             f'{"label" if limit == 63 else "subdomain"} must consist of lower case alphanumeric '
                             "characters, '-' or '.'"))
    ns = md.get("namespace") if isinstance(md, dict) else None
    if kind.namespaced and (not isinstance(ns, str) or not _LABEL1123.fullmatch(ns) or len(ns) > 63):
        causes.append(_cause("metadata.namespace", "FieldValueInvalid", f'Invalid value: "{ns}"'))
    for m in ("labels", "annotations"):
        v = md.get(m) if isinstance(md, dict) else None
        if v is not None and not (isinstance(v, dict) and all(isinstance(a, str) and isinstance(b, str)
                                                            for a, b in v.items())):
            causes.append(_cause(f"metadata.{m}", "FieldValueInvalid", "Invalid value: must be a map of strings"))
        if m == "labels" and isinstance(v, dict):
            for a, b in v.items():
                if isinstance(b, str) and (len(b) > 63 or not re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", b)):
                    causes.append(_cause(f"metadata.labels[{a}]", "FieldValueInvalid", f'Invalid value: "{b}"'))
    s = kind.storage
    if s == "endpoints":
        for i, sub in enumerate(obj.get("subsets") or []):
            for key in ("addresses", "notReadyAddresses"):
                for j, a in enumerate((sub or {}).get(key) or []):
                    ip = (a or {}).get("ip")
                    try:
                        ipaddress.ip_address(ip)
                    except ValueError:
                        causes.append(_cause(f"subsets[{i}].{key}[{j}].ip", "FieldValueInvalid",
                                             f'Invalid value: "{ip}": must be a valid IP address'))
            for j, p in enumerate((sub or {}).get("ports") or []):
                if not _port_ok((p or {}).get("port")):
                    causes.append(_cause(f"subsets[{i}].ports[{j}].port", "FieldValueInvalid",
                                         "Invalid value: must be between 1 and 65535, inclusive"))
    elif s == "services":
        spec = obj.get("spec") or {}
        ports = spec.get("ports") or []
        if not ports and spec.get("clusterIP") != "None" and spec.get("type") != "ExternalName":
            causes.append(_cause("spec.ports", "FieldValueRequired", "Required value"))
        for j, p in enumerate(ports):
            if not _port_ok((p or {}).get("port")):
                causes.append(_cause(f"spec.ports[{j}].port", "FieldValueInvalid",
                                     "Invalid value: must be between 1 and 65535, inclusive"))
            tp = (p or {}).get("targetPort")
            if tp is not None and not (isinstance(tp, str) or _port_ok(tp)):
                causes.append(_cause(f"spec.ports[{j}].targetPort", "FieldValueInvalid", "Invalid value"))
            if len(ports) > 1 and not (p or {}).get("name"):
                causes.append(_cause(f"spec.ports[{j}].name", "FieldValueRequired", "Required value"))
    elif s == "endpointslices":
        if obj.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
            causes.append(_cause("addressType", "FieldValueNotSupported",
                                 f'Unsupported value: "{obj.get("addressType")}": supported values: "FQDN", "IPv4", "IPv6"'))
        if not isinstance(obj.get("endpoints", []), list):
            causes.append(_cause("endpoints", "FieldValueInvalid", "Invalid value"))
        for j, e in enumerate(obj.get("endpoints") or []):
            addrs = (e or {}).get("addresses")
            if not isinstance(addrs, list) or not 1 <= len(addrs) <= 100:
                causes.append(_cause(f"endpoints[{j}].addresses", "FieldValueRequired",
                                     "Required value: must contain at least 1 address"))
        for j, p in enumerate(obj.get("ports") or []):
            if (p or {}).get("port") is not None and not _port_ok(p["port"]):
                causes.append(_cause(f"ports[{j}].port", "FieldValueInvalid", "Invalid value"))
    elif s == "ingresses":
        spec = obj.get("spec") or {}
        backends: List[Tuple[str, Any]] = []
        if spec.get("defaultBackend") is not None:
            backends.append(("spec.defaultBackend", spec["defaultBackend"]))
        for i, rule in enumerate(spec.get("rules") or []):
            for j, p in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
                f = f"spec.rules[{i}].http.paths[{j}]"
                if (p or {}).get("pathType") not in ("Exact", "Prefix", "ImplementationSpecific"):
                    causes.append(_cause(f + ".pathType", "FieldValueRequired",
                                         "Required value: pathType must be specified"))
                backends.append((f + ".backend", (p or {}).get("backend")))
        for f, b in backends:
            svc = (b or {}).get("service") if isinstance(b, dict) else None
            if svc is None and not (isinstance(b, dict) and b.get("resource")):
                causes.append(_cause(f, "FieldValueInvalid", "Invalid value: one backend must be specified"))
            elif svc is not None:
                port = svc.get("port") or {}
                if ("number" in port) == ("name" in port):
                    causes.append(_cause(f + ".service.port", "FieldValueInvalid",
                                         "Invalid value: port name or number is required"))
    elif s == "configmaps":
        data = obj.get("data")
        if data is not None and not (isinstance(data, dict) and all(isinstance(v, str) for v in data.values())):
            causes.append(_cause("data", "FieldValueInvalid", "Invalid value: must be a map of strings"))
    elif s == "pods":
        if not (obj.get("spec") or {}).get("containers"):
            causes.append(_cause("spec.containers", "FieldValueRequired", "Required value"))
    if causes:
        raise _invalid(kind, name if isinstance(name, str) else "", causes)


# --------------------------------------------------------------------------------------------
# records


@dataclass
class Request:
    """One request the fake received (``status`` is set once it is answered)."""

    method: str
    path: str
    query: Dict[str, str]
    watch: bool
    headers: Dict[str, str]
    status: Optional[int] = None


@dataclass
class WatchInfo:
    """An open watch stream."""

    path: str
    query: Dict[str, str]
    kind: str
    namespace: Optional[str]
    name: Optional[str]
    since: Optional[str]  # the resourceVersion it started from (None: current state first)
    bookmarks: bool


@dataclass
class _Event:
    rv: int
    storage: str
    ns: str
    name: str
    obj: Optional[Obj]  # the object after the change (None: deleted)
    prev: Optional[Obj]  # before (None: created)


class _Watcher:
    def __init__(self, fake: "FakeK8s", kind: Kind, ns: Optional[str], name: Optional[str],
                 labels: List[Tuple[str, str, Any]], fields: List[Tuple[str, bool, str]], bookmarks: bool,
                 info: WatchInfo) -> None:
        self.fake = fake
        self.kind = kind
        self.ns = ns
        self.name = name
        self.labels = labels
        self.fields = fields
        self.bookmarks = bookmarks
        self.info = info
        self.items: Deque[Tuple[Any, ...]] = deque()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.dead = False  # ending: takes no more items
        self.started = False  # its response head is sent

    def matches(self, obj: Optional[Obj]) -> bool:
        if obj is None:
            return False
        md = obj.get("metadata") or {}
        if self.ns is not None and md.get("namespace") != self.ns:
            return False
        if self.name is not None and md.get("name") != self.name:
            return False
        return _labels_match(self.labels, md.get("labels") or {}) and _fields_match(self.fields, obj)

    def convert(self, ev: _Event) -> Optional[Tuple[str, Obj]]:
        """The watch event this watcher sees for a change, or None (the apiserver's cacheWatcher rules)."""
        if ev.storage != self.kind.storage:
            return None
        now, before = self.matches(ev.obj), self.matches(ev.prev)
        if now and before:
            return "MODIFIED", ev.obj  # type: ignore[return-value]
        if now:
            return "ADDED", ev.obj  # type: ignore[return-value]
        if before:
            gone = copy.deepcopy(ev.prev)
            gone["metadata"]["resourceVersion"] = str(ev.rv)  # type: ignore[index]
            return "DELETED", gone  # type: ignore[return-value]
        return None

    def push(self, item: Tuple[Any, ...]) -> None:
        """Queue an item (the caller holds the fake's lock)."""
        if self.dead:
            return
        if len(self.items) >= self.fake.max_watch_queue:
            # the apiserver's cacheWatcher drops a consumer this slow: the stream just ends
            self.items.clear()
            self.items.append(("end",))
            self.dead = True
        else:
            self.items.append(item)
        self.wake()

    def wake(self) -> None:
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def close(self) -> None:
        for s in (self.wake_r, self.wake_w):
            try:
                s.close()
            except OSError:
                pass


class _Disconnect(Exception):
    pass


# --------------------------------------------------------------------------------------------
# the server


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _http_date() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _truthy(v: Optional[str]) -> bool:
    """The apiserver's query-parameter booleans: "0", "f", "false" (any case) are false."""
    return v is not None and v.lower() not in ("0", "f", "false")



def _readable(socks: List[socket.socket], timeout: Optional[float]) -> List[socket.socket]:
    """The sockets of ``socks`` with something to read (or closed) within ``timeout`` seconds. poll,
    not select: a fake holding hundreds of watches has descriptors past select's FD_SETSIZE."""
    poller = select.poll()
    for x in socks:
        poller.register(x, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(None if timeout is None else max(0, int(timeout * 1000)))}
    return [x for x in socks if x.fileno() in ready]


class FakeK8s:
    """A fake kube-apiserver on 127.0.0.1 (see the module docstring)."""

    def __init__(self, token: Optional[str] = None, *, history: int = 1000, gone: str = "event",
                 bookmark_interval: Optional[float] = None, watch_timeout: Optional[float] = None,
                 max_object_bytes: int = 1_572_864, max_body_bytes: int = 3_145_728,
                 max_connections: int = 256, max_watches: int = 200, max_objects: int = 10_000,
                 max_watch_queue: int = 10_000, event_chunk_bytes: Optional[int] = None,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        if gone not in ("event", "status"):
            raise ValueError("gone must be 'event' or 'status'")
        self.token = token
        self.gone = gone
        self.history_size = history
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.max_object_bytes = max_object_bytes
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.max_watches = max_watches
        self.max_objects = max_objects
        self.max_watch_queue = max_watch_queue
        self.event_chunk_bytes = event_chunk_bytes
        self.tls = tls  # a server context: HTTPS, as the API server a pod reaches in-cluster
        self.host = "127.0.0.1"
        self.port = 0
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # notified on every request and watch change
        self._objects: Dict[Tuple[str, str, str], Obj] = {}
        self._rv = FIRST_RV
        self._history: Deque[_Event] = deque()
        self._floor = 0  # a watch from a version below this gets 410
        self._watchers: Set[_Watcher] = set()
        self._requests: Deque[Request] = deque(maxlen=10_000)
        self._failures: List[List[Any]] = []
        self._pages: "OrderedDict[str, Tuple[List[Obj], str]]" = OrderedDict()
        self._next_ip = 10
        self._mode = "up"
        self._stalled = False
        self._stall_headers = False
        self._listener: Optional[socket.socket] = None
        self._accept_thread: Optional[threading.Thread] = None
        self._conns: Dict[socket.socket, threading.Thread] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._stop_event = threading.Event()
        self._started = False
        self._ticker: Optional[threading.Thread] = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://{self.host}:{self.port}"

    def __enter__(self) -> "FakeK8s":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "FakeK8s":
        if self._started:
            return self
        self._started = True
        self._listen()
        if self.bookmark_interval:
            self._ticker = threading.Thread(target=self._tick, name="fakek8s-bookmarks", daemon=True)
            self._ticker.start()
        return self

    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(128)
        self.port = s.getsockname()[1]
        self._listener = s
        self._accept_thread = threading.Thread(target=self._accept_loop, args=(s,), name="fakek8s-accept",
                                               daemon=True)
        self._accept_thread.start()

    def _unlisten(self) -> None:
        s, t = self._listener, self._accept_thread
        self._listener = self._accept_thread = None
        if s is not None:
            self._wake_w.send(b"x")
            if t is not None:
                t.join(5)
            s.close()
            while True:  # drain the wake-ups
                r = _readable([self._wake_r], 0)
                if not r:
                    break
                self._wake_r.recv(1024)

    def stop(self) -> None:
        """Close the listener, every connection and every watch; join every thread."""
        if self._stopping or not self._started:
            return
        self._stopping = True
        self._stop_event.set()
        self._unlisten()
        with self._lock:
            for w in list(self._watchers):
                w.wake()
            conns = list(self._conns.items())
            self._cond.notify_all()
        for sock, _ in conns:
            self._abort(sock)
        deadline = time.monotonic() + 5
        for _, t in conns:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._ticker is not None:
            self._ticker.join(max(0.0, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()

    @staticmethod
    def _abort(sock: socket.socket) -> None:
        """Reset a connection (RST): an apiserver that went away."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            r = _readable([listener, self._wake_r], None)
            if self._wake_r in r or self._stopping:
                return
            try:
                sock, _addr = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if len(self._conns) >= self.max_connections:
                    full = True
                else:
                    full = False
                    t = threading.Thread(target=self._serve_conn, args=(sock,), name="fakek8s-conn", daemon=True)
                    self._conns[sock] = t
            if full:
                self._reject_full(sock)
            else:
                t.start()

    def _reject_full(self, sock: socket.socket) -> None:
        body = json.dumps(status_object(429, "TooManyRequests", "Too many requests, please try again later.",
                                        {"retryAfterSeconds": 1})).encode()
        try:
            sock.sendall(b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
        sock.close()

    def _tick(self) -> None:
        while not self._stop_event.wait(self.bookmark_interval):
            self.bookmark()

    # ---------------------------------------------------------------- outages and faults

    def down(self, mode: str = "refuse") -> None:
        """An outage: ``"refuse"`` closes the listener (connections refused), ``"503"`` answers every
        request 503 ServiceUnavailable. Either way every open connection is reset."""
        if mode not in ("refuse", "503"):
            raise ValueError("mode must be 'refuse' or '503'")
        if mode == "refuse":
            self._unlisten()
        with self._lock:
            self._mode = mode
            conns = list(self._conns)
        for sock in conns:
            self._abort(sock)

    def up(self) -> None:
        """End an outage (the same port again)."""
        with self._lock:
            mode, self._mode = self._mode, "up"
        if mode == "refuse" and self._listener is None and not self._stopping:
            self._listen()

    @contextlib.contextmanager
    def outage(self, mode: str = "refuse") -> Iterator["FakeK8s"]:
        self.down(mode)
        try:
            yield self
        finally:
            self.up()

    def fail_next(self, path: str, status: int = 500, body: Optional[Union[bytes, str, Obj]] = None,
                  times: int = 1, method: Optional[str] = None) -> None:
        """Answer the next ``times`` requests whose path is ``path`` (and method, if given) with
        ``status`` and ``body`` (a dict: JSON; None: a Status object) instead of serving them."""
        with self._lock:
            self._failures.append([path, method, status, body, times])

    def stall_watches(self, headers: bool = True) -> None:
        """Watch streams stay open and send nothing (events queue up until ``unstall_watches()``);
        with ``headers=False`` new watch requests get no response head either."""
        with self._lock:
            self._stalled = True
            self._stall_headers = not headers

    def unstall_watches(self) -> None:
        with self._lock:
            self._stalled = False
            self._stall_headers = False
            for w in self._watchers:
                w.wake()
            self._cond.notify_all()

    @contextlib.contextmanager
    def stalled(self, headers: bool = True) -> Iterator["FakeK8s"]:
        self.stall_watches(headers)
        try:
            yield self
        finally:
            self.unstall_watches()

    def _select(self, path: Optional[str], started: bool = False) -> List[_Watcher]:
        return [w for w in self._watchers
                if not w.dead and (path is None or w.info.path == path) and (w.started or not started)]

    def end_watches(self, path: Optional[str] = None) -> int:
        """End open watch streams cleanly (the last chunk), as the apiserver does at timeoutSeconds,
        after the events already queued for them; while watches are stalled, their queued events are
        dropped instead (the client must resume from the last version it saw). Returns how many."""
        with self._lock:
            ws = self._select(path)
            for w in ws:
                if self._stalled:
                    w.items.clear()
                w.push(("end",))
                w.dead = True
            return len(ws)

    def bookmark(self, path: Optional[str] = None) -> int:
        """Send a BOOKMARK at the current resourceVersion to open watches that allow bookmarks."""
        with self._lock:
            ws = [w for w in self._select(path) if w.bookmarks]
            for w in ws:
                w.push(("bookmark", str(self._rv), None))
            return len(ws)

    def send_raw(self, data: Union[bytes, str, Obj], path: Optional[str] = None, framed: bool = True) -> int:
        """Write ``data`` on open watch streams (whose path is ``path``, if given): a dict as one JSON
        line; bytes or str as they are, in one chunk (``framed=False``: straight onto the socket,
        outside the chunked framing). Returns how many streams."""
        if isinstance(data, dict):
            raw = (json.dumps(data) + "\n").encode()
        elif isinstance(data, str):
            raw = data.encode()
        else:
            raw = bytes(data)
        with self._lock:
            ws = self._select(path)
            for w in ws:
                w.push(("raw", raw, framed))
            return len(ws)

    def send_event(self, type_: str, obj: Obj, path: Optional[str] = None) -> int:
        """Send ``{"type": type_, "object": obj}`` verbatim (an out-of-order or made-up event)."""
        return self.send_raw({"type": type_, "object": obj}, path)

    # ---------------------------------------------------------------- history

    def compact(self, rv: Union[int, str], gone: Optional[str] = None) -> None:
        """Forget the changes up to ``rv``: a watch from a version below ``rv`` then gets 410 (in the
        form ``gone``, if given: "event" or "status"; it stays the fake's form)."""
        if gone is not None:
            if gone not in ("event", "status"):
                raise ValueError("gone must be 'event' or 'status'")
            self.gone = gone
        with self._lock:
            n = min(int(rv), self._rv)
            while self._history and self._history[0].rv <= n:
                self._history.popleft()
            self._floor = max(self._floor, n)

    def expire_history(self, gone: Optional[str] = None) -> None:
        """Forget all history: a watch from any version but the current one gets 410."""
        self.compact(self._rv, gone)

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    # ---------------------------------------------------------------- the store (Python API)

    def apply(self, obj: Obj) -> Obj:
        """Create or replace ``obj`` (any served version; its resourceVersion is ignored), bumping the
        resourceVersion and notifying watchers, unless it changes nothing. Returns the stored copy."""
        kind = self._kind_of_obj(obj)
        md = obj.get("metadata") or {}
        ns = md.get("namespace", "default") if kind.namespaced else ""
        with self._lock:
            return from_storage(kind, self._upsert(kind, ns, md.get("name", ""), obj, source="api"))

    def create(self, obj: Obj) -> Obj:
        """Create ``obj``; ApiError(409) when it exists."""
        kind = self._kind_of_obj(obj)
        md = obj.get("metadata") or {}
        ns = md.get("namespace", "default") if kind.namespaced else ""
        with self._lock:
            return from_storage(kind, self._create(kind, ns, obj, source="api"))

    def delete(self, kind: str, ns: str, name: str) -> Optional[Obj]:
        """Delete an object; returns its last state, or None when there was none."""
        k = kind_of(kind)
        with self._lock:
            if (k.storage, ns, name) not in self._objects:
                return None
            return from_storage(k, self._delete(k, ns, name))

    def get(self, kind: str, ns: str, name: str) -> Optional[Obj]:
        k = kind_of(kind)
        with self._lock:
            obj = self._objects.get((k.storage, ns, name))
            return from_storage(k, obj) if obj is not None else None

    def list(self, kind: str, ns: Optional[str] = None) -> List[Obj]:
        k = kind_of(kind)
        with self._lock:
            return [from_storage(k, o) for (s, n, _), o in sorted(self._objects.items())
                    if s == k.storage and (ns is None or n == ns)]

    def objects(self) -> int:
        with self._lock:
            return len(self._objects)

    @staticmethod
    def _kind_of_obj(obj: Obj) -> Kind:
        try:
            return _BY_TYPE[(obj["apiVersion"], obj["kind"])]
        except KeyError:
            raise KeyError(f"the fake serves no {obj.get('apiVersion')}/{obj.get('kind')}") from None

    # ---------------------------------------------------------------- the store (shared with HTTP)

    def _size_check(self, obj: Obj) -> None:
        if len(json.dumps(obj)) > self.max_object_bytes:
            raise ApiError(413, "RequestEntityTooLarge", "etcdserver: request is too large")

    def _prepare(self, kind: Kind, ns: str, body: Any, old: Optional[Obj], source: str) -> Obj:
        """The object to store: the body in the storage version, with server-managed fields."""
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was not an object")
        if body.get("kind") not in (None, kind.kind) or body.get("apiVersion") not in (None, kind.api_version):
            raise ApiError(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) does not "
                           f"match the expected API version ({kind.api_version})")
        obj = to_storage(kind, _ordered(kind, copy.deepcopy(body)))
        canon = _CANONICAL[kind.storage]
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if kind.namespaced:
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        for k in ("selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            md.pop(k, None)
        if old is None:
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = _now()
            if kind.generation:
                md["generation"] = 1
            else:
                md.pop("generation", None)
        else:
            omd = old["metadata"]
            md["uid"] = omd["uid"]
            md["creationTimestamp"] = omd["creationTimestamp"]
            if "generation" in omd:
                changed = {k: v for k, v in obj.items() if k not in ("metadata", "status")} != \
                    {k: v for k, v in old.items() if k not in ("metadata", "status")}
                md["generation"] = omd["generation"] + (1 if changed else 0)
        self._defaults(canon, obj, old)
        if canon.status_subresource and source == "http":
            if old is not None:
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                else:
                    obj.pop("status", None)
            else:
                obj["status"] = {"phase": "Pending"} if canon.storage == "pods" else (
                    {"loadBalancer": {}} if canon.storage in ("services", "ingresses") else {})
        _validate(canon, obj)
        md = _reorder_meta(md)
        obj["metadata"] = md
        return obj

    def _defaults(self, kind: Kind, obj: Obj, old: Optional[Obj]) -> None:
        s = kind.storage
        if s == "services":
            spec = obj.setdefault("spec", {})
            if isinstance(spec, dict):
                for p in spec.get("ports") or []:
                    if isinstance(p, dict):
                        p.setdefault("protocol", "TCP")
                        p.setdefault("targetPort", p.get("port"))
                spec.setdefault("type", "ClusterIP")
                if spec["type"] != "ExternalName":
                    if not spec.get("clusterIP"):
                        oldip = ((old or {}).get("spec") or {}).get("clusterIP")
                        spec["clusterIP"] = oldip or self._allocate_ip()
                    spec.setdefault("clusterIPs", [spec["clusterIP"]])
                    spec.setdefault("ipFamilies", ["IPv4"])
                    spec.setdefault("ipFamilyPolicy", "SingleStack")
                    spec.setdefault("internalTrafficPolicy", "Cluster")
                spec.setdefault("sessionAffinity", "None")
            obj.setdefault("status", {"loadBalancer": {}})
        elif s == "endpoints":
            for sub in obj.get("subsets") or []:
                for p in (sub or {}).get("ports") or []:
                    if isinstance(p, dict):
                        p.setdefault("protocol", "TCP")
        elif s == "endpointslices":
            for p in obj.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
        elif s == "ingresses":
            obj.setdefault("status", {"loadBalancer": {}})

    def _allocate_ip(self) -> str:
        taken = {((o.get("spec") or {}).get("clusterIP")) for (s, _, _), o in self._objects.items() if s == "services"}
        while True:
            ip = str(CLUSTER_IP_NET[self._next_ip])
            self._next_ip = self._next_ip + 1 if self._next_ip < CLUSTER_IP_NET.num_addresses - 2 else 10
            if ip not in taken:
                return ip

    def _commit(self, kind: Kind, ns: str, name: str, obj: Optional[Obj], prev: Optional[Obj]) -> Optional[Obj]:
        """Store a change under a new resourceVersion, remember it, tell the watchers."""
        self._rv += 1
        key = (kind.storage, ns, name)
        if obj is None:
            del self._objects[key]
        else:
            obj["metadata"]["resourceVersion"] = str(self._rv)
            obj["metadata"] = _reorder_meta(obj["metadata"])
            self._objects[key] = obj
        ev = _Event(self._rv, kind.storage, ns, name, obj, prev)
        self._history.append(ev)
        while len(self._history) > self.history_size:
            self._floor = max(self._floor, self._history.popleft().rv)
        for w in self._watchers:
            conv = w.convert(ev)
            if conv is not None:
                w.push(("event", conv[0], conv[1]))
        self._cond.notify_all()
        return obj

    def _create(self, kind: Kind, ns: str, body: Any, source: str) -> Obj:
        md = body.get("metadata") if isinstance(body, dict) else None
        name = (md or {}).get("name") if isinstance(md, dict) else None
        if not name and isinstance(md, dict) and md.get("generateName"):
            name = md["generateName"] + uuid.uuid4().hex[:5]
            body = copy.deepcopy(body)
            body["metadata"]["name"] = name
        if not name:
            raise _invalid(kind, "", [_cause("metadata.name", "FieldValueRequired",
                                             "Required value: name or generateName is required")])
        if kind.namespaced and isinstance(md, dict) and md.get("namespace") not in (None, "", ns):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                           "sent on the request")
        if (kind.storage, ns, name) in self._objects:
            raise ApiError(409, "AlreadyExists", f'{kind.qualified} "{name}" already exists', kind.details(name))
        if len(self._objects) >= self.max_objects:
            raise ApiError(403, "Forbidden", f'{kind.qualified} "{name}" is forbidden: the fake holds at most '
                           f"{self.max_objects} objects")
        obj = self._prepare(kind, ns, body, None, source)
        self._size_check(obj)
        out = self._commit(kind, ns, name, obj, None)
        assert out is not None
        return out

    def _update(self, kind: Kind, ns: str, name: str, body: Any, source: str, cas: bool) -> Tuple[Obj, bool]:
        """Replace an object; (stored, created)."""
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was not an object")
        md = body.get("metadata") or {}
        if md.get("name") not in (None, "", name) or not md.get("name") and source == "http":
            raise ApiError(400, "BadRequest", f"the name of the object ({md.get('name')}) does not match the name "
                           f"on the URL ({name})")
        if kind.namespaced and md.get("namespace") not in (None, "", ns):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                           "sent on the request")
        old = self._objects.get((kind.storage, ns, name))
        rv = md.get("resourceVersion") if cas else None
        if old is None:
            if cas and not kind.create_on_update:
                raise ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', kind.details(name))
            if rv:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": '
                               "the object has been modified; please apply your changes to the latest version and "
                               "try again", kind.details(name))
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})["name"] = name
            return self._create(kind, ns, body, source), True
        if cas:
            if rv is None or rv == "":
                if not kind.unconditional_update:
                    raise _invalid(kind, name, [_cause("metadata.resourceVersion", "FieldValueInvalid",
                                                       "Invalid value: 0x0: must be specified for an update")])
            elif str(rv) != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": '
                               "the object has been modified; please apply your changes to the latest version and "
                               "try again", kind.details(name))
            uid = md.get("uid")
            if uid and uid != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {uid}, UID in object "
                               f"meta: {old['metadata']['uid']}", kind.details(name))
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["name"] = name
        obj = self._prepare(kind, ns, body, old, source)
        self._size_check(obj)
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if obj == old:
            return old, False  # a no-op: no new version, no event
        out = self._commit(kind, ns, name, obj, old)
        assert out is not None
        return out, False

    def _upsert(self, kind: Kind, ns: str, name: str, body: Obj, source: str) -> Obj:
        return self._update(kind, ns, name, body, source, cas=False)[0]

    def _delete(self, kind: Kind, ns: str, name: str, preconditions: Optional[Obj] = None) -> Obj:
        old = self._objects.get((kind.storage, ns, name))
        if old is None:
            raise ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', kind.details(name))
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                           f"object meta: {old['metadata']['uid']}", kind.details(name))
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != old["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f"Precondition failed: ResourceVersion in precondition: "
                           f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                           f"{old['metadata']['resourceVersion']}", kind.details(name))
        self._commit(kind, ns, name, None, old)
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        return gone

    # ---------------------------------------------------------------- counters

    def requests(self, path: Optional[str] = None, method: Optional[str] = None,
                 watch: Optional[bool] = None) -> List[Request]:
        """The requests received (the last 10,000), oldest first, filtered by exact path, method and
        whether they were watches."""
        with self._lock:
            return [r for r in self._requests if (path is None or r.path == path)
                    and (method is None or r.method == method) and (watch is None or r.watch == watch)]

    def count(self, path: Optional[str] = None, method: Optional[str] = None, watch: Optional[bool] = None) -> int:
        return len(self.requests(path, method, watch))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_requests(self, n: int, path: Optional[str] = None, method: Optional[str] = None,
                      watch: Optional[bool] = None, timeout: float = 5.0) -> List[Request]:
        """Wait until at least ``n`` matching requests arrived; returns them (TimeoutError otherwise)."""
        return self._wait(lambda: (lambda rs: rs if len(rs) >= n else None)(self.requests(path, method, watch)),
                          timeout, f"{n} requests to {path}")

    def watches(self, path: Optional[str] = None) -> List[WatchInfo]:
        with self._lock:
            return [w.info for w in self._select(path, started=True)]

    def wait_watches(self, n: int = 1, path: Optional[str] = None, timeout: float = 5.0) -> List[WatchInfo]:
        """Wait until at least ``n`` watch streams (on ``path``, if given) are open and have their
        response head; returns them (TimeoutError otherwise)."""
        return self._wait(lambda: (lambda ws: ws if len(ws) >= n else None)(self.watches(path)),
                          timeout, f"{n} watches on {path}")

    def wait_until(self, probe: Callable[[], Any], timeout: float = 5.0, what: str = "the condition") -> Any:
        """Wait until ``probe()`` is truthy (it is tried again on every request, write and watch
        change); returns its value (TimeoutError otherwise). E.g. ``wait_until(lambda: not k8s.watches())``."""
        return self._wait(lambda: probe() or None, timeout, what)

    def _wait(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = probe()
                if got is not None:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fakek8s: no {what} within {timeout} s")
                self._cond.wait(left)

    # ---------------------------------------------------------------- HTTP: connections

    def _serve_conn(self, sock: socket.socket) -> None:
        if self.tls is not None:
            raw = sock
            try:
                raw.settimeout(10)
                sock = self.tls.wrap_socket(raw, server_side=True)  # takes over the descriptor
                sock.settimeout(None)
            except (OSError, ValueError):
                with self._lock:
                    self._conns.pop(raw, None)
                    self._cond.notify_all()
                raw.close()
                return
            with self._lock:
                self._conns[sock] = self._conns.pop(raw)
        rfile = sock.makefile("rb", buffering=65536)
        try:
            while not self._stopping:
                req = self._read_request(sock, rfile)
                if req is None:
                    break
                if not self._handle(sock, *req):
                    break
        except (OSError, ValueError, _Disconnect):
            pass
        finally:
            with self._lock:
                self._conns.pop(sock, None)
                self._cond.notify_all()
            try:
                rfile.close()
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def _read_request(self, sock: socket.socket, rfile: Any
                      ) -> Optional[Tuple[str, str, str, Dict[str, str], bytes]]:
        line = rfile.readline(8193)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(8193)
        if not line:
            return None
        if len(line) > 8192:
            self._send_plain(sock, 414, "URI Too Long", close=True)
            return None
        try:
            method, target, version = line.decode("latin-1").split()
        except ValueError:
            self._send_plain(sock, 400, "Bad Request", close=True)
            return None
        headers: Dict[str, str] = {}
        total = 0
        while True:
            h = rfile.readline(65537)
            total += len(h)
            if not h:
                return None
            if h in (b"\r\n", b"\n"):
                break
            if total > 65536 or len(headers) > 100:
                self._send_plain(sock, 431, "Request Header Fields Too Large", close=True)
                return None
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("expect", "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            size_total = 0
            while True:
                size = int(rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                size_total += size
                if size_total > self.max_body_bytes:
                    self._send_status(sock, method, ApiError(413, "RequestEntityTooLarge", "request is too large"),
                                      close=True)
                    return None
                parts.append(rfile.read(size))
                rfile.read(2)
            body = b"".join(parts)
        elif headers.get("content-length"):
            n = int(headers["content-length"])
            if n > self.max_body_bytes:
                self._send_status(sock, method, ApiError(413, "RequestEntityTooLarge", "request is too large"),
                                  close=True)
                return None
            body = rfile.read(n)
            if len(body) < n:
                return None
        return method.upper(), target, version, headers, body

    def _head(self, status: int, headers: List[Tuple[str, str]]) -> bytes:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {status} {phrase}", f"Date: {_http_date()}"]
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, sock: socket.socket, method: str, status: int, body: bytes, content_type: str,
              close: bool = False, extra: Optional[List[Tuple[str, str]]] = None) -> None:
        headers = [("Cache-Control", "no-cache, private"), ("Content-Type", content_type)]
        headers += extra or []
        if close:
            headers.append(("Connection", "close"))
        if len(body) > CHUNK_THRESHOLD and method != "HEAD":
            headers.append(("Transfer-Encoding", "chunked"))
            out = [self._head(status, headers)]
            for i in range(0, len(body), 4096):
                piece = body[i:i + 4096]
                out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
            out.append(b"0\r\n\r\n")
            sock.sendall(b"".join(out))
        else:
            headers.append(("Content-Length", str(len(body))))
            sock.sendall(self._head(status, headers) + (b"" if method == "HEAD" else body))

    def _send_json(self, sock: socket.socket, method: str, status: int, obj: Any, close: bool = False,
                   extra: Optional[List[Tuple[str, str]]] = None) -> None:
        self._send(sock, method, status, (json.dumps(obj, separators=(",", ":")) + "\n").encode(),
                   "application/json", close, extra)

    def _send_status(self, sock: socket.socket, method: str, err: ApiError, close: bool = False) -> None:
        extra = list(err.headers.items())
        self._send_json(sock, method, err.code, err.status, close, extra)

    def _send_plain(self, sock: socket.socket, status: int, text: str, close: bool = False) -> None:
        self._send(sock, "GET", status, text.encode(), "text/plain; charset=utf-8", close,
                   [("X-Content-Type-Options", "nosniff")])

    # ---------------------------------------------------------------- HTTP: requests

    def _handle(self, sock: socket.socket, method: str, target: str, version: str, headers: Dict[str, str],
                body: bytes) -> bool:
        """Serve one request; False when the connection must close."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        legacy_watch = _is_legacy_watch(path)
        is_watch = method == "GET" and (legacy_watch or _truthy(query.get("watch")))
        rec = Request(method, path, query, is_watch, dict(headers))
        close = version == "HTTP/1.0" or headers.get("connection", "").lower() == "close"
        with self._lock:
            self._requests.append(rec)
            self._cond.notify_all()
            mode = self._mode
            failure = None
            for f in self._failures:
                if f[0] == path and (f[1] is None or f[1] == method):
                    failure = f
                    f[4] -= 1
                    if f[4] <= 0:
                        self._failures.remove(f)
                    break
        try:
            if mode == "503":
                raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
            if failure is not None:
                _, _, status, fbody, _ = failure
                rec.status = status
                if fbody is None:
                    phrase = http.HTTPStatus(status).phrase.replace(" ", "")
                    self._send_json(sock, method, status, status_object(status, phrase, f"injected {status}"), close)
                elif isinstance(fbody, dict):
                    self._send_json(sock, method, status, fbody, close)
                else:
                    self._send(sock, method, status, fbody.encode() if isinstance(fbody, str) else fbody,
                               "application/json", close)
                return not close
            if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            accept = headers.get("accept", "")
            if accept and not any(a.strip().split(";")[0] in ("*/*", "application/json", "application/*", "")
                                  for a in accept.split(",")):
                raise ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json")
            keep = self._route(sock, rec, method, path, query, headers, body, legacy_watch, is_watch, close)
            return keep and not close
        except ApiError as e:
            rec.status = e.code
            self._send_status(sock, method, e, close)
            return not close
        except (OSError, _Disconnect):
            raise
        except Exception as e:  # a bug of the fake: answer 500, and let the thread's exception surface
            if rec.status is None:
                rec.status = 500
                try:
                    self._send_status(sock, method, ApiError(500, "InternalError", f"fakek8s: {e!r}"), True)
                except OSError:
                    pass
            raise

    def _route(self, sock: socket.socket, rec: Request, method: str, path: str, query: Dict[str, str],
               headers: Dict[str, str], body: bytes, legacy_watch: bool, is_watch: bool, close: bool) -> bool:
        doc = self._discovery(path)
        if doc is not None:
            if method not in ("GET", "HEAD"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                               "resource")
            rec.status = 200
            if isinstance(doc, str):
                self._send_plain(sock, 200, doc, close)
            else:
                self._send_json(sock, method, 200, doc, close)
            return True
        route = self._parse_path(path)
        if route is None:
            rec.status = 404
            self._send_plain(sock, 404, "404 page not found\n", close)
            return True
        kind, ns, name = route
        if is_watch:
            if name is not None and not legacy_watch:
                is_watch = rec.watch = False  # ?watch on an object's URL: a plain GET, as the apiserver has it
            else:
                return self._watch(sock, rec, kind, ns, name, query, close)
        if legacy_watch:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if name is None:
            if method in ("GET", "HEAD"):
                return self._send_ok(sock, rec, method, 200, self._list(kind, ns, query), close)
            if method == "POST" and (ns is not None or not kind.namespaced):
                obj = self._decode(body)
                with self._lock:
                    created = self._create(kind, ns or "", obj, source="http")
                    out = from_storage(kind, created)
                return self._send_ok(sock, rec, method, 201, out, close)
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        assert ns is not None or not kind.namespaced
        nsv = ns or ""
        if method in ("GET", "HEAD"):
            with self._lock:
                obj = self._objects.get((kind.storage, nsv, name))
                if obj is None:
                    raise ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', kind.details(name))
                out = from_storage(kind, obj)
            return self._send_ok(sock, rec, method, 200, out, close)
        if method == "PUT":
            obj = self._decode(body)
            with self._lock:
                stored, created = self._update(kind, nsv, name, obj, source="http", cas=True)
                out = from_storage(kind, stored)
            return self._send_ok(sock, rec, method, 201 if created else 200, out, close)
        if method == "PATCH":
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            patch = self._decode(body)
            with self._lock:
                old = self._objects.get((kind.storage, nsv, name))
                if old is None:
                    raise ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', kind.details(name))
                cur = from_storage(kind, old)
                if ctype == "application/merge-patch+json":
                    new = merge_patch(cur, patch)
                elif ctype == "application/strategic-merge-patch+json" and kind.builtin:
                    new = strategic_merge_patch(cur, patch)
                elif ctype == "application/json-patch+json":
                    new = json_patch(cur, patch)
                else:
                    raise ApiError(415, "UnsupportedMediaType", 'the body of the request was in an unknown format - '
                                   'accepted media types include: application/json-patch+json, '
                                   'application/merge-patch+json' + (", application/strategic-merge-patch+json"
                                                                      if kind.builtin else ""))
                if not isinstance(new, dict):
                    raise ApiError(400, "BadRequest", "the patch did not produce an object")
                new_md = new.get("metadata") if isinstance(new.get("metadata"), dict) else {}
                patched_rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
                if not patched_rv:
                    new_md.pop("resourceVersion", None)  # a patch is unconditional unless it names a version
                elif str(patched_rv) != old["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": '
                                   "the object has been modified; please apply your changes to the latest version "
                                   "and try again", kind.details(name))
                if new_md.get("name") != name:
                    raise ApiError(400, "BadRequest", "the patch changed the object's name")
                kind_u = kind if kind.unconditional_update else _unconditional(kind)
                stored, _ = self._update(kind_u, nsv, name, new, source="http", cas=True)
                out = from_storage(kind, stored)
            return self._send_ok(sock, rec, method, 200, out, close)
        if method == "DELETE":
            opts = self._decode(body) if body.strip() else {}
            pre = opts.get("preconditions") if isinstance(opts, dict) else None
            with self._lock:
                gone = self._delete(kind, nsv, name, pre)
                if kind.returns_deleted:
                    out = from_storage(kind, gone)
                else:
                    out = status_object(200, "", "", kind.details(name, gone["metadata"]["uid"]))
                    del out["message"], out["reason"], out["code"]
            return self._send_ok(sock, rec, method, 200, out, close)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _send_ok(self, sock: socket.socket, rec: Request, method: str, status: int, obj: Any, close: bool) -> bool:
        rec.status = status
        self._send_json(sock, method, status, obj, close)
        return True

    @staticmethod
    def _decode(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", f"the object provided is unrecognized: {e}") from None

    def _parse_path(self, path: str) -> Optional[Tuple[Kind, Optional[str], Optional[str]]]:
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 2 and segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return None
        if rest[:1] == ["watch"]:
            rest = rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not 1 <= len(rest) <= 2:
            return None
        kind = _BY_PATH.get((group, version, rest[0]))
        if kind is None or (ns is not None and not kind.namespaced):
            return None
        name = rest[1] if len(rest) == 2 else None
        if name is not None and ns is None and kind.namespaced:
            return None
        return kind, ns, name

    def _discovery(self, path: str) -> Union[None, str, Obj]:
        p = path.rstrip("/") or "/"
        if p in ("/healthz", "/livez", "/readyz"):
            return "ok"
        if p == "/version":
            return {"major": "1", "minor": GIT_VERSION.split(".")[1], "gitVersion": GIT_VERSION,
                    "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2022-06-15T14:22:29Z",
                    "goVersion": "go1.16.15", "compiler": "gc", "platform": "linux/amd64"}
        if p == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]}
        if p == "/apis":
            groups = []
            for g, versions in _GROUPS.items():
                vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
                groups.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        segs = [s for s in p.split("/") if s]
        if segs[:1] == ["apis"] and len(segs) == 2 and segs[1] in _GROUPS:
            vs = [{"groupVersion": f"{segs[1]}/{v}", "version": v} for v in _GROUPS[segs[1]]]
            return {"kind": "APIGroup", "apiVersion": "v1", "name": segs[1], "versions": vs, "preferredVersion": vs[0]}
        if (segs[:1] == ["api"] and len(segs) == 2) or (segs[:1] == ["apis"] and len(segs) == 3):
            group, version = ("", segs[1]) if segs[0] == "api" else (segs[1], segs[2])
            kinds = [k for k in KINDS if k.group == group and k.version == version]
            if not kinds:
                return None
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": kinds[0].api_version,
                    "resources": [{"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
                                   "kind": k.kind, "verbs": verbs} for k in kinds]}
        return None

    # ---------------------------------------------------------------- HTTP: list

    def _selectors(self, kind: Kind, query: Dict[str, str]) -> Tuple[List[Tuple[str, str, Any]],
                                                                     List[Tuple[str, bool, str]]]:
        return parse_label_selector(query.get("labelSelector", "")), parse_field_selector(kind, query.get("fieldSelector", ""))

    def _check_rv(self, query: Dict[str, str]) -> Optional[int]:
        rv = query.get("resourceVersion", "")
        if rv == "":
            return None
        try:
            n = int(rv)
            if n < 0:
                raise ValueError
        except ValueError:
            raise ApiError(400, "BadRequest", f'invalid resource version "{rv}"') from None
        if n > self._rv:
            raise ApiError(504, "Timeout", f"Too large resource version: {n}, current: {self._rv}",
                           {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                            "retryAfterSeconds": 1}, {"Retry-After": "1"})
        return n

    def _list(self, kind: Kind, ns: Optional[str], query: Dict[str, str]) -> Obj:
        labels, fields = self._selectors(kind, query)
        with self._lock:
            n = self._check_rv(query)
            match = query.get("resourceVersionMatch", "")
            if match not in ("", "NotOlderThan", "Exact"):
                raise ApiError(400, "BadRequest", f'invalid resourceVersionMatch "{match}"')
            if match and n is None:
                raise _invalid(kind, "", [_cause("resourceVersionMatch", "FieldValueForbidden",
                                                 "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")])
            if match == "Exact" and n is not None and n != self._rv:
                raise ApiError(410, "Expired", f"too old resource version: {n} ({self._rv})")
            token = query.get("continue", "")
            if token:
                try:
                    tid, off = json.loads(base64.urlsafe_b64decode(token.encode()))
                    items, rv = self._pages[tid]
                except (ValueError, KeyError, TypeError):
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                                   "consistent list result. You can start a new list without the continue "
                                   "parameter.") from None
            else:
                off = 0
                rv = str(self._rv)
                items = []
                for (s, ons, _), obj in sorted(self._objects.items()):
                    if s != kind.storage or (ns is not None and ons != ns):
                        continue
                    if not _labels_match(labels, obj["metadata"].get("labels") or {}) or not _fields_match(fields, obj):
                        continue
                    item = from_storage(kind, obj)
                    if kind.builtin:
                        item.pop("kind", None)
                        item.pop("apiVersion", None)
                    items.append(item)
            meta: Obj = {"resourceVersion": rv}
            limit = int(query.get("limit") or 0)
            page = items[off:]
            if limit > 0 and len(page) > limit:
                page = page[:limit]
                tid = token and json.loads(base64.urlsafe_b64decode(token.encode()))[0] or uuid.uuid4().hex
                self._pages[tid] = (items, rv)
                self._pages.move_to_end(tid)
                while len(self._pages) > 32:
                    self._pages.popitem(last=False)
                meta["continue"] = base64.urlsafe_b64encode(json.dumps([tid, off + limit]).encode()).decode()
                meta["remainingItemCount"] = len(items) - off - limit
        return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": meta, "items": page}

    # ---------------------------------------------------------------- HTTP: watch

    def _watch(self, sock: socket.socket, rec: Request, kind: Kind, ns: Optional[str], name: Optional[str],
               query: Dict[str, str], close: bool) -> bool:
        labels, fields = self._selectors(kind, query)
        for f, eq, v in fields:
            if f == "metadata.name" and eq and name is None:
                name = v  # narrows the watch the same way; the filter stays too
        try:
            timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
            if timeout is not None and timeout <= 0:
                timeout = None  # 0: the server's own limit, as the apiserver reads it
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid timeoutSeconds {query['timeoutSeconds']!r}") from None
        if self.watch_timeout is not None:
            timeout = self.watch_timeout if timeout is None else min(timeout, self.watch_timeout)
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        initial = _truthy(query.get("sendInitialEvents")) if "sendInitialEvents" in query else None
        with self._lock:
            n = self._check_rv(query)
            if initial is not None and (query.get("resourceVersionMatch") != "NotOlderThan" or (initial and not bookmarks)):
                raise _invalid(kind, "", [_cause("sendInitialEvents", "FieldValueForbidden",
                                                 "Forbidden: sendInitialEvents is forbidden for watch unless the "
                                                 "WatchList feature gate is enabled and resourceVersionMatch is "
                                                 "NotOlderThan and allowWatchBookmarks is true")])
            if sum(1 for w in self._watchers if not w.dead) >= self.max_watches:
                raise ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                               {"retryAfterSeconds": 1}, {"Retry-After": "1"})
            info = WatchInfo(rec.path, dict(rec.query), kind.plural, ns, name, None if n in (None, 0) else str(n),
                             bookmarks)
            w = _Watcher(self, kind, ns, name, labels, fields, bookmarks, info)
            gone_err: Optional[ApiError] = None
            if n is not None and n != 0 and not initial:
                if n < self._floor:
                    gone_err = ApiError(410, "Expired", f"too old resource version: {n} ({self._floor})")
                else:
                    for ev in self._history:
                        if ev.rv > n:
                            conv = w.convert(ev)
                            if conv is not None:
                                w.items.append(("event", conv[0], conv[1]))
            else:
                for (s, ons, _), obj in sorted(self._objects.items()):
                    if s == kind.storage and w.matches(obj):
                        w.items.append(("event", "ADDED", obj))
                if initial:
                    w.items.append(("bookmark", str(self._rv), {"k8s.io/initial-events-end": "true"}))
            if gone_err is not None and self.gone == "status":
                w.close()
                raise gone_err
            if gone_err is not None:
                w.items.clear()
                w.items.append(("error", gone_err.status))
                w.items.append(("end",))
                w.dead = True  # answers the ERROR event and ends
            self._watchers.add(w)
        try:
            return self._stream(sock, rec, w, timeout, close)
        finally:
            with self._lock:
                self._watchers.discard(w)
                w.dead = True
                self._cond.notify_all()
            w.close()

    def _wait_sock(self, sock: socket.socket, w: _Watcher, timeout: Optional[float]) -> None:
        """Sleep until woken, the timeout, or the client going away (_Disconnect)."""
        r = _readable([sock, w.wake_r], timeout)
        if w.wake_r in r:
            try:
                while w.wake_r.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass
        if sock in r:
            if isinstance(sock, ssl.SSLSocket):  # no MSG_PEEK through TLS: read what came, if a record did
                sock.setblocking(False)
                try:
                    data = sock.recv(4096)
                except ssl.SSLWantReadError:
                    return
                except OSError:
                    raise _Disconnect() from None
                finally:
                    sock.setblocking(True)
                if not data:
                    raise _Disconnect()
                return  # bytes from a client in the middle of a watch: ignored
            try:
                data = sock.recv(4096, socket.MSG_PEEK)
            except OSError:
                raise _Disconnect() from None
            if not data:
                raise _Disconnect()
            sock.recv(len(data))  # bytes from a client in the middle of a watch: ignored

    def _stream(self, sock: socket.socket, rec: Request, w: _Watcher, timeout: Optional[float], close: bool) -> bool:
        start = time.monotonic()
        deadline = start + timeout if timeout is not None else None
        while True:  # a stall that holds back even the response head
            with self._lock:
                hold = self._stall_headers and not self._stopping
            if not hold:
                break
            self._wait_sock(sock, w, None)
        headers = [("Cache-Control", "no-cache, private"), ("Content-Type", "application/json"),
                   ("Transfer-Encoding", "chunked")]
        if close:
            headers.append(("Connection", "close"))
        sock.sendall(self._head(200, headers))
        rec.status = 200
        with self._lock:
            w.started = True
            self._cond.notify_all()  # wait_watches() counts this one from here
        while True:
            with self._lock:
                stalled = self._stalled
                if self._stopping:
                    raise _Disconnect()
                if stalled:  # nothing is sent, but end_watches() still ends the stream
                    item = ("end",) if w.items and w.items[0] == ("end",) else None
                else:
                    item = w.items.popleft() if w.items else None
            if item is None and stalled:
                self._wait_sock(sock, w, None)
                continue
            if item is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    if w.bookmarks:
                        with self._lock:
                            rv = str(self._rv)
                        self._write_chunk(sock, self._event_bytes(w, "BOOKMARK", _bookmark_obj(w.kind, rv, None)))
                    sock.sendall(b"0\r\n\r\n")
                    return True
                self._wait_sock(sock, w, left)
                continue
            what = item[0]
            if what == "end":
                sock.sendall(b"0\r\n\r\n")
                return True
            if what == "event":
                self._write_chunk(sock, self._event_bytes(w, item[1], from_storage(w.kind, item[2])))
            elif what == "bookmark":
                self._write_chunk(sock, self._event_bytes(w, "BOOKMARK", _bookmark_obj(w.kind, item[1], item[2])))
            elif what == "error":
                self._write_chunk(sock, self._event_bytes(w, "ERROR", item[1]))
            elif what == "raw":
                if item[2]:
                    self._write_chunk(sock, item[1])
                else:
                    sock.sendall(item[1])

    @staticmethod
    def _event_bytes(w: _Watcher, type_: str, obj: Obj) -> bytes:
        return (json.dumps({"type": type_, "object": obj}, separators=(",", ":")) + "\n").encode()

    def _write_chunk(self, sock: socket.socket, data: bytes) -> None:
        if not data:
            return
        size = self.event_chunk_bytes or len(data)
        out = []
        for i in range(0, len(data), size):
            piece = data[i:i + size]
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"".join(out))


def _is_legacy_watch(path: str) -> bool:
    """``/api/v1/watch/...`` or ``/apis/{group}/{version}/watch/...``."""
    segs = [s for s in path.split("/") if s]
    return (segs[:1] == ["api"] and segs[2:3] == ["watch"]) or (segs[:1] == ["apis"] and segs[3:4] == ["watch"])


def _unconditional(kind: Kind) -> Kind:
    """``kind`` allowing an update without a resourceVersion (a patch of a custom resource)."""
    return replace(kind, unconditional_update=True)


def _reorder_meta(md: Obj) -> Obj:
    order = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
             "labels", "annotations")
    out = {k: md[k] for k in order if k in md}
    out.update({k: v for k, v in md.items() if k not in out})
    return out


def _bookmark_obj(kind: Kind, rv: str, annotations: Optional[Dict[str, str]]) -> Obj:
    """A BOOKMARK's object: the kind's empty object with only a resourceVersion, as Go encodes it."""
    md: Obj = {"resourceVersion": rv, "creationTimestamp": None}
    if annotations:
        md["annotations"] = dict(annotations)
    obj: Obj = {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": md}
    extra: Dict[str, Obj] = {
        "pods": {"spec": {"containers": None}, "status": {}},
        "services": {"spec": {}, "status": {"loadBalancer": {}}},
        "ingresses": {"spec": {}, "status": {"loadBalancer": {}}},
        "endpointslices": {"addressType": "", "endpoints": None},
    }
    obj.update(copy.deepcopy(extra.get(kind.storage, {})))
    return obj


# --------------------------------------------------------------------------------------------
# builders (plain dicts; apply() them)


def _meta(ns: str, name: str, labels: Optional[Mapping[str, str]], annotations: Optional[Mapping[str, str]]) -> Obj:
    md: Obj = {"name": name, "namespace": ns}
    if labels:
        md["labels"] = dict(labels)
    if annotations:
        md["annotations"] = dict(annotations)
    return md


def _ports(ports: Union[None, Mapping[str, int], Sequence[Any]]) -> List[Obj]:
    """{"http": 7778} or [("http", 7778), ("admin", 9990, "TCP"), 8080, {...}] -> port objects."""
    out: List[Obj] = []
    if ports is None:
        return out
    items: Sequence[Any] = list(ports.items()) if isinstance(ports, Mapping) else ports
    for p in items:
        if isinstance(p, dict):
            out.append(dict(p))
        elif isinstance(p, int):
            out.append({"port": p, "protocol": "TCP"})
        else:
            d: Obj = {"name": p[0], "port": p[1], "protocol": p[2] if len(p) > 2 else "TCP"}
            out.append(d)
    return out


def _address(ns: str, a: Any) -> Obj:
    """"10.0.0.1", (ip, node), (ip, node, pod name) or a dict -> an EndpointAddress."""
    if isinstance(a, dict):
        return dict(a)
    if isinstance(a, str):
        return {"ip": a}
    d: Obj = {"ip": a[0]}
    if len(a) > 1 and a[1]:
        d["nodeName"] = a[1]
    if len(a) > 2 and a[2]:
        d["targetRef"] = {"kind": "Pod", "namespace": ns, "name": a[2]}
    return d


def endpoints(ns: str, name: str, addresses: Sequence[Any] = (), ports: Union[None, Mapping[str, int], Sequence[Any]] = None,
              not_ready: Sequence[Any] = (), labels: Optional[Mapping[str, str]] = None,
              annotations: Optional[Mapping[str, str]] = None, subsets: Optional[List[Obj]] = None) -> Obj:
    """core/v1 Endpoints with one subset: addresses (ready) and not_ready as "ip", (ip, node),
    (ip, node, pod) or dicts; ports as {"http": 7778} or [("http", 7778, "TCP")]. No address at
    all: no subsets (as the apiserver encodes it). ``subsets`` overrides everything."""
    obj: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": _meta(ns, name, labels, annotations)}
    if subsets is not None:
        obj["subsets"] = subsets
    elif addresses or not_ready:
        sub: Obj = {}
        if addresses:
            sub["addresses"] = [_address(ns, a) for a in addresses]
        if not_ready:
            sub["notReadyAddresses"] = [_address(ns, a) for a in not_ready]
        p = _ports(ports)
        if p:
            sub["ports"] = p
        obj["subsets"] = [sub]
    return obj


def service(ns: str, name: str, ports: Sequence[Any] = (("http", 80, 80),), cluster_ip: Optional[str] = None,
            selector: Optional[Mapping[str, str]] = None, type: str = "ClusterIP",  # noqa: A002
            labels: Optional[Mapping[str, str]] = None, annotations: Optional[Mapping[str, str]] = None,
            load_balancer: Sequence[str] = (), external_name: Optional[str] = None) -> Obj:
    """core/v1 Service; ports as (name, port, targetPort[, protocol[, nodePort]]) with targetPort an
    int or a port name, or dicts; ``load_balancer`` lists status.loadBalancer.ingress ips (or
    hostnames, when not an IP). The apiserver fills clusterIP when not given."""
    spec: Obj = {}
    plist: List[Obj] = []
    for p in ports:
        if isinstance(p, dict):
            plist.append(dict(p))
            continue
        d: Obj = {"name": p[0], "protocol": p[3] if len(p) > 3 else "TCP", "port": p[1],
                  "targetPort": p[2] if len(p) > 2 else p[1]}
        if len(p) > 4:
            d["nodePort"] = p[4]
        plist.append(d)
    if plist:
        spec["ports"] = plist
    if selector:
        spec["selector"] = dict(selector)
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    spec["type"] = type
    if external_name:
        spec["externalName"] = external_name
    obj: Obj = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(ns, name, labels, annotations), "spec": spec}
    lb = []
    for a in load_balancer:
        try:
            ipaddress.ip_address(a)
            lb.append({"ip": a})
        except ValueError:
            lb.append({"hostname": a})
    obj["status"] = {"loadBalancer": {"ingress": lb} if lb else {}}
    return obj


def endpoint_slice(ns: str, name: str, service: str, endpoints: Sequence[Any] = (),  # noqa: F811 - the kind's name
                   ports: Union[None, Mapping[str, int], Sequence[Any]] = None, address_type: str = "IPv4",
                   labels: Optional[Mapping[str, str]] = None, annotations: Optional[Mapping[str, str]] = None) -> Obj:
    """discovery.k8s.io/v1 EndpointSlice of ``service`` (label kubernetes.io/service-name);
    endpoints as "ip", (ip, node), (ip, node, ready), (ip, node, ready, pod) or dicts (ready:
    conditions {ready, serving, terminating: not ready})."""
    eps: List[Obj] = []
    for e in endpoints:
        if isinstance(e, dict):
            eps.append(dict(e))
            continue
        e = (e,) if isinstance(e, str) else tuple(e)
        ready = e[2] if len(e) > 2 else True
        d: Obj = {"addresses": [e[0]], "conditions": {"ready": ready, "serving": ready, "terminating": False}}
        if len(e) > 1 and e[1]:
            d["nodeName"] = e[1]
        if len(e) > 3 and e[3]:
            d["targetRef"] = {"kind": "Pod", "namespace": ns, "name": e[3]}
        eps.append(d)
    lab = {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    lab.update(labels or {})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": _meta(ns, name, lab, annotations),
            "addressType": address_type, "endpoints": eps, "ports": _ports(ports)}


def _v1_backend(svc: str, port: Union[int, str]) -> Obj:
    return {"service": {"name": svc, "port": {"name": port} if isinstance(port, str) else {"number": port}}}


def ingress(ns: str, name: str, rules: Sequence[Tuple[Optional[str], Optional[str], str, Union[int, str]]] = (),
            default_backend: Optional[Tuple[str, Union[int, str]]] = None, ingress_class: Optional[str] = None,
            annotation_class: Optional[str] = None, path_type: str = "Prefix", tls_hosts: Sequence[str] = (),
            labels: Optional[Mapping[str, str]] = None, annotations: Optional[Mapping[str, str]] = None,
            api_version: str = "networking.k8s.io/v1") -> Obj:
    """An Ingress; rules as (host or None, path or None, service, port number or name), grouped by
    host in order; ``ingress_class`` sets spec.ingressClassName, ``annotation_class`` the
    kubernetes.io/ingress.class annotation. ``api_version`` "extensions/v1beta1" or
    "networking.k8s.io/v1beta1" builds the old shape (backend.serviceName/servicePort, spec.backend)."""
    ann = dict(annotations or {})
    if annotation_class:
        ann["kubernetes.io/ingress.class"] = annotation_class
    spec: Obj = {}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    if default_backend:
        spec["defaultBackend"] = _v1_backend(*default_backend)
    if tls_hosts:
        spec["tls"] = [{"hosts": list(tls_hosts)}]
    out_rules: List[Obj] = []
    for host, path, svc, port in rules:
        rule = next((r for r in out_rules if r.get("host") == host), None)
        if rule is None:
            rule = {"host": host} if host else {}
            rule["http"] = {"paths": []}
            out_rules.append(rule)
        p: Obj = {}
        if path:
            p["path"] = path
        p["pathType"] = path_type
        p["backend"] = _v1_backend(svc, port)
        rule["http"]["paths"].append(p)
    if out_rules:
        spec["rules"] = out_rules
    obj: Obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": _meta(ns, name, labels, ann or None), "spec": spec}
    if api_version != "networking.k8s.io/v1":
        obj = _map_ingress(obj, _backend_to_beta, to_v1=False)
        obj["apiVersion"] = api_version
    return obj


def config_map(ns: str, name: str, data: Optional[Mapping[str, str]] = None,
               labels: Optional[Mapping[str, str]] = None, annotations: Optional[Mapping[str, str]] = None) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(ns, name, labels, annotations)}
    if data:
        obj["data"] = dict(data)
    return obj


def pod(ns: str, name: str, ip: Optional[str] = None, node: Optional[str] = None, host_ip: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None, phase: str = "Running", ready: bool = True,
        annotations: Optional[Mapping[str, str]] = None, image: str = "buoyantio/linkerd:1.7.5") -> Obj:
    """core/v1 Pod with one container: spec.nodeName, status.phase/podIP/podIPs/hostIP, a Ready condition."""
    spec: Obj = {"containers": [{"name": "main", "image": image}]}
    if node:
        spec["nodeName"] = node
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if host_ip:
        status["hostIP"] = host_ip
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(ns, name, labels, annotations), "spec": spec,
            "status": status}


def dtab(ns: str, name: str, dentries: Union[str, Sequence[Any]], labels: Optional[Mapping[str, str]] = None) -> Obj:
    """namerd's DTab custom resource (l5d.io/v1alpha1); ``dentries`` as "/a => /b; /c => /d", as
    [("/a", "/b")] or as [{"prefix": "/a", "dst": "/b"}]: the shape of linkerd's
    namerd/storage/k8s/.../kubernetes/Dtab.scala (``dentries: Seq[Dentry]``, each Dentry written by
    namerd's DtabCodec as {"prefix": string, "dst": string})."""
    if isinstance(dentries, str):
        items: List[Any] = []
        for d in dentries.split(";"):
            if d.strip():
                prefix, _, dst = d.partition("=>")
                items.append((prefix.strip(), dst.strip()))
        dentries = items
    des = [dict(d) if isinstance(d, dict) else {"prefix": d[0], "dst": d[1]} for d in dentries]
    return {"apiVersion": "l5d.io/v1alpha1", "kind": "DTab", "metadata": _meta(ns, name, labels, None), "dentries": des}


for _f in (endpoints, service, endpoint_slice, ingress, config_map, pod, dtab):
    setattr(FakeK8s, _f.__name__, staticmethod(_f))
