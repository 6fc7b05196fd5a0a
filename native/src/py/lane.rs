//! `Lane`: the event loop of the native data path (see [`crate::lane`]), for `pyproxy/lane.py`.
//!
//! One `mio::Poll` holds every connection the lane owns; trio waits on its descriptor and calls
//! [`Lane::poll`] with the loop's clock when it is readable. A call does all the I/O that is ready,
//! without blocking, and returns the events Python must act on, as tuples:
//!
//! * `(0, server, fd, received)`: a request the lane declines; Python serves the connection.
//! * `(1, ctx, server, slot, started, head_at, ended, status, sample)`: a request the lane
//!   completed; `sample` is None, or `(method, target, (peer ip, peer port))` for the share of
//!   requests `io.l5d.recentRequests` keeps (drawn here: only those pay for copying them out).
//! * `(2, ctx, server, slot, started, down_fd, down_buf, request_head, up_fd, up_buf, up_eof)`:
//!   a response the lane will not relay; Python continues that exchange.
//! * `(3, ctx, server, slot, started, ended)`: the upstream could not be reached (nothing was
//!   received by it); a `0` event with the request follows so Python can requeue it.
//! * `(4, ctx, server, slot, started, ended)`: an exchange abandoned (the client went away).
//!
//! `ctx` is the object Python installed with the route's branch; `slot` is the endpoint's slot in
//! that branch's balancer. Times are the caller's clock (`now` of the call that saw the event).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use pyo3::BoundObject;

use super::balance::Balancer;
use crate::h1;
use crate::lane::head::{self, Body, ServerRules};
use crate::lane::results::{Batch, Hist, Results};
use crate::lane::trace::{Draws, TraceId};
use crate::lane::{adopt_fd, read_some, release_fd, write_some, Pools};

const HANDOFF: u8 = 0;
const DONE: u8 = 1;
const RESUME: u8 = 2;
const FAILED: u8 = 3;
const ABANDON: u8 = 4;
/// One request of a batch in DONE was sampled for `io.l5d.recentRequests`.
const SAMPLED: u8 = 5;
/// One request answered on a listener whose router keeps an access log.
const ACCESS: u8 = 6;

/// Stop reading an upstream body while this much is waiting to be written downstream.
const HIGH_WATER: usize = 1 << 20;
/// Batches of ready sockets one `poll` handles at most before it returns to trio.
const POLL_ROUNDS: usize = 4;
/// Pipelined bytes read ahead while a request is in flight.
const READ_AHEAD: usize = 1 << 20;

struct Branch {
    weight: f64,
    ctx: Py<PyAny>,
    balancer: Py<Balancer>,
    endpoints: HashMap<i64, SocketAddr>,
    block: Vec<u8>,
}

/// A branch as `Lane.install` receives it: weight, ctx, balancer, `(slot, ip, port)`s, field block.
type BranchArg = (f64, Py<PyAny>, Py<Balancer>, Vec<(i64, String, u16)>, Vec<u8>);

struct Route {
    branches: Vec<Branch>,
    total: f64,
    ctx_block: Vec<u8>,
}

struct Server {
    rules: ServerRules,
    idle_timeout: f64,
    header_timeout: f64,
    timeout_response: Vec<u8>,
    /// The router keeps an access log: each request answered comes back as an ACCESS event.
    access_log: bool,
    /// `timestampHeader`: this field gets the time in milliseconds on each request forwarded.
    timestamp_header: Option<Vec<u8>>,
    draining: bool,
    count: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Up {
    Connecting,
    Sending,
    Head,
    /// A Content-Length body: this many bytes to go.
    Body(u64),
    /// A chunked body, re-framed chunk by chunk.
    Chunked(Chunk),
}

/// Where a chunked body is: a size line, data (bytes to go), the CRLF after it, the trailers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Chunk {
    Size,
    Data(u64),
    Crlf,
    Trailers,
}

struct Exchange {
    sock: TcpStream,
    /// The upstream socket's slot in `Core::ups` (its epoll token).
    up: usize,
    addr: SocketAddr,
    pooled: bool,
    resent: bool,
    state: Up,
    fwd: Vec<u8>,
    fwd_pos: usize,
    buf: Vec<u8>,
    eof: bool,
    /// A readiness event said the upstream closed its side (its FIN may come with the response,
    /// and no later edge would tell): the connection is not pooled.
    closing: bool,
    /// The request head as received (Python parses it again when it takes the exchange over).
    raw: Vec<u8>,
    /// The request body (buffered whole): back in front of the client's bytes on a handover.
    body: Vec<u8>,
    route: Rc<Route>,
    branch: usize,
    slot: i64,
    started: f64,
    head_at: f64,
    status: u16,
    /// The Content-Length answered downstream (-1: none, or chunked), for the access log.
    length: i64,
    keep_down: bool,
    up_keep: bool,
    head_request: bool,
    req_minor: u8,
}

struct Down {
    sock: TcpStream,
    server: usize,
    buf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
    /// Reading stopped at the read-ahead limit: the socket may hold more (edge-triggered: no
    /// new event will say so), so the next request reads before it waits.
    full: bool,
    close_after: bool,
    since: f64,
    head_since: Option<f64>,
    ex: Option<Box<Exchange>>,
}

/// What became of a connection after an event (the caller owns it and carries this out).
enum Fate {
    Keep,
    Close,
    /// Hand the connection to Python with the bytes it sent (a declined request).
    Handoff,
    /// Hand the connection and this exchange to Python (a response the lane will not relay).
    Resume(Box<Exchange>),
}

