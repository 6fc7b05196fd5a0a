//! Heads as the lane forwards them: the rules of `pyproxy/http/headers.py` (`scan_request`),
//! `pyproxy/routing/router.py` (`_context`, the route key), `pyproxy/routing/overrides.py` and
//! `pyproxy/http/baggage.py` (overrides in baggage, signed overrides at an edge) and
//! `pyproxy/datapath/exchange.py` (`_head`, `_response_fields`, `_relay`), for the requests the
//! lane takes.
//!
//! [`scan_request`] says whether the lane may take a request at all; anything it declines (a body,
//! a deadline, a loop, no identifier value, ...) goes to the Python path, which answers it exactly
//! as it answers every request. The lane never writes an error response of its own.

use crate::h1::{Field, Request, Response};

/// Fields removed from every forwarded message (`pyproxy.headers.HOP_BY_HOP`).
const HOP_BY_HOP: [&[u8]; 10] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"http2-settings",
];
/// Removed from every request: Linkerd 1.x drops a received `x-forwarded-client-cert` unless the
/// client's `forwardClientCert` is on (linkerd/linkerd#2068, against spoofing); pyproxy has no
/// TLS, so it always drops it (`pyproxy.http.headers.scan_request`).
const XFCC: &[u8] = b"x-forwarded-client-cert";
/// What a client cannot nominate away in `Connection`.
const NOT_NOMINABLE: [&[u8]; 4] = [b"host", b"content-length", b"transfer-encoding", b"via"];
const DTAB: &[u8] = b"l5d-dtab";
/// The signature of an `l5d-dtab` at an edge with `signedOverrides` (`pyproxy.http.signature`).
const DTAB_SIG: &[u8] = b"l5d-dtab-sig";
const CTX_DTAB: &[u8] = b"l5d-ctx-dtab";
const CTX_TRACE: &[u8] = b"l5d-ctx-trace";
const CTX_DEADLINE: &[u8] = b"l5d-ctx-deadline";
const SAMPLE: &[u8] = b"l5d-sample";
/// Context fields the router reads and re-writes itself (`pyproxy.headers.CONTEXT`).
const CONTEXT: [&[u8]; 9] = [
    DTAB,
    CTX_DTAB,
    CTX_TRACE,
    CTX_DEADLINE,
    SAMPLE,
    b"l5d-reqid",
    b"l5d-dst-service",
    b"l5d-dst-client",
    b"l5d-dst-residual",
];

/// What one listener's requests are held to (`ServerRules` and the router's identifier).
#[derive(Clone, Debug)]
pub struct ServerRules {
    /// `clearContext`: every `l5d-*` field is dropped both ways.
    pub edge: bool,
    /// This router's `Via` entry (`1.1 pyproxy-<label>`).
    pub via: Vec<u8>,
    pub max_call_depth: usize,
    /// The `io.l5d.header.token` header, lower case (`host` by default).
    pub ident: Vec<u8>,
    pub max_line: usize,
    pub max_head: usize,
    pub max_headers: usize,
    /// Largest request body the lane buffers whole and can replay (`streamAfterContentLengthKB`):
    /// larger ones stream, on the trio path.
    pub stream_after: usize,
    /// The carriers of overrides in baggage: the router's `dtabBaggage`, and at an edge the
    /// member's scrub (None: neither).
    pub carriers: Option<Carriers>,
    /// An edge with `signedOverrides`: `l5d-dtab` and `l5d-dtab-sig` key the route (the host
    /// installs routes only for valid signatures, with their expiry).
    pub signed: bool,
}

/// W3C baggage's minimum limits: at least this many members and bytes are kept.
pub const MAX_MEMBERS: usize = 64;
pub const MAX_BYTES: usize = 8192;
/// Carrier ids (`pyproxy.http.baggage`): W3C `baggage`, Jaeger `uberctx-<key>`, OpenTracing
/// `ot-baggage-<key>`.
pub const W3C: u8 = 0;

/// How a listener treats the carriers of overrides (`pyproxy.http.baggage.BaggageRules`).
#[derive(Clone, Debug)]
pub struct Carriers {
    /// The member's key (compared exactly).
    pub key: Vec<u8>,
    /// The carriers read, in order (the first holding the key wins); empty at an edge.
    pub read: Vec<u8>,
    /// The carriers whose fields are taken out of the request (and written back per the rules).
    pub capture: [bool; 3],
    /// `baggage`, `uberctx-<key>`, `ot-baggage-<key>`, lower case.
    names: [Vec<u8>; 3],
}

