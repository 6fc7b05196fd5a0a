"""``io.l5d.prometheus``: the metrics tree as Prometheus text exposition format 0.0.4.

Linkerd's mapping (linkerd1.md §5.3): the name is ``prefix`` + the scope path joined with ``:``,
every character outside ``[A-Za-z0-9:]`` replaced by ``_``; some scope elements become labels:

* ``rt/<router>/...`` -> ``rt="<router>"``;
* ``rt/<r>/server|client|service/<id>/...`` -> ``server=``, ``client=`` or ``service=`` with the id;
* ``rt/<r>/client/<id>/service/<svc>/...`` -> also ``service="<svc>"``;
* ``.../failures/<e1>/<e2>`` -> name ``...:failures``, ``exception="e1:e2"``; ``exn/...`` likewise,
  with the name ``...:exceptions``. (Linkerd only maps them right below a stack id; we also map them
  below ``client/<id>/service/<svc>``, which Linkerd would leave as part of the name.)

Unlike Linkerd we write ``# HELP``/``# TYPE`` lines, so samples of one name are grouped together.
Histograms (last snapshot) become summaries: quantiles ``0 .5 .9 .95 .99 .999 .9999 1`` (0 is the min,
1 the max) with ``_sum`` and ``_count``, and a separate gauge ``<name>_avg`` (a summary family may
not hold an ``_avg`` sample).
"""

from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Tuple

from ..metrics import Key, Registry, Summary

__all__ = ["render", "labels_of", "CONTENT_TYPE"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_STACKS = ("server", "client", "service")
_BAD_NAME = re.compile(r"[^A-Za-z0-9:]")
_QUANTILES = (("0", "min"), ("0.5", "p50"), ("0.9", "p90"), ("0.95", "p95"), ("0.99", "p99"), ("0.999", "p9990"), ("0.9999", "p9999"), ("1", "max"))

Labels = Tuple[Tuple[str, str], ...]


def labels_of(key: Key) -> Tuple[List[str], Labels, List[str]]:
    """``(name elements, labels, help pattern)`` of one metric key."""
    name: List[str] = []
    labels: List[Tuple[str, str]] = []
    pattern: List[str] = []
    n, i = len(key), 0
    if n >= 3 and key[0] == "rt":
        name.append("rt")
        labels.append(("rt", key[1]))
        pattern += ["rt", "<rt>"]
        i = 2
        if n - i >= 3 and key[i] in _STACKS:
            stack = key[i]
            name.append(stack)
            labels.append((stack, key[i + 1]))
            pattern += [stack, f"<{stack}>"]
            i += 2
            if stack == "client" and n - i >= 3 and key[i] == "service":
                name.append("service")
                labels.append(("service", key[i + 1]))
                pattern += ["service", "<service>"]
                i += 2
            if n - i >= 2 and key[i] in ("failures", "exn"):
                name.append("failures" if key[i] == "failures" else "exceptions")
                labels.append(("exception", ":".join(key[i + 1 :])))
                pattern += [key[i], "<exception>"]
                i = n
    name += key[i:]
    pattern += key[i:]
    return name, tuple(labels), pattern


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Optional[Tuple[str, str]] = None) -> str:
    items = list(labels) + ([extra] if extra else [])
    if not items:
        return ""
    return "{" + ", ".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _num(v: float) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


class _Family:
    __slots__ = ("type", "help", "lines")

    def __init__(self, typ: str, help_text: str) -> None:
        self.type = typ
        self.help = help_text
        self.lines: List[str] = []


def render(registry: Registry, prefix: str = "") -> str:
    """The whole registry in text format 0.0.4 (one family per name, in name order)."""
    registry.tick()
    families: Dict[str, _Family] = {}

    def family(name: str, typ: str, pattern: List[str]) -> Optional[_Family]:
        f = families.get(name)
        if f is None:
            text = f"pyproxy {typ} {'/'.join(pattern)}".replace("\\", "\\\\").replace("\n", "\\n")
            f = families[name] = _Family(typ, text)
        elif f.type != typ:
            return None  # the same name with two types would make the exposition invalid: keep the first
        return f

    for key, value, kind in registry.items():
        elems, labels, pattern = labels_of(key)
        name = _BAD_NAME.sub("_", prefix + ":".join(elems))
        if name[:1].isdigit():
            name = "_" + name
        if kind == "stat":
            s: Summary = value  # type: ignore[assignment]
            f = family(name, "summary", pattern)
            if f is None:
                continue
            if s.count:
                for q, field in _QUANTILES:
                    f.lines.append(f"{name}{_labels(labels, ('quantile', q))} {_num(getattr(s, field))}")
            f.lines.append(f"{name}_sum{_labels(labels)} {_num(s.sum)}")
            f.lines.append(f"{name}_count{_labels(labels)} {s.count}")
            if s.count:
                avg = family(name + "_avg", "gauge", pattern + ["avg"])
                if avg is not None:
                    avg.lines.append(f"{name}_avg{_labels(labels)} {_num(s.avg)}")
        else:
            f = family(name, "counter" if kind == "counter" else "gauge", pattern)
            if f is not None:
                f.lines.append(f"{name}{_labels(labels)} {_num(value)}")  # type: ignore[arg-type]
    out: List[str] = []
    for name in sorted(families):
        f = families[name]
        out.append(f"# HELP {name} {f.help}")
        out.append(f"# TYPE {name} {f.type}")
        out.extend(f.lines)
    return "\n".join(out) + "\n" if out else ""
