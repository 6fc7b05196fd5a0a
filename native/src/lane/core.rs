//! The lane's core: its `mio::Poll`, the listeners' rules, the routes, the client connections, and
//! the calls its host makes (adopt, poll, sweep, drain, install, close).
//!
//! The core owns no host object: a route's branches are [`BranchId`]s, balancing goes through
//! [`Env::pick`] and [`Env::end`], and what the host must do comes back through [`Env::emit`].
//! [`super::connection`] drives a client connection, [`super::upstream`] an exchange with an
//! upstream, [`super::relay`] the response body, [`super::pool`] the idle upstream connections.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::connection::{Down, Fate};
use super::event::{BranchId, Env, Event, Expired};
use super::head::ServerRules;
use super::pool::{Pools, UpSlots};
use super::results::{Batch, Results};
use super::timer::Timer;
use super::trace::Draws;
use super::upstream::{Exchange, Up};
use super::write_some;

/// Batches of ready sockets one [`Core::poll`] handles at most before it returns to the host.
const POLL_ROUNDS: usize = 4;
/// Routes kept at most; installing one more forgets them all (the table's memory too).
const MAX_ROUTES: usize = 10_000;
/// The timer's token (odd like an upstream's, but never a slot: checked first).
const TIMER: Token = Token(usize::MAX);

/// A listener's rules, as the host registers it.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub rules: ServerRules,
    pub idle_timeout: f64,
    pub header_timeout: f64,
    /// What a client whose head is too slow gets before the connection closes (a 408).
    pub timeout_response: Vec<u8>,
    /// The router keeps an access log: each request answered comes back as [`Event::Access`].
    pub access_log: bool,
    /// `timestampHeader`: this field gets the time in milliseconds on each request forwarded.
    pub timestamp_header: Option<Vec<u8>>,
    /// `socketOptions.writeTimeoutMs` in seconds: a client connection whose pending response
    /// bytes make no progress for this long is closed (with its exchange and upstream).
    pub write_timeout: f64,
    /// `maxConcurrentRequests`: the lane declines a request while the listener's requests in
    /// flight (the lane's and the host's, see [`Core::set_active`]) are this many.
    pub max_concurrent: Option<usize>,
}

pub(super) struct Server {
    pub(super) cfg: ServerConfig,
    pub(super) draining: bool,
    /// Client connections the lane holds.
    pub(super) count: usize,
    /// The lane's exchanges in flight on this listener.
    pub(super) in_flight: usize,
    /// The host's requests in flight on this listener, as it last said ([`Core::set_active`]).
    pub(super) py_active: usize,
}

/// One branch of a route as the host installs it: its id (named in events and in [`Env`] calls),
/// weight, endpoints as `(balancer slot, address)`, its `l5d-dst-*` field block, and its
/// client's `requestAttemptTimeoutMs` in seconds.
#[derive(Clone, Debug)]
pub struct BranchSpec {
    pub id: BranchId,
    pub weight: f64,
    pub endpoints: Vec<(i64, SocketAddr)>,
    pub block: Vec<u8>,
    pub attempt_timeout: Option<f64>,
}

pub(super) struct Branch {
    pub(super) id: BranchId,
    weight: f64,
    pub(super) endpoints: HashMap<i64, SocketAddr>,
    pub(super) block: Vec<u8>,
    pub(super) attempt_timeout: Option<f64>,
}

/// An installed route. Exchanges in flight keep theirs (an `Rc`) after it is replaced or forgotten;
/// when the last reference goes, its branch ids are listed for [`Core::released`].
pub(super) struct Route {
    pub(super) branches: Vec<Branch>,
    total: f64,
    pub(super) ctx_block: Vec<u8>,
    /// The override's W3C baggage member (`key=value`), written first in `baggage` per request.
    pub(super) member: Option<Vec<u8>>,
    /// A signed override's end of validity (Unix seconds): later requests go to the host.
    pub(super) until: Option<f64>,
    /// The service's `totalTimeoutMs` in seconds.
    pub(super) total_timeout: Option<f64>,
    released: Rc<RefCell<Vec<BranchId>>>,
}

impl Drop for Route {
    fn drop(&mut self) {
        self.released.borrow_mut().extend(self.branches.iter().map(|b| b.id));
    }
}

impl Route {
    /// The branch for one request: by weight, or uniformly when no branch has any.
    pub(super) fn pick_branch(&self, draws: &mut Draws) -> usize {
        let n = self.branches.len();
        if n == 1 {
            return 0;
        }
        if self.total <= 0.0 {
            return ((draws.unit() * n as f64) as usize).min(n - 1);
        }
        let mut x = draws.unit() * self.total;
        for (j, b) in self.branches.iter().enumerate() {
            x -= b.weight;
            if x < 0.0 {
                return j;
            }
        }
        n - 1
    }
}

