"""The ``pyproxy`` command line: argument parsing, exit codes, and one line per error.

Exit codes: 0 ok; 2 bad arguments, configuration or dtab (one line on stderr naming what is wrong and
where); 1 runtime failure. Nothing imports this module; ``python -m pyproxy`` and the ``pyproxy``
console script call :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, NoReturn, Optional, Sequence, Tuple

if sys.version_info < (3, 11):  # trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

from .. import _impl
from .._version import __version__
from ..errors import ConfigError, DtabError, ListenError, PyproxyError

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pyproxy",
        description="A Linkerd-1.x-compatible service-mesh node proxy.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version stays one line, however long
    )
    # e.g. "pyproxy 0.1.0 [native kernels: x86_64-unknown-linux-gnu, release, rustc 1.95.0 (...)]"
    p.add_argument("--version", action="version", version=f"pyproxy {__version__} [{_impl.describe()}]")
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

    r = sub.add_parser("run", help="run the proxy from a Linkerd 1.x config file")
    r.add_argument("config", metavar="CONFIG", help="YAML or JSON config file, or - for standard input")
    r.add_argument("--validate", action="store_true", help="check the config and exit (0 valid, 2 not)")
    r.add_argument("--log-format", choices=("text", "json"), default="text", help="text (default) or json: one object per line")
    r.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR; or PYPROXY_LOG")
    r.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N worker processes sharing every listener (SO_REUSEPORT) with one admin view (default 1)",
    )

    n = sub.add_parser("namerd", help="run namerd, the control plane, from a namerd config file")
    n.add_argument("config", metavar="CONFIG", help="namerd's YAML or JSON config file, or - for standard input")
    n.add_argument("--validate", action="store_true", help="check the config and exit (0 valid, 2 not)")
    n.add_argument("--log-format", choices=("text", "json"), default="text", help="text (default) or json: one object per line")
    n.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR; or PYPROXY_LOG")

    t = sub.add_parser("dtab", help="read and change the dtabs of a namerd (what namerctl does)",
                       description="Talk to a namerd's io.l5d.httpController. Exit codes: 0 done; 1 namerd "
                       "unreachable or failing; 2 bad arguments or dtab; 3 the namespace does not exist (get, update, "
                       "delete) or already exists (create); 4 update refused: the dtab changed since it was read.")
    t.add_argument("--base-url", default=None, help="namerd's httpController URL (default: $NAMERCTL_BASE_URL or http://localhost:4180)")
    tsub = t.add_subparsers(dest="dtab_command", metavar="ACTION", parser_class=_Parser)
    tsub.required = True
    tsub.add_parser("list", help="the namespaces")
    g = tsub.add_parser("get", help="print a namespace's dtab (and its version on stderr)")
    g.add_argument("namespace")
    g.add_argument("--json", action="store_true", help="the JSON form")
    for action, what in (("create", "create a namespace (fails if it exists)"),
                         ("update", "replace a namespace's dtab, from the version read now (fails if changed meanwhile)")):
        c = tsub.add_parser(action, help=what)
        c.add_argument("namespace")
        c.add_argument("file", metavar="FILE", help="the dtab, or - for standard input")
        if action == "update":
            c.add_argument("--version", default=None, help="the version (Etag) the new dtab replaces (default: the one read now)")
    dl = tsub.add_parser("delete", help="delete a namespace")
    dl.add_argument("namespace")

    m = sub.add_parser("demo", help="run the hello/world staging demo on loopback")
    m.add_argument("--admin-port", type=int, default=9990)
    m.add_argument("--edge-port", type=int, default=4142, help="the edge router (clearContext)")
    m.add_argument("--ingress-port", type=int, default=4141, help="the internal ingress (accepts l5d-dtab)")
    m.add_argument("--outgoing-port", type=int, default=4140, help="the router the apps call each other through")
    m.add_argument("--print-config", action="store_true", help="print the Linkerd config the demo runs, and exit")

    st = sub.add_parser(
        "stage",
        help="the override that sends a request (and the calls it causes) to a service's new version",
        description="Find where SERVICE resolves in a router's dtab, check through the admin API that "
        "DESTINATION binds to live endpoints (exit 2 with the reason if not), and print the header(s) "
        "and a ready curl line.",
    )
    st.add_argument("target", metavar="SERVICE=DESTINATION", help="e.g. world=world-v2")
    st.add_argument("--router", metavar="NAME", help="the router whose dtab to stage in (needed when there are several)")
    src = st.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="the proxy's config (its admin block says where to ask)")
    src.add_argument("--admin", metavar="URL", help="the proxy's admin server (default http://127.0.0.1:9990)")
    st.add_argument("--sign", metavar="KEYFILE", help="sign the override with a key of KEYFILE (signedOverrides' format)")
    st.add_argument("--kid", metavar="KID", help="the key id to sign with (default: the file's first)")
    st.add_argument("--ttl", default="1h", help="how long the signature is valid: 90s, 30m, 1h (default), 2d")
    st.add_argument("--baggage", action="store_true", help="also print the baggage form (for apps that propagate baggage)")
    st.add_argument("--host", help="the Host of the curl line (default: SERVICE)")
    return p


def _namers(specs: Sequence[str]) -> List[Tuple[object, object]]:
    from ..discovery.namers.fs import FsNamer
    from ..naming.path import Path

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
    from ..discovery.dns import blocking_lookup
    from ..naming import ConfiguredNamersInterpreter, Dtab, Path, SystemNamer, delegate
    from ..naming.system import InetResolver

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
        system = SystemNamer(InetResolver(lookup=blocking_lookup))  # a terminal may wait for DNS
        interp = ConfiguredNamersInterpreter(_namers(args.namer), system)  # type: ignore[arg-type]
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


def _load_config(source: str):  # type: ignore[no-untyped-def]
    from ..config import load_file, loads

    if source == "-":
        return loads(sys.stdin.read())
    return load_file(source)


def _run(args: argparse.Namespace) -> int:
    import os

    from .footprint import defer_unused

    defer_unused()  # before trio is imported (by _serve): OpenSSL stays out of the serving process until used

    from .app import App
    from .signals import run_until_signal
    from .logs import configure

    level = args.log_level or os.environ.get("PYPROXY_LOG")
    if level is not None and level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        print(f"pyproxy: --log-level {level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL", file=sys.stderr)
        return EXIT_USAGE
    configure(args.log_format, level)
    import logging

    try:
        config = _load_config(args.config)
        for line in getattr(config, "warnings", ()):
            print(f"pyproxy: warning: {line}", file=sys.stderr)
        if args.validate:
            return EXIT_OK
        # a stale native module (refused, the pure twins serve) is worth a warning: the install is broken
        logging.getLogger("pyproxy").log(logging.WARNING if _impl.NATIVE_REFUSED else logging.INFO, "pyproxy %s, %s", __version__, _impl.describe())
        missing = config.unsupported() if hasattr(config, "unsupported") else []
        if missing:
            from ..config.root import shown_kind

            parts = "; ".join(f"{where}: {shown_kind(kind)}" for where, kind in missing)
            print(f"pyproxy: known but not built yet: {parts}", file=sys.stderr)
            return EXIT_USAGE
        if args.workers < 1:
            raise ConfigError(f"--workers {args.workers}: expected 1 or more")
        if args.workers > 1:
            if args.config == "-":
                raise ConfigError("--workers needs a config file, not standard input")
            from .workers import Supervisor

            passed = ["--log-format", args.log_format] + (["--log-level", level] if level else [])
            return _serve(Supervisor(config, args.config, args.workers, passed).run)
        worker = _worker_app(config)
        app = worker or App(config)
    except ConfigError as exc:
        print(f"pyproxy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _serve(run_until_signal, app, os.getppid() if worker is not None else None)


def _namerd(args: argparse.Namespace) -> int:
    import os

    from ..config.namerd import load_namerd
    from .logs import configure

    level = args.log_level or os.environ.get("PYPROXY_LOG")
    if level is not None and level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        print(f"pyproxy: --log-level {level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL", file=sys.stderr)
        return EXIT_USAGE
    configure(args.log_format, level)
    try:
        if args.config == "-":
            text = sys.stdin.read()
        else:
            try:
                with open(args.config, "rb") as f:
                    text = f.read().decode("utf-8")
            except OSError as exc:
                raise ConfigError(f"$: cannot read config file {args.config!r}: {exc.strerror or exc}") from None
            except UnicodeDecodeError as exc:
                raise ConfigError(f"$: the config is not UTF-8 (byte {exc.start})") from None
        config = load_namerd(text)
        if args.validate:
            return EXIT_OK
        config.require_built()
        from .namerd import NamerdApp
        from .signals import run_until_signal

        app = NamerdApp(config)
    except ConfigError as exc:
        print(f"pyproxy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _serve(run_until_signal, app)


def _leaves(exc: BaseException) -> List[BaseException]:
    """The exceptions inside ``exc`` (nurseries group them), in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _serve(fn: Any, *args: Any) -> int:
    """``trio.run(fn, *args)``, with whatever ends it as one line on stderr and an exit code: a
    listener that cannot be opened or a bad config is 2, any other failure 1 (with its traceback
    only at ``--log-level debug``)."""
    import logging

    import trio

    from .logs import one_line

    try:
        trio.run(fn, *args)
    except BaseException as exc:  # noqa: BLE001 - the process's last word, in one line
        leaves = _leaves(exc)
        if any(isinstance(e, (SystemExit, KeyboardInterrupt)) for e in leaves) and len(leaves) == 1:
            raise
        chosen = next((e for e in leaves if isinstance(e, (ListenError, ConfigError))), leaves[0])
        if isinstance(chosen, (ListenError, ConfigError)):
            print(f"pyproxy: {chosen}", file=sys.stderr)
            return EXIT_USAGE
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            logging.getLogger("pyproxy").exception("stopped by an unexpected error")
        detail = str(chosen) if isinstance(chosen, OSError) else f"unexpected error: {one_line((type(chosen), chosen, chosen.__traceback__))}"
        print(f"pyproxy: {detail}", file=sys.stderr)
        return EXIT_RUNTIME
    return EXIT_OK


