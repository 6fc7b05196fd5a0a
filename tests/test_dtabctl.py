"""``pyproxy dtab`` (namerctl's job) against a running ``pyproxy namerd``: list, get, create, update
from the version read (a concurrent edit refused, not lost), delete; messages and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Iterator, Optional, Tuple

import pytest

from namerdproc import get_dtab, put_dtab, start_namerd
from proxyproc import ProxyProcess, dead_port


@pytest.fixture(scope="module")
def namerd() -> Iterator[ProxyProcess]:
    p = start_namerd(
        "admin: {ip: 127.0.0.1, port: 0}\nstorage: {kind: io.l5d.inMemory, namespaces: {default: /svc => /#/io.l5d.fs}}\n"
        "interfaces: [{kind: io.l5d.httpController, ip: 127.0.0.1, port: 0}]\n"
    )
    try:
        yield p
    finally:
        p.stop()


def _url(p: ProxyProcess) -> str:
    h, port = p.addr("io.l5d.httpController")
    return f"http://{h}:{port}"


def dtab(url: Optional[str], *args: str, stdin: str = "", env: Optional[dict] = None) -> Tuple[int, str, str]:
    cmd = [sys.executable, "-m", "pyproxy", "dtab"] + (["--base-url", url] if url else []) + list(args)
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30, env=dict(os.environ, **(env or {})))
    return r.returncode, r.stdout, r.stderr


def test_list_get_create_delete(namerd: ProxyProcess) -> None:
    url = _url(namerd)
    assert dtab(url, "create", "ctl", "-", stdin="/svc => /#/io.l5d.fs;\n/host => /svc;\n")[0] == 0
    code, out, _ = dtab(url, "list")
    assert code == 0 and out.split() == sorted(out.split()) and {"ctl", "default"} <= set(out.split())
    code, out, _ = dtab(url, "get", "ctl")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("# version ") and lines[1:] == ["/svc => /#/io.l5d.fs;", "/host => /svc;"]
    assert dtab(url, "get", "ctl", "--json")[1].startswith('[{"prefix":"/svc"')
    code, _, err = dtab(url, "create", "ctl", "-", stdin="/a => /b")
    assert code == 3 and "namespace ctl already exists" in err
    assert dtab(url, "delete", "ctl")[0] == 0
    code, _, err = dtab(url, "delete", "ctl")
    assert code == 3 and "does not exist" in err
    assert dtab(url, "get", "ctl")[0] == 3
    # namerctl's variable names the URL too
    assert dtab(None, "list", env={"NAMERCTL_BASE_URL": url})[0] == 0


def test_update_from_the_version_read_refuses_a_concurrent_edit(namerd: ProxyProcess) -> None:
    url = _url(namerd)
    ctl = namerd.addr("io.l5d.httpController")
    assert dtab(url, "create", "upd", "-", stdin="/svc => /#/io.l5d.fs")[0] == 0
    code, got, _ = dtab(url, "get", "upd")
    with tempfile.NamedTemporaryFile("w", suffix=".dtab", delete=False) as f:
        f.write(got + "/svc/world => /srv/world-v2;\n")  # an edit of what get wrote (with its # version line)
    try:
        # someone else changes the dtab meanwhile
        _, v, _ = get_dtab(ctl, "upd")
        assert put_dtab(ctl, "upd", "/svc => /#/io.l5d.fs; /other => /x", version=v)[0] == 204
        code, _, err = dtab(url, "update", "upd", f.name)
        assert code == 4 and "changed since the version given" in err
        assert get_dtab(ctl, "upd")[2][-1] == {"prefix": "/other", "dst": "/x"}  # their edit stands
        # get again, redo the edit: it goes in
        code, got, _ = dtab(url, "get", "upd")
        with open(f.name, "w") as g:
            g.write(got + "/svc/world => /srv/world-v2;\n")
        assert dtab(url, "update", "upd", f.name)[0] == 0
        assert get_dtab(ctl, "upd")[2][-1] == {"prefix": "/svc/world", "dst": "/srv/world-v2"}
        # an explicit stale --version is refused too; without any version, the one read now is used
        assert dtab(url, "update", "upd", "-", "--version", v, stdin="/a => /b")[0] == 4
        assert dtab(url, "update", "upd", "-", stdin="/a => /b")[0] == 0
    finally:
        os.unlink(f.name)


def test_messages_and_exit_codes(namerd: ProxyProcess) -> None:
    url = _url(namerd)
    code, _, err = dtab(url, "update", "default", "-", stdin="/svc => /#/io.l5d.fs/")
    assert code == 2 and "label char expected but end of input found" in err
    assert dtab(url, "update", "nosuch", "-", stdin="/a => /b")[0] == 3
    code, _, err = dtab(f"http://127.0.0.1:{dead_port()}", "list")
    assert code == 1 and "cannot reach namerd" in err and len(err.strip().splitlines()) == 1
    assert dtab("ftp://x", "list")[0] == 2
    assert dtab(url, "create", "x", "/nonexistent/file")[0] == 2
    assert dtab(url, "frobnicate")[0] == 2
