//! A client connection (`Down`): reading request heads (and small bodies), pipelining and
//! read-ahead, keep-alive, and the choice made for each request: forward it, wait for more bytes,
//! hand the connection over, or close it.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use mio::net::TcpStream;

use super::core::{Core, Route};
use super::event::{Env, Event};
use super::head::{self, Scan};
use super::trace::TraceId;
use super::upstream::Exchange;
use super::{read_some, write_some};
use crate::h1;

/// Pipelined bytes read ahead while a request is in flight (the bound of `Down::buf` then;
/// between requests it holds at most a head's worth and a little more, see `read_down`).
pub const READ_AHEAD: usize = 1 << 20;
/// What is written downstream is compacted once this much of it was sent.
const COMPACT_AFTER: usize = 1 << 16;
/// A buffer emptied with more capacity than this gives the rest back (a connection that once
/// carried a large response or pipeline does not keep its memory while idle).
pub(super) const KEEP_CAPACITY: usize = 1 << 16;

pub(super) struct Down {
    pub(super) sock: TcpStream,
    pub(super) server: usize,
    /// Received and not yet consumed.
    pub(super) buf: Vec<u8>,
    /// To be written to the client (`out[out_pos..]`).
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) eof: bool,
    /// A readiness event said the client closed its sending side: read until the end of the
    /// stream is seen (its FIN may have come with the last bytes, and no later edge would tell).
    pub(super) fin: bool,
    /// Bytes wait to be written and have made no progress since then (the write timeout counts
    /// from here); None while nothing is stalled.
    pub(super) stalled: Option<f64>,
    /// Reading stopped at the read-ahead limit: the socket may hold more (edge-triggered: no
    /// new event will say so), so the next request reads before it waits.
    full: bool,
    /// Close once the response being written is out (no keep-alive, truncated, draining).
    pub(super) close_after: bool,
    /// Idle since (the idle timeout counts from here).
    pub(super) since: f64,
    /// A head (or its small body) has been arriving since (the header timeout counts from here).
    pub(super) head_since: Option<f64>,
    pub(super) ex: Option<Box<Exchange>>,
}

/// What became of a connection after an event (the caller owns it and carries this out).
pub(super) enum Fate {
    Keep,
    Close,
    /// Hand the connection to the host with the bytes it sent (a declined request).
    Handoff,
    /// Hand the connection and this exchange to the host (a response the lane will not relay).
    Resume(Box<Exchange>),
}

/// A request taken from a connection's buffer, ready to go upstream.
pub(super) struct Request {
    pub(super) route: Rc<Route>,
    pub(super) branch: usize,
    pub(super) slot: i64,
    pub(super) addr: SocketAddr,
    /// The head as received, and the (small) body.
    pub(super) raw: Vec<u8>,
    pub(super) body: Vec<u8>,
    /// The head and body as forwarded.
    pub(super) fwd: Vec<u8>,
    pub(super) keep_down: bool,
    pub(super) head_request: bool,
    pub(super) req_minor: u8,
    /// When the attempt and the request time out (the host's clock; infinite: never).
    pub(super) attempt_at: f64,
    pub(super) deadline_at: f64,
}

impl Down {
    pub(super) fn new(sock: TcpStream, server: usize, received: Vec<u8>, now: f64) -> Down {
        Down {
            sock,
            server,
            buf: received,
            out: Vec::new(),
            out_pos: 0,
            eof: false,
            fin: false,
            stalled: None,
            full: false,
            close_after: false,
            since: now,
            head_since: None,
            ex: None,
        }
    }

    /// Bytes waiting to be written to the client.
    pub(super) fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// Nothing waits to be written.
    pub(super) fn idle_out(&self) -> bool {
        self.out_pos >= self.out.len()
    }

    /// Writes what waits; true when all of it is out. `now`: the write timeout counts from the
    /// last write that made progress.
    pub(super) fn flush(&mut self, now: f64) -> io::Result<bool> {
        if self.idle_out() {
            return Ok(true);
        }
        let before = self.out_pos;
        let done = write_some(&mut self.sock, &self.out, &mut self.out_pos)?;
        if done {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > KEEP_CAPACITY {
                self.out.shrink_to(KEEP_CAPACITY);
            }
            self.stalled = None;
        } else {
            if self.out_pos > before || self.stalled.is_none() {
                self.stalled = Some(now);
            }
            if self.out_pos > COMPACT_AFTER {
                self.out.drain(..self.out_pos);
                self.out_pos = 0;
            }
        }
        Ok(done)
    }

    /// Gives back the spare capacity of an emptied read buffer.
    pub(super) fn trim(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
    }

