"""Native kernels (Rust, ``native/src``): the twins of ``pyproxy._pure``, with identical behaviour,
and the lane (``Lane`` and the classes of its events), which is native only.

Values are plain tuples: a path is ``tuple[bytes, ...]``; a prefix is ``tuple[bytes | None, ...]``
(``None`` is ``*``); a tree is ``(0, path)``, ``(1, (tree, ...))``, ``(2, ((weight, tree), ...))``,
``(3,)``, ``(4,)`` or ``(5,)``; a dentry is ``(prefix, tree)``; a dtab is ``tuple[dentry, ...]``.
Parse errors raise :class:`pyproxy.errors.DtabError`; HTTP/1.1 errors :class:`pyproxy.errors.RemoteProtocolError`.
"""

from typing import Any, List, Optional, Sequence, Tuple, Union

__version__: str

_Path = Tuple[bytes, ...]
_Prefix = Tuple[Optional[bytes], ...]
_Tree = tuple
_Dentry = Tuple[_Prefix, _Tree]

def read_path(s: str) -> _Path:
    """Parse a whole path such as ``/s/foo\\x2fbar``."""

def read_prefix(s: str) -> _Prefix:
    """Parse a whole dentry prefix; ``*`` elements come back as ``None``."""

def read_tree(s: str) -> _Tree:
    """Parse a whole name tree (``/a | 2 * /b & /c``) into the tuple form."""

def read_dentry(s: str) -> _Dentry:
    """Parse a whole dentry ``prefix => tree``."""

def read_dtab(s: str) -> Tuple[_Dentry, ...]:
    """Parse a whole dtab (``;``-separated dentries, one trailing ``;`` allowed)."""

_Buffer = Union[bytes, bytearray, memoryview]
_Fields = Tuple[Tuple[bytes, bytes], ...]

def parse_request_head(buf: _Buffer, max_line: int, max_head: int, max_headers: int) -> Optional[
    Tuple[bytes, bytes, int, _Fields, int, int, bool, Tuple[bytes, ...], bool, Optional[bytes]]
]:
    """``(method, target, minor, headers, head_len, content_length, chunked, connection,
    expect_continue, host)`` or None while incomplete; raises ``RemoteProtocolError`` (see ``pyproxy._pure.h1``)."""

def parse_response_head(buf: _Buffer, max_head: int, max_headers: int) -> Optional[
    Tuple[int, int, bytes, _Fields, int, int, bool, Tuple[bytes, ...]]
]:
    """``(minor, status, reason, headers, head_len, content_length, chunked, connection)`` or None."""

def parse_chunk_line(buf: _Buffer, pos: int, max_line: int) -> Optional[Tuple[int, int]]:
    """``(size, next_pos)`` of the chunk-size line at ``buf[pos]``, or None while incomplete."""

def parse_trailers(buf: _Buffer, pos: int, max_head: int, max_headers: int) -> Optional[Tuple[_Fields, int]]:
    """``(fields, next_pos)`` of the trailer section at ``buf[pos]``, or None while incomplete."""

class DtabIndex:
    """An immutable prefix index over a dtab's dentries."""

    def __init__(self, dentries: Sequence[Tuple[tuple, tuple]]) -> None:
        """Index ``(prefix, tree)`` tuples in dtab order, as :func:`read_dtab` returns them."""
    def __len__(self) -> int: ...
    def matches(self, path: _Path) -> List[int]:
        """Indices of every dentry whose prefix matches ``path``, latest first."""
    def lookup(self, path: _Path) -> _Tree:
        """One rewriting step of ``path`` through the dtab (Finagle's ``Dtab.lookup``), unsimplified."""

