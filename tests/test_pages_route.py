"""The playground's "where will my request go", in headless Chromium (as tests/test_pages.py): a
pasted request head shows the router, the identification, each override used or ignored and why
(an edge, a signature's verdict, precedence, a member that does not read), the effective dtab and
the delegation tree down to the endpoints. Also ``/request-route.json`` itself, without a browser.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import tempfile
import time
from typing import Iterator, List

import pytest

from proxyproc import ProxyProcess
from upstream import Origin

from pyproxy.http.signature import sign

CHROMIUM = os.environ.get("PYPROXY_CHROMIUM", "/usr/bin/chromium")
DTAB = "/srv => /#/io.l5d.fs; /host => /srv; /svc => /host; /host/world => /srv/world-v1"
OVERRIDE = "/host/world => /srv/world-v2"
KEY = os.urandom(32)


class Env:
    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-route-page-")
        self.v1, self.v2 = Origin(), Origin()
        for name, origin in (("world-v1", self.v1), ("world-v2", self.v2)):
            with open(os.path.join(self.root, name), "w") as f:
                f.write(f"127.0.0.1 {origin.port}\n")
        self.keydir = tempfile.mkdtemp(prefix="pyproxy-route-keys-")  # beside the namer's directory, not in it
        self.keys = os.path.join(self.keydir, "keys")
        with open(self.keys, "w") as f:
            f.write(f"dev {base64.b64encode(KEY).decode()}\n")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers: [{{kind: io.l5d.fs, rootDir: {self.root}}}]
routers:
- protocol: http
  label: ingress
  dtab: {DTAB}
  dtabBaggage: {{}}
  servers:
  - {{ip: 127.0.0.1, port: 0}}
  - {{ip: 127.0.0.1, port: 0, clearContext: true, signedOverrides: {{keysFile: {self.keys}}}}}
- protocol: http
  label: plain
  dtab: {DTAB}
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        self.proxy = ProxyProcess(config, "pure")
        host, port = self.proxy.addr("admin")
        self.base = f"http://{host}:{port}"

    def route(self, router: str, server: int, request: str) -> dict:
        host, port = self.proxy.addr("admin")
        c = http.client.HTTPConnection(host, port, timeout=10)
        try:
            c.request("POST", "/request-route.json", body=json.dumps({"router": router, "server": server, "request": request}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            return {"status": r.status, **(json.loads(body) if r.status == 200 else {"text": body.decode()})}
        finally:
            c.close()

    def close(self) -> None:
        self.proxy.stop()
        self.v1.close()
        self.v2.close()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.keydir, ignore_errors=True)


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"headless Chromium is needed at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 1400})  # type: ignore[attr-defined]
    pg = ctx.new_page()
    errors: list = []
    pg.on("pageerror", lambda exc: errors.append(exc))
    pg.set_default_timeout(10000)
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def _overrides(pg: object) -> List[str]:
    return pg.eval_on_selector_all(  # type: ignore[attr-defined]
        "#overrides li.override", "els => els.map(li => [li.dataset.source, li.querySelector('.badge').textContent, li.querySelector('.why').textContent].join(' | '))",
    )


def _paste(pg: object, text: str, server: str = "0") -> None:
    pg.select_option("#server", server)  # type: ignore[attr-defined]
    pg.fill("#request", "")  # type: ignore[attr-defined]
    pg.fill("#request", text)  # type: ignore[attr-defined]


def test_an_override_inside_goes_to_world_v2_down_to_its_endpoints(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=ingress")  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelectorAll('#server option').length === 2")  # type: ignore[attr-defined]
    assert "(edge, signed overrides)" in pg.inner_text("#server")  # type: ignore[attr-defined]
    _paste(pg, f"Host: world\nl5d-dtab: {OVERRIDE}")
    pg.wait_for_selector("#route-tree li.node.leaf")  # type: ignore[attr-defined]
    facts = pg.inner_text("#route-facts")  # type: ignore[attr-defined]
    assert "identification\n/svc/world" in facts
    assert facts.split("effective dtab")[1].split("of which")[0].strip().endswith("/host/world => /srv/world-v1;\n/host/world => /srv/world-v2;")
    assert "of which the request's\n/host/world => /srv/world-v2;" in facts
    assert _overrides(pg) == ["l5d-dtab | used | appended last: it wins over l5d-ctx-dtab"]
    leaf = pg.inner_text("#route-tree li.node.leaf .bound")  # type: ignore[attr-defined]
    assert "bound /#/io.l5d.fs/world-v2" in leaf and f"127.0.0.1:{env.v2.port}" in leaf


def test_a_baggage_member_and_what_l5d_dtab_overrules(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=ingress")  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelectorAll('#server option').length === 2")  # type: ignore[attr-defined]
    _paste(pg, f"GET /api HTTP/1.1\nHost: world\nbaggage: user=1, l5d-dtab={OVERRIDE.replace(' ', '')}")
    pg.wait_for_function("document.querySelector('#route-tree').textContent.includes('world-v2')")  # type: ignore[attr-defined]
    assert _overrides(pg) == ["baggage | used | member l5d-dtab (no l5d-dtab or l5d-ctx-dtab came)"]
    _paste(pg, "Host: world\nl5d-dtab: /host/world => /srv/world-v1\nbaggage: l5d-dtab=/host/world=>/srv/world-v2")
    pg.wait_for_function("document.querySelectorAll('#overrides li.override').length === 2")  # type: ignore[attr-defined]
    assert _overrides(pg)[1] == "baggage | ignored | l5d-dtab and l5d-ctx-dtab take precedence over baggage"
    _paste(pg, "Host: world\nbaggage: l5d-dtab=%zz")
    pg.wait_for_function("document.querySelector('#route-facts').textContent.includes('400')")  # type: ignore[attr-defined]
    assert "400 baggage member l5d-dtab: bad percent-encoding" in pg.inner_text("#route-facts")  # type: ignore[attr-defined]
    assert pg.eval_on_selector_all("#route-tree li", "els => els.length") == 0  # type: ignore[attr-defined]


def test_at_the_edge_it_says_why_an_override_was_ignored(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=ingress")  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelectorAll('#server option').length === 2")  # type: ignore[attr-defined]
    _paste(pg, f"Host: world\nl5d-dtab: {OVERRIDE}", server="1")
    pg.wait_for_function("document.querySelector('#route-tree').textContent.includes('world-v1')")  # type: ignore[attr-defined]
    assert _overrides(pg) == ["l5d-dtab | ignored | edge: the override carries no l5d-dtab-sig"]
    expired = sign(KEY, b"dev", int(time.time()) - 3600, OVERRIDE.encode()).decode()
    _paste(pg, f"Host: world\nl5d-dtab: {OVERRIDE}\nl5d-dtab-sig: {expired}", server="1")
    pg.wait_for_function("document.querySelector('#overrides').textContent.includes('expired')")  # type: ignore[attr-defined]
    assert _overrides(pg) == ["l5d-dtab | ignored | edge: l5d-dtab-sig has expired"]
    tampered = sign(KEY, b"dev", int(time.time()) + 600, b"/host/world => /srv/world-v3").decode()
    _paste(pg, f"Host: world\nl5d-dtab: {OVERRIDE}\nl5d-dtab-sig: {tampered}", server="1")
    pg.wait_for_function("document.querySelector('#overrides').textContent.includes('does not match')")  # type: ignore[attr-defined]
    good = sign(KEY, b"dev", int(time.time()) + 600, OVERRIDE.encode()).decode()
    _paste(pg, f"Host: world\nl5d-dtab: {OVERRIDE}\nl5d-dtab-sig: {good}", server="1")
    pg.wait_for_function("document.querySelector('#route-tree').textContent.includes('world-v2')")  # type: ignore[attr-defined]
    assert _overrides(pg)[0].startswith("l5d-dtab | used | signature valid (until ")


def test_a_request_that_does_not_read_is_shown_inline(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=plain")  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelectorAll('#server option').length === 1")  # type: ignore[attr-defined]
    _paste(pg, "X-Only: 1")
    pg.wait_for_selector("#route-error:not(.hidden)")  # type: ignore[attr-defined]
    assert pg.inner_text("#route-error").startswith("the request does not read")  # type: ignore[attr-defined]
    _paste(pg, "Host: world\nbaggage: l5d-dtab=/host/world=>/srv/world-v2")
    pg.wait_for_selector("#route-tree li.node.leaf")  # type: ignore[attr-defined]
    assert pg.is_hidden("#route-error")  # type: ignore[attr-defined]
    assert _overrides(pg) == ["baggage | ignored | this router has no dtabBaggage: baggage is not read"]


def test_the_endpoint_without_a_browser(env: Env) -> None:
    got = env.route("ingress", 0, "Host: world\nl5d-ctx-dtab: /host/world => /srv/world-v2")
    assert got["status"] == 200 and got["identification"] == {"dst": "/svc/world"} and got["edge"] is False
    assert got["localDtab"] == [{"prefix": "/host/world", "dst": "/srv/world-v2"}]
    assert env.route("ingress", 5, "Host: world")["status"] == 400
    assert env.route("nope", 0, "Host: world")["status"] == 404
    got = env.route("ingress", 0, "GET / HTTP/1.1")
    assert got["status"] == 400 and "does not read" in got["text"]
