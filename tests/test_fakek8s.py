"""The fake Kubernetes API (tests/fakek8s.py) is faithful to the wire.

The official ``kubernetes`` Python client talks to it: it reads, lists, creates, replaces, patches
and deletes every kind the fake serves, deserialises every answer into its models (which checks
the JSON shapes), and its ``watch.Watch().stream`` reads the fake's watch streams (order,
resumption, bookmarks, both forms of 410). Raw HTTP checks what the client hides: the legacy
``/api/v1/watch/...`` paths Linkerd 1.x uses, the chunked framing, Status bodies, the old
extensions/v1beta1 Ingress shape, and each fault control.

No sleep synchronises anything: tests wait on the fake's own events (``wait_watches``,
``wait_requests``) or on a bounded read.
"""

from __future__ import annotations

import json
import queue
import select
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from kubernetes import client, watch

from fakek8s import (
    FakeK8s,
    config_map,
    dtab,
    endpoint_slice,
    endpoints,
    ingress,
    pod,
    service,
)

pytestmark = pytest.mark.timeout(30)

NS = "default"


# ------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def k8s() -> Iterator[FakeK8s]:
    with FakeK8s() as fake:
        yield fake


def api_client(fake: FakeK8s, token: Optional[str] = None) -> client.ApiClient:
    cfg = client.Configuration()
    cfg.host = fake.url
    if token is not None:
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(cfg)


@pytest.fixture
def kc(k8s: FakeK8s) -> Iterator[client.ApiClient]:
    api = api_client(k8s)
    yield api
    api.close()


class Stream:
    """The client's watch.Watch().stream(...) run in a thread; events come out of a queue."""

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        self.w = watch.Watch()
        self.q: "queue.Queue[Any]" = queue.Queue()
        kwargs.setdefault("_request_timeout", 10)
        self.t = threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True)
        self.t.start()

    def _run(self, func: Any, args: Any, kwargs: Any) -> None:
        try:
            for ev in self.w.stream(func, *args, **kwargs):
                self.q.put(ev)
        except Exception as e:  # handed to the test
            self.q.put(e)
        self.q.put(None)

    def next(self, timeout: float = 5.0) -> Dict[str, Any]:
        item = self.q.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        assert item is not None, "the stream ended"
        return item

    def events(self, n: int) -> List[Tuple[str, str, str]]:
        """The next n events as (type, name, resourceVersion)."""
        out = []
        for _ in range(n):
            ev = self.next()
            md = ev["raw_object"]["metadata"]
            out.append((ev["type"], md.get("name", ""), md["resourceVersion"]))
        return out

    def end(self, timeout: float = 5.0) -> Optional[Exception]:
        """Wait for the stream to finish; its exception, if any."""
        while True:
            item = self.q.get(timeout=timeout)
            if item is None:
                return None
            if isinstance(item, Exception):
                return item

    def close(self, fake: FakeK8s) -> None:
        """Stop the client and wait until the fake has seen its stream go. Watch.stop() only takes
        effect when a stream ends (a request under way is not interrupted), so the fake ends them."""
        self.w.stop()
        deadline = time.monotonic() + 5
        while self.t.is_alive() and time.monotonic() < deadline:
            fake.end_watches()
            self.t.join(0.05)
        assert not self.t.is_alive()
        fake.wait_until(lambda: not fake.watches(), what="the watches to close")


class Raw:
    """HTTP/1.1 by hand, to see the framing the clients hide."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, method: str, path: str, body: Optional[Any] = None, headers: Optional[Dict[str, str]] = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        h = {"Host": "k8s", "Content-Length": str(len(data))}
        if body is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.sock.sendall(head.encode() + data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self) -> Tuple[int, Dict[str, str]]:
        status = int(self._line().split()[1])
        headers = {}
        while True:
            line = self._line()
            if not line:
                return status, headers
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()

    def chunk(self) -> bytes:
        """One chunk's data (b"" for the last chunk, whose trailer is consumed)."""
        size = int(self._line().split(b";")[0], 16)
        if size == 0:
            assert self._line() == b""
            return b""
        data = self._exact(size)
        assert self._exact(2) == b"\r\n"
        return data

    def body(self, headers: Dict[str, str]) -> bytes:
        if headers.get("transfer-encoding") == "chunked":
            out = b""
            while True:
                c = self.chunk()
                if not c:
                    return out
                out += c
        return self._exact(int(headers["content-length"]))

    def request(self, method: str, path: str, body: Optional[Any] = None,
                headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], Any]:
        self.send(method, path, body, headers)
        status, h = self.head()
        data = self.body(h)
        return status, h, json.loads(data) if h.get("content-type") == "application/json" else data.decode()

    def event(self) -> Dict[str, Any]:
        """One watch event: exactly one JSON line per chunk."""
        c = self.chunk()
        assert c.endswith(b"\n") and c.count(b"\n") == 1, c
        return json.loads(c)

    def silent(self, seconds: float) -> bool:
        """Nothing arrives within ``seconds`` (a bounded negative check)."""
        if self.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], seconds)
        return not r


def raw_get(fake: FakeK8s, path: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], Any]:
    r = Raw(fake.port)
    try:
        return r.request("GET", path, headers=headers)
    finally:
        r.close()


def everything(fake: FakeK8s) -> None:
    fake.apply(endpoints(NS, "web", addresses=[("127.0.0.2", "node-a", "web-0")], ports={"http": 7778},
                         not_ready=[("127.0.0.3", "node-b")]))
    fake.apply(service(NS, "web", ports=[("http", 80, 7778), ("admin", 9990, "admin")], selector={"app": "web"},
                       load_balancer=["127.0.0.50", "lb.example"]))
    fake.apply(config_map(NS, "l5d", {"dtab": "/svc => /#/io.l5d.k8s/default/http;"}))
    fake.apply(pod(NS, "web-0", ip="127.0.0.2", node="node-a", host_ip="127.0.0.1", labels={"app": "web"}))
    fake.apply(endpoint_slice(NS, "web-x1", "web", [("127.0.0.2", "node-a"), ("127.0.0.3", "node-b", False, "web-1")],
                              ports={"http": 7778}))
    fake.apply(ingress(NS, "web", rules=[("web.example", "/api", "web", 80), ("web.example", "/admin", "web", "admin"),
                                         (None, "/", "web", 80)],
                       default_backend=("web", 80), ingress_class="linkerd", annotation_class="linkerd"))
    fake.apply(dtab(NS, "default", "/svc => /#/io.l5d.k8s/default/http; /host => /svc"))


# ------------------------------------------------------------------------------------------
# the official client: reads and lists


