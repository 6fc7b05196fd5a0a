"""Unit tests of the metrics registry (sans-IO) and its exports: flat and tree JSON, Prometheus text.

Time never comes from the wall clock here: the registry's clock is a list the test moves by hand.
The Prometheus output is checked with prometheus_client's own parser.
"""

from __future__ import annotations

import json
import math
import random
from typing import Dict, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pyproxy.metrics import Histogram, Registry, RequestStats, RouterStats
from pyproxy.telemetry.prometheus import labels_of, render


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reg(clock: Clock) -> Registry:
    return Registry(clock=clock, interval=60.0)


def flat(reg: Registry) -> Dict[str, object]:
    return reg.tree().flat()


# === counters, gauges, scopes ===


def test_counter_objects_are_created_once_and_counted(reg: Registry) -> None:
    scope = reg.scope("rt", "out", "server", "127.0.0.1/4140")
    c = scope.counter("requests")
    assert scope.counter("requests") is c  # callers keep the object; asking again is harmless
    c.incr()
    c.incr(4)
    assert flat(reg) == {"rt/out/server/127.0.0.1/4140/requests": 5}


def test_metric_names_with_slashes_nest_but_ids_stay_one_element(reg: Registry) -> None:
    cli = reg.scope("rt", "out", "client", "#/io.l5d.fs/world")
    cli.counter("status/200").incr()
    node = reg.tree()
    assert list(node.children["rt"].children["out"].children["client"].children) == ["#/io.l5d.fs/world"]
    assert flat(reg) == {"rt/out/client/#/io.l5d.fs/world/status/200": 1}


def test_a_name_keeps_its_kind(reg: Registry) -> None:
    reg.scope("a").counter("x")
    with pytest.raises(ValueError, match="a/x is already a counter"):
        reg.scope("a").histogram("x")
    with pytest.raises(ValueError):
        reg.scope("a").gauge("x", lambda: 1)


def test_gauges_are_read_at_export_and_a_broken_one_is_skipped(reg: Registry) -> None:
    box = [3]
    reg.scope("p").gauge("live", lambda: box[0])
    reg.scope("p").gauge("broken", lambda: 1 / 0)
    assert flat(reg) == {"p/live": 3}
    box[0] = 7
    assert flat(reg) == {"p/live": 7}


def test_collectors_add_up_values_of_one_name_and_a_failing_one_is_skipped(reg: Registry) -> None:
    reg.add_collector(lambda: [(("rt", "out", "client", "x", "pending"), 2), (("rt", "out", "client", "x", "pending"), 3)])

    def broken() -> List[Tuple[Tuple[str, ...], int]]:
        raise RuntimeError("mid-change")

    reg.add_collector(broken)
    assert flat(reg) == {"rt/out/client/x/pending": 5}


def test_remove_forgets_a_subtree(reg: Registry) -> None:
    reg.scope("rt", "out", "client", "a").counter("requests").incr()
    reg.scope("rt", "out", "client", "a").histogram("request_latency_ms").add(1)
    reg.scope("rt", "out", "client", "b").counter("requests").incr()
    reg.remove(("rt", "out", "client", "a"))
    reg.snapshot()
    assert flat(reg) == {"rt/out/client/b/requests": 1}


# === histograms ===


def test_percentiles_of_1_to_100_are_exact(reg: Registry) -> None:
    h = Histogram()
    values = list(range(1, 101))
    random.Random(7).shuffle(values)
    for v in values:
        h.add(v)
    s = h.current()
    assert (s.count, s.sum, s.min, s.max, s.avg) == (100, 5050, 1, 100, 50.5)
    assert (s.p50, s.p90, s.p95, s.p99, s.p9990, s.p9999) == (50, 90, 95, 99, 100, 100)
    assert h.percentile(0) == 1 and h.percentile(1) == 100 and h.percentile(0.25) == 25


def test_percentiles_stay_within_the_bucket_error_on_wide_data() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(3, 1.5) for _ in range(20000)]
    h = Histogram()
    for v in values:
        h.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = values[math.ceil(q * len(values)) - 1]
        # the reported value is the lower bound of exact's bucket: at most 1/64 below, never above
        assert exact * (1 - 1 / 64) <= h.percentile(q) <= exact, q
    assert h.current().max == values[-1] and h.current().min == values[0]


