"""``pyproxy stage``: the override is derived from the router's live dtab, checked against the live
endpoints through the admin API, and what it prints works when sent (black-box, the real CLI
against a running proxy); the derivation itself on several dtab shapes (offline delegation).
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, Iterator, List

import pytest

from proxyproc import ProxyProcess
from upstream import Origin

from pyproxy.naming import ConfiguredNamersInterpreter, Dtab, Path
from pyproxy.runtime.stage import StageError, derive, parse_ttl

DTAB = "/srv => /#/io.l5d.fs; /host => /srv; /svc => /host; /host/world => /srv/world-v1"


class Env:
    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-stage-")
        disco = os.path.join(self.root, "disco")
        os.mkdir(disco)
        self.v1, self.v2 = Origin(), Origin()
        for name, text in (("world-v1", f"127.0.0.1 {self.v1.port}\n"), ("world-v2", f"127.0.0.1 {self.v2.port}\n"), ("world-v4", "")):
            with open(os.path.join(disco, name), "w") as f:
                f.write(text)
        self.keys = os.path.join(self.root, "keys")
        with open(self.keys, "w") as f:
            f.write(f"# developers\nalice {base64.b64encode(os.urandom(32)).decode()}\nbob {base64.b64encode(os.urandom(32)).decode()}\n")
        self.config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {disco}}}]
routers:
- protocol: http
  label: ingress
  dtab: {DTAB}
  dtabBaggage: {{key: dtab}}
  servers:
  - {{ip: 127.0.0.1, port: 0}}
  - {{ip: 127.0.0.1, port: 0, clearContext: true, signedOverrides: {{keysFile: {self.keys}}}}}
- protocol: http
  label: outgoing
  dtab: /svc => /#/io.l5d.fs
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proxy = ProxyProcess(self.config, "pure")
        host, port = self.proxy.addr("admin")
        self.admin = f"http://{host}:{port}"

    def close(self) -> None:
        self.proxy.stop()
        self.v1.close()
        self.v2.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.close()


def stage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyproxy", "stage", *args], capture_output=True, text=True, timeout=30)


def send(line: str) -> http.client.HTTPResponse:
    """Run a printed curl line's request (its -H fields, its URL) with http.client."""
    headers = dict(h.split(": ", 1) for h in re.findall(r"-H '([^']*)'", line))
    url = line.rsplit(" ", 1)[1]
    host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()  # type: ignore[union-attr]
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("GET", "/echo", headers=headers)
    r = c.getresponse()
    r.read()
    c.close()
    return r


def test_stage_prints_the_override_and_a_curl_line_that_reaches_the_new_version(env: Env) -> None:
    r = stage("world=world-v2", "--router", "ingress", "--admin", env.admin)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "l5d-dtab: /host/world=>/srv/world-v2"
    host, port = env.proxy.addrs["ingress"][0]
    assert lines[1] == f"curl -H 'Host: world' -H 'l5d-dtab: /host/world=>/srv/world-v2' http://{host}:{port}/"
    assert "today: /host/world=>/srv/world-v1" in r.stderr and f"127.0.0.1:{env.v2.port}" in r.stderr
    hits = env.v2.hits
    assert send(lines[1]).status == 200 and env.v2.hits == hits + 1


def test_stage_reads_the_admin_address_from_the_config_file(env: Env) -> None:
    path = os.path.join(env.root, "live.yaml")
    with open(path, "w") as f:
        f.write(env.config.replace("admin: {ip: 127.0.0.1, port: 0}", f"admin: {{ip: 127.0.0.1, port: {env.proxy.addr('admin')[1]}}}"))
    r = stage("world=world-v2", "--router", "ingress", "--config", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "l5d-dtab: /host/world=>/srv/world-v2"


def test_stage_with_baggage_prints_the_routers_baggage_member(env: Env) -> None:
    r = stage("world=world-v2", "--router", "ingress", "--admin", env.admin, "--baggage")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "baggage: dtab=/host/world=>/srv/world-v2"
    # the curl line sends the baggage form alone, and it routes
    hits = env.v2.hits
    curl = lines[2]
    assert "l5d-dtab:" not in curl and "-H 'baggage: dtab=/host/world=>/srv/world-v2'" in curl
    assert send(curl).status == 200 and env.v2.hits == hits + 1


def test_stage_signs_for_the_edge(env: Env) -> None:
    r = stage("world=world-v2", "--router", "ingress", "--admin", env.admin, "--sign", env.keys, "--kid", "bob", "--ttl", "10m")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1].startswith("l5d-dtab-sig: kid=bob; exp=")
    host, port = env.proxy.addrs["ingress"][1]  # the edge: the server with signedOverrides
    assert lines[2].endswith(f"http://{host}:{port}/")
    hits = env.v2.hits
    assert send(lines[2]).status == 200 and env.v2.hits == hits + 1
    unsigned = lines[2].replace(f" -H '{lines[1]}'", "")
    hits = (env.v1.hits, env.v2.hits)
    assert send(unsigned).status == 200 and (env.v1.hits, env.v2.hits) == (hits[0] + 1, hits[1])