def test_the_client_deserialises_every_kind_into_its_models(k8s: FakeK8s, kc: client.ApiClient) -> None:
    everything(k8s)
    core = client.CoreV1Api(kc)
    ep = core.read_namespaced_endpoints("web", NS)
    assert isinstance(ep, client.V1Endpoints)
    sub = ep.subsets[0]
    assert [(a.ip, a.node_name, a.target_ref.kind, a.target_ref.name) for a in sub.addresses] == \
        [("127.0.0.2", "node-a", "Pod", "web-0")]
    assert [a.ip for a in sub.not_ready_addresses] == ["127.0.0.3"]
    assert [(p.name, p.port, p.protocol) for p in sub.ports] == [("http", 7778, "TCP")]
    assert ep.metadata.resource_version == "98" and ep.metadata.uid and ep.metadata.creation_timestamp

    svc = core.read_namespaced_service("web", NS)
    assert [(p.name, p.port, p.target_port, p.protocol) for p in svc.spec.ports] == \
        [("http", 80, 7778, "TCP"), ("admin", 9990, "admin", "TCP")]
    assert svc.spec.cluster_ip.startswith("127.96.") and svc.spec.type == "ClusterIP"
    assert svc.spec.selector == {"app": "web"}
    assert [(i.ip, i.hostname) for i in svc.status.load_balancer.ingress] == [("127.0.0.50", None), (None, "lb.example")]

    assert core.read_namespaced_config_map("l5d", NS).data == {"dtab": "/svc => /#/io.l5d.k8s/default/http;"}
    p = core.read_namespaced_pod("web-0", NS)
    assert (p.spec.node_name, p.status.pod_ip, p.status.host_ip, p.status.phase) == \
        ("node-a", "127.0.0.2", "127.0.0.1", "Running")

    es = client.DiscoveryV1Api(kc).read_namespaced_endpoint_slice("web-x1", NS)
    assert es.address_type == "IPv4" and es.metadata.labels["kubernetes.io/service-name"] == "web"
    assert [(e.addresses, e.node_name, e.conditions.ready, e.conditions.serving, e.conditions.terminating)
            for e in es.endpoints] == [(["127.0.0.2"], "node-a", True, True, False),
                                       (["127.0.0.3"], "node-b", False, False, False)]
    assert es.endpoints[1].target_ref.name == "web-1"
    assert [(x.name, x.port, x.protocol) for x in es.ports] == [("http", 7778, "TCP")]

    ing = client.NetworkingV1Api(kc).read_namespaced_ingress("web", NS)
    assert ing.spec.ingress_class_name == "linkerd"
    assert ing.metadata.annotations == {"kubernetes.io/ingress.class": "linkerd"}
    assert ing.spec.default_backend.service.name == "web" and ing.spec.default_backend.service.port.number == 80
    rule = ing.spec.rules[0]
    assert rule.host == "web.example"
    assert [(x.path, x.path_type, x.backend.service.name, x.backend.service.port.number, x.backend.service.port.name)
            for x in rule.http.paths] == [("/api", "Prefix", "web", 80, None), ("/admin", "Prefix", "web", None, "admin")]
    assert ing.spec.rules[1].host is None

    d = client.CustomObjectsApi(kc).get_namespaced_custom_object("l5d.io", "v1alpha1", NS, "dtabs", "default")
    assert d["apiVersion"] == "l5d.io/v1alpha1" and d["kind"] == "DTab"
    assert d["dentries"] == [{"prefix": "/svc", "dst": "/#/io.l5d.k8s/default/http"}, {"prefix": "/host", "dst": "/svc"}]

    # lists, in a namespace and across all of them; every item deserialises
    assert [e.metadata.name for e in core.list_namespaced_endpoints(NS).items] == ["web"]
    assert [e.metadata.name for e in core.list_endpoints_for_all_namespaces().items] == ["web"]
    assert len(core.list_service_for_all_namespaces().items) == 1
    assert len(core.list_config_map_for_all_namespaces().items) == 1
    assert len(core.list_pod_for_all_namespaces().items) == 1
    assert len(client.DiscoveryV1Api(kc).list_endpoint_slice_for_all_namespaces().items) == 1
    assert len(client.NetworkingV1Api(kc).list_ingress_for_all_namespaces().items) == 1
    lst = client.CustomObjectsApi(kc).list_cluster_custom_object("l5d.io", "v1alpha1", "dtabs")
    assert lst["kind"] == "DTabList" and [i["metadata"]["name"] for i in lst["items"]] == ["default"]
    assert int(lst["metadata"]["resourceVersion"]) == 104  # seven writes from 98