def test_snapshots_of_several_histograms_merge_into_the_summary_of_their_union() -> None:
    rng = random.Random(3)
    a, b, union = Histogram(), Histogram(), Histogram()
    for h, scale in ((a, 2.0), (b, 300.0)):  # two processes that saw very different latencies
        for _ in range(500):
            v = rng.expovariate(1 / scale)
            h.add(v)
            union.add(v)
    sa, sb, su = a.rotate(), b.rotate(), union.rotate()
    merged = Histogram.merged([sa, sb, Histogram().rotate()])  # an idle process adds nothing
    assert merged.items() == su.items()
    assert merged.count == 1000 and merged.min == min(sa.min, sb.min) and merged.max == max(sa.max, sb.max)
    assert Histogram.merged([]).items() == [("count", 0)]


def test_zero_negative_and_nan_values() -> None:
    h = Histogram()
    h.add(0.0)
    h.add(-3.0)  # clamped to 0 (a clock step backwards must not break the stats)
    h.add(float("nan"))  # ignored
    h.add(0.25)
    s = h.current()
    assert (s.count, s.min, s.max, s.p50, s.p99) == (3, 0.0, 0.25, 0.0, 0.25)


def test_exports_show_the_last_snapshot_and_rotate_once_per_interval(reg: Registry, clock: Clock) -> None:
    h = reg.scope("rt", "out", "server", "127.0.0.1/4140").histogram("request_latency_ms")
    for v in (1, 2, 3, 4):
        h.add(v)
    name = "rt/out/server/127.0.0.1/4140/request_latency_ms"
    clock.now += 59.9
    assert not reg.tick()
    assert flat(reg) == {f"{name}.count": 0}  # the first window is not over yet
    clock.now += 0.1
    assert reg.tick()
    assert flat(reg) == {
        f"{name}.count": 4, f"{name}.max": 4, f"{name}.min": 1, f"{name}.p50": 2, f"{name}.p90": 4,
        f"{name}.p95": 4, f"{name}.p99": 4, f"{name}.p9990": 4, f"{name}.p9999": 4, f"{name}.sum": 10,
        f"{name}.avg": 2.5,
    }  # fmt: skip
    assert list(flat(reg)) == [f"{name}.{f}" for f in ("count", "max", "min", "p50", "p90", "p95", "p99", "p9990", "p9999", "sum", "avg")]
    h.add(10)  # goes to the new window: the export does not move until the next rotation
    assert flat(reg)[f"{name}.count"] == 4
    clock.now += 30
    assert not reg.tick()
    clock.now += 30
    assert reg.tick()
    assert flat(reg)[f"{name}.count"] == 1 and flat(reg)[f"{name}.p50"] == 10
    clock.now += 60 * 5 + 1  # idle for five windows: one rotation, the schedule stays aligned
    assert reg.tick()
    assert flat(reg) == {f"{name}.count": 0}
    clock.now += 59
    assert reg.tick()  # 60*5+1+59 = 6 windows after the previous rotation point


def test_fractional_latencies_print_rounded(reg: Registry, clock: Clock) -> None:
    h = reg.scope("x").histogram("lat")
    h.add(0.3333333)
    reg.snapshot()
    assert flat(reg)["x/lat.sum"] == 0.333


# === RequestStats ===


def test_request_stats_count_status_success_failures_and_latency(reg: Registry) -> None:
    rt = RouterStats(reg, "out")
    srv = rt.server("127.0.0.1", 4140)
    assert rt.server("127.0.0.1", 4140) is srv
    srv.record(200, 1.0)
    srv.record(204, 2.0)
    srv.record(404, 3.0)  # a 4XX is a success for Linkerd's default HTTP classifier
    srv.record(503, 4.0)
    srv.record(0, 5.0, failure="ConnectionFailed")  # no response at all
    srv.record(502, 6.0, failure="ConnectionFailed")
    srv.record(200, 7.0, success=False)  # a classifier's verdict wins
    reg.snapshot()
    f = flat(reg)
    p = "rt/out/server/127.0.0.1/4140/"
    got = {k[len(p) :]: v for k, v in f.items() if k.startswith(p) and ".p" not in k and not k.endswith((".min", ".max", ".avg", ".sum"))}
    assert got == {
        "requests": 7, "success": 3, "failures": 4, "failures/ConnectionFailed": 2,
        "status/200": 2, "status/2XX": 3, "status/204": 1, "status/404": 1, "status/4XX": 1,
        "status/503": 1, "status/502": 1, "status/5XX": 2, "status/error": 1,
        "request_latency_ms.count": 7,
    }  # fmt: skip


def test_retry_stats(reg: Registry) -> None:
    rt = RouterStats(reg, "out")
    svc = rt.service("/svc/hello")
    svc.record_retries(0)
    svc.record_retries(2)
    svc.record_retries(1, budget_exhausted=True)
    rt.client("/$/inet/127.1/1").record_requeue()
    reg.snapshot()
    f = flat(reg)
    assert f["rt/out/service/svc/hello/retries/total"] == 3
    assert f["rt/out/service/svc/hello/retries/budget_exhausted"] == 1
    assert (f["rt/out/service/svc/hello/retries/per_request.count"], f["rt/out/service/svc/hello/retries/per_request.max"]) == (3, 2)
    assert f["rt/out/client/$/inet/127.1/1/retries/requeues"] == 1


