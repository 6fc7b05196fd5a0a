"""The ``admin`` listener (UI, metrics, control endpoints) and the ``usage`` block (Linkerd 1.x
sections 1.1 and 1.5).
"""

from __future__ import annotations

import re
from typing import Optional, Tuple

from .base import Base, NonNegInt, Port, PosInt, SocketOptions, check_host, invalid
from .tls import ServerTls

__all__ = ["Admin", "AdminSecurity", "Usage"]


class AdminSecurity(Base, kw_only=True):
    """Which admin endpoints are served.

    A path is served iff (its category is enabled and it matches no blacklist regex) or (its
    category is disabled and it matches a whitelist regex); others answer 404.
    """

    ui_enabled: bool = True
    control_enabled: bool = True  # /admin/shutdown, /logging.json
    diagnostics_enabled: bool = True
    path_whitelist: Tuple[str, ...] = ()
    path_blacklist: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Compile now so a bad pattern fails at load with its key, not on the first request.
        for key, patterns in (("pathWhitelist", self.path_whitelist), ("pathBlacklist", self.path_blacklist)):
            for i, pattern in enumerate(patterns):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise invalid(f"{key}[{i}]", f"invalid regular expression: {e}") from None


class Admin(Base, kw_only=True):
    """The admin HTTP server."""

    ip: str = "127.0.0.1"
    port: Port = 9990
    socket_options: Optional[SocketOptions] = None
    tls: Optional[ServerTls] = None
    http_identifier_port: Optional[Port] = None  # debug listener running every HTTP identifier
    shutdown_grace_ms: NonNegInt = 10000  # drain bound on graceful shutdown
    worker_threads: PosInt = 2  # kept for compatibility; pyproxy runs on one trio thread
    security: AdminSecurity = AdminSecurity()

    def __post_init__(self) -> None:
        check_host(self.ip, "ip")


class Usage(Base, kw_only=True):
    """Anonymous usage reporting. pyproxy never phones home, so ``enabled`` defaults to false."""

    enabled: bool = False
    org_id: Optional[str] = None
