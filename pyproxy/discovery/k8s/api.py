"""A Kubernetes API server: JSON requests and watch streams, through ``kubectl proxy`` or in-cluster.

``KubeApi("http://localhost:8001")`` is Linkerd's setup: a ``kubectl proxy`` sidecar does the
authentication. :meth:`KubeApi.in_cluster` talks to the API server directly, as client-go does from a
pod: ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, the service-account token (read
again whenever its file changes: bound tokens rotate) and the cluster CA.

Answers are bounded (the client's ``MAX_BODY``, :data:`MAX_EVENT`): an answer that is not JSON, too
large, or a watch line that is either raises :class:`KubeError`, which the caller's watch treats as
a failure (back off, keep the last good state).
"""

from __future__ import annotations

import json
import os
import ssl
from typing import Any, AsyncIterator, Dict, Optional, Tuple

from ..client import ClientError, HttpClient, Response

__all__ = ["KubeApi", "KubeError", "MAX_EVENT", "OPEN", "SERVICE_ACCOUNT"]

#: Largest watch event (one line of a watch stream).
MAX_EVENT = 16 * 1024 * 1024

#: What :meth:`KubeApi.stream` yields first: the server answered the watch (200).
OPEN: Any = object()

#: Where a pod finds its service-account credentials.
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeError(Exception):
    """The API could not be used: unreachable, an unexpected status, or an answer that is not JSON."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class _Token:
    """A bearer token from a file, read again when the file changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: Optional[Tuple[int, int]] = None
        self._value = ""

    def value(self) -> str:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as f:
                    self._value = f.read().strip()
                self._stamp = stamp
        except OSError:
            pass  # keep the last token read: a rotation in progress must not fail requests
        return self._value


class KubeApi:
    """One API server. ``base_url``: ``http://host:port`` (kubectl proxy) or ``https://...``."""

    def __init__(self, base_url: str, token_file: Optional[str] = None, ca_file: Optional[str] = None, token: Optional[str] = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = _Token(token_file) if token_file else None
        self._static_token = token
        context = None
        if self.base_url.startswith("https"):
            context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self._client = HttpClient(self.base_url, context)

    @classmethod
    def in_cluster(cls, account_dir: str = SERVICE_ACCOUNT) -> "KubeApi":
        """The API server of the cluster this pod runs in (``KUBERNETES_SERVICE_HOST``/``_PORT``)."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeError("in-cluster access needs KUBERNETES_SERVICE_HOST (not running in a pod?)")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        ca = os.path.join(account_dir, "ca.crt")
        return cls(f"https://{host}:{port}", token_file=os.path.join(account_dir, "token"), ca_file=ca if os.path.exists(ca) else None)

    def _headers(self, json_body: bool = False) -> Dict[str, str]:
        headers = {"Accept": "application/json"}
        if json_body:
            headers["Content-Type"] = "application/json"
        token = self._token.value() if self._token is not None else self._static_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def request(self, method: str, path: str, params: Optional[Dict[str, str]] = None, body: Any = None) -> Tuple[int, Any]:
        """``(status, decoded JSON or None)``; raises :class:`KubeError` when the API cannot be reached
        or its answer is not JSON (a 404 with a Status body is a normal answer)."""
        data = None if body is None else json.dumps(body).encode()
        try:
            resp = await self._client.request(method, path, params, self._headers(data is not None), data)
        except ClientError as exc:
            raise KubeError(str(exc)) from None
        if not resp.body:
            return resp.status, None
        try:
            return resp.status, json.loads(resp.body)
        except ValueError:
            raise KubeError(f"{method} {path}: answer {resp.status} is not JSON", resp.status) from None

    async def get(self, path: str, params: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
        return await self.request("GET", path, params)

    async def stream(self, path: str, params: Dict[str, str], idle_timeout: float) -> AsyncIterator[Any]:
        """The events of a watch stream (each line decoded), after :data:`OPEN` once the server
        answered 200; ends when the server ends the stream. Close the generator when done with it
        (``aclose``): that closes the connection.

        Raises:
            KubeError: not reachable, a status other than 200 (``status`` set: 410 is "too old"), a
                line that is not JSON or longer than :data:`MAX_EVENT`, or nothing at all received
                for ``idle_timeout`` seconds (a stream gone quiet).
        """
        pieces = self._client.stream(path, params, self._headers(), idle_timeout)
        try:
            head = await pieces.__anext__()
            assert isinstance(head, Response)
            if head.status != 200:
                raise KubeError(f"watch {path}: status {head.status}", head.status)
            yield OPEN
            buf = bytearray()
            async for piece in pieces:
                buf += piece  # type: ignore[operator]
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    line = bytes(buf[:nl])
                    del buf[: nl + 1]
                    if line.strip():
                        yield _decode(line, path)
                if len(buf) > MAX_EVENT:
                    raise KubeError(f"watch {path}: an event longer than {MAX_EVENT} bytes")
            if buf.strip():
                yield _decode(bytes(buf), path)
        except ClientError as exc:
            raise KubeError(f"watch {path}: {exc}") from None
        except StopAsyncIteration:
            raise KubeError(f"watch {path}: no response") from None
        finally:
            await pieces.aclose()

    async def aclose(self) -> None:
        """Nothing is kept open between requests (each has its own connection)."""


def _decode(line: bytes, path: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise KubeError(f"watch {path}: an event that is not JSON ({line[:80]!r})") from None