def test_router_stats_names(reg: Registry) -> None:
    rt = RouterStats(reg, "out")
    rt.service("/svc/hello").record(200, 1)
    rt.client("/#/io.l5d.fs/world").record(200, 1)
    rt.client_service("/#/io.l5d.fs/world", "/svc/hello").record(200, 1)
    names = {k for k in flat(reg) if k.endswith("/requests")}
    assert names == {
        "rt/out/service/svc/hello/requests",
        "rt/out/client/#/io.l5d.fs/world/requests",
        "rt/out/client/#/io.l5d.fs/world/service/svc/hello/requests",
    }
    assert isinstance(rt.service("/svc/hello"), RequestStats)


def test_a_dropped_client_takes_every_metric_it_registered(reg: Registry) -> None:
    rt = RouterStats(reg, "out")
    c = rt.client("/#/io.l5d.fs/world")
    c.record(200, 1)
    c.record(503, 2, failure="ConnectionFailed")
    c.record_requeue()
    rt.client_service("/#/io.l5d.fs/world", "/svc/hello").record(200, 1)
    rt.client("/#/io.l5d.fs/earth").record(200, 1)
    rt.drop_client("/#/io.l5d.fs/world")
    reg.snapshot()  # a forgotten histogram is no longer rotated or shown
    assert not [k for k in flat(reg) if "/world/" in k]
    assert flat(reg)["rt/out/client/#/io.l5d.fs/earth/requests"] == 1
    assert rt.client("/#/io.l5d.fs/world").requests.value == 0  # a new client starts from zero


def test_service_scopes_go_when_idle_and_past_the_bound_the_idle_ones_first(reg: Registry) -> None:
    rt = RouterStats(reg, "out")
    for name in ("a", "b", "c", "d"):
        rt.service(f"/svc/{name}").record(200, 1)
    assert rt.sweep(idle_sweeps=3, most=10) == 0  # each served since the last sweep
    rt.service("/svc/a").record(200, 1)
    rt.service("/svc/b").record(200, 1)
    assert rt.sweep(idle_sweeps=3, most=10) == 0  # c and d idle for one sweep
    rt.service("/svc/a").record(200, 1)
    assert rt.sweep(idle_sweeps=3, most=2) == 2  # over the bound: the longest idle (c, d) go, not b
    names = {k.split("/")[4] for k in flat(reg) if k.endswith("/requests")}
    assert names == {"a", "b"}
    for _ in range(3):
        rt.service("/svc/a").record(200, 1)
        rt.sweep(idle_sweeps=3, most=10)
    assert {k.split("/")[4] for k in flat(reg) if k.endswith("/requests")} == {"a"}  # b idle for 3 sweeps
    assert flat(reg)["rt/out/service/svc/a/requests"] == 6


# === tree form and subtrees ===


def test_tree_form_is_linkerds(reg: Registry) -> None:
    rt = RouterStats(reg, "out")
    rt.client("/$/inet/127.1/8080").record(200, 3)
    reg.scope("rt", "out", "client", "$/inet/127.1/8080").gauge("loadbalancer/size", lambda: 1)
    reg.snapshot()
    tree = reg.tree().nested()
    node = tree["rt"]["out"]["client"]["$/inet/127.1/8080"]  # type: ignore[index]
    assert node["requests"] == {"counter": 1}
    assert node["loadbalancer"] == {"size": {"gauge": 1}}
    assert node["request_latency_ms"]["stat.count"] == 1 and node["request_latency_ms"]["stat.p99"] == 3
    assert node["status"] == {"200": {"counter": 1}, "2XX": {"counter": 1}}
    json.dumps(tree)  # plain JSON data


def test_subtree_queries_resolve_ids_with_slashes(reg: Registry) -> None:
    RouterStats(reg, "out").client("/#/io.l5d.fs/world").record(200, 1)
    root = reg.tree()
    sub = root.resolve("rt/out/client/#/io.l5d.fs/world")
    assert sub is not None and sub.flat()["requests"] == 1
    assert root.resolve("rt/out")  is not None
    assert root.resolve("rt/out/client/#/io.l5d.fs") is None
    assert root.resolve("rt/nope") is None
    assert root.resolve("") is root


# === Prometheus ===


