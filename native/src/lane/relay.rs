//! The response body: relayed as framed by Content-Length, or re-framed chunk by chunk, with
//! backpressure (the upstream is not read while [`HIGH_WATER`] bytes wait for the client); then
//! the end of the exchange: the upstream connection pooled, the results reported.

use std::net::SocketAddr;

use mio::net::TcpStream;

use super::connection::{Down, Fate};
use super::core::Core;
use super::event::{Env, Event};
use super::head;
use super::read_some;
use super::upstream::{Step, Up};
use crate::h1;

/// Stop reading an upstream body while this much is waiting to be written downstream.
pub const HIGH_WATER: usize = 1 << 20;
/// Bytes read from the upstream at most per read of a body, beyond those buffered.
const BODY_READ: usize = 1 << 18;

/// Where a chunked body is: a size line, data (bytes to go), the CRLF after it, the trailers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Chunk {
    Size,
    Data(u64),
    Crlf,
    Trailers,
}

/// What one step through a chunked body leads to.
enum ChunkStep {
    /// On to this part, with the bytes at hand.
    Next(Chunk),
    /// At this part, which needs more bytes.
    Wait(Chunk),
    /// Not a valid chunked body: the response is cut short.
    Bad,
    /// The last chunk and the trailers are relayed.
    End,
}

/// What reading more of a body gave.
enum More {
    /// Bytes (or the end of the stream) to go on with.
    Read,
    /// Nothing now (or the client is slow, or gone): this fate for the connection.
    Stop(Fate),
    /// The upstream ended the body early.
    Ended,
}

/// The limits a chunked body is read with: `(max_line, max_head, max_headers, edge)`.
type ChunkRules = (usize, usize, usize, bool);

/// Moves a chunked body on by one part: from the upstream's bytes (`buf`) to the client's (`out`).
fn chunk_step(buf: &mut Vec<u8>, out: &mut Vec<u8>, chunk: Chunk, rules: ChunkRules) -> ChunkStep {
    let (max_line, max_head, max_headers, edge) = rules;
    match chunk {
        Chunk::Size => match h1::parse_chunk_line(buf, 0, max_line) {
            Err(_) => ChunkStep::Bad,
            Ok(None) => ChunkStep::Wait(Chunk::Size),
            Ok(Some((0, end))) => {
                buf.drain(..end);
                ChunkStep::Next(Chunk::Trailers)
            }
            Ok(Some((size, end))) => {
                buf.drain(..end);
                out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                ChunkStep::Next(Chunk::Data(size))
            }
        },
        Chunk::Data(remaining) => {
            let take = remaining.min(buf.len() as u64) as usize;
            out.extend_from_slice(&buf[..take]);
            buf.drain(..take);
            let remaining = remaining - take as u64;
            if remaining > 0 {
                return ChunkStep::Wait(Chunk::Data(remaining));
            }
            out.extend_from_slice(b"\r\n");
            ChunkStep::Next(Chunk::Crlf)
        }
        Chunk::Crlf if buf.len() < 2 => ChunkStep::Wait(Chunk::Crlf),
        Chunk::Crlf if &buf[..2] != b"\r\n" => ChunkStep::Bad,
        Chunk::Crlf => {
            buf.drain(..2);
            ChunkStep::Next(Chunk::Size)
        }
        Chunk::Trailers => match h1::parse_trailers(buf, 0, max_head, max_headers) {
            Err(_) => ChunkStep::Bad,
            Ok(None) => ChunkStep::Wait(Chunk::Trailers),
            Ok(Some((fields, end))) => {
                let block = head::trailer_block(&fields, edge);
                drop(fields);
                buf.drain(..end);
                out.extend_from_slice(b"0\r\n");
                out.extend_from_slice(&block);
                out.extend_from_slice(b"\r\n");
                ChunkStep::End
            }
        },
    }
}

/// A body needs more bytes from the upstream: write what waits first, and read only while the
/// client keeps up (the body resumes from `on_down` once it has taken enough).
fn more(d: &mut Down, now: f64) -> More {
    if d.flush(now).is_err() {
        return More::Stop(Fate::Close);
    }
    if d.pending_out() >= HIGH_WATER {
        return More::Stop(Fate::Keep);
    }
    let Some(ex) = d.ex.as_mut() else {
        return More::Read;
    };
    if ex.eof {
        return More::Ended;
    }
    let want = ex.buf.len() + BODY_READ;
    match read_some(&mut ex.sock, &mut ex.buf, want, ex.closing) {
        Ok((0, false)) => More::Stop(Fate::Keep),
        Ok((_, eof)) => {
            ex.eof |= eof;
            More::Read
        }
        Err(_) => {
            ex.eof = true;
            More::Read
        }
    }
}