/// Who holds an upstream socket: a client connection's exchange, or the pool.
#[derive(Clone, Copy)]
enum UpOwner {
    Conn(usize),
    Pool(SocketAddr),
}

struct Core {
    poll: Poll,
    routes: HashMap<Vec<u8>, Rc<Route>>,
    pools: Pools,
    /// Upstream sockets by slot (token `2 * slot + 1`), registered from connect to close.
    ups: Vec<Option<UpOwner>>,
    ups_free: Vec<usize>,
    draws: Draws,
    servers: Vec<Server>,
    out: Vec<Py<PyAny>>,
    now: f64,
    /// `io.l5d.recentRequests`'s sample rate (0: off).
    recent: f64,
    /// Completed requests, summed until Python takes them (DONE events).
    results: Results<Py<PyAny>>,
}

fn down_token(i: usize) -> Token {
    Token(2 * i)
}

fn up_token(slot: usize) -> Token {
    Token(2 * slot + 1)
}

fn os_err(e: std::io::Error) -> PyErr {
    PyOSError::new_err(e.to_string())
}

impl Core {
    /// A slot for a new upstream socket held by connection `i`.
    fn new_up(&mut self, i: usize) -> usize {
        match self.ups_free.pop() {
            Some(k) => {
                self.ups[k] = Some(UpOwner::Conn(i));
                k
            }
            None => {
                self.ups.push(Some(UpOwner::Conn(i)));
                self.ups.len() - 1
            }
        }
    }

    /// The upstream socket in `slot` leaves the lane (closed, or handed to Python).
    fn drop_up(&mut self, slot: usize, sock: &mut TcpStream) {
        let _ = self.poll.registry().deregister(sock);
        if let Some(owner) = self.ups.get_mut(slot) {
            if owner.take().is_some() {
                self.ups_free.push(slot);
            }
        }
    }

    /// A pooled connection to `addr` (its slot now held by connection `i`), or None.
    fn take_pooled(&mut self, addr: SocketAddr, i: usize) -> Option<(TcpStream, usize)> {
        let mut stale = Vec::new();
        let found = self.pools.take(addr, self.now, &mut stale);
        for (mut sock, k) in stale {
            self.drop_up(k, &mut sock);
        }
        let (sock, k) = found?;
        self.ups[k] = Some(UpOwner::Conn(i));
        Some((sock, k))
    }

    /// The upstream socket in `slot` turned ready: whose it is, or None once a pooled connection
    /// the upstream closed has been dropped (a spurious event is ignored).
    fn up_ready(&mut self, slot: usize) -> Option<usize> {
        match self.ups.get(slot).copied().flatten()? {
            UpOwner::Conn(i) => Some(i),
            UpOwner::Pool(addr) => {
                if let Some(mut sock) = self.pools.evict(addr, slot) {
                    self.drop_up(slot, &mut sock);
                }
                None
            }
        }
    }

    /// A request completed: its latency goes to the balancer now (the next pick sees it), the rest
    /// into this poll's results.
    #[allow(clippy::too_many_arguments)]
    fn completed(&mut self, py: Python<'_>, route: &Route, branch: usize, server: usize, slot: i64, started: f64, head_at: f64, status: u16) {
        let b = &route.branches[branch];
        if let Ok(mut bal) = b.balancer.bind(py).try_borrow_mut() {
            let _ = bal.0.end(slot, head_at, (head_at - started).max(0.0)); // a slot removed meanwhile is ignored
        }
        let key = b.ctx.as_ptr() as usize; // the batch holds the object: the address stays its own
        self.results.add(key, server, status, slot, started, head_at, self.now, || b.ctx.clone_ref(py));
    }

    /// The access log's record of one answered request: the head as received (Python reads the
    /// fields it logs from it, as it does for its own requests), the peer, status and length.
    fn access(&mut self, py: Python<'_>, server: usize, raw: &[u8], sock: &TcpStream, status: u16, length: i64) {
        if !self.servers[server].access_log {
            return;
        }
        let peer = sock.peer_addr().map_or_else(|_| "-".to_string(), |a| a.ip().to_string());
        self.emit(py, (ACCESS, server, PyBytes::new(py, raw), peer, status, length));
    }

    fn emit<'py, T: IntoPyObject<'py>>(&mut self, py: Python<'py>, event: T) {
        if let Ok(obj) = event.into_pyobject(py) {
            self.out.push(obj.into_any().into_bound().unbind());
        }
    }

    fn ctx(&self, py: Python<'_>, ex: &Exchange) -> Py<PyAny> {
        ex.route.branches[ex.branch].ctx.clone_ref(py)
    }

    /// The connection goes to Python with everything it sent that was not consumed.
    fn handoff(&mut self, py: Python<'_>, d: Down) {
        let Down { mut sock, server, buf, .. } = d;
        let _ = self.poll.registry().deregister(&mut sock);
        self.servers[server].count -= 1;
        let fd = release_fd(sock);
        self.emit(py, (HANDOFF, server, fd, PyBytes::new(py, &buf)));
    }

    /// The connection and its exchange go to Python, which continues the exchange.
    fn resume(&mut self, py: Python<'_>, d: Down, ex: Box<Exchange>) {
        let Down { sock: mut down, server, buf: rest, .. } = d;
        let _ = self.poll.registry().deregister(&mut down);
        self.servers[server].count -= 1;
        let ctx = self.ctx(py, &ex);
        let Exchange { sock: up, buf, raw, body, eof, slot, started, .. } = *ex;
        // Python reads the request body again from the client's bytes: it goes back in front.
        let mut down_buf = body;
        down_buf.extend_from_slice(&rest);
        let event = (
            RESUME,
            ctx,
            server,
            slot,
            started,
            release_fd(down),
            PyBytes::new(py, &down_buf),
            PyBytes::new(py, &raw),
            release_fd(up),
            PyBytes::new(py, &buf),
            eof,
        );
        self.emit(py, event);
    }