impl Carriers {
    pub fn new(key: &[u8], read: &[u8], capture: &[u8]) -> Carriers {
        let lower = key.to_ascii_lowercase();
        let mut c = [false; 3];
        for &id in capture {
            if let Some(x) = c.get_mut(usize::from(id)) {
                *x = true;
            }
        }
        Carriers {
            key: key.to_vec(),
            read: read.iter().copied().filter(|&id| id < 3).collect(),
            capture: c,
            names: [b"baggage".to_vec(), [b"uberctx-".as_slice(), &lower].concat(), [b"ot-baggage-".as_slice(), &lower].concat()],
        }
    }

    /// The captured carrier a field belongs to.
    fn carrier_of(&self, name: &[u8]) -> Option<usize> {
        (0..3).find(|&i| self.capture[i] && eq(name, &self.names[i]))
    }

    /// The override member's raw texts in one carrier's captured values (empty: it holds none).
    fn found<'a>(&self, id: usize, values: &[&'a [u8]]) -> Vec<&'a [u8]> {
        if id == usize::from(W3C) {
            members(values).filter(|m| member_key(m) == self.key.as_slice()).collect()
        } else {
            values.to_vec()
        }
    }
}

/// The list members of `baggage` values, trimmed, empty ones skipped (`baggage.members`).
pub fn members<'a, 'b>(values: &'b [&'a [u8]]) -> impl Iterator<Item = &'a [u8]> + 'b {
    values.iter().flat_map(|v| v.split(|&c| c == b',')).map(trim).filter(|m| !m.is_empty())
}

/// A member's key: its text up to the first `=` or `;`, trimmed (`baggage.member_key`).
pub fn member_key(m: &[u8]) -> &[u8] {
    let cut = m.iter().position(|&c| c == b'=' || c == b';').unwrap_or(m.len());
    trim(&m[..cut])
}

/// The `baggage` value sent on: the received members without `key`'s, `ours` first, within W3C's
/// limits (`baggage.rewrite`): `(value, members dropped)`, the value None when none is left.
pub fn rewrite(values: &[&[u8]], key: &[u8], ours: Option<&[u8]>) -> (Option<Vec<u8>>, usize) {
    let mut out: Vec<u8> = Vec::new();
    let mut count = 0;
    let mut dropped = 0;
    if let Some(m) = ours {
        if m.len() <= MAX_BYTES {
            out.extend_from_slice(m);
            count = 1;
        } else {
            dropped += 1;
        }
    }
    for m in members(values) {
        if member_key(m) == key {
            continue;
        }
        let extra = m.len() + usize::from(count > 0);
        if count < MAX_MEMBERS && out.len() + extra <= MAX_BYTES {
            if count > 0 {
                out.push(b',');
            }
            out.extend_from_slice(m);
            count += 1;
        } else {
            dropped += 1;
        }
    }
    ((count > 0).then_some(out), dropped)
}

fn eq(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.eq_ignore_ascii_case(lower)
}

fn any(name: &[u8], set: &[&[u8]]) -> bool {
    set.iter().any(|s| eq(name, s))
}

/// `l5d-*` or `l5d_*` in any case (`pyproxy.headers.is_l5d`).
pub fn is_l5d(name: &[u8]) -> bool {
    name.len() > 4 && (eq(&name[..4], b"l5d-") || eq(&name[..4], b"l5d_"))
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|c| !matches!(c, b' ' | b'\t')).unwrap_or(v.len());
    let e = v.iter().rposition(|c| !matches!(c, b' ' | b'\t')).map_or(s, |e| e + 1);
    &v[s..e.max(s)]
}

/// A request the lane may forward: what to keep of it and where it goes.
#[derive(Debug)]
pub struct Scan<'a> {
    /// The received fields to forward, in order.
    pub kept: Vec<Field<'a>>,
    /// The received `Via` values.
    pub via: Vec<&'a [u8]>,
    /// The route key (see [`route_key`]).
    pub key: Vec<u8>,
    /// The received `l5d-ctx-trace`, decoded.
    pub parent: Option<super::trace::TraceId>,
    /// The received `l5d-ctx-deadline`: the strictest valid `(timestamp, deadline)` in ns.
    pub deadline: Option<(u64, u64)>,
    /// The captured W3C `baggage` values (written back by [`baggage_block`]).
    pub baggage: Vec<&'a [u8]>,
    /// A captured carrier holds the override member.
    pub present: bool,
}

