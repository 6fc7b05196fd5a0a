"""What an admin handler takes and gives: one whole request, one whole reply."""

from __future__ import annotations

from typing import Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

from ..http.message import Request

__all__ = ["AdminRequest", "Reply"]


class AdminRequest:
    """One admin request: method, path, first value of each query parameter, headers, body."""

    __slots__ = ("method", "path", "query", "raw", "body")

    def __init__(self, method: str, target: str, raw: Optional[Request] = None, body: bytes = b"") -> None:
        url = urlsplit(target)
        self.method = method
        self.path = url.path or "/"
        self.query: Dict[str, str] = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.raw = raw
        self.body = body

    def header(self, name: str) -> Optional[str]:
        if self.raw is None:
            return None
        v = self.raw.header(name)
        return None if v is None else v.decode("latin-1")

    def flag(self, name: str) -> bool:
        """A boolean query parameter as Finagle reads it (``true``/``1``; present and empty too)."""
        v = self.query.get(name)
        return v is not None and v.lower() in ("", "1", "true", "yes")


class Reply:
    __slots__ = ("status", "ctype", "body", "headers")

    def __init__(self, status: int, ctype: bytes = b"text/plain; charset=utf-8", body: bytes = b"", headers: Optional[List[tuple]] = None) -> None:
        self.status = status
        self.ctype = ctype
        self.body = body
        self.headers = headers or []