def test_the_client_selects_by_label_and_field(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    k8s.apply(config_map(NS, "a", labels={"tier": "front", "app": "x"}))
    k8s.apply(config_map(NS, "b", labels={"tier": "back"}))
    k8s.apply(config_map(NS, "c"))
    k8s.apply(config_map("other", "a", labels={"tier": "front"}))

    def names(**kw: Any) -> List[str]:
        return [f"{c.metadata.namespace}/{c.metadata.name}" for c in core.list_config_map_for_all_namespaces(**kw).items]

    assert names(label_selector="tier=front") == ["default/a", "other/a"]
    assert names(label_selector="tier==front,app=x") == ["default/a"]
    assert names(label_selector="tier!=front") == ["default/b", "default/c"]
    assert names(label_selector="tier") == ["default/a", "default/b", "other/a"]
    assert names(label_selector="!tier") == ["default/c"]
    assert names(label_selector="tier in (back, middle)") == ["default/b"]
    assert names(label_selector="tier notin (front)") == ["default/b", "default/c"]
    assert names(field_selector="metadata.name=a") == ["default/a", "other/a"]
    assert names(field_selector="metadata.name=a,metadata.namespace!=default") == ["other/a"]
    with pytest.raises(client.ApiException) as e:
        names(field_selector="spec.nothing=x")
    assert e.value.status == 400
    with pytest.raises(client.ApiException) as e:
        names(label_selector="a b c")
    assert e.value.status == 400
    k8s.apply(pod(NS, "p1", ip="127.0.0.7", node="n1"))
    k8s.apply(pod(NS, "p2", ip="127.0.0.8", node="n2"))
    assert [p.metadata.name for p in core.list_namespaced_pod(NS, field_selector="spec.nodeName=n2").items] == ["p2"]


def test_lists_page_consistently_with_limit_and_continue(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    for i in range(5):
        k8s.apply(config_map(NS, f"cm{i}"))
    first = core.list_namespaced_config_map(NS, limit=2)
    assert [c.metadata.name for c in first.items] == ["cm0", "cm1"]
    assert first.metadata.remaining_item_count == 3 and first.metadata._continue
    k8s.delete("configmap", NS, "cm3")  # a page after this still shows the list as it was
    second = core.list_namespaced_config_map(NS, limit=2, _continue=first.metadata._continue)
    assert [c.metadata.name for c in second.items] == ["cm2", "cm3"]
    assert second.metadata.resource_version == first.metadata.resource_version
    third = core.list_namespaced_config_map(NS, limit=2, _continue=second.metadata._continue)
    assert [c.metadata.name for c in third.items] == ["cm4"] and not third.metadata._continue
    with pytest.raises(client.ApiException) as e:
        core.list_namespaced_config_map(NS, _continue="bm9uc2Vuc2U=")
    assert e.value.status == 410


# ------------------------------------------------------------------------------------------
# the official client: writes


def test_the_client_creates_replaces_patches_and_deletes(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg", labels={"a": "1"}), data={"k": "v"})
    created = core.create_namespaced_config_map(NS, body)
    rv1 = created.metadata.resource_version
    assert created.metadata.uid and created.metadata.namespace == NS and k8s.get("configmaps", NS, "cfg")["data"] == {"k": "v"}

    with pytest.raises(client.ApiException) as e:
        core.create_namespaced_config_map(NS, body)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"

    created.data = {"k": "w"}
    replaced = core.replace_namespaced_config_map("cfg", NS, created)
    assert int(replaced.metadata.resource_version) > int(rv1) and replaced.metadata.uid == created.metadata.uid

    created.data = {"k": "stale"}  # still carries rv1
    with pytest.raises(client.ApiException) as e:
        core.replace_namespaced_config_map("cfg", NS, created)
    st = json.loads(e.value.body)
    assert e.value.status == 409 and st["reason"] == "Conflict" and "the object has been modified" in st["message"]

    patched = core.patch_namespaced_config_map("cfg", NS, {"metadata": {"labels": {"b": "2"}}, "data": {"n": "1"}})
    assert patched.metadata.labels == {"a": "1", "b": "2"} and patched.data == {"k": "w", "n": "1"}
    patched = core.patch_namespaced_config_map("cfg", NS, [{"op": "remove", "path": "/data/k"}])  # a JSON patch
    assert patched.data == {"n": "1"}

    st = core.delete_namespaced_config_map("cfg", NS)
    st = client.V1Status.from_dict(st)  # the client types a delete's answer as "object"
    assert st.kind == "Status" and st.status == "Success" and st.details.name == "cfg" and st.details.kind == "configmaps"
    with pytest.raises(client.ApiException) as e:
        core.read_namespaced_config_map("cfg", NS)
    assert e.value.status == 404
    with pytest.raises(client.ApiException) as e:
        core.delete_namespaced_config_map("cfg", NS)
    assert e.value.status == 404

    # a Service through the client: the apiserver's defaults, and delete returns the object
    svc = core.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name="api"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(name="http", port=8080)])))
    assert svc.spec.cluster_ip.startswith("127.96.") and svc.spec.ports[0].target_port == 8080
    assert svc.spec.ports[0].protocol == "TCP" and svc.spec.session_affinity == "None"
    assert client.V1Service.from_dict(core.delete_namespaced_service("api", NS)).metadata.name == "api"

    # an Endpoints PUT creates it (201), as the apiserver's endpoints strategy allows
    ep = core.replace_namespaced_endpoints("made", NS, client.V1Endpoints(
        metadata=client.V1ObjectMeta(name="made"),
        subsets=[client.V1EndpointSubset(addresses=[client.V1EndpointAddress(ip="127.0.0.9")],
                                         ports=[client.CoreV1EndpointPort(port=80)])]))
    assert ep.subsets[0].addresses[0].ip == "127.0.0.9" and k8s.requests(method="PUT")[-1].status == 201

    with pytest.raises(client.ApiException) as e:  # validation: 422 Invalid
        core.create_namespaced_service(NS, client.V1Service(metadata=client.V1ObjectMeta(name="noports"),
                                                            spec=client.V1ServiceSpec()))
    st = json.loads(e.value.body)
    assert e.value.status == 422 and st["reason"] == "Invalid" and st["details"]["causes"][0]["field"] == "spec.ports"


def test_the_client_writes_endpoint_slices_and_ingresses(k8s: FakeK8s, kc: client.ApiClient) -> None:
    disc, net = client.DiscoveryV1Api(kc), client.NetworkingV1Api(kc)
    es = disc.create_namespaced_endpoint_slice(NS, endpoint_slice(NS, "s1", "web", ["127.0.0.4"], ports={"http": 80}))
    assert es.endpoints[0].addresses == ["127.0.0.4"]
    ing = net.create_namespaced_ingress(NS, ingress(NS, "i1", rules=[("a.example", "/", "web", 80)]))
    assert ing.metadata.generation == 1 and ing.status.load_balancer is not None
    ing.spec.rules[0].host = "b.example"
    ing = net.replace_namespaced_ingress("i1", NS, ing)
    assert ing.metadata.generation == 2 and ing.spec.rules[0].host == "b.example"
    bad = ingress(NS, "i2", rules=[("a.example", "/", "web", 80)])
    del bad["spec"]["rules"][0]["http"]["paths"][0]["pathType"]
    r = Raw(k8s.port)  # the client itself refuses to send this one
    status, _, body = r.request("POST", "/apis/networking.k8s.io/v1/namespaces/default/ingresses", bad)
    r.close()
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.rules[0].http.paths[0].pathType"
    net.delete_namespaced_ingress("i1", NS)
    disc.delete_namespaced_endpoint_slice("s1", NS)
    assert k8s.objects() == 0


def test_dtab_custom_resources_as_namerds_k8s_storage_uses_them(k8s: FakeK8s, kc: client.ApiClient) -> None:
    """namerd's K8sDtabStore: create is POST (409 AlreadyExists), update is PUT with the version it
    read (409 Conflict when stale: the compare-and-swap), delete is DELETE (404 when absent)."""
    crd = client.CustomObjectsApi(kc)
    args = ("l5d.io", "v1alpha1", NS, "dtabs")
    made = crd.create_namespaced_custom_object(*args, dtab(NS, "web", [("/svc", "/#/io.l5d.k8s/default/http")]))
    rv = made["metadata"]["resourceVersion"]
    assert made["metadata"]["generation"] == 1
    with pytest.raises(client.ApiException) as e:
        crd.create_namespaced_custom_object(*args, dtab(NS, "web", []))
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"

    new = dtab(NS, "web", "/svc => /#/io.l5d.k8s/prod/http")
    new["metadata"]["resourceVersion"] = rv
    upd = crd.replace_namespaced_custom_object(*args, "web", new)
    assert upd["dentries"] == [{"prefix": "/svc", "dst": "/#/io.l5d.k8s/prod/http"}]
    assert int(upd["metadata"]["resourceVersion"]) > int(rv) and upd["metadata"]["generation"] == 2
    with pytest.raises(client.ApiException) as e:  # the same stale version again
        crd.replace_namespaced_custom_object(*args, "web", new)
    st = json.loads(e.value.body)
    assert e.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"].startswith('Operation cannot be fulfilled on dtabs.l5d.io "web"')
    assert st["details"] == {"name": "web", "group": "l5d.io", "kind": "dtabs"}
    del new["metadata"]["resourceVersion"]
    with pytest.raises(client.ApiException) as e:  # a custom resource's update must name a version
        crd.replace_namespaced_custom_object(*args, "web", new)
    assert e.value.status == 422
    with pytest.raises(client.ApiException) as e:  # PUT does not create custom resources
        crd.replace_namespaced_custom_object(*args, "absent", dtab(NS, "absent", []))
    assert e.value.status == 404

    patched = crd.patch_namespaced_custom_object(*args, "web", {"dentries": [{"prefix": "/a", "dst": "/b"}]})
    assert patched["dentries"] == [{"prefix": "/a", "dst": "/b"}]
    assert crd.get_namespaced_custom_object(*args, "web")["dentries"] == [{"prefix": "/a", "dst": "/b"}]

    gone = crd.delete_namespaced_custom_object(*args, "web")
    assert gone["kind"] == "DTab" and gone["metadata"]["name"] == "web"  # the object, not a Status
    with pytest.raises(client.ApiException) as e:
        crd.delete_namespaced_custom_object(*args, "web")
    st = json.loads(e.value.body)
    assert e.value.status == 404 and st["message"] == 'dtabs.l5d.io "web" not found'