/// ASCII whitespace as Python's `bytes.split()` splits on.
fn py_space(c: &u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A valid `l5d-ctx-deadline` value holds a number past `u64` (the lane declines the request).
#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge;

/// The strictest valid `l5d-ctx-deadline` value (`<timestamp_ns> <deadline_ns>`, two runs of ASCII
/// digits): the twin of `pyproxy.http.context.parse_deadline`, its quirks included (a value with
/// an earlier deadline keeps the larger of the two timestamps). `Err` when a valid value holds a
/// number past `u64` (Python's are unbounded: the lane declines such a request).
pub fn parse_deadline(values: &[&[u8]]) -> Result<Option<(u64, u64)>, TooLarge> {
    let mut best: Option<(u64, u64)> = None;
    for v in values {
        let mut parts = v.split(py_space).filter(|p| !p.is_empty());
        let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if !a.iter().all(u8::is_ascii_digit) || !b.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let number = |p: &[u8]| p.iter().try_fold(0u64, |n, &c| n.checked_mul(10)?.checked_add(u64::from(c - b'0'))).ok_or(TooLarge);
        let (ts, dl) = (number(a)?, number(b)?);
        match best {
            Some((_, bdl)) if dl >= bdl => {}
            Some((bts, _)) => best = Some((ts.max(bts), dl)),
            None => best = Some((ts, dl)),
        }
    }
    Ok(best)
}

/// `l5d-ctx-deadline: <timestamp_ns> <deadline_ns>` (`pyproxy.http.context.format_deadline`).
pub fn deadline_field(timestamp_ns: u64, deadline_ns: u64) -> Vec<u8> {
    format!("l5d-ctx-deadline: {timestamp_ns} {deadline_ns}\r\n").into_bytes()
}

/// The key a route is installed under: the server, the identifier's value and the override fields
/// (`l5d-ctx-dtab` values, then `l5d-dtab` values, each joined by `\n`); the Python path builds
/// the same bytes (`pyproxy.lane.route_key`).
///
/// `extra`: what else decided the override (`routing.overrides.Resolved.extra`): `b<carrier>`
/// and the raw member texts read from baggage, or `s` and the `l5d-dtab-sig` values at an edge
/// with `signedOverrides`; appended after a third `\0` when not empty.
pub fn route_key(server: u16, ident: &[u8], ctx_dtab: &[&[u8]], dtab: &[&[u8]], extra: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + ident.len() + extra.len());
    key.extend_from_slice(&server.to_le_bytes());
    key.extend_from_slice(ident);
    for part in [ctx_dtab, dtab] {
        key.push(0);
        join(&mut key, part);
    }
    if !extra.is_empty() {
        key.push(0);
        key.extend_from_slice(extra);
    }
    key
}

fn join(out: &mut Vec<u8>, part: &[&[u8]]) {
    for (i, v) in part.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(v);
    }
}

