"""HTTP/1.1 rules, sans-IO: what a message is and what the proxy does to its fields.

Owns the canonical request and response heads (``message``: parse results as objects, serialising,
Linkerd's error responses), the header rules (``headers``: hop-by-hop fields, the ``l5d-*`` context
fields and the edge scrub), the request context (``context``: dtab overrides and their cache, trace
ids, deadlines, sampling), the RFC 7239 ``Forwarded`` element (``forwarded``), overrides carried
in baggage (``baggage``: W3C ``baggage``, ``uberctx-``, ``ot-baggage-``) and signed overrides
(``signature``: the ``l5d-dtab-sig`` field, its HMAC, the key file's format).

May import: ``errors``, ``_impl`` (the HTTP/1.1 kernels), ``naming``. Never trio, never ``config``:
everything here is a function of bytes in and bytes out, tested without sockets.
"""