    /// Closes a connection (and its exchange, reported as abandoned or done).
    fn close(&mut self, py: Python<'_>, mut d: Down) {
        let _ = self.poll.registry().deregister(&mut d.sock);
        self.servers[d.server].count -= 1;
        if let Some(mut ex) = d.ex.take() {
            self.drop_up(ex.up, &mut ex.sock);
            if ex.head_at > 0.0 {
                let route = Rc::clone(&ex.route);
                self.completed(py, &route, ex.branch, d.server, ex.slot, ex.started, ex.head_at, ex.status);
                self.access(py, d.server, &ex.raw, &d.sock, ex.status, ex.length);
            } else {
                let ctx = self.ctx(py, &ex);
                self.emit(py, (ABANDON, ctx, d.server, ex.slot, ex.started, self.now));
            }
        }
    }

    fn flush(&mut self, d: &mut Down) -> std::io::Result<bool> {
        if d.out_pos >= d.out.len() {
            return Ok(true);
        }
        let done = write_some(&mut d.sock, &d.out, &mut d.out_pos)?;
        if done {
            d.out.clear();
            d.out_pos = 0;
        } else if d.out_pos > (1 << 16) {
            d.out.drain(..d.out_pos);
            d.out_pos = 0;
        }
        Ok(done)
    }

    fn pending_out(d: &Down) -> usize {
        d.out.len() - d.out_pos
    }

    /// Downstream readiness: write what waits, read what came, then move the connection on.
    fn on_down(&mut self, py: Python<'_>, i: usize, d: &mut Down) -> Fate {
        if self.flush(d).is_err() {
            return Fate::Close;
        }
        if self.read_down(d).is_err() {
            return Fate::Close;
        }
        if let Some(ex) = d.ex.as_ref() {
            // A body paused for backpressure moves on once the client has taken enough.
            if matches!(ex.state, Up::Body(_) | Up::Chunked(_)) && Self::pending_out(d) < HIGH_WATER {
                return self.on_up(py, i, d);
            }
            return Fate::Keep;
        }
        self.advance(py, i, d)
    }

    /// Reads what the client sent, up to the read-ahead limit.
    fn read_down(&mut self, d: &mut Down) -> std::io::Result<()> {
        let limit = if d.ex.is_some() {
            READ_AHEAD
        } else {
            self.servers[d.server].rules.max_head.max(1 << 16) + (1 << 16)
        };
        if d.eof {
            d.full = false;
        } else if d.buf.len() >= limit {
            d.full = true; // not drained: read once there is room
        } else {
            let (_, eof) = read_some(&mut d.sock, &mut d.buf, limit)?;
            d.eof |= eof;
            d.full = !eof && d.buf.len() >= limit; // stopped by the limit, not by WouldBlock
        }
        Ok(())
    }

