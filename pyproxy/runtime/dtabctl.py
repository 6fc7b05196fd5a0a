"""``pyproxy dtab``: what ``namerctl dtab`` does, against a namerd's ``io.l5d.httpController``.

* ``list``: the namespaces, one per line;
* ``get NS``: ``# version <Etag>`` then the dtab, one dentry per line (a dtab file: ``#`` starts a
  comment), or ``--json``;
* ``create NS FILE`` (``-``: standard input): fails if the namespace exists;
* ``update NS FILE``: replaces the dtab *from a version*, so an edit made meanwhile by someone else
  is refused, not lost. The version is ``--version``, else the ``# version`` line of FILE (as
  ``get`` wrote it: edit the file ``get`` gave and update from it), else the one read just before
  writing;
* ``delete NS``.

The URL is ``--base-url``, else ``$NAMERCTL_BASE_URL`` (namerctl's variable), else
``http://localhost:4180``. Exit codes: 0 done; 1 namerd unreachable or failing (5xx); 2 bad
arguments or a dtab namerd refuses (its message is printed); 3 no such namespace (get, update,
delete) or it already exists (create); 4 the dtab changed since the version given (update).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
from typing import Dict, Optional, Tuple
from urllib.parse import quote, urlsplit

__all__ = ["dtab_command", "DEFAULT_URL"]

DEFAULT_URL = "http://localhost:4180"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NAMESPACE, EXIT_CONFLICT = 0, 1, 2, 3, 4
_VERSION = re.compile(r"^\s*#\s*version\s+(\S+)\s*$", re.MULTILINE)


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Namerd:
    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http",) or not url.hostname:
            raise _Failed(EXIT_USAGE, f"--base-url {base_url!r}: expected http://HOST[:PORT] (TLS is not built)")
        self.host, self.port = url.hostname, url.port or 80
        self.base = url.path.rstrip("/")
        self.shown = base_url

    def call(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            c.request(method, self.base + path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        except (OSError, http.client.HTTPException) as exc:
            raise _Failed(EXIT_FAILED, f"cannot reach namerd at {self.shown}: {exc}") from None
        finally:
            c.close()


def _read_file(name: str) -> str:
    try:
        if name == "-":
            return sys.stdin.read()
        with open(name, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _Failed(EXIT_USAGE, f"cannot read {name}: {exc}") from None


def _check(status: int, body: bytes, ns: str, action: str) -> None:
    if status in (200, 204):
        return
    text = body.decode("utf-8", "replace").strip()
    if status == 404:
        raise _Failed(EXIT_NAMESPACE, f"namespace {ns} does not exist")
    if status == 409:
        raise _Failed(EXIT_NAMESPACE, f"namespace {ns} already exists")
    if status == 412:
        raise _Failed(EXIT_CONFLICT, f"namespace {ns} changed since the version given: not updated (get it again, redo the edit)")
    if status == 400:
        raise _Failed(EXIT_USAGE, f"namerd refused the {action}: {text}")
    raise _Failed(EXIT_FAILED, f"namerd answered {status} to the {action}" + (f": {text}" if text else ""))


def _show(dtab_json: bytes) -> str:
    return "".join(f"{d['prefix']} => {d['dst']};\n" for d in json.loads(dtab_json))


def _run(args: argparse.Namespace) -> int:
    namerd = _Namerd(args.base_url or os.environ.get("NAMERCTL_BASE_URL") or DEFAULT_URL)
    action = args.dtab_command
    if action == "list":
        status, _, body = namerd.call("GET", "/api/1/dtabs")
        _check(status, body, "", "list")
        for ns in json.loads(body):
            print(ns)
        return EXIT_OK
    ns = args.namespace
    path = f"/api/1/dtabs/{quote(ns, safe='')}"
    if action == "get":
        status, headers, body = namerd.call("GET", path, headers={"Accept": "application/json"})
        _check(status, body, ns, "get")
        if args.json:
            sys.stdout.write(body.decode())
        else:
            sys.stdout.write(f"# version {headers.get('etag', '')}\n" + _show(body))
        return EXIT_OK
    if action == "delete":
        status, _, body = namerd.call("DELETE", path)
        _check(status, body, ns, "delete")
        print(f"deleted {ns}", file=sys.stderr)
        return EXIT_OK
    text = _read_file(args.file)
    send = {"Content-Type": "application/dtab"}
    if action == "create":
        status, _, body = namerd.call("POST", path, text.encode(), send)
        _check(status, body, ns, "create")
        print(f"created {ns}", file=sys.stderr)
        return EXIT_OK
    assert action == "update"
    version = args.version
    if version is None:
        found = _VERSION.search(text)
        version = found.group(1) if found else None
    if version is None:
        status, headers, body = namerd.call("HEAD", path)
        _check(status, body, ns, "update")
        version = headers.get("etag")
        if not version:
            raise _Failed(EXIT_FAILED, f"namerd gave no version (Etag) for {ns}")
    status, _, body = namerd.call("PUT", path, text.encode(), {**send, "If-Match": version})
    _check(status, body, ns, "update")
    print(f"updated {ns}", file=sys.stderr)
    return EXIT_OK


def dtab_command(args: argparse.Namespace) -> int:
    """Run one ``pyproxy dtab`` action; returns the exit code (messages on stderr, one line)."""
    try:
        return _run(args)
    except _Failed as exc:
        print(f"pyproxy: {exc}", file=sys.stderr)
        return exc.code
    except ValueError as exc:  # an answer that is not the JSON namerd writes
        print(f"pyproxy: namerd's answer is not understood: {exc}", file=sys.stderr)
        return EXIT_FAILED