/// The adopted socket's listener index is unknown (the socket was closed).
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownServer;

/// The native data path's event loop.
pub struct Core {
    pub(super) poll: Poll,
    events: Events,
    /// Client connections by slot (token `2 * slot`).
    conns: Vec<Option<Down>>,
    free: Vec<usize>,
    pub(super) routes: HashMap<Vec<u8>, Rc<Route>>,
    released: Rc<RefCell<Vec<BranchId>>>,
    pub(super) pools: Pools,
    pub(super) ups: UpSlots,
    pub(super) draws: Draws,
    pub(super) servers: Vec<Server>,
    /// The caller's clock, as of the call being served.
    pub(super) now: f64,
    /// `io.l5d.recentRequests`'s sample rate (0: off).
    pub(super) recent: f64,
    /// Completed requests, summed until the end of the call ([`Event::Done`]).
    results: Results<()>,
    /// The timer of the exchanges' deadlines (made when the first one needs it), and when it is
    /// due (the host's clock; infinite: not armed).
    timer: Option<Timer>,
    timer_at: f64,
}

pub(super) fn down_token(i: usize) -> Token {
    Token(2 * i)
}

pub(super) fn up_token(slot: usize) -> Token {
    Token(2 * slot + 1)
}

impl Core {
    /// `seed`: the lane's draws; `recent`: `io.l5d.recentRequests`'s sample rate (0: none).
    pub fn new(seed: u64, recent: f64) -> io::Result<Core> {
        Ok(Core {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Vec::new(),
            free: Vec::new(),
            routes: HashMap::new(),
            released: Rc::default(),
            pools: Pools::default(),
            ups: UpSlots::default(),
            draws: Draws::new(seed),
            servers: Vec::new(),
            now: 0.0,
            recent: if recent.is_finite() { recent.clamp(0.0, 1.0) } else { 0.0 },
            results: Results::default(),
            timer: None,
            timer_at: f64::INFINITY,
        })
    }

    /// Registers a listener's rules; returns its index (the `server` of events and route keys).
    pub fn add_server(&mut self, cfg: ServerConfig) -> usize {
        self.servers.push(Server { cfg, draining: false, count: 0, in_flight: 0, py_active: 0 });
        self.servers.len() - 1
    }

    /// The host's requests in flight on listener `server` now (its half of `maxConcurrentRequests`).
    pub fn set_active(&mut self, server: usize, active: usize) {
        if let Some(s) = self.servers.get_mut(server) {
            s.py_active = active;
        }
    }

    /// The lane's exchanges in flight on listener `server` (the host's view of the shared cap).
    pub fn in_flight(&self, server: usize) -> usize {
        self.servers.get(server).map_or(0, |s| s.in_flight)
    }