/// `(method, target, peer)` of a request head as received, for `io.l5d.recentRequests`.
fn sample(raw: &[u8], sock: &TcpStream) -> (Vec<u8>, Vec<u8>, Option<SocketAddr>) {
    let start = raw.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(raw.len());
    let mut parts = raw[start..].splitn(3, |&c| c == b' ');
    let method = parts.next().unwrap_or_default().to_vec();
    let target = parts.next().unwrap_or_default().to_vec();
    (method, target, sock.peer_addr().ok())
}

impl Core {
    /// A Content-Length body (or none: zero to go): relay what came, read more.
    pub(super) fn body<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down, remaining: u64) -> Step {
        let Some(ex) = d.ex.as_mut() else {
            return Step::Stop(Fate::Close);
        };
        let take = remaining.min(ex.buf.len() as u64) as usize;
        if take > 0 {
            d.out.extend_from_slice(&ex.buf[..take]);
            ex.buf.drain(..take);
        }
        let remaining = remaining - take as u64;
        ex.state = Up::Body(remaining);
        if remaining == 0 {
            return Step::Stop(self.finish(env, i, d, false));
        }
        self.more_body(env, i, d)
    }

    /// A chunked body: one part at a time, re-framed canonically, trailers filtered.
    pub(super) fn chunked<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down, chunk: Chunk) -> Step {
        let Some(ex) = d.ex.as_mut() else {
            return Step::Stop(Fate::Close);
        };
        let r = &self.servers[d.server].cfg.rules;
        match chunk_step(&mut ex.buf, &mut d.out, chunk, (r.max_line, r.max_head, r.max_headers, r.edge)) {
            ChunkStep::Next(next) => {
                ex.state = Up::Chunked(next);
                Step::Next
            }
            ChunkStep::Wait(at) => {
                ex.state = Up::Chunked(at);
                self.more_body(env, i, d)
            }
            ChunkStep::Bad => Step::Stop(self.finish(env, i, d, true)),
            ChunkStep::End => Step::Stop(self.finish(env, i, d, false)),
        }
    }

    /// Reads more of a body, or stops: for now, or for good when the upstream ended it early.
    fn more_body<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down) -> Step {
        match more(d, self.now) {
            More::Read => Step::Next,
            More::Stop(fate) => Step::Stop(fate),
            More::Ended => Step::Stop(self.finish(env, i, d, true)),
        }
    }

    /// The response is relayed (or cut short: `truncated`): pool the upstream connection, report
    /// the request, and go on with the connection's next one (or close it).
    pub(super) fn finish<E: Env>(&mut self, env: &mut E, i: usize, d: &mut Down, truncated: bool) -> Fate {
        let Some(ex) = self.take_ex(d) else {
            return Fate::Close;
        };
        let reusable = !truncated && ex.up_keep && ex.buf.is_empty() && !ex.eof && !ex.closing;
        self.completed(env, &ex, d.server);
        let (branch, slot, started, status, length, keep_down) = (ex.branch_id(), ex.slot, ex.started, ex.status, ex.length, ex.keep_down);
        let (sock, up, addr, raw) = (ex.sock, ex.up, ex.addr, ex.raw);
        if reusable {
            self.pool(addr, sock, up);
        } else {
            let mut sock = sock;
            self.drop_up(up, &mut sock);
        }
        let sampled = (self.recent > 0.0 && self.draws.unit() < self.recent).then(|| sample(&raw, &d.sock));
        self.access(env, d.server, raw, &d.sock, status, length);
        if let Some((method, target, peer)) = sampled {
            let (server, ended) = (d.server, self.now);
            env.emit(Event::Sampled { branch, server, slot, started, ended, status, method, target, peer });
        }
        // Draining: the connection closes after this response unless a request already came whole
        // behind it (the trio path serves those too).
        if truncated || !keep_down || (self.servers[d.server].draining && !self.holds_request(d)) {
            d.close_after = true;
        }
        if d.flush(self.now).is_err() {
            return Fate::Close;
        }
        self.advance(env, i, d)
    }
}
