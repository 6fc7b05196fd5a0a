//! Open-loop HTTP/1.1 load generator (wrk2's method), std only, loopback only.
//!
//! A fixed schedule sends request `i` at `t0 + i / rate`, for `rate * duration` requests, spread over
//! `connections` keep-alive connections: connection `c` owns requests `c, c + C, c + 2C, ...`, one
//! thread and one blocking socket each. Every latency is measured from the request's *intended*
//! send time to the last byte of its response, so when the server stalls, the requests that should
//! have gone out meanwhile are charged for the wait (coordinated omission corrected), instead of
//! silently not being sent as in a closed loop (wrk, ab). A connection that falls behind sends its
//! next request at once and keeps catching up; `max_send_lag_us` tells how far behind any got.
//! `uncorrected_latency_us` is the same from the *actual* send time, what a closed loop would report:
//! the gap between the two is what coordinated omission would have hidden.
//!
//! A sleeping thread wakes up late: Linux's timer slack (50 µs by default; lowered to 1 ns here for
//! all threads) plus the wake-up itself, tens of µs and at times a millisecond on a busy or virtual
//! machine, and that lateness would be charged to the latency. `--spin-us US` sleeps until US before
//! each send time and busy-waits the rest, for punctual sends at the cost of CPU (about
//! rate x US of a CPU). `mean_send_lag_us` shows how punctual the sends were.
//!
//! A request whose response has not fully arrived `--timeout-ms` after it was actually sent is a
//! timeout; its connection is closed and reopened for the next one. I/O and protocol failures are
//! errors. Neither is in the latency histogram; both are counted. Scheduled requests that could not
//! be sent before `t0 + duration + timeout` are `unsent`.
//!
//! Latencies are kept in nanoseconds in a log-linear histogram (HdrHistogram's layout: 64 linear
//! sub-buckets per power of two, so at most 1/64 ≈ 1.6% relative error; percentiles report the
//! bucket's highest value, never above the exact max). One JSON line goes to stdout.
//!
//! ```text
//! loadgen --url http://127.0.0.1:PORT/path -H 'Host: x' --rate 1000 --duration 5 \
//!         --connections 16 --timeout-ms 1000
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: loadgen --url http://127.0.0.1:PORT/path [-H 'Name: value']... \
[--rate REQ_PER_S] [--duration SECONDS] [--connections N] [--timeout-ms MS] [--spin-us US]

Open loop at a fixed rate over N keep-alive connections; latency from each request's intended send
time (coordinated omission corrected). Prints one JSON line. Loopback targets only.
--spin-us: sleep until US before each send time, then busy-wait (punctual, costs CPU).
Defaults: --rate 1000 --duration 5 --connections 16 --timeout-ms 1000 --spin-us 0";

const MAX_CONNECTIONS: usize = 10_000;
const MAX_DURATION_S: f64 = 3600.0;
const MAX_RATE: f64 = 1_000_000.0;
const MAX_RESPONSE: usize = 64 << 20;

// ---------------------------------------------------------------------------------------------
// Command line

