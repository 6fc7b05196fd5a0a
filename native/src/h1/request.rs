//! The request head: request line, field lines, framing and Host rules.
//!
//! ```text
//! request-head   = *4( CRLF ) request-line *( field-line CRLF ) CRLF    ; RFC 9112 §2.2, §3
//! request-line   = method SP request-target SP ( "HTTP/1.0" / "HTTP/1.1" ) CRLF
//! method         = token                    ; at most 32 bytes, else 501
//! request-target = 1*( %x21-22 / %x24-7E )  ; origin-form, absolute-form (http/https), "*" for
//!                                           ; OPTIONS, authority-form for CONNECT
//! ```

use super::fields::{self, fail, is, run, Field, Res, TARGET, TCHAR};
use super::fields::{
    BAD_METHOD, BAD_REQUEST_LINE, BAD_TARGET, BAD_VERSION, HEADERS_TOO_LARGE, LINE_TOO_LONG,
    METHOD_TOO_LONG, MISSING_HOST, VERSION_NOT_SUPPORTED,
};

/// Longest method accepted; a longer one gets 501 (RFC 9112 §3).
pub const MAX_METHOD: usize = 32;
/// Bytes of empty lines skipped before a request line (RFC 9112 §2.2).
pub const LEADING_CRLF: usize = 8;

/// A parsed request head; every slice borrows the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub minor: u8,
    pub fields: Vec<Field<'a>>,
    pub head_len: usize,
    pub content_length: i64,
    pub chunked: bool,
    /// The Connection tokens as received (the caller lower-cases them).
    pub connection: Vec<&'a [u8]>,
    pub expect_continue: bool,
    pub host: Option<&'a [u8]>,
}

/// A well-formed request line at `s` ending before `end`: method end, target end, minor, next line.
#[inline(always)]
fn request_line(d: &[u8], s: usize, end: usize) -> Option<(usize, usize, u8, usize)> {
    let me = run(d, s, end, TCHAR);
    if me == s || me >= end || d[me] != b' ' {
        return None;
    }
    let te = run(d, me + 1, end, TARGET);
    let v = te + 1;
    if te == me + 1
        || v + 10 > end
        || d[te] != b' '
        || &d[v..v + 7] != b"HTTP/1."
        || &d[v + 8..v + 10] != b"\r\n"
    {
        return None;
    }
    let minor = match d[v + 7] {
        b'0' => 0,
        b'1' => 1,
        _ => return None,
    };
    Some((me, te, minor, v + 10))
}

/// Diagnoses the complete request line `d[s..e]` (no CR inside) that `request_line` refused.
fn bad_request_line<T>(d: &[u8], s: usize, e: usize) -> Res<T> {
    if s == e {
        return fail(&BAD_REQUEST_LINE, s);
    }
    let me = run(d, s, e, TCHAR);
    if me - s > MAX_METHOD {
        return fail(&METHOD_TOO_LONG, s);
    }
    if me == s {
        return fail(&BAD_METHOD, s);
    }
    if me == e || d[me] == b'\t' {
        return fail(&BAD_REQUEST_LINE, me);
    }
    if d[me] != b' ' {
        return fail(&BAD_METHOD, me);
    }
    let ts = me + 1;
    let te = d[ts..e]
        .iter()
        .position(|&c| c == b' ')
        .map_or(e, |k| ts + k);
    if te == ts {
        return fail(&BAD_REQUEST_LINE, ts);
    }
    if let Some(bad) = (ts..te).find(|&i| !is(d[i], TARGET)) {
        return fail(&BAD_TARGET, bad);
    }
    if te == e {
        return fail(&BAD_REQUEST_LINE, te); // no version: HTTP/0.9 is not supported
    }
    let v = &d[te + 1..e];
    if let [b'H', b'T', b'T', b'P', b'/', a, b'.', b] = v {
        if a.is_ascii_digit() && b.is_ascii_digit() {
            return fail(&VERSION_NOT_SUPPORTED, te + 1);
        }
    }
    fail(&BAD_VERSION, te + 1)
}

/// Whether `target` has the form `method` may use (RFC 9112 §3.2).
fn target_ok(method: &[u8], target: &[u8]) -> bool {
    if target[0] == b'/' {
        return method != b"CONNECT";
    }
    if target == b"*" {
        return method == b"OPTIONS";
    }
    if method == b"CONNECT" {
        return fields::is_host(target, true);
    }
    let rest = if target.len() >= 7 && target[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if target.len() >= 8 && target[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return false;
    };
    match fields::host_port_end(target, rest, false) {
        Some(k) => k == target.len() || matches!(target[k], b'/' | b'?'),
        None => false,
    }
}

/// Parses the request head at the start of `d` (see `pyproxy/_pure/h1.py`); `Ok(None)` while it is
/// incomplete and within the limits.
pub fn parse_request_head(
    d: &[u8],
    max_line: usize,
    max_head: usize,
    max_headers: usize,
) -> Res<Option<Request<'_>>> {
    let mut s = 0;
    while s < LEADING_CRLF && d.len() >= s + 2 && d[s] == b'\r' && d[s + 1] == b'\n' {
        s += 2;
    }
    let wend = max_line.min(max_head);
    let Some((me, te, minor, next)) = request_line(d, s, wend.min(d.len())) else {
        let too_long = if max_line <= max_head {
            &LINE_TOO_LONG
        } else {
            &HEADERS_TOO_LARGE
        };
        let Some(q) = fields::line_end(d, s, wend, too_long)? else {
            return Ok(None);
        };
        return bad_request_line(d, s, q);
    };
    let (method, target) = (&d[s..me], &d[me + 1..te]);
    if method.len() > MAX_METHOD {
        return fail(&METHOD_TOO_LONG, s);
    }
    if !target_ok(method, target) {
        return fail(&BAD_TARGET, me + 1);
    }
    let Some((fields, blank)) = fields::fields(d, next, max_head, max_headers, &HEADERS_TOO_LARGE)?
    else {
        return Ok(None);
    };
    let f = fields::framing(&fields, minor, true)?;
    if minor == 1 && f.host.is_none() {
        return fail(&MISSING_HOST, blank);
    }
    Ok(Some(Request {
        method,
        target,
        minor,
        fields,
        head_len: blank + 2,
        content_length: f.content_length,
        chunked: f.chunked,
        connection: f.connection,
        expect_continue: f.expect_continue,
        host: f.host,
    }))
}