class Balancer:
    """The endpoints of one client and their load; picks one per request (see ``pyproxy._pure.balance``)."""

    def __init__(self, kind: str, decay_s: float = 10.0, default_rtt_s: float = 0.030) -> None:
        """``kind``: ``ewma``, ``p2c``, ``roundRobin`` or ``heap``."""
    def add(self, slot: int, now: float) -> None:
        """Adds an endpoint (cost ``default_rtt_s``, stamped ``now``); a present slot keeps its state."""
    def remove(self, slot: int) -> None:
        """Removes an endpoint; an absent slot is ignored."""
    def set_down(self, slot: int, down: bool) -> None:
        """Marks an endpoint down (not eligible) or up again; an absent slot is ignored."""
    def __len__(self) -> int: ...
    def slots(self) -> List[int]:
        """Every slot, in ascending order."""
    def panics(self) -> int:
        """How many picks found no eligible endpoint and chose among all of them."""
    def pick(self, now: float, draw: int) -> int:
        """Chooses an endpoint for one request and counts it as started there; -1 when there is none."""
    def end(self, slot: int, now: float, rtt_s: float) -> None:
        """Ends one request and, for ewma, observes its RTT; a slot removed since its pick is ignored."""
    def load(self, slot: int, now: float) -> float:
        """The load the pick compares (ewma: ``cost * (pending + 1)`` after decay; p2c, heap: pending)."""
    def pending(self, slot: int) -> int:
        """Requests picked and not yet ended on this endpoint."""
    def cost(self, slot: int, now: float) -> float:
        """The Peak-EWMA RTT estimate in seconds after decay (0.0 for the kinds that keep none)."""

# === the lane (``pyproxy/lane.py``): native only ===

_Hist = Tuple[int, float, float, float, List[Tuple[int, int]]]
_LaneEvent = Union["LaneHandoff", "LaneDone", "LaneResume", "LaneFailed", "LaneAbandon", "LaneSampled", "LaneAccess"]

