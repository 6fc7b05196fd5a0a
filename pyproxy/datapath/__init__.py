"""The data path: connections in, requests forwarded, responses relayed.

Owns the buffered sockets and bodies (``stream``), the listeners (``server``), serving a decided
route (``forwarder``: fields, lane installs, metrics of one request), the upstream exchange with its
attempts and retries (``exchange``), clients per bound name with their endpoint pools (``client``),
the access log (``accesslog``), the Python side of the lane, the native data path (``lane``), and a
small HTTP/1.1 client for the proxy's own calls (``fetch``).

May import: everything below it (``errors``, ``_impl``, ``naming``, ``http``, ``resilience``,
``metrics``, ``routing``) and trio. Never ``config``, ``discovery``, ``admin``, ``telemetry`` or
``runtime``: what it needs of them comes in as arguments.
"""
