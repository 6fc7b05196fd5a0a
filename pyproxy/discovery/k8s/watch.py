"""One list-then-watch loop: keeps the objects of one Kubernetes query current, through everything.

A :class:`Watch` lists the query (``GET <path>?<selectors>``), hands the objects to ``on_change``,
then watches from the list's resourceVersion (``?watch=true&resourceVersion=..``). It is built for
the failures Linkerd 1.x users reported (stale endpoints after deploys, watches that go quiet):

* lists are read in pages (``limit``/``continue``), one consistent snapshot;
* a stream that ends (the API server does so every few minutes) is resumed from the newest
  resourceVersion seen, without a new list;
* an event older than the newest resourceVersion seen is dropped (streams may replay);
* ``410 Gone``, as an HTTP status or as an ``ERROR`` event whose Status has code 410, means the
  version is too old: list again, then watch from the new list;
* bookmarks are asked for (``allowWatchBookmarks``) and every stream has a server timeout
  (``timeoutSeconds``, jittered): a stream that sends nothing, not even a bookmark, for longer than
  that is dead and is reconnected;
* any other failure (unreachable API, a status other than 200, an answer that is not JSON, an event
  of the wrong shape) backs off with jitter, 10 ms doubling to 10 s, then resumes; the objects keep
  their last good state meanwhile (an API outage fails no request), and the failure is logged once
  per streak, with the query named, not once per retry.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Dict, Optional

import trio

from .api import OPEN, KubeApi, KubeError

__all__ = ["Ready", "Watch", "WatchStats"]

log = logging.getLogger("pyproxy.k8s")

#: Backoff between failed attempts: from 10 ms, doubling, to 10 s (Linkerd's k8s default), jittered.
BACKOFF_MIN, BACKOFF_MAX = 0.01, 10.0
#: Objects asked for per page of a list (client-go's pager asks for 500; ours are kept parsed,
#: so smaller pages bound the memory a list takes while it is read).
LIST_PAGE = 200
#: Server-side timeout asked of each watch stream (client-go picks 5-10 min); jittered by 10 %.
STREAM_SECONDS = 300


class Ready:
    """Set once the first answer is known; whoever needs it (a router binding a name) waits on it."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class WatchStats:
    """What a watch did, for ``/namer_state/...json`` and the metrics."""

    __slots__ = ("lists", "streams", "resumes", "gone", "errors", "events", "dropped", "resource_version",
                 "connected", "last_error", "last_event", "since")

    def __init__(self) -> None:
        self.lists = 0  # full lists (the first, and after each 410)
        self.streams = 0  # watch streams opened
        self.resumes = 0  # streams opened again from a known version after one ended or failed
        self.gone = 0  # 410 Gone (either form)
        self.errors = 0  # failures that made the watch back off
        self.events = 0
        self.dropped = 0  # events older than the newest version seen
        self.resource_version: Optional[str] = None
        self.connected = False
        self.last_error: Optional[str] = None
        self.last_event: Optional[float] = None  # time.time() of the last event or list
        self.since: Optional[float] = None  # time.time() the current stream opened

    def to_json(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class _Gone(Exception):
    pass


_BAD = object()  # an object ``keep`` refused


def _newer(a: Optional[str], b: Optional[str]) -> bool:
    """Whether resourceVersion ``b`` comes after ``a`` (numeric when both are, as etcd's are)."""
    if a is None or b is None:
        return True
    if a.isdigit() and b.isdigit():
        return int(b) >= int(a)
    return True  # opaque versions cannot be ordered: take the event


def _key(obj: Any) -> Optional[str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return None
    return f"{meta.get('namespace', '')}/{meta['name']}"


class Watch:
    """Keeps ``objects`` (by ``namespace/name``) equal to the query's answer.

    Args:
        path: the list URL path (``/api/v1/namespaces/default/endpoints``).
        params: selectors (``fieldSelector``, ``labelSelector``).
        on_change: called on the loop with ``objects`` after each list and each event that changed it.
        what: how the logs name this watch (``endpoints default/world-v1``).
        keep: what of each object is kept (default: all of it); a watcher that needs only a summary
            (the namer keeps parsed endpoints, not the JSON) saves the memory of the rest. It may
            raise ``ValueError`` for an object of the wrong shape: the event then counts as a failure
            of the watch and the object's previous state stays.
    """

    def __init__(
        self, api: KubeApi, path: str, params: Dict[str, str], on_change: Callable[[Dict[str, Any]], None],
        what: str, rng: Optional[random.Random] = None, keep: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        self.api = api
        self.path = path
        self.params = dict(params)
        self.on_change = on_change
        self.keep = keep
        self.what = what
        self.rng = rng or random.Random()
        self.objects: Dict[str, Any] = {}
        self.known = False
        self.stats = WatchStats()
        self._failing = False
        self._delay = 0.0
        self._streamed_since_list = False
        self._bad: Dict[str, str] = {}  # objects that did not parse, with the problem (logged once)

    async def run(self) -> None:
        """Until cancelled."""
        version: Optional[str] = None
        while True:
            try:
                if version is None:
                    version = await self._list()
                events = self.stats.events
                opened = trio.current_time()
                version = await self._watch(version)
                if self.stats.events == events and trio.current_time() - opened < 1.0:
                    await trio.sleep(self._next_delay())  # streams that end at once: do not spin
            except _Gone:
                self.stats.gone += 1
                log.debug("k8s %s: resourceVersion %s is too old: listing again", self.what, version)
                version = None
                self._delay = 0.0
            except (KubeError, ValueError) as exc:
                self._failed(exc)
                await trio.sleep(self._next_delay())
            finally:
                self.stats.connected = False

    async def _list(self) -> Optional[str]:
        self.stats.lists += 1
        objects = {}
        params = dict(self.params, limit=str(LIST_PAGE))
        while True:  # page by page: the peak of memory is one page's JSON, not the whole list's
            status, body = await self.api.get(self.path, params)
            if status == 410:
                raise _Gone()  # the version too old, or a page's continue token expired: list again
            if status != 200 or not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise KubeError(f"list {self.path}: status {status}{'' if isinstance(body, dict) else ', not a list'}", status)
            for obj in body["items"]:
                key = _key(obj)
                if key is None:
                    raise ValueError(f"list {self.path}: an item without metadata.name")
                kept = self._kept(key, obj)
                if kept is not _BAD:
                    objects[key] = kept
            meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            version = meta.get("resourceVersion") if isinstance(meta.get("resourceVersion"), str) else None
            more = meta.get("continue")
            del body
            if not isinstance(more, str) or not more:
                break
            params["continue"] = more
        self._publish(objects)
        self.stats.resource_version = version
        self._streamed_since_list = False
        self._recovered()
        return version

    async def _watch(self, version: Optional[str]) -> Optional[str]:
        """One stream; returns the newest version seen when it ends (to resume from)."""
        seconds = int(STREAM_SECONDS * (0.9 + 0.2 * self.rng.random()))
        params = dict(self.params, watch="true", allowWatchBookmarks="true", timeoutSeconds=str(seconds))
        if version is not None:
            params["resourceVersion"] = version
        self.stats.streams += 1
        self.stats.since = time.time()
        if self._streamed_since_list:
            self.stats.resumes += 1  # a stream again from a known version, without a new list
        self._streamed_since_list = True
        events = self.api.stream(self.path, params, idle_timeout=seconds + 30)
        try:
            async for event in events:
                if event is OPEN:
                    self.stats.connected = True
                    continue
                version = self._event(event, version)
        except KubeError as exc:
            if exc.status == 410:
                raise _Gone() from None
            raise
        finally:
            with trio.CancelScope(shield=True):
                await events.aclose()  # the stream's connection goes now, whatever ended it
        return version

    def _event(self, event: Any, version: Optional[str]) -> Optional[str]:
        if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(event.get("object"), dict):
            raise ValueError(f"watch {self.path}: an event of the wrong shape")
        kind, obj = event["type"], event["object"]
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Gone()
            raise KubeError(f"watch {self.path}: error event {code}: {obj.get('message', '')}", code if isinstance(code, int) else 0)
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        rv = meta.get("resourceVersion") if isinstance(meta.get("resourceVersion"), str) else None
        if kind == "BOOKMARK":
            if rv is not None and _newer(version, rv):
                version = rv
                self.stats.resource_version = rv
            self._recovered()
            return version
        if not _newer(version, rv):
            self.stats.dropped += 1
            return version
        key = _key(obj)
        if key is None:
            raise ValueError(f"watch {self.path}: a {kind} event without metadata.name")
        objects = dict(self.objects)
        if kind in ("ADDED", "MODIFIED"):
            kept = self._kept(key, obj)
            if kept is _BAD:  # the object's last good state stays; the stream goes on
                if rv is not None:
                    self.stats.resource_version = rv
                return rv if rv is not None else version
            objects[key] = kept
        elif kind == "DELETED":
            objects.pop(key, None)
        else:
            raise ValueError(f"watch {self.path}: an event of unknown type {kind!r}")
        self.stats.events += 1
        if rv is not None:
            version = rv
            self.stats.resource_version = rv
        self._publish(objects)
        self._recovered()
        return version

    def _kept(self, key: str, obj: Any) -> Any:
        if self.keep is None:
            return obj
        try:
            kept = self.keep(obj)
        except (ValueError, TypeError, AttributeError) as exc:
            if self._bad.get(key) != str(exc):  # once per object and problem, with both named
                log.warning("k8s %s: %s does not parse (%s); keeping its last good state", self.what, key, exc)
            self._bad[key] = str(exc)
            return _BAD
        self._bad.pop(key, None)
        return kept

    def _publish(self, objects: Dict[str, Any]) -> None:
        self.objects = objects
        self.known = True
        self.stats.last_event = time.time()
        self.on_change(objects)

    def _failed(self, exc: BaseException) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(exc)
        if not self._failing:
            self._failing = True
            log.warning("k8s %s: %s; keeping the last known state and retrying", self.what, exc)
        else:
            log.debug("k8s %s: still failing: %s", self.what, exc)

    def _recovered(self) -> None:
        self._delay = 0.0
        if self._failing:
            self._failing = False
            log.info("k8s %s: watching again", self.what)

    def _next_delay(self) -> float:
        self._delay = min(BACKOFF_MAX, max(BACKOFF_MIN, self._delay * 2))
        return self._delay * (0.5 + self.rng.random() / 2)  # equal jitter
