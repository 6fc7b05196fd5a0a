"""The admin UI's files and the few pages rendered on the server.

Static files live in ``pyproxy/admin/static/`` (plain HTML, CSS and JS; no build step, nothing from a
CDN) and are read once, at start, into memory: only names found there are served, so a request
path can never reach another file. ``/`` and ``/delegator`` are HTML files of that folder with the
version filled in; ``/requests`` (recent requests) and ``/admin`` (the endpoint index) are rendered
here.
"""

from __future__ import annotations

import html
import time
from importlib import resources
from typing import Any, Dict, List, Sequence, Tuple

from .._version import __version__

__all__ = ["Static", "requests_page", "index_page"]

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".js": b"application/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".json": b"application/json",
}


class Static:
    """The files of ``pyproxy/admin/static`` (one level, by name), loaded once."""

    def __init__(self) -> None:
        self.files: Dict[str, Tuple[bytes, bytes]] = {}
        root = resources.files("pyproxy.admin") / "static"
        if root.is_dir():
            for entry in root.iterdir():
                name = entry.name
                ext = name[name.rfind(".") :] if "." in name else ""
                if entry.is_file() and ext in _TYPES:
                    self.files[name] = (_TYPES[ext], entry.read_bytes())

    def get(self, name: str) -> Tuple[bytes, bytes]:
        """``(content type, bytes)``; KeyError when there is no such file."""
        return self.files[name]

    def page(self, name: str) -> bytes:
        """An HTML page with ``{{version}}`` filled in."""
        return self.files[name][1].replace(b"{{version}}", __version__.encode())


def _layout(title: str, body: str, active: str) -> bytes:
    tabs = [("/", "dashboard"), ("/delegator", "dtab"), ("/requests", "requests"), ("/admin", "admin")]
    nav = "".join(f'<a href="{href}"{" class=active" if name == active else ""}>{name}</a>' for href, name in tabs)
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} - pyproxy</title>"
        '<link rel=stylesheet href="/static/style.css"><link rel=icon href="/static/favicon.svg"></head><body>'
        f'<header><span class=brand>pyproxy <small>{html.escape(__version__)}</small></span><nav>{nav}</nav></header>'
        f"<main>{body}</main></body></html>"
    ).encode()


def requests_page(entries: Sequence[Dict[str, Any]], sample_rate: float, capacity: int) -> bytes:
    """``/requests``: Linkerd's table (timestamp, source, server, router, logical and concrete name,
    destination) plus method, URI, status and latency; names link to the dtab playground."""
    rows: List[str] = []
    for e in entries:
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["timestamp"] / 1000)) + ".%03d" % (e["timestamp"] % 1000)
        play = f'/delegator?router={html.escape(e["router"], True)}&amp;path={html.escape(e["logical"], True)}'
        latency = "" if e["latencyMs"] is None else f'{e["latencyMs"]:.1f}'
        cells = [
            html.escape(ts),
            html.escape(e["source"]),
            html.escape(e["server"]),
            html.escape(e["router"]),
            html.escape(f'{e["method"]} {e["uri"]}'.strip()),
            f'<a href="{play}">{html.escape(e["logical"])}</a>',
            html.escape(e["concrete"]),
            html.escape(e["destination"]),
            "" if e["status"] is None else str(e["status"]),
            latency,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    heads = ["timestamp", "source", "server", "router", "request", "logical name", "concrete name", "destination", "status", "ms"]
    table = (
        f"<h1>Recent requests</h1><p class=muted>sample rate {sample_rate:g}, last {capacity} kept, newest first</p>"
        "<table class=grid><thead><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>"
        + ("".join(rows) or f'<tr><td colspan={len(heads)} class=muted>no request sampled yet</td></tr>')
        + "</tbody></table>"
    )
    return _layout("requests", table, "requests")


def index_page(endpoints: Sequence[Tuple[str, str]]) -> bytes:
    """``/admin``: every endpoint this admin server answers, with what it does."""
    items = "".join(f'<li><a href="{html.escape(p, True)}">{html.escape(p)}</a> <span class=muted>{html.escape(d)}</span></li>' for p, d in endpoints)
    return _layout("admin", f"<h1>Admin endpoints</h1><ul class=index>{items}</ul>", "admin")
