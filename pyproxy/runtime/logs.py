"""Process logging: plain text for people, or one JSON object per line for log pipelines.

``pyproxy run --log-format json`` writes records such as
``{"ts": "2026-11-25T20:31:02.123Z", "level": "WARNING", "logger": "pyproxy.datapath.server", "msg": "...",
"exc": "..."}`` to stderr; ``--log-level`` (or ``PYPROXY_LOG``) sets the threshold. The readiness
lines (``pyproxy: listening ...``) are not log records and keep their fixed format.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Optional

__all__ = ["configure", "JsonFormatter"]


class JsonFormatter(logging.Formatter):
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
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or "INFO").upper())