    /// A connection without an exchange: close, wait, hand over, or start the next request.
    fn advance(&mut self, py: Python<'_>, i: usize, d: &mut Down) -> Fate {
        if d.ex.is_some() {
            return Fate::Keep;
        }
        if Self::pending_out(d) > 0 {
            return Fate::Keep; // the previous response first
        }
        if d.full && self.read_down(d).is_err() {
            return Fate::Close;
        }
        if d.close_after {
            return Fate::Close;
        }
        if d.buf.is_empty() {
            if d.eof {
                return Fate::Close;
            }
            d.since = self.now;
            d.head_since = None;
            return Fate::Keep;
        }
        let server = &self.servers[d.server];
        if server.draining {
            return Fate::Close;
        }
        let rules = &server.rules;
        let parsed = h1::parse_request_head(&d.buf, rules.max_line, rules.max_head, rules.max_headers);
        let req = match parsed {
            Err(_) => return Fate::Handoff, // Python answers the framing error
            Ok(None) => {
                if d.eof {
                    return Fate::Handoff;
                }
                d.head_since.get_or_insert(self.now);
                return Fate::Keep;
            }
            Ok(Some(req)) => req,
        };
        let Some(scan) = head::scan_request(&req, d.server as u16, rules) else {
            return Fate::Handoff;
        };
        let Some(route) = self.routes.get(&scan.key).cloned() else {
            return Fate::Handoff;
        };
        let body_len = req.content_length.max(0) as usize;
        if d.buf.len() < req.head_len + body_len {
            // a small body still arriving: wait for all of it (the header timeout bounds the wait)
            if d.eof {
                return Fate::Handoff;
            }
            d.head_since.get_or_insert(self.now);
            return Fate::Keep;
        }
        let branch = if route.branches.len() == 1 {
            0
        } else if route.total <= 0.0 {
            ((self.draws.unit() * route.branches.len() as f64) as usize).min(route.branches.len() - 1)
        } else {
            let mut x = self.draws.unit() * route.total;
            let mut k = route.branches.len() - 1;
            for (j, b) in route.branches.iter().enumerate() {
                x -= b.weight;
                if x < 0.0 {
                    k = j;
                    break;
                }
            }
            k
        };
        let b = &route.branches[branch];
        let draw = self.draws.draw();
        let slot = match b.balancer.bind(py).try_borrow_mut() {
            Ok(mut bal) => bal.0.pick(self.now, draw).unwrap_or(-1),
            Err(_) => -1,
        };
        if slot < 0 {
            return Fate::Handoff; // no endpoint now: Python answers
        }
        let Some(&addr) = b.endpoints.get(&slot) else {
            // The client's endpoints changed under this route: end the pick, let Python route.
            let ctx = b.ctx.clone_ref(py);
            self.emit(py, (ABANDON, ctx, d.server, slot, self.now, self.now));
            return Fate::Handoff;
        };
        let parent = scan.parent.unwrap_or_else(|| TraceId::root(self.draws.id()));
        let trace = parent.child(self.draws.id());
        let rules = &self.servers[d.server].rules;
        let stamp = self.servers[d.server].timestamp_header.as_deref().map_or_else(Vec::new, stamp_field);
        let mut fwd = head::request_head(&req, &scan, rules, &b.block, &trace.header(), &trace.reqid(), &route.ctx_block, &stamp);
        let keep_down = head::request_keep_alive(&req);
        let head_request = req.method == b"HEAD";
        let req_minor = req.minor;
        let head_len = req.head_len;
        drop(scan);
        drop(req);
        let raw: Vec<u8> = d.buf.drain(..head_len).collect();
        let body: Vec<u8> = d.buf.drain(..body_len).collect();
        fwd.extend_from_slice(&body);
        d.head_since = None;
        let (sock, up, pooled, state) = match self.take_pooled(addr, i) {
            Some((sock, up)) => (sock, up, true, Up::Sending),
            None => match TcpStream::connect(addr) {
                Ok(mut sock) => {
                    let _ = sock.set_nodelay(true);
                    let up = self.new_up(i);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self.poll.registry().register(&mut sock, up_token(up), interest).is_err() {
                        self.drop_up(up, &mut sock);
                        let ctx = route.branches[branch].ctx.clone_ref(py);
                        self.emit(py, (FAILED, ctx, d.server, slot, self.now, self.now));
                        d.buf.splice(0..0, raw.into_iter().chain(body));
                        return Fate::Handoff;
                    }
                    (sock, up, false, Up::Connecting)
                }
                Err(_) => {
                    let ctx = route.branches[branch].ctx.clone_ref(py);
                    self.emit(py, (FAILED, ctx, d.server, slot, self.now, self.now));
                    d.buf.splice(0..0, raw.into_iter().chain(body));
                    return Fate::Handoff;
                }
            },
        };
        d.ex = Some(Box::new(Exchange {
            sock,
            up,
            addr,
            pooled,
            resent: false,
            state,
            fwd,
            fwd_pos: 0,
            buf: Vec::new(),
            eof: false,
            closing: false,
            raw,
            body,
            route,
            branch,
            slot,
            started: self.now,
            head_at: 0.0,
            status: 0,
            length: -1,
            keep_down,
            up_keep: false,
            head_request,
            req_minor,
        }));
        self.on_up(py, i, d)
    }

    /// Nothing reached the upstream: report it, and give the request back to Python (it requeues).
    fn connect_failed(&mut self, py: Python<'_>, d: &mut Down) -> Fate {
        let Some(mut ex) = d.ex.take() else {
            return Fate::Close;
        };
        self.drop_up(ex.up, &mut ex.sock);
        let ctx = self.ctx(py, &ex);
        self.emit(py, (FAILED, ctx, d.server, ex.slot, ex.started, self.now));
        let raw = std::mem::take(&mut ex.raw);
        let body = std::mem::take(&mut ex.body);
        d.buf.splice(0..0, raw.into_iter().chain(body));
        Fate::Handoff
    }

    /// A pooled connection turned out closed before answering: send once more on a new one.
    fn resend(&mut self, py: Python<'_>, i: usize, d: &mut Down) -> Fate {
        let Some(ex) = d.ex.as_mut() else {
            return Fate::Close;
        };
        // the slot stays this exchange's: only the socket behind its token changes
        let _ = self.poll.registry().deregister(&mut ex.sock);
        match TcpStream::connect(ex.addr) {
            Ok(sock) => {
                let _ = sock.set_nodelay(true);
                ex.sock = sock;
            }
            Err(_) => return self.connect_failed(py, d),
        }
        ex.pooled = false;
        ex.resent = true;
        ex.state = Up::Connecting;
        ex.fwd_pos = 0;
        ex.buf.clear();
        ex.eof = false;
        ex.closing = false;
        if self
            .poll
            .registry()
            .register(&mut ex.sock, up_token(ex.up), Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            return self.connect_failed(py, d);
        }
        self.on_up(py, i, d)
    }

    /// Python continues the exchange from here (a response the lane does not relay itself).
    fn give_up(&mut self, d: &mut Down) -> Fate {
        match d.ex.take() {
            Some(mut ex) => {
                self.drop_up(ex.up, &mut ex.sock);
                Fate::Resume(ex)
            }
            None => Fate::Close,
        }
    }

