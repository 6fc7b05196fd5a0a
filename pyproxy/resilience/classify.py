"""Response classifiers: is this response a success, a failure, or a failure worth retrying?

Linkerd 1.x's HTTP classifiers (``service.responseClassifier.kind``, linkerd1.md §3.8):

* ``io.l5d.http.nonRetryable5XX`` (default): 5xx and errors are failures, never retried;
* ``io.l5d.http.retryableRead5XX``: also retryable for GET, HEAD, OPTIONS, TRACE;
* ``io.l5d.http.retryableIdempotent5XX``: read methods plus PUT and DELETE;
* ``io.l5d.http.retryableAll5XX``: every method;
* ``io.l5d.http.allSuccessful``: nothing is a failure.

Rules worth copying exactly: a request with a chunked body is never retryable (it cannot be replayed);
a failure the classifier calls non-retryable becomes retryable when the response carries
``l5d-retryable: true`` (a downstream Linkerd knows the request never reached the application).
Sans-IO.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["SUCCESS", "FAILURE", "RETRYABLE", "Classifier", "CLASSIFIERS"]

SUCCESS, FAILURE, RETRYABLE = "success", "failure", "retryable"

_READ = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE"))
_IDEMPOTENT = _READ | {b"PUT", b"DELETE"}

CLASSIFIERS = {
    "io.l5d.http.nonRetryable5XX": frozenset(),
    "io.l5d.http.retryableRead5XX": _READ,
    "io.l5d.http.retryableIdempotent5XX": _IDEMPOTENT,
    "io.l5d.http.retryableAll5XX": None,  # every method
    "io.l5d.http.allSuccessful": frozenset(),
}


class Classifier:
    """One configured classifier."""

    __slots__ = ("kind", "_methods", "_all_successful")

    def __init__(self, kind: str = "io.l5d.http.nonRetryable5XX") -> None:
        if kind not in CLASSIFIERS:
            raise ValueError(f"unknown response classifier {kind}")
        self.kind = kind
        self._methods = CLASSIFIERS[kind]
        self._all_successful = kind == "io.l5d.http.allSuccessful"

    def classify(
        self,
        method: bytes,
        status: Optional[int],
        *,
        chunked_request: bool = False,
        retryable_header: bool = False,
    ) -> str:
        """Classify a response (``status``) or an error (``status`` None: timeout, reset, refused)."""
        if self._all_successful:
            return SUCCESS
        failed = status is None or status >= 500
        if not failed:
            return SUCCESS
        if chunked_request:
            return FAILURE
        methods = self._methods
        if methods is None or method in methods or retryable_header:
            return RETRYABLE
        return FAILURE
