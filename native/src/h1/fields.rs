//! What the head and trailer parsers share: the errors, byte classes, line ends, field lines and
//! the framing fields (Content-Length, Transfer-Encoding, Connection, Host, Expect).
//!
//! Twin of `pyproxy/_pure/h1_fields.py`, whose docstring has the grammar:
//!
//! ```text
//! field-line  = token ":" OWS [ field-value ] OWS      ; RFC 9112 §5.1: no SP before ":", no obs-fold
//! field-value = 1*fvchar *( 1*( SP / HTAB ) 1*fvchar ) ; fvchar = VCHAR / obs-text
//! ```

/// One error: its stable kind, the status a server answers to a request, and the message text.
#[derive(Debug, PartialEq, Eq)]
pub struct Why {
    pub kind: &'static str,
    pub status: u16,
    pub text: &'static str,
}

macro_rules! whys {
    ($($name:ident = $kind:literal, $status:literal, $text:literal;)*) => {
        $(pub static $name: Why = Why { kind: $kind, status: $status, text: $text };)*
    };
}

whys! {
    LINE_TOO_LONG = "line-too-long", 414, "request line too long";
    HEADERS_TOO_LARGE = "headers-too-large", 431, "header section too large";
    TRAILERS_TOO_LARGE = "headers-too-large", 431, "trailer section too large";
    TOO_MANY_HEADERS = "too-many-headers", 431, "too many field lines";
    BAD_REQUEST_LINE = "bad-request-line", 400, "malformed request line";
    BAD_METHOD = "bad-method", 400, "method is not a token";
    METHOD_TOO_LONG = "bad-method", 501, "method too long";
    BAD_TARGET = "bad-target", 400, "invalid request target";
    BAD_VERSION = "bad-version", 400, "invalid HTTP version";
    VERSION_NOT_SUPPORTED = "http-version-not-supported", 505, "HTTP version not supported";
    BAD_STATUS_LINE = "bad-status-line", 502, "malformed status line";
    BARE_CR = "bare-cr", 400, "CR not followed by LF";
    BARE_LF = "bare-lf", 400, "LF not preceded by CR";
    OBS_FOLD = "obs-fold", 400, "obsolete line folding";
    BAD_HEADER_NAME = "bad-header-name", 400, "field name is not a token";
    SPACE_BEFORE_COLON = "space-before-colon", 400, "whitespace between field name and colon";
    BAD_HEADER_VALUE = "bad-header-value", 400, "invalid byte in field value";
    CL_AND_TE = "cl-and-te", 400, "both Content-Length and Transfer-Encoding";
    BAD_CONTENT_LENGTH = "bad-content-length", 400, "invalid Content-Length";
    CONFLICTING_CONTENT_LENGTH = "conflicting-content-length", 400, "conflicting Content-Length values";
    UNSUPPORTED_TE = "unsupported-transfer-coding", 501, "transfer coding other than one chunked";
    TE_IN_HTTP10 = "te-in-http10", 400, "Transfer-Encoding in HTTP/1.0";
    MISSING_HOST = "missing-host", 400, "HTTP/1.1 request without Host";
    DUPLICATE_HOST = "duplicate-host", 400, "more than one Host";
    BAD_HOST = "bad-host", 400, "invalid Host";
    BAD_CHUNK_SIZE = "bad-chunk-size", 400, "invalid chunk size";
    CHUNK_SIZE_TOO_LARGE = "chunk-size-too-large", 400, "chunk size over 16 hex digits";
    BAD_CHUNK_EXT = "bad-chunk-ext", 400, "invalid chunk extension";
    CHUNK_LINE_TOO_LONG = "line-too-long", 400, "chunk line too long";
}

/// Where and why parsing stopped (the Python layer renders it as `RemoteProtocolError`).
#[derive(Debug, PartialEq, Eq)]
pub struct Fail {
    pub why: &'static Why,
    pub offset: usize,
}

/// A kernel's answer: `Ok(None)` while the input is incomplete and within its limits.
pub type Res<T> = Result<T, Fail>;

pub fn fail<T>(why: &'static Why, offset: usize) -> Res<T> {
    Err(Fail { why, offset })
}

pub const TCHAR: u8 = 1;
/// VCHAR and obs-text: a field-value byte that is not whitespace.
pub const FVCHAR: u8 = 2;
pub const WSP: u8 = 4;
pub const HEX: u8 = 8;
/// RFC 3986 reg-name bytes but "%" and ",".
pub const REG: u8 = 16;
/// Request-target bytes: visible ASCII but "#".
pub const TARGET: u8 = 32;

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let alnum = c.is_ascii_alphanumeric();
        let mut k = 0;
        if alnum
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            k |= TCHAR;
        }
        if c >= 0x21 && c != 0x7f {
            k |= FVCHAR;
        }
        if c == b' ' || c == b'\t' {
            k |= WSP;
        }
        if c.is_ascii_hexdigit() {
            k |= HEX;
        }
        if alnum
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            )
        {
            k |= REG;
        }
        if c >= 0x21 && c <= 0x7e && c != b'#' {
            k |= TARGET;
        }
        t[i] = k;
        i += 1;
    }
    t
}