    /// Upstream progress: connect, send the head, read and judge the response head, relay the body.
    fn on_up(&mut self, py: Python<'_>, i: usize, d: &mut Down) -> Fate {
        loop {
            let Some(ex) = d.ex.as_mut() else {
                return self.advance(py, i, d);
            };
            match ex.state {
                Up::Connecting => {
                    match ex.sock.take_error() {
                        Ok(None) => {}
                        _ => return self.connect_failed(py, d),
                    }
                    match ex.sock.peer_addr() {
                        Ok(_) => ex.state = Up::Sending,
                        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Fate::Keep,
                        Err(_) => return self.connect_failed(py, d),
                    }
                }
                Up::Sending => match write_some(&mut ex.sock, &ex.fwd, &mut ex.fwd_pos) {
                    Ok(true) => {
                        // The answer cannot be there yet: wait for its readable edge instead of
                        // asking the socket now (one EAGAIN call per request saved).
                        ex.state = Up::Head;
                        return Fate::Keep;
                    }
                    Ok(false) => return Fate::Keep,
                    Err(_) => {
                        if ex.pooled && !ex.resent {
                            return self.resend(py, i, d);
                        }
                        return self.connect_failed(py, d);
                    }
                },
                Up::Head => {
                    let max_head = self.servers[d.server].rules.max_head;
                    let max_headers = self.servers[d.server].rules.max_headers;
                    if !ex.eof {
                        match read_some(&mut ex.sock, &mut ex.buf, max_head + (1 << 16)) {
                            Ok((_, eof)) => ex.eof = eof,
                            Err(_) => ex.eof = true,
                        }
                    }
                    let parsed = h1::parse_response_head(&ex.buf, max_head, max_headers);
                    let resp = match parsed {
                        Err(_) => return self.give_up(d),
                        Ok(None) => {
                            if !ex.eof {
                                return Fate::Keep;
                            }
                            if ex.pooled && !ex.resent && ex.buf.is_empty() {
                                return self.resend(py, i, d);
                            }
                            return self.give_up(d);
                        }
                        Ok(Some(resp)) => resp,
                    };
                    let rules = &self.servers[d.server].rules;
                    let Some((head_bytes, body)) =
                        head::response_head(&resp, ex.head_request, ex.keep_down, ex.req_minor, rules)
                    else {
                        return self.give_up(d);
                    };
                    ex.status = resp.status;
                    ex.length = match body {
                        Body::Fixed(n) => n as i64,
                        _ => -1,
                    };
                    ex.up_keep = head::response_keep_alive(&resp);
                    let head_len = resp.head_len;
                    drop(resp);
                    ex.head_at = self.now;
                    ex.buf.drain(..head_len);
                    d.out.extend_from_slice(&head_bytes);
                    ex.state = match body {
                        Body::None => Up::Body(0),
                        Body::Fixed(n) => Up::Body(n),
                        Body::Chunked => Up::Chunked(Chunk::Size),
                    };
                }
                Up::Chunked(chunk) => {
                    let rules = &self.servers[d.server].rules;
                    let (max_line, max_head, max_headers, edge) = (rules.max_line, rules.max_head, rules.max_headers, rules.edge);
                    let next = match chunk {
                        Chunk::Size => match h1::parse_chunk_line(&ex.buf, 0, max_line) {
                            Err(_) => return self.finish(py, i, d, true),
                            Ok(None) => None,
                            Ok(Some((0, end))) => {
                                ex.buf.drain(..end);
                                Some(Chunk::Trailers)
                            }
                            Ok(Some((size, end))) => {
                                ex.buf.drain(..end);
                                d.out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                                Some(Chunk::Data(size))
                            }
                        },
                        Chunk::Data(remaining) => {
                            let take = (remaining.min(ex.buf.len() as u64)) as usize;
                            d.out.extend_from_slice(&ex.buf[..take]);
                            ex.buf.drain(..take);
                            let remaining = remaining - take as u64;
                            if remaining == 0 {
                                d.out.extend_from_slice(b"\r\n");
                                Some(Chunk::Crlf)
                            } else {
                                ex.state = Up::Chunked(Chunk::Data(remaining));
                                None
                            }
                        }
                        Chunk::Crlf if ex.buf.len() >= 2 => {
                            if &ex.buf[..2] != b"\r\n" {
                                return self.finish(py, i, d, true);
                            }
                            ex.buf.drain(..2);
                            Some(Chunk::Size)
                        }
                        Chunk::Crlf => None,
                        Chunk::Trailers => match h1::parse_trailers(&ex.buf, 0, max_head, max_headers) {
                            Err(_) => return self.finish(py, i, d, true),
                            Ok(None) => None,
                            Ok(Some((fields, end))) => {
                                let block = head::trailer_block(&fields, edge);
                                drop(fields);
                                ex.buf.drain(..end);
                                d.out.extend_from_slice(b"0\r\n");
                                d.out.extend_from_slice(&block);
                                d.out.extend_from_slice(b"\r\n");
                                return self.finish(py, i, d, false);
                            }
                        },
                    };
                    match next {
                        Some(state) => ex.state = Up::Chunked(state),
                        None => {
                            if let Some(fate) = self.more(d) {
                                return fate.unwrap_or_else(|| self.finish(py, i, d, true));
                            }
                        }
                    }
                }
                Up::Body(remaining) => {
                    let take = (remaining.min(ex.buf.len() as u64)) as usize;
                    if take > 0 {
                        d.out.extend_from_slice(&ex.buf[..take]);
                        ex.buf.drain(..take);
                    }
                    let remaining = remaining - take as u64;
                    ex.state = Up::Body(remaining);
                    if remaining == 0 {
                        return self.finish(py, i, d, false);
                    }
                    if let Some(fate) = self.more(d) {
                        return fate.unwrap_or_else(|| self.finish(py, i, d, true));
                    }
                }
            }
        }
    }

