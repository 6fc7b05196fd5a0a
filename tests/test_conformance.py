"""Every record of the naming conformance vectors (``tests/data/vectors``), on both twins.

``PYPROXY_VECTORS=<file>`` runs another file of the same format instead (e.g. a newer copy of
``shared/spec/vectors/naming.jsonl``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import conformance

VECTORS = Path(__file__).resolve().parent / "data" / "vectors"


def _vector_files() -> list:
    override = os.environ.get("PYPROXY_VECTORS")
    if override:
        return [Path(override)]
    files = sorted(VECTORS.glob("*.jsonl"))
    assert files, f"no conformance vectors found under {VECTORS}"
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


# The operations the vectors' README names beyond the ones naming.jsonl uses today: a newer vectors
# file (PYPROXY_VECTORS) may use any of them. Expected values follow shared/spec/naming.md §1-§3.
OPS = [
    ("path.ops", "/a/b ++ /c", "show", "/a/b/c"),
    ("path.ops", "/a/b/c take 2", "show", "/a/b"),
    ("path.ops", "/a/b/c drop 1", "show", "/b/c"),
    ("path.ops", "(/a/b ++ /c).take(1)", "show", "/a"),
    ("path.ops", "/$/inet/127.1/8080 startsWith /$/inet", "v", True),
    ("path.ops", "/a/b startsWith /a/b/c", "v", False),
    ("path.ops", "/a/b.size", "v", 2),
    ("dtab.ops", "simplified(/a=>~;/b=>/c)", "show", "/b=>/c"),
    ("dtab.ops", "simplified(\"/a => ~; /b => /c | ~\")", "show", "/b=>/c"),
    ("dtab.ops", "Dentry.toString", "show", "Dentry(/a=>/b)"),
    ("dtab.ops", "(/a=>/b).toString", "show", "Dentry(/a=>/b)"),
    ("dtab.ops", "d1 ++ /x=>/y", "show", "/foo=>/bar;/baz=>/xxx/yyy;/x=>/y"),
    ("dtab.ops", "Dtab.empty + /a=>/b", "show", "/a=>/b"),
    ("dtab.ops", "d1.lookup(/foo/x)", "show", "/bar/x"),
    ("dtab.ops", "d1 == /foo=>/bar;/baz=>/xxx/yyy", "v", True),
]


@pytest.mark.parametrize("kind, op, field, value", OPS)
def test_operations_a_newer_vectors_file_may_use(kind: str, op: str, field: str, value: object, kernels: object) -> None:
    assert conformance.check({"kind": kind, "op": op, field: value, "note_why": "a comment"}) == []
    wrong = "/nope" if isinstance(value, str) else (not value if isinstance(value, bool) else -1)
    assert conformance.check({"kind": kind, "op": op, field: wrong}) != []  # the check can fail


def test_nametree_construct_takes_bare_leaves_and_negative_weights(kernels: object) -> None:
    record = {"kind": "nametree.construct", "name": "Union(-1*/a,2*Alt(/b,Neg))", "show": "-1.00*/a & 2.00*(/b | ~)",
              "simplified": "Union(-1.0*Leaf(/a),2.0*Leaf(/b))", "eval": "{/a,/b}"}
    assert conformance.check(record) == []


def test_an_unknown_operation_fails_loudly() -> None:
    with pytest.raises(conformance.UnknownKind):
        conformance.check({"kind": "path.ops", "op": "/a frobnicate /b", "v": True})