def _families(text: str) -> Dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_prometheus_label_mapping() -> None:
    assert labels_of(("rt", "out", "server", "127.0.0.1/4140", "requests")) == (
        ["rt", "server", "requests"], (("rt", "out"), ("server", "127.0.0.1/4140")), ["rt", "<rt>", "server", "<server>", "requests"],
    )  # fmt: skip
    assert labels_of(("rt", "out", "client", "#/a", "service", "svc/b", "failures", "E1", "E2"))[:2] == (
        ["rt", "client", "service", "failures"],
        (("rt", "out"), ("client", "#/a"), ("service", "svc/b"), ("exception", "E1:E2")),
    )
    assert labels_of(("rt", "out", "server", "s", "exn", "E"))[:2] == (["rt", "server", "exceptions"], (("rt", "out"), ("server", "s"), ("exception", "E")))
    assert labels_of(("rt", "out", "bindcache", "path", "hits"))[:2] == (["rt", "bindcache", "path", "hits"], (("rt", "out"),))
    assert labels_of(("process", "uptime_ms"))[:2] == (["process", "uptime_ms"], ())


def test_prometheus_text_parses_and_carries_linkerds_names(reg: Registry) -> None:
    rt = RouterStats(reg, "out")
    for v in range(1, 101):
        rt.server("0.0.0.0", 4140).record(200, v)
    rt.server("0.0.0.0", 4140).record(502, 1, failure="ConnectionFailed/IOException")
    rt.client_service('/#/io.l5d.fs/we"ird\\', "/svc/hello").record(200, 2)
    reg.scope("rt", "out", "client", "#/io.l5d.fs/world").gauge("loadbalancer/size", lambda: 3)
    reg.scope("process").gauge("uptime_ms", lambda: 1234.5)
    reg.snapshot()
    text = render(reg, prefix="l5d_")
    fams = _families(text)

    req = fams["l5d_rt:server:requests"]
    assert req.type == "counter"  # type: ignore[attr-defined]
    assert [(s.labels, s.value) for s in req.samples] == [({"rt": "out", "server": "0.0.0.0/4140"}, 101)]  # type: ignore[attr-defined]

    fails = fams["l5d_rt:server:failures"]
    assert {(s.labels.get("exception"), s.value) for s in fails.samples} == {(None, 1), ("ConnectionFailed:IOException", 1)}  # type: ignore[attr-defined]

    lat = fams["l5d_rt:server:request_latency_ms"]
    assert lat.type == "summary"  # type: ignore[attr-defined]
    q = {s.labels["quantile"]: s.value for s in lat.samples if "quantile" in s.labels}  # type: ignore[attr-defined]
    assert q == {"0": 1, "0.5": 50, "0.9": 90, "0.95": 95, "0.99": 99, "0.999": 100, "0.9999": 100, "1": 100}
    by_name = {s.name: s.value for s in lat.samples if "quantile" not in s.labels}  # type: ignore[attr-defined]
    assert by_name == {"l5d_rt:server:request_latency_ms_count": 101, "l5d_rt:server:request_latency_ms_sum": 5051}
    avg = fams["l5d_rt:server:request_latency_ms_avg"]
    assert avg.type == "gauge" and avg.samples[0].value == pytest.approx(5051 / 101)  # type: ignore[attr-defined]

    cs = fams["l5d_rt:client:service:requests"]
    assert cs.samples[0].labels == {"rt": "out", "client": '#/io.l5d.fs/we"ird\\', "service": "svc/hello"}  # type: ignore[attr-defined]

    size = fams["l5d_rt:client:loadbalancer:size"]
    assert size.type == "gauge" and size.samples[0].labels == {"rt": "out", "client": "#/io.l5d.fs/world"}  # type: ignore[attr-defined]
    assert fams["l5d_process:uptime_ms"].samples[0].value == 1234.5  # type: ignore[attr-defined]

    # every family has HELP and TYPE lines, each name once
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types)) == len(fams)
    assert sum(line.startswith("# HELP") for line in text.splitlines()) == len(fams)


def test_prometheus_empty_histogram_is_a_zero_summary_and_names_are_sanitised(reg: Registry) -> None:
    reg.scope("rt", "my-router", "server", "::1/80").histogram("request_latency_ms")
    reg.scope("weird name", "x.y").counter("z").incr()
    fams = _families(render(reg))
    lat = fams["rt:server:request_latency_ms"]
    assert {s.name: s.value for s in lat.samples} == {"rt:server:request_latency_ms_count": 0, "rt:server:request_latency_ms_sum": 0}  # type: ignore[attr-defined]
    assert lat.samples[0].labels == {"rt": "my-router", "server": "::1/80"}  # type: ignore[attr-defined]
    assert "weird_name:x_y:z" in fams