    /// A body needs more bytes from the upstream: write what waits first; None when some were
    /// read (go on), `Some(Some(fate))` to stop here for now, `Some(None)` when the upstream
    /// ended the body early (the caller finishes it as truncated).
    fn more(&mut self, d: &mut Down) -> Option<Option<Fate>> {
        if self.flush(d).is_err() {
            return Some(Some(Fate::Close));
        }
        if Self::pending_out(d) >= HIGH_WATER {
            return Some(Some(Fate::Keep)); // resumes when the client drains (on_down)
        }
        let ex = d.ex.as_mut()?;
        if ex.eof {
            return Some(None);
        }
        let want = ex.buf.len() + (1 << 18);
        match read_some(&mut ex.sock, &mut ex.buf, want) {
            Ok((0, false)) => Some(Some(Fate::Keep)),
            Ok((_, eof)) => {
                ex.eof |= eof;
                None
            }
            Err(_) => {
                ex.eof = true;
                None
            }
        }
    }

    /// The response is relayed (or cut short: `truncated`); pool the upstream, report, go on.
    fn finish(&mut self, py: Python<'_>, i: usize, d: &mut Down, truncated: bool) -> Fate {
        let Some(ex) = d.ex.take() else {
            return Fate::Close;
        };
        let Exchange {
            sock, up, addr, route, branch, raw, slot, started, head_at, status, length, keep_down, up_keep, buf, eof, closing, ..
        } = *ex;
        let rejected = if !truncated && up_keep && buf.is_empty() && !eof && !closing {
            self.ups[up] = Some(UpOwner::Pool(addr)); // stays registered under its token
            self.pools.put(addr, sock, up, self.now).map(|(s, _)| s)
        } else {
            Some(sock)
        };
        if let Some(mut s) = rejected {
            self.drop_up(up, &mut s);
        }
        self.completed(py, &route, branch, d.server, slot, started, head_at, status);
        self.access(py, d.server, &raw, &d.sock, status, length);
        if self.recent > 0.0 && self.draws.unit() < self.recent {
            let ctx = route.branches[branch].ctx.clone_ref(py);
            let e = (SAMPLED, ctx, d.server, slot, started, self.now, status, sample(py, &raw, &d.sock));
            self.emit(py, e);
        }
        if truncated || !keep_down || self.servers[d.server].draining {
            d.close_after = true;
        }
        if self.flush(d).is_err() {
            return Fate::Close;
        }
        self.advance(py, i, d)
    }
}

/// `name: <milliseconds since the epoch>` (the trio path's `timestampHeader` field).
fn stamp_field(name: &[u8]) -> Vec<u8> {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut out = Vec::with_capacity(name.len() + 20);
    out.extend_from_slice(name);
    out.extend_from_slice(format!(": {ms}\r\n").as_bytes());
    out
}

type HistTuple = (u64, f64, f64, f64, Vec<(i64, u64)>);

fn hist(h: Hist) -> HistTuple {
    (h.count, h.sum, h.min, h.max, h.buckets)
}

/// `(method, target, (ip, port))` of a request head as received, for `io.l5d.recentRequests`.
fn sample(py: Python<'_>, raw: &[u8], sock: &TcpStream) -> Py<PyAny> {
    let start = raw.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(raw.len());
    let mut parts = raw[start..].splitn(3, |&c| c == b' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let peer = sock.peer_addr().map_or(("-".to_string(), 0), |a| (a.ip().to_string(), a.port()));
    (PyBytes::new(py, method), PyBytes::new(py, target), peer)
        .into_pyobject(py)
        .map_or_else(|_| py.None(), |t| t.into_any().unbind())
}

/// The native data path's event loop (one per process; see the module documentation).
#[pyclass(module = "pyproxy._native", unsendable)]
pub struct Lane {
    core: Core,
    conns: Vec<Option<Down>>,
    free: Vec<usize>,
    events: Events,
}

impl Lane {
    /// The events for Python: those emitted, then one DONE per batch of completed requests,
    /// `(DONE, branch, server, status, count, head_ms, total_ms, slots, seconds)` with the two
    /// latency histograms as `(count, sum, min, max, ((bucket, n), ...))`.
    fn handle_events(&mut self, py: Python<'_>) {
        let ready: Vec<(usize, bool)> = self.events.iter().map(|e| (e.token().0, e.is_read_closed())).collect();
        for (t, read_closed) in ready {
            let up = t % 2 == 1;
            let i = if up {
                match self.core.up_ready(t / 2) {
                    Some(i) => i,
                    None => continue, // a pooled connection (dropped if the upstream closed it)
                }
            } else {
                t / 2
            };
            let Some(mut d) = self.conns.get_mut(i).and_then(Option::take) else {
                continue;
            };
            let fate = if !up {
                self.core.on_down(py, i, &mut d)
            } else if let Some(ex) = d.ex.as_mut().filter(|ex| ex.up == t / 2) {
                ex.closing |= read_closed;
                self.core.on_up(py, i, &mut d)
            } else {
                Fate::Keep
            };
            self.settle(py, i, d, fate);
        }
    }

    fn take_out<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut out = std::mem::take(&mut self.core.out);
        for b in self.core.results.take() {
            let Batch { ctx, server, status, count, head_ms, total_ms, slots, seconds, .. } = b;
            let e = (DONE, ctx, server, status, count, hist(head_ms), hist(total_ms), slots, seconds);
            if let Ok(obj) = e.into_pyobject(py) {
                out.push(obj.into_any().unbind());
            }
        }
        PyList::new(py, out)
    }

    fn settle(&mut self, py: Python<'_>, i: usize, d: Down, fate: Fate) {
        match fate {
            Fate::Keep => self.conns[i] = Some(d),
            Fate::Close => {
                self.core.close(py, d);
                self.free.push(i);
            }
            Fate::Handoff => {
                self.core.handoff(py, d);
                self.free.push(i);
            }
            Fate::Resume(ex) => {
                self.core.resume(py, d, ex);
                self.free.push(i);
            }
        }
    }
}

