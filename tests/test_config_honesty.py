"""The config is strictly honoured, not only strictly parsed.

Every key of every kind ``pyproxy run`` accepts is either read by the runtime or refused by ``run``
with its key path (``pyproxy.config.root.REFUSED``, next to ``BUILT``). The walk below goes
through the config's types (not a sample config), so a key added to the parser without either is a
failure here. "Read" is checked in the source: the key's attribute is read somewhere outside
``pyproxy/config`` (the runtime builds everything from the parsed config). Kinds that are not built
are refused as a whole, so their keys are not walked.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
import typing
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import msgspec
import pytest

from pyproxy import config as C
from pyproxy.config.root import BUILT, REFUSED, SATISFIED

ROOT = Path(__file__).resolve().parents[1]

#: Keys the config itself consumes: the experimental gate, the loader's warnings.
CONFIG_ONLY = {"experimental", "warnings"}


def _structs_in(t: object) -> Iterator[type]:
    if typing.get_origin(t) is None:
        if isinstance(t, type) and issubclass(t, msgspec.Struct):
            yield t
        return
    for a in typing.get_args(t):
        yield from _structs_in(a)


def _built(cls: type) -> bool:
    """Whether ``run`` accepts this kind (TLS has no kind: its family is its pseudo-kind)."""
    family = getattr(cls, "FAMILY", "")
    if family not in BUILT:
        return True
    tag = cls.__struct_config__.tag  # type: ignore[attr-defined]
    return (tag or family) in BUILT[family]


def _keys() -> List[Tuple[str, str]]:
    """(key pattern, python attribute) of every key reachable through built kinds."""
    out: List[Tuple[str, str]] = []
    seen: Set[Tuple[str, type]] = set()

    def walk(cls: type, path: str) -> None:
        if (path, cls) in seen or not _built(cls):
            return
        seen.add((path, cls))
        hints = typing.get_type_hints(cls, include_extras=False)
        for f in msgspec.structs.fields(cls):
            key = f"{path}.{f.encode_name}"
            t = hints[f.name]
            kinds = list(_structs_in(t))
            if kinds and not any(_built(k) for k in kinds):
                continue  # only kinds that are not built go here: each is refused by its kind
            out.append((key, f.name))
            listy = any(typing.get_origin(x) in (tuple, list) for x in [t] + list(typing.get_args(t)))
            for sub in _structs_in(t):
                walk(sub, key + ("[]" if listy else ""))

    walk(C.Config, "$")
    return sorted(set(out))


def _read_attributes() -> Set[str]:
    """Attribute names read anywhere in pyproxy outside its config package."""
    names: Set[str] = set()
    for p in (ROOT / "pyproxy").rglob("*.py"):
        if "config" in p.relative_to(ROOT / "pyproxy").parts[:1]:
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) >= 2:
                arg = node.args[1]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return names


KEYS = _keys()
READ = _read_attributes()


def test_the_walk_reaches_the_keys_users_write() -> None:
    patterns = {k for k, _ in KEYS}
    for key in ("$.routers[].servers[].socketOptions.keepAlive", "$.routers[].client.hostConnectionPool.maxWaiters",
                "$.routers[].bindingCache.idleTtlSecs", "$.routers[].client.configs[].failFast", "$.admin.security.pathBlacklist"):
        assert key in patterns, key
    assert not any("consul" in k.lower() or "datacenter" in k for k in patterns)  # not built: not walked


@pytest.mark.parametrize("key, attr", KEYS, ids=[k for k, _ in KEYS])
def test_every_key_is_honoured_or_refused(key: str, attr: str) -> None:
    if key in REFUSED or key in SATISFIED or attr in CONFIG_ONLY:
        return
    assert attr in READ, f"{key}: parsed but neither read by the runtime nor refused by name (pyproxy.config.root.REFUSED)"


def test_refused_and_satisfied_keys_exist() -> None:
    patterns = {k for k, _ in KEYS}
    assert set(REFUSED) <= patterns, sorted(set(REFUSED) - patterns)
    assert set(SATISFIED) <= patterns, sorted(set(SATISFIED) - patterns)


# One value per refused key that asks for what pyproxy does not do, as YAML under its parent.
REFUSED_SAMPLES: Dict[str, str] = {
    **{f"$.admin.socketOptions.{k}": f"admin: {{port: 0, socketOptions: {{{k}: {v}}}}}"
       for k, v in (("noDelay", "false"), ("reuseAddr", "false"), ("reusePort", "true"), ("writeTimeoutMs", 100),
                    ("keepAlive", "true"), ("backlog", 10))},
    "$.admin.httpIdentifierPort": "admin: {port: 0, httpIdentifierPort: 9991}",
    "$.admin.workerThreads": "admin: {port: 0, workerThreads: 4}",
    "$.usage.enabled": "usage: {enabled: true}",
    "$.routers[].streamingEnabled": "ROUTER streamingEnabled: false",
    "$.routers[].compressionLevel": "ROUTER compressionLevel: 6",
    "$.routers[].servers[].announce": "SERVER announce: [/#/io.l5d.serversets/x]",
    "$.routers[].servers[].label": "SERVER label: front",
    "$.routers[].client.loadBalancer.enableProbation": "ROUTER client: {loadBalancer: {kind: p2c, enableProbation: true}}",
    "$.routers[].client.configs[].loadBalancer.enableProbation":
        "ROUTER client: {kind: io.l5d.static, configs: [{prefix: /, loadBalancer: {kind: p2c, enableProbation: true}}]}",
    "$.routers[].client.forwardClientCert": "ROUTER client: {forwardClientCert: true}",
    "$.routers[].client.configs[].forwardClientCert": "ROUTER client: {kind: io.l5d.static, configs: [{prefix: /, forwardClientCert: true}]}",
    **{f"$.routers[].client{e}.socketOptions.{k}": (f"ROUTER client: {{socketOptions: {{{k}: {v}}}}}" if not e else
                                                    f"ROUTER client: {{kind: io.l5d.static, configs: [{{prefix: /, socketOptions: {{{k}: {v}}}}}]}}")
       for e in ("", ".configs[]") for k, v in (("readTimeoutMs", 100), ("reusePort", "true"), ("reuseAddr", "false"), ("backlog", 10))},
}


def _config(sample: str) -> str:
    router = "routers:\n- protocol: http\n  dtab: /svc => /$/inet/127.1/1\n"
    if sample.startswith("ROUTER "):
        return "admin: {port: 0}\n" + router + "  " + sample[len("ROUTER "):] + "\n  servers: [{port: 0}]\n"
    if sample.startswith("SERVER "):
        return "admin: {port: 0}\n" + router + "  servers:\n  - port: 0\n    " + sample[len("SERVER "):] + "\n"
    head = "" if sample.startswith("admin:") else "admin: {port: 0}\n"
    return head + sample + "\n" + router + "  servers: [{port: 0}]\n"


def test_every_refused_key_has_a_sample() -> None:
    assert set(REFUSED_SAMPLES) == set(REFUSED)


@pytest.mark.parametrize("key", sorted(REFUSED_SAMPLES))
def test_run_refuses_each_key_by_name_and_validate_accepts_it(key: str) -> None:
    text = _config(REFUSED_SAMPLES[key])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        ok = subprocess.run([sys.executable, "-m", "pyproxy", "run", "--validate", path], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0, ok.stderr
        # run without --validate refuses before binding anything; it never serves
        ran = subprocess.run([sys.executable, "-m", "pyproxy", "run", path], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2, ran.stderr
    index_free = re.sub(r"\[\]", "[0]", key)
    assert index_free in ran.stderr and "listening" not in ran.stderr, ran.stderr