    /// The descriptor the host waits on (readable: something is ready).
    pub fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.poll.as_raw_fd()
    }

    // === routes ===

    /// Installs a route under `key` (see [`super::head::route_key`]), with its service's
    /// `totalTimeoutMs` (seconds), the override's fixed fields (`ctx_block`) and W3C member, and a
    /// signed override's end of validity (Unix seconds); false without branches.
    #[allow(clippy::too_many_arguments)]
    pub fn install(
        &mut self,
        key: Vec<u8>,
        branches: Vec<BranchSpec>,
        ctx_block: Vec<u8>,
        total_timeout: Option<f64>,
        member: Option<Vec<u8>>,
        until: Option<f64>,
    ) -> bool {
        if branches.is_empty() {
            return false;
        }
        let mut total = 0.0;
        let branches: Vec<Branch> = branches
            .into_iter()
            .map(|b| {
                let weight = b.weight.max(0.0);
                total += weight;
                let attempt_timeout = b.attempt_timeout.filter(|t| t.is_finite() && *t > 0.0);
                Branch { id: b.id, weight, endpoints: b.endpoints.into_iter().collect(), block: b.block, attempt_timeout }
            })
            .collect();
        if self.routes.len() >= MAX_ROUTES {
            self.routes = HashMap::new();
        }
        let total_timeout = total_timeout.filter(|t| t.is_finite() && *t > 0.0);
        let until = until.filter(|t| !t.is_nan());
        let route = Route { branches, total, ctx_block, member, until, total_timeout, released: Rc::clone(&self.released) };
        self.routes.insert(key, Rc::new(route));
        true
    }

    /// Forgets every route (exchanges in flight keep theirs).
    pub fn clear_routes(&mut self) {
        self.routes = HashMap::new();
    }

    /// Number of installed routes.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// The branch ids no route or exchange refers to any more (each once): every event naming
    /// them has been emitted, and the host may forget them.
    pub fn released(&mut self) -> Vec<BranchId> {
        std::mem::take(&mut *self.released.borrow_mut())
    }

    // === connections ===

    /// Takes a client connection over, with the bytes already `received` from it.
    pub fn adopt<E: Env>(&mut self, env: &mut E, sock: TcpStream, received: &[u8], server: usize, now: f64) -> Result<(), UnknownServer> {
        if server >= self.servers.len() {
            return Err(UnknownServer);
        }
        let i = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let mut d = Down::new(sock, server, received.to_vec(), now);
        self.now = now;
        self.servers[server].count += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        let fate = if self.poll.registry().register(&mut d.sock, down_token(i), interest).is_err() {
            Fate::Handoff
        } else {
            self.advance(env, i, &mut d)
        };
        self.settle(env, i, d, fate);
        self.end_call(env);
        Ok(())
    }

    /// Does all the I/O that is ready, without blocking; `now` is the host's clock.
    pub fn poll<E: Env>(&mut self, env: &mut E, now: f64) -> io::Result<()> {
        // Sockets that turn ready while a batch is handled are handled in the same call (up to
        // POLL_ROUNDS batches): under load that saves the host a wake-up per batch. The clock moves
        // on from the host's `now` by the time spent here.
        let start = std::time::Instant::now();
        for round in 0..POLL_ROUNDS {
            self.now = if round == 0 { now } else { now + start.elapsed().as_secs_f64() };
            match self.poll.poll(&mut self.events, Some(Duration::ZERO)) {
                Ok(()) => {}
                // A signal arrived during the call: nothing is lost, the next call sees the events.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
                Err(e) => {
                    self.end_call(env);
                    return Err(e);
                }
            }
            if self.events.is_empty() {
                break;
            }
            self.handle_events(env);
        }
        self.end_call(env);
        Ok(())
    }

    fn handle_events<E: Env>(&mut self, env: &mut E) {
        let ready: Vec<(usize, bool)> = self.events.iter().map(|e| (e.token().0, e.is_read_closed())).collect();
        let mut timer = false;
        for (t, read_closed) in ready {
            if t == TIMER.0 {
                timer = true;
                continue;
            }
            let up = t % 2 == 1;
            let i = if up {
                match self.up_ready(t / 2) {
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
                d.fin |= read_closed;
                self.on_down(env, i, &mut d)
            } else if let Some(ex) = d.ex.as_mut().filter(|ex| ex.up == t / 2) {
                ex.closing |= read_closed;
                self.on_up(env, i, &mut d)
            } else {
                Fate::Keep
            };
            self.settle(env, i, d, fate);
        }
        if timer {
            if let Some(t) = &self.timer {
                t.clear();
            }
            self.timer_at = f64::INFINITY;
            self.expire(env);
        }
    }

    // === deadlines ===

    /// Arms the timer for `at` (the host's clock) unless it is due earlier already.
    pub(super) fn arm_at(&mut self, at: f64) {
        if at >= self.timer_at || !at.is_finite() {
            return;
        }
        if self.timer.is_none() {
            match Timer::new(self.poll.registry(), TIMER) {
                Ok(t) => self.timer = Some(t),
                Err(_) => return, // the sweep still finds what expired, later
            }
        }
        if let Some(t) = &self.timer {
            t.arm(at - self.now);
            self.timer_at = at;
        }
    }

    /// The exchanges whose deadline passed move on (see [`Core::expired`]); the timer is armed
    /// for the next deadline.
    fn expire<E: Env>(&mut self, env: &mut E) {
        let now = self.now;
        let mut next = f64::INFINITY;
        for i in 0..self.conns.len() {
            let Some(due) = self.conns[i].as_ref().and_then(|d| d.ex.as_ref()).map(|ex| ex.due()) else {
                continue;
            };
            if due > now {
                next = next.min(due);
                continue;
            }
            if let Some(mut d) = self.conns[i].take() {
                let fate = self.expired(&mut d);
                self.settle(env, i, d, fate);
            }
        }
        self.arm_at(next);
    }

    /// A deadline of the connection's exchange passed. Before the response head, the exchange
    /// goes to the host, saying which deadline passed: the host fails the attempt as the trio path
    /// does (a retry, or the 503 it answers); after it, the request's deadline cuts the response
    /// short, as the trio path's cancellation does.
    fn expired(&mut self, d: &mut Down) -> Fate {
        let Some(ex) = d.ex.as_ref() else {
            return Fate::Keep;
        };
        if ex.head_at > 0.0 {
            return Fate::Close;
        }
        let kind = if ex.deadline_at <= self.now {
            Expired::Request
        } else if ex.state == Up::Connecting {
            Expired::Connect
        } else {
            Expired::Attempt
        };
        match self.take_ex(d) {
            Some(mut ex) => {
                self.drop_up(ex.up, &mut ex.sock);
                ex.expired = kind;
                Fate::Resume(ex)
            }
            None => Fate::Close,
        }
    }

    /// The connection's exchange leaves it (done, handed over, failed, abandoned).
    pub(super) fn take_ex(&mut self, d: &mut Down) -> Option<Box<Exchange>> {
        let ex = d.ex.take();
        if ex.is_some() {
            self.servers[d.server].in_flight -= 1;
        }
        ex
    }

    /// Carries out what became of connection `i`.
    fn settle<E: Env>(&mut self, env: &mut E, i: usize, d: Down, fate: Fate) {
        match fate {
            Fate::Keep => {
                self.conns[i] = Some(d);
                return;
            }
            Fate::Close => self.close_down(env, d),
            Fate::Handoff => self.handoff(env, d),
            Fate::Resume(ex) => self.resume(env, d, ex),
        }
        self.free.push(i);
    }

    /// Closes connections idle past their listener's idle timeout, and those whose client has
    /// not taken any of the response for the write timeout (with their exchange and upstream);
    /// answers those whose head has been arriving for longer than the header timeout with the
    /// timeout response, then closes them. Deadlines the timer did not report yet are carried
    /// out, and the connection and upstream tables give back their unused tail.
    pub fn sweep<E: Env>(&mut self, env: &mut E, now: f64) {
        self.now = now;
        for i in 0..self.conns.len() {
            let Some(d) = self.conns[i].as_mut() else {
                continue;
            };
            let server = &self.servers[d.server].cfg;
            if d.pending_out() > 0 {
                let since = *d.stalled.get_or_insert(now);
                if now - since >= server.write_timeout {
                    if let Some(d) = self.conns[i].take() {
                        self.close_down(env, d);
                        self.free.push(i);
                    }
                }
                continue;
            }
            if d.ex.is_some() {
                continue;
            }
            let slow_head = d.head_since.is_some_and(|t| now - t >= server.header_timeout);
            let idle = d.buf.is_empty() && d.idle_out() && now - d.since >= server.idle_timeout;
            if slow_head {
                let mut pos = 0;
                let _ = write_some(&mut d.sock, &server.timeout_response, &mut pos);
            }
            if slow_head || idle {
                if let Some(d) = self.conns[i].take() {
                    self.close_down(env, d);
                    self.free.push(i);
                }
            }
        }
        self.expire(env);
        self.shrink();
        self.end_call(env);
    }

    /// Gives back the tails of the slot tables that no connection uses (a slot is a token: only
    /// the unused end can go), and the pools' empty lists; the lowest free slots are reused first.
    fn shrink(&mut self) {
        while matches!(self.conns.last(), Some(None)) {
            self.conns.pop();
        }
        let n = self.conns.len();
        self.free.retain(|&i| i < n);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        if self.conns.capacity() > 2 * n + 64 {
            self.conns.shrink_to(n + n / 2);
            self.free.shrink_to(n);
        }
        self.ups.shrink();
        self.pools.shrink();
    }

    /// Graceful stop of one listener: idle connections close now, busy ones after their response.
    pub fn drain<E: Env>(&mut self, env: &mut E, server: usize) {
        if let Some(s) = self.servers.get_mut(server) {
            s.draining = true;
        }
        for i in 0..self.conns.len() {
            let idle = self.conns[i]
                .as_ref()
                .is_some_and(|d| d.server == server && d.ex.is_none() && d.buf.is_empty() && d.idle_out());
            if idle {
                if let Some(d) = self.conns[i].take() {
                    self.close_down(env, d);
                    self.free.push(i);
                }
            }
        }
        self.end_call(env);
    }

    /// Closes everything (connections, pooled upstreams, routes).
    pub fn close<E: Env>(&mut self, env: &mut E) {
        for i in 0..self.conns.len() {
            if let Some(d) = self.conns[i].take() {
                self.close_down(env, d);
            }
        }
        self.pools.clear();
        self.ups.clear();
        self.routes.clear();
        if let Some(t) = self.timer.take() {
            t.deregister(self.poll.registry());
        }
        self.timer_at = f64::INFINITY;
        self.end_call(env);
    }

    /// Idle upstream connections kept for reuse.
    pub fn pooled(&self) -> usize {
        self.ups.pooled()
    }

    /// Client connections of listener `server` the lane holds now.
    pub fn connections(&self, server: usize) -> usize {
        self.servers.get(server).map_or(0, |s| s.count)
    }

    /// The end of each call: the results summed during it go out, one [`Event::Done`] per batch.
    fn end_call<E: Env>(&mut self, env: &mut E) {
        for b in self.results.take() {
            let Batch { branch, server, status, count, head_ms, total_ms, slots, seconds, .. } = b;
            env.emit(Event::Done { branch, server, status, count, head_ms, total_ms, slots, seconds });
        }
    }

    // === what becomes of a connection ===

    /// The connection goes to the host with everything it sent that was not consumed.
    fn handoff<E: Env>(&mut self, env: &mut E, d: Down) {
        let Down { mut sock, server, buf, eof, .. } = d;
        let _ = self.poll.registry().deregister(&mut sock);
        self.servers[server].count -= 1;
        env.emit(Event::Handoff { server, sock, received: buf, eof });
    }

    /// The connection and its exchange go to the host, which continues the exchange.
    fn resume<E: Env>(&mut self, env: &mut E, d: Down, ex: Box<Exchange>) {
        let Down { sock: mut down, server, buf: rest, .. } = d;
        let _ = self.poll.registry().deregister(&mut down);
        self.servers[server].count -= 1;
        let branch = ex.branch_id();
        let Exchange { sock: up, buf, raw, body, eof, error, expired, slot, started, .. } = *ex;
        // The host reads the request body again from the client's bytes: it goes back in front.
        let mut down_buf = body;
        down_buf.extend_from_slice(&rest);
        let (up_buf, up_eof, up_error) = (buf, eof, error);
        env.emit(Event::Resume { branch, server, slot, started, down, down_buf, head: raw, up, up_buf, up_eof, up_error, expired });
    }

    /// Closes a connection (and its exchange, reported as abandoned or done).
    fn close_down<E: Env>(&mut self, env: &mut E, mut d: Down) {
        let _ = self.poll.registry().deregister(&mut d.sock);
        self.servers[d.server].count -= 1;
        if let Some(mut ex) = self.take_ex(&mut d) {
            self.drop_up(ex.up, &mut ex.sock);
            if ex.head_at > 0.0 {
                self.completed(env, &ex, d.server);
                self.access(env, d.server, ex.raw, &d.sock, ex.status, ex.length);
            } else {
                let (branch, server, slot, started, ended) = (ex.branch_id(), d.server, ex.slot, ex.started, self.now);
                env.emit(Event::Abandon { branch, server, slot, started, ended });
            }
        }
    }

    // === results ===

    /// A request completed: its latency goes to the balancer now (the next pick sees it), the rest
    /// into this call's results.
    pub(super) fn completed<E: Env>(&mut self, env: &mut E, ex: &Exchange, server: usize) {
        let branch = ex.branch_id();
        env.end(branch, ex.slot, ex.head_at, (ex.head_at - ex.started).max(0.0));
        self.results.add(branch, server, ex.status, ex.slot, ex.started, ex.head_at, self.now, || ());
    }

    /// The access log's record of one answered request: the head as received (the host reads the
    /// fields it logs from it, as it does for its own requests), the peer, status and length.
    pub(super) fn access<E: Env>(&mut self, env: &mut E, server: usize, raw: Vec<u8>, sock: &TcpStream, status: u16, length: i64) {
        if !self.servers[server].cfg.access_log {
            return;
        }
        let peer = sock.peer_addr().ok().map(|a| a.ip());
        env.emit(Event::Access { server, head: raw, peer, status, length });
    }
}

#[cfg(test)]
impl Core {
    /// The lengths of the client and upstream slot tables (used or free).
    pub(super) fn slots(&self) -> (usize, usize) {
        (self.conns.len(), self.ups.len())
    }

    /// Bytes waiting to be written to clients, and bytes read from upstreams and not yet relayed.
    pub(super) fn buffered(&self) -> (usize, usize) {
        self.conns.iter().flatten().fold((0, 0), |(out, up), d| {
            (out + d.pending_out(), up + d.ex.as_ref().map_or(0, |ex| ex.buf.len()))
        })
    }
}