def test_a_bearer_token_is_required_when_configured() -> None:
    with FakeK8s(token="s3cret") as fake:
        fake.apply(config_map(NS, "a"))
        good, bad, none = api_client(fake, "s3cret"), api_client(fake, "wrong"), api_client(fake)
        try:
            assert client.CoreV1Api(good).read_namespaced_config_map("a", NS).metadata.name == "a"
            for api in (bad, none):
                with pytest.raises(client.ApiException) as e:
                    client.CoreV1Api(api).read_namespaced_config_map("a", NS)
                assert e.value.status == 401 and json.loads(e.value.body)["reason"] == "Unauthorized"
            fake.token = "rotated"  # a rotated service-account token
            with pytest.raises(client.ApiException):
                client.CoreV1Api(good).read_namespaced_config_map("a", NS)
            status, _, body = raw_get(fake, "/api/v1/watch/namespaces/default/configmaps/a",
                                      {"Authorization": "Bearer wrong"})
            assert status == 401 and body["code"] == 401
        finally:
            for api in (good, bad, none):
                api.close()


# ------------------------------------------------------------------------------------------
# the official client: watches


def test_the_client_watch_reads_events_in_order(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    k8s.apply(endpoints(NS, "a", addresses=["127.0.0.2"], ports={"http": 80}))
    k8s.apply(endpoints(NS, "b", addresses=["127.0.0.3"], ports={"http": 80}))
    s = Stream(core.list_namespaced_endpoints, NS)
    try:
        # no resourceVersion: the current objects first, as synthetic ADDED events
        assert s.events(2) == [("ADDED", "a", "98"), ("ADDED", "b", "99")]
        k8s.wait_watches(1)
        k8s.apply(endpoints(NS, "a", addresses=["127.0.0.4"], ports={"http": 80}))
        k8s.apply(endpoints(NS, "c", addresses=["127.0.0.5"], ports={"http": 80}))
        k8s.apply(endpoints("other", "z", addresses=["127.0.0.6"], ports={"http": 80}))  # not this namespace
        k8s.delete("endpoints", NS, "b")
        evs = [s.next() for _ in range(3)]
        assert [(e["type"], e["object"].metadata.name, e["object"].metadata.resource_version) for e in evs] == \
            [("MODIFIED", "a", "100"), ("ADDED", "c", "101"), ("DELETED", "b", "103")]
        assert isinstance(evs[0]["object"], client.V1Endpoints)
        assert evs[0]["object"].subsets[0].addresses[0].ip == "127.0.0.4"
        assert evs[2]["object"].subsets[0].addresses[0].ip == "127.0.0.3"  # the last state, deleted at 103
        assert s.q.empty()
    finally:
        s.close(k8s)


def test_the_client_watch_resumes_where_it_left_off(k8s: FakeK8s, kc: client.ApiClient) -> None:
    """A stream ended by the server (as at timeoutSeconds) is resumed by the client from the last
    version it saw; the changes in between are replayed from the fake's history, once each."""
    core = client.CoreV1Api(kc)
    k8s.apply(config_map(NS, "a", {"v": "0"}))
    s = Stream(core.list_namespaced_config_map, NS)
    try:
        assert s.events(1) == [("ADDED", "a", "98")]
        k8s.wait_watches(1)
        with k8s.stalled():  # the changes queue up, unsent, and the stream is ended
            k8s.apply(config_map(NS, "a", {"v": "1"}))
            k8s.apply(config_map(NS, "a", {"v": "2"}))
            assert k8s.end_watches() == 1
        assert s.events(2) == [("MODIFIED", "a", "99"), ("MODIFIED", "a", "100")]
        watches = k8s.requests("/api/v1/namespaces/default/configmaps", watch=True)
        assert [r.query.get("resourceVersion") for r in watches] == [None, "98"]
        k8s.apply(config_map(NS, "a", {"v": "3"}))
        assert s.events(1) == [("MODIFIED", "a", "101")]
        assert s.q.empty()
    finally:
        s.close(k8s)


def test_the_client_watch_resumes_from_an_explicit_version(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    for i in range(4):
        k8s.apply(config_map(NS, "a", {"v": str(i)}))  # 98..101
    s = Stream(core.list_namespaced_config_map, NS, resource_version="99", timeout_seconds=5)
    try:
        assert s.events(2) == [("MODIFIED", "a", "100"), ("MODIFIED", "a", "101")]
        k8s.wait_watches(1)
        assert k8s.watches()[0].since == "99"
    finally:
        s.close(k8s)


def test_the_client_watch_gets_bookmarks(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    k8s.apply(service(NS, "web"))
    s = Stream(core.list_namespaced_service, NS, allow_watch_bookmarks=True)
    try:
        assert s.events(1) == [("ADDED", "web", "98")]
        k8s.wait_watches(1)
        k8s.apply(config_map(NS, "unrelated"))  # moves the version on, no event for this watch
        assert k8s.bookmark() == 1
        ev = s.next()
        assert ev["type"] == "BOOKMARK" and ev["raw_object"]["metadata"]["resourceVersion"] == "99"
        assert ev["raw_object"]["kind"] == "Service" and ev["raw_object"]["apiVersion"] == "v1"
        assert s.w.resource_version == "99"  # the client took the bookmark's version
        k8s.end_watches()
        k8s.wait_requests(2, "/api/v1/namespaces/default/services", watch=True)
        assert k8s.requests("/api/v1/namespaces/default/services", watch=True)[-1].query["resourceVersion"] == "99"
    finally:
        s.close(k8s)
    # a watch without allowWatchBookmarks gets none
    s = Stream(core.list_namespaced_service, NS)
    try:
        s.events(1)
        k8s.wait_watches(1)
        assert k8s.bookmark() == 0
    finally:
        s.close(k8s)


def test_the_client_raises_410_on_an_expired_error_event(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    k8s.apply(config_map(NS, "a", {"v": "0"}))
    k8s.apply(config_map(NS, "a", {"v": "1"}))
    k8s.expire_history(gone="event")
    # with timeoutSeconds the client does not retry: the ERROR event is its ApiException(410)
    s = Stream(core.list_namespaced_config_map, NS, resource_version="98", timeout_seconds=5)
    err = s.end()
    assert isinstance(err, client.ApiException) and err.status == 410 and "Expired" in err.reason
    assert k8s.requests("/api/v1/namespaces/default/configmaps", watch=True)[-1].status == 200  # 200, then ERROR
    # without it the client retries once from the same version, then raises
    k8s.clear_requests()
    s = Stream(core.list_namespaced_config_map, NS, resource_version="98")
    err = s.end()
    assert isinstance(err, client.ApiException) and err.status == 410
    assert [r.query["resourceVersion"] for r in k8s.requests(watch=True)] == ["98", "98"]
    # the current version is still good
    s = Stream(core.list_namespaced_config_map, NS, resource_version="99", timeout_seconds=5)
    try:
        k8s.wait_watches(1)
        k8s.apply(config_map(NS, "a", {"v": "2"}))
        assert s.events(1) == [("MODIFIED", "a", "100")]
    finally:
        s.close(k8s)


def test_the_client_raises_410_on_an_http_gone(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    k8s.apply(config_map(NS, "a", {"v": "0"}))
    k8s.apply(config_map(NS, "a", {"v": "1"}))
    k8s.compact(99, gone="status")
    s = Stream(core.list_namespaced_config_map, NS, resource_version="98")
    err = s.end()
    assert isinstance(err, client.ApiException) and err.status == 410
    assert [r.status for r in k8s.requests(watch=True)] == [410]
    status, _, body = raw_get(k8s, "/api/v1/watch/namespaces/default/configmaps?resourceVersion=98")
    assert status == 410 and (body["reason"], body["code"], body["kind"]) == ("Expired", 410, "Status")


def test_the_client_watch_follows_selectors(k8s: FakeK8s, kc: client.ApiClient) -> None:
    """An object leaving a watch's selector is DELETED for it, one entering it is ADDED."""
    core = client.CoreV1Api(kc)
    s = Stream(core.list_namespaced_config_map, NS, label_selector="team=a", timeout_seconds=10)
    try:
        k8s.wait_watches(1)
        k8s.apply(config_map(NS, "x", labels={"team": "b"}))
        k8s.apply(config_map(NS, "x", labels={"team": "a"}))
        k8s.apply(config_map(NS, "x", labels={"team": "a"}, data={"k": "v"}))
        k8s.apply(config_map(NS, "x", labels={"team": "b"}, data={"k": "v"}))
        assert s.events(3) == [("ADDED", "x", "99"), ("MODIFIED", "x", "100"), ("DELETED", "x", "101")]
    finally:
        s.close(k8s)
    s = Stream(core.list_namespaced_config_map, NS, field_selector="metadata.name=y", timeout_seconds=10)
    try:
        k8s.wait_watches(1)
        k8s.apply(config_map(NS, "x", {"k": "w"}))
        k8s.apply(config_map(NS, "y"))
        assert s.events(1) == [("ADDED", "y", "103")]
    finally:
        s.close(k8s)


def test_the_client_watches_every_api_group(k8s: FakeK8s, kc: client.ApiClient) -> None:
    cases = [
        (client.DiscoveryV1Api(kc).list_namespaced_endpoint_slice, (NS,),
         lambda: k8s.apply(endpoint_slice(NS, "s", "web", ["127.0.0.2"], ports={"http": 80})), client.V1EndpointSlice),
        (client.NetworkingV1Api(kc).list_namespaced_ingress, (NS,),
         lambda: k8s.apply(ingress(NS, "i", rules=[("h", "/", "web", 80)])), client.V1Ingress),
        (client.CoreV1Api(kc).list_pod_for_all_namespaces, (),
         lambda: k8s.apply(pod("kube-system", "p", ip="127.0.0.5")), client.V1Pod),
        (client.CustomObjectsApi(kc).list_namespaced_custom_object, ("l5d.io", "v1alpha1", NS, "dtabs"),
         lambda: k8s.apply(dtab(NS, "d", "/a => /b")), dict),
    ]
    for func, args, change, model in cases:
        s = Stream(func, *args, timeout_seconds=10)
        try:
            k8s.wait_watches(1)
            change()
            ev = s.next()
            assert ev["type"] == "ADDED" and isinstance(ev["object"], model)
        finally:
            s.close(k8s)


def test_send_initial_events_ends_with_the_initial_events_end_bookmark(k8s: FakeK8s, kc: client.ApiClient) -> None:
    core = client.CoreV1Api(kc)
    k8s.apply(config_map(NS, "a"))
    k8s.apply(config_map(NS, "b"))
    s = Stream(core.list_namespaced_config_map, NS, send_initial_events=True, resource_version_match="NotOlderThan",
               allow_watch_bookmarks=True, timeout_seconds=10)
    try:
        evs = [s.next() for _ in range(3)]
        assert [e["type"] for e in evs] == ["ADDED", "ADDED", "BOOKMARK"]
        assert evs[2]["raw_object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert evs[2]["raw_object"]["metadata"]["resourceVersion"] == "99"
    finally:
        s.close(k8s)


# ------------------------------------------------------------------------------------------
# raw HTTP: the legacy watch paths, framing, Status bodies


def test_the_legacy_watch_path_of_one_object_is_chunked_json_lines(k8s: FakeK8s) -> None:
    """Linkerd 1.x watches /api/v1/watch/namespaces/{ns}/endpoints/{name}: a chunked stream, one
    JSON event per chunk and line; the stream ends with the last chunk and the connection lives on."""
    k8s.apply(endpoints(NS, "web", addresses=[("127.0.0.2", "n1")], ports={"http": 7778}))
    path = "/api/v1/watch/namespaces/default/endpoints/web"
    r = Raw(k8s.port)
    try:
        r.send("GET", path)
        status, headers = r.head()
        assert status == 200 and headers["transfer-encoding"] == "chunked"
        assert headers["content-type"] == "application/json" and "content-length" not in headers
        ev = r.event()
        assert ev["type"] == "ADDED" and ev["object"]["kind"] == "Endpoints" and ev["object"]["apiVersion"] == "v1"
        k8s.wait_watches(1, path)
        k8s.apply(endpoints(NS, "other", addresses=["127.0.0.9"], ports={"http": 1}))  # another name: not seen
        k8s.apply(endpoints(NS, "web", addresses=[("127.0.0.3", "n2")], ports={"http": 7778}))
        ev = r.event()
        assert ev["type"] == "MODIFIED" and ev["object"]["metadata"]["resourceVersion"] == "100"
        assert ev["object"]["subsets"] == [{"addresses": [{"ip": "127.0.0.3", "nodeName": "n2"}],
                                            "ports": [{"name": "http", "port": 7778, "protocol": "TCP"}]}]
        k8s.delete("endpoints", NS, "web")
        ev = r.event()
        assert ev["type"] == "DELETED" and ev["object"]["metadata"]["resourceVersion"] == "101"
        assert k8s.end_watches(path) == 1
        assert r.chunk() == b""  # the last chunk: a clean end
        status, _, body = r.request("GET", "/api/v1/namespaces/default/endpoints/other")  # same connection
        assert status == 200 and body["metadata"]["name"] == "other"
        # resuming on the legacy path from a version replays the changes after it
        r.send("GET", path + "?resourceVersion=98")
        assert r.head()[0] == 200
        assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in (r.event(), r.event())] == \
            [("MODIFIED", "100"), ("DELETED", "101")]
    finally:
        r.close()


def test_watch_with_watch_1_timeout_seconds_and_a_closing_bookmark(k8s: FakeK8s) -> None:
    k8s.apply(config_map(NS, "a"))
    k8s.apply(config_map(NS, "b"))
    r = Raw(k8s.port)
    try:
        # resourceVersion=0 ("any"): the current objects first, like no version at all
        r.send("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0")
        assert r.head()[0] == 200
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in (r.event(), r.event())] == \
            [("ADDED", "a"), ("ADDED", "b")]
        k8s.end_watches()
        assert r.chunk() == b""
        # ?watch on an object's own URL is a plain GET, as the apiserver serves it
        status, h, body = r.request("GET", "/api/v1/namespaces/default/configmaps/a?watch=true")
        assert status == 200 and body["metadata"]["name"] == "a" and "content-length" in h
        k8s.delete("configmap", NS, "b")
        t0 = time.monotonic()
        r.send("GET", "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&allowWatchBookmarks=true")
        assert r.head()[0] == 200
        assert r.event()["type"] == "ADDED"
        ev = r.event()  # at timeoutSeconds: a BOOKMARK, then the end
        assert client.V1ConfigMap.from_dict(ev["object"]).metadata.resource_version == "100"
        assert ev == {"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {
            "resourceVersion": "100", "creationTimestamp": None}}}
        assert r.chunk() == b""
        assert 0.9 < time.monotonic() - t0 < 5
    finally:
        r.close()


def test_lists_and_status_bodies_as_the_apiserver_encodes_them(k8s: FakeK8s) -> None:
    everything(k8s)
    status, headers, body = raw_get(k8s, "/api/v1/namespaces/default/endpoints")
    assert status == 200 and body["kind"] == "EndpointsList" and body["apiVersion"] == "v1"
    assert body["metadata"] == {"resourceVersion": k8s.resource_version}
    assert "kind" not in body["items"][0] and "apiVersion" not in body["items"][0]  # built-in lists drop them
    _, _, body = raw_get(k8s, "/apis/l5d.io/v1alpha1/namespaces/default/dtabs")
    assert body["items"][0]["kind"] == "DTab"  # custom resources keep them
    status, _, body = raw_get(k8s, "/api/v1/namespaces/default/endpoints/nope")
    assert client.V1Status.from_dict(body).details.kind == "endpoints"
    assert status == 404 and body == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'endpoints "nope" not found', "reason": "NotFound",
        "details": {"name": "nope", "kind": "endpoints"}, "code": 404}
    status, headers, body = raw_get(k8s, "/api/v1/namespaces/default/nonsense")
    assert status == 404 and body == "404 page not found\n" and headers["content-type"].startswith("text/plain")
    status, _, body = raw_get(k8s, f"/api/v1/namespaces/default/configmaps?resourceVersion={int(k8s.resource_version) + 5}")
    assert status == 504 and body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    # a large answer comes chunked, as Go's net/http sends it; a small one with a Content-Length
    for i in range(30):
        k8s.apply(config_map(NS, f"big{i}", {"k": "v" * 100}))
    r = Raw(k8s.port)
    try:
        r.send("GET", "/api/v1/configmaps")
        _, h = r.head()
        assert h["transfer-encoding"] == "chunked" and len(json.loads(r.body(h))["items"]) == 31
        r.send("GET", "/api/v1/namespaces/default/configmaps/big0")
        _, h = r.head()
        assert "content-length" in h and json.loads(r.body(h))["metadata"]["name"] == "big0"
        status, _, body = r.request("POST", "/api/v1/namespaces/default/configmaps/big0", {"metadata": {}})
        assert status == 405 and body["reason"] == "MethodNotAllowed"
    finally:
        r.close()
    status, _, body = raw_get(k8s, "/version")
    assert status == 200 and body["major"] == "1"
    _, _, body = raw_get(k8s, "/apis/l5d.io/v1alpha1")
    assert body["resources"][0]["name"] == "dtabs" and body["resources"][0]["kind"] == "DTab"


def test_writes_over_raw_http_conflicts_and_no_op_updates(k8s: FakeK8s) -> None:
    r = Raw(k8s.port)
    try:
        base = "/apis/l5d.io/v1alpha1/namespaces/default/dtabs"
        status, _, made = r.request("POST", base, dtab(NS, "x", "/a => /b"))
        assert status == 201 and made["metadata"]["resourceVersion"] == "98"
        status, _, body = r.request("POST", base, dtab(NS, "x", "/a => /c"))
        assert status == 409 and body["reason"] == "AlreadyExists" and body["message"] == 'dtabs.l5d.io "x" already exists'
        # a PUT that changes nothing is a no-op: same version, no event
        status, _, same = r.request("PUT", base + "/x", made)
        assert status == 200 and same["metadata"]["resourceVersion"] == "98" and k8s.resource_version == "98"
        made["dentries"] = [{"prefix": "/a", "dst": "/c"}]
        status, _, upd = r.request("PUT", base + "/x", made)
        assert status == 200 and upd["metadata"]["resourceVersion"] == "99"
        status, _, body = r.request("PUT", base + "/x", made)  # made still says 98
        assert status == 409 and body["reason"] == "Conflict"
        status, _, body = r.request("PUT", base + "/y", made)
        assert status == 400 and "does not match the name on the URL" in body["message"]
        status, _, body = r.request("PATCH", base + "/x", {"dentries": []},
                                    {"Content-Type": "application/strategic-merge-patch+json"})
        assert status == 415 and body["reason"] == "UnsupportedMediaType"
        status, _, body = r.request("PATCH", base + "/x", {"metadata": {"resourceVersion": "98"}, "dentries": []},
                                    {"Content-Type": "application/merge-patch+json"})
        assert status == 409  # a patch naming a stale version
        status, _, body = r.request("DELETE", base + "/x", {"preconditions": {"resourceVersion": "98"}})
        assert status == 409
        status, _, body = r.request("DELETE", base + "/x")
        assert status == 200 and body["kind"] == "DTab"
        status, _, body = r.request("POST", "/api/v1/namespaces/default/configmaps", b"{not json")
        assert status == 400 and body["reason"] == "BadRequest"
        status, _, body = r.request("PUT", "/api/v1/namespaces/default/configmaps/nope", config_map(NS, "nope"))
        assert status == 404  # configmaps are not created by PUT
    finally:
        r.close()


def test_resource_versions_are_global_strictly_increasing_integers(k8s: FakeK8s) -> None:
    seen = []
    for i in range(4):
        seen.append(int(k8s.apply(config_map(NS, f"c{i}"))["metadata"]["resourceVersion"]))
        seen.append(int(k8s.apply(endpoints(NS, f"e{i}", addresses=["127.0.0.1"]))["metadata"]["resourceVersion"]))
    assert seen == list(range(98, 106))  # "99" < "100" only as integers
    assert k8s.apply(config_map(NS, "c0"))["metadata"]["resourceVersion"] == "98"  # unchanged: a no-op
    assert k8s.resource_version == "105"


def test_old_ingresses_as_extensions_v1beta1_serves_them(k8s: FakeK8s) -> None:
    """Linkerd 1.x reads extensions/v1beta1 Ingresses: backend.serviceName/servicePort and
    spec.backend. The fake stores networking.k8s.io/v1 and converts both ways, as the apiserver."""
    k8s.apply(ingress(NS, "web", rules=[("web.example", "/api", "web", 80), (None, "/x", "web", "http")],
                      default_backend=("fallback", 8080), annotation_class="linkerd"))
    for prefix in ("/apis/extensions/v1beta1", "/apis/networking.k8s.io/v1beta1"):
        status, _, body = raw_get(k8s, f"{prefix}/namespaces/default/ingresses/web")
        assert status == 200 and body["apiVersion"] == prefix[6:] and body["kind"] == "Ingress"
        spec = body["spec"]
        assert spec["backend"] == {"serviceName": "fallback", "servicePort": 8080} and "defaultBackend" not in spec
        assert spec["rules"][0]["http"]["paths"][0] == {"path": "/api", "pathType": "Prefix",
                                                        "backend": {"serviceName": "web", "servicePort": 80}}
        assert spec["rules"][1]["http"]["paths"][0]["backend"] == {"serviceName": "web", "servicePort": "http"}
        assert body["metadata"]["annotations"] == {"kubernetes.io/ingress.class": "linkerd"}
    # written in the old shape, read in the new (and the legacy watch path sees the old shape)
    r = Raw(k8s.port)
    try:
        r.send("GET", "/apis/extensions/v1beta1/watch/namespaces/default/ingresses")
        assert r.head()[0] == 200
        assert r.event()["object"]["spec"]["backend"]["serviceName"] == "fallback"
        k8s.wait_watches(1)
        old = ingress(NS, "old", rules=[("old.example", "/", "svc", 9000)], api_version="extensions/v1beta1")
        del old["spec"]["rules"][0]["http"]["paths"][0]["pathType"]
        r2 = Raw(k8s.port)
        status, _, made = r2.request("POST", "/apis/extensions/v1beta1/namespaces/default/ingresses", old)
        r2.close()
        assert status == 201 and made["spec"]["rules"][0]["http"]["paths"][0]["backend"] == \
            {"serviceName": "svc", "servicePort": 9000}
        ev = r.event()
        assert ev["type"] == "ADDED" and ev["object"]["apiVersion"] == "extensions/v1beta1"
        assert ev["object"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["serviceName"] == "svc"
    finally:
        r.close()
    v1 = k8s.get("ingresses", NS, "old")
    assert v1["spec"]["rules"][0]["http"]["paths"][0] == {
        "path": "/", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "svc", "port": {"number": 9000}}}}


