"""The pass over plain data before typing: Linkerd's legacy key names and kinds, default kinds, and
the checks that depend on whether a key was written at all.

* Legacy keys and kinds (linkerd1.md section 0, "Legacy key names") are accepted, rewritten to the
  current key where one exists, and recorded as warnings (``$.routers[0].baseDtab: legacy key, use
  dtab``). Removed keys with no successor are dropped with a warning saying so.
* ``client``/``service`` without ``kind`` are ``io.l5d.global``, ``interpreter`` without ``kind`` is
  ``default``, ``loadBalancer`` without ``kind`` is ``p2c``: msgspec tags cannot default.
* ``streamingEnabled: false`` with ``streamAfterContentLengthKB`` is rejected even when the number
  equals the default, so the check needs the raw keys.
* ``kind`` is required in one-kind families (announcers, request authorizers): msgspec only insists
  on a tag inside a union of several structs.

Anything of an unexpected shape is left alone for msgspec to report with its path. Every rewrite
keeps list positions, so error paths still point at what the user wrote.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import msgspec

from ..errors import ConfigError
from . import classifiers, identifiers
from .base import join
from .messages import format_error
from .telemetry import Telemeter

__all__ = ["normalise"]

Warn = Callable[[str, str], None]

# HTTP router keys removed without a successor (linkerd1.md 2.3).
_REMOVED_HTTP_KEYS = {
    "maxRequestKB": "removed in Linkerd 1.7.0 (bodies stream past streamAfterContentLengthKB); ignored",
    "maxResponseKB": "removed in Linkerd 1.7.0 (bodies stream past streamAfterContentLengthKB); ignored",
    "maxChunkKB": "removed in Linkerd 1.6.0 (chunks are streamed); ignored",
}


def normalise(data: Any) -> List[str]:
    """Rewrite ``data`` (the parsed config) in place; return the warnings, one line each.

    Raises:
        ConfigError: a legacy key that conflicts with its successor, or a raw-key rule.
    """
    warnings: List[str] = []

    def warn(path: str, message: str) -> None:
        warnings.append(f"{path}: {message}")

    if not isinstance(data, dict):
        return warnings
    if "warnings" in data:  # Config.warnings is filled by the loader, never by the file
        raise ConfigError("$.warnings: unknown key")
    _move_tracers(data, data, "$", warn)
    for i, telemeter in enumerate(_items(data.get("telemetry"))):
        if isinstance(telemeter, dict) and telemeter.get("kind") == "io.l5d.commonMetrics":
            warn(f"$.telemetry[{i}].kind", "legacy kind io.l5d.commonMetrics, metrics are built in; ignored")
    for i, router in enumerate(_items(data.get("routers"))):
        if isinstance(router, dict):
            _router(data, router, f"$.routers[{i}]", warn)
    return warnings


def _items(value: Any) -> List[Any]:
    return value if isinstance(value, list) else []


def _rename(obj: Dict[str, Any], old: str, new: str, path: str, warn: Warn) -> None:
    if old not in obj:
        return
    if new in obj:
        raise ConfigError(f"{join(path, old)}: legacy key conflicts with {new}")
    obj[new] = obj.pop(old)
    warn(join(path, old), f"legacy key, use {new}")


def _move_tracers(root: Dict[str, Any], obj: Dict[str, Any], path: str, warn: Warn) -> None:
    """Pre-0.9 ``tracers:`` (top level or router): each entry becomes a telemeter."""
    if "tracers" not in obj:
        return
    tracers, tpath = obj.pop("tracers"), join(path, "tracers")
    warn(tpath, "legacy key, use telemetry (kind io.l5d.zipkin)")
    if tracers is None:
        return
    if not isinstance(tracers, list):
        raise ConfigError(f"{tpath}: Expected array, got {type(tracers).__name__}")
    for i, entry in enumerate(tracers):
        try:  # checked here so an error names the entry where it was written
            msgspec.convert(entry, Telemeter, strict=True)  # type: ignore[arg-type]
        except msgspec.ValidationError as e:
            raise ConfigError(format_error(e, entry, Telemeter, f"{tpath}[{i}]")) from None
    telemetry = root.setdefault("telemetry", [])
    if isinstance(telemetry, list):
        telemetry.extend(tracers)


def _router(root: Dict[str, Any], r: Dict[str, Any], path: str, warn: Warn) -> None:
    protocol = r.get("protocol")
    _rename(r, "baseDtab", "dtab", path, warn)
    _move_tracers(root, r, path, warn)
    if "loggers" in r:
        r.pop("loggers")
        warn(join(path, "loggers"), "legacy key, use client.requestAuthorizers; ignored")
    if "timeoutMs" in r:
        _router_timeout(r, path, warn)
    if protocol == "http":
        for key, why in _REMOVED_HTTP_KEYS.items():
            if key in r:
                r.pop(key)
                warn(join(path, key), f"legacy key, {why}")
        if r.get("streamingEnabled") is False and "streamAfterContentLengthKB" in r:
            raise ConfigError(
                f"{path}.streamAfterContentLengthKB: cannot be combined with streamingEnabled: false"
            )
    _identifiers(r.get("identifier"), join(path, "identifier"), warn)
    _require_kind(r.get("announcers"), join(path, "announcers"))
    if isinstance(r.get("interpreter"), dict):
        r["interpreter"].setdefault("kind", "default")
    _block(r, "client", path, lambda params, p: _client_params(params, p, warn))
    family = "h2" if protocol == "h2" else "http"
    _block(r, "service", path, lambda params, p: _service_params(params, p, family, warn))


def _router_timeout(r: Dict[str, Any], path: str, warn: Warn) -> None:
    """Router ``timeoutMs`` (removed in 1.0) became the service's ``totalTimeoutMs``."""
    value = r.pop("timeoutMs")
    service = r.setdefault("service", {})
    if isinstance(service, dict) and service.get("kind", "io.l5d.global") == "io.l5d.global":
        if "totalTimeoutMs" in service:
            raise ConfigError(f"{path}.timeoutMs: legacy key conflicts with service.totalTimeoutMs")
        service["totalTimeoutMs"] = value
        warn(f"{path}.timeoutMs", "legacy key, use service.totalTimeoutMs")
    else:
        warn(f"{path}.timeoutMs", "legacy key, use service.totalTimeoutMs; ignored (static service)")


