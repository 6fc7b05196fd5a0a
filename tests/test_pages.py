"""The admin pages in headless Chromium (Debian's ``chromium``, driven by Playwright): the dtab
playground draws the right delegation tree as you type and shows dtab errors inline; the dashboard
lists routers, servers and clients, and its counts move with traffic (that last test needs the
request-path metrics hooks, see pyproxy/metrics.py).

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``: the
browser is the system one, at /usr/bin/chromium).
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import tempfile
from typing import Iterator, Tuple

import pytest

from proxyproc import ProxyProcess
from upstream import Origin

CHROMIUM = os.environ.get("PYPROXY_CHROMIUM", "/usr/bin/chromium")
OUT_DTAB = "/srv => /#/io.l5d.fs; /svc => /srv;"
IN_DTAB = "/svc => /$/inet/127.1/9999;"


class Env:
    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix="pyproxy-pages-")
        self.origin = Origin()
        with open(os.path.join(self.root, "world"), "w") as f:
            f.write(f"127.0.0.1 {self.origin.port}\n")
        config = f"""
admin: {{ip: 127.0.0.1, port: 0}}
namers:
- kind: io.l5d.fs
  rootDir: {self.root}
routers:
- protocol: http
  label: out
  dtab: "{OUT_DTAB}"
  servers: [{{ip: 127.0.0.1, port: 0}}]
- protocol: http
  label: in
  dtab: "{IN_DTAB}"
  servers: [{{ip: 127.0.0.1, port: 0}}]