#[pymethods]
impl Lane {
    /// `seed`: the lane's draws; `recent`: `io.l5d.recentRequests`'s sample rate (0: none).
    #[new]
    #[pyo3(signature = (seed, recent = 0.0))]
    fn new(seed: u64, recent: f64) -> PyResult<Self> {
        Ok(Lane {
            core: Core {
                poll: Poll::new().map_err(os_err)?,
                routes: HashMap::new(),
                pools: Pools::default(),
                ups: Vec::new(),
                ups_free: Vec::new(),
                draws: Draws::new(seed),
                servers: Vec::new(),
                out: Vec::new(),
                now: 0.0,
                recent: if recent.is_finite() { recent.clamp(0.0, 1.0) } else { 0.0 },
                results: Results::default(),
            },
            conns: Vec::new(),
            free: Vec::new(),
            events: Events::with_capacity(1024),
        })
    }

    /// Registers a listener's rules; returns its index (the `server` of events and keys).
    #[allow(clippy::too_many_arguments)]
    fn add_server(
        &mut self,
        edge: bool,
        via: Vec<u8>,
        max_call_depth: usize,
        ident: Vec<u8>,
        max_line: usize,
        max_head: usize,
        max_headers: usize,
        stream_after: usize,
        idle_timeout: f64,
        header_timeout: f64,
        timeout_response: Vec<u8>,
        access_log: bool,
        timestamp_header: Option<Vec<u8>>,
    ) -> usize {
        self.core.servers.push(Server {
            rules: ServerRules {
                edge,
                via,
                max_call_depth,
                ident: ident.to_ascii_lowercase(),
                max_line,
                max_head,
                max_headers,
                stream_after,
            },
            idle_timeout,
            header_timeout,
            timeout_response,
            access_log,
            timestamp_header,
            draining: false,
            count: 0,
        });
        self.core.servers.len() - 1
    }

