//! Trace ids and draws for the lane: Finagle's `TraceId` as `l5d-ctx-trace` carries it (base64 of
//! span, parent, trace and flags, 64-bit big-endian each), and the lane's random source.
//!
//! The same rules as `pyproxy.context.TraceId`: a request without a (valid) trace starts one whose
//! ids are all one draw; the call upstream is a child span (a new draw, this span as parent).

/// Span, parent and trace ids and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceId {
    pub span: u64,
    pub parent: u64,
    pub trace: u64,
    pub flags: u64,
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// Standard base64 with padding.
pub fn b64encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// Canonical base64 only (length a multiple of 4, padding only at the end, zero pad bits): the
/// values on which the lane and Python's `b64decode(validate=True)` surely agree; None otherwise.
pub fn b64decode(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let pad = text.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &text[..text.len() - pad];
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in body {
        acc = acc << 6 | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0).then_some(out)
}

impl TraceId {
    /// A new trace: span, parent and trace ids all `draw`.
    pub fn root(draw: u64) -> TraceId {
        TraceId { span: draw, parent: draw, trace: draw, flags: 0 }
    }

    /// `l5d-ctx-trace` decoded (32 bytes, or 40 with a 128-bit trace id's high half ignored).
    pub fn from_header(value: &[u8]) -> Option<TraceId> {
        let raw = b64decode(value)?;
        if raw.len() != 32 && raw.len() != 40 {
            return None;
        }
        let word = |i: usize| u64::from_be_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Some(TraceId { span: word(0), parent: word(1), trace: word(2), flags: word(3) })
    }

    /// The id of a call made on behalf of this span.
    pub fn child(&self, draw: u64) -> TraceId {
        TraceId { span: draw, parent: self.span, trace: self.trace, flags: self.flags }
    }

    /// The `l5d-ctx-trace` value.
    pub fn header(&self) -> Vec<u8> {
        let mut raw = [0u8; 32];
        for (i, w) in [self.span, self.parent, self.trace, self.flags].iter().enumerate() {
            raw[i * 8..i * 8 + 8].copy_from_slice(&w.to_be_bytes());
        }
        b64encode(&raw)
    }

    /// `l5d-reqid`: the trace id in 16 hex digits.
    pub fn reqid(&self) -> Vec<u8> {
        format!("{:016x}", self.trace).into_bytes()
    }
}

/// SplitMix64: the lane's draws, seeded by the caller (kernels take randomness as an argument).
#[derive(Clone, Debug)]
pub struct Draws(u64);

impl Draws {
    pub fn new(seed: u64) -> Draws {
        Draws(seed)
    }

    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A non-zero 64-bit id (Python: `getrandbits(64) or 1`).
    pub fn id(&mut self) -> u64 {
        self.draw().max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.draw() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_refuses_non_canonical() {
        for n in 0..50u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(b64decode(&b64encode(&data)).as_deref(), Some(&data[..]));
        }
        assert_eq!(b64encode(b"ab"), b"YWI=");
        assert!(b64decode(b"YWI").is_none());
        assert!(b64decode(b"YWJ=").is_none()); // non-zero pad bits
        assert!(b64decode(b"Y W=").is_none());
        assert!(b64decode(b"YQ===").is_none());
    }

    #[test]
    fn trace_header_round_trips() {
        let t = TraceId { span: 1, parent: 2, trace: u64::MAX, flags: 6 };
        assert_eq!(TraceId::from_header(&t.header()), Some(t));
        assert_eq!(t.child(9), TraceId { span: 9, parent: 1, trace: u64::MAX, flags: 6 });
        assert_eq!(t.reqid(), b"ffffffffffffffff");
    }
}
