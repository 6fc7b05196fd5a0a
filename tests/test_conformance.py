"""Every record of the shared naming vectors, on both twins (``PYPROXY_VECTORS=<file>`` for another file)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import conformance

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "vectors"


def _vector_files() -> list:
    override = os.environ.get("PYPROXY_VECTORS")
    if override:
        return [Path(override)]
    files = sorted(SHARED.glob("*.jsonl"))
    assert files, f"no conformance vectors found under {SHARED}"
    return files


def _records() -> list:
    out = []
    for f in _vector_files():
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                out.append(pytest.param(json.loads(line), id=f"{f.stem}:{n}"))
    return out


@pytest.mark.parametrize("record", _records())
def test_vector(record: dict, kernels: object) -> None:
    problems = conformance.check(record)
    assert not problems, f"{record['kind']} {json.dumps(record)[:300]}: {problems}"


def test_unknown_kind_fails_loudly() -> None:
    with pytest.raises(conformance.UnknownKind):
        conformance.check({"kind": "no.such.kind", "in": "/a"})
