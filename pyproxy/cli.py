"""The ``pyproxy`` command line: argument parsing, exit codes, and one line per error.

Exit codes: 0 ok; 2 bad arguments, configuration or dtab (one line on stderr naming what is wrong and
where); 1 runtime failure. Nothing imports this module; ``python -m pyproxy`` and the ``pyproxy``
console script call :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence, Tuple

from . import _impl
from ._version import __version__
from .errors import DtabError, PyproxyError

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    impl = _impl.IMPL + (f" ({_impl.WHY})" if _impl.WHY else "")
    p = _Parser(prog="pyproxy", description="A Linkerd-1.x-compatible service-mesh node proxy.")
    p.add_argument("--version", action="version", version=f"pyproxy {__version__} [{impl} kernels]")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    d = sub.add_parser(
        "delegate",
        help="explain how a path delegates through a dtab (the dtab playground in a terminal)",
        description="Print the delegation tree of PATH through DTAB: every dentry that fires, every "
        "alternative and union branch, and what each branch binds to.",
    )
    d.add_argument("--dtab", default="", help="the dtab, e.g. '/svc => /#/io.l5d.fs' (default: empty)")
    d.add_argument(
        "--namer",
        action="append",
        default=[],
        metavar="KIND=ARG",
        help="a namer to bind /#/ names with; repeatable. Supported: io.l5d.fs=ROOT_DIR "
        "(optionally PREFIX:io.l5d.fs=ROOT_DIR to serve /#/PREFIX)",
    )
    d.add_argument("--json", action="store_true", help="print the exact /delegator.json body instead")
    d.add_argument("path", metavar="PATH", help="the logical name, e.g. /svc/world")
    return p


def _namers(specs: Sequence[str]) -> List[Tuple[object, object]]:
    from .namers.fs import FsNamer
    from .naming.path import Path

    out: List[Tuple[object, object]] = []
    for spec in specs:
        kind, sep, arg = spec.partition("=")
        prefix_text, colon, kind_name = kind.rpartition(":")
        if not colon:
            prefix_text, kind_name = "", kind
        if not sep or kind_name != "io.l5d.fs" or not arg:
            raise _UsageError(f"--namer {spec!r}: expected io.l5d.fs=ROOT_DIR or PREFIX:io.l5d.fs=ROOT_DIR")
        import os

        if not os.path.isdir(arg):
            raise _UsageError(f"--namer {spec!r}: {arg} is not a directory")
        prefix = Path.read("/#/" + (prefix_text.strip("/") or kind_name))
        out.append((prefix, FsNamer(arg, prefix)))
    return out


class _UsageError(Exception):
    pass


def _delegate(args: argparse.Namespace) -> int:
    from .naming import ConfiguredNamersInterpreter, Dtab, Path, delegate

    try:
        dtab = Dtab.read(args.dtab)
    except DtabError as exc:
        print(f"pyproxy: invalid dtab: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = Path.read(args.path)
    except DtabError as exc:
        print(f"pyproxy: invalid path: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        interp = ConfiguredNamersInterpreter(_namers(args.namer))  # type: ignore[arg-type]
    except _UsageError as exc:
        print(f"pyproxy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        tree = delegate(dtab, path, interp.lookup_namers)
    except PyproxyError as exc:
        print(f"pyproxy: delegation failed: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    if args.json:
        print(json.dumps(tree.to_json(), separators=(",", ":")))
    else:
        print("\n".join(tree.render()))
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "delegate":
        return _delegate(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands
