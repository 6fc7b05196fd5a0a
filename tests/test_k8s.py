"""The io.l5d.k8s namer, its watches and the Kubernetes transformers, against the fake API server.

In-process: the namer runs on trio against ``tests/fakek8s.py`` (a real HTTP server on loopback,
checked against the official client in test_fakek8s.py); every wait is bounded polling.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import pytest
import trio

from fakek8s import FakeK8s, endpoint_slice, endpoints, ingress, service
from pyproxy.discovery.k8s.api import KubeApi
from pyproxy.discovery.k8s.ingress import IngressRules
from pyproxy.discovery.namers.k8s import K8sNamer
from pyproxy.discovery.transformers.k8s import DaemonSetTransformer, localnode
from pyproxy.errors import ConfigError, NamePending
from pyproxy.naming import Path
from pyproxy.naming.name import ADDR_NEG, Address, AddrBound, AddrVar, Bound
from pyproxy.naming.tree import Leaf, Neg

PREFIX = Path.read("/#/io.l5d.k8s")


@pytest.fixture
def k8s() -> Iterator[FakeK8s]:
    with FakeK8s() as fake:
        yield fake


async def _until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    with trio.move_on_after(seconds):
        while not check():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def _lookup(namer: K8sNamer, path: str) -> Any:
    """Look ``path`` up, waiting (bounded) while the namer says it is pending."""
    with trio.fail_after(5):
        while True:
            try:
                return namer.lookup(Path.read(path))
            except NamePending as pending:
                await pending.ready.wait()  # type: ignore[attr-defined]


def _hosts(var: AddrVar) -> set:
    value = var.value
    assert isinstance(value, AddrBound), value
    return {(a.host, a.port, a.meta.get("nodeName")) for a in value.addresses}


def _run(fake: FakeK8s, body: Callable[[K8sNamer, FakeK8s], Any], **kw: Any) -> None:
    async def main() -> None:
        api = KubeApi(fake.url)
        namer = K8sNamer(api, PREFIX, **kw)
        async with trio.open_nursery() as nursery:
            await nursery.start(namer.run)
            await body(namer, fake)
            nursery.cancel_scope.cancel()
        await api.aclose()

    trio.run(main)


def test_named_and_numbered_ports_bind_ready_endpoints_with_their_nodes(k8s: FakeK8s) -> None:
    k8s.apply(endpoints("default", "world-v1", addresses=[("10.0.1.5", "node-a"), ("10.0.2.7", "node-b")],
                        ports={"http": 7778}, not_ready=[("10.0.1.9", "node-a")]))
    k8s.apply(service("default", "world-v1", ports=[("http", 80, "http"), ("admin", 9990, 9991)]))

    async def body(namer: K8sNamer, _: FakeK8s) -> None:
        leaf = await _lookup(namer, "/default/HTTP/World-V1/rest")
        b = leaf.value
        assert (b.id.show, b.residual.show) == ("/#/io.l5d.k8s/default/http/world-v1", "/rest")
        assert _hosts(b.addr) == {("10.0.1.5", 7778, "node-a"), ("10.0.2.7", 7778, "node-b")}  # not-ready left out
        by_number = (await _lookup(namer, "/default/80/world-v1")).value  # service port -> targetPort name
        assert _hosts(by_number.addr) == _hosts(b.addr)
        numeric_target = (await _lookup(namer, "/default/9990/world-v1")).value  # -> targetPort 9991
        assert {p for _, p, _ in _hosts(numeric_target.addr)} == {9991}
        assert await _lookup(namer, "/default/grpc/world-v1") is Neg  # no such port
        assert await _lookup(namer, "/default/81/world-v1") is Neg  # no such service port
        assert await _lookup(namer, "/default/http/nowhere") is Neg  # no such service

    _run(k8s, body)


def test_endpoint_changes_reach_the_address_set_and_a_new_service_rebinds(k8s: FakeK8s) -> None:
    k8s.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        var = (await _lookup(namer, "/default/http/web")).value.addr
        fake.apply(endpoints("default", "web", addresses=[("10.0.1.6", "a"), ("10.0.1.7", "b")], ports={"http": 80}))
        await _until(lambda: {h for h, _, _ in _hosts(var)} == {"10.0.1.6", "10.0.1.7"}, "the new endpoints")
        fake.delete("endpoints", "default", "web")
        await _until(lambda: var.value is ADDR_NEG, "the service to vanish")
        assert await _lookup(namer, "/default/http/web") is Neg
        version = namer.version
        fake.apply(endpoints("default", "web", addresses=[("10.0.1.8", "a")], ports={"http": 80}))
        await _until(lambda: namer.version > version, "the name to exist again")
        assert {h for h, _, _ in _hosts((await _lookup(namer, "/default/http/web")).value.addr)} == {"10.0.1.8"}

    _run(k8s, body)


def test_a_stream_that_ends_is_resumed_from_the_last_version_without_a_new_list(k8s: FakeK8s) -> None:
    k8s.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        var = (await _lookup(namer, "/default/http/web")).value.addr
        await trio.to_thread.run_sync(lambda: fake.wait_watches(1))
        before = fake.resource_version
        fake.end_watches()
        await trio.to_thread.run_sync(lambda: fake.wait_watches(1))
        fake.apply(endpoints("default", "web", addresses=[("10.0.1.9", "a")], ports={"http": 80}))
        await _until(lambda: {h for h, _, _ in _hosts(var)} == {"10.0.1.9"}, "the change after the resume")
        stats = namer._services[("default", "web", None)].endpoints_watch.stats  # type: ignore[union-attr]
        assert stats.lists == 1 and stats.resumes >= 1
        resumed = [r for r in fake.requests(watch=True) if r.query.get("resourceVersion")]
        assert resumed and int(resumed[-1].query["resourceVersion"]) >= int(before)

    _run(k8s, body)


@pytest.mark.parametrize("form", ["event", "status"])
def test_410_gone_in_either_form_relists_then_watches_again(k8s: FakeK8s, form: str) -> None:
    k8s.gone = form
    k8s.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        var = (await _lookup(namer, "/default/http/web")).value.addr
        watch = namer._services[("default", "web", None)].endpoints_watch
        await trio.to_thread.run_sync(lambda: fake.wait_watches(1))
        for i in range(3):  # history moves on while the stream is down: resuming is too old
            fake.apply(endpoints("default", "other", addresses=[(f"10.9.0.{i}", "z")], ports={"http": 80}))
        fake.expire_history()
        fake.end_watches()
        fake.apply(endpoints("default", "web", addresses=[("10.0.1.6", "a")], ports={"http": 80}))
        await _until(lambda: watch.stats.gone >= 1 and watch.stats.lists >= 2, "a re-list after 410")  # type: ignore[union-attr]
        await _until(lambda: {h for h, _, _ in _hosts(var)} == {"10.0.1.6"}, "the state after the re-list")

    _run(k8s, body)


def test_an_api_outage_keeps_the_last_endpoints_and_recovers(k8s: FakeK8s, caplog: pytest.LogCaptureFixture) -> None:
    k8s.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        var = (await _lookup(namer, "/default/http/web")).value.addr
        watch = namer._services[("default", "web", None)].endpoints_watch
        await trio.to_thread.run_sync(lambda: fake.wait_watches(1))
        for mode in ("refuse", "503"):
            errors = watch.stats.errors  # type: ignore[union-attr]
            fake.down(mode)
            fake.end_watches()
            await _until(lambda: watch.stats.errors >= errors + 2, f"failures during a {mode} outage")  # type: ignore[union-attr]
            assert {h for h, _, _ in _hosts(var)} == {"10.0.1.5"}  # the last known endpoints keep serving
            fake.up()
            fake.apply(endpoints("default", "web", addresses=[("10.0.1.6", "a")], ports={"http": 80}))
            await _until(lambda: {h for h, _, _ in _hosts(var)} == {"10.0.1.6"}, "the state after the outage")
            fake.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))
            await _until(lambda: {h for h, _, _ in _hosts(var)} == {"10.0.1.5"}, "the next change")

    with caplog.at_level(logging.DEBUG, logger="pyproxy.k8s"):
        _run(k8s, body)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "endpoints default/web" in r.getMessage()]
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]  # once per outage, not per retry


def test_bad_events_are_survived_and_old_events_dropped(k8s: FakeK8s, caplog: pytest.LogCaptureFixture) -> None:
    k8s.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        var = (await _lookup(namer, "/default/http/web")).value.addr
        watch = namer._services[("default", "web", None)].endpoints_watch
        await trio.to_thread.run_sync(lambda: fake.wait_watches(1))
        stale = endpoints("default", "web", addresses=[("10.6.6.6", "x")], ports={"http": 80})
        stale["metadata"]["resourceVersion"] = "1"
        fake.send_event("MODIFIED", stale)  # older than what the namer has: dropped
        await _until(lambda: watch.stats.dropped >= 1, "the stale event to be dropped")  # type: ignore[union-attr]
        assert {h for h, _, _ in _hosts(var)} == {"10.0.1.5"}
        fake.send_raw(b"this is not json\n")
        await _until(lambda: watch.stats.errors >= 1, "the bad line to count as an error")  # type: ignore[union-attr]
        wrong = endpoints("default", "web", ports={"http": 80})
        wrong["subsets"] = "not a list"
        wrong["metadata"]["resourceVersion"] = fake.resource_version  # not older: taken, then refused as a shape
        await trio.to_thread.run_sync(lambda: fake.wait_watches(1))
        fake.send_event("MODIFIED", wrong)  # the wrong shape: logged once, the last good state kept
        await trio.sleep(0.2)
        assert {h for h, _, _ in _hosts(var)} == {"10.0.1.5"}
        fake.apply(endpoints("default", "web", addresses=[("10.0.1.6", "a")], ports={"http": 80}))
        await _until(lambda: {h for h, _, _ in _hosts(var)} == {"10.0.1.6"}, "a good change after bad ones")

    with caplog.at_level(logging.WARNING, logger="pyproxy.k8s"):
        _run(k8s, body)
    assert any("does not parse" in r.getMessage() and "default/web" in r.getMessage() for r in caplog.records)


def test_label_selector_puts_the_label_value_in_the_name(k8s: FakeK8s) -> None:
    k8s.apply(endpoints("default", "world", addresses=[("10.0.1.5", "a")], ports={"http": 80}, labels={"version": "v2"}))

    async def body(namer: K8sNamer, _: FakeK8s) -> None:
        b = (await _lookup(namer, "/default/http/world/v2/x")).value
        assert (b.id.show, b.residual.show) == ("/#/io.l5d.k8s/default/http/world/v2", "/x")
        assert await _lookup(namer, "/default/http/world/v3") is Neg
        assert await _lookup(namer, "/default/http/world") is Neg  # the label value is missing

    _run(k8s, body, label_selector="version")


def test_endpoint_slices_are_an_option(k8s: FakeK8s) -> None:
    k8s.apply(endpoint_slice("default", "web-abc", "web", endpoints=[("10.0.1.5", "a", True), ("10.0.1.6", "b", False)], ports={"http": 8080}))
    k8s.apply(endpoint_slice("default", "web-def", "web", endpoints=[("10.0.2.5", "c", True)], ports={"http": 8081}))

    async def body(namer: K8sNamer, _: FakeK8s) -> None:
        b = (await _lookup(namer, "/default/http/web")).value
        assert _hosts(b.addr) == {("10.0.1.5", 8080, "a"), ("10.0.2.5", 8081, "c")}  # ports per slice; not ready out

    _run(k8s, body, slices=True)


def test_watched_services_are_bounded(k8s: FakeK8s) -> None:
    async def body(namer: K8sNamer, _: FakeK8s) -> None:
        for i in range(12):  # names from requests: one watch each, at most max_services of them
            await _lookup(namer, f"/default/http/svc-{i}")
        assert len(namer._services) <= 5

    _run(k8s, body, max_services=5)


def test_an_evicted_service_makes_cached_bindings_bind_again(k8s: FakeK8s) -> None:
    # A router caches bindings until the namer's version moves. The address set of an evicted
    # service is no longer updated, so the eviction must move the version, and binding the name again
    # must give an address set that follows the API.
    k8s.apply(_ep("svc-0", "10.0.0.1"))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        first = (await _lookup(namer, "/default/http/svc-0")).value.addr
        before = namer.version
        for i in range(1, 4):
            await _lookup(namer, f"/default/http/svc-{i}")
        assert ("default", "svc-0", None) not in namer._services
        assert namer.version != before
        again = (await _lookup(namer, "/default/http/svc-0")).value.addr
        assert again is not first
        fake.apply(_ep("svc-0", "10.0.0.2"))
        await _until(lambda: _hosts(again) == {("10.0.0.2", 80, "a")}, "the new address set to follow the API")

    _run(k8s, body, max_services=2)


def test_address_sets_per_service_are_bounded(k8s: FakeK8s) -> None:
    # The port segment of a name can come from a request's override: a port per request must not
    # grow a service's state without end. Observed sets stay; the rest go, and the version moves.
    from pyproxy.discovery.namers.k8s import MAX_PORTS

    k8s.apply(endpoints("default", "web", addresses=[("10.0.0.1", "a")], ports={"http": 80}))

    async def body(namer: K8sNamer, _: FakeK8s) -> None:
        kept = (await _lookup(namer, "/default/http/web")).value.addr
        stop = kept.observe(lambda _: None)  # a client uses it
        before = namer.version
        for i in range(3 * MAX_PORTS):
            assert await _lookup(namer, f"/default/port-{i}/web") is Neg
        svc = namer._services[("default", "web", None)]
        assert len(svc.vars) <= MAX_PORTS
        assert svc.vars["http"] is kept and namer.version != before
        stop()

    _run(k8s, body)


def _ep(name: str, ip: str, port: int = 80) -> Any:
    return endpoints("default", name, addresses=[(ip, "a")], ports={"http": port})


@pytest.mark.parametrize("slices", [False, True], ids=["endpoints", "slices"])
def test_a_namespace_with_many_watched_services_is_watched_as_one(k8s: FakeK8s, slices: bool) -> None:
    def put(name: str, ip: str) -> None:
        if slices:
            k8s.apply(endpoint_slice("default", f"{name}-x", name, endpoints=[(ip, "a", True)], ports={"http": 80}))
        else:
            k8s.apply(_ep(name, ip))

    for i in range(5):
        put(f"svc-{i}", f"10.0.0.{i + 1}")
    k8s.apply(_ep("other", "10.9.9.9") if not slices else endpoint_slice("other", "x-y", "x", endpoints=[("10.9.9.9", "a", True)], ports={"http": 80}))
    kind = "endpointslices" if slices else "endpoints"

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        vars = {}
        for i in range(2):  # below share_at: a watch per service
            vars[i] = (await _lookup(namer, f"/default/http/svc-{i}")).value.addr
        await trio.to_thread.run_sync(lambda: fake.wait_watches(2))
        assert all("fieldSelector" in w.query or "=" in w.query.get("labelSelector", "") for w in fake.watches())
        vars[2] = (await _lookup(namer, "/default/http/svc-2")).value.addr  # the third: the namespace's watch
        # the services' own watches stop once the namespace's answers: one stream left, on the namespace
        def shared_only() -> bool:
            ws = fake.watches()
            return len(ws) == 1 and "fieldSelector" not in ws[0].query and "=" not in ws[0].query.get("labelSelector", "")

        await _until(shared_only, "the namespace's watch alone")
        (w,) = fake.watches()
        assert (w.kind, w.namespace, w.name) == (kind, "default", None)
        assert {i: {h for h, _, _ in _hosts(v)} for i, v in vars.items()} == {i: {f"10.0.0.{i + 1}"} for i in range(3)}
        # a service looked up now is answered at once from the namespace's watch; no new stream
        assert _hosts(namer.lookup(Path.read("/default/http/svc-4")).value.addr) == {("10.0.0.5", 80, "a")}
        assert namer.lookup(Path.read("/default/http/nowhere")) is Neg
        assert len(fake.watches()) == 1
        before = {i: v.value for i, v in vars.items()}
        put("svc-1", "10.0.1.1")  # a change reaches its service, and only it
        await _until(lambda: {h for h, _, _ in _hosts(vars[1])} == {"10.0.1.1"}, "the change")
        assert vars[0].value is before[0] and vars[2].value is before[2]
        put("nowhere", "10.0.2.2")  # a service that appears: its name binds now
        version = namer.version
        await _until(lambda: namer.lookup(Path.read("/default/http/nowhere")) is not Neg or namer.version > version, "nowhere")
        assert _hosts(namer.lookup(Path.read("/default/http/nowhere")).value.addr) == {("10.0.2.2", 80, "a")}
        with fake.outage():  # the namespace's watch fails: every service keeps its endpoints
            await trio.sleep(0.3)
            assert {h for h, _, _ in _hosts(vars[1])} == {"10.0.1.1"}
        if slices:
            fake.delete("endpointslices", "default", "svc-1-x")
        else:
            fake.delete("endpoints", "default", "svc-1")
        await _until(lambda: vars[1].value is ADDR_NEG, "svc-1 to vanish")
        state = namer.state_json()
        assert state["namespaces"]["default"]["services"] == 5
        assert dict(namer.metrics())["watches"] == 1

    _run(k8s, body, slices=slices, share_at=3)


def test_lists_are_read_in_pages(k8s: FakeK8s) -> None:
    for i in range(450):
        k8s.apply(_ep(f"svc-{i}", f"10.1.{i // 200}.{i % 200 + 1}"))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        for i in range(3):
            await _lookup(namer, f"/default/http/svc-{i}")
        await _until(lambda: namer.lookup(Path.read("/default/http/svc-449")) is not Neg, "the whole namespace")
        pages = [r.query for r in fake.requests("/api/v1/namespaces/default/endpoints", watch=False) if "fieldSelector" not in r.query]
        assert [p.get("limit") for p in pages] == ["200"] * 3
        assert "continue" not in pages[0] and all(p.get("continue") for p in pages[1:])
        assert _hosts(namer.lookup(Path.read("/default/http/svc-449")).value.addr) == {("10.1.2.50", 80, "a")}

    _run(k8s, body, share_at=3)


def test_daemonset_transformer_sends_each_destination_to_the_proxy_on_its_node(k8s: FakeK8s) -> None:
    k8s.apply(endpoints("default", "l5d", addresses=[("127.0.1.1", "node-1"), ("127.0.2.1", "node-2")], ports={"incoming": 4141}))

    async def body(namer: K8sNamer, fake: FakeK8s) -> None:
        for host_network in (False, True):
            t = DaemonSetTransformer(Path.read("/io.l5d.k8s.daemonset/default/incoming/l5d"), namer, "default", "incoming", "l5d", host_network)
            dest = AddrVar(AddrBound((Address("127.0.2.7", 7778, {"nodeName": "node-2"}),)))
            tree = Leaf(Bound(Path.read("/#/io.l5d.k8s/default/http/world-v1"), Path.EMPTY, dest))  # type: ignore[attr-defined]
            with trio.fail_after(5):
                while True:
                    try:
                        out = t.transform(tree)
                        break
                    except NamePending as p:
                        await p.ready.wait()  # type: ignore[attr-defined]
            b = out.value  # type: ignore[attr-defined]
            assert b.id.show == "/%/io.l5d.k8s.daemonset/default/incoming/l5d/#/io.l5d.k8s/default/http/world-v1"
            assert {(a.host, a.port) for a in b.addr.value.addresses} == {("127.0.2.1", 4141)}
            dest.update(AddrBound((Address("127.0.1.8", 7778, {"nodeName": "node-1"}),)))  # the pod moved
            assert {(a.host, a.port) for a in b.addr.value.addresses} == {("127.0.1.1", 4141)}
            dest.update(AddrBound((Address("127.0.3.8", 7778, {"nodeName": "node-3"}),)))  # no proxy near it
            assert b.addr.value is ADDR_NEG

    _run(k8s, body)


def test_localnode_keeps_the_addresses_of_this_node() -> None:
    dest = AddrVar(AddrBound((Address("127.0.1.5", 80, {"nodeName": "n1"}), Address("127.0.2.5", 80, {"nodeName": "n2"}))))
    bound = Bound(Path.read("/#/io.l5d.k8s/default/http/web"), Path.EMPTY, dest)  # type: ignore[attr-defined]
    by_ip = localnode(Path.read("/io.l5d.k8s.localnode"), False, {"POD_IP": "127.0.1.77"}, "$.t")
    b = by_ip.transform_bound(bound)
    assert b.id.show == "/%/io.l5d.k8s.localnode/127.0.1.77/#/io.l5d.k8s/default/http/web"
    assert [a.host for a in b.addr.value.addresses] == ["127.0.1.5"]
    by_node = localnode(Path.read("/io.l5d.k8s.localnode"), True, {"NODE_NAME": "n2"}, "$.t")
    assert [a.host for a in by_node.transform_bound(bound).addr.value.addresses] == ["127.0.2.5"]
    with pytest.raises(ConfigError, match="POD_IP"):
        localnode(Path.read("/io.l5d.k8s.localnode"), False, {}, "$.routers[0].interpreter.transformers[0]")


def test_ingress_rules_match_host_and_whole_path_then_default_backends(k8s: FakeK8s) -> None:
    k8s.apply(ingress("default", "web", rules=[("www.hello.world", "/api/.*", "api", 80), ("www.hello.world", None, "hello", "http")],
                      path_type="ImplementationSpecific"))
    k8s.apply(ingress("other", "theirs", rules=[("www.hello.world", None, "stolen", 80)], annotation_class="nginx"))
    k8s.apply(ingress("default", "fallback", default_backend=("catchall", 8080)))

    async def main() -> None:
        api = KubeApi(k8s.url)
        rules = IngressRules(api, None, "linkerd", False)
        async with trio.open_nursery() as nursery:
            await nursery.start(rules.run)
            await _until(lambda: rules.known, "the ingress rules")
            assert rules.match("www.hello.world:80", "/api/users") == ("default", "80", "api")
            assert rules.match("www.hello.world", "/apiary") == ("default", "http", "hello")  # regex of the whole path
            assert rules.match("elsewhere", "/") == ("default", "8080", "catchall")  # a default backend
            nursery.cancel_scope.cancel()
        await api.aclose()

    trio.run(main)


def test_in_cluster_access_over_https_with_the_service_account_token_rotating(
    k8s: FakeK8s, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    ca.cert_pem.write_to_path(str(account / "ca.crt"))
    (account / "token").write_text("token-1\n")
    with FakeK8s(token="token-1", tls=server_ctx) as fake:
        fake.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))

        async def main() -> None:
            api = KubeApi.in_cluster(str(account))
            assert api.base_url == f"https://127.0.0.1:{fake.port}"
            namer = K8sNamer(api, PREFIX)
            async with trio.open_nursery() as nursery:
                await nursery.start(namer.run)
                var = (await _lookup(namer, "/default/http/web")).value.addr
                assert _hosts(var) == {("10.0.1.5", 80, "a")}
                assert all(r.headers.get("authorization") == "Bearer token-1" for r in fake.requests())
                # the kubelet rotates the token: the API takes only the new one, and the file changes
                fake.token = "token-2"
                (account / "token").write_text("token-2\n")
                fake.end_watches()
                fake.apply(endpoints("default", "web", addresses=[("10.0.1.6", "a")], ports={"http": 80}))
                await _until(lambda: {h for h, _, _ in _hosts(var)} == {"10.0.1.6"}, "the change, with the new token", 15)
                assert fake.requests()[-1].headers.get("authorization") == "Bearer token-2"
                nursery.cancel_scope.cancel()
            await api.aclose()

        trio.run(main)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(Exception, match="KUBERNETES_SERVICE_HOST"):
        KubeApi.in_cluster(str(account))


def test_in_cluster_access_refuses_a_server_its_ca_did_not_sign(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    import ssl

    import trustme

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_ctx)  # signed by another CA
    account = tmp_path / "serviceaccount"
    account.mkdir()
    trustme.CA().cert_pem.write_to_path(str(account / "ca.crt"))
    (account / "token").write_text("t")
    with FakeK8s(tls=server_ctx) as fake:
        fake.apply(endpoints("default", "web", addresses=[("10.0.1.5", "a")], ports={"http": 80}))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))

        async def main() -> None:
            api = KubeApi.in_cluster(str(account))
            namer = K8sNamer(api, PREFIX)
            async with trio.open_nursery() as nursery:
                await nursery.start(namer.run)
                with pytest.raises(NamePending):
                    namer.lookup(Path.read("/default/http/web"))
                await _until(lambda: "certificate" in caplog.text.lower(), "the TLS failure logged")
                with pytest.raises(NamePending):  # nothing was believed
                    namer.lookup(Path.read("/default/http/web"))
                assert not any(r.method == "GET" and r.status == 200 for r in fake.requests())
                nursery.cancel_scope.cancel()
            await api.aclose()

        with caplog.at_level(logging.WARNING, logger="pyproxy.k8s"):
            trio.run(main)