# ------------------------------------------------------------------------------------------
# fault controls


def test_outage_refuse_resets_streams_and_refuses_then_comes_back_on_the_same_port(k8s: FakeK8s) -> None:
    port = k8s.port
    r = Raw(port)
    r.send("GET", "/api/v1/watch/namespaces/default/endpoints")
    assert r.head()[0] == 200
    k8s.wait_watches(1)
    with k8s.outage("refuse"):
        with pytest.raises((ConnectionResetError, EOFError)):
            r.chunk()  # the open stream is cut
        r.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert k8s.port == port
    status, _, _ = raw_get(k8s, "/api/v1/namespaces/default/endpoints")
    assert status == 200


def test_outage_503_answers_every_request_unavailable(k8s: FakeK8s, kc: client.ApiClient) -> None:
    k8s.down("503")
    status, _, body = raw_get(k8s, "/api/v1/watch/namespaces/default/endpoints/web")
    assert status == 503 and body["reason"] == "ServiceUnavailable"
    with pytest.raises(client.ApiException) as e:
        client.CoreV1Api(kc).list_namespaced_endpoints(NS)
    assert e.value.status == 503
    k8s.up()
    assert client.CoreV1Api(kc).list_namespaced_endpoints(NS).items == []


def test_stalled_watches_send_nothing_until_unstalled(k8s: FakeK8s) -> None:
    k8s.apply(config_map(NS, "a"))
    r = Raw(k8s.port)
    try:
        r.send("GET", "/api/v1/watch/namespaces/default/configmaps?resourceVersion=98")
        assert r.head()[0] == 200
        k8s.wait_watches(1)
        k8s.stall_watches()
        k8s.apply(config_map(NS, "a", {"k": "v"}))
        assert r.silent(0.3)
        k8s.unstall_watches()
        assert r.event()["type"] == "MODIFIED"
        # headers=False: a new watch gets no response head at all
        k8s.stall_watches(headers=False)
        r2 = Raw(k8s.port)
        r2.send("GET", "/api/v1/watch/namespaces/default/configmaps")
        k8s.wait_requests(2, watch=True)
        assert r2.silent(0.3)
        k8s.unstall_watches()
        assert r2.head()[0] == 200 and r2.event()["type"] == "ADDED"
        r2.close()
    finally:
        r.close()


