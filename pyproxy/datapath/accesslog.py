"""The HTTP access log of a router (``httpAccessLog`` and its roll keys, linkerd1.md §2.4).

One line per response, in Linkerd 1.x's format (Apache's combined log, led by the Host header)::

    hello.world 127.0.0.1 - - [25/Nov/2026:22:21:55 +0000] "GET /path HTTP/1.1" 200 12 "-" "curl/8.5"

The length is the response's Content-Length (``-`` when the body was chunked or unframed). Files are
written and rolled by the standard library's logging handlers: ``never`` (one file, appended to or
truncated at start), ``hourly``, ``daily`` (at midnight), ``weekly(n)`` (``n`` is the day the week
rolls on, 1 = Sunday ... 7 = Saturday, as in Linkerd's util-logging) or a size such as
``3.megabytes``. ``httpAccessLogRotateCount`` rolled files are kept: ``-1`` keeps all of them,
``0`` none. Writes are buffered by the file object and flushed per line, on the event loop: a line
costs a few microseconds and is only paid when the log is configured.
"""

from __future__ import annotations

import glob
import logging
import logging.handlers
import os
import re
import time
from typing import Optional

from ..errors import ConfigError

__all__ = ["AccessLog", "handler_for"]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\.(byte|kilobyte|megabyte|gigabyte|terabyte)s?\Z", re.I)
_UNITS = {"byte": 1, "kilobyte": 1 << 10, "megabyte": 1 << 20, "gigabyte": 1 << 30, "terabyte": 1 << 40}
_WEEKLY = re.compile(r"weekly\((\d+)\)\Z", re.I)


class _PruneMixin:
    """``rotate_count`` 0 keeps no rolled file; -1 keeps all (the size handler renumbers them all)."""

    keep: int
    baseFilename: str

    def _prune(self) -> None:
        if self.keep == 0:
            for path in glob.glob(glob.escape(self.baseFilename) + ".*"):
                os.remove(path)


class _SizeRolling(_PruneMixin, logging.handlers.RotatingFileHandler):
    def doRollover(self) -> None:  # noqa: N802 - logging's name
        if self.keep < 0:  # keep all: shift every existing rolled file up by one
            self.backupCount = len(glob.glob(glob.escape(self.baseFilename) + ".*")) + 1
        elif self.keep == 0:
            self.backupCount = 1
        super().doRollover()
        self._prune()


class _TimeRolling(_PruneMixin, logging.handlers.TimedRotatingFileHandler):
    def doRollover(self) -> None:  # noqa: N802 - logging's name
        super().doRollover()
        self._prune()


def handler_for(path: str, policy: str, append: bool, keep: int, key: str) -> logging.Handler:
    """The logging handler for one access log; ``key`` names the config key in errors."""
    mode = "a" if append else "w"
    p = policy.strip()
    low = p.lower()
    handler: logging.Handler
    try:
        if low == "never":
            handler = logging.FileHandler(path, mode=mode, encoding="utf-8")
        elif low in ("hourly", "daily") or _WEEKLY.match(p):
            weekly = _WEEKLY.match(p)
            if weekly:
                day = int(weekly.group(1))
                if not 1 <= day <= 7:
                    raise ConfigError(f"{key}: weekly({day}): the day must be 1 (Sunday) to 7 (Saturday)")
                when = f"W{(day - 2) % 7}"  # Python counts from Monday = W0
            else:
                when = "H" if low == "hourly" else "midnight"
            if not append and os.path.exists(path):
                open(path, "w").close()
            handler = _TimeRolling(path, when=when, backupCount=max(keep, 0), encoding="utf-8")
        else:
            m = _SIZE.match(p)
            if not m:
                raise ConfigError(f"{key}: unknown roll policy {policy!r}")
            limit = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
            handler = _SizeRolling(path, mode=mode, maxBytes=max(limit, 1), backupCount=max(keep, 1), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{key}: cannot open {path}: {exc.strerror or exc}") from None
    handler.keep = keep  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def _field(value: Optional[bytes]) -> str:
    if not value:
        return "-"
    return value.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"')


class AccessLog:
    """The access log of one router."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler
        self.logger = logging.Logger("pyproxy.access")  # not registered: never reaches the root logger
        self.logger.propagate = False
        self.logger.addHandler(handler)

    def record(
        self,
        host: Optional[bytes],
        remote: str,
        method: bytes,
        target: bytes,
        minor: int,
        status: int,
        length: int,
        referer: Optional[bytes],
        user_agent: Optional[bytes],
        now: Optional[float] = None,
    ) -> None:
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(time.time() if now is None else now))
        size = str(length) if length >= 0 else "-"
        self.logger.info(
            '%s %s - - [%s] "%s %s HTTP/1.%d" %d %s "%s" "%s"',
            _field(host), remote, when, method.decode("latin-1"), target.decode("latin-1"), minor, status, size,
            _field(referer), _field(user_agent),
        )

    def close(self) -> None:
        self.handler.close()
