//! An exchange with an upstream: connect (or take a pooled connection), send the request, resend
//! it once on a new connection when a pooled one turns out closed, read and judge the response
//! head. The body is [`super::relay`]'s.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use mio::net::TcpStream;
use mio::Interest;

use super::connection::{Down, Fate, Request};
use super::core::{up_token, Core, Route};
use super::event::{BranchId, Env, Event, Expired};
use super::head::{self, Body};
use super::relay::Chunk;
use super::{read_some, write_some};
use crate::h1;

/// Where an exchange is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Up {
    Connecting,
    Sending,
    Head,
    /// A Content-Length body: this many bytes to go.
    Body(u64),
    /// A chunked body, re-framed chunk by chunk.
    Chunked(Chunk),
}

pub(super) struct Exchange {
    pub(super) sock: TcpStream,
    /// The upstream socket's slot (its epoll token).
    pub(super) up: usize,
    pub(super) addr: SocketAddr,
    /// The connection came from the pool (a resend is allowed if it turns out closed).
    pooled: bool,
    resent: bool,
    pub(super) state: Up,
    /// The request as forwarded, `fwd[fwd_pos..]` still to send.
    fwd: Vec<u8>,
    fwd_pos: usize,
    /// Received from the upstream and not yet relayed.
    pub(super) buf: Vec<u8>,
    pub(super) eof: bool,
    /// The OS error that ended the upstream's stream (0: none).
    pub(super) error: i32,
    /// Which deadline passed, when that is why the host takes the exchange over.
    pub(super) expired: Expired,
    /// When the attempt (`requestAttemptTimeoutMs`, until the response head) and the request
    /// (`totalTimeoutMs`, `l5d-ctx-deadline`) time out, on the host's clock (infinite: never).
    pub(super) attempt_at: f64,
    pub(super) deadline_at: f64,
    /// A readiness event said the upstream closed its side (its FIN may come with the response,
    /// and no later edge would tell): the connection is not pooled.
    pub(super) closing: bool,
    /// The request head as received (the host parses it again when it takes the exchange over).
    pub(super) raw: Vec<u8>,
    /// The request body (buffered whole): back in front of the client's bytes on a handover.
    pub(super) body: Vec<u8>,
    pub(super) route: Rc<Route>,
    pub(super) branch: usize,
    pub(super) slot: i64,
    pub(super) started: f64,
    /// When the response head was read (0: not yet).
    pub(super) head_at: f64,
    pub(super) status: u16,
    /// The Content-Length answered downstream (-1: none, or chunked), for the access log.
    pub(super) length: i64,
    pub(super) keep_down: bool,
    pub(super) up_keep: bool,
    head_request: bool,
    req_minor: u8,
}

impl Exchange {
    /// The id of the route branch this exchange was picked on.
    pub(super) fn branch_id(&self) -> BranchId {
        self.route.branches[self.branch].id
    }

    /// Relaying a response body (the part of an exchange that backpressure pauses).
    pub(super) fn relaying_body(&self) -> bool {
        matches!(self.state, Up::Body(_) | Up::Chunked(_))
    }

    /// When its next deadline passes: the request's, and before the response head the attempt's.
    pub(super) fn due(&self) -> f64 {
        if self.head_at > 0.0 {
            self.deadline_at
        } else {
            self.deadline_at.min(self.attempt_at)
        }
    }
}

/// What one step of an exchange leads to: the next step, or a fate for the connection.
pub(super) enum Step {
    Next,
    Stop(Fate),
}

/// A new non-blocking connection to `addr` (in progress), without Nagle's delay.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = TcpStream::connect(addr)?;
    let _ = sock.set_nodelay(true);
    Ok(sock)
}