struct Args {
    url: String,
    addr: SocketAddr,
    request: Vec<u8>,
    rate: f64,
    duration: f64,
    connections: usize,
    timeout: Duration,
    spin: Duration,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut url = None;
    let mut headers: Vec<String> = Vec::new();
    let mut rate = 1000.0;
    let mut duration = 5.0;
    let mut connections = 16usize;
    let mut timeout_ms = 1000u64;
    let mut spin_us = 0u64;
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let mut value = || -> Result<String, String> {
            i += 1;
            argv.get(i).cloned().ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Err(String::new()),
            "--url" | "-u" => url = Some(value()?),
            "-H" | "--header" => headers.push(value()?),
            "--rate" | "-R" => rate = num(flag, &value()?)?,
            "--duration" | "-d" => duration = num(flag, &value()?)?,
            "--connections" | "-c" => connections = num::<usize>(flag, &value()?)?,
            "--timeout-ms" => timeout_ms = num(flag, &value()?)?,
            "--spin-us" => spin_us = num(flag, &value()?)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    let url = url.ok_or("--url is required")?;
    if !(rate > 0.0 && rate <= MAX_RATE) {
        return Err(format!("--rate must be in (0, {MAX_RATE}]"));
    }
    if !(duration > 0.0 && duration <= MAX_DURATION_S) {
        return Err(format!("--duration must be in (0, {MAX_DURATION_S}] seconds"));
    }
    if connections == 0 || connections > MAX_CONNECTIONS {
        return Err(format!("--connections must be in [1, {MAX_CONNECTIONS}]"));
    }
    if timeout_ms == 0 {
        return Err("--timeout-ms must be positive".into());
    }
    let (authority, path) = split_url(&url)?;
    let addr = resolve_loopback(&authority)?;
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    if !headers.iter().any(|h| h.to_ascii_lowercase().starts_with("host:")) {
        head.push_str(&format!("Host: {authority}\r\n"));
    }
    for h in &headers {
        if !h.contains(':') || h.contains('\r') || h.contains('\n') {
            return Err(format!("bad header {h:?} (want 'Name: value')"));
        }
        head.push_str(h.trim());
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    Ok(Args {
        url,
        addr,
        request: head.into_bytes(),
        rate,
        duration,
        connections,
        timeout: Duration::from_millis(timeout_ms),
        spin: Duration::from_micros(spin_us.min(10_000)),
    })
}

fn num<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{flag}: not a number: {s:?}"))
}

/// `http://host:port/path?query` into (`host:port`, `/path?query`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("URL has no host".into());
    }
    let authority = if authority.rsplit_once(':').is_none_or(|(_, p)| p.contains(']')) {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    Ok((authority, path.to_string()))
}

/// The first address of `host:port`; every address it resolves to must be a loopback one.
fn resolve_loopback(authority: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> =
        authority.to_socket_addrs().map_err(|e| format!("cannot resolve {authority}: {e}"))?.collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(format!("{authority} is not a loopback address; loadgen only targets this machine"));
    }
    Ok(addrs[0])
}

// ---------------------------------------------------------------------------------------------
// Histogram: HdrHistogram's log-linear layout, values in nanoseconds

const SUB: u64 = 128; // sub-buckets in the first, linear range
const HALF: u64 = SUB / 2;

struct Hist {
    counts: Vec<u64>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Hist {
    fn new() -> Self {
        Hist { counts: vec![0; bucket(u64::MAX) + 1], total: 0, min: u64::MAX, max: 0, sum: 0 }
    }

    fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += v as u128;
    }

    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// The value at or below which `q` percent of the recorded values fall (bucket's top, <= max).
    fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_top(i).min(self.max);
            }
        }
        self.max
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() as u64 - 6; // (v >> shift) in [64, 128)
    (SUB + (shift - 1) * HALF + ((v >> shift) - HALF)) as usize
}

fn bucket_top(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let k = i - SUB;
    let shift = k / HALF + 1;
    let sub = k % HALF + HALF;
    ((sub + 1) << shift).wrapping_sub(1)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 response framing

enum Framing {
    /// The response ends at this offset of the buffer.
    Complete(usize),
    /// More bytes are needed.
    Partial,
    /// Body delimited by the end of the connection.
    UntilClose,
}

struct Head {
    status: u16,
    close: bool,
}

/// Looks at `buf` (starting with a response head) and says where the response ends.
fn frame(buf: &[u8]) -> Result<(Head, Framing), String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err("response head over 64 KiB".into());
        }
        return Ok((Head { status: 0, close: false }, Framing::Partial));
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or(format!("bad status line {status_line:?}"))?;
    let mut close = version == "HTTP/1.0";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return Err(format!("bad header line {line:?}")) };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse().map_err(|_| format!("bad content-length {value:?}"))?),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().split(',').any(|t| t.trim() == "chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.split(',').any(|t| t.trim() == "close") {
                    close = true;
                } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }
    let body = end + 4;
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Complete(body)
    } else if chunked {
        match chunked_end(buf, body)? {
            Some(e) => Framing::Complete(e),
            None => Framing::Partial,
        }
    } else if let Some(n) = length {
        if buf.len() >= body + n {
            Framing::Complete(body + n)
        } else {
            Framing::Partial
        }
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok((Head { status, close }, framing))
}

