"""From ``pip install <wheel>`` to the first proxied request, in a fresh virtualenv each round.

Each round makes a new virtualenv (timed apart: it is not pyproxy's), then times:

* ``pip install <wheel>``, resolving the dependencies (trio, msgspec, PyYAML, h11 and theirs) the
  way this machine's pip does: from its cache after the first round, from the index with
  ``--cold`` (``--no-cache-dir`` for every round);
* ``pyproxy run`` until it prints its ``listening`` line (a one-router config whose dtab names a
  loopback origin: ``/svc => /$/inet/127.0.0.1/<port>``);
* the first request through it, answered 200 by the origin.

Then the sizes: the wheel file, the installed ``pyproxy/``, its dependencies, the whole virtualenv.
pip's own output is not shown. The wheel is ``dist/pyproxy-*.whl`` unless ``--wheel`` names one
(``tools/build-wheel`` makes it).

    python bench/install.py [--wheel FILE] [--rounds 3] [--cold]
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests")]

from upstream import Origin  # noqa: E402

DEADLINE = 120.0  # seconds for any one step
#: What every virtualenv holds whatever is installed in it (not counted as pyproxy's).
_TOOLING = {"pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils", "wheel"}


def du_kib(path: str) -> int:
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.split()[0])


def site_packages(venv: str) -> str:
    (found,) = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))
    return found


def one_round(wheel: str, origin: Origin, cold: bool) -> Dict[str, float]:
    work = tempfile.mkdtemp(prefix="pyproxy-install-bench-")
    proc = None
    try:
        venv = os.path.join(work, "venv")
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=DEADLINE)
        made = time.monotonic() - t
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYPROXY_IMPL")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q"] + (["--no-cache-dir"] if cold else [])

        t0 = time.monotonic()
        subprocess.run(pip + [wheel], check=True, env=env, cwd=work, timeout=DEADLINE)
        t1 = time.monotonic()
        config = os.path.join(work, "proxy.yaml")
        with open(config, "w") as f:
            f.write(
                "admin: {ip: 127.0.0.1, port: 0}\n"
                "routers:\n- protocol: http\n  label: out\n"
                f"  dtab: /svc => /$/inet/127.0.0.1/{origin.port}\n"
                "  servers: [{ip: 127.0.0.1, port: 0}]\n"
            )
        proc = subprocess.Popen(
            [os.path.join(venv, "bin", "pyproxy"), "run", config],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=work, text=True,
        )
        assert proc.stderr is not None
        port = 0
        while time.monotonic() - t1 < DEADLINE:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"pyproxy exited with {proc.wait()} before listening")
            if line.startswith("pyproxy: listening name=out "):
                port = int(line.rsplit(":", 1)[1])
                break
        t2 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        try:
            conn.request("GET", "/text/hello", headers={"Host": "hello"})
            response = conn.getresponse()
            body = response.read()
            status = response.status
        finally:
            conn.close()
        t3 = time.monotonic()
        if (status, body) != (200, b"hello"):
            raise RuntimeError(f"the first request got {status} {body[:80]!r}")
        sp = site_packages(venv)
        tooling = [os.path.join(sp, n) for n in os.listdir(sp) if n.split("-")[0] in _TOOLING]
        return {
            "venv": made, "pip": t1 - t0, "listening": t2 - t1, "first": t3 - t2, "total": t3 - t0,
            "pyproxy_kib": du_kib(os.path.join(sp, "pyproxy")), "site_kib": du_kib(sp) - sum(du_kib(p) for p in tooling),
            "venv_kib": du_kib(venv),
        }
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stderr is not None:
                proc.stderr.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="the wheel to install (default: the one dist/pyproxy-*.whl)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="pip install --no-cache-dir in every round")
    args = ap.parse_args()
    wheels = [args.wheel] if args.wheel else glob.glob(os.path.join(ROOT, "dist", "pyproxy-*.whl"))
    if len(wheels) != 1 or not os.path.isfile(wheels[0]):
        print(f"install.py: need one wheel (found {wheels}); build it with tools/build-wheel", file=sys.stderr)
        return 2
    wheel = os.path.abspath(wheels[0])
    origin = Origin()
    rounds: List[Dict[str, float]] = []
    try:
        for _ in range(max(1, args.rounds)):
            rounds.append(one_round(wheel, origin, args.cold))
    finally:
        origin.close()

    print(f"{os.path.basename(wheel)}: {os.path.getsize(wheel) / 1024:.0f} KiB; Python {sys.version.split()[0]}; "
          f"pip cache {'off (--no-cache-dir)' if args.cold else 'on'}; {len(rounds)} rounds, fresh virtualenv each\n")
    print("| round | virtualenv (not counted) | pip install | run → listening | first request | pip install → first response |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, r in enumerate(rounds, 1):
        print(f"| {i} | {r['venv']:.2f} s | {r['pip']:.2f} s | {r['listening']:.2f} s | {r['first'] * 1000:.1f} ms | {r['total']:.2f} s |")
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"| median | {med['venv']:.2f} s | {med['pip']:.2f} s | {med['listening']:.2f} s | {med['first'] * 1000:.1f} ms | {med['total']:.2f} s |")
    last = rounds[-1]
    print(f"\ninstalled: pyproxy/ {last['pyproxy_kib'] / 1024:.1f} MiB; pyproxy with its dependencies"
          f" {last['site_kib'] / 1024:.1f} MiB; the whole virtualenv (with pip) {last['venv_kib'] / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
