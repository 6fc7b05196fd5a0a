"""deploy/: every Kubernetes manifest parses, has what the DaemonSet needs, and its embedded config
passes ``run --validate`` and serves against the fake Kubernetes API (addresses changed only)."""

from __future__ import annotations

import glob
import http.client
import os
import re
import subprocess
import sys
from typing import Any, Dict, List

import pytest
import yaml

from fakek8s import FakeK8s, endpoints
from proxyproc import ProxyProcess
from upstream import Origin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFESTS = sorted(glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "*.yml")))


def _docs(path: str) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _config(path: str) -> str:
    cms = [d for d in _docs(path) if d["kind"] == "ConfigMap"]
    return str(cms[0]["data"]["config.yaml"])


def test_there_are_manifests() -> None:
    assert MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_the_manifest_has_the_daemonset_its_rbac_and_the_downward_api(path: str) -> None:
    docs = _docs(path)
    kinds = {d["kind"] for d in docs}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet", "Service"} <= kinds
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] if set(rule["verbs"]) >= {"get", "list", "watch"}}
    for need in (("", "endpoints"), ("", "services"), ("", "configmaps"), ("networking.k8s.io", "ingresses"), ("discovery.k8s.io", "endpointslices")):
        assert need in granted, need
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in ds["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"POD_IP": "status.podIP", "NODE_NAME": "spec.nodeName"}
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_the_embedded_config_validates(path: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pyproxy", "run", "--validate", "-"], input=_config(path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_the_embedded_config_serves_against_the_fake_api(path: str) -> None:
    cfg = _config(path)
    with FakeK8s() as k8s:
        origin = Origin()
        try:
            cfg = cfg.replace("ip: 0.0.0.0", "ip: 127.0.0.1")
            cfg = re.sub(r"port: (4140|4141|4142|9990)\b", "port: 0", cfg)
            cfg = cfg.replace("host: localhost\n  port: 8001", f"host: 127.0.0.1\n  port: {k8s.port}")
            cfg = re.sub(r"(      service: pyproxy\n)", rf"\1      k8sHost: 127.0.0.1\n      k8sPort: {k8s.port}\n", cfg)
            proxy = ProxyProcess(cfg, "native", extra_env={"POD_IP": "127.0.0.1", "NODE_NAME": "node-1"})
            try:
                incoming = proxy.addr("incoming")
                k8s.apply(endpoints("default", "pyproxy", addresses=[("127.0.0.1", "node-1")], ports={"incoming": incoming[1]}))
                k8s.apply(endpoints("default", "world-v1", addresses=[("127.0.0.1", "node-1")], ports={"http": origin.port}))
                c = http.client.HTTPConnection(*proxy.addr("outgoing"), timeout=15)
                c.request("GET", "/text/hi", headers={"Host": "world"})
                r = c.getresponse()
                assert (r.status, r.read()) == (200, b"hi")
                c.close()
            finally:
                proxy.stop()
        finally:
            origin.close()
