"""``admin.security``: which admin paths are served (Linkerd's ``SecurityFilter``, PR #2034).

Every path falls in one category: **ui** (what the dashboard, the dtab playground and the requests
page need), **control** (``/admin/shutdown``, ``/logging.json``) or **diagnostics** (everything
else, ``/admin/ping`` and ``/admin/metrics/prometheus`` included, as in Linkerd). A path is served iff
(its category is enabled and it fully matches no ``pathBlacklist`` regex) or (its category is
disabled and it fully matches a ``pathWhitelist`` regex); anything else answers 404. Matching is on
the path only (no query), whole-string, as Java's ``Matcher.matches``.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

__all__ = ["Security", "category"]

# Linkerd's UI list plus what our pages load (/static/*, /requests*, /admin/routers.json).
_UI = [
    "/",
    "/files/.*",
    "/admin/files/.*",
    "/static/.*",
    "/config[.]json",
    "/metrics[.]json",
    "/admin/metrics[.]json",
    "/admin/metrics",
    "/admin/routers[.]json",
    "/delegator",
    "/delegator[.]json",
    "/requests",
    "/requests[.]json",
    "/logging",
    "/help",
]
_CONTROL = ["/admin/shutdown", "/logging[.]json"]
_UI_RE = [re.compile(p) for p in _UI]
_CONTROL_RE = [re.compile(p) for p in _CONTROL]


def category(path: str) -> str:
    """``ui``, ``control`` or ``diagnostics``."""
    if any(r.fullmatch(path) for r in _UI_RE):
        return "ui"
    if any(r.fullmatch(path) for r in _CONTROL_RE):
        return "control"
    return "diagnostics"


class Security:
    def __init__(
        self,
        ui: bool = True,
        control: bool = True,
        diagnostics: bool = True,
        whitelist: Sequence[str] = (),
        blacklist: Sequence[str] = (),
    ) -> None:
        self.enabled = {"ui": ui, "control": control, "diagnostics": diagnostics}
        self.whitelist = [re.compile(p) for p in whitelist]
        self.blacklist = [re.compile(p) for p in blacklist]

    @classmethod
    def from_config(cls, cfg: Any) -> "Security":
        return cls(cfg.ui_enabled, cfg.control_enabled, cfg.diagnostics_enabled, cfg.path_whitelist, cfg.path_blacklist)

    def allowed(self, path: str) -> bool:
        if self.enabled[category(path)]:
            return not any(r.fullmatch(path) for r in self.blacklist)
        return any(r.fullmatch(path) for r in self.whitelist)
