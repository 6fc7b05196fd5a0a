"""The admin HTTP server (default 127.0.0.1:9990): Linkerd's UI, metrics, control and dtab endpoints.

Modules: :mod:`.server` (the trio listener), :mod:`.routes` (what each path answers),
:mod:`.security` (``admin.security``), :mod:`.delegator` (``/delegator.json``), :mod:`.pages`
(static files of ``pyproxy/admin/static`` and the server-rendered pages), :mod:`.request` (what
a handler takes and gives).

May import: ``errors``, ``_impl``, ``_version``, ``naming``, ``http``, ``metrics``, ``datapath``
(its sockets and bodies), ``telemetry`` and ``view``: it reads the running proxy only through the
read-only :class:`~pyproxy.view.ProxyView`, never the runtime's objects.
"""

from .server import AdminServer

__all__ = ["AdminServer"]
