"""Tests of pyproxy.config: Linkerd 1.x configs load into typed, frozen structs; every error is one line
that starts with the key path; legacy keys warn; experimental plugins are gated; unbuilt kinds are listed.
"""

from __future__ import annotations

import glob
import importlib
import inspect
import json
import os
import pkgutil
import warnings

import msgspec
import pytest
import yaml

from pyproxy import config as C
from pyproxy.config import classifiers, client, identifiers, interpreters, namers, policy, router, server, telemetry
from pyproxy.config import transformers
from pyproxy.errors import ConfigError
from pyproxy.naming import Dtab, Path

# The Kubernetes manifests of linkerd-examples (tests/data/linkerd-examples, provenance in tests/data/README.md).
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "linkerd-examples")


def example_configs():
    """(id, text) of every Linkerd config.yaml in the example manifests (namerd's config.yml is not one)."""
    found = []
    for path in sorted(glob.glob(os.path.join(EXAMPLES, "*.yml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                    text = (doc.get("data") or {}).get("config.yaml")
                    if text is not None:
                        found.append(pytest.param(text, id=os.path.basename(path)))
    return found


EXAMPLE_CONFIGS = example_configs()


def load(text: str) -> C.Config:
    return C.loads(text)


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        C.loads(text)
    message = str(info.value)
    assert "\n" not in message, message
    return message


HTTP = "routers:\n- protocol: http\n"


# === the example configs ===


def test_examples_found_three_linkerd_configs():
    assert len(EXAMPLE_CONFIGS) >= 3


@pytest.mark.parametrize("text", EXAMPLE_CONFIGS)
def test_examples_each_linkerd_config_loads(text):
    cfg = load(text)
    assert cfg.routers
    assert cfg.warnings == ()


@pytest.mark.parametrize("text", EXAMPLE_CONFIGS)
def test_examples_round_trip_through_to_data_and_json(text):
    cfg = load(text)
    assert load(json.dumps(cfg.to_data())) == cfg


def test_examples_daemonset_config_values():
    text = next(p.values[0] for p in EXAMPLE_CONFIGS if p.id == "linkerd.yml")
    cfg = load(text)
    assert (cfg.admin.ip, cfg.admin.port) == ("0.0.0.0", 9990)
    outgoing, incoming = cfg.routers
    assert (outgoing.label, incoming.label) == ("outgoing", "incoming")
    assert (outgoing.servers[0].ip, outgoing.servers[0].port) == ("0.0.0.0", 4140)
    assert outgoing.read_dtab() == Dtab.read(
        "/srv => /#/io.l5d.k8s/default/http; /host => /srv; /svc => /host; /host/world => /srv/world-v1"
    )
    (daemonset,) = outgoing.interpreter.transformers
    assert (daemonset.namespace, daemonset.port, daemonset.service) == ("default", "incoming", "l5d")
    assert outgoing.service.response_classifier.__struct_config__.tag == "io.l5d.http.retryableRead5XX"
    assert isinstance(cfg.namers[0], namers.K8s) and cfg.namers[0].prefix == "/io.l5d.k8s"
    assert cfg.telemetry[1].sample_rate == 0.25
    assert cfg.usage.org_id == "linkerd-examples-daemonset"


def test_examples_namerd_linkerd_config_uses_namerd_interpreter():
    text = next(p.values[0] for p in EXAMPLE_CONFIGS if p.id == "linkerd-namerd.yml")
    cfg = load(text)
    assert [r.interpreter.namespace for r in cfg.routers] == ["internal", "internal", "external"]
    assert cfg.routers[0].interpreter.dst == "/$/inet/namerd.default.svc.cluster.local/4100"


def test_the_seeds_daemonset_configs_are_built_whole():
    for name in ("linkerd.yml", "linkerd-ingress.yml"):
        text = next(p.values[0] for p in EXAMPLE_CONFIGS if p.id == name)
        assert load(text).unsupported() == [], name


# === defaults ===


def test_defaults_admin():
    admin = load(HTTP).admin
    assert (admin.ip, admin.port, admin.shutdown_grace_ms) == ("127.0.0.1", 9990, 10000)
    assert admin.security.ui_enabled and admin.security.control_enabled and admin.security.diagnostics_enabled


def test_defaults_http_router():
    r = load(HTTP).routers[0]
    assert isinstance(r, C.HttpRouter)
    assert (r.label, r.dtab, r.dst_prefix, r.binding_timeout_ms) == ("http", "", "/svc", 10000)
    assert (r.max_headers_kb, r.max_initial_line_kb, r.max_err_response_kb) == (8, 4, 5120)
    assert (r.streaming_enabled, r.stream_after_content_length_kb, r.compression_level) == (True, 5, -1)
    assert r.binding_cache.paths == 1000 and r.binding_cache.idle_ttl_secs == 600
    assert isinstance(r.interpreter, interpreters.DefaultInterpreter)
    assert r.read_dst_prefix() == Path.read("/svc")
    assert r.servers == ()


def test_defaults_http_server():
    s = load(HTTP + "  servers:\n  - {}\n").routers[0].servers[0]
    assert (s.port, s.ip, s.max_concurrent_requests, s.clear_context, s.max_call_depth) == (
        4140,
        "127.0.0.1",
        None,
        False,
        1000,
    )


@pytest.mark.parametrize(
    "protocol, port",
    [("http", 4140), ("h2", 4142), ("thrift", 4114), ("thriftmux", 4144), ("mux", 4141)],
)
def test_defaults_server_port_per_protocol(protocol, port):
    text = f"routers:\n- protocol: {protocol}\n  experimental: true\n  servers:\n  - {{}}\n"
    assert load(text).routers[0].servers[0].port == port


def test_defaults_client_balancer_accrual_and_requeue_budget():
    c = load(HTTP).routers[0].client
    assert isinstance(c, C.HttpGlobalClient)
    assert isinstance(c.load_balancer, policy.P2c) and c.load_balancer.max_effort == 5
    fa = c.failure_accrual
    assert isinstance(fa, policy.ConsecutiveFailures) and fa.failures == 5
    assert (fa.backoff.min_ms, fa.backoff.max_ms) == (5000, 300000)
    b = c.requeue_budget
    assert (b.ttl_secs, b.min_retries_per_sec, b.percent_can_retry) == (10, 10, 0.2)


def test_defaults_load_balancer_kind_absent_is_p2c():
    lb = load(HTTP + "  client:\n    loadBalancer: {maxEffort: 3}\n").routers[0].client.load_balancer
    assert isinstance(lb, policy.P2c) and lb.max_effort == 3


def test_defaults_ewma_decay_time():
    lb = load(HTTP + "  client:\n    loadBalancer: {kind: ewma}\n").routers[0].client.load_balancer
    assert (lb.max_effort, lb.decay_time_ms) == (5, 10000)


def test_defaults_http_service():
    s = load(HTTP).routers[0].service
    assert s.total_timeout_ms is None
    assert (s.retries.budget.ttl_secs, s.retries.budget.min_retries_per_sec) == (10, 10)
    assert s.retries.budget.percent_can_retry == 0.2
    assert isinstance(s.retries.backoff, policy.Constant) and s.retries.backoff.ms == 0
    assert s.response_classifier.__struct_config__.tag == "io.l5d.http.nonRetryable5XX"


def test_defaults_h2_service_and_identifier():
    r = load("routers:\n- protocol: h2\n").routers[0]
    assert r.service.response_classifier.__struct_config__.tag == "io.l5d.h2.nonRetryable5XX"
    assert r.service.classification_timeout_ms == 100
    assert r.service.retry_buffer_size.request_bytes == 16383
    assert r.identifiers() == (identifiers.H2HeaderToken(header=":authority"),)


def test_defaults_http_identifier_is_header_token_on_host():
    assert load(HTTP).routers[0].identifiers() == (identifiers.HeaderToken(header="Host"),)


@pytest.mark.parametrize("kind", ["io.l5d.k8s", "io.l5d.consul", "io.l5d.marathon", "io.l5d.k8s.ns"])
def test_defaults_namer_prefix_is_kind(kind):
    assert load(HTTP + f"namers:\n- kind: {kind}\n").namers[0].prefix == "/" + kind


def test_defaults_namer_keys():
    k8s, consul = load(HTTP + "namers:\n- kind: io.l5d.k8s\n- kind: io.l5d.consul\n").namers
    assert (k8s.host, k8s.port, k8s.label_selector) == ("localhost", 8001, None)
    assert (consul.port, consul.health_statuses, consul.prefer_service_address) == (8500, ("passing",), True)


def test_defaults_telemeters():
    text = HTTP + "telemetry:\n- kind: io.l5d.prometheus\n- kind: io.l5d.zipkin\n- kind: io.l5d.recentRequests\n  sampleRate: 1\n"
    prom, zipkin, recent = load(text).telemetry
    assert (prom.path, prom.prefix) == ("/admin/metrics/prometheus", "")
    assert (zipkin.host, zipkin.port, zipkin.sample_rate) == ("localhost", 9410, 0.001)
    assert (recent.sample_rate, recent.capacity) == (1.0, 10)


def test_defaults_usage_never_phones_home():
    assert load(HTTP).usage.enabled is False


def test_label_defaults_to_protocol():
    cfg = load("routers:\n- protocol: http\n- protocol: h2\n")
    assert [r.label for r in cfg.routers] == ["http", "h2"]


# === JSON ===


def test_json_input_gives_the_same_model_as_yaml():
    yaml_text = HTTP + "  label: a\n  dtab: /svc => /$/inet/127.1/8080\n  servers:\n  - port: 4140\n"
    json_text = json.dumps(
        {"routers": [{"protocol": "http", "label": "a", "dtab": "/svc => /$/inet/127.1/8080", "servers": [{"port": 4140}]}]}
    )
    assert load(json_text) == load(yaml_text)


def test_json_detected_after_leading_whitespace():
    assert load('  \n {"routers": [{"protocol": "http"}]}').routers[0].label == "http"


def test_json_syntax_error_is_one_line_at_root():
    assert error('{"routers": [}').startswith("$: invalid JSON:")


def test_json_duplicate_key_names_its_path():
    assert error('{"routers": [{"protocol": "http", "label": "a", "label": "b"}]}') == (
        "$.routers[0].label: duplicate key"
    )


def test_json_error_paths_match_yaml():
    assert error('{"routers": [{"protocol": "http", "servers": [{"port": "80"}]}]}') == (
        "$.routers[0].servers[0].port: Expected int, got str"
    )


# === duplicate keys (YAML) ===


def test_duplicate_key_top_level():
    assert error(HTTP + "routers: []\n").startswith("$.routers: duplicate key")


def test_duplicate_key_nested_in_list():
    assert error(HTTP + "  label: x\n  label: y\n").startswith("$.routers[0].label: duplicate key")


def test_duplicate_key_merge_override_allowed():
    cfg = load("routers:\n- &r {protocol: http, label: a}\n- <<: *r\n  label: b\n")
    assert [r.label for r in cfg.routers] == ["a", "b"]


# === errors: one line, key path first ===

ERRORS = [
    ("port_above_range", HTTP + "  servers:\n  - port: 70000\n", "$.routers[0].servers[0].port: Expected int <= 65535"),
    ("port_negative", HTTP + "  servers:\n  - port: -1\n", "$.routers[0].servers[0].port: Expected int >= 0"),
    ("port_string", HTTP + "  servers:\n  - port: '80'\n", "$.routers[0].servers[0].port: Expected int, got str"),
    ("unknown_key", HTTP + "  dtabb: /a => /b\n", "$.routers[0].dtabb: unknown key (did you mean dtab?)"),
    ("unknown_top_key", HTTP + "admn: {}\n", "$.admn: unknown key"),
    (
        "unknown_nested_key",
        HTTP + "  client:\n    loadBalancer: {maxEfort: 1}\n",
        "$.routers[0].client.loadBalancer.maxEfort: unknown key",
    ),
    ("odd_key", HTTP + "  'x y': 1\n", "$.routers[0]['x y']: unknown key"),
    ("missing_routers", "admin: {}\n", "$.routers: missing required key"),
    ("missing_kind", HTTP + "namers:\n- {}\n", "$.namers[0].kind: missing required key"),
    ("missing_required", HTTP + "namers:\n- kind: io.l5d.fs\n", "$.namers[0].rootDir: missing required key"),
    (
        "unknown_kind",
        HTTP + "  client:\n    loadBalancer: {kind: ewmaa}\n",
        "$.routers[0].client.loadBalancer.kind: unknown kind 'ewmaa' (expected one of: aperture, ewma, heap, p2c, roundRobin)",
    ),
    ("unknown_protocol", "routers:\n- protocol: htp\n", "$.routers[0].protocol: unknown protocol 'htp'"),
    (
        "unknown_identifier_in_list",
        HTTP + "  identifier:\n  - kind: io.l5d.path\n  - kind: nope\n",
        "$.routers[0].identifier[1].kind: unknown kind 'nope'",
    ),
    (
        "h2_identifier_on_http",
        HTTP + "  identifier: {kind: io.l5d.header.path}\n",
        "$.routers[0].identifier.kind: unknown kind 'io.l5d.header.path'",
    ),
    ("empty_identifier_list", HTTP + "  identifier: []\n", "$.routers[0].identifier: Expected array of length >= 1"),
    (
        "bad_enum",
        HTTP + "namers:\n- kind: io.l5d.consul\n  healthStatuses: [fine]\n",
        "$.namers[0].healthStatuses[0]: invalid value 'fine' (expected one of: critical, maintenance, passing, warning)",
    ),
    ("dtab", HTTP + "  dtab: /a =>\n", "$.routers[0].dtab: simple expected but end of input found at '/a =>[]'"),
    (
        "dtab_multiline",
        HTTP + "  dtab: |\n    /a => /b;\n    /c => ;\n",
        "$.routers[0].dtab: simple expected but ';' found at '/a => /b;\\n/c => [;]\\n'",
    ),
    ("dst_prefix", HTTP + "  dstPrefix: svc\n", "$.routers[0].dstPrefix: '/' expected but 's' found at '[s]vc'"),
    (
        "static_identifier_path",
        HTTP + "  identifier: {kind: io.l5d.static, path: 'a b'}\n",
        "$.routers[0].identifier.path: '/' expected",
    ),
    ("namer_prefix", HTTP + "namers:\n- kind: io.l5d.k8s\n  prefix: k8s\n", "$.namers[0].prefix: '/' expected"),
    (
        "interpreter_dst",
        HTTP + "  interpreter: {kind: io.l5d.namerd, dst: inet/x}\n",
        "$.routers[0].interpreter.dst: '/' expected",
    ),
    (
        "transformer_port_missing",
        HTTP + "  interpreter:\n    transformers: [{kind: io.l5d.port}]\n",
        "$.routers[0].interpreter.transformers[0].port: missing required key",
    ),
    (
        "duplicate_label",
        HTTP + "  label: a\n- protocol: http\n  label: a\n",
        "$.routers[1].label: duplicate router label 'a'",
    ),
    ("duplicate_default_label", HTTP + "- protocol: http\n", "$.routers[1].label: duplicate router label 'http'"),
    ("empty_label", HTTP + "  label: ''\n", "$.routers[0].label: Expected str of length >= 1"),
    ("no_router", "routers: []\n", "$.routers: at least one router must be specified"),
    (
        "server_conflict",
        HTTP + "  label: a\n  servers: [{port: 4140}]\n- protocol: http\n  label: b\n  servers: [{port: 4140}]\n",
        "$.routers[1].servers[0].port: server conflict: 127.0.0.1:4140 is also used by $.routers[0].servers[0].port",
    ),
    (
        "server_conflict_same_router",
        HTTP + "  servers: [{port: 4140}, {port: 4140}]\n",
        "$.routers[0].servers[1].port: server conflict",
    ),
    (
        "server_conflict_wildcard",
        HTTP
        + "  label: a\n"
        + "  servers: [{port: 4140, ip: 0.0.0.0}]\n"
        + "- protocol: http\n"
        + "  label: b\n"
        + "  servers: [{port: 4140, ip: 10.1.2.3}]\n",
        "$.routers[1].servers[0].port: server conflict",
    ),
    (
        "server_conflict_admin",
        HTTP + "  servers: [{port: 9990}]\n",
        "$.routers[0].servers[0].port: server conflict: 127.0.0.1:9990 is also used by $.admin.port",
    ),
    (
        "announcer_kind",
        HTTP + "  announcers:\n  - zkAddrs: [{host: zk}]\n",
        "$.routers[0].announcers[0].kind: missing required key",
    ),
    (
        "authorizer_kind",
        HTTP + "  client: {requestAuthorizers: [{}]}\n",
        "$.routers[0].client.requestAuthorizers[0].kind: missing required key",
    ),
    (
        "bad_ip",
        HTTP + "  servers: [{ip: 'no such ip!'}]\n",
        "$.routers[0].servers[0].ip: not an IP address or host name",
    ),
    (
        "fs_root_missing",
        HTTP + "namers:\n- kind: io.l5d.fs\n  rootDir: /nonexistent/pyproxy/disco\n",
        "$.namers[0].rootDir: directory does not exist: '/nonexistent/pyproxy/disco'",
    ),
    (
        "streaming_disabled_with_threshold",
        HTTP + "  streamingEnabled: false\n  streamAfterContentLengthKB: 5\n",
        "$.routers[0].streamAfterContentLengthKB: cannot be combined with streamingEnabled: false",
    ),
    (
        "percent_can_retry",
        HTTP + "  service:\n    retries:\n      budget: {percentCanRetry: 1001}\n",
        "$.routers[0].service.retries.budget.percentCanRetry: Expected float <= 1000.0",
    ),
    (
        "percent_can_retry_negative",
        HTTP + "  client:\n    requeueBudget: {percentCanRetry: -0.1}\n",
        "$.routers[0].client.requeueBudget.percentCanRetry: Expected float >= 0.0",
    ),
    (
        "ttl_secs",
        HTTP + "  service:\n    retries:\n      budget: {ttlSecs: 61}\n",
        "$.routers[0].service.retries.budget.ttlSecs: Expected int <= 60",
    ),
    (
        "jittered_order",
        HTTP
        + "  client:\n"
        + "    failureAccrual:\n"
        + "      kind: io.l5d.consecutiveFailures\n"
        + "      failures: 3\n"
        + "      backoff: {kind: jittered, minMs: 10, maxMs: 5}\n",
        "$.routers[0].client.failureAccrual.backoff.maxMs: must be >= minMs (10)",
    ),
    (
        "failures_required",
        HTTP + "  client:\n    failureAccrual: {kind: io.l5d.consecutiveFailures}\n",
        "$.routers[0].client.failureAccrual.failures: missing required key",
    ),
    (
        "tls_common_name",
        HTTP + "  client:\n    tls: {}\n",
        "$.routers[0].client.tls.commonName: required unless disableValidation is true",
    ),
    (
        "tls_two_trusts",
        HTTP + "  client:\n    tls: {commonName: a, trustCerts: [x], trustCertsBundle: y}\n",
        "$.routers[0].client.tls.trustCertsBundle: cannot be combined with trustCerts",
    ),
    (
        "tls_client_auth",
        HTTP + "  client:\n    tls: {disableValidation: true, clientAuth: {certPath: c, keyPath: k}}\n",
        "$.routers[0].client.tls.clientAuth: cannot be combined with disableValidation: true",
    ),
    (
        "server_tls_key",
        HTTP + "  servers:\n  - tls: {certPath: c}\n",
        "$.routers[0].servers[0].tls.keyPath: missing required key",
    ),
    (
        "static_prefix",
        HTTP + "  client:\n    kind: io.l5d.static\n    configs:\n    - prefix: /#/{svc\n",
        "$.routers[0].client.configs[0].prefix: unbalanced",
    ),
    (
        "static_entry_key",
        HTTP + "  service:\n    kind: io.l5d.static\n    configs:\n    - {prefix: /svc, totalTimeout: 5}\n",
        "$.routers[0].service.configs[0].totalTimeout: unknown key (did you mean totalTimeoutMs?)",
    ),
    (
        "roll_policy",
        HTTP + "  httpAccessLogRollPolicy: sometimes\n",
        "$.routers[0].httpAccessLogRollPolicy: unknown roll policy 'sometimes'",
    ),
    (
        "admin_regex",
        HTTP + "admin:\n  security: {pathBlacklist: ['(']}\n",
        "$.admin.security.pathBlacklist[0]: invalid regular expression",
    ),
    (
        "sample_rate",
        HTTP + "telemetry:\n- {kind: io.l5d.zipkin, sampleRate: 2}\n",
        "$.telemetry[0].sampleRate: Expected float <= 1.0",
    ),
    ("bool_key", HTTP + "  on: 1\n", "$.routers[0]: key True is not a string"),
    ("int_key", HTTP + "  80: 1\n", "$.routers[0]: key 80 is not a string"),
    ("wrong_shape", HTTP + "  client: fast\n", "$.routers[0].client: Expected object, got str"),
    ("top_level_array", "- routers\n", "$: Expected object, got array"),
    ("yaml_syntax", "routers: [\n", "$: invalid YAML:"),
    ("empty", "", "$: the config is empty"),
    ("warnings_key", HTTP + "warnings: []\n", "$.warnings: unknown key"),
]


@pytest.mark.parametrize("text, prefix", [pytest.param(t, p, id=i) for i, t, p in ERRORS])
def test_error_starts_with_key_path(text, prefix):
    assert error(text).startswith(prefix)


def test_error_is_config_error_and_value_error():
    with pytest.raises(ValueError):
        C.loads("routers: []\n")


def test_error_port_zero_never_conflicts():
    cfg = load(HTTP + "  label: a\n  servers: [{port: 0}]\n- protocol: http\n  label: b\n  servers: [{port: 0}]\nadmin: {port: 0}\n")
    assert [r.servers[0].port for r in cfg.routers] == [0, 0]


def test_error_same_port_on_distinct_ips_is_allowed():
    cfg = load(HTTP + "  label: a\n  servers: [{port: 4140, ip: 127.0.0.1}]\n- protocol: http\n  label: b\n  servers: [{port: 4140, ip: 127.0.0.2}]\n")
    assert len(cfg.routers) == 2


def test_fs_namer_root_dir_not_a_directory(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    assert error(HTTP + f"namers:\n- kind: io.l5d.fs\n  rootDir: {f}\n").startswith("$.namers[0].rootDir: not a directory")


def test_fs_namer_root_dir_existing_directory_loads(tmp_path):
    cfg = load(HTTP + f"namers:\n- kind: io.l5d.fs\n  rootDir: {tmp_path}\n")
    assert cfg.namers[0].root_dir == str(tmp_path) and cfg.namers[0].prefix == "/io.l5d.fs"


def test_host_names_are_accepted_where_ips_are():
    cfg = load(HTTP + "  servers: [{ip: localhost}]\ntelemetry:\n- {kind: io.l5d.zipkin, host: zipkin_collector}\n")
    assert cfg.routers[0].servers[0].ip == "localhost" and cfg.telemetry[0].host == "zipkin_collector"


def test_streaming_disabled_alone_is_accepted():
    assert load(HTTP + "  streamingEnabled: false\n").routers[0].streaming_enabled is False


# === legacy keys ===


def test_legacy_base_dtab_maps_to_dtab_with_warning():
    cfg = load(HTTP + "  baseDtab: /svc => /$/inet/127.1/1\n")
    assert cfg.routers[0].dtab == "/svc => /$/inet/127.1/1"
    assert cfg.warnings == ("$.routers[0].baseDtab: legacy key, use dtab",)


def test_legacy_base_dtab_with_dtab_is_an_error():
    assert error(HTTP + "  baseDtab: /a => /b\n  dtab: /c => /d\n") == "$.routers[0].baseDtab: legacy key conflicts with dtab"


def test_legacy_base_dtab_parse_error_names_new_key():
    assert error(HTTP + "  baseDtab: /a =>\n").startswith("$.routers[0].dtab: ")


def test_legacy_router_timeout_becomes_total_timeout():
    cfg = load(HTTP + "  timeoutMs: 1500\n")
    assert cfg.routers[0].service.total_timeout_ms == 1500
    assert cfg.warnings == ("$.routers[0].timeoutMs: legacy key, use service.totalTimeoutMs",)


@pytest.mark.parametrize("key", ["maxRequestKB", "maxResponseKB", "maxChunkKB"])
def test_legacy_removed_http_keys_dropped_with_warning(key):
    cfg = load(HTTP + f"  {key}: 1024\n")
    (warning,) = cfg.warnings
    assert warning.startswith(f"$.routers[0].{key}: legacy key")


def test_legacy_identifier_kinds_renamed():
    cfg = load(HTTP + "  identifier:\n    kind: io.l5d.headerToken\n    header: X-Svc\n")
    assert cfg.routers[0].identifiers() == (identifiers.HeaderToken(header="X-Svc"),)
    assert cfg.warnings == ("$.routers[0].identifier.kind: legacy kind io.l5d.headerToken, use io.l5d.header.token",)


def test_legacy_h2_identifier_kinds_renamed_in_list():
    cfg = load("routers:\n- protocol: h2\n  identifier: [{kind: io.l5d.headerPath, segments: 2}, {kind: io.l5d.h2.ingress}]\n")
    assert isinstance(cfg.routers[0].identifiers()[0], identifiers.H2HeaderPath)
    assert [w.split(":")[0] for w in cfg.warnings] == ["$.routers[0].identifier[0].kind", "$.routers[0].identifier[1].kind"]


@pytest.mark.parametrize("protocol, family", [("http", "http"), ("h2", "h2")])
def test_legacy_classifier_kinds_renamed(protocol, family):
    cfg = load(f"routers:\n- protocol: {protocol}\n  service:\n    responseClassifier: {{kind: io.l5d.retryableRead5XX}}\n")
    assert cfg.routers[0].service.response_classifier.__struct_config__.tag == f"io.l5d.{family}.retryableRead5XX"
    assert cfg.warnings == (
        f"$.routers[0].service.responseClassifier.kind: legacy kind io.l5d.retryableRead5XX, use io.l5d.{family}.retryableRead5XX",
    )


def test_legacy_classifier_in_static_service_renamed():
    cfg = load(HTTP + "  service:\n    kind: io.l5d.static\n    configs:\n    - prefix: /svc\n      responseClassifier: {kind: io.l5d.nonRetryable5XX}\n")
    assert cfg.warnings[0].startswith("$.routers[0].service.configs[0].responseClassifier.kind: legacy kind")


def test_legacy_tracers_become_telemeters():
    cfg = load("tracers:\n- kind: io.l5d.zipkin\n  sampleRate: 0.5\n" + HTTP + "  tracers: [{kind: io.l5d.zipkin, port: 1}]\n")
    assert [(t.sample_rate, t.port) for t in cfg.telemetry] == [(0.5, 9410), (0.001, 1)]
    assert cfg.warnings == (
        "$.tracers: legacy key, use telemetry (kind io.l5d.zipkin)",
        "$.routers[0].tracers: legacy key, use telemetry (kind io.l5d.zipkin)",
    )


def test_legacy_tracers_error_names_tracer_entry():
    assert error("tracers:\n- {kind: io.l5d.zipkin, sampleRate: 2}\n" + HTTP) == "$.tracers[0].sampleRate: Expected float <= 1.0"


def test_legacy_common_metrics_accepted_with_warning():
    cfg = load(HTTP + "telemetry:\n- kind: io.l5d.commonMetrics\n")
    assert cfg.warnings[0].startswith("$.telemetry[0].kind: legacy kind io.l5d.commonMetrics")
    assert cfg.unsupported() == []


def test_legacy_client_tls_no_validation():
    cfg = load(HTTP + "  client:\n    tls: {kind: io.l5d.noValidation}\n")
    assert cfg.routers[0].client.tls.disable_validation is True
    assert cfg.warnings[0].startswith("$.routers[0].client.tls.kind: legacy TLS kind io.l5d.noValidation")


def test_legacy_client_tls_static():
    cfg = load(HTTP + "  client:\n    tls: {kind: io.l5d.static, commonName: l5d, caCertPath: /ca.pem}\n")
    tls = cfg.routers[0].client.tls
    assert (tls.common_name, tls.trust_certs) == ("l5d", ("/ca.pem",))


def test_legacy_client_tls_bound_path_is_an_error():
    assert error(HTTP + "  client:\n    tls: {kind: io.l5d.boundPath}\n").startswith(
        "$.routers[0].client.tls.kind: legacy TLS kind io.l5d.boundPath is not supported"
    )


def test_legacy_loggers_dropped_with_warning():
    assert load(HTTP + "  loggers: []\n").warnings == ("$.routers[0].loggers: legacy key, use client.requestAuthorizers; ignored",)


def test_legacy_keys_emit_no_python_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load(HTTP + "  baseDtab: /a => /b\n  maxChunkKB: 1\n")
    assert caught == []


# === the experimental gate ===

EXPERIMENTAL = [
    ("thriftmux", "routers:\n- protocol: thriftmux{flag}\n", "$.routers[0].protocol"),
    ("k8s_external", HTTP + "namers:\n- kind: io.l5d.k8s.external{flag}\n", "$.namers[0].kind"),
    ("dnssrv", HTTP + "namers:\n- kind: io.l5d.dnssrv{flag}\n", "$.namers[0].kind"),
    ("rancher", HTTP + "namers:\n- kind: io.l5d.rancher{flag}\n", "$.namers[0].kind"),
    ("curator", HTTP + "namers:\n- kind: io.l5d.curator\n  zkAddrs:\n  - host: zk{flag}\n", "$.namers[0].kind"),
    ("statsd", HTTP + "telemetry:\n- kind: io.l5d.statsd{flag}\n", "$.telemetry[0].kind"),
    (
        "namerd_http",
        HTTP + "  interpreter:\n    kind: io.l5d.namerd.http\n    dst: /$/inet/n/4180{flag2}\n",
        "$.routers[0].interpreter.kind",
    ),
    (
        "config_map",
        HTTP + "  interpreter:\n    kind: io.l5d.k8s.configMap\n    name: a\n    filename: b{flag2}\n",
        "$.routers[0].interpreter.kind",
    ),
]


@pytest.mark.parametrize("template, path", [pytest.param(t, p, id=i) for i, t, p in EXPERIMENTAL])
def test_experimental_plugin_requires_flag(template, path):
    message = error(template.format(flag="", flag2=""))
    assert message.startswith(f"{path}: ")
    assert "is experimental and must be explicitly enabled" in message


@pytest.mark.parametrize("template, path", [pytest.param(t, p, id=i) for i, t, p in EXPERIMENTAL])
def test_experimental_plugin_loads_with_flag(template, path):
    load(template.format(flag="\n  experimental: true", flag2="\n    experimental: true"))


def test_experimental_flag_accepted_on_stable_plugins():
    text = (
        "routers:\n- protocol: h2\n  experimental: true\n  service:\n    responseClassifier:\n"
        "      kind: io.l5d.h2.grpc.default\n      experimental: true\n"
        "namers:\n- kind: io.l5d.k8s\n  experimental: true\n"
    )
    cfg = load(text)
    assert cfg.routers[0].experimental and cfg.namers[0].experimental


# === unsupported kinds ===


def test_unsupported_empty_for_built_kinds(tmp_path):
    text = (
        HTTP + "  identifier:\n  - {kind: io.l5d.path, segments: 2}\n  - {kind: io.l5d.header}\n"
        "  - {kind: io.l5d.methodAndHost}\n  - {kind: io.l5d.static, path: /x}\n  - {kind: io.l5d.header.token}\n"
        f"  interpreter: {{kind: default}}\nnamers:\n- kind: io.l5d.fs\n  rootDir: {tmp_path}\n"
    )
    assert load(text).unsupported() == []


def test_unsupported_lists_each_unbuilt_kind_with_its_path():
    text = (
        "routers:\n- protocol: h2\n  identifier: {kind: io.l5d.header.token}\n"
        "  interpreter:\n    kind: io.l5d.mesh\n    dst: /$/inet/namerd/4321\n    transformers: [{kind: io.l5d.localhost}]\n"
        "  client: {loadBalancer: {kind: aperture}}\n"
        "namers:\n- kind: io.l5d.consul\ntelemetry:\n- kind: io.l5d.tracelog\n"
    )
    # Reported in the structs' field order (deterministic), not in the order of the file.
    assert sorted(load(text).unsupported()) == sorted([
        ("$.routers[0].protocol", "h2"),
        ("$.routers[0].interpreter.kind", "io.l5d.mesh"),
        ("$.routers[0].client.loadBalancer.kind", "aperture"),
        ("$.namers[0].kind", "io.l5d.consul"),
        ("$.telemetry[0].kind", "io.l5d.tracelog"),
    ])


def test_unsupported_ignores_defaults_the_user_did_not_write():
    assert load(HTTP + "  client: {failFast: true}\n").unsupported() == []


def test_unsupported_reports_an_explicit_unbuilt_kind_but_not_built_ones():
    assert load(HTTP + "  client: {loadBalancer: {kind: aperture}}\n").unsupported() == [
        ("$.routers[0].client.loadBalancer.kind", "aperture")
    ]
    assert load(HTTP + "  client: {loadBalancer: {kind: ewma}}\n").unsupported() == []


def test_unsupported_reports_tls():
    text = HTTP + "  servers:\n  - tls: {certPath: c.pem, keyPath: k.pem}\n"
    assert load(text).unsupported() == [("$.routers[0].servers[0].tls", "tls")]


def test_unsupported_uses_a_given_built_table():
    cfg = load(HTTP + "namers:\n- kind: io.l5d.k8s\n")
    assert cfg.unsupported(built={**C.BUILT, "namer": frozenset({"io.l5d.k8s"})}) == []


def test_require_built_names_the_first_unbuilt_kind():
    cfg = load(HTTP + "namers:\n- kind: io.l5d.consul\n")
    with pytest.raises(ConfigError, match=r"^\$\.namers\[0\]\.kind: io\.l5d\.consul is known but not built yet$"):
        cfg.require_built()


def test_require_built_passes_for_built_config():
    load(HTTP).require_built()


# === structs ===


def _config_structs():
    seen = set()
    for info in pkgutil.iter_modules(C.__path__):
        module = importlib.import_module(f"pyproxy.config.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, msgspec.Struct) and obj.__module__.startswith("pyproxy.config"):
                seen.add(obj)
    return sorted(seen, key=lambda c: (c.__module__, c.__name__))


def test_structs_are_frozen_strict_camel_and_keyword_only():
    structs = _config_structs()
    assert len(structs) > 80
    for cls in structs:
        cfg = cls.__struct_config__
        assert cfg.frozen and cfg.forbid_unknown_fields, cls
        for f in msgspec.structs.fields(cls):
            assert "_" not in f.encode_name, (cls, f.encode_name)
        params = inspect.signature(cls).parameters.values()
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params), cls


def test_config_built_in_python_gets_the_same_defaults():
    assert C.Config(routers=(C.HttpRouter(),)) == load(HTTP)


def test_to_data_leaves_out_warnings():
    cfg = load(HTTP + "  baseDtab: /a => /b\n")
    assert "warnings" not in cfg.to_data()
    assert C.from_data(cfg.to_data()).routers == cfg.routers


def test_config_is_immutable():
    cfg = load(HTTP)
    with pytest.raises(AttributeError):
        cfg.routers = ()  # type: ignore[misc]


def test_kb_keys_keep_linkerd_spelling():
    cfg = load(HTTP + "  maxHeadersKB: 16\n  maxInitialLineKB: 8\n  maxErrResponseKB: 1\n  streamAfterContentLengthKB: 0\n")
    r = cfg.routers[0]
    assert (r.max_headers_kb, r.max_initial_line_kb, r.max_err_response_kb, r.stream_after_content_length_kb) == (16, 8, 1, 0)


def test_forwarded_header_for_key():
    s = load(HTTP + "  servers:\n  - addForwardedHeader: {by: {kind: router}, for: {kind: 'ip:port'}}\n").routers[0].servers[0]
    assert isinstance(s.add_forwarded_header.for_, server.IpPortLabeler)
    assert isinstance(load(HTTP + "  servers:\n  - addForwardedHeader: {}\n").routers[0].servers[0].add_forwarded_header.by, server.RequestRandomLabeler)


def test_identifier_single_object_or_list():
    single = load(HTTP + "  identifier: {kind: io.l5d.path, segments: 2, consume: true}\n").routers[0]
    listed = load(HTTP + "  identifier:\n  - {kind: io.l5d.path, segments: 2, consume: true}\n  - {kind: io.l5d.header.token}\n").routers[0]
    assert single.identifiers() == (identifiers.PathIdentifier(segments=2, consume=True),)
    assert listed.identifiers()[0] == single.identifiers()[0] and len(listed.identifiers()) == 2


def test_static_client_merge_later_entries_win():
    text = (
        HTTP + "  client:\n    kind: io.l5d.static\n    configs:\n"
        "    - prefix: /#/io.l5d.fs/{service}\n      failFast: true\n      tls: {commonName: '{service}.example'}\n"
        "    - prefix: /#/io.l5d.fs/special\n      failFast: false\n      loadBalancer: {kind: ewma, decayTimeMs: 1}\n"
    )
    c = load(text).routers[0].client
    assert isinstance(c, C.HttpStaticClient)
    merged = c.merge(c.configs)
    assert isinstance(merged, C.HttpGlobalClient)
    assert merged.fail_fast is False and merged.tls.common_name == "{service}.example"
    assert merged.load_balancer.decay_time_ms == 1
    assert merged.failure_accrual == policy.DEFAULT_FAILURE_ACCRUAL
    assert c.merge([]) == C.HttpGlobalClient()


def test_static_service_entries_default_to_unset():
    s = load(HTTP + "  service:\n    kind: io.l5d.static\n    configs:\n    - {prefix: /svc/a, totalTimeoutMs: 100}\n").routers[0].service
    entry = s.configs[0]
    assert (entry.prefix, entry.total_timeout_ms, entry.retries, entry.response_classifier) == ("/svc/a", 100, None, None)
    assert s.merge([entry]).response_classifier == classifiers.DEFAULT_HTTP_CLASSIFIER


def test_client_kind_global_explicit_equals_default():
    assert load(HTTP + "  client: {kind: io.l5d.global}\n") == load(HTTP)


def test_other_protocols_parse_their_keys():
    text = (
        "routers:\n- protocol: thrift\n  thriftMethodInDst: true\n  thriftProtocol: compact\n"
        "  servers: [{thriftFramed: false}]\n  client: {attemptTTwitterUpgrade: true}\n"
        "- protocol: mux\n  dstPrefix: /s\n- protocol: h2\n"
        "  servers: [{maxConcurrentStreamsPerConnection: 10, windowUpdateRatio: 0.5}]\n"
        "  client: {initialStreamWindowBytes: 1000}\n"
        "  service: {responseClassifier: {kind: io.l5d.h2.grpc.retryableStatusCodes, retryableStatusCodes: [14]}}\n"
    )
    thrift, mux, h2 = load(text).routers
    assert thrift.thrift_protocol == "compact" and thrift.client.attempt_t_twitter_upgrade
    assert isinstance(mux, C.MuxRouter) and mux.read_dst_prefix() == Path.read("/s")
    assert h2.service.response_classifier.retryable_status_codes == (14,)


def test_namer_transformers_and_rewrite():
    text = (
        HTTP + "namers:\n- kind: io.l5d.rewrite\n  prefix: /rw\n  pattern: /{service}/api\n  name: /srv/{service}\n"
        "  transformers: [{kind: io.l5d.replace, path: /x}]\n"
    )
    (rw,) = load(text).namers
    assert (rw.prefix, rw.name) == ("/rw", "/srv/{service}")
    assert rw.transformers == (transformers.Replace(path="/x"),)


def test_telemetry_kinds_parse():
    text = HTTP + "telemetry:\n- {kind: io.l5d.influxdb}\n- {kind: io.l5d.tracelog, level: DEBUG}\n- {kind: io.l5d.statsd, experimental: true}\n"
    influx, tracelog, statsd = load(text).telemetry
    assert isinstance(influx, telemetry.InfluxDb) and tracelog.level == "DEBUG" and statsd.port == 8125


# === load() sources ===


def test_load_accepts_path_objects_and_path_strings(tmp_path):
    f = tmp_path / "l5d.yaml"
    f.write_text(HTTP)
    assert C.load(f) == C.load(str(f)) == C.load(HTTP) == C.load(HTTP.encode())


def test_load_file_missing_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^\$: cannot read config file"):
        C.load_file(tmp_path / "missing.yaml")


def test_load_rejects_non_utf8_bytes():
    with pytest.raises(ConfigError, match=r"^\$: the config is not UTF-8"):
        C.load(b"routers: \xff\n")


def test_from_data_does_not_modify_its_input():
    data = {"routers": [{"protocol": "http", "baseDtab": "/a => /b", "client": {}}]}
    before = json.dumps(data, sort_keys=True)
    cfg = C.from_data(data)
    assert json.dumps(data, sort_keys=True) == before
    assert cfg.routers[0].dtab == "/a => /b" and cfg.warnings


def test_client_module_families_cover_every_protocol():
    assert {r.__struct_config__.tag for r in router.Router.__args__} == {"http", "h2", "thrift", "thriftmux", "mux"}  # type: ignore[attr-defined]
    assert client.HttpStaticClient.GLOBAL is client.HttpGlobalClient
