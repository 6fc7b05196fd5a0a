"""Process logging: plain text for people, or one JSON object per line for log pipelines.

``pyproxy run --log-format json`` writes records such as
``{"ts": "2026-11-25T20:31:02.123Z", "level": "WARNING", "logger": "pyproxy.datapath.server", "msg": "...",
"exc": "..."}`` to stderr; ``--log-level`` (or ``PYPROXY_LOG``) sets the threshold. The readiness
lines (``pyproxy: listening ...``) are not log records and keep their fixed format.

An exception attached to a record is one line (its type, message and where it was raised), so
nobody can fill the log with tracebacks by sending odd requests; at ``--log-level debug`` the whole
traceback follows, for the people debugging.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Optional

__all__ = ["configure", "JsonFormatter", "TextFormatter", "one_line"]


def one_line(exc_info: tuple) -> str:
    """``ValueError: bad thing (at pyproxy/datapath/server.py:123 in _serve_connection)``."""
    _, exc, tb = exc_info
    where = ""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        code = tb.tb_frame.f_code
        filename = code.co_filename
        cut = filename.rfind("pyproxy/")
        where = f" (at {filename[cut:] if cut >= 0 else filename}:{tb.tb_lineno} in {code.co_name})"
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


class _Exceptions:
    """Formats an exception as one line, or as a traceback when the root logger is at DEBUG."""

    def formatException(self, ei: tuple) -> str:  # noqa: N802 - logging's name
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return logging.Formatter.formatException(self, ei)  # type: ignore[arg-type]
        return "exception: " + one_line(ei)


class TextFormatter(_Exceptions, logging.Formatter):
    """``<time> <LEVEL> <logger>: <message>`` and, for an exception, one more line."""


class JsonFormatter(_Exceptions, logging.Formatter):
    """One JSON object per record (structured logs)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(fmt: str = "text", level: Optional[str] = None) -> None:
    """Send pyproxy's log records to stderr in ``fmt`` (``text`` or ``json``) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or "INFO").upper())
