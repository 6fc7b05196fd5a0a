"""Builds what a config's discovery asks for: namers, their transformers, each router's interpreter.

One :class:`Discovery` per process: the configured namers (``io.l5d.fs``, ``io.l5d.k8s``,
``io.l5d.k8s.ns``) with their ``transformers``; per router, an interpreter (``default``, with its
``transformers``); the Kubernetes API clients they share (one per API address); and the tasks that
keep them current (:meth:`Discovery.tasks`). Config errors that only show at build time (an
environment variable a transformer needs) are :class:`~pyproxy.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple

from ..config.base import tag_of
from ..discovery.namers.fs import FsNamer
from ..discovery.transformers.base import Transformer, TransformingInterpreter, TransformingNamer
from ..discovery.transformers.perhost import PortTransformer, local_ips, localhost, specific_host
from ..discovery.transformers.replace import ConstTransformer, ReplaceTransformer
from ..errors import ConfigError, PyproxyError
from ..naming.binding import ConfiguredNamersInterpreter, DefaultInterpreter
from ..naming.namer import Namer
from ..naming.path import Path
from ..naming.system import SystemNamer, literal_ip

if TYPE_CHECKING:  # imported when a config asks for Kubernetes: OpenSSL costs memory
    from ..discovery.k8s.api import KubeApi
    from ..discovery.namers.k8s import K8sNamer

__all__ = ["Discovery"]


def _path(text: str) -> Path:
    return Path.read(text if text.startswith("/") else "/" + text)


class Discovery:
    """The namers and interpreters of one config (see the module documentation)."""

    def __init__(self, config: Any, system: SystemNamer, env: Optional[Mapping[str, str]] = None,
                 rng: Optional[random.Random] = None) -> None:
        self.env = os.environ if env is None else env
        self.system = system
        self.rng = rng or random.Random()
        self.namers: List[Tuple[Path, Namer]] = []  # as the interpreter consults them (prefix, namer)
        self.fs_namers: List[FsNamer] = []
        self.k8s_namers: List[Tuple[str, "K8sNamer"]] = []  # (prefix shown, namer): admin state, metrics
        self._apis: Dict[Tuple[str, int, bool], "KubeApi"] = {}
        self._gateway_namers: Dict[Tuple[str, int], "K8sNamer"] = {}
        self._versioned: List[Namer] = [system]  # /$/inet names can be forgotten (evicted) too
        self._ingresses: Dict[Tuple[Any, ...], Any] = {}
        self._config_maps: List[Any] = []
        self.namerd_interpreters: Dict[int, Any] = {}  # router index -> its io.l5d.namerd.http interpreter
        for i, n in enumerate(config.namers):
            self._add_namer(i, n)

    # === namers ===

    def _api(self, host: str, port: int, in_cluster: bool = False) -> "KubeApi":
        from ..discovery.k8s.api import KubeApi

        key = (host, port, in_cluster)
        api = self._apis.get(key)
        if api is None:
            if in_cluster:
                api = KubeApi.in_cluster()
            else:
                shown = f"[{host}]" if ":" in host else host
                api = KubeApi(f"http://{shown}:{port}")
            self._apis[key] = api
        return api

    def _add_namer(self, index: int, cfg: Any) -> None:
        kind = tag_of(cfg)[1]
        key = f"$.namers[{index}]"
        prefix = Path.read("/#") + _path(cfg.prefix)
        namer: Namer
        if kind == "io.l5d.fs":
            fs = FsNamer(cfg.root_dir, prefix)
            self.fs_namers.append(fs)
            namer = fs
        elif kind in ("io.l5d.k8s", "io.l5d.k8s.ns"):
            from ..discovery.namers.k8s import K8sNamer

            namespace = None
            if kind == "io.l5d.k8s.ns":
                namespace = self.env.get(cfg.env_var)
                if not namespace:
                    raise ConfigError(f"{key}.envVar: io.l5d.k8s.ns needs the environment variable {cfg.env_var} (the namespace)")
            in_cluster = getattr(cfg, "in_cluster", False)
            k8s = K8sNamer(self._api(cfg.host, cfg.port, in_cluster), prefix, cfg.label_selector, namespace,
                           getattr(cfg, "endpoint_slices", False), rng=random.Random(self.rng.getrandbits(64)))
            self.k8s_namers.append((prefix.show, k8s))
            namer = k8s
        else:
            raise ConfigError(f"{key}.kind: {kind} is known but not built yet")
        self._versioned.append(namer)
        if cfg.transformers:
            namer = TransformingNamer(namer, self._transformers(cfg.transformers, f"{key}.transformers"))
        self.namers.append((prefix, namer))

    def versions(self) -> int:
        """Changes whenever a namer's answers may have changed (bind caches compare it)."""
        return sum(n.version or 0 for n in self._versioned)

    # === interpreters ===

    def interpreter(self, router_index: int, cfg: Any) -> Any:
        """A router's interpreter (``default``, ``io.l5d.fs``, ``io.l5d.k8s.configMap``: the configured
        namers; the dtab an interpreter reads from a file or a ConfigMap is the router's business),
        with its transformers."""
        base: Any = ConfiguredNamersInterpreter(self.namers, self.system)
        if cfg is not None and tag_of(cfg)[1] == "io.l5d.namerd.http":
            base = self._namerd_http(router_index, cfg)
        transformers = getattr(cfg, "transformers", ()) if cfg is not None else ()
        if not transformers:
            return base
        return TransformingInterpreter(base, self._transformers(transformers, f"$.routers[{router_index}].interpreter.transformers"))

    def _namerd_http(self, router_index: int, cfg: Any) -> Any:
        """An ``io.l5d.namerd.http`` interpreter: ``dst`` bound by this proxy's namers and ``/$/``."""
        from ..discovery.interpreters.namerd import NamerdHttpInterpreter
        from ..naming.dtab import Dtab
        from ..naming.name import AddrBound
        from ..naming.tree import Leaf, Union

        dst = Path.read(cfg.dst)
        local = ConfiguredNamersInterpreter(self.namers, self.system)

        def addresses() -> List[Tuple[str, int]]:
            try:
                tree = local.bind(Dtab(), dst)
            except PyproxyError:
                return []
            out: List[Tuple[str, int]] = []
            stack = [tree]
            while stack:
                t = stack.pop()
                if type(t) is Leaf:
                    state = t.value.addr.value  # type: ignore[attr-defined]
                    if isinstance(state, AddrBound):
                        out += [(a.host, a.port) for a in state.addresses if (a.host, a.port) not in out]
                elif type(t) is Union:
                    stack += [w.tree for w in t.weighted]  # type: ignore[attr-defined]
            return sorted(out)

        interp = NamerdHttpInterpreter(addresses, cfg.dst, cfg.namespace, cfg.retry.base_seconds, cfg.retry.max_seconds,
                                       rng=random.Random(self.rng.getrandbits(64)))
        self.namerd_interpreters[router_index] = interp
        self._versioned.append(interp)  # type: ignore[arg-type]
        return interp

    # === transformers ===

    def _transformers(self, cfgs: Any, key: str) -> List[Transformer]:
        made = [self._transformer(c, f"{key}[{i}]") for i, c in enumerate(cfgs)]
        self._versioned.extend(made)  # type: ignore[arg-type] # evictions move their versions
        return made

    def _transformer(self, cfg: Any, key: str) -> Transformer:
        kind = tag_of(cfg)[1]

        def prefix(default: str) -> Path:
            return _path(cfg.prefix) if cfg.prefix else Path.read(default)

        if kind == "io.l5d.port":
            return PortTransformer(prefix(f"/io.l5d.port/{cfg.port}"), cfg.port)
        if kind == "io.l5d.localhost":
            return localhost(prefix("/io.l5d.localhost"), local_ips())
        if kind == "io.l5d.specificHost":
            ip = literal_ip(cfg.host) or _resolve(cfg.host, key)
            return specific_host(prefix("/io.l5d.specificHost"), ip)
        if kind == "io.l5d.k8s.daemonset":
            from ..discovery.transformers.k8s import DaemonSetTransformer

            namer = self._gateway_namer(cfg.k8s_host, cfg.k8s_port)
            return DaemonSetTransformer(prefix(f"/io.l5d.k8s.daemonset/{cfg.namespace}/{cfg.port}/{cfg.service}"),
                                        namer, cfg.namespace, cfg.port, cfg.service, cfg.host_network)
        if kind == "io.l5d.k8s.localnode":
            from ..discovery.transformers.k8s import localnode

            return localnode(prefix("/io.l5d.k8s.localnode"), cfg.host_network, self.env, key)
        if kind in ("io.l5d.replace", "io.l5d.const"):
            cls = ReplaceTransformer if kind == "io.l5d.replace" else ConstTransformer
            return cls(prefix(f"/{kind}"), Path.read(cfg.path), DefaultInterpreter(self.system))
        raise ConfigError(f"{key}.kind: {kind} is known but not built yet")

    def _gateway_namer(self, host: str, port: int) -> "K8sNamer":
        """The namer of a DaemonSet transformer's API (ids without a prefix: only its address sets are used)."""
        from ..discovery.namers.k8s import K8sNamer

        namer = self._gateway_namers.get((host, port))
        if namer is None:
            namer = self._gateway_namers[(host, port)] = K8sNamer(self._api(host, port), Path.EMPTY,  # type: ignore[attr-defined]
                                                                  rng=random.Random(self.rng.getrandbits(64)))
        return namer

    # === running ===

    def ingress_rules(self, cfg: Any) -> Any:
        """The Ingress rules an ``io.l5d.ingress`` identifier reads (one watch per distinct setup)."""
        from ..discovery.k8s.ingress import IngressRules

        key = (cfg.host, cfg.port, cfg.namespace, cfg.ingress_class_annotation, cfg.ignore_default_backends)
        rules = self._ingresses.get(key)
        if rules is None:
            rules = self._ingresses[key] = IngressRules(self._api(cfg.host, cfg.port), cfg.namespace,
                                                        cfg.ingress_class_annotation, cfg.ignore_default_backends)
        return rules

    def config_map_dtab(self, cfg: Any, on_dtab: Callable[[Any], None]) -> Any:
        """The dtab source of an ``io.l5d.k8s.configMap`` interpreter (its changes go to ``on_dtab``)."""
        from ..discovery.interpreters.configmap import ConfigMapDtab

        source = ConfigMapDtab(self._api(cfg.host, cfg.port), cfg.namespace, cfg.name, cfg.filename, on_dtab)
        self._config_maps.append(source)
        return source

    async def aclose(self) -> None:
        for api in self._apis.values():
            await api.aclose()

    def tasks(self) -> List[Callable[..., Awaitable[None]]]:
        """What must run for the namers to stay current (started with ``nursery.start``)."""
        out = [n.run for _, n in self.k8s_namers]
        out += [n.run for n in self._gateway_namers.values()]
        out += [r.run for r in self._ingresses.values()]
        out += [c.run for c in self._config_maps]
        out += [i.run for i in self.namerd_interpreters.values()]
        return out


def _resolve(host: str, key: str) -> str:
    """An IP of ``host`` (once, at start: io.l5d.specificHost)."""
    from ..discovery.dns import blocking_lookup
    from ..naming.name import AddrBound

    found = blocking_lookup(host, 0)
    if not isinstance(found, AddrBound) or not found.addresses:
        raise ConfigError(f"{key}.host: cannot resolve {host!r}")
    return found.addresses[0].host