def test_send_raw_injects_bad_data_on_watch_streams(k8s: FakeK8s) -> None:
    k8s.apply(config_map(NS, "a"))
    r = Raw(k8s.port)
    try:
        r.send("GET", "/api/v1/watch/namespaces/default/configmaps?resourceVersion=98")
        assert r.head()[0] == 200
        k8s.wait_watches(1)
        assert k8s.send_raw(b"this is not json\n") == 1
        assert r.chunk() == b"this is not json\n"
        k8s.send_raw({"type": "MODIFIED", "object": {"kind": "ConfigMap", "metadata": "not an object"}})
        assert r.event()["object"]["metadata"] == "not an object"
        stale = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a", "namespace": NS, "resourceVersion": "50"}}
        k8s.send_event("MODIFIED", stale)  # out of order: older than what was sent before
        assert r.event()["object"]["metadata"]["resourceVersion"] == "50"
        huge = dict(stale, data={"blob": "x" * 2_000_000})
        k8s.send_event("MODIFIED", huge)
        assert len(r.chunk()) > 2_000_000
        k8s.send_raw(b"zz\r\nnot a chunk\r\n", framed=False)  # breaks the chunked framing itself
        with pytest.raises(ValueError):
            r.chunk()
    finally:
        r.close()
    # bytes split over many small chunks still make one event each line (a client must reassemble)
    with FakeK8s(event_chunk_bytes=7) as fake:
        fake.apply(config_map(NS, "a"))
        r = Raw(fake.port)
        try:
            r.send("GET", "/api/v1/watch/namespaces/default/configmaps")
            assert r.head()[0] == 200
            data = b""
            while not data.endswith(b"\n"):
                c = r.chunk()
                assert 0 < len(c) <= 7
                data += c
            assert json.loads(data)["type"] == "ADDED"
        finally:
            r.close()


