"""``client`` (per concrete destination) and ``service`` (per logical name) blocks, for each protocol
(Linkerd 1.x sections 1.7, 1.8, 2.4, 2.11, 3.1, 3.7).

Both blocks have two shapes, tagged on ``kind``:

* ``io.l5d.global`` (the default; :mod:`.legacy` inserts it when ``kind`` is absent): the parameters
  sit on the block itself and carry Linkerd's defaults;
* ``io.l5d.static``: ``configs: [{prefix: <pattern>, ...parameters}]``. Every entry whose prefix
  matches applies, later entries overriding earlier ones key by key, so an entry's parameters default
  to ``None`` ("not set here") and :meth:`Static.merge` folds the matching entries over the defaults.

The entry struct of each family is derived from its parameter struct by :func:`_entry_of`, so the
two can never disagree about keys.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Iterable, Optional, Tuple, Type, Union

import msgspec
from msgspec import Meta

from .base import Base, NonNegInt, Plugin, Port, PosInt, Session, SocketOptions, check_pattern
from .classifiers import DEFAULT_H2_CLASSIFIER, DEFAULT_HTTP_CLASSIFIER, H2Classifier, HttpClassifier
from .policy import (
    DEFAULT_BUDGET,
    DEFAULT_FAILURE_ACCRUAL,
    DEFAULT_LOAD_BALANCER,
    Budget,
    FailureAccrual,
    HostConnectionPool,
    LoadBalancer,
    Retries,
)
from .tls import ClientTls

__all__ = [
    "HttpClient",
    "H2Client",
    "ThriftClient",
    "MuxClient",
    "HttpService",
    "H2Service",
    "GenericService",
    "IstioAuthorizer",
]


class IstioAuthorizer(Plugin, tag_field="kind", tag="io.l5d.k8s.istio", kw_only=True):
    """The only request authorizer Linkerd shipped (deprecated with Istio's mixer)."""

    FAMILY = "requestAuthorizer"

    mixer_host: str = "istio-mixer"
    mixer_port: Port = 9091


RequestAuthorizer = IstioAuthorizer

# === parameters ===


class ClientParams(Base, kw_only=True):
    """Client parameters of every protocol (3.1)."""

    load_balancer: LoadBalancer = DEFAULT_LOAD_BALANCER
    failure_accrual: FailureAccrual = DEFAULT_FAILURE_ACCRUAL
    host_connection_pool: HostConnectionPool = HostConnectionPool()
    client_session: Session = Session()
    request_attempt_timeout_ms: Optional[PosInt] = None
    fail_fast: bool = False
    requeue_budget: Budget = DEFAULT_BUDGET  # connection-level requeues, no backoff
    tls: Optional[ClientTls] = None
    socket_options: Optional[SocketOptions] = None


class HttpClientParams(ClientParams, kw_only=True):
    """HTTP/1.1 client parameters (2.4)."""

    forward_client_cert: bool = False  # false also removes an incoming x-forwarded-client-cert
    request_authorizers: Tuple[RequestAuthorizer, ...] = ()


class H2ClientParams(ClientParams, kw_only=True):
    """HTTP/2 client parameters (2.11); h2 uses one connection per endpoint."""

    forward_client_cert: bool = False
    request_authorizers: Tuple[RequestAuthorizer, ...] = ()
    window_update_ratio: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.99
    header_table_bytes: Optional[NonNegInt] = None
    initial_stream_window_bytes: PosInt = 65535
    max_frame_bytes: Annotated[int, Meta(ge=16384, le=16777215)] = 16384
    max_header_list_bytes: Optional[PosInt] = None


class ThriftClientParams(ClientParams, kw_only=True):
    """thrift / thriftmux client parameters (1.2.2)."""

    thrift_framed: bool = True
    attempt_t_twitter_upgrade: bool = False


class ServiceParams(Base, kw_only=True):
    """Service parameters of thrift, thriftmux and mux routers (3.7)."""

    total_timeout_ms: Optional[PosInt] = None
    retries: Retries = Retries()
    response_classifier: Optional[HttpClassifier] = None  # None: the protocol's own default


class HttpServiceParams(ServiceParams, kw_only=True):
    """HTTP service parameters."""

    response_classifier: HttpClassifier = DEFAULT_HTTP_CLASSIFIER


class RetryBufferSize(Base, kw_only=True):
    """h2: how much of each stream is kept to replay it; longer streams are not retried."""

    request_bytes: NonNegInt = 16383
    response_bytes: NonNegInt = 16383


class H2ServiceParams(ServiceParams, kw_only=True):
    """h2 service parameters."""

    response_classifier: H2Classifier = DEFAULT_H2_CLASSIFIER
    classification_timeout_ms: PosInt = 100  # wait for the stream's end before classifying
    retry_buffer_size: RetryBufferSize = RetryBufferSize()


# === the two shapes ===


class Entry(Base, kw_only=True):
    """One ``configs[]`` entry of a static block: a prefix pattern and the parameters it sets."""

    prefix: str

    def __post_init__(self) -> None:
        check_pattern(self.prefix, "prefix")


def _entry_of(params: Type[Base], name: str) -> Type[Entry]:
    """``params`` with every field optional (default None: not set by this entry), plus ``prefix``."""
    fields = [
        (f.name, Optional[f.type], msgspec.field(default=None, name=f.encode_name))  # type: ignore[index]
        for f in msgspec.structs.fields(params)
    ]
    return msgspec.defstruct(
        name, fields, bases=(Entry,), kw_only=True, frozen=True, forbid_unknown_fields=True, rename="camel",
        module=__name__,
    )


class Static(Base, kw_only=True):
    """Shared behaviour of ``kind: io.l5d.static`` blocks."""

    GLOBAL: ClassVar[type]  # the io.l5d.global struct of the same family

    def merge(self, entries: Iterable[Entry]) -> Base:
        """The parameters that apply when ``entries`` (the matching ones, in order) all apply.

        Later entries override earlier ones key by key; keys no entry sets keep their defaults.
        """
        changes = {}
        for entry in entries:
            for f in msgspec.structs.fields(entry):
                value = getattr(entry, f.name)
                if f.name != "prefix" and value is not None:
                    changes[f.name] = value
        return self.GLOBAL(**changes)


HttpClientEntry = _entry_of(HttpClientParams, "HttpClientEntry")
H2ClientEntry = _entry_of(H2ClientParams, "H2ClientEntry")
ThriftClientEntry = _entry_of(ThriftClientParams, "ThriftClientEntry")
MuxClientEntry = _entry_of(ClientParams, "MuxClientEntry")
HttpServiceEntry = _entry_of(HttpServiceParams, "HttpServiceEntry")
H2ServiceEntry = _entry_of(H2ServiceParams, "H2ServiceEntry")
GenericServiceEntry = _entry_of(ServiceParams, "GenericServiceEntry")


class HttpGlobalClient(HttpClientParams, tag_field="kind", tag="io.l5d.global", kw_only=True):
    """One set of HTTP client parameters for every destination."""


class HttpStaticClient(Static, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """HTTP client parameters per client-name prefix."""

    GLOBAL = HttpGlobalClient
    configs: Tuple[HttpClientEntry, ...]  # type: ignore[valid-type]


class H2GlobalClient(H2ClientParams, tag_field="kind", tag="io.l5d.global", kw_only=True):
    """One set of h2 client parameters for every destination."""


class H2StaticClient(Static, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """h2 client parameters per client-name prefix."""

    GLOBAL = H2GlobalClient
    configs: Tuple[H2ClientEntry, ...]  # type: ignore[valid-type]


class ThriftGlobalClient(ThriftClientParams, tag_field="kind", tag="io.l5d.global", kw_only=True):
    """One set of thrift client parameters for every destination."""


class ThriftStaticClient(Static, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """thrift client parameters per client-name prefix."""

    GLOBAL = ThriftGlobalClient
    configs: Tuple[ThriftClientEntry, ...]  # type: ignore[valid-type]


class MuxGlobalClient(ClientParams, tag_field="kind", tag="io.l5d.global", kw_only=True):
    """One set of mux client parameters for every destination."""


class MuxStaticClient(Static, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """mux client parameters per client-name prefix."""

    GLOBAL = MuxGlobalClient
    configs: Tuple[MuxClientEntry, ...]  # type: ignore[valid-type]


class HttpGlobalService(HttpServiceParams, tag_field="kind", tag="io.l5d.global", kw_only=True):
    """One set of HTTP service parameters for every logical name."""


class HttpStaticService(Static, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """HTTP service parameters per service-name prefix."""

    GLOBAL = HttpGlobalService
    configs: Tuple[HttpServiceEntry, ...]  # type: ignore[valid-type]


class H2GlobalService(H2ServiceParams, tag_field="kind", tag="io.l5d.global", kw_only=True):
    """One set of h2 service parameters for every logical name."""


class H2StaticService(Static, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """h2 service parameters per service-name prefix."""

    GLOBAL = H2GlobalService
    configs: Tuple[H2ServiceEntry, ...]  # type: ignore[valid-type]


class GenericGlobalService(ServiceParams, tag_field="kind", tag="io.l5d.global", kw_only=True):
    """One set of thrift/mux service parameters for every logical name."""


class GenericStaticService(Static, tag_field="kind", tag="io.l5d.static", kw_only=True):
    """thrift/mux service parameters per service-name prefix."""

    GLOBAL = GenericGlobalService
    configs: Tuple[GenericServiceEntry, ...]  # type: ignore[valid-type]


HttpClient = Union[HttpGlobalClient, HttpStaticClient]
H2Client = Union[H2GlobalClient, H2StaticClient]
ThriftClient = Union[ThriftGlobalClient, ThriftStaticClient]
MuxClient = Union[MuxGlobalClient, MuxStaticClient]
HttpService = Union[HttpGlobalService, HttpStaticService]
H2Service = Union[H2GlobalService, H2StaticService]
GenericService = Union[GenericGlobalService, GenericStaticService]
