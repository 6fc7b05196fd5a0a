"""The real ``pyproxy`` command line, run as a subprocess with each kernel twin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TWINS

DTAB = "/srv => /#/io.l5d.fs; /host => /srv; /svc => /host; /host/world => /srv/world-v1"


def run(impl: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYPROXY_IMPL=impl)
    return subprocess.run(
        [sys.executable, "-m", "pyproxy", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def disco(tmp_path: Path) -> Path:
    (tmp_path / "world-v1").write_text("127.0.0.1 7777\n")
    (tmp_path / "world-v2").write_text("# staging\n127.0.0.1 7778 * 2\n")
    (tmp_path / "hello").write_text("127.0.0.1 7001\n127.0.0.2 7001\n")
    return tmp_path


@pytest.mark.parametrize("impl", TWINS)
def test_delegate_prints_tree_with_bound_endpoints(impl: str, disco: Path) -> None:
    r = run(impl, "delegate", "--namer", f"io.l5d.fs={disco}", "--dtab", DTAB, "/svc/world")
    assert r.returncode == 0, r.stderr
    assert "/host/world  [/svc=>/host]" in r.stdout
    assert "[/host/world=>/srv/world-v1]" in r.stdout
    assert "=> bound /#/io.l5d.fs/world-v1 (127.0.0.1:7777)" in r.stdout
    # the earlier, fallback dentry is shown too, and it is negative
    assert "/#/io.l5d.fs/world  ~ (neg)" in r.stdout


@pytest.mark.parametrize("impl", TWINS)
def test_delegate_json_is_the_delegator_body(impl: str, disco: Path) -> None:
    r = run(impl, "delegate", "--json", "--namer", f"io.l5d.fs={disco}", "--dtab", DTAB + ";/host/world => /srv/world-v2", "/svc/world")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["type"] == "delegate" and body["path"] == "/svc/world"
    alt = body["delegate"]
    assert alt["type"] == "alt" and alt["dentry"] == {"prefix": "/svc", "dst": "/host"}
    first = alt["alt"][0]["delegate"]  # the later dentry is tried first
    assert first["bound"]["id"] == "/#/io.l5d.fs/world-v2"
    assert first["bound"]["addr"]["addrs"] == [{"ip": "127.0.0.1", "port": 7778, "meta": {"endpoint_addr_weight": 2.0}}]


@pytest.mark.parametrize("impl", TWINS)
def test_delegate_bad_dtab_exits_2_with_position(impl: str) -> None:
    r = run(impl, "delegate", "--dtab", "/svc => /a;;", "/svc")
    assert r.returncode == 2
    assert r.stderr.strip() == "pyproxy: invalid dtab: '/' expected but ';' found at '/svc => /a;[;]'"
    assert r.stdout == ""


@pytest.mark.parametrize("impl", TWINS)
def test_delegate_bad_path_exits_2_with_position(impl: str) -> None:
    r = run(impl, "delegate", "--dtab", "/a=>/b", "/svc/")
    assert r.returncode == 2
    assert r.stderr.strip() == "pyproxy: invalid path: label char expected but end of input found at '/svc/[]'"


@pytest.mark.parametrize("impl", TWINS)
def test_delegate_loop_reports_recursion_limit(impl: str) -> None:
    r = run(impl, "delegate", "--dtab", "/a=>/b;/b=>/a", "/a")
    assert r.returncode == 1
    assert "Max recursion level reached." in r.stderr


def test_delegate_bad_namer_spec_exits_2(tmp_path: Path) -> None:
    r = run("pure", "delegate", "--namer", "io.l5d.k8s=x", "/svc")
    assert r.returncode == 2 and "--namer" in r.stderr
    r = run("pure", "delegate", "--namer", f"io.l5d.fs={tmp_path / 'missing'}", "/svc")
    assert r.returncode == 2 and "is not a directory" in r.stderr


def test_unknown_command_exits_2() -> None:
    r = run("pure", "frobnicate")
    assert r.returncode == 2


def test_version_names_the_kernels() -> None:
    r = run("pure", "--version")
    assert r.returncode == 0 and "[pure" in r.stdout


def test_bad_impl_value_is_refused() -> None:
    r = run("turbo", "--version")
    assert r.returncode != 0 and "PYPROXY_IMPL='turbo'" in r.stderr


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    import json as _json

    cfg = tmp_path / "c.yaml"
    # a key run refuses: the process logs its start, then stops before serving
    cfg.write_text("routers:\n- protocol: http\n  compressionLevel: 6\n  servers: [{port: 0}]\n")
    r = run("pure", "run", "--log-format", "json", str(cfg))
    assert r.returncode == 2
    records = [_json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert records and records[0]["level"] == "INFO" and records[0]["logger"] == "pyproxy"
    assert records[0]["msg"].startswith("pyproxy 0.1.0, pure kernels")


def test_bad_log_level_exits_2(tmp_path: Path) -> None:
    r = run("pure", "run", "--log-level", "LOUD", str(tmp_path / "x.yaml"))
    assert r.returncode == 2 and "--log-level" in r.stderr


def test_example_configs_validate() -> None:
    root = Path(__file__).resolve().parents[1]
    examples = sorted((root / "examples").glob("*.yaml"))
    assert examples
    for cfg in examples:
        r = subprocess.run([sys.executable, "-m", "pyproxy", "run", "--validate", str(cfg)], cwd=root,
                           capture_output=True, text=True, env=dict(os.environ, PYPROXY_IMPL="pure"), timeout=60)
        assert r.returncode == 0, f"{cfg.name}: {r.stderr}"
