"""Delegation trees: why a path binds where it does, every branch expanded (spec §4.6-§4.7).

Unlike :func:`~pyproxy.naming.binding.bind`, :func:`delegate` expands *every* Alt and Union branch and
records, on each node, the name at that point (``path``) and the dentry that produced it (``dentry``).
This is what ``pyproxy delegate``, ``/delegator.json`` and the dtab playground show. The algorithm,
the final simplification and the JSON shape are Linkerd's ``ConfiguredNamersInterpreter.delegate``
and ``DelegateApiHandler``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import MaxDepthError, PyproxyError
from .dtab import Dentry, Dtab
from .name import Bound, addr_json
from .path import Path
from .tree import Alt, Empty, Fail, Leaf, NameTree, Neg, Union

__all__ = ["DelegateTree", "delegate", "transform_leaves", "MAX_DEPTH"]

#: Linkerd's delegator limit (``depth > 100`` fails with "Max recursion level reached.").
MAX_DEPTH = 100

DELEGATE, ALT, UNION, LEAF, NEG, FAIL, EMPTY, EXCEPTION, TRANSFORMATION = (
    "delegate",
    "alt",
    "union",
    "leaf",
    "neg",
    "fail",
    "empty",
    "exception",
    "transformation",
)


class DelegateTree:
    """One node of a delegation tree.

    Attributes:
        kind: ``delegate``, ``alt``, ``union``, ``leaf``, ``neg``, ``fail``, ``empty`` or ``exception``.
        path: the name at this point.
        dentry: the rule that produced it (``Dentry.NOP`` at the root).
        children: sub-trees (one for ``delegate``; any number for ``alt``; the trees of ``union``).
        weights: the Union weights, parallel to ``children``.
        value: for ``leaf``, the :class:`~pyproxy.naming.name.Bound` (or, mid-delegation, a Path);
            for ``transformation``, the bound name before the transformer.
        error: for ``exception``, the error raised while looking the name up.
        name: for ``transformation``, the transformer (its Linkerd class name).
    """

    __slots__ = ("kind", "path", "dentry", "children", "weights", "value", "error", "name")

    def __init__(
        self,
        kind: str,
        path: Path,
        dentry: Dentry,
        children: Sequence["DelegateTree"] = (),
        weights: Sequence[float] = (),
        value: object = None,
        error: Optional[BaseException] = None,
        name: str = "",
    ) -> None:
        self.kind = kind
        self.name = name
        self.path = path
        self.dentry = dentry
        self.children: Tuple[DelegateTree, ...] = tuple(children)
        self.weights: Tuple[float, ...] = tuple(weights)
        self.value = value
        self.error = error

    def with_dentry(self, dentry: Dentry) -> "DelegateTree":
        return DelegateTree(self.kind, self.path, dentry, self.children, self.weights, self.value, self.error, self.name)

    # === renderings ===

    def to_json(self) -> Dict[str, Any]:
        """The ``/delegator.json`` body for this node (Linkerd's field order)."""
        out: Dict[str, Any] = {"type": self.kind}
        k = self.kind
        if k == TRANSFORMATION:
            b = self.value
            out["path"] = self.path.show
            out["name"] = self.name
            out["bound"] = {"addr": addr_json(b.addr.value), "id": b.id.show, "path": b.residual.show}  # type: ignore[attr-defined]
            out["tree"] = self.children[0].to_json()
            return out
        if k == NEG:
            out["path"] = self.path.show if self.path.elems else "~"
        elif k == FAIL:
            out["path"] = self.path.show if self.path.elems[:2] == (b"$", b"fail") else "!"
        else:
            out["path"] = self.path.show
        if self.dentry is not Dentry.NOP and self.dentry != Dentry.NOP:  # type: ignore[attr-defined]
            out["dentry"] = {"prefix": self.dentry.prefix.show, "dst": self.dentry.dst.show}
        if k == DELEGATE:
            out["delegate"] = self.children[0].to_json()
        elif k == ALT:
            out["alt"] = [c.to_json() for c in self.children]
        elif k == UNION:
            out["union"] = [{"weight": w, "tree": c.to_json()} for w, c in zip(self.weights, self.children)]
        elif k == LEAF:
            b = self.value
            if isinstance(b, Bound):
                out["bound"] = {"addr": addr_json(b.addr.value), "id": b.id.show, "path": b.residual.show}
            else:  # not reachable after delegate(); kept total for hand-built trees
                out["bound"] = {"addr": {"type": "neg"}, "id": self.path.show, "path": "/"}
        elif k == EXCEPTION:
            out["message"] = str(self.error)
        return out

    def debug(self) -> str:
        """Linkerd's ``toString`` of the tree (Scala case classes), as the conformance vectors write it."""
        head = f"{self.path.debug()},{self.dentry.debug()}"
        k = self.kind
        if k == DELEGATE:
            return f"Delegate({head},{self.children[0].debug()})"
        if k == ALT:
            return f"Alt({head},List(" + ", ".join(c.debug() for c in self.children) + "))"
        if k == UNION:
            from .tree import java_double

            ws = ", ".join(f"Weighted({java_double(w)},{c.debug()})" for w, c in zip(self.weights, self.children))
            return f"Union({head},Vector({ws}))"
        if k == LEAF:
            b = self.value
            if isinstance(b, Bound):
                return f"Leaf({head},Bound({b.id.debug()},{b.residual.debug()},None))"
            return f"Leaf({head},{b!r})"
        if k == EXCEPTION:
            return f"Exception({head},java.lang.Exception: {self.error})"
        if k == TRANSFORMATION:
            b = self.value
            return f"Transformation({self.path.debug()},{self.name},Bound({b.id.debug()},{b.residual.debug()},None),{self.children[0].debug()})"  # type: ignore[attr-defined]
        return f"{k.capitalize()}({head})"

    def render(self, indent: str = "") -> List[str]:
        """A readable multi-line rendering for terminals (``pyproxy delegate``)."""
        via = "" if self.dentry == Dentry.NOP else f"  [{self.dentry.show}]"  # type: ignore[attr-defined]
        k = self.kind
        if k == LEAF and isinstance(self.value, Bound):
            b = self.value
            addr = addr_json(b.addr.value)
            if addr["type"] == "bound":
                where = ", ".join(f"{a['ip']}:{a['port']}" for a in addr["addrs"]) or "no endpoints"
            else:
                where = addr.get("cause", addr["type"])
            residual = f" residual={b.residual.show}" if b.residual.elems else ""
            lines = [f"{indent}{self.path.show}{via}", f"{indent}  => bound {b.id.show}{residual} ({where})"]
            return lines
        label = {
            NEG: "~ (neg)",
            FAIL: "! (fail)",
            EMPTY: "$ (empty)",
        }.get(k)
        if label is not None:
            shown = self.path.show if self.path.elems else ""
            return [f"{indent}{shown + '  ' if shown else ''}{label}{via}"]
        if k == EXCEPTION:
            return [f"{indent}{self.path.show}{via}", f"{indent}  error: {self.error}"]
        if k == TRANSFORMATION:
            return [f"{indent}{self.path.show}{via}", f"{indent}  transformed by {self.name}:"] + self.children[0].render(indent + "    ")
        lines = [f"{indent}{self.path.show}{via}"]
        if k == DELEGATE:
            lines += self.children[0].render(indent + "  ")
        elif k == ALT:
            for i, c in enumerate(self.children):
                lines.append(f"{indent}  | alternative {i + 1}")
                lines += c.render(indent + "    ")
        elif k == UNION:
            for w, c in zip(self.weights, self.children):
                lines.append(f"{indent}  & weight {w:g}")
                lines += c.render(indent + "    ")
        return lines


def transform_leaves(tree: DelegateTree, fn: Callable[[Bound], Optional[Tuple[str, Bound]]]) -> DelegateTree:
    """``tree`` with each bound leaf the transformer ``fn`` rewrites shown as a ``transformation``
    node: the leaf before, the transformer's name, and the leaf after (Linkerd's
    ``DelegatingNameTreeTransformer.transformDelegate``). ``fn`` answers None to leave a leaf alone."""
    k = tree.kind
    if k == LEAF and isinstance(tree.value, Bound):
        out = fn(tree.value)
        if out is None:
            return tree
        name, bound = out
        after = DelegateTree(LEAF, bound.id, tree.dentry, value=bound)
        return DelegateTree(TRANSFORMATION, tree.path, tree.dentry, [after], value=tree.value, name=name)
    if k == TRANSFORMATION:
        return DelegateTree(k, tree.path, tree.dentry, [transform_leaves(tree.children[0], fn)], value=tree.value, name=tree.name)
    if tree.children:
        return DelegateTree(k, tree.path, tree.dentry, [transform_leaves(c, fn) for c in tree.children], tree.weights, tree.value, tree.error, tree.name)
    return tree


def _from_name_tree(path: Path, dentry: Dentry, t: NameTree) -> DelegateTree:
    if type(t) is Leaf:
        return DelegateTree(LEAF, path, dentry, value=t.value)  # type: ignore[attr-defined]
    if type(t) is Alt:
        return DelegateTree(ALT, path, dentry, [_from_name_tree(path, dentry, c) for c in t.trees])  # type: ignore[attr-defined]
    if type(t) is Union:
        ws = t.weighted  # type: ignore[attr-defined]
        return DelegateTree(UNION, path, dentry, [_from_name_tree(path, dentry, w.tree) for w in ws], [w.weight for w in ws])
    if t is Neg:
        return DelegateTree(NEG, Path.EMPTY, dentry)  # type: ignore[attr-defined]
    if t is Fail:
        return DelegateTree(FAIL, path, dentry)
    assert t is Empty
    return DelegateTree(EMPTY, path, dentry)


def delegate(
    dtab: Dtab,
    path: Path,
    lookup_namers: Callable[[Path], NameTree],
    max_depth: int = MAX_DEPTH,
) -> DelegateTree:
    """The simplified delegation tree of ``path`` through ``dtab``.

    Args:
        lookup_namers: answers a path no dentry matched (configured namers, then ``/$/``).

    Raises:
        MaxDepthError: the chain outside any Alt/Union exceeded ``max_depth`` ("Max recursion level reached.").
    """

    def lookup(dentry: Dentry, p: Path) -> DelegateTree:
        try:
            matches = dtab.lookup_dentries(p)
            if not matches:
                t = lookup_namers(p)
                if t is Neg:
                    return DelegateTree(NEG, p, dentry)
                return _from_name_tree(p, dentry, t)
            trees = [_from_name_tree(p, d, rewritten) for d, rewritten in matches]
            if len(trees) == 1:
                return DelegateTree(DELEGATE, p, dentry, trees)
            return DelegateTree(ALT, p, dentry, trees)
        except PyproxyError as exc:
            return DelegateTree(EXCEPTION, p, dentry, error=exc)

    def expand(node: DelegateTree, depth: int) -> DelegateTree:
        if depth > max_depth:
            raise MaxDepthError("Max recursion level reached.")
        k = node.kind
        if k == LEAF:
            if isinstance(node.value, Path):
                return expand(lookup(node.dentry, node.value), depth + 1)
            return node
        if k == DELEGATE:
            return DelegateTree(DELEGATE, node.path, node.dentry, [expand(node.children[0], depth)])
        if k in (ALT, UNION):
            if not node.children:
                return DelegateTree(NEG, node.path, node.dentry)
            if len(node.children) == 1:
                return DelegateTree(DELEGATE, node.path, node.dentry, [expand(node.children[0], depth)])
            out = []
            for c in node.children:
                try:
                    out.append(expand(c, depth))
                except PyproxyError as exc:
                    out.append(DelegateTree(EXCEPTION, node.path, node.dentry, error=exc))
            return DelegateTree(k, node.path, node.dentry, out, node.weights)
        return node  # neg, fail, empty, exception

    root = DelegateTree(LEAF, Path.EMPTY, Dentry.NOP, value=path)  # type: ignore[attr-defined]
    return _simplify(expand(root, 0))


def _simplify(node: DelegateTree) -> DelegateTree:
    k = node.kind
    if k == DELEGATE:
        s = _simplify(node.children[0])
        if s.kind not in (NEG, FAIL, EMPTY) and s.path == node.path:
            return s.with_dentry(node.dentry)
        return DelegateTree(DELEGATE, node.path, node.dentry, [s])
    if k in (ALT, UNION):
        if not node.children:
            return DelegateTree(NEG, node.path, node.dentry)
        if len(node.children) == 1:
            return _simplify(DelegateTree(DELEGATE, node.path, node.dentry, node.children))
        if k == UNION:
            return DelegateTree(UNION, node.path, node.dentry, [_simplify(c) for c in node.children], node.weights)
        out: List[DelegateTree] = []
        for c in node.children:
            s = _simplify(c)
            if s.kind == ALT and s.path == node.path:
                out.extend(s.children)
            else:
                out.append(s)
        return DelegateTree(ALT, node.path, node.dentry, out)
    return node