@pytest.mark.parametrize(
    "args, message",
    [
        (["world=world-v3", "--router", "ingress"], "/srv/world-v3 binds to no live endpoints (/#/io.l5d.fs/world-v3: negative)"),
        (["world=world-v4", "--router", "ingress"], "/srv/world-v4 binds to no live endpoints (/#/io.l5d.fs/world-v4: no endpoints)"),
        (["world", "--router", "ingress"], "'world': expected SERVICE=DESTINATION"),
        (["world=world-v2"], "several routers (ingress, outgoing): say which with --router"),
        (["world=world-v2", "--router", "nope"], "--router nope: no such router (there are: ingress, outgoing)"),
        (["world=world-v2", "--router", "outgoing", "--sign", "/nonexistent"], "--sign /nonexistent: No such file or directory"),
        (["world=world-v2", "--router", "ingress", "--sign", "KEYS", "--kid", "carol"], "--kid carol: not in"),
        (["world=world-v2", "--router", "ingress", "--sign", "KEYS", "--ttl", "soon"], "--ttl 'soon': expected a duration"),
        (["world=world-v2", "--router", "outgoing", "--sign", "KEYS"], "router outgoing has no server with signedOverrides"),
    ],
)
def test_stage_says_why_not_and_exits_2(env: Env, args: List[str], message: str) -> None:
    r = stage(*[env.keys if a == "KEYS" else a for a in args], "--admin", env.admin)
    assert r.returncode == 2 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_stage_without_a_reachable_admin_server_exits_2() -> None:
    s = __import__("socket").socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = stage("world=world-v2", "--admin", f"http://127.0.0.1:{port}")
    assert r.returncode == 2 and f"cannot reach the admin server at http://127.0.0.1:{port}" in r.stderr


# === the derivation, offline ===


def _tree(dtab: str, path: str) -> Dict:
    return ConfiguredNamersInterpreter(()).delegate(Dtab.read(dtab), Path.read(path)).to_json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "dtab, override, today",
    [
        (DTAB, "/host/world=>/srv/world-v2", "/host/world => /srv/world-v1"),
        # the article's dtab: domain names first, then hosts
        ("/srv => /#/io.l5d.fs; /host => /$/io.buoyant.http.domainToPathPfx/domain; /domain/world/hello/www => /srv/hello;"
         " /host => /srv; /svc => /host; /host/world => /srv/world-v1", "/host/world=>/srv/world-v2", "/host/world => /srv/world-v1"),
        # no version in the dtab: the service's own name is replaced where it leaves for the namer
        ("/srv => /#/io.l5d.fs; /svc => /srv", "/srv/world=>/#/io.l5d.fs/world-v2", "/srv => /#/io.l5d.fs"),
        ("/svc => /#/io.l5d.k8s/default/http", "/svc/world=>/#/io.l5d.k8s/default/http/world-v2", "/svc => /#/io.l5d.k8s/default/http"),
        # a weighted union: the heaviest branch is today's
        ("/srv => /#/io.l5d.fs; /svc => /srv; /srv/world => 9 * /srv/world-v1 & 1 * /srv/world-v0", "/srv/world=>/srv/world-v2",
         "/srv/world => 9.00*/srv/world-v1 & /srv/world-v0"),
    ],
)
def test_the_override_replaces_the_version_where_the_service_name_is_rewritten(dtab: str, override: str, today: str) -> None:
    got, was = derive(_tree(dtab, "/svc/world"), "world", "world-v2")
    assert got.show == override
    assert was.replace(" ", "") == today.replace(" ", "")


def test_a_service_the_dtab_never_names_is_refused() -> None:
    with pytest.raises(StageError, match="ends with 'world'"):
        derive(_tree("/svc => /srv/other", "/svc/hello"), "world", "world-v2")


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800)])
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds
