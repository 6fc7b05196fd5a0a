"""``pyproxy stage SVC=DEST``: the override that sends a request (and the calls it causes) to DEST.

"This service at that version" becomes a dentry for the router's dtab, found by asking the running
proxy (its admin API) how the service's name delegates today:

1. the router's live dtab (``/admin/routers.json``) and its config (``/config.json``; or the
   ``--config`` file, whose ``admin`` block says where the admin server is);
2. the delegation of ``<dstPrefix>/<SVC>`` (``/delegator.json``), followed along the branch that
   binds (an alternative's first that is not negative, a union's heaviest): the last name in it
   that still ends with ``SVC`` is the prefix the service resolves under, and the name it is
   rewritten to next names the version (``/host/world`` -> ``/srv/world-v1``): the override is
   ``/host/world => /srv/world-v2``, that next name with its last element replaced by DEST;
3. the delegation again with the override appended: the override's branch must bind to live
   endpoints (else exit 2 with the reason: negative, no endpoints, pending, failed), since an
   alternative would otherwise fall back silently to today's version.

It prints the header(s) and a ready ``curl`` line: ``l5d-dtab``; with ``--baggage`` also the
``baggage`` form (the router's ``dtabBaggage`` key), which the ``curl`` line then sends alone; with
``--sign KEYFILE --ttl 1h`` an ``l5d-dtab-sig`` (http/signature.py) and the ``curl`` line aimed at
the router's edge that accepts signed overrides. Errors: one line, exit 2.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError, DtabError
from ..http.baggage import DEFAULT_KEY, encode_value
from ..http.signature import Keyring, KeyringError, sign
from ..naming.dtab import Dentry
from ..naming.path import Path

__all__ = ["StageError", "chain", "derive", "live", "parse_ttl", "stage"]

_TTL = re.compile(r"(\d+)([smhd]?)\Z")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class StageError(Exception):
    """Why the override cannot be made (one line; the command exits 2)."""


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``1h``, ``2d`` in seconds."""
    m = _TTL.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise StageError(f"--ttl {text!r}: expected a duration such as 90s, 30m, 1h or 2d")
    return int(m.group(1)) * _UNITS[m.group(2)]


# === the delegation tree (/delegator.json's shape) ===


def _binds(node: Dict[str, Any]) -> bool:
    """Whether the subtree has a bound leaf (what Finagle's alternatives try in order)."""
    t = node.get("type")
    if t == "leaf":
        return True
    return any(_binds(child) for child, _ in _children(node))


def _children(node: Dict[str, Any]) -> List[Tuple[Dict[str, Any], float]]:
    t = node.get("type")
    if t in ("delegate", "transformation"):
        sub = node.get("delegate") or node.get("tree")
        return [(sub, 1.0)] if sub else []
    if t == "alt":
        return [(c, 1.0) for c in node.get("alt", ())]
    if t == "union":
        return [(w["tree"], float(w.get("weight", 1.0))) for w in node.get("union", ())]
    return []


def _primary(node: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The child a request follows: an alternative's first that binds, a union's heaviest branch."""
    kids = _children(node)
    if not kids:
        return None
    if node.get("type") == "alt":
        return next((c for c, _ in kids if _binds(c)), kids[0][0])
    return max(kids, key=lambda cw: cw[1])[0]


def chain(tree: Dict[str, Any]) -> List[Tuple[str, Optional[Tuple[str, str]], Dict[str, Any]]]:
    """``(path, dentry that produced it or None, node)`` along the branch a request follows."""
    out = []
    node: Optional[Dict[str, Any]] = tree
    while node is not None:
        d = node.get("dentry")
        out.append((node.get("path", ""), (d["prefix"], d["dst"]) if d else None, node))
        node = _primary(node)
    return out


def derive(tree: Dict[str, Any], svc: str, dest: str) -> Tuple[Dentry, str]:
    """The override sending ``svc`` to ``dest``, and the dentry that routes it today (shown)."""
    steps = chain(tree)
    names = [Path.read(p or "/") for p, _, _ in steps]
    leaf = Path.read(f"/{dest}")  # a bad name is Finagle's error, exit 2
    at = None
    for i, name in enumerate(names):
        if name.elems and name.elems[-1] == svc.encode("latin-1") and name.show[:3] not in ("/#/", "/$/"):
            at = i
    if at is None:
        raise StageError(f"no name on the way from {steps[0][0]} ends with {svc!r}: is it the service's name in this router's dtab?")
    if at + 1 >= len(names):
        raise StageError(f"{names[at].show} delegates no further in this router's dtab: nothing to replace")
    prefix, nxt = names[at], names[at + 1]
    fired = steps[at + 1][1]
    today = f"{fired[0]}=>{fired[1]}" if fired else f"{prefix.show}=>{nxt.show}"
    dst = Path(nxt.elems[:-1] + leaf.elems)
    return Dentry.read(f"{prefix.show} => {dst.show}"), today


def _addr_problem(bound: Dict[str, Any]) -> Optional[str]:
    addr = (bound or {}).get("addr") or {}
    if addr.get("type") == "bound":
        return None if addr.get("addrs") else "no endpoints"
    if addr.get("type") == "failed":
        return f"failed: {addr.get('cause', '')}"
    return str(addr.get("type") or "neg")


def _endpoints(node: Dict[str, Any]) -> Tuple[Optional[str], List[str], str]:
    """``(problem or None, endpoints, bound id)`` of the branch a request follows below ``node``."""
    for _path, _dentry, n in chain(node):
        t = n.get("type")
        if t == "leaf":
            problem = _addr_problem(n.get("bound"))
            addrs = [f"{a['ip']}:{a['port']}" for a in (n.get("bound") or {}).get("addr", {}).get("addrs", [])]
            return problem, addrs, (n.get("bound") or {}).get("id", n.get("path", ""))
        if t in ("neg", "fail", "exception", "empty"):
            return ("negative" if t == "neg" else n.get("message") or t), [], n.get("path", "")
    return "negative", [], ""


def live(tree: Dict[str, Any], override: Dentry) -> Tuple[str, List[str]]:
    """The bound id and endpoints the override's branch binds to.

    Raises:
        StageError: it binds to nothing live (or the override did not fire).
    """
    want = (override.prefix.show, override.dst.show)
    stack = [tree]
    while stack:
        node = stack.pop()
        d = node.get("dentry")
        if d and (d["prefix"], d["dst"]) == want:
            problem, addrs, bound = _endpoints(node)
            if problem is not None:
                raise StageError(f"{override.dst.show} binds to no live endpoints ({bound or override.dst.show}: {problem})")
            return bound, addrs
        stack.extend(c for c, _ in _children(node))
    raise StageError(f"the override {override.show} does not fire for this name")


# === the admin API ===


class Admin:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, path: str, body: Optional[dict] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace").strip().splitlines()
            raise StageError(f"{self.url}{path}: {exc.code} {text[0] if text else ''}".rstrip()) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StageError(f"cannot reach the admin server at {self.url}: {reason}") from None

    def routers(self) -> List[Dict[str, Any]]:
        return self._call("/admin/routers.json")  # type: ignore[no-any-return]

    def config(self) -> Dict[str, Any]:
        return self._call("/config.json")  # type: ignore[no-any-return]

    def delegate(self, router: str, dtab: str, path: str) -> Dict[str, Any]:
        return self._call("/delegator.json", {"namespace": router, "dtab": dtab, "path": path})  # type: ignore[no-any-return]


def _pick_router(routers: Sequence[Dict[str, Any]], name: Optional[str]) -> Dict[str, Any]:
    labels = [r["label"] for r in routers]
    if name is not None:
        for r in routers:
            if r["label"] == name:
                return r
        raise StageError(f"--router {name}: no such router (there are: {', '.join(labels)})")
    if len(routers) == 1:
        return routers[0]
    raise StageError(f"several routers ({', '.join(labels)}): say which with --router")


def _curl_host(ip: str, admin_url: str) -> str:
    if ip in ("0.0.0.0", "::", ""):
        return urllib.request.urlparse(admin_url).hostname or "127.0.0.1"
    return f"[{ip}]" if ":" in ip else ip


def stage(
    target: str, *, router: Optional[str] = None, config_file: Optional[str] = None, admin: Optional[str] = None,
    sign_file: Optional[str] = None, ttl: str = "1h", kid: Optional[str] = None, baggage: bool = False,
    host: Optional[str] = None, now: Optional[float] = None,
) -> Tuple[List[str], str]:
    """The lines to print (headers, then the curl line) and one line saying what was checked.

    Raises:
        StageError, ConfigError: what is wrong, in one line.
    """
    svc, eq, dest = target.partition("=")
    if not eq or not svc or not dest or "/" in svc + dest:
        raise StageError(f"{target!r}: expected SERVICE=DESTINATION, e.g. world=world-v2")
    if config_file is not None:
        from ..config import load_file

        cfg = load_file(config_file)
        if admin is None:
            if not cfg.admin.port:
                raise StageError(f"{config_file}: admin.port is 0 (chosen at start): pass --admin URL")
            admin = f"http://{_curl_host(cfg.admin.ip, 'http://127.0.0.1')}:{cfg.admin.port}"
    api = Admin(admin or "http://127.0.0.1:9990")
    live_router = _pick_router(api.routers(), router)
    label = live_router["label"]
    configured = next((r for r in api.config().get("routers", ()) if r.get("label") == label), {})
    dst_prefix = configured.get("dstPrefix") or "/svc"
    name = f"{dst_prefix.rstrip('/')}/{svc}"
    dtab = live_router.get("dtab", "")
    override, today = derive(api.delegate(label, dtab, name), svc, dest)
    bound, addrs = live(api.delegate(label, f"{dtab};{override.show}" if dtab else override.show, name), override)
    value = override.show
    lines = [f"l5d-dtab: {value}"]
    servers = list(zip(live_router.get("servers", ()), configured.get("servers", ())))
    target_server = servers[0][0] if servers else None
    if sign_file is not None:
        try:
            with open(sign_file, encoding="utf-8") as f:
                ring = Keyring.parse(f.read())
            key_id, key = (kid.encode(), ring.keys[kid.encode()]) if kid else ring.first()
        except OSError as exc:
            raise StageError(f"--sign {sign_file}: {exc.strerror}") from None
        except KeyringError as exc:
            raise StageError(f"--sign {sign_file}: {exc}") from None
        except KeyError:
            raise StageError(f"--kid {kid}: not in {sign_file}") from None
        exp = int((time.time() if now is None else now) + parse_ttl(ttl))
        lines.append(f"l5d-dtab-sig: {sign(key, key_id, exp, value.encode()).decode()}")
        edge = [live for live, conf in servers if conf.get("signedOverrides")]
        if not edge:
            raise StageError(f"router {label} has no server with signedOverrides: a signed override is for its edge")
        target_server = edge[0]
    if baggage:
        bag = configured.get("dtabBaggage")
        key = (bag or {}).get("key") or DEFAULT_KEY
        lines.append(f"baggage: {key}={encode_value(value.encode()).decode()}")
        if bag is None:
            print(f"pyproxy: warning: router {label} has no dtabBaggage: it will not read the baggage form", file=sys.stderr)
    url = f"http://{_curl_host(target_server['ip'], api.url)}:{target_server['port']}/" if target_server else f"http://HOST:PORT/ (router {label} has no server)"
    # the curl line sends the form asked for: the baggage member alone with --baggage (what an
    # instrumented app carries on), else l5d-dtab (and its signature)
    sent = [ln for ln in lines if ln.startswith("baggage:")] if baggage and sign_file is None else [ln for ln in lines if not ln.startswith("baggage:")]
    curl = "curl " + " ".join(f"-H '{line}'" for line in [f"Host: {host or svc}", *sent]) + f" {url}"
    note = f"{svc} -> {dest} through router {label}: {override.show} (today: {today}); {bound}: {', '.join(addrs)}"
    return lines + [curl], note


def main(args: Any) -> int:
    try:
        lines, note = stage(
            args.target, router=args.router, config_file=args.config, admin=args.admin, sign_file=args.sign, ttl=args.ttl,
            kid=args.kid, baggage=args.baggage, host=args.host,
        )
    except (StageError, ConfigError, DtabError) as exc:
        print(f"pyproxy: stage: {exc}", file=sys.stderr)
        return 2
    print(f"pyproxy: {note}", file=sys.stderr)
    for line in lines:
        print(line)
    return 0
