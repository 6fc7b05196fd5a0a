//! Upstream connections: the lane's keep-alive pools, and the slots (epoll tokens) of every
//! upstream socket it holds, busy or pooled.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::core::Core;

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

    /// Forgets the endpoints with no idle connection (an endpoint once used costs nothing after).
    pub fn shrink(&mut self) {
        self.idle.retain(|_, list| !list.is_empty());
        if self.idle.capacity() > 2 * self.idle.len() + 16 {
            self.idle.shrink_to_fit();
        }
    }
}

/// Nothing to read and not closed: readable would mean the upstream closed it (or sent bytes
/// unasked), and either way it must not carry another request.
pub fn still_open(sock: &TcpStream) -> bool {
    let mut one = [0u8; 1];
    matches!(sock.peek(&mut one), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Who holds an upstream socket: a client connection's exchange, or the pool.
#[derive(Clone, Copy)]
pub(super) enum UpOwner {
    Conn(usize),
    Pool(SocketAddr),
}

/// The upstream sockets by slot (token `2 * slot + 1`), registered from connect to close.
#[derive(Default)]
pub(super) struct UpSlots {
    owners: Vec<Option<UpOwner>>,
    free: Vec<usize>,
}

impl UpSlots {
    /// A slot for a new upstream socket held by connection `conn`.
    pub(super) fn open(&mut self, conn: usize) -> usize {
        match self.free.pop() {
            Some(k) => {
                self.owners[k] = Some(UpOwner::Conn(conn));
                k
            }
            None => {
                self.owners.push(Some(UpOwner::Conn(conn)));
                self.owners.len() - 1
            }
        }
    }

    /// The socket in `slot` is gone: the slot can be reused.
    pub(super) fn release(&mut self, slot: usize) {
        if let Some(owner) = self.owners.get_mut(slot) {
            if owner.take().is_some() {
                self.free.push(slot);
            }
        }
    }

    pub(super) fn set(&mut self, slot: usize, owner: UpOwner) {
        self.owners[slot] = Some(owner);
    }

    pub(super) fn owner(&self, slot: usize) -> Option<UpOwner> {
        self.owners.get(slot).copied().flatten()
    }

    /// Upstream connections in the pools.
    pub(super) fn pooled(&self) -> usize {
        self.owners.iter().filter(|o| matches!(o, Some(UpOwner::Pool(_)))).count()
    }

    pub(super) fn clear(&mut self) {
        self.owners.clear();
        self.free.clear();
    }

    /// Gives back the unused tail of the table (a slot is a token: only the end can go); the
    /// lowest free slots are reused first.
    pub(super) fn shrink(&mut self) {
        while matches!(self.owners.last(), Some(None)) {
            self.owners.pop();
        }
        let n = self.owners.len();
        self.free.retain(|&k| k < n);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        if self.owners.capacity() > 2 * n + 64 {
            self.owners.shrink_to(n + n / 2);
            self.free.shrink_to(n);
        }
    }

    /// Slots in the table (used or free), for the tests of its bounds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.owners.len()
    }
}

impl Core {
    /// The upstream socket in `slot` leaves the lane (closed, or handed over).
    pub(super) fn drop_up(&mut self, slot: usize, sock: &mut TcpStream) {
        let _ = self.poll.registry().deregister(sock);
        self.ups.release(slot);
    }

    /// A pooled connection to `addr` (its slot now held by connection `conn`), or None.
    pub(super) fn take_pooled(&mut self, addr: SocketAddr, conn: usize) -> Option<(TcpStream, usize)> {
        let mut stale = Vec::new();
        let found = self.pools.take(addr, self.now, &mut stale);
        for (mut sock, k) in stale {
            self.drop_up(k, &mut sock);
        }
        let (sock, k) = found?;
        self.ups.set(k, UpOwner::Conn(conn));
        Some((sock, k))
    }

    /// Keeps an upstream connection for reuse (it stays registered under its slot's token), or
    /// closes it when its endpoint's pool is full.
    pub(super) fn pool(&mut self, addr: SocketAddr, sock: TcpStream, slot: usize) {
        self.ups.set(slot, UpOwner::Pool(addr));
        if let Some((mut sock, _)) = self.pools.put(addr, sock, slot, self.now) {
            self.drop_up(slot, &mut sock);
        }
    }

    /// The upstream socket in `slot` turned ready: the connection whose it is, or None once a
    /// pooled connection the upstream closed has been dropped (a spurious event is ignored).
    pub(super) fn up_ready(&mut self, slot: usize) -> Option<usize> {
        match self.ups.owner(slot)? {
            UpOwner::Conn(i) => Some(i),
            UpOwner::Pool(addr) => {
                if let Some(mut sock) = self.pools.evict(addr, slot) {
                    self.drop_up(slot, &mut sock);
                }
                None
            }
        }
    }
}