def test_compact_expires_versions_below_it_and_counters_show_relists(k8s: FakeK8s) -> None:
    for i in range(4):
        k8s.apply(config_map(NS, "a", {"v": str(i)}))  # 98..101
    k8s.compact(100)
    assert raw_get(k8s, "/api/v1/namespaces/default/configmaps")[0] == 200
    r = Raw(k8s.port)
    try:
        r.send("GET", "/api/v1/watch/namespaces/default/configmaps?resourceVersion=99")
        assert r.head()[0] == 200
        ev = r.event()  # the default form: an ERROR event, then the end
        assert ev == {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                  "status": "Failure", "message": "too old resource version: 99 (100)",
                                                  "reason": "Expired", "code": 410}}
        assert client.V1Status.from_dict(ev["object"]).code == 410  # the client's own model of it
        assert r.chunk() == b""
        r.send("GET", "/api/v1/watch/namespaces/default/configmaps?resourceVersion=100")
        assert r.head()[0] == 200
        assert r.event()["object"]["metadata"]["resourceVersion"] == "101"
    finally:
        r.close()
    assert k8s.count("/api/v1/namespaces/default/configmaps", method="GET", watch=False) == 1
    assert [q.query.get("resourceVersion") for q in k8s.requests("/api/v1/watch/namespaces/default/configmaps")] == \
        ["99", "100"]
    assert k8s.requests(watch=True)[0].status == 200