/// Whether the lane takes `req` on a listener with `rules` (None: the Python path serves it).
pub fn scan_request<'a>(req: &Request<'a>, server: u16, rules: &ServerRules) -> Option<Scan<'a>> {
    // A body small enough to buffer whole (nothing to stream), origin form, nothing to continue.
    if req.content_length > rules.stream_after as i64 || req.chunked || req.expect_continue || req.target.first() != Some(&b'/') {
        return None;
    }
    let edge = rules.edge;
    let plain = req
        .connection
        .iter()
        .all(|t| eq(t, b"close") || eq(t, b"keep-alive"));
    let nominated = |name: &[u8]| {
        !plain
            && req.connection.iter().any(|t| {
                eq(name, t)
                    && !any(t, &NOT_NOMINABLE)
                    && !(edge && is_l5d(t))
            })
    };
    let mut kept = Vec::with_capacity(req.fields.len());
    let mut via = Vec::new();
    let mut ctx_dtab: Vec<&[u8]> = Vec::new();
    let mut dtab: Vec<&[u8]> = Vec::new();
    let mut trace: Option<&[u8]> = None;
    let mut deadlines: Vec<&[u8]> = Vec::new();
    let mut captured: [Vec<&[u8]>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut sigs: Vec<&[u8]> = Vec::new();
    let signed = edge && rules.signed;
    for f in &req.fields {
        let name = f.name;
        if any(name, &HOP_BY_HOP) || nominated(name) || eq(name, XFCC) {
            continue;
        }
        if let Some(id) = rules.carriers.as_ref().and_then(|c| c.carrier_of(name)) {
            captured[id].push(f.value);
            continue;
        }
        if signed && eq(name, DTAB) {
            dtab.push(f.value);
            continue;
        }
        if signed && eq(name, DTAB_SIG) {
            sigs.push(f.value);
            continue;
        }
        if is_l5d(name) {
            if edge {
                continue;
            }
            if any(name, &CONTEXT) {
                if eq(name, SAMPLE) {
                    return None; // sampling: the Python path
                } else if eq(name, CTX_DEADLINE) {
                    deadlines.push(f.value);
                } else if eq(name, DTAB) {
                    dtab.push(f.value);
                } else if eq(name, CTX_DTAB) {
                    ctx_dtab.push(f.value);
                } else if eq(name, CTX_TRACE) {
                    trace = trace.or(Some(f.value));
                }
                continue;
            }
        } else if eq(name, b"via") {
            via.push(f.value);
            continue;
        } else if eq(name, b"content-length") {
            continue; // written once, canonically, after the added fields
        }
        kept.push(*f);
    }
    // Loop and depth: the Python path answers 400.
    let mut hops = 0;
    for v in &via {
        for e in v.split(|&c| c == b',').map(trim).filter(|e| !e.is_empty()) {
            hops += 1;
            if e == rules.via.as_slice() {
                return None;
            }
        }
    }
    if hops > rules.max_call_depth {
        return None;
    }
    let ident = if rules.ident == b"host" {
        req.host
    } else {
        req.fields.iter().find(|f| eq(f.name, &rules.ident)).map(|f| f.value)
    }
    .filter(|v| !v.is_empty())?;
    let parent = match trace {
        None => None,
        // A value the Python path would not decode the same way goes there.
        Some(t) => Some(super::trace::TraceId::from_header(t)?),
    };
    let deadline = parse_deadline(&deadlines).ok()?;
    // What else decided the override: the member read from baggage, or the signature.
    let mut extra = Vec::new();
    let mut present = false;
    if let Some(c) = &rules.carriers {
        present = (0..3).any(|id| !c.found(id, &captured[id]).is_empty());
        if edge && present {
            return None; // the trio path removes the member and counts it
        }
        if !edge && present && ctx_dtab.is_empty() && dtab.is_empty() {
            for &id in &c.read {
                let raw = c.found(usize::from(id), &captured[usize::from(id)]);
                if !raw.is_empty() {
                    extra.extend_from_slice(&[b'b', b'0' + id]);
                    join(&mut extra, &raw);
                    break;
                }
            }
        }
    }
    if signed && (!dtab.is_empty() || !sigs.is_empty()) {
        extra.push(b's');
        join(&mut extra, &sigs);
    }
    let [baggage, _, _] = captured;
    Some(Scan {
        kept,
        via,
        key: route_key(server, ident, &ctx_dtab, &dtab, &extra),
        parent,
        deadline,
        baggage,
        present,
    })
}

/// The `baggage` field(s) sent on (`routing.overrides.resolve`): when an override is in play
/// (`has_override`: the route carries one; or the request's carriers hold the member) the
/// rewritten value with the route's `member` first; otherwise the received values as they came.
/// None when the rewrite would drop members for W3C's limits (the trio path counts them).
pub fn baggage_block(scan: &Scan<'_>, rules: &ServerRules, has_override: bool, member: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let Some(c) = rules.carriers.as_ref().filter(|c| c.capture[usize::from(W3C)]) else {
        return Some(out);
    };
    if has_override || scan.present {
        let (value, dropped) = rewrite(&scan.baggage, &c.key, if has_override { member } else { None });
        if dropped > 0 {
            return None;
        }
        if let Some(v) = value {
            field(&mut out, b"baggage", &v);
        }
    } else {
        for v in &scan.baggage {
            field(&mut out, b"baggage", v);
        }
    }
    Some(out)
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn via_value(out: &mut Vec<u8>, received: &[&[u8]], ours: &[u8]) {
    out.extend_from_slice(b"Via: ");
    for v in received {
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ours);
    out.extend_from_slice(b"\r\n");
}

