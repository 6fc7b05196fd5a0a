//! The lane: the native data path for the requests pyproxy forwards most, driven from the trio loop.
//!
//! A listener whose router qualifies hands every accepted connection to the lane
//! (`pyproxy/lane.py`). The lane reads request heads with the [`crate::h1`] parser, and forwards on
//! its own the requests it can take entirely in Rust: no body (or a small one, buffered whole), a
//! route the host installed for the same key (server, identifier value, override fields),
//! responses 200-499 framed by Content-Length or chunks, or without a body. Everything else goes
//! back to the host (in pyproxy, the Python path, which is the lane's twin and specification).
//!
//! This module is plain Rust: the host is reached through [`event::Env`] (a branch's balancer,
//! and where [`event::Event`]s go), and knows the lane's routes by the [`event::BranchId`]s it
//! gave their branches. What the host is told:
//!
//! * [`Event::Handoff`]: a request the lane declines, with its connection, the bytes received and
//!   whether the client closed its side (the connection stays with the host until a request of it
//!   qualifies again); declined too: a request over `maxConcurrentRequests` (the lane's exchanges
//!   and the host's requests together, [`Core::set_active`]) and one whose deadline already passed;
//! * [`Event::Resume`]: a response the lane will not relay (5xx for classification and retries,
//!   interim, close-delimited, unparsable), or an exchange whose deadline passed before its
//!   response head ([`Expired`]: the attempt's, the request's), with both connections, so the
//!   host's exchange continues where the lane stopped;
//! * [`Event::Failed`]: an upstream the lane could not reach (a handoff of the request follows);
//! * [`Event::Abandon`]: an exchange given up before its response (the client went away);
//! * [`Event::Done`]: completed requests, summed per branch, listener and status at the end of
//!   each call (their latency went to the balancer at once, through [`event::Env::end`]);
//! * [`Event::Sampled`] and [`Event::Access`]: one request each, for `io.l5d.recentRequests` and
//!   the access log.
//!
//! [`core`] holds the event loop and the host's calls, [`connection`] a client connection,
//! [`upstream`] an exchange with an upstream, [`relay`] the response body, [`pool`] the idle
//! upstream connections, [`head`] the header rules, [`trace`] the trace ids and draws,
//! [`results`] the summed results, `timer` the deadlines' timerfd, and this module the socket
//! helpers. `py/lane.rs` wraps the core for Python.
//!
//! Every per-connection buffer is bounded: a client's received bytes by a head's worth between
//! requests and `connection::READ_AHEAD` while one is in flight; its pending response by
//! `relay::HIGH_WATER` plus one body read; an upstream's by a head's worth, then one body read.
//! An emptied buffer gives back its capacity past 64 KiB, and [`Core::sweep`] gives back the unused
//! tails of the slot tables and the pools' empty lists.

mod connection;
pub mod core;
pub mod event;
pub mod head;
pub mod pool;
mod relay;
mod timer;
pub mod results;
pub mod trace;
mod upstream;

pub use self::core::{BranchSpec, Core, ServerConfig, UnknownServer};
pub use self::event::{BranchId, Env, Event, Expired};

use std::io::{self, Read, Write};

use mio::net::TcpStream;

/// Adopts a connected TCP socket descriptor handed over by Python (`socket.detach()`).
///
/// The descriptor must be an open, connected stream socket that nothing else will use or close
/// from now on: Python detached it from its socket object before the call.
#[allow(unsafe_code)]
pub fn adopt_fd(fd: i32) -> io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: ownership of `fd` was transferred by the caller (see above); from here on the
    // returned stream is its only owner and closes it when dropped.
    let std = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    std.set_nonblocking(true)?;
    Ok(TcpStream::from_std(std))
}

/// Gives a socket's descriptor back (to Python); the stream no longer closes it.
pub fn release_fd(sock: TcpStream) -> i32 {
    use std::os::fd::IntoRawFd;
    sock.into_raw_fd()
}

/// Reads what is available into `buf`, at most `limit` bytes in all: (bytes read, end of stream).
/// Stops at `WouldBlock`, or after a read shorter than asked: on a TCP socket that read emptied
/// the receive queue, and new data will raise a new edge (saves an `EAGAIN` call per read). An
/// error other than `WouldBlock` is returned.
///
/// `closing`: a readiness event said the peer closed its sending side. Its FIN may have come with
/// the last bytes, and no later edge would tell: then a short read is not taken as drained, and
/// reading goes on until the end of the stream (or `WouldBlock`, or the limit) is seen.
pub fn read_some(sock: &mut TcpStream, buf: &mut Vec<u8>, limit: usize, closing: bool) -> io::Result<(usize, bool)> {
    let mut total = 0;
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < limit {
        let want = chunk.len().min(limit - buf.len());
        match sock.read(&mut chunk[..want]) {
            Ok(0) => return Ok((total, true)),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                total += n;
                if n < want && !closing {
                    return Ok((total, false));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((total, false)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok((total, false))
}

/// Writes `data[*pos..]` until done or `WouldBlock`; true when everything was written.
pub fn write_some(sock: &mut TcpStream, data: &[u8], pos: &mut usize) -> io::Result<bool> {
    while *pos < data.len() {
        match sock.write(&data[*pos..]) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => *pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
