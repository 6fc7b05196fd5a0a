"""Take the screenshots of the admin pages shown in the docs: docs/img/dashboard.png, docs/img/delegator.png,
docs/img/request-route.png (the playground's "where will my request go").

Runs ``pyproxy demo`` on free loopback ports (histogram snapshots every 2 s instead of every minute,
so latencies show at once), sends some traffic through its edge and ingress (some of it staged to
world-v2 with ``l5d-dtab``), and photographs both pages in headless Chromium (Debian's, at
/usr/bin/chromium, driven by Playwright)::

    python docs/screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("PYPROXY_CHROMIUM", "/usr/bin/chromium")


def start_demo() -> "tuple[subprocess.Popen, Dict[str, str]]":
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYPROXY_METRICS_SNAPSHOT_SECONDS="2")
    cmd = [sys.executable, "-m", "pyproxy", "demo"] + [a for p in ("admin", "edge", "ingress", "outgoing") for a in (f"--{p}-port", "0")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    addrs: Dict[str, str] = {}
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(addrs) < 4:
        line = proc.stdout.readline().decode()
        if not line:
            break
        m = re.search(r"listening name=(\S+) addr=(\S+)", line)
        if m:
            addrs[m.group(1)] = m.group(2)
    if len(addrs) < 4:
        proc.kill()
        raise SystemExit(f"the demo did not start: {addrs}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining its output
    return proc, addrs


def traffic(addrs: Dict[str, str], seconds: float) -> None:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        staged = n % 4 == 3
        target = addrs["ingress" if staged else "edge"]
        headers = {"Host": "www.hello.world"}
        if staged:
            headers["l5d-dtab"] = "/host/world => /srv/world-v2;"
        req = urllib.request.Request(f"http://{target}/", headers=headers)
        try:
            urllib.request.urlopen(req, timeout=5).read()
        except OSError:
            pass
        n += 1
        time.sleep(0.02)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    proc, addrs = start_demo()
    try:
        base = f"http://{addrs['admin']}"
        load = threading.Thread(target=traffic, args=(addrs, 12.0), daemon=True)
        load.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(f"{base}/delegator?router=ingress&path=/svc/world")
            page.wait_for_selector("#tree li.node.leaf")
            page.click("#dtab")
            page.keyboard.press("Control+End")
            page.keyboard.type("\n/host/world => /srv/world-v2;")
            page.wait_for_function("document.querySelector('#tree').textContent.includes('world-v2')")
            time.sleep(0.3)
            page.screenshot(path=str(out / "delegator.png"), full_page=True)
            # where will my request go: an unsigned override sent to the edge
            page.goto(f"{base}/delegator?router=edge&path=/svc/world")
            page.wait_for_selector("#tree li.node.leaf")
            page.fill("#request", "Host: www.hello.world\nl5d-dtab: /host/world => /srv/world-v2\nbaggage: user=alice")
            page.wait_for_function("document.querySelector('#overrides').textContent.includes('no l5d-dtab-sig')")
            page.wait_for_selector("#route-tree li.node.leaf")
            time.sleep(0.3)
            page.set_viewport_size({"width": 1280, "height": 1800})
            top = page.locator("#route-title").bounding_box()["y"] - 10
            bottom = max(page.locator(".play >> nth=1").bounding_box()["y"] + page.locator(".play >> nth=1").bounding_box()["height"], top + 300)
            page.screenshot(path=str(out / "request-route.png"), clip={"x": 0, "y": top, "width": 1280, "height": bottom - top + 10})
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{base}/")
            time.sleep(5.0)  # traffic still flows: rates, a few snapshots of the latencies, a sparkline
            page.screenshot(path=str(out / "dashboard.png"), full_page=True)
            load.join()
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    print(f"wrote {out / 'delegator.png'}, {out / 'request-route.png'} and {out / 'dashboard.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