/// The request head sent upstream: the start line, the kept fields, `Via`, the route's
/// `l5d-dst-*` block, trace and request id, the override block, the `baggage` block, `stamp`
/// (the timestamp and deadline fields), and the framing field.
#[allow(clippy::too_many_arguments)]
pub fn request_head(
    req: &Request<'_>,
    scan: &Scan<'_>,
    rules: &ServerRules,
    route: &[u8],
    trace: &[u8],
    reqid: &[u8],
    ctx: &[u8],
    carried: &[u8],
    stamp: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + req.head_len + route.len() + ctx.len() + carried.len() + stamp.len());
    out.extend_from_slice(req.method);
    out.push(b' ');
    out.extend_from_slice(req.target);
    out.extend_from_slice(if req.minor == 0 { b" HTTP/1.0\r\n" } else { b" HTTP/1.1\r\n" });
    for f in &scan.kept {
        field(&mut out, f.name, f.value);
    }
    via_value(&mut out, &scan.via, &rules.via);
    out.extend_from_slice(route);
    field(&mut out, b"l5d-ctx-trace", trace);
    field(&mut out, b"l5d-reqid", reqid);
    out.extend_from_slice(ctx);
    out.extend_from_slice(carried);
    out.extend_from_slice(stamp); // the listener's timestampHeader field, if any
    if req.content_length >= 0 {
        field(&mut out, b"Content-Length", req.content_length.to_string().as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// How the lane relays a response body.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// No body (HEAD, 204, 304).
    None,
    /// Exactly this many bytes.
    Fixed(u64),
    /// Chunked: re-framed chunk by chunk, trailers filtered (see [`trailer_block`]).
    Chunked,
}

/// The downstream response head and its body, or None when the Python path must take the response
/// over (5xx and interim responses go to classification and retries; close-delimited bodies, chunked
/// ones to an HTTP/1.0 client, and at an edge a response carrying `l5d-err`, to the full relay).
pub fn response_head(
    resp: &Response<'_>,
    head_request: bool,
    keep_down: bool,
    req_minor: u8,
    rules: &ServerRules,
) -> Option<(Vec<u8>, Body)> {
    let status = resp.status;
    if !(200..500).contains(&status) {
        return None;
    }
    if rules.edge && resp.fields.iter().any(|f| eq(f.name, b"l5d-err")) {
        return None;
    }
    let body = if head_request || status == 204 || status == 304 {
        Body::None
    } else if resp.content_length >= 0 {
        Body::Fixed(resp.content_length as u64)
    } else if resp.chunked && req_minor == 1 {
        Body::Chunked
    } else {
        return None;
    };
    let tokens: Vec<Vec<u8>> = resp.connection.iter().map(|t| t.to_ascii_lowercase()).collect();
    let nominated = |name: &[u8]| {
        tokens.iter().any(|t| {
            !matches!(t.as_slice(), b"close" | b"keep-alive" | b"content-length" | b"via") && eq(name, t)
        })
    };
    let mut out = Vec::with_capacity(128 + resp.head_len);
    out.extend_from_slice(if req_minor == 0 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason);
    out.extend_from_slice(b"\r\n");
    let mut via: Vec<&[u8]> = Vec::new();
    for f in &resp.fields {
        let name = f.name;
        if any(name, &HOP_BY_HOP) || nominated(name) || eq(name, b"content-length") {
            continue;
        }
        if eq(name, b"via") {
            via.push(f.value);
            continue;
        }
        if (rules.edge && is_l5d(name)) || eq(name, b"l5d-success-class") {
            continue;
        }
        field(&mut out, name, f.value);
    }
    if !rules.edge {
        // this router's classification, as the trio path sets it: every classifier calls a
        // 200-499 response a success (5xx ones go back to Python)
        field(&mut out, b"l5d-success-class", b"1.0");
    }
    via_value(&mut out, &via, &rules.via);
    if resp.content_length >= 0 {
        field(&mut out, b"Content-Length", resp.content_length.to_string().as_bytes());
    } else if body == Body::Chunked {
        field(&mut out, b"Transfer-Encoding", b"chunked");
    }
    if !keep_down {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Some((out, body))
}

/// The trailer fields relayed after the last chunk (`pyproxy.exchange._trailer_block`): no
/// hop-by-hop fields, no `Content-Length` or `Host`, and at an edge no `l5d-*`.
pub fn trailer_block(fields: &[Field<'_>], edge: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let name = f.name;
        if any(name, &HOP_BY_HOP) || eq(name, b"content-length") || eq(name, b"host") || (edge && is_l5d(name)) {
            continue;
        }
        field(&mut out, name, f.value);
    }
    out
}

/// Whether the upstream may carry another request after this response (`Response.keep_alive`).
pub fn response_keep_alive(resp: &Response<'_>) -> bool {
    if resp.minor == 0 {
        resp.connection.iter().any(|t| eq(t, b"keep-alive"))
    } else {
        !resp.connection.iter().any(|t| eq(t, b"close"))
    }
}

/// Whether the client allows another request (`Request.keep_alive`; HTTP/1.0: never).
pub fn request_keep_alive(req: &Request<'_>) -> bool {
    req.minor == 1 && !req.connection.iter().any(|t| eq(t, b"close"))
}
