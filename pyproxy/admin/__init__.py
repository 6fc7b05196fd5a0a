"""The admin HTTP server (default 127.0.0.1:9990): Linkerd's UI, metrics, control and dtab endpoints.

Modules: :mod:`.server` (the trio listener), :mod:`.routes` (what each path answers),
:mod:`.security` (``admin.security``), :mod:`.delegator` (``/delegator.json``), :mod:`.pages`
(static files of ``pyproxy/admin/static`` and the server-rendered pages).
"""

from .server import AdminServer

__all__ = ["AdminServer"]
