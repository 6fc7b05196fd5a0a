//! The lane: the native data path for the requests pyproxy forwards most, driven from the trio loop.
//!
//! A listener whose router qualifies hands every accepted connection to the lane
//! (`pyproxy/lane.py`). The lane reads request heads with the [`crate::h1`] parser, and forwards on
//! its own the requests it can take entirely in Rust: no body, a route the Python path installed
//! for the same key (server, identifier value, override fields), responses 200-499 framed by
//! Content-Length or chunks, or without a body. Everything else goes back to the Python path, which is the
//! lane's twin and specification: a request the lane declines is handed over with the bytes
//! received (the connection then stays with Python until a request of it qualifies again), and a
//! response it will not relay (5xx for classification and retries, interim, close-delimited,
//! unparsable) is handed over with both connections so the Python exchange
//! continues where the lane stopped. Results (latency, status) go back as events, so balancing,
//! failure accrual, budgets and metrics stay in Python and count both paths alike.
//!
//! [`head`] holds the header rules, [`trace`] the trace ids and draws, and this module the socket
//! helpers; the event loop itself is `py/lane.rs` (it borrows the Python-side balancers).

pub mod head;
pub mod results;
pub mod trace;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

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
pub fn read_some(sock: &mut TcpStream, buf: &mut Vec<u8>, limit: usize) -> io::Result<(usize, bool)> {
    let mut total = 0;
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < limit {
        let want = chunk.len().min(limit - buf.len());
        match sock.read(&mut chunk[..want]) {
            Ok(0) => return Ok((total, true)),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                total += n;
                if n < want {
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

/// A pooled connection idle for longer than this is checked before reuse (`pyproxy.client.CHECK_AFTER`).
pub const CHECK_AFTER: f64 = 1.0;
/// Idle connections kept per endpoint (`pyproxy.client.EndpointPool.max_idle`).
pub const MAX_IDLE: usize = 128;

/// Idle upstream connections per endpoint address, most recently used last, each with the lane's
/// slot for it (its epoll token: a pooled connection stays registered, so taking it or putting it
/// back costs no system call, and the upstream closing it is seen at once).
#[derive(Default)]
pub struct Pools {
    idle: HashMap<SocketAddr, Vec<(TcpStream, usize, f64)>>,
}

impl Pools {
    /// A pooled connection to `addr` that is still open, or None; connections found closed are
    /// moved to `stale` (the caller releases their slots).
    pub fn take(&mut self, addr: SocketAddr, now: f64, stale: &mut Vec<(TcpStream, usize)>) -> Option<(TcpStream, usize)> {
        let list = self.idle.get_mut(&addr)?;
        while let Some((sock, slot, since)) = list.pop() {
            if now - since < CHECK_AFTER || still_open(&sock) {
                return Some((sock, slot));
            }
            stale.push((sock, slot));
        }
        None
    }

    /// Keeps `sock` for reuse; gives it back when the endpoint already has enough.
    pub fn put(&mut self, addr: SocketAddr, sock: TcpStream, slot: usize, now: f64) -> Option<(TcpStream, usize)> {
        let list = self.idle.entry(addr).or_default();
        if list.len() < MAX_IDLE {
            list.push((sock, slot, now));
            return None;
        }
        Some((sock, slot))
    }

    /// Takes out the pooled connection in `slot` if the upstream closed it or sent bytes unasked
    /// (its socket turned readable while idle); None while it is still fit for reuse.
    pub fn evict(&mut self, addr: SocketAddr, slot: usize) -> Option<TcpStream> {
        let list = self.idle.get_mut(&addr)?;
        let at = list.iter().position(|(_, s, _)| *s == slot)?;
        if still_open(&list[at].0) {
            return None;
        }
        Some(list.remove(at).0)
    }

    pub fn clear(&mut self) {
        self.idle.clear();
    }
}

/// Nothing to read and not closed: readable would mean the upstream closed it (or sent bytes
/// unasked), and either way it must not carry another request.
fn still_open(sock: &TcpStream) -> bool {
    let mut one = [0u8; 1];
    matches!(sock.peek(&mut one), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests;
