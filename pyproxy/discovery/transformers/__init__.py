"""Transformers: rewrite the bound names an interpreter (or one namer) answers (Linkerd 1.x §4.2).

Each transformer maps every bound leaf of a tree to a new bound name whose id is
``/%/<transformer prefix>/<original id>`` and whose address set is derived, live, from the
original's (and, for the gateway kinds, from the DaemonSet's). ``base`` has the machinery (the
derived-address cache, the interpreter and namer wrappers, delegation trees showing each
transformation); ``perhost`` the host-level kinds (``io.l5d.port``, ``io.l5d.localhost``,
``io.l5d.specificHost``); ``subnet`` the filtering and gateway kinds behind the Kubernetes ones
(``io.l5d.k8s.localnode``, ``io.l5d.k8s.daemonset``); ``replace`` the kinds that swap a name for
another (``io.l5d.replace``, ``io.l5d.const``).
"""