static CLASS: [u8; 256] = classes();

#[inline(always)]
pub fn is(c: u8, class: u8) -> bool {
    CLASS[c as usize] & class != 0
}

/// The end of the run of `class` bytes in `d[i..e]`.
#[inline(always)]
pub fn run(d: &[u8], mut i: usize, e: usize, class: u8) -> usize {
    while i < e && is(d[i], class) {
        i += 1;
    }
    i
}

/// Strips SP and HTAB on both sides (never other whitespace: http-hardening Appendix A).
pub fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// The index of the CR ending the line at `s`, whose LF must come before `wend`; `None` while the
/// line is incomplete. A CR followed by another byte is `bare-cr` as soon as that byte is seen.
pub fn line_end(d: &[u8], s: usize, wend: usize, too_long: &'static Why) -> Res<Option<usize>> {
    let e = wend.min(d.len());
    if s < e {
        if let Some(k) = d[s..e].iter().position(|&c| c == b'\r' || c == b'\n') {
            let q = s + k;
            if d[q] == b'\n' {
                return fail(&BARE_LF, q);
            }
            if q + 1 < e {
                return if d[q + 1] == b'\n' {
                    Ok(Some(q))
                } else {
                    fail(&BARE_CR, q)
                };
            }
        }
    }
    if d.len() >= wend {
        return fail(too_long, wend);
    }
    Ok(None)
}

/// The end of the run of field-value bytes (VCHAR, obs-text, SP, HTAB) in `d[i..end]`, eight bytes
/// at a time: a word is skipped when none of its bytes is a control byte (< 0x20 or DEL).
#[inline(always)]
fn value_run(d: &[u8], mut i: usize, end: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while i + 8 <= end {
        let mut word = [0u8; 8];
        word.copy_from_slice(&d[i..i + 8]);
        let x = u64::from_le_bytes(word);
        let y = x ^ (ONES * 0x7f);
        // Flags every byte < 0x20 and every DEL; a false flag can only follow a true one, so the
        // lowest flagged byte is the first control byte.
        let flags = (x.wrapping_sub(ONES * 0x20) & !x | y.wrapping_sub(ONES) & !y) & HIGH;
        if flags == 0 {
            i += 8;
            continue;
        }
        let j = i + (flags.trailing_zeros() / 8) as usize;
        if d[j] != b'\t' {
            return j;
        }
        i = j + 1;
    }
    run(d, i, end, FVCHAR | WSP)
}

/// One field line: name as received, value without surrounding OWS, and where the line starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub at: usize,
}

/// A well-formed field line at `s` that ends before `end`: the field and the next line's start.
#[inline(always)]
fn field_line(d: &[u8], s: usize, end: usize) -> Option<(Field<'_>, usize)> {
    let n = run(d, s, end, TCHAR);
    if n == s || n >= end || d[n] != b':' {
        return None;
    }
    let v = run(d, n + 1, end, WSP);
    let ve = value_run(d, v, end);
    if ve + 1 >= end || d[ve] != b'\r' || d[ve + 1] != b'\n' {
        return None;
    }
    Some((
        Field {
            name: &d[s..n],
            value: trim(&d[v..ve]),
            at: s,
        },
        ve + 2,
    ))
}

/// Diagnoses the complete field line `d[s..e]` (no CR inside) that `field_line` refused.
fn bad_field<T>(d: &[u8], s: usize, e: usize) -> Res<T> {
    if is(d[s], WSP) {
        return fail(&OBS_FOLD, s);
    }
    let n = run(d, s, e, TCHAR);
    if n == s {
        return fail(&BAD_HEADER_NAME, s);
    }
    if n == e || d[n] != b':' {
        let k = run(d, n, e, WSP);
        if k > n && k < e && d[k] == b':' {
            return fail(&SPACE_BEFORE_COLON, n);
        }
        return fail(&BAD_HEADER_NAME, n);
    }
    let bad = (n + 1..e).find(|&i| !is(d[i], FVCHAR | WSP)).unwrap_or(e);
    fail(&BAD_HEADER_VALUE, bad)
}

/// The field lines from `s` to the empty line: the fields and where the empty line starts.
pub fn fields<'a>(
    d: &'a [u8],
    mut s: usize,
    limit: usize,
    max_headers: usize,
    too_large: &'static Why,
) -> Res<Option<(Vec<Field<'a>>, usize)>> {
    let end = limit.min(d.len());
    let mut out = Vec::with_capacity(16);
    loop {
        if s + 2 <= end && d[s] == b'\r' && d[s + 1] == b'\n' {
            return Ok(Some((out, s)));
        }
        let Some((field, next)) = field_line(d, s, end) else {
            // The pure twin's order: the line's end first, then the count, then its syntax.
            let Some(q) = line_end(d, s, limit, too_large)? else {
                return Ok(None);
            };
            if out.len() >= max_headers {
                return fail(&TOO_MANY_HEADERS, s);
            }
            return bad_field(d, s, q);
        };
        if out.len() >= max_headers {
            return fail(&TOO_MANY_HEADERS, s);
        }
        out.push(field);
        s = next;
    }
}

/// What the framing fields say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Framing<'a> {
    pub content_length: i64,
    pub chunked: bool,
    pub connection: Vec<&'a [u8]>,
    pub host: Option<&'a [u8]>,
    pub expect_continue: bool,
}

fn split(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&c| c == b',').map(trim)
}

fn digits(p: &[u8]) -> bool {
    (1..=18).contains(&p.len()) && p.iter().all(u8::is_ascii_digit)
}

/// Checks the framing fields in order (`request`: also Host and Expect) once the head is complete.
pub fn framing<'a>(fields: &[Field<'a>], minor: u8, request: bool) -> Res<Framing<'a>> {
    let mut f = Framing {
        content_length: -1,
        ..Framing::default()
    };
    let mut cl: Option<&[u8]> = None;
    let mut te = false;
    for &Field { name, value, at } in fields {
        match name.len() {
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if !split(value).all(digits) {
                    return fail(&BAD_CONTENT_LENGTH, at);
                }
                let first = split(value).next().unwrap_or_default();
                if split(value).any(|p| p != first) || cl.is_some_and(|c| c != first) {
                    return fail(&CONFLICTING_CONTENT_LENGTH, at);
                }
                cl = Some(first);
                if te {
                    return fail(&CL_AND_TE, at);
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if minor == 0 {
                    return fail(&TE_IN_HTTP10, at);
                }
                if cl.is_some() {
                    return fail(&CL_AND_TE, at);
                }
                for p in split(value) {
                    if f.chunked || !p.eq_ignore_ascii_case(b"chunked") {
                        return fail(&UNSUPPORTED_TE, at);
                    }
                    f.chunked = true;
                }
                te = true;
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                f.connection.extend(split(value).filter(|t| !t.is_empty()));
            }
            4 if request && name.eq_ignore_ascii_case(b"host") => {
                if f.host.is_some() {
                    return fail(&DUPLICATE_HOST, at);
                }
                if (!value.is_empty() || minor == 1) && !is_host(value, false) {
                    return fail(&BAD_HOST, at);
                }
                f.host = Some(value);
            }
            6 if request && minor == 1 && name.eq_ignore_ascii_case(b"expect") => {
                f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
    }
    // At most 18 digits: no overflow (http-hardening Appendix A).
    f.content_length = cl.map_or(-1, |c| {
        c.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0'))
    });
    Ok(f)
}

/// The end of the host (IP literal or reg-name) at `v[i..]`, or `i` when there is none.
fn hostname_end(v: &[u8], i: usize) -> usize {
    if v.get(i) == Some(&b'[') {
        let j = (i + 1..v.len())
            .find(|&j| !(is(v[j], HEX) || v[j] == b':' || v[j] == b'.'))
            .unwrap_or(v.len());
        return if j > i + 1 && v.get(j) == Some(&b']') {
            j + 1
        } else {
            i
        };
    }
    let mut j = i;
    loop {
        match v.get(j) {
            Some(&c) if is(c, REG) => j += 1,
            Some(b'%') if v.len() > j + 2 && is(v[j + 1], HEX) && is(v[j + 2], HEX) => j += 3,
            _ => return j,
        }
    }
}

/// The end of `host [ ":" *5DIGIT ]` at `v[i..]` (`port`: the port is required and not empty),
/// or `None` when there is no host there.
pub fn host_port_end(v: &[u8], i: usize, port: bool) -> Option<usize> {
    let h = hostname_end(v, i);
    if h == i {
        return None;
    }
    if v.get(h) != Some(&b':') {
        return (!port).then_some(h);
    }
    let p = (h + 1..v.len().min(h + 6))
        .find(|&j| !v[j].is_ascii_digit())
        .unwrap_or(v.len().min(h + 6));
    (!port || p > h + 1).then_some(p)
}

/// Whether all of `v` is `host [ ":" *5DIGIT ]` (`port`: `host ":" 1*5DIGIT`).
pub fn is_host(v: &[u8], port: bool) -> bool {
    host_port_end(v, 0, port) == Some(v.len())
}
