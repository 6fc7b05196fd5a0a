"""The serving process's footprint: OpenSSL stays out of ``pyproxy run`` until something uses it.

The placeholders are tested in fresh interpreters (they act on ``sys.modules``), and in the real
proxy through ``/proc/<pid>/maps``.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import TWINS
from proxyproc import one_router
from upstream import Origin


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_trio_imports_without_loading_openssl() -> None:
    out = _python(
        """
        import sys
        from pyproxy.runtime.footprint import defer_unused, loaded
        defer_unused()
        import trio
        print(loaded("ssl"), loaded("hmac"), "_ssl" in sys.modules, "_hashlib" in sys.modules)
        """
    )
    assert out.split() == ["False", "False", "False", "False"]


def test_a_deferred_module_works_when_used_also_through_references_taken_before() -> None:
    out = _python(
        """
        import sys
        from pyproxy.runtime.footprint import defer_unused, loaded
        defer_unused()
        import trio, trio._ssl, trio._dtls
        import ssl
        early = ssl                                  # a reference to the placeholder
        ctx = ssl.create_default_context()          # first use: the real module loads
        import ssl as again
        assert loaded("ssl") and again is sys.modules["ssl"] and again is not early
        assert isinstance(ctx, early.SSLContext) and early.SSLContext is again.SSLContext
        assert trio._ssl._stdlib_ssl.MemoryBIO is again.MemoryBIO   # trio's own reference
        try:
            raise again.SSLEOFError("x")
        except early.SSLError:
            pass
        from hmac import compare_digest
        assert trio._dtls.hmac.compare_digest(b"a", b"a") and compare_digest(b"a", b"a")
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_nothing_imported_already_is_replaced() -> None:
    out = _python(
        """
        import ssl, sys
        from pyproxy.runtime.footprint import defer_unused, loaded
        defer_unused()
        print(sys.modules["ssl"] is ssl, loaded("ssl"))
        """
    )
    assert out.split() == ["True", "True"]


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc (Linux)")
@pytest.mark.parametrize("impl", TWINS)
def test_the_running_proxy_has_no_openssl_mapped(impl: str) -> None:
    origin = Origin()
    try:
        with one_router(origin.port, "web", impl) as proxy:
            c = http.client.HTTPConnection(*proxy.addr("http"), timeout=10)
            try:
                c.request("GET", "/text/hi", headers={"Host": "web"})
                assert c.getresponse().read() == b"hi"  # it serves, and serving loaded nothing more
            finally:
                c.close()
            with open(f"/proc/{proxy.proc.pid}/maps") as f:
                libs = {line.split()[-1].rsplit("/", 1)[-1] for line in f if "/" in line}
        assert not any(lib.startswith(("libssl", "libcrypto", "_ssl", "_hashlib")) for lib in libs), sorted(libs)
        assert any(lib.startswith("libc") or "python" in lib for lib in libs)  # the check reads real maps
    finally:
        origin.close()
