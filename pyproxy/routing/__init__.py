"""Routing: from a parsed request to the bound name it goes to.

Owns the identifiers (``identifiers``: Host, method and host, path, header, static; sans-IO), the
per-client and per-service policies resolved from a router's ``client``/``service`` blocks
(``policy``), which override a request carries and what goes on with it (``overrides``: ``l5d-*``,
baggage members, signed overrides at an edge; ``keyfile``: the signing keys, re-read on change),
what the playground shows of a pasted request (``explain``), and the
:class:`~pyproxy.routing.router.Router`, which *decides* a route: context (overrides, trace,
deadline), identification, binding through the dtab and the namers (cached per override and
name), and a weighted pick among the branches of the bound tree. Serving the route
(clients, connections, the exchange) is the data path's.

May import: ``errors``, ``_impl``, ``naming``, ``http``, ``resilience``, ``metrics``, trio. Never
``datapath``, ``discovery``, ``config`` or ``runtime``: the router is given its namers, dtab and
policies.
"""
