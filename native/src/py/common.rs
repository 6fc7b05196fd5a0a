//! `bytes` objects built once per process for the byte strings that come back in most heads.
//!
//! Creating and freeing a `bytes` costs about 25 ns here, as much as parsing 25 bytes, so a head's
//! methods, common field names (as clients and servers spell them, Linkerd's `l5d-*` included) and
//! Connection tokens come from this table: a hit costs a reference count. The lookup is a cheap
//! hash of (length, first byte, last byte) and one comparison, so a miss costs almost nothing.
//! (A table that learns values at run time was measured too: its lookups cost what they saved.)
//! Values are equal either way; only object identity can differ from the pure twin.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;

#[rustfmt::skip]
const COMMON: &[&[u8]] = &[
    b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT",
    b"Host", b"host", b"User-Agent", b"user-agent", b"Accept", b"accept", b"Accept-Encoding",
    b"accept-encoding", b"Accept-Language", b"accept-language", b"Connection", b"connection",
    b"Content-Length", b"content-length", b"Content-Type", b"content-type", b"Transfer-Encoding",
    b"transfer-encoding", b"Cookie", b"cookie", b"Authorization", b"authorization", b"Cache-Control",
    b"cache-control", b"Referer", b"referer", b"Origin", b"origin", b"Upgrade", b"Expect", b"Date",
    b"date", b"Server", b"server", b"Location", b"Via", b"Keep-Alive", b"Pragma", b"If-None-Match",
    b"If-Modified-Since", b"ETag", b"Last-Modified", b"Vary", b"Content-Encoding", b"Set-Cookie",
    b"X-Forwarded-For", b"x-forwarded-for", b"X-Forwarded-Proto", b"X-Request-Id", b"x-request-id",
    b"l5d-dtab", b"l5d-ctx-dtab", b"l5d-ctx-deadline", b"l5d-ctx-trace", b"l5d-reqid", b"l5d-sample",
    b"l5d-dst-service", b"l5d-dst-client", b"l5d-dst-residual", b"l5d-err", b"l5d-retryable",
    b"close", b"keep-alive", b"upgrade",
];

/// `COMMON` by slot; of two entries that collide, the first is kept.
pub struct Common([Option<(&'static [u8], Py<PyBytes>)>; 256]);

static TABLE: PyOnceLock<Common> = PyOnceLock::new();

fn slot(len: usize, first: u8, last: u8) -> usize {
    (len * 31 + usize::from(first) * 7 + usize::from(last) * 3) & 255
}

fn ends(b: &[u8]) -> (u8, u8) {
    (
        b.first().copied().unwrap_or(0),
        b.last().copied().unwrap_or(0),
    )
}

/// `a == b` for short strings, without a call to `memcmp` (slow to start for a few bytes).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Common {
    pub fn get(py: Python<'_>) -> &Common {
        TABLE.get_or_init(py, || {
            let mut table = Common(std::array::from_fn(|_| None));
            for &b in COMMON {
                let (first, last) = ends(b);
                table.0[slot(b.len(), first, last)]
                    .get_or_insert_with(|| (b, PyBytes::new(py, b).unbind()));
            }
            table
        })
    }

    /// `bytes(b)`, from the table when it is there.
    pub fn bytes<'py>(&self, py: Python<'py>, b: &[u8]) -> Bound<'py, PyBytes> {
        let (first, last) = ends(b);
        match &self.0[slot(b.len(), first, last)] {
            Some((k, obj)) if same(k, b) => obj.bind(py).clone(),
            _ => PyBytes::new(py, b),
        }
    }

    /// `bytes(b.lower())` (ASCII only), from the table when it is there.
    pub fn lower<'py>(&self, py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let (first, last) = ends(b);
        match &self.0[slot(
            b.len(),
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
        )] {
            Some((k, obj))
                if k.eq_ignore_ascii_case(b) && !k.iter().any(u8::is_ascii_uppercase) =>
            {
                Ok(obj.bind(py).clone())
            }
            _ => PyBytes::new_with(py, b.len(), |out| {
                out.copy_from_slice(b);
                out.make_ascii_lowercase();
                Ok(())
            }),
        }
    }
}
