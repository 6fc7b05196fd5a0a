"""``hello``, the article's app, as a real OpenTelemetry-instrumented service (run as a process).

A WSGI app served by the standard library, instrumented with the OpenTelemetry SDK and its
standard instrumentations from PyPI: ``opentelemetry-instrumentation-wsgi`` reads the incoming
context (``traceparent``, ``baggage``, ``uber-trace-id``/``uberctx-*``, ... as ``OTEL_PROPAGATORS``
says) and ``opentelemetry-instrumentation-requests`` writes it on the outgoing call. The app's own
code forwards nothing: it calls ``world`` through its node's ``outgoing`` router with only a
``Host`` header, and answers ``{"text": "Hello <world's answer>", "sent": [names of the fields
its call carried]}``.

    python tests/otel_hello.py OUTGOING_HOST:PORT     # prints "listening <port>" once it serves
"""

from __future__ import annotations

import json
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from opentelemetry import trace
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider

OUTGOING = sys.argv[1]


def app(environ, start_response):  # type: ignore[no-untyped-def]
    with requests.Session() as s:  # one connection per call: nothing of one request outlives it
        r = s.get(f"http://{OUTGOING}/", headers={"Host": "world"}, timeout=10)
    body = json.dumps({"text": f"Hello {r.text}", "status": r.status_code, "sent": sorted(k.lower() for k in r.request.headers)}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # type: ignore[no-untyped-def]  # noqa: A002 - stdlib signature
        pass


class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main() -> None:
    trace.set_tracer_provider(TracerProvider())
    RequestsInstrumentor().instrument()
    server = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), server_class=Server, handler_class=Quiet)
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
