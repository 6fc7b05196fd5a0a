"""Router configs (``routers[]``), a tagged union on ``protocol`` (Linkerd 1.x sections 1.2, 1.6, 2.3,
2.9, 2.11). ``http`` is complete; ``h2``, ``thrift``, ``thriftmux`` and ``mux`` parse their keys so
real configs validate, and are reported by :meth:`Config.unsupported` until they are built.

``label`` defaults to the protocol, ``dstPrefix`` to ``/svc``. ``dtab`` and ``dstPrefix`` are parsed
at load (Finagle's messages); the structs keep the text, :meth:`read_dtab` gives the parsed value.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional, Tuple, Union

import msgspec
from msgspec import Meta

from ..naming.dtab import Dtab
from ..naming.path import Path
from .base import Base, NonNegInt, Plugin, PosInt, check_dtab, check_path, invalid
from .client import GenericService, H2Client, H2Service, HttpClient, HttpService, MuxClient, ThriftClient
from .client import GenericGlobalService, H2GlobalClient, H2GlobalService, HttpGlobalClient, HttpGlobalService
from .client import MuxGlobalClient, ThriftGlobalClient
from .identifiers import DEFAULT_H2_IDENTIFIER, DEFAULT_HTTP_IDENTIFIER, H2Identifier, HttpIdentifier
from .interpreters import DEFAULT_INTERPRETER, Interpreter
from .namers import ZkAddrs
from .server import H2Server, HttpServer, MuxServer, ThriftMuxServer, ThriftServer

__all__ = [
    "BindingCache",
    "ServersetsAnnouncer",
    "DefaultPropagator",
    "DtabBaggage",
    "ZipkinPropagator",
    "HttpRouter",
    "H2Router",
    "ThriftRouter",
    "ThriftMuxRouter",
    "MuxRouter",
    "Router",
]


class BindingCache(Base, kw_only=True):
    """Sizes of the router's name caches."""

    paths: PosInt = 1000
    trees: PosInt = 1000
    bounds: PosInt = 1000
    clients: PosInt = 1000
    idle_ttl_secs: PosInt = 600  # evict idle services and clients after this long


class ServersetsAnnouncer(Plugin, tag_field="kind", tag="io.l5d.serversets", kw_only=True):
    """Register servers' ``announce`` names in ZooKeeper ServerSets (the only Linkerd announcer)."""

    FAMILY = "announcer"

    prefix: str = "/io.l5d.serversets"  # announces names under /#/<prefix>
    zk_addrs: ZkAddrs
    path_prefix: str = "/discovery"

    def __post_init__(self) -> None:
        check_path(self.prefix, "prefix")
        check_path(self.path_prefix, "pathPrefix")


class DefaultPropagator(Plugin, tag_field="kind", tag="io.l5d.default", kw_only=True):
    """Linkerd's own trace headers: l5d-ctx-trace, l5d-sample in; l5d-ctx-trace, l5d-reqid out."""

    FAMILY = "tracePropagator"


class ZipkinPropagator(Plugin, tag_field="kind", tag="io.l5d.zipkin", kw_only=True):
    """B3 headers (x-b3-traceid, x-b3-spanid, ...)."""

    FAMILY = "tracePropagator"


TracePropagator = Union[DefaultPropagator, ZipkinPropagator]
DEFAULT_PROPAGATOR = DefaultPropagator()

Label = Annotated[str, Meta(min_length=1)]


class _Router(Plugin, kw_only=True):
    """Keys every protocol's router has (1.2)."""

    FAMILY = "protocol"

    label: Optional[Label] = None  # set to the protocol when absent (see __post_init__)
    dtab: str = ""
    dst_prefix: str = "/svc"
    interpreter: Interpreter = DEFAULT_INTERPRETER
    binding_timeout_ms: PosInt = 10000  # binding slower than this fails the request (503)
    binding_cache: BindingCache = BindingCache()
    announcers: Tuple[ServersetsAnnouncer, ...] = ()
    originator: bool = False  # first hop of linker-to-linker; exported as a gauge

    def __post_init__(self) -> None:
        if self.label is None:
            msgspec.structs.force_setattr(self, "label", self.__struct_config__.tag)
        check_dtab(self.dtab, "dtab")
        check_path(self.dst_prefix, "dstPrefix")

    def read_dtab(self) -> Dtab:
        """The router dtab, parsed (it was checked at load, so this does not fail)."""
        return Dtab.read(self.dtab)

    def read_dst_prefix(self) -> Path:
        """``dstPrefix`` as a path."""
        return Path.read(self.dst_prefix)


# W3C baggage keys are tokens (RFC 9110 §5.6.2); they also name the uberctx-/ot-baggage- fields
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
Carrier = Literal["baggage", "uberctx", "ot-baggage"]


class DtabBaggage(Base, kw_only=True):
    """``dtabBaggage`` (a pyproxy extension, not in Linkerd 1.x): read a dtab override from a member
    of the context apps already propagate (W3C ``baggage``, Jaeger ``uberctx-<key>``, OpenTracing
    ``ot-baggage-<key>``) when no ``l5d-dtab``/``l5d-ctx-dtab`` came, and write the effective
    override into each of them on the way out (pyproxy/http/baggage.py)."""

    key: str = "l5d-dtab"
    carriers: Annotated[Tuple[Carrier, ...], Meta(min_length=1)] = ("baggage",)

    def __post_init__(self) -> None:
        if not _TOKEN.match(self.key):
            raise invalid("key", f"{self.key!r} is not a baggage key (an HTTP token: letters, digits, !#$%&'*+-.^_`|~)")
        for i, c in enumerate(self.carriers):
            if c in self.carriers[:i]:
                raise invalid(f"carriers[{i}]", f"{c} is listed twice")