def _identifiers(value: Any, path: str, warn: Warn) -> None:
    entries = [(value, path)] if isinstance(value, dict) else [(v, f"{path}[{i}]") for i, v in enumerate(_items(value))]
    for ident, ipath in entries:
        if isinstance(ident, dict) and ident.get("kind") in identifiers.LEGACY_KINDS:
            old = ident["kind"]
            ident["kind"] = identifiers.LEGACY_KINDS[old]
            warn(f"{ipath}.kind", f"legacy kind {old}, use {ident['kind']}")


def _block(r: Dict[str, Any], key: str, path: str, params: Callable[[Dict[str, Any], str], None]) -> None:
    """A client/service block: default its kind, then rewrite each parameter set it holds."""
    block = r.get(key)
    if not isinstance(block, dict):
        return
    bpath = join(path, key)
    kind = block.setdefault("kind", "io.l5d.global")
    if kind == "io.l5d.global":
        params(block, bpath)
    elif kind == "io.l5d.static":
        for i, entry in enumerate(_items(block.get("configs"))):
            if isinstance(entry, dict):
                params(entry, f"{bpath}.configs[{i}]")


def _require_kind(entries: Any, path: str) -> None:
    for i, entry in enumerate(_items(entries)):
        if isinstance(entry, dict) and "kind" not in entry:
            raise ConfigError(f"{path}[{i}].kind: missing required key")


def _client_params(params: Dict[str, Any], path: str, warn: Warn) -> None:
    _require_kind(params.get("requestAuthorizers"), join(path, "requestAuthorizers"))
    lb = params.get("loadBalancer")
    if isinstance(lb, dict):
        lb.setdefault("kind", "p2c")
    tls = params.get("tls")
    if isinstance(tls, dict) and "kind" in tls:
        params["tls"] = _legacy_client_tls(tls, join(path, "tls"), warn)


def _legacy_client_tls(tls: Dict[str, Any], path: str, warn: Warn) -> Dict[str, Any]:
    """Pre-1.0 ``tls: {kind: ...}`` client shapes, rewritten to the flat 1.x object."""
    kind = tls.get("kind")
    rest = {k: v for k, v in tls.items() if k not in ("kind", "caCertPath")}
    if "caCertPath" in tls:
        rest["trustCerts"] = [tls["caCertPath"]]
    if kind == "io.l5d.noValidation":
        rest["disableValidation"] = True
    elif kind == "io.l5d.static":
        pass
    elif kind == "io.l5d.boundPath":
        # Its per-name common names need the client itself to become io.l5d.static; not guessed.
        raise ConfigError(
            f"{path}.kind: legacy TLS kind io.l5d.boundPath is not supported; use client kind "
            "io.l5d.static with a tls.commonName per prefix"
        )
    else:
        return tls  # not a legacy shape: msgspec reports `kind` as an unknown key
    warn(f"{path}.kind", f"legacy TLS kind {kind}, use commonName/trustCerts/disableValidation")
    return rest


def _service_params(params: Dict[str, Any], path: str, family: str, warn: Warn) -> None:
    classifier = params.get("responseClassifier")
    if isinstance(classifier, dict) and classifier.get("kind") in classifiers.LEGACY_KINDS:
        old = classifier["kind"]
        classifier["kind"] = f"io.l5d.{family}.{classifiers.LEGACY_KINDS[old]}"
        warn(f"{path}.responseClassifier.kind", f"legacy kind {old}, use {classifier['kind']}")

