"""The io.l5d.fs interpreter: a router's dtab read from a file and changed live (black-box, per twin).

The file's dtab comes first and the router's ``dtab`` after it (so it wins where both match), then
the request's overrides. Edits apply without a restart and without dropping the lane's routes stale;
a bad edit keeps the last good dtab; a file that is not there yet makes requests wait up to
``bindingTimeoutMs`` (503 naming the file), and serving starts once it appears.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
import time
from typing import Iterator, Optional, Tuple

import pytest

from conftest import TWINS
from proxyproc import ProxyProcess
from upstream import Origin


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Env:
    def __init__(self, impl: str, dtab: Optional[str]) -> None:
        self.origin = Origin()
        self.root = tempfile.mkdtemp(prefix="pyproxy-dtabfile-")
        disco = os.path.join(self.root, "disco")
        os.mkdir(disco)
        for name in ("world-v1", "world-v2", "hello"):
            _write(os.path.join(disco, name), f"127.0.0.1 {self.origin.port}\n")
        self.dtab_path = os.path.join(self.root, "dtab")
        if dtab is not None:
            _write(self.dtab_path, dtab)
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- {{kind: io.l5d.fs, rootDir: {disco}}}
routers:
- protocol: http
  label: web
  bindingTimeoutMs: 500
  interpreter: {{kind: io.l5d.fs, dtabFile: {self.dtab_path}}}
  dtab: /srv => /#/io.l5d.fs; /svc/hello => /srv/hello
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proxy = ProxyProcess(config, impl)
        self.conn = http.client.HTTPConnection(*self.proxy.addr("web"), timeout=20)

    def get(self, host: str) -> Tuple[int, str]:
        """Status and the client the request was routed to (``l5d-dst-client``), or the error text."""
        self.conn.request("GET", "/echo", headers={"Host": host})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            return r.status, body.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
        return r.status, headers["l5d-dst-client"]

    def until(self, host: str, want: Tuple[int, str], seconds: float = 10.0) -> Tuple[int, str]:
        """Requests until one answers ``want`` (the file is polled about once a second)."""
        deadline = time.monotonic() + seconds
        while True:
            got = self.get(host)
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def close(self) -> None:
        self.conn.close()
        self.proxy.stop()
        self.origin.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(params=TWINS)
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(request.param, "/svc/world => /srv/world-v1;\n")
    yield e
    e.close()


V1, V2 = (200, "/#/io.l5d.fs/world-v1"), (200, "/#/io.l5d.fs/world-v2")


def test_the_files_dtab_routes_with_the_routers_after_it(env: Env) -> None:
    for _ in range(3):  # the lane serves the later ones (native)
        assert env.get("world") == V1
    assert env.get("hello") == (200, "/#/io.l5d.fs/hello")  # the router's own dentry


def test_an_edit_applies_live_and_a_bad_edit_keeps_the_last_good_dtab(env: Env) -> None:
    for _ in range(3):
        assert env.get("world") == V1
    _write(env.dtab_path, "/svc/world => /srv/world-v2;\n")
    assert env.until("world", V2) == V2
    for _ in range(3):
        assert env.get("world") == V2  # lane routes installed for v1 were dropped
    _write(env.dtab_path, "/svc/world => => nonsense\n")
    time.sleep(2.5)  # more than two polls
    assert env.get("world") == V2
    assert any("previous dtab stays in use" in line for line in env.proxy.stderr_lines)


def test_the_router_dtab_wins_where_both_match(env: Env) -> None:
    _write(env.dtab_path, "/svc/world => /srv/world-v2; /svc/hello => /srv/world-v2;\n")
    assert env.until("world", V2) == V2  # the new file is in use
    assert env.get("hello") == (200, "/#/io.l5d.fs/hello")  # the router's /svc/hello is later: it wins


@pytest.mark.parametrize("impl", TWINS)
def test_requests_wait_for_a_missing_file_then_it_is_used_once_it_appears(impl: str) -> None:
    e = Env(impl, None)
    try:
        status, text = e.get("world")
        assert status == 503
        assert "exceeded 0.5 seconds binding /svc/world" in text and "not found" in text and e.dtab_path in text
        _write(e.dtab_path, "/svc/world => /srv/world-v2;\n")
        assert e.until("world", V2) == V2
    finally:
        e.close()