# twitter-util's logging Policy.parse: Never, Hourly, Daily, Weekly(n), or a size such as 3.megabytes.
_ROLL_POLICY = re.compile(
    r"(never|hourly|daily|weekly\(\d+\)|\d+(\.\d+)?\.(byte|kilobyte|megabyte|gigabyte|terabyte)s?)\Z", re.I
)


def _check_roll_policy(value: str, key: str) -> None:
    if not _ROLL_POLICY.match(value):
        expected = "never, hourly, daily, weekly(n) or a size like 3.megabytes"
        raise invalid(key, f"unknown roll policy {value!r} (expected {expected})")
    weekly = re.match(r"weekly\((\d+)\)", value, re.I)
    if weekly and not 1 <= int(weekly.group(1)) <= 7:
        raise invalid(key, f"{value}: the day must be 1 (Sunday) to 7 (Saturday)")


class HttpRouter(_Router, tag_field="protocol", tag="http", kw_only=True):
    """An HTTP/1.1 router (2.3)."""

    servers: Tuple[HttpServer, ...] = ()  # none: a router without a listener (Linkerd allows it)
    identifier: Union[HttpIdentifier, Annotated[Tuple[HttpIdentifier, ...], Meta(min_length=1)], None] = None
    client: HttpClient = HttpGlobalClient()
    service: HttpService = HttpGlobalService()
    http_access_log: Optional[str] = None
    http_access_log_roll_policy: str = "never"
    http_access_log_append: bool = True
    http_access_log_rotate_count: Annotated[int, Meta(ge=-1)] = -1  # -1: keep every rotated file
    streaming_enabled: bool = True
    stream_after_content_length_kb: NonNegInt = msgspec.field(default=5, name="streamAfterContentLengthKB")
    max_headers_kb: PosInt = msgspec.field(default=8, name="maxHeadersKB")
    max_initial_line_kb: PosInt = msgspec.field(default=4, name="maxInitialLineKB")
    max_err_response_kb: NonNegInt = msgspec.field(default=5120, name="maxErrResponseKB")
    compression_level: Annotated[int, Meta(ge=-1, le=9)] = -1  # -1: textual types at level 6
    trace_propagator: TracePropagator = DEFAULT_PROPAGATOR
    # pyproxy extension (not in Linkerd 1.x): overrides carried in baggage; None: off
    dtab_baggage: Optional[DtabBaggage] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_roll_policy(self.http_access_log_roll_policy, "httpAccessLogRollPolicy")

    def identifiers(self) -> Tuple[HttpIdentifier, ...]:  # type: ignore[valid-type]
        """The identifiers in the order they are tried (the default: io.l5d.header.token on Host)."""
        return _as_tuple(self.identifier, DEFAULT_HTTP_IDENTIFIER)


class H2Router(_Router, tag_field="protocol", tag="h2", kw_only=True):
    """An HTTP/2 router (2.11)."""

    servers: Tuple[H2Server, ...] = ()
    identifier: Union[H2Identifier, Annotated[Tuple[H2Identifier, ...], Meta(min_length=1)], None] = None
    client: H2Client = H2GlobalClient()
    service: H2Service = H2GlobalService()
    h2_access_log: Optional[str] = None
    h2_access_log_roll_policy: str = "never"
    h2_access_log_append: bool = True
    h2_access_log_rotate_count: Annotated[int, Meta(ge=-1)] = -1
    trace_propagator: TracePropagator = DEFAULT_PROPAGATOR

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_roll_policy(self.h2_access_log_roll_policy, "h2AccessLogRollPolicy")

    def identifiers(self) -> Tuple[H2Identifier, ...]:  # type: ignore[valid-type]
        """The identifiers in the order they are tried (the default: io.l5d.header.token on :authority)."""
        return _as_tuple(self.identifier, DEFAULT_H2_IDENTIFIER)


ThriftProtocol = Literal["binary", "compact"]


class ThriftRouter(_Router, tag_field="protocol", tag="thrift", kw_only=True):
    """A thrift router: names are ``dstPrefix[/dest][/method]``."""

    servers: Tuple[ThriftServer, ...] = ()
    client: ThriftClient = ThriftGlobalClient()
    service: GenericService = GenericGlobalService()
    thrift_method_in_dst: bool = False
    thrift_protocol: ThriftProtocol = "binary"


class ThriftMuxRouter(_Router, tag_field="protocol", tag="thriftmux", kw_only=True):
    """A thriftmux router (experimental in Linkerd)."""

    EXPERIMENTAL = True

    servers: Tuple[ThriftMuxServer, ...] = ()
    client: ThriftClient = ThriftGlobalClient()
    service: GenericService = GenericGlobalService()
    thrift_method_in_dst: bool = False
    thrift_protocol: ThriftProtocol = "binary"


class MuxRouter(_Router, tag_field="protocol", tag="mux", kw_only=True):
    """A Finagle mux router (dtabs and trace contexts travel natively)."""

    servers: Tuple[MuxServer, ...] = ()
    client: MuxClient = MuxGlobalClient()
    service: GenericService = GenericGlobalService()


Router = Union[HttpRouter, H2Router, ThriftRouter, ThriftMuxRouter, MuxRouter]


def _as_tuple(identifier: object, default: object) -> tuple:
    if identifier is None:
        return (default,)
    if isinstance(identifier, tuple):
        return identifier
    return (identifier,)