impl Core {
    /// Sends `req` upstream on a pooled connection or a new one; the host gets the request back
    /// when no connection can be opened.
    pub(super) fn start_exchange<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down, req: Request) -> Fate {
        let Request { route, branch, slot, addr, raw, body, fwd, keep_down, head_request, req_minor, attempt_at, deadline_at } = req;
        let (sock, up, pooled, state) = match self.take_pooled(addr, i) {
            Some((sock, up)) => (sock, up, true, Up::Sending),
            None => match self.open_up(i, addr) {
                Some((sock, up)) => (sock, up, false, Up::Connecting),
                None => {
                    let id = route.branches[branch].id;
                    env.emit(Event::Failed { branch: id, server: d.server, slot, started: self.now, ended: self.now });
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
            error: 0,
            expired: Expired::No,
            attempt_at,
            deadline_at,
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
        self.servers[d.server].in_flight += 1;
        self.arm_at(attempt_at.min(deadline_at));
        self.on_up(env, i, d)
    }

    /// A new connection to `addr` for connection `i`, registered under a new slot; None when it
    /// cannot be opened.
    fn open_up(&mut self, i: usize, addr: SocketAddr) -> Option<(TcpStream, usize)> {
        let mut sock = connect(addr).ok()?;
        let up = self.ups.open(i);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self.poll.registry().register(&mut sock, up_token(up), interest).is_err() {
            self.drop_up(up, &mut sock);
            return None;
        }
        Some((sock, up))
    }

    /// Upstream progress: connect, send the request, read and judge the response head, relay
    /// the body; once the exchange is over, the connection's next request.
    pub(super) fn on_up<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down) -> Fate {
        loop {
            let Some(state) = d.ex.as_ref().map(|ex| ex.state) else {
                return self.advance(env, i, d);
            };
            let step = match state {
                Up::Connecting => self.connecting(env, d),
                Up::Sending => self.sending(env, i, d),
                Up::Head => self.response_head(env, i, d),
                Up::Body(remaining) => self.body(env, i, d, remaining),
                Up::Chunked(chunk) => self.chunked(env, i, d, chunk),
            };
            if let Step::Stop(fate) = step {
                return fate;
            }
        }
    }

    /// Waits for the connection to be established.
    fn connecting<E: Env>(&mut self, env: &mut E, d: &mut Down) -> Step {
        let Some(ex) = d.ex.as_mut() else {
            return Step::Stop(Fate::Close);
        };
        match ex.sock.take_error() {
            Ok(None) => {}
            _ => return Step::Stop(self.connect_failed(env, d)),
        }
        match ex.sock.peer_addr() {
            Ok(_) => {
                ex.state = Up::Sending;
                Step::Next
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Step::Stop(Fate::Keep),
            Err(_) => Step::Stop(self.connect_failed(env, d)),
        }
    }

    /// Sends the request; a pooled connection that fails is replaced once.
    fn sending<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down) -> Step {
        let Some(ex) = d.ex.as_mut() else {
            return Step::Stop(Fate::Close);
        };
        match write_some(&mut ex.sock, &ex.fwd, &mut ex.fwd_pos) {
            Ok(true) => {
                // The answer cannot be there yet: wait for its readable edge instead of asking
                // the socket now (one EAGAIN call per request saved).
                ex.state = Up::Head;
                Step::Stop(Fate::Keep)
            }
            Ok(false) => Step::Stop(Fate::Keep),
            Err(_) if ex.pooled && !ex.resent => Step::Stop(self.resend(env, i, d)),
            Err(_) => Step::Stop(self.connect_failed(env, d)),
        }
    }

    /// Reads the response head and judges it: relayed (its body next), or the exchange goes to
    /// the host; a pooled connection that ends before any byte of it is replaced once.
    fn response_head<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down) -> Step {
        let Some(ex) = d.ex.as_mut() else {
            return Step::Stop(Fate::Close);
        };
        let rules = &self.servers[d.server].cfg.rules;
        if !ex.eof {
            match read_some(&mut ex.sock, &mut ex.buf, rules.max_head + (1 << 16), ex.closing) {
                Ok((_, eof)) => ex.eof = eof,
                Err(e) => {
                    ex.eof = true;
                    ex.error = e.raw_os_error().unwrap_or(0);
                }
            }
        }
        let resp = match h1::parse_response_head(&ex.buf, rules.max_head, rules.max_headers) {
            Err(_) => return Step::Stop(self.give_up(d)),
            Ok(None) if !ex.eof => return Step::Stop(Fate::Keep),
            Ok(None) if ex.pooled && !ex.resent && ex.buf.is_empty() => return Step::Stop(self.resend(env, i, d)),
            Ok(None) => return Step::Stop(self.give_up(d)),
            Ok(Some(resp)) => resp,
        };
        let Some((head_bytes, body)) = head::response_head(&resp, ex.head_request, ex.keep_down, ex.req_minor, rules) else {
            return Step::Stop(self.give_up(d));
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
        Step::Next
    }

    /// Nothing reached the upstream: report it, and give the request back to the host (it
    /// requeues it).
    fn connect_failed<E: Env>(&mut self, env: &mut E, d: &mut Down) -> Fate {
        let Some(mut ex) = self.take_ex(d) else {
            return Fate::Close;
        };
        self.drop_up(ex.up, &mut ex.sock);
        let (branch, server, slot, started, ended) = (ex.branch_id(), d.server, ex.slot, ex.started, self.now);
        env.emit(Event::Failed { branch, server, slot, started, ended });
        let raw = std::mem::take(&mut ex.raw);
        let body = std::mem::take(&mut ex.body);
        d.buf.splice(0..0, raw.into_iter().chain(body));
        Fate::Handoff
    }

    /// A pooled connection turned out closed before answering: send once more on a new one.
    fn resend<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down) -> Fate {
        let Some(ex) = d.ex.as_mut() else {
            return Fate::Close;
        };
        // the slot stays this exchange's: only the socket behind its token changes
        let _ = self.poll.registry().deregister(&mut ex.sock);
        match connect(ex.addr) {
            Ok(sock) => ex.sock = sock,
            Err(_) => return self.connect_failed(env, d),
        }
        ex.pooled = false;
        ex.resent = true;
        ex.state = Up::Connecting;
        ex.fwd_pos = 0;
        ex.buf.clear();
        ex.eof = false;
        ex.error = 0;
        ex.closing = false;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if self.poll.registry().register(&mut ex.sock, up_token(ex.up), interest).is_err() {
            return self.connect_failed(env, d);
        }
        self.on_up(env, i, d)
    }

    /// The host continues the exchange from here (a response the lane does not relay itself).
    fn give_up(&mut self, d: &mut Down) -> Fate {
        match self.take_ex(d) {
            Some(mut ex) => {
                self.drop_up(ex.up, &mut ex.sock);
                Fate::Resume(ex)
            }
            None => Fate::Close,
        }
    }
}