def _worker_app(config):  # type: ignore[no-untyped-def]
    """The app of one worker process started by ``--workers`` (None outside a worker group)."""
    import json
    import os

    from .app import App
    from .workers import WORKER_ENV

    spec = os.environ.get(WORKER_ENV)
    if not spec:
        return None
    try:
        data = json.loads(spec)
        ports = {tuple(int(x) for x in k.split(".")): int(v) for k, v in data["ports"].items()}
    except (ValueError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{WORKER_ENV}: not a worker description ({exc})") from None
    return App(config, ports=ports, reuse_port=True, admin_addr=("127.0.0.1", 0))  # type: ignore[arg-type]


def _demo(args: argparse.Namespace) -> int:
    import trio

    from .demo import demo_config, run_demo

    if args.print_config:
        print(demo_config("<rootDir>", args.admin_port, args.edge_port, args.ingress_port, args.outgoing_port), end="")
        return EXIT_OK
    ports = {"admin": args.admin_port, "edge": args.edge_port, "ingress": args.ingress_port, "outgoing": args.outgoing_port}
    if _impl.NATIVE_REFUSED:
        print(f"pyproxy: warning: {_impl.WHY}; running on the pure kernels", file=sys.stderr)

    async def main_task() -> None:
        import signal

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_demo, ports)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

    code = _serve(main_task)
    if code == EXIT_OK:
        print("pyproxy demo stopped", file=sys.stderr)
    return code


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "delegate":
        return _delegate(args)
    if args.command == "run":
        return _run(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "namerd":
        return _namerd(args)
    if args.command == "dtab":
        from .dtabctl import dtab_command

        return dtab_command(args)
    if args.command == "stage":
        from .stage import main as stage

        return stage(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands
