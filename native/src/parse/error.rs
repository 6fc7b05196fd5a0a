//! Parse errors: their types and Finagle's exact message text.
//!
//! `<expected> expected but <found> found at '<display>'`: FOUND is the offending character in
//! quotes or `end of input` (also for a literal U+FFFF, the JVM parser's end-of-input sentinel);
//! DISPLAY is the whole input with that character in brackets, or followed by `[]` at the end.

use super::MAX_DEPTH;

/// Why a parse failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input does not follow the grammar (Finagle's `IllegalArgumentException`).
    Syntax,
    /// Parentheses nest deeper than [`MAX_DEPTH`] (the pure twin hits Python's recursion limit).
    TooDeep,
}

/// A parse failure. `M` is `String` for `&str` input, `Vec<u8>` for generalized UTF-8 input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError<M = String> {
    /// `<expected> expected but <found> found at '<display>'` (Finagle's exact text).
    pub message: M,
    /// Index in code points of the offending character; the input length at end of input.
    pub offset: usize,
    /// What the parser wanted there: `'/'`, `label char`, `simple`, ... (empty for `TooDeep`).
    pub expected: &'static str,
    /// Syntax error or nesting limit.
    pub kind: ErrorKind,
}

/// What the `parse_*` functions (generalized UTF-8 input) return.
pub type RawResult<T> = Result<T, ParseError<Vec<u8>>>;

/// Where and why the scan stopped; rendered into a [`ParseError`] only once, at the top.
pub(super) enum Fail {
    Syntax {
        expected: &'static str,
        pos: usize,
        found_dot: bool,
    },
    TooDeep {
        pos: usize,
    },
}

/// Length in bytes of the (generalized) UTF-8 sequence starting with `lead`.
fn char_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0x80..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Code points in `s` (generalized UTF-8): the bytes that are not continuation bytes.
fn char_count(s: &[u8]) -> usize {
    s.iter().filter(|&&b| b & 0xc0 != 0x80).count()
}

/// Finagle's message for a syntax error at byte `pos` of `s`, as generalized UTF-8 bytes.
fn render(s: &[u8], expected: &str, pos: usize, found_dot: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(s.len() + expected.len() + 48);
    m.extend_from_slice(expected.as_bytes());
    m.extend_from_slice(b" expected but ");
    let here = s.get(pos..).filter(|rest| !rest.is_empty());
    let ch = here.map(|rest| &rest[..char_len(rest[0]).min(rest.len())]);
    match ch {
        _ if found_dot => m.extend_from_slice(b"'.'"),
        // The JVM parser's end-of-input sentinel is U+FFFF, so a literal U+FFFF reads as the end.
        None | Some([0xef, 0xbf, 0xbf]) => m.extend_from_slice(b"end of input"),
        Some(c) => {
            m.push(b'\'');
            m.extend_from_slice(c);
            m.push(b'\'');
        }
    }
    m.extend_from_slice(b" found at '");
    match ch {
        None => {
            m.extend_from_slice(s);
            m.extend_from_slice(b"[]");
        }
        Some(c) => {
            m.extend_from_slice(&s[..pos]);
            m.push(b'[');
            m.extend_from_slice(c);
            m.push(b']');
            m.extend_from_slice(&s[pos + c.len()..]);
        }
    }
    m.push(b'\'');
    m
}

impl Fail {
    /// The error for this failure while parsing `s`.
    pub(super) fn render(self, s: &[u8]) -> ParseError<Vec<u8>> {
        match self {
            Fail::Syntax {
                expected,
                pos,
                found_dot,
            } => ParseError {
                message: render(s, expected, pos, found_dot),
                offset: char_count(&s[..pos.min(s.len())]),
                expected,
                kind: ErrorKind::Syntax,
            },
            Fail::TooDeep { pos } => ParseError {
                message: format!("name tree nested deeper than {MAX_DEPTH} parentheses")
                    .into_bytes(),
                offset: char_count(&s[..pos.min(s.len())]),
                expected: "",
                kind: ErrorKind::TooDeep,
            },
        }
    }
}

impl ParseError<Vec<u8>> {
    /// The same error with a `String` message (lossless for errors over `&str` input).
    pub fn into_text(self) -> ParseError {
        // The message is ASCII plus slices of the input cut at character boundaries.
        let message = String::from_utf8(self.message)
            .unwrap_or_else(|bad| String::from_utf8_lossy(bad.as_bytes()).into_owned());
        ParseError {
            message,
            offset: self.offset,
            expected: self.expected,
            kind: self.kind,
        }
    }
}