    /// Reads what the client sent, up to `limit` bytes buffered.
    fn read(&mut self, limit: usize) -> io::Result<()> {
        if self.eof {
            self.full = false;
        } else if self.buf.len() >= limit {
            self.full = true; // not drained: read once there is room
        } else {
            let (_, eof) = read_some(&mut self.sock, &mut self.buf, limit, self.fin)?;
            self.eof |= eof;
            self.full = !eof && self.buf.len() >= limit; // stopped by the limit, not by WouldBlock
        }
        Ok(())
    }

}

/// Waits for the rest of a head or of its small body (the header timeout counts from the first
/// wait), or hands over what came when the client has finished sending (the host answers an
/// incomplete request).
fn wait_for_request(eof: bool, head_since: &mut Option<f64>, now: f64) -> Fate {
    if eof {
        return Fate::Handoff;
    }
    head_since.get_or_insert(now);
    Fate::Keep
}

impl Core {
    /// Downstream readiness: write what waits, read what came, then move the connection on.
    pub(super) fn on_down<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down) -> Fate {
        if d.flush(self.now).is_err() {
            return Fate::Close;
        }
        if self.read_down(d).is_err() {
            return Fate::Close;
        }
        if let Some(ex) = d.ex.as_ref() {
            // A body paused for backpressure moves on once the client has taken enough.
            if ex.relaying_body() && d.pending_out() < super::relay::HIGH_WATER {
                return self.on_up(env, i, d);
            }
            return Fate::Keep;
        }
        self.advance(env, i, d)
    }

    /// Reads what the client sent: a head's worth (and a little more) between requests, up to the
    /// read-ahead limit while one is in flight.
    fn read_down(&mut self, d: &mut Down) -> io::Result<()> {
        let limit = if d.ex.is_some() { READ_AHEAD } else { self.servers[d.server].cfg.rules.max_head.max(1 << 16) + (1 << 16) };
        d.read(limit)
    }

    /// A connection without an exchange: close, wait, hand over, or start the next request.
    pub(super) fn advance<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down) -> Fate {
        if let Some(fate) = self.between_requests(d) {
            return fate;
        }
        match self.take_request(env, d) {
            Ok(req) => self.start_exchange(env, i, d, req),
            Err(fate) => fate,
        }
    }

    /// What a connection does before its next request is read: wait for a response to go out or
    /// for bytes, close (done, ended, draining); None when there are bytes to read a request from.
    fn between_requests(&mut self, d: &mut Down) -> Option<Fate> {
        if d.ex.is_some() || d.pending_out() > 0 {
            return Some(Fate::Keep); // the previous response first
        }
        if d.full && self.read_down(d).is_err() {
            return Some(Fate::Close);
        }
        if d.close_after {
            return Some(Fate::Close);
        }
        if d.buf.is_empty() {
            if d.eof {
                return Some(Fate::Close);
            }
            d.since = self.now;
            d.head_since = None;
            d.trim();
            return Some(Fate::Keep);
        }
        // Draining (as the trio path's `Server._serve_connection`): a head that was arriving when
        // the drain began is still served, and so is every request already received whole.
        if self.servers[d.server].draining && d.head_since.is_none() && !self.holds_request(d) {
            return Some(Fate::Close);
        }
        None
    }

    /// Whether the connection's buffer starts with a whole request head (or one that cannot
    /// parse, which gets its error answer).
    pub(super) fn holds_request(&self, d: &Down) -> bool {
        let rules = &self.servers[d.server].cfg.rules;
        !matches!(h1::parse_request_head(&d.buf, rules.max_line, rules.max_head, rules.max_headers), Ok(None))
    }

    /// Takes the next request out of the connection's buffer when the lane forwards it: a
    /// complete head it accepts, a route for its key, its whole body, a branch and an endpoint.
    /// Otherwise the fate of the connection: wait for more, or hand it over.
    fn take_request<E: Env>(&mut self, env: &mut E, d: &mut Down) -> Result<Request, Fate> {
        let rules = &self.servers[d.server].cfg.rules;
        let req = match h1::parse_request_head(&d.buf, rules.max_line, rules.max_head, rules.max_headers) {
            Err(_) => return Err(Fate::Handoff), // the host answers the framing error
            Ok(None) => return Err(wait_for_request(d.eof, &mut d.head_since, self.now)),
            Ok(Some(req)) => req,
        };
        let Some(scan) = head::scan_request(&req, d.server as u16, rules) else {
            return Err(Fate::Handoff);
        };
        let Some(route) = self.routes.get(&scan.key).cloned() else {
            return Err(Fate::Handoff);
        };
        if route.until.is_some_and(|until| wall_ns() as f64 / 1e9 > until) {
            return Err(Fate::Handoff); // a signed override past its expiry: the host says so
        }
        // The baggage sent on (None: members would be dropped for W3C's limits, which the host counts).
        let Some(carried) = head::baggage_block(&scan, rules, !route.ctx_block.is_empty(), route.member.as_deref()) else {
            return Err(Fate::Handoff);
        };
        let body_len = req.content_length.max(0) as usize;
        if d.buf.len() < req.head_len + body_len {
            // a small body still arriving: wait for all of it (the header timeout bounds the wait)
            return Err(wait_for_request(d.eof, &mut d.head_since, self.now));
        }
        let server = &self.servers[d.server];
        if server.cfg.max_concurrent.is_some_and(|max| server.in_flight + server.py_active >= max) {
            return Err(Fate::Handoff); // at maxConcurrentRequests: the host answers 503
        }
        // The request's deadline, as the trio path's `Forwarder.serve` computes it: the tightest of
        // the incoming one and now + totalTimeoutMs (wall clock, ns); one already passed goes to
        // the host, which answers it without sending anything upstream.
        let deadline = match (scan.deadline, route.total_timeout) {
            (None, None) => None,
            (incoming, total) => {
                let now_ns = wall_ns();
                let total_end = total.map(|t| now_ns.saturating_add((t * 1e9) as u64));
                let tightest = match (incoming, total_end) {
                    (Some((_, dl)), Some(te)) => dl.min(te),
                    (Some((_, dl)), None) => dl,
                    (None, te) => te.unwrap_or(u64::MAX),
                };
                if tightest <= now_ns {
                    return Err(Fate::Handoff);
                }
                Some((now_ns, tightest))
            }
        };
        let (branch, slot, addr) = self.choose(env, d.server, &route)?;
        let mut fwd = self.forward_head(&req, &scan, d.server, &route, branch, deadline, &carried);
        let (keep_down, head_request, req_minor, head_len) =
            (head::request_keep_alive(&req), req.method == b"HEAD", req.minor, req.head_len);
        drop(scan);
        drop(req);
        let raw: Vec<u8> = d.buf.drain(..head_len).collect();
        let body: Vec<u8> = d.buf.drain(..body_len).collect();
        fwd.extend_from_slice(&body);
        d.head_since = None;
        let now = self.now;
        let attempt_at = route.branches[branch].attempt_timeout.map_or(f64::INFINITY, |t| now + t);
        let deadline_at = deadline.map_or(f64::INFINITY, |(now_ns, dl)| now + (dl - now_ns) as f64 / 1e9);
        Ok(Request { route, branch, slot, addr, raw, body, fwd, keep_down, head_request, req_minor, attempt_at, deadline_at })
    }

    /// The branch and endpoint for one request: `(branch, balancer slot, address)`; the
    /// connection is handed over when the balancer has no endpoint, or picked one the route does
    /// not know (its client's endpoints changed: that pick is ended at once).
    fn choose<E: Env>(&mut self, env: &mut E, server: usize, route: &Route) -> Result<(usize, i64, SocketAddr), Fate> {
        let branch = route.pick_branch(&mut self.draws);
        let b = &route.branches[branch];
        let draw = self.draws.draw();
        let Some(slot) = env.pick(b.id, self.now, draw).filter(|&s| s >= 0) else {
            return Err(Fate::Handoff); // no endpoint now: the host answers
        };
        let Some(&addr) = b.endpoints.get(&slot) else {
            env.emit(Event::Abandon { branch: b.id, server, slot, started: self.now, ended: self.now });
            return Err(Fate::Handoff);
        };
        Ok((branch, slot, addr))
    }

    /// The request head as forwarded: the route's and branch's fields, a child trace of the
    /// request's (or a new trace), a request id, the override's fields and `carried` (the
    /// baggage), the timestamp field, the deadline (`(now, deadline)` in ns) when there is one.
    #[allow(clippy::too_many_arguments)]
    fn forward_head(
        &mut self,
        req: &h1::Request<'_>,
        scan: &Scan<'_>,
        server: usize,
        route: &Route,
        branch: usize,
        deadline: Option<(u64, u64)>,
        carried: &[u8],
    ) -> Vec<u8> {
        let parent = scan.parent.unwrap_or_else(|| TraceId::root(self.draws.id()));
        let trace = parent.child(self.draws.id());
        let server = &self.servers[server].cfg;
        let mut stamp = server.timestamp_header.as_deref().map_or_else(Vec::new, stamp_field);
        if let Some((now_ns, dl)) = deadline {
            // after everything else the trio path adds (`Forwarder.serve` appends it last)
            stamp.extend_from_slice(&head::deadline_field(now_ns, dl));
        }
        let block = &route.branches[branch].block;
        head::request_head(req, scan, &server.rules, block, &trace.header(), &trace.reqid(), &route.ctx_block, carried, &stamp)
    }
}

/// The wall clock in ns since the epoch (`time.time_ns()`).
fn wall_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// `name: <milliseconds since the epoch>` (the trio path's `timestampHeader` field).
fn stamp_field(name: &[u8]) -> Vec<u8> {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut out = Vec::with_capacity(name.len() + 20);
    out.extend_from_slice(name);
    out.extend_from_slice(format!(": {ms}\r\n").as_bytes());
    out
}
