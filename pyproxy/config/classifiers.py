"""Response classifiers (``service.responseClassifier``): the HTTP family ``io.l5d.http.*``, the h2
family ``io.l5d.h2.*`` and the gRPC classifiers ``io.l5d.h2.grpc.*`` (Linkerd 1.x section 3.8).

The pre-1.0 names (``io.l5d.retryableRead5XX`` ...) are renamed to their 1.x names by :mod:`.legacy`,
with a warning, before typing.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import msgspec

from .base import Plugin

__all__ = ["HttpClassifier", "H2Classifier", "DEFAULT_HTTP_CLASSIFIER", "DEFAULT_H2_CLASSIFIER", "LEGACY_KINDS"]

# The five status-based classifiers; both families share them (only the prefix differs).
_STATUS_KINDS = ("nonRetryable5XX", "retryableRead5XX", "retryableIdempotent5XX", "retryableAll5XX", "allSuccessful")

# Pre-1.0 kind -> suffix of its 1.x name (CHANGES.md 1.0.0).
LEGACY_KINDS = {
    "io.l5d.nonRetryable5XX": "nonRetryable5XX",
    "io.l5d.retryableRead5XX": "retryableRead5XX",
    "io.l5d.retryableIdempotent5XX": "retryableIdempotent5XX",
}


class _Classifier(Plugin, kw_only=True):
    FAMILY = "classifier"


class _GrpcClassifier(_Classifier, kw_only=True):
    # gRPC status codes counted as success; when given, 0 (OK) must be listed explicitly.
    success_status_codes: Optional[Tuple[int, ...]] = None


def _kind(cls_name: str, tag: str, base: type = _Classifier, fields: Sequence[tuple] = ()) -> type:
    """One classifier kind: these differ only by tag, so they are made rather than written out."""
    return msgspec.defstruct(
        cls_name,
        list(fields),
        bases=(base,),
        tag_field="kind",
        tag=tag,
        kw_only=True,
        frozen=True,
        forbid_unknown_fields=True,
        rename="camel",
        module=__name__,
    )


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


HttpNonRetryable5XX, HttpRetryableRead5XX, HttpRetryableIdempotent5XX, HttpRetryableAll5XX, HttpAllSuccessful = (
    _kind(f"Http{_cap(k)}", f"io.l5d.http.{k}") for k in _STATUS_KINDS
)
H2NonRetryable5XX, H2RetryableRead5XX, H2RetryableIdempotent5XX, H2RetryableAll5XX, H2AllSuccessful = (
    _kind(f"H2{_cap(k)}", f"io.l5d.h2.{k}") for k in _STATUS_KINDS
)
GrpcDefault = _kind("GrpcDefault", "io.l5d.h2.grpc.default", _GrpcClassifier)
GrpcCompliant = _kind("GrpcCompliant", "io.l5d.h2.grpc.compliant", _GrpcClassifier)
GrpcAlwaysRetryable = _kind("GrpcAlwaysRetryable", "io.l5d.h2.grpc.alwaysRetryable", _GrpcClassifier)
GrpcNeverRetryable = _kind("GrpcNeverRetryable", "io.l5d.h2.grpc.neverRetryable", _GrpcClassifier)
GrpcRetryableStatusCodes = _kind(
    "GrpcRetryableStatusCodes",
    "io.l5d.h2.grpc.retryableStatusCodes",
    _GrpcClassifier,
    [("retryable_status_codes", Tuple[int, ...])],
)

HttpClassifier = Union[  # type: ignore[valid-type]
    HttpNonRetryable5XX, HttpRetryableRead5XX, HttpRetryableIdempotent5XX, HttpRetryableAll5XX, HttpAllSuccessful
]
H2Classifier = Union[  # type: ignore[valid-type]
    H2NonRetryable5XX,
    H2RetryableRead5XX,
    H2RetryableIdempotent5XX,
    H2RetryableAll5XX,
    H2AllSuccessful,
    GrpcDefault,
    GrpcCompliant,
    GrpcAlwaysRetryable,
    GrpcNeverRetryable,
    GrpcRetryableStatusCodes,
]

DEFAULT_HTTP_CLASSIFIER = HttpNonRetryable5XX()
DEFAULT_H2_CLASSIFIER = H2NonRetryable5XX()