    /// The descriptor trio waits on (readable: something is ready).
    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.core.poll.as_raw_fd()
    }

    /// Installs a route: `branches` are `(weight, ctx, balancer, endpoints, block)` with
    /// `endpoints` a list of `(slot, ip, port)`; False when an address is not an IP literal.
    fn install(
        &mut self,
        key: Vec<u8>,
        branches: Vec<BranchArg>,
        ctx_block: Vec<u8>,
    ) -> bool {
        let mut out = Vec::with_capacity(branches.len());
        let mut total = 0.0;
        for (weight, ctx, balancer, endpoints, block) in branches {
            let mut map = HashMap::with_capacity(endpoints.len());
            for (slot, ip, port) in endpoints {
                let Ok(ip) = ip.parse::<IpAddr>() else {
                    return false;
                };
                map.insert(slot, SocketAddr::new(ip, port));
            }
            total += weight.max(0.0);
            out.push(Branch { weight: weight.max(0.0), ctx, balancer, endpoints: map, block });
        }
        if out.is_empty() {
            return false;
        }
        if self.core.routes.len() >= 10_000 {
            self.core.routes.clear();
        }
        self.core.routes.insert(key, Rc::new(Route { branches: out, total, ctx_block }));
        true
    }

    /// Forgets every route (a namer or an endpoint's health changed).
    fn clear_routes(&mut self) {
        self.core.routes.clear();
    }

    /// Number of installed routes.
    fn routes(&self) -> usize {
        self.core.routes.len()
    }

    /// Takes a connection over (`fd` detached from its Python socket, `received` not yet parsed).
    fn adopt<'py>(&mut self, py: Python<'py>, fd: i32, received: &[u8], server: usize, now: f64) -> PyResult<Bound<'py, PyList>> {
        // The descriptor is the lane's from here, whatever happens: on an error it is closed.
        let sock = adopt_fd(fd).map_err(os_err)?;
        if server >= self.core.servers.len() {
            return Err(PyValueError::new_err("unknown server index"));
        }
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let mut d = Down {
            sock,
            server,
            buf: received.to_vec(),
            out: Vec::new(),
            out_pos: 0,
            eof: false,
            full: false,
            close_after: false,
            since: now,
            head_since: None,
            ex: None,
        };
        self.core.now = now;
        self.core.servers[server].count += 1;
        if self
            .core
            .poll
            .registry()
            .register(&mut d.sock, down_token(i), Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            self.settle(py, i, d, Fate::Handoff);
            return self.take_out(py);
        }
        let fate = self.core.advance(py, i, &mut d);
        self.settle(py, i, d, fate);
        self.take_out(py)
    }

    /// Does all the I/O that is ready (never blocks) and returns the events for Python.
    fn poll<'py>(&mut self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyList>> {
        // Sockets that turn ready while a batch is handled are handled in the same call (up to
        // POLL_ROUNDS batches): under load that saves trio a wake-up per batch. The clock moves on
        // from trio's `now` by the time spent here.
        let start = std::time::Instant::now();
        for round in 0..POLL_ROUNDS {
            self.core.now = if round == 0 { now } else { now + start.elapsed().as_secs_f64() };
            match self.core.poll.poll(&mut self.events, Some(Duration::ZERO)) {
                Ok(()) => {}
                // A signal arrived during the call: nothing is lost, the next call sees the events.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.events.clear(),
                Err(e) => return Err(os_err(e)),
            }
            if self.events.is_empty() {
                break;
            }
            self.handle_events(py);
        }
        self.take_out(py)
    }

    /// Closes connections idle past their server's idle timeout, and answers 408 to those whose
    /// head has been arriving for longer than the header timeout.
    fn sweep<'py>(&mut self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyList>> {
        self.core.now = now;
        for i in 0..self.conns.len() {
            let Some(d) = self.conns[i].as_mut() else {
                continue;
            };
            if d.ex.is_some() {
                continue;
            }
            let server = &self.core.servers[d.server];
            let slow_head = d.head_since.is_some_and(|t| now - t >= server.header_timeout);
            let idle = d.buf.is_empty() && d.out_pos >= d.out.len() && now - d.since >= server.idle_timeout;
            if slow_head {
                let bytes = server.timeout_response.clone();
                let mut pos = 0;
                let _ = write_some(&mut d.sock, &bytes, &mut pos);
            }
            if slow_head || idle {
                if let Some(d) = self.conns[i].take() {
                    self.core.close(py, d);
                    self.free.push(i);
                }
            }
        }
        self.take_out(py)
    }

    /// Graceful stop of one listener: idle connections close now, busy ones after their response.
    fn drain<'py>(&mut self, py: Python<'py>, server: usize) -> PyResult<Bound<'py, PyList>> {
        if let Some(s) = self.core.servers.get_mut(server) {
            s.draining = true;
        }
        for i in 0..self.conns.len() {
            let idle = self.conns[i].as_ref().is_some_and(|d| {
                d.server == server && d.ex.is_none() && d.buf.is_empty() && d.out_pos >= d.out.len()
            });
            if idle {
                if let Some(d) = self.conns[i].take() {
                    self.core.close(py, d);
                    self.free.push(i);
                }
            }
        }
        self.take_out(py)
    }

    /// Idle upstream connections the lane keeps for reuse (``lane/pooled``).
    fn pooled(&self) -> usize {
        self.core.ups.iter().filter(|o| matches!(o, Some(UpOwner::Pool(_)))).count()
    }

    /// The histogram bucket of `v` as the lane sums latencies (the twin of
    /// `pyproxy.metrics.histogram.bucket_key`, for the differential tests).
    #[staticmethod]
    fn bucket_key(v: f64) -> Option<i64> {
        crate::lane::results::bucket_key(v)
    }

    /// Connections of listener `server` the lane holds now.
    fn connections(&self, server: usize) -> usize {
        self.core.servers.get(server).map_or(0, |s| s.count)
    }

    /// The lane's request rules on one head, for the differential tests against the trio path:
    /// None when the lane declines it, else `(key, parent trace or None, forwarded head)` with the
    /// given route block, trace and request id values, and override block.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    fn scan<'py>(
        py: Python<'py>,
        head: &[u8],
        server: u16,
        edge: bool,
        via: Vec<u8>,
        max_call_depth: usize,
        ident: Vec<u8>,
        route_block: &[u8],
        trace: &[u8],
        reqid: &[u8],
        ctx_block: &[u8],
        stream_after: usize,
        stamp_block: &[u8],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rules = ServerRules {
            edge,
            via,
            max_call_depth,
            ident: ident.to_ascii_lowercase(),
            max_line: 1 << 16,
            max_head: 1 << 20,
            max_headers: 1000,
            stream_after,
        };
        let Ok(Some(req)) = h1::parse_request_head(head, rules.max_line, rules.max_head, rules.max_headers) else {
            return Err(PyValueError::new_err("not a complete, valid request head"));
        };
        let Some(scan) = head::scan_request(&req, server, &rules) else {
            return Ok(None);
        };
        let parent = scan.parent.map(|t| (t.span, t.parent, t.trace, t.flags));
        let fwd = head::request_head(&req, &scan, &rules, route_block, trace, reqid, ctx_block, stamp_block);
        Ok(Some((PyBytes::new(py, &scan.key), parent, PyBytes::new(py, &fwd)).into_pyobject(py)?.into_any()))
    }

    /// The lane's response rules on one head, for the differential tests: None when it hands the
    /// response over, else `(downstream head, body)` with body None (no body), a length, or -1
    /// (chunked).
    #[staticmethod]
    fn relay_head<'py>(
        py: Python<'py>,
        head: &[u8],
        head_request: bool,
        keep_down: bool,
        req_minor: u8,
        edge: bool,
        via: Vec<u8>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rules = ServerRules {
            edge,
            via,
            max_call_depth: 0,
            ident: Vec::new(),
            max_line: 1 << 16,
            max_head: 1 << 20,
            max_headers: 1000,
            stream_after: 0,
        };
        let Ok(Some(resp)) = h1::parse_response_head(head, rules.max_head, rules.max_headers) else {
            return Err(PyValueError::new_err("not a complete, valid response head"));
        };
        let Some((bytes, body)) = head::response_head(&resp, head_request, keep_down, req_minor, &rules) else {
            return Ok(None);
        };
        let length: Option<i64> = match body {
            Body::None => None,
            Body::Fixed(n) => Some(n as i64),
            Body::Chunked => Some(-1),
        };
        Ok(Some((PyBytes::new(py, &bytes), length).into_pyobject(py)?.into_any()))
    }

    /// Closes everything (connections, pooled upstreams).
    fn close(&mut self, py: Python<'_>) {
        for i in 0..self.conns.len() {
            if let Some(d) = self.conns[i].take() {
                self.core.close(py, d);
            }
        }
        self.core.out.clear();
        self.core.pools.clear();
        self.core.ups.clear();
        self.core.ups_free.clear();
        self.core.routes.clear();
    }
}