/// End offset of a chunked body starting at `pos`, or `None` if incomplete.
fn chunked_end(buf: &[u8], mut pos: usize) -> Result<Option<usize>, String> {
    loop {
        let Some(eol) = find(&buf[pos..], b"\r\n") else { return Ok(None) };
        let line = std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| "bad chunk size".to_string())?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer section: lines until an empty one.
            loop {
                let Some(eol) = find(&buf[pos..], b"\r\n") else { return Ok(None) };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        pos += size + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// One connection's share of the schedule

#[derive(Default)]
struct Counts {
    sent: u64,
    completed: u64,
    non_2xx: u64,
    errors: u64,
    timeouts: u64,
    unsent: u64,
    connects: u64,
    max_send_lag_ns: u64,
    sum_send_lag_ns: u128,
    per_second: Vec<u64>,
    per_second_max_ns: Vec<u64>,
}

enum Outcome {
    Response { status: u16, close: bool },
    Timeout,
    Error,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn { stream, buf: Vec::with_capacity(16 * 1024) })
    }

    /// Sends the request and reads one whole response by `deadline`.
    fn exchange(&mut self, request: &[u8], deadline: Instant) -> Outcome {
        if let Err(e) = self.stream.write_all(request) {
            return if timed_out(&e) { Outcome::Timeout } else { Outcome::Error };
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match frame(&self.buf) {
                Err(_) => return Outcome::Error,
                Ok((head, Framing::Complete(end))) => {
                    self.buf.drain(..end);
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue; // interim response: the real one follows
                    }
                    return Outcome::Response { status: head.status, close: head.close };
                }
                Ok(_) if self.buf.len() > MAX_RESPONSE => return Outcome::Error,
                Ok((head, framing)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Outcome::Timeout;
                    }
                    if self.stream.set_read_timeout(Some(deadline - now)).is_err() {
                        return Outcome::Error;
                    }
                    match self.stream.read(&mut chunk) {
                        Ok(0) => {
                            return match framing {
                                Framing::UntilClose => Outcome::Response { status: head.status, close: true },
                                _ => Outcome::Error,
                            }
                        }
                        Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if timed_out(&e) => return Outcome::Timeout,
                        Err(_) => return Outcome::Error,
                    }
                }
            }
        }
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

struct Plan {
    addr: SocketAddr,
    request: Vec<u8>,
    rate: f64,
    total: u64,
    connections: u64,
    timeout: Duration,
    spin: Duration,
    t0: Instant,
    hard_end: Instant,
}

/// Per connection: latency from the intended send time, latency from the actual send time, counts.
fn run_connection(plan: &Plan, c: u64, mut conn: Option<Conn>) -> (Hist, Hist, Counts) {
    let mut hist = Hist::new();
    let mut service = Hist::new();
    let mut n = Counts::default();
    let mut i = c;
    while i < plan.total {
        let intended = plan.t0 + Duration::from_secs_f64(i as f64 / plan.rate);
        let mut now = Instant::now();
        if now >= plan.hard_end {
            n.unsent += (plan.total - i).div_ceil(plan.connections);
            break;
        }
        if now + plan.spin < intended {
            thread::sleep(intended - now - plan.spin);
            now = Instant::now();
        }
        while now < intended {
            std::hint::spin_loop(); // --spin-us: the last stretch busy, for a punctual send
            now = Instant::now();
        }
        i += plan.connections;
        let lag = now.saturating_duration_since(intended).as_nanos() as u64;
        n.max_send_lag_ns = n.max_send_lag_ns.max(lag);
        n.sum_send_lag_ns += lag as u128;
        if conn.is_none() {
            n.connects += 1;
            match Conn::open(plan.addr, plan.timeout) {
                Ok(fresh) => conn = Some(fresh),
                Err(e) => {
                    n.sent += 1;
                    if timed_out(&e) {
                        n.timeouts += 1;
                    } else {
                        n.errors += 1;
                    }
                    continue;
                }
            }
        }
        let Some(open) = conn.as_mut() else { continue };
        n.sent += 1;
        let sent_at = Instant::now();
        let outcome = open.exchange(&plan.request, sent_at + plan.timeout);
        let done = Instant::now();
        match outcome {
            Outcome::Response { status, close } => {
                let latency = done.saturating_duration_since(intended).as_nanos() as u64;
                hist.record(latency);
                service.record(done.saturating_duration_since(sent_at).as_nanos() as u64);
                n.completed += 1;
                if !(200..300).contains(&status) {
                    n.non_2xx += 1;
                }
                let sec = done.saturating_duration_since(plan.t0).as_secs() as usize;
                if n.per_second.len() <= sec {
                    n.per_second.resize(sec + 1, 0);
                    n.per_second_max_ns.resize(sec + 1, 0);
                }
                n.per_second[sec] += 1;
                n.per_second_max_ns[sec] = n.per_second_max_ns[sec].max(latency);
                if close {
                    conn = None;
                }
            }
            Outcome::Timeout => {
                n.timeouts += 1;
                conn = None;
            }
            Outcome::Error => {
                n.errors += 1;
                conn = None;
            }
        }
    }
    (hist, service, n)
}

// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("loadgen: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if msg.is_empty() { 0 } else { 2 });
        }
    };
    // Linux lets a sleeping thread wake up to `timer_slack_ns` late (50 µs by default), which would be
    // charged to every latency. Threads inherit the slack of the thread that starts them, so lower it
    // here, before any is started. Best effort: without /proc the default slack stays.
    let _ = std::fs::write("/proc/self/timerslack_ns", "1");
    let total = (args.rate * args.duration).round().max(1.0) as u64;
    let connections = (args.connections as u64).min(total);

    // Open every connection before the clock starts, so connecting is not charged to the first requests.
    let mut initial = Vec::with_capacity(connections as usize);
    let mut connect_errors = 0u64;
    for _ in 0..connections {
        match Conn::open(args.addr, args.timeout) {
            Ok(c) => initial.push(Some(c)),
            Err(_) => {
                connect_errors += 1;
                initial.push(None);
            }
        }
    }

    let start = Instant::now() + Duration::from_millis(20);
    let plan = Plan {
        addr: args.addr,
        request: args.request.clone(),
        rate: args.rate,
        total,
        connections,
        timeout: args.timeout,
        spin: args.spin,
        t0: start,
        hard_end: start + Duration::from_secs_f64(args.duration) + args.timeout,
    };
    let results: Vec<(Hist, Hist, Counts)> = thread::scope(|s| {
        let handles: Vec<_> = initial
            .into_iter()
            .enumerate()
            .map(|(c, conn)| {
                let plan = &plan;
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || run_connection(plan, c as u64, conn))
                    .expect("cannot start a connection thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a connection thread panicked")).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();

    let mut hist = Hist::new();
    let mut service = Hist::new();
    let mut n = Counts::default();
    for (h, u, c) in &results {
        hist.merge(h);
        service.merge(u);
        n.sum_send_lag_ns += c.sum_send_lag_ns;
        n.sent += c.sent;
        n.completed += c.completed;
        n.non_2xx += c.non_2xx;
        n.errors += c.errors;
        n.timeouts += c.timeouts;
        n.unsent += c.unsent;
        n.connects += c.connects;
        n.max_send_lag_ns = n.max_send_lag_ns.max(c.max_send_lag_ns);
        if n.per_second.len() < c.per_second.len() {
            n.per_second.resize(c.per_second.len(), 0);
            n.per_second_max_ns.resize(c.per_second.len(), 0);
        }
        for (k, v) in c.per_second.iter().enumerate() {
            n.per_second[k] += v;
            n.per_second_max_ns[k] = n.per_second_max_ns[k].max(c.per_second_max_ns[k]);
        }
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    let summary = |h: &Hist| {
        let mean = if h.total > 0 { h.sum as f64 / h.total as f64 } else { 0.0 };
        format!(
            "{{\"min\":{:.1},\"mean\":{:.1},\"p50\":{:.1},\"p90\":{:.1},\"p99\":{:.1},\"p999\":{:.1},\"max\":{:.1}}}",
            us(if h.total > 0 { h.min } else { 0 }),
            mean / 1000.0,
            us(h.percentile(50.0)),
            us(h.percentile(90.0)),
            us(h.percentile(99.0)),
            us(h.percentile(99.9)),
            us(h.max),
        )
    };
    let per_second_max: Vec<String> = n.per_second_max_ns.iter().map(|&v| format!("{:.1}", us(v))).collect();
    let per_second: Vec<String> = n.per_second.iter().map(|v| v.to_string()).collect();
    println!(
        "{{\"url\":{url:?},\"rate\":{rate},\"duration_s\":{dur},\"connections\":{conns},\"timeout_ms\":{tmo},\
\"scheduled\":{total},\"sent\":{sent},\"completed\":{completed},\"errors\":{errors},\"timeouts\":{timeouts},\
\"non_2xx\":{non2xx},\"unsent\":{unsent},\"connect_errors_at_start\":{cerr},\"reconnects\":{reconn},\
\"elapsed_s\":{elapsed:.3},\"achieved_rps\":{achieved:.1},\"mean_send_lag_us\":{mlag:.1},\
\"max_send_lag_us\":{lag:.1},\"latency_us\":{lat},\"uncorrected_latency_us\":{unc},\"per_second\":{{\"completed\":[{ps}],\"max_us\":[{psm}]}}}}",
        url = args.url,
        rate = args.rate,
        dur = args.duration,
        conns = connections,
        tmo = args.timeout.as_millis(),
        total = total,
        sent = n.sent,
        completed = n.completed,
        errors = n.errors,
        timeouts = n.timeouts,
        non2xx = n.non_2xx,
        unsent = n.unsent,
        cerr = connect_errors,
        reconn = n.connects,
        elapsed = elapsed,
        achieved = n.completed as f64 / args.duration,
        mlag = if n.sent > 0 { n.sum_send_lag_ns as f64 / n.sent as f64 / 1000.0 } else { 0.0 },
        lag = us(n.max_send_lag_ns),
        lat = summary(&hist),
        unc = summary(&service),
        ps = per_second.join(","),
        psm = per_second_max.join(","),
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut prev = 0;
        for v in 0..200_000u64 {
            let b = bucket(v);
            assert!(b == prev || b == prev + 1, "v={v}");
            assert!(bucket_top(b) >= v);
            assert!((bucket_top(b) - v) as f64 <= v as f64 / 64.0 + 1.0, "v={v}");
            prev = b;
        }
        assert_eq!(bucket_top(bucket(u64::MAX)), u64::MAX);
    }

    #[test]
    fn percentiles() {
        let mut h = Hist::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.percentile(50.0);
        assert!((500_000..=508_000).contains(&p50), "{p50}");
        assert_eq!(h.percentile(100.0), 1_000_000);
        assert!(h.percentile(99.9) <= 1_000_000);
    }

    #[test]
    fn framing() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n";
        assert!(matches!(frame(r).unwrap().1, Framing::Complete(n) if n == r.len()));
        assert!(matches!(frame(&r[..r.len() - 1]).unwrap().1, Framing::Partial));
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert!(matches!(frame(c).unwrap().1, Framing::Complete(n) if n == c.len()));
        assert!(matches!(frame(&c[..c.len() - 2]).unwrap().1, Framing::Partial));
        let (head, f) = frame(b"HTTP/1.0 503 x\r\n\r\n").unwrap();
        assert!(head.close && head.status == 503 && matches!(f, Framing::UntilClose));
    }

    #[test]
    fn urls() {
        assert_eq!(split_url("http://127.0.0.1:8080/a?b").unwrap(), ("127.0.0.1:8080".into(), "/a?b".into()));
        assert_eq!(split_url("http://localhost").unwrap(), ("localhost:80".into(), "/".into()));
        assert!(resolve_loopback("127.0.0.1:1").is_ok());
        assert!(resolve_loopback("10.0.0.1:80").is_err());
    }
}
