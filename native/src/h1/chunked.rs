//! Chunked framing: the chunk-size line and the trailer section (RFC 9112 §7.1).
//!
//! ```text
//! chunk-line      = 1*16HEXDIG *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF
//! quoted-string   = DQUOTE *( qdtext / "\" ( HTAB / SP / VCHAR / obs-text ) ) DQUOTE
//! qdtext          = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//! trailer-section = *( field-line CRLF ) CRLF
//! ```
//!
//! The chunk data and the CRLF after it are the codec's to check.

use super::fields::{self, fail, run, Field, Res, HEX, TCHAR, WSP};
use super::fields::{
    BAD_CHUNK_EXT, BAD_CHUNK_SIZE, CHUNK_LINE_TOO_LONG, CHUNK_SIZE_TOO_LARGE, TRAILERS_TOO_LARGE,
};

/// Most hex digits in a chunk size: 16 fit a `u64`, so the sum cannot overflow (RFC 9112 §7.1).
pub const MAX_CHUNK_DIGITS: usize = 16;

fn qdtext(c: u8) -> bool {
    matches!(c, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

fn quoted_pair(c: u8) -> bool {
    matches!(c, b'\t' | b' '..=0x7e | 0x80..=0xff)
}

/// Validates `d[i..e]`, the chunk extensions after the size, or returns the first bad offset.
fn extensions(d: &[u8], mut i: usize, e: usize) -> Result<(), usize> {
    while i < e {
        i = run(d, i, e, WSP);
        if i == e || d[i] != b';' {
            return Err(i);
        }
        i = run(d, i + 1, e, WSP);
        let t = run(d, i, e, TCHAR);
        if t == i {
            return Err(i);
        }
        i = t;
        let j = run(d, i, e, WSP);
        if j == e || d[j] != b'=' {
            continue;
        }
        i = run(d, j + 1, e, WSP);
        if i < e && d[i] == b'"' {
            i += 1;
            loop {
                match d.get(i) {
                    Some(&c) if i < e && qdtext(c) => i += 1,
                    Some(b'\\') if i + 1 < e && quoted_pair(d[i + 1]) => i += 2,
                    _ => break,
                }
            }
            if i == e || d[i] != b'"' {
                return Err(i);
            }
            i += 1;
        } else {
            let t = run(d, i, e, TCHAR);
            if t == i {
                return Err(i);
            }
            i = t;
        }
    }
    Ok(())
}

/// Parses the chunk-size line at `d[pos..]`: the size and the offset just past its CRLF.
pub fn parse_chunk_line(d: &[u8], pos: usize, max_line: usize) -> Res<Option<(u64, usize)>> {
    let Some(e) = fields::line_end(d, pos, pos.saturating_add(max_line), &CHUNK_LINE_TOO_LONG)?
    else {
        return Ok(None);
    };
    let h = run(d, pos, e, HEX);
    if h == pos {
        return fail(&BAD_CHUNK_SIZE, pos);
    }
    if h - pos > MAX_CHUNK_DIGITS {
        return fail(&CHUNK_SIZE_TOO_LARGE, pos);
    }
    if h < e && !matches!(d[h], b' ' | b'\t' | b';') {
        return fail(&BAD_CHUNK_SIZE, h);
    }
    if let Err(at) = extensions(d, h, e) {
        return fail(&BAD_CHUNK_EXT, at);
    }
    let size = d[pos..h].iter().fold(0u64, |n, &c| {
        n << 4 | u64::from((c as char).to_digit(16).unwrap_or(0))
    });
    Ok(Some((size, e + 2)))
}

/// Parses the trailer section at `d[pos..]`: the fields and the offset just past its empty line.
pub fn parse_trailers(
    d: &[u8],
    pos: usize,
    max_head: usize,
    max_headers: usize,
) -> Res<Option<(Vec<Field<'_>>, usize)>> {
    let limit = pos.saturating_add(max_head);
    Ok(
        fields::fields(d, pos, limit, max_headers, &TRAILERS_TOO_LARGE)?
            .map(|(f, blank)| (f, blank + 2)),
    )
}
