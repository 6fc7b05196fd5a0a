//! What the lane's core tells its host ([`Event`]) and what it asks of it ([`Env`]).
//!
//! The core knows route branches only by the [`BranchId`] the host gave each when it installed a
//! route; the host maps the id to its own objects (in pyproxy, the Python branch and its client's
//! balancer). Sockets travel in the events as owned streams: the host takes them over.

use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;

use super::results::Hist;

/// A route branch as the host named it when it installed the route (opaque to the lane).
pub type BranchId = usize;

/// One thing the host must act on, in the order the lane saw them.
#[derive(Debug)]
pub enum Event {
    /// A request the lane declines: the host serves the connection, starting with `received`
    /// (everything the client sent that the lane did not consume); `eof`: the client has closed
    /// its sending side (nothing more will come after `received`).
    Handoff { server: usize, sock: TcpStream, received: Vec<u8>, eof: bool },
    /// Requests the lane completed, summed per branch, listener and status (one per batch, after
    /// the other events of the same call); their latencies already went to the balancer.
    Done {
        branch: BranchId,
        server: usize,
        status: u16,
        count: u64,
        /// Time to the response head, ms.
        head_ms: Hist,
        /// Time to the end of the response, ms.
        total_ms: Hist,
        /// Completed requests per endpoint slot.
        slots: Vec<(i64, u64)>,
        /// Requests per second (of the caller's clock) they started in.
        seconds: Vec<(i64, u64)>,
    },
    /// A response the lane will not relay: the host continues the exchange with both connections.
    /// `down_buf` is what the client sent past the request head (its body first), `head` the
    /// request head as received, `up_buf` what the upstream sent so far, `up_eof` whether it ended,
    /// `up_error` the OS error that ended it (0: none, a plain end of stream); `expired` says
    /// which deadline passed, if that is why the lane stopped (before the response head).
    Resume {
        branch: BranchId,
        server: usize,
        slot: i64,
        started: f64,
        down: TcpStream,
        down_buf: Vec<u8>,
        head: Vec<u8>,
        up: TcpStream,
        up_buf: Vec<u8>,
        up_eof: bool,
        up_error: i32,
        expired: Expired,
    },
    /// The upstream could not be reached (nothing was received by it); a [`Event::Handoff`] with
    /// the request follows so the host can requeue it.
    Failed { branch: BranchId, server: usize, slot: i64, started: f64, ended: f64 },
    /// An exchange abandoned before its response head (the client went away, or the endpoint
    /// picked is no longer the route's): the host ends the pick.
    Abandon { branch: BranchId, server: usize, slot: i64, started: f64, ended: f64 },
    /// One request of a [`Event::Done`] batch sampled for `io.l5d.recentRequests`: its method and
    /// target as received, and the client's address.
    Sampled {
        branch: BranchId,
        server: usize,
        slot: i64,
        started: f64,
        ended: f64,
        status: u16,
        method: Vec<u8>,
        target: Vec<u8>,
        peer: Option<SocketAddr>,
    },
    /// One request answered on a listener with an access log: its head as received, the client's
    /// address, the status and the Content-Length answered (-1: none, or chunked).
    Access { server: usize, head: Vec<u8>, peer: Option<IpAddr>, status: u16, length: i64 },
}

/// Which deadline of an exchange passed before its response head ([`Event::Resume`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// None: the lane hands the response over for another reason.
    No = 0,
    /// The client's `requestAttemptTimeoutMs`, while the upstream connection was being opened
    /// (the request was not sent: the host requeues it as it does a connect that timed out).
    Connect = 1,
    /// The client's `requestAttemptTimeoutMs`, after the request was (being) sent.
    Attempt = 2,
    /// The request's deadline (`totalTimeoutMs`, `l5d-ctx-deadline`).
    Request = 3,
}

/// The host as the core sees it: the balancers of its branches, and where events go.
pub trait Env {
    /// Picks an endpoint slot of `branch` for one request and counts it as started there; None
    /// (or a negative slot) when there is none.
    fn pick(&mut self, branch: BranchId, now: f64, draw: u64) -> Option<i64>;
    /// Ends one request picked on `slot` of `branch`, `rtt` seconds to its response head.
    fn end(&mut self, branch: BranchId, slot: i64, now: f64, rtt: f64);
    /// Takes one event.
    fn emit(&mut self, event: Event);
}