def test_fail_next_injects_answers(k8s: FakeK8s) -> None:
    path = "/api/v1/namespaces/default/endpoints"
    k8s.fail_next(path, 500, times=2)
    k8s.fail_next("/api/v1/namespaces/default/endpoints/x", 200, body=b"{not json", method="GET")
    assert raw_get(k8s, path)[0] == 500
    assert raw_get(k8s, path)[0] == 500
    assert raw_get(k8s, path)[0] == 200
    r = Raw(k8s.port)
    try:
        r.send("GET", "/api/v1/namespaces/default/endpoints/x")
        _, h = r.head()
        assert r.body(h) == b"{not json"
    finally:
        r.close()
    assert [q.status for q in k8s.requests(path)] == [500, 500, 200]


def test_bounds_sizes_watches_and_connections() -> None:
    with FakeK8s(max_object_bytes=10_000, max_watches=2, history=3) as fake:
        r = Raw(fake.port)
        status, _, body = r.request("POST", "/api/v1/namespaces/default/configmaps", config_map(NS, "big", {"k": "x" * 20_000}))
        r.close()
        assert status == 413 and body["code"] == 413
        with pytest.raises(Exception) as e:
            fake.apply(config_map(NS, "big", {"k": "x" * 20_000}))
        assert getattr(e.value, "code", None) == 413
        raws = [Raw(fake.port) for _ in range(3)]
        try:
            for r in raws[:2]:
                r.send("GET", "/api/v1/watch/configmaps")
                assert r.head()[0] == 200
            status, headers, body = raws[2].request("GET", "/api/v1/watch/configmaps")
            assert status == 429 and headers["retry-after"] == "1"
        finally:
            for r in raws:
                r.close()
        fake.wait_until(lambda: not fake.watches())
        for i in range(5):  # a history window of 3 changes
            fake.apply(config_map(NS, "a", {"v": str(i)}))
        status, _, _ = raw_get(fake, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=98")
        assert status == 200  # ...with the ERROR event
        fake.gone = "status"
        assert raw_get(fake, "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=98")[0] == 410
        r = Raw(fake.port)
        try:
            r.send("GET", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=99")
            assert r.head()[0] == 200 and r.event()["object"]["metadata"]["resourceVersion"] == "100"
        finally:
            r.close()


def test_connections_beyond_the_bound_get_429() -> None:
    with FakeK8s(max_connections=1) as fake:
        first, second = Raw(fake.port), Raw(fake.port)
        try:
            assert first.request("GET", "/healthz")[0] == 200  # kept alive: holds the one place
            status, headers, body = second.request("GET", "/healthz")
            assert status == 429 and body["reason"] == "TooManyRequests" and headers["connection"] == "close"
        finally:
            first.close()
            second.close()


def test_stop_ends_every_thread_and_connection() -> None:
    def ours() -> List[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("fakek8s")]

    fake = FakeK8s(bookmark_interval=0.05).start()
    fake.apply(config_map(NS, "a"))
    raws = [Raw(fake.port) for _ in range(3)]
    raws[0].send("GET", "/api/v1/watch/configmaps?allowWatchBookmarks=true")
    raws[1].send("GET", "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=60")
    raws[2].send("GET", "/api/v1/namespaces/default/configmaps/a")  # then idle, kept alive
    try:
        for r in raws:
            assert r.head()[0] == 200
        assert raws[0].event()["type"] == "ADDED"
        assert raws[0].event()["type"] == "BOOKMARK"  # from bookmark_interval
        fake.wait_watches(2)
        assert len(ours()) >= 5
        fake.stop()
        assert ours() == []
        for r in raws:
            with pytest.raises((ConnectionResetError, EOFError, ValueError, OSError)):
                while True:
                    r.chunk()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", fake.port), timeout=2).close()
    finally:
        for r in raws:
            r.close()
        fake.stop()


def test_the_python_api(k8s: FakeK8s) -> None:
    ep = k8s.apply(FakeK8s.endpoints(NS, "web", addresses=["127.0.0.2"], ports=[("http", 7778)]))
    assert ep["metadata"]["resourceVersion"] == "98" and k8s.get("Endpoints", NS, "web") == ep
    assert k8s.get("endpoints", NS, "nope") is None
    assert [e["metadata"]["name"] for e in k8s.list("endpoints")] == ["web"]
    with pytest.raises(Exception) as e:
        k8s.create(FakeK8s.endpoints(NS, "web"))
    assert getattr(e.value, "code", None) == 409
    gone = k8s.delete("endpoints", NS, "web")
    assert gone is not None and gone["metadata"]["resourceVersion"] == "99"
    assert k8s.delete("endpoints", NS, "web") is None
    assert endpoints(NS, "empty") == {"apiVersion": "v1", "kind": "Endpoints",
                                      "metadata": {"name": "empty", "namespace": NS}}  # no subsets at all
    assert dtab(NS, "d", "/a=>/b;/c => /d")["dentries"] == [{"prefix": "/a", "dst": "/b"}, {"prefix": "/c", "dst": "/d"}]
    assert service(NS, "s", ports=[("http", 80, "web")])["spec"]["ports"] == \
        [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"}]
    with pytest.raises(KeyError):
        k8s.get("deployments", NS, "x")
