//! The response head: status line, field lines and framing (the Python layer makes every error a 502).
//!
//! ```text
//! response-head = status-line *( field-line CRLF ) CRLF          ; no empty lines skipped
//! status-line   = ( "HTTP/1.0" / "HTTP/1.1" ) SP %x31-35 2DIGIT [ SP reason ] CRLF
//! reason        = *( HTAB / SP / VCHAR / obs-text )
//! ```

use super::fields::{self, fail, is, run, Field, Res, FVCHAR, WSP};
use super::fields::{BAD_STATUS_LINE, BAD_VERSION, HEADERS_TOO_LARGE};

/// A parsed response head; every slice borrows the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub minor: u8,
    pub status: u16,
    pub reason: &'a [u8],
    pub fields: Vec<Field<'a>>,
    pub head_len: usize,
    pub content_length: i64,
    pub chunked: bool,
    /// The Connection tokens as received (the caller lower-cases them).
    pub connection: Vec<&'a [u8]>,
}

fn version(d: &[u8]) -> Option<u8> {
    match d.get(..8) {
        Some(b"HTTP/1.0") => Some(0),
        Some(b"HTTP/1.1") => Some(1),
        _ => None,
    }
}

fn code(d: &[u8]) -> Option<u16> {
    match *d {
        [a @ b'1'..=b'5', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// A well-formed status line ending before `end`: minor, status, reason and the next line's start.
fn status_line(d: &[u8], end: usize) -> Option<(u8, u16, &[u8], usize)> {
    let d = &d[..end];
    let minor = version(d)?;
    if d.get(8) != Some(&b' ') {
        return None;
    }
    let status = code(d.get(9..12)?)?;
    let (reason, r) = match d.get(12) {
        Some(b' ') => {
            let r = run(d, 13, end, FVCHAR | WSP);
            (&d[13..r], r)
        }
        _ => (&d[12..12], 12),
    };
    (d.get(r..r + 2)? == b"\r\n").then_some((minor, status, reason, r + 2))
}

/// Diagnoses the complete status line `d[..e]` (no CR inside) that `status_line` refused.
fn bad_status_line<T>(d: &[u8], e: usize) -> Res<T> {
    if version(&d[..e]).is_none() {
        return fail(&BAD_VERSION, 0);
    }
    if e == 8 || d[8] != b' ' {
        return fail(&BAD_STATUS_LINE, 8);
    }
    if code(&d[9..e.min(12)]).is_none() {
        return fail(&BAD_STATUS_LINE, 9);
    }
    if d[12] != b' ' {
        return fail(&BAD_STATUS_LINE, 12);
    }
    fail(
        &BAD_STATUS_LINE,
        (13..e).find(|&i| !is(d[i], FVCHAR | WSP)).unwrap_or(e),
    )
}

/// Parses the response head at the start of `d` (see `pyproxy/_pure/h1.py`); `Ok(None)` while it is
/// incomplete and within the limits.
pub fn parse_response_head(
    d: &[u8],
    max_head: usize,
    max_headers: usize,
) -> Res<Option<Response<'_>>> {
    let Some((minor, status, reason, next)) = status_line(d, max_head.min(d.len())) else {
        let Some(e) = fields::line_end(d, 0, max_head, &HEADERS_TOO_LARGE)? else {
            return Ok(None);
        };
        return bad_status_line(d, e);
    };
    let Some((fields, blank)) = fields::fields(d, next, max_head, max_headers, &HEADERS_TOO_LARGE)?
    else {
        return Ok(None);
    };
    let f = fields::framing(&fields, minor, false)?;
    Ok(Some(Response {
        minor,
        status,
        reason,
        fields,
        head_len: blank + 2,
        content_length: f.content_length,
        chunked: f.chunked,
        connection: f.connection,
    }))
}