class Lane:
    """The native data path's event loop: forwards the requests it can take whole, returns events for the rest."""

    def __init__(self, seed: int, recent: float = 0.0) -> None:
        """``seed``: the lane's draws; ``recent``: ``io.l5d.recentRequests``'s sample rate (0: none)."""
    def add_server(
        self, edge: bool, via: bytes, max_call_depth: int, ident: bytes, max_line: int, max_head: int,
        max_headers: int, stream_after: int, idle_timeout: float, header_timeout: float,
        timeout_response: bytes, access_log: bool, timestamp_header: Optional[bytes], write_timeout: float = 60.0,
        max_concurrent: Optional[int] = None, carriers: Optional[Tuple[bytes, bytes, bytes]] = None, signed: bool = False,
    ) -> int:
        """Registers a listener's rules; returns its index (the ``server`` of events and route keys).
        ``carriers``: ``(key, carrier ids read, carrier ids captured)`` of its baggage rules;
        ``signed``: an edge with ``signedOverrides``."""
    def set_active(self, server: int, active: int) -> None:
        """Python's requests in flight on listener ``server`` (its half of ``maxConcurrentRequests``)."""
    def in_flight(self, server: int) -> int:
        """The lane's exchanges in flight on listener ``server``."""
    def fileno(self) -> int:
        """The descriptor trio waits on (readable: something is ready)."""
    def install(
        self, key: bytes, branches: Sequence[Tuple[float, Any, Balancer, Sequence[Tuple[int, str, int]], bytes, Optional[float]]],
        ctx_block: bytes, total_timeout: Optional[float] = None, member: Optional[bytes] = None, until: Optional[float] = None,
    ) -> bool:
        """Installs a route of ``(weight, branch, balancer, [(slot, ip, port)], field block, attempt timeout)``
        with its service's total timeout (seconds), its override's fixed fields and W3C baggage
        member, and a signed override's end (Unix seconds); False when an address is not an IP literal."""
    def clear_routes(self) -> None:
        """Forgets every route (exchanges in flight keep theirs)."""
    def routes(self) -> int:
        """Number of installed routes."""
    def adopt(self, fd: int, received: bytes, server: int, now: float) -> List[_LaneEvent]:
        """Takes a connection over (``fd`` detached from its socket, ``received`` not yet parsed)."""
    def poll(self, now: float) -> List[_LaneEvent]:
        """Does all the I/O that is ready (never blocks) and returns the events for Python."""
    def sweep(self, now: float) -> List[_LaneEvent]:
        """Closes connections idle past the idle timeout; answers a head slower than the header timeout with 408."""
    def drain(self, server: int) -> List[_LaneEvent]:
        """Graceful stop of one listener: idle connections close now, busy ones after their response."""
    def pooled(self) -> int:
        """Idle upstream connections kept for reuse."""
    def connections(self, server: int) -> int:
        """Client connections of listener ``server`` the lane holds now."""
    def close(self) -> None:
        """Closes everything (connections, pooled upstreams, routes); the events are dropped."""
    @staticmethod
    def parse_deadline(values: Sequence[bytes]) -> Union[None, int, Tuple[int, int]]:
        """The lane's reading of ``l5d-ctx-deadline`` values (``context.parse_deadline``'s twin); -1: declined."""
    @staticmethod
    def deadline_field(timestamp_ns: int, deadline_ns: int) -> bytes:
        """The ``l5d-ctx-deadline`` field the lane writes."""
    @staticmethod
    def bucket_key(v: float) -> Optional[int]:
        """The histogram bucket of ``v`` as the lane sums latencies (``metrics.histogram.bucket_key``'s twin)."""
    @staticmethod
    def scan(
        head: bytes, server: int, edge: bool, via: bytes, max_call_depth: int, ident: bytes, route_block: bytes,
        trace: bytes, reqid: bytes, ctx_block: bytes, stream_after: int, stamp_block: bytes,
        carriers: Optional[Tuple[bytes, bytes, bytes]] = None, signed: bool = False, member: Optional[bytes] = None,
    ) -> Optional[Tuple[bytes, Optional[Tuple[int, int, int, int]], Optional[Tuple[int, int]], Optional[bytes]]]:
        """The lane's request rules on one head: None when declined, else ``(key, parent trace,
        deadline, forwarded head)``, the head None when the baggage would lose members (declined)."""
    @staticmethod
    def relay_head(
        head: bytes, head_request: bool, keep_down: bool, req_minor: int, edge: bool, via: bytes
    ) -> Optional[Tuple[bytes, Optional[int]]]:
        """The lane's response rules on one head: None when handed over, else ``(head, None | length | -1 chunked)``."""

class LaneHandoff:
    """A request the lane declines: Python serves the connection ``fd``, starting with ``received``."""

    server: int
    fd: int
    received: bytes
    eof: bool

class LaneDone:
    """Requests completed on one branch and listener with one status, summed (latencies in ms)."""

    branch: Any
    server: int
    status: int
    count: int
    head_ms: _Hist
    total_ms: _Hist
    slots: List[Tuple[int, int]]
    seconds: List[Tuple[int, int]]

class LaneResume:
    """A response the lane will not relay (or a deadline passed before it: ``expired``, ``attempt.EXPIRED_*``):
    Python continues the exchange with both connections."""

    branch: Any
    server: int
    slot: int
    started: float
    down_fd: int
    down_buf: bytes
    head: bytes
    up_fd: int
    up_buf: bytes
    up_eof: bool
    up_error: int
    expired: int

class LaneFailed:
    """The upstream could not be reached; a ``LaneHandoff`` of the request follows."""

    branch: Any
    server: int
    slot: int
    started: float
    ended: float

class LaneAbandon:
    """An exchange abandoned before its response head: its pick ends."""

    branch: Any
    server: int
    slot: int
    started: float
    ended: float

class LaneSampled:
    """A completed request sampled for ``io.l5d.recentRequests``."""

    branch: Any
    server: int
    slot: int
    started: float
    ended: float
    status: int
    method: bytes
    target: bytes
    peer: Tuple[str, int]

class LaneAccess:
    """A request answered on a listener with an access log: head as received, client IP, status, length (-1: none)."""

    server: int
    head: bytes
    remote: str
    status: int
    length: int