"""
        # The pages run on the proxy under test; the pure twin is enough for what they show.
        self.proxy = ProxyProcess(config, "pure")
        host, port = self.proxy.addr("admin")
        self.base = f"http://{host}:{port}"
        self.out = self.proxy.addr("out")

    def close(self) -> None:
        self.proxy.stop()
        self.origin.close()
        shutil.rmtree(self.root, ignore_errors=True)


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
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = ctx.new_page()
    errors: list = []
    pg.on("pageerror", lambda exc: errors.append(exc))
    pg.set_default_timeout(10000)
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors: {errors}"


def _send(addr: Tuple[str, int], n: int) -> None:
    for _ in range(n):
        c = http.client.HTTPConnection(*addr, timeout=10)
        try:
            c.request("GET", "/text/hi", headers={"Host": "world"})
            r = c.getresponse()
            assert (r.status, r.read()) == (200, b"hi")
        finally:
            c.close()


def _node_lines(pg: object) -> list:
    """One ``type path dentry`` line per tree node, in document order."""
    return pg.eval_on_selector_all(  # type: ignore[attr-defined]
        "#tree li.node",
        "els => els.map(li => [li.dataset.type, li.querySelector('.path').textContent,"
        " (li.querySelector(':scope > details > summary .dentry, :scope > .leafline .dentry') || {textContent: ''}).textContent].join(' ').trim())",
    )


# === dtab playground ===


def test_playground_prefills_the_router_dtab_and_draws_the_tree(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=out")  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelectorAll('#router option').length === 2")  # type: ignore[attr-defined]
    assert pg.input_value("#dtab") == "/srv => /#/io.l5d.fs;\n/svc => /srv;"  # type: ignore[attr-defined]
    pg.fill("#path", "/svc/world")  # type: ignore[attr-defined]
    pg.wait_for_selector("#tree li.node.leaf")  # type: ignore[attr-defined]
    assert _node_lines(pg) == [
        "delegate /svc/world",
        "delegate /srv/world /svc => /srv",
        "leaf /#/io.l5d.fs/world /srv => /#/io.l5d.fs",
    ]
    bound = pg.inner_text("#tree li.node.leaf .bound")  # type: ignore[attr-defined]
    assert "bound /#/io.l5d.fs/world" in bound and f"127.0.0.1:{env.origin.port}" in bound
    assert pg.is_hidden("#error")  # type: ignore[attr-defined]
    assert "path=%2Fsvc%2Fworld" in pg.url  # type: ignore[attr-defined]  # the URL can be shared


def test_playground_follows_dtab_edits_as_you_type(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=out&path=/svc/world")  # type: ignore[attr-defined]
    pg.wait_for_selector("#tree li.node.leaf")  # type: ignore[attr-defined]
    pg.click("#dtab")  # type: ignore[attr-defined]
    pg.keyboard.press("End")  # type: ignore[attr-defined]
    pg.keyboard.press("Control+End")  # type: ignore[attr-defined]
    pg.keyboard.type("\n/svc/world => /$/inet/127.1/9999 | /srv/world;", delay=5)  # type: ignore[attr-defined]
    pg.wait_for_selector("#tree li.node.alt")  # type: ignore[attr-defined]
    lines = _node_lines(pg)
    assert lines[:2] == ["delegate /svc/world", "alt /svc/world"] or lines[0] == "alt /svc/world", lines
    assert "leaf /$/inet/127.1/9999 /svc/world => /$/inet/127.1/9999 | /srv/world" in lines
    assert "127.0.0.1:9999" in pg.inner_text("#tree")  # type: ignore[attr-defined]
    # the later dentry wins: its branch comes first, the router's /svc rule is the fallback
    assert lines.index("leaf /$/inet/127.1/9999 /svc/world => /$/inet/127.1/9999 | /srv/world") < lines.index("delegate /srv/world /svc => /srv")


def test_playground_shows_a_bad_dtab_inline(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=out&path=/svc/world")  # type: ignore[attr-defined]
    pg.wait_for_selector("#tree li.node.leaf")  # type: ignore[attr-defined]
    pg.fill("#dtab", "invalid-param")  # type: ignore[attr-defined]
    pg.wait_for_selector("#error:not(.hidden)")  # type: ignore[attr-defined]
    assert pg.inner_text("#error") == "Invalid dtab: '/' expected but 'i' found at '[i]nvalid-param'"  # type: ignore[attr-defined]
    assert pg.eval_on_selector_all("#tree li", "els => els.length") == 0  # type: ignore[attr-defined]
    pg.fill("#dtab", "/svc => /$/inet/127.1/8080;")  # type: ignore[attr-defined]  # fixed: the error goes away
    pg.wait_for_selector("#tree li.node.leaf")  # type: ignore[attr-defined]
    assert pg.is_hidden("#error")  # type: ignore[attr-defined]


def test_playground_router_selector_switches_dtab_and_namers(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/delegator?router=out&path=/svc/world")  # type: ignore[attr-defined]
    pg.wait_for_selector("#tree li.node.leaf")  # type: ignore[attr-defined]
    pg.select_option("#router", "in")  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelector('#dtab').value.includes('9999')")  # type: ignore[attr-defined]
    assert pg.input_value("#dtab") == "/svc => /$/inet/127.1/9999;"  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelector('#tree').textContent.includes('127.0.0.1:9999')")  # type: ignore[attr-defined]
    assert _node_lines(pg) == ["delegate /svc/world", "leaf /$/inet/127.1/9999/world /svc => /$/inet/127.1/9999"]
    bound = pg.inner_text("#tree li.node.leaf .bound")  # type: ignore[attr-defined]
    assert "bound /$/inet/127.1/9999 residual /world" in bound


# === dashboard ===


def test_dashboard_lists_routers_servers_and_process_stats(env: Env, page: object) -> None:
    pg = page
    pg.goto(f"{env.base}/")  # type: ignore[attr-defined]
    pg.wait_for_selector('section[data-router="in"]')  # type: ignore[attr-defined]
    labels = pg.eval_on_selector_all("section.router", "els => els.map(e => e.dataset.router)")  # type: ignore[attr-defined]
    assert labels == ["out", "in"]  # config order
    row = f'section[data-router="out"] tr[data-kind="server"][data-id="127.0.0.1/{env.out[1]}"]'
    pg.wait_for_selector(row)  # type: ignore[attr-defined]
    assert pg.inner_text(f"{row} td.connections").strip().isdigit()  # type: ignore[attr-defined]
    pg.wait_for_function("document.querySelector('#uptime').textContent.endsWith('s')")  # type: ignore[attr-defined]
    assert re.fullmatch(r"\d+(\.\d)? MB", pg.inner_text("#rss"))  # type: ignore[attr-defined]
    assert pg.inner_text("#status").startswith("updated")  # type: ignore[attr-defined]


def test_dashboard_shows_clients_once_they_exist(env: Env, page: object) -> None:
    _send(env.out, 1)  # creates the client (its pool gauges need no hook)
    pg = page
    pg.goto(f"{env.base}/")  # type: ignore[attr-defined]
    row = 'section[data-router="out"] tr[data-kind="client"][data-id="#/io.l5d.fs/world"]'
    pg.wait_for_selector(row)  # type: ignore[attr-defined]
    assert pg.inner_text(f"{row} td.pool").strip() == "1/1"  # type: ignore[attr-defined]


def test_dashboard_counts_move_with_traffic(env: Env, page: object) -> None:
    """Needs the request-path hooks (RequestStats.record on the server scope)."""
    pg = page
    pg.goto(f"{env.base}/")  # type: ignore[attr-defined]
    cell = f'section[data-router="out"] tr[data-kind="server"][data-id="127.0.0.1/{env.out[1]}"] td.requests'
    pg.wait_for_selector(cell)  # type: ignore[attr-defined]
    before = int(pg.inner_text(cell).replace(",", ""))  # type: ignore[attr-defined]
    _send(env.out, 7)
    pg.wait_for_function(  # type: ignore[attr-defined]
        f"document.querySelector({cell!r}) && Number(document.querySelector({cell!r}).textContent.replace(/,/g, '')) >= {before + 7}",
        timeout=5000,
    )
    card = pg.inner_text('section[data-router="out"] .cards .value.requests')  # type: ignore[attr-defined]
    assert int(card.replace(",", "")) >= before + 7
