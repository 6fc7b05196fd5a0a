"""The root :class:`Config` and the checks that span the whole tree: at least one router, unique
labels, no two listeners on one address, the experimental gate, and which kinds are not built yet.

``BUILT`` lists, per plugin family, the kinds this release runs, and ``REFUSED`` the keys it
parses but does not honour (with the values that ask for what it does not do).
:meth:`Config.unsupported` reports every kind and key the user configured outside them;
``pyproxy run --validate`` accepts such configs and ``pyproxy run`` refuses them, naming each
(:meth:`Config.require_built`). Families absent from ``BUILT`` (classifiers, failure accrual,
backoffs, client/service shapes) are built in every kind the parser accepts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Tuple

import msgspec

from ..errors import ConfigError
from .admin import Admin, Usage
from .base import Base, invalid, tag_of, walk
from .namers import Namer
from .router import Router
from .telemetry import Telemeter

__all__ = ["Config", "BUILT", "REFUSED", "SATISFIED", "ALTERNATIVES", "shown_kind"]

BUILT: Mapping[str, FrozenSet[str]] = {
    "protocol": frozenset({"http"}),
    "namer": frozenset({"io.l5d.fs", "io.l5d.k8s", "io.l5d.k8s.ns"}),
    "identifier": frozenset(
        {"io.l5d.header.token", "io.l5d.methodAndHost", "io.l5d.path", "io.l5d.header", "io.l5d.static", "io.l5d.ingress"}
    ),
    "interpreter": frozenset({"default", "io.l5d.fs", "io.l5d.k8s.configMap", "io.l5d.namerd.http"}),
    # commonMetrics is a pre-0.9 no-op (its job is built in), so there is nothing to build.
    "telemeter": frozenset({"io.l5d.commonMetrics", "io.l5d.prometheus", "io.l5d.recentRequests", "io.l5d.zipkin"}),
    "loadBalancer": frozenset({"p2c", "ewma", "roundRobin", "heap"}),
    "transformer": frozenset({"io.l5d.port", "io.l5d.localhost", "io.l5d.specificHost", "io.l5d.k8s.daemonset",
                              "io.l5d.k8s.localnode", "io.l5d.replace", "io.l5d.const"}),
    "announcer": frozenset(),
    "requestAuthorizer": frozenset(),
    # TLS has no kind; it is reported as the pseudo-kind "tls" so that a config asking for TLS is
    # never served in plain text by a release that cannot do TLS.
    "tls": frozenset(),
    "tracePropagator": frozenset({"io.l5d.default"}),
}


def _set(value: Any) -> bool:
    return value is not None and value != () and value != ""


#: Keys that parse (Linkerd has them) but that ``pyproxy run`` refuses when they ask for something
#: pyproxy does not do: key pattern (``[]`` stands for any list index) -> (does this value ask for
#: it?, why). Every other key of a built kind is honoured; tests/test_config_honesty.py fails when a
#: key is neither read by the runtime nor listed here.
REFUSED: Mapping[str, Tuple[Callable[[Any], bool], str]] = {
    # admin.socketOptions.readTimeoutMs is honoured (a slow request gets 408), as are noDelay: true
    # and reuseAddr: true (what the admin listener does anyway); the rest is not built.
    "$.admin.socketOptions.noDelay": (lambda v: v is False, "noDelay: false of the admin listener is not built"),
    "$.admin.socketOptions.reuseAddr": (lambda v: v is False, "reuseAddr: false of the admin listener is not built"),
    "$.admin.socketOptions.reusePort": (bool, "reusePort of the admin listener is not built"),
    "$.admin.socketOptions.writeTimeoutMs": (_set, "writeTimeoutMs of the admin listener is not built"),
    "$.admin.socketOptions.keepAlive": (_set, "keepAlive of the admin listener is not built"),
    "$.admin.socketOptions.backlog": (_set, "backlog of the admin listener is not built"),
    "$.admin.httpIdentifierPort": (_set, "the admin HTTP identifier port is not built"),
    "$.admin.workerThreads": (_set, "pyproxy runs one event loop per process: use --workers"),
    "$.usage.enabled": (bool, "usage reporting is not built (pyproxy never phones home)"),
    "$.routers[].streamingEnabled": (lambda v: v is False, "buffering whole messages (streamingEnabled: false) is not built"),
    "$.routers[].compressionLevel": (lambda v: v not in (-1, 0), "gzip compression of responses is not built (0 or -1: none)"),
    "$.routers[].servers[].announce": (_set, "announcers are not built"),
    "$.routers[].servers[].label": (_set, "server labels are not built: metrics name a server by its ip/port"),
    "$.routers[].client.loadBalancer.enableProbation": (bool, "load balancer probation is not built"),
    "$.routers[].client.configs[].loadBalancer.enableProbation": (bool, "load balancer probation is not built"),
    "$.routers[].client.forwardClientCert": (bool, "forwarding client certificates needs TLS, which is not built"),
    "$.routers[].client.configs[].forwardClientCert": (bool, "forwarding client certificates needs TLS, which is not built"),
    **{
        f"$.routers[].client{entry}.socketOptions.{key}": (test, f"{key} of upstream connections is not built")
        for entry in ("", ".configs[]")
        for key, test in (("readTimeoutMs", _set), ("reusePort", bool), ("reuseAddr", lambda v: v is False), ("backlog", _set))
    },
}

#: Keys honoured without code of their own: key pattern -> why pyproxy already does what they ask.
SATISFIED: Mapping[str, str] = {
    **{
        f"$.routers[].client{entry}.loadBalancer.maxEffort":
            "the balancer kernels pick only among available endpoints, so the re-picks maxEffort allows are never needed"
        for entry in ("", ".configs[]")
    },
    "$.routers[].tracePropagator": "io.l5d.default (l5d-ctx-trace, l5d-sample) is how pyproxy propagates traces; other kinds are refused",
    "$.usage": "usage reporting is off in pyproxy; enabled: true is refused",
    "$.usage.orgId": "names the reporter in usage reports, which pyproxy never sends",
}

#: Kinds not built that have a built alternative, named where ``run`` refuses them.
ALTERNATIVES: Mapping[str, str] = {
    "io.l5d.namerd": "use io.l5d.namerd.http, namerd's HTTP interface",
    "io.l5d.mesh": "use io.l5d.namerd.http, namerd's HTTP interface",
}

_INDEX = re.compile(r"\[\d+\]")

_WILDCARDS = (ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::"))


def _addr(ip: str) -> object:
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return ip.lower()  # a host name: compared as written


def _overlap(a: object, b: object) -> bool:
    # A wildcard listener holds the port on every address, so it collides with any other on that port.
    return a == b or a in _WILDCARDS or b in _WILDCARDS


class Config(Base, kw_only=True):
    """A whole Linkerd 1.x config.

    Attributes:
        warnings: one line per legacy key or kind accepted while loading (``$.x: legacy key, use y``).
            Set by the loader; a config file cannot contain this key.
    """

    admin: Admin = Admin()
    routers: Tuple[Router, ...]
    namers: Tuple[Namer, ...] = ()
    telemetry: Tuple[Telemeter, ...] = ()
    usage: Usage = Usage()
    warnings: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.routers:
            raise invalid("routers", "at least one router must be specified")
        self._check_labels()
        self._check_listeners()
        self._check_experimental()

    def _check_labels(self) -> None:
        seen: Dict[str, int] = {}
        for i, router in enumerate(self.routers):
            if router.label in seen:
                raise invalid(f"routers[{i}].label", f"duplicate router label {router.label!r}")
            seen[router.label] = i  # type: ignore[index]

    def _check_listeners(self) -> None:
        # Port 0 asks the OS for a free port, so it never collides (tests bind everything on 0).
        taken: List[Tuple[object, int, str]] = []
        admin = self.admin
        for port, key in ((admin.port, "admin.port"), (admin.http_identifier_port, "admin.httpIdentifierPort")):
            if port:
                self._claim(taken, _addr(admin.ip), admin.ip, port, key)
        for i, router in enumerate(self.routers):
            for j, server in enumerate(router.servers):
                if server.port:
                    self._claim(taken, _addr(server.ip), server.ip, server.port, f"routers[{i}].servers[{j}].port")

    @staticmethod
    def _claim(taken: List[Tuple[object, int, str]], addr: object, ip: str, port: int, key: str) -> None:
        for other_addr, other_port, other_key in taken:
            if other_port == port and _overlap(addr, other_addr):
                raise invalid(key, f"server conflict: {ip}:{port} is also used by $.{other_key}")
        taken.append((addr, port, key))

    def _check_experimental(self) -> None:
        for path, obj in walk(self, skip_defaults=True):
            if obj.EXPERIMENTAL and not getattr(obj, "experimental", False):
                tag_field, tag = tag_of(obj)
                raise invalid(
                    f"{path[2:]}.{tag_field}",
                    f"{tag} is experimental and must be explicitly enabled (experimental: true)",
                )

    def to_data(self) -> Dict[str, Any]:
        """The config as plain data in Linkerd's shape (for ``/config.json``), defaults filled in.

        ``warnings`` is left out, so ``from_data(config.to_data())`` loads an equal config.
        """
        data = msgspec.to_builtins(self)
        del data["warnings"]
        return data  # type: ignore[no-any-return]

    def unsupported(self, built: Optional[Mapping[str, FrozenSet[str]]] = None) -> List[Tuple[str, str]]:
        """``(key path, what)`` for every configured kind this release does not run yet, and every
        :data:`REFUSED` key set to a value that asks for what pyproxy does not do.

        Only what the config states counts: defaults the user left alone are never reported.
        The key path names the discriminator (``$.namers[0].kind``, ``$.routers[1].protocol``), or
        the object itself for TLS (``$.routers[0].servers[0].tls``, kind ``"tls"``), or the key.

        Args:
            built: the kinds that are built, per family (default :data:`BUILT`).
        """
        built = BUILT if built is None else built
        found: List[Tuple[str, str]] = []
        for path, obj in walk(self, skip_defaults=True):
            family = obj.FAMILY
            if family in built:
                tag_field, tag = tag_of(obj)
                key, kind = (path, family) if tag is None else (f"{path}.{tag_field}", tag)
                if kind not in built[family]:
                    found.append((key, kind))
            pattern = _INDEX.sub("[]", path)
            for f in msgspec.structs.fields(obj):
                rule = REFUSED.get(f"{pattern}.{f.encode_name}")
                if rule is None:
                    continue
                value = getattr(obj, f.name)
                if value != f.default and rule[0](value):
                    found.append((f"{path}.{f.encode_name}", f"{f.encode_name} {_show(value)} ({rule[1]})"))
        return found

    def require_built(self) -> None:
        """Raise :class:`ConfigError` naming the first configured kind that is not built yet.

        Raises:
            ConfigError: ``$.namers[0].kind: io.l5d.k8s is known but not built yet``.
        """
        for key, kind in self.unsupported():
            raise ConfigError(f"{key}: {shown_kind(kind)} is known but not built yet")


def shown_kind(kind: str) -> str:
    """A kind not built, with its built alternative when there is one."""
    alt = ALTERNATIVES.get(kind)
    return f"{kind} ({alt})" if alt else kind


def _show(value: Any) -> str:
    return json.dumps(msgspec.to_builtins(value), separators=(",", ":"))
