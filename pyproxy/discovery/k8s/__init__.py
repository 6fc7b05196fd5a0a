"""The Kubernetes API as discovery sees it: a client, watches that stay current, and the objects read.

* ``api``: :class:`~.api.KubeApi`, the API server reached through ``kubectl proxy`` (plain HTTP,
  Linkerd's way: ``localhost:8001``) or from inside the cluster (HTTPS with the pod's service-account
  token, re-read as it rotates, and the cluster CA); JSON requests and chunked watch streams (h11 over trio:
  control-plane traffic, not the data path);
* ``watch``: :class:`~.watch.Watch`, one list-then-watch loop that keeps a set of objects current:
  resumes a stream that ends from the newest resourceVersion, drops events older than it, re-lists
  on ``410 Gone`` (as an HTTP status or an ``ERROR`` event), backs off with jitter (10 ms to 10 s)
  on anything else, detects streams that go quiet (bookmarks are asked for; a stream silent past its
  timeout is reconnected), and keeps the last good objects through an outage;
* ``objects``: what the namer reads of Endpoints, EndpointSlices and Services (ready addresses,
  named and numbered ports), defensively: a malformed object is an error of its watch, never a crash.
"""
