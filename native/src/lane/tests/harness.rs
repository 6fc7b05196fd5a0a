//! A lane core on real loopback sockets, driven with an explicit clock: a fake upstream (a
//! listener the test accepts from and answers by hand), fake clients, and a host that balances
//! with the plain-Rust [`Balancer`] and keeps the events. Every wait is bounded in polls and time.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::balance::Balancer;
use crate::lane::head::{route_key, ServerRules};
use crate::lane::{BranchId, BranchSpec, Core, Env, Event, ServerConfig};

/// The clock the tests start at.
pub const T0: f64 = 1000.0;
/// The branch id of the route to the fake upstream.
pub const BRANCH: BranchId = 7;
pub const IDLE_TIMEOUT: f64 = 10.0;
pub const HEADER_TIMEOUT: f64 = 5.0;
pub const WRITE_TIMEOUT: f64 = 60.0;
pub const TIMEOUT_RESPONSE: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The field block of the route's branch.
pub const BLOCK: &[u8] = b"l5d-dst-service: /svc/web\r\n";

/// Polls a wait allows at most, and the time.
const MAX_POLLS: usize = 5000;
const MAX_WAIT: Duration = Duration::from_secs(10);

/// The host: balancers by branch, the events, the picks ended.
#[derive(Default)]
pub struct Host {
    pub balancers: HashMap<BranchId, Balancer>,
    pub events: Vec<Event>,
    pub ends: Vec<(BranchId, i64)>,
}

impl Env for Host {
    fn pick(&mut self, branch: BranchId, now: f64, draw: u64) -> Option<i64> {
        self.balancers.get_mut(&branch)?.pick(now, draw).ok()
    }

    fn end(&mut self, branch: BranchId, slot: i64, now: f64, rtt: f64) {
        self.ends.push((branch, slot));
        if let Some(b) = self.balancers.get_mut(&branch) {
            let _ = b.end(slot, now, rtt);
        }
    }

    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }
}

pub fn rules() -> ServerRules {
    ServerRules {
        edge: false,
        via: b"1.1 lane-test".to_vec(),
        max_call_depth: 10,
        ident: b"host".to_vec(),
        max_line: 4096,
        max_head: 8192,
        max_headers: 100,
        stream_after: 5120,
        carriers: None,
        signed: false,
    }
}

pub fn config() -> ServerConfig {
    ServerConfig {
        rules: rules(),
        idle_timeout: IDLE_TIMEOUT,
        header_timeout: HEADER_TIMEOUT,
        timeout_response: TIMEOUT_RESPONSE.to_vec(),
        access_log: false,
        timestamp_header: None,
        write_timeout: WRITE_TIMEOUT,
        max_concurrent: None,
    }
}

/// The lane under test, one listener, a route for `Host: web` to the fake upstream.
pub struct Lane {
    pub core: Core,
    pub host: Host,
    pub now: f64,
    pub server: usize,
    clients: TcpListener,
    pub upstream: TcpListener,
    pub up_addr: SocketAddr,
    /// Upstream connections accepted so far.
    pub accepted: usize,
}

impl Lane {
    pub fn new() -> Lane {
        Lane::with(config(), 0.0)
    }

    pub fn with(cfg: ServerConfig, recent: f64) -> Lane {
        let mut core = Core::new(42, recent).expect("a poll");
        let server = core.add_server(cfg);
        let clients = TcpListener::bind("127.0.0.1:0").expect("a client listener");
        let upstream = TcpListener::bind("127.0.0.1:0").expect("an upstream listener");
        upstream.set_nonblocking(true).expect("non-blocking");
        let up_addr = upstream.local_addr().expect("its address");
        let mut host = Host::default();
        let mut balancer = Balancer::new("p2c", 10.0, 0.03).expect("a balancer");
        balancer.add(0, T0).expect("slot 0");
        host.balancers.insert(BRANCH, balancer);
        let mut lane = Lane { core, host, now: T0, server, clients, upstream, up_addr, accepted: 0 };
        lane.route(BRANCH, vec![(0, up_addr)]);
        lane
    }

    /// Installs the route of `Host: web`: one branch with these endpoints.
    pub fn route(&mut self, id: BranchId, endpoints: Vec<(i64, SocketAddr)>) {
        self.route_timed(id, endpoints, None, None);
    }

    /// Installs the route of `Host: web` with a total timeout (the service's) and an attempt
    /// timeout (its branch's client's), in seconds.
    pub fn route_timed(&mut self, id: BranchId, endpoints: Vec<(i64, SocketAddr)>, total: Option<f64>, attempt: Option<f64>) {
        let key = route_key(self.server as u16, b"web", &[], &[], b"");
        let branch = BranchSpec { id, weight: 1.0, endpoints, block: BLOCK.to_vec(), attempt_timeout: attempt };
        assert!(self.core.install(key, vec![branch], Vec::new(), total, None, None));
    }

    /// A new client connection adopted by the lane with `received` already read from it.
    pub fn client(&mut self, received: &[u8]) -> TcpStream {
        let client = TcpStream::connect(self.clients.local_addr().expect("address")).expect("connect");
        client.set_nonblocking(true).expect("non-blocking");
        client.set_nodelay(true).expect("nodelay");
        let (accepted, _) = self.clients.accept().expect("accept");
        accepted.set_nonblocking(true).expect("non-blocking");
        let sock = mio::net::TcpStream::from_std(accepted);
        let (server, now) = (self.server, self.now);
        self.core.adopt(&mut self.host, sock, received, server, now).expect("a known server");
        client
    }

    pub fn poll(&mut self) {
        let now = self.now;
        self.core.poll(&mut self.host, now).expect("poll");
    }

    pub fn sweep(&mut self, now: f64) {
        self.now = now;
        self.core.sweep(&mut self.host, now);
    }

    /// Polls until `cond` holds (bounded: panics after MAX_POLLS polls or MAX_WAIT).
    pub fn wait(&mut self, what: &str, mut cond: impl FnMut(&mut Lane) -> bool) {
        let deadline = Instant::now() + MAX_WAIT;
        for _ in 0..MAX_POLLS {
            self.poll();
            if cond(self) {
                return;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        panic!("timed out waiting for {what}");
    }

    /// Polls a few times (for the lane to do whatever it would do now).
    pub fn settle(&mut self) {
        for _ in 0..20 {
            self.poll();
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// The next upstream connection the lane opens.
    pub fn accept(&mut self) -> TcpStream {
        let mut got = None;
        self.wait("an upstream connection", |l| match l.upstream.accept() {
            Ok((sock, _)) => {
                got = Some(sock);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        });
        let sock = got.expect("accepted");
        sock.set_nonblocking(true).expect("non-blocking");
        sock.set_nodelay(true).expect("nodelay");
        self.accepted += 1;
        sock
    }

    /// Whether the upstream has a connection waiting to be accepted (without taking it).
    pub fn upstream_pending(&mut self) -> Option<TcpStream> {
        match self.upstream.accept() {
            Ok((sock, _)) => {
                self.accepted += 1;
                sock.set_nonblocking(true).expect("non-blocking");
                Some(sock)
            }
            Err(_) => None,
        }
    }

    /// Reads from `sock` until `buf` holds a whole head (and the body its Content-Length says).
    pub fn read_message(&mut self, sock: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        self.wait("a whole message", |_| {
            read_available(sock, &mut buf);
            message_len(&buf).is_some()
        });
        let n = message_len(&buf).expect("whole");
        assert_eq!(buf.len(), n, "nothing past the message: {}", String::from_utf8_lossy(&buf));
        buf
    }

    /// Reads from `sock` until it ends.
    pub fn read_to_eof(&mut self, sock: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        self.wait("the end of the stream", |_| read_available(sock, &mut buf));
        buf
    }

    /// Reads from `sock` until `buf` holds `n` bytes.
    pub fn read_n(&mut self, sock: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        self.wait("bytes", |_| {
            read_available(sock, &mut buf);
            buf.len() >= n
        });
        buf
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.host.events)
    }

    /// Polls until an event came, then takes them all.
    pub fn wait_events(&mut self, what: &str) -> Vec<Event> {
        self.wait(what, |l| !l.host.events.is_empty());
        self.settle();
        self.take_events()
    }

    pub fn connections(&self) -> usize {
        self.core.connections(self.server)
    }
}

/// Reads what is there; true at the end of the stream (or a reset).
pub fn read_available(sock: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 65536];
    loop {
        match sock.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

pub fn write(sock: &mut TcpStream, data: &[u8]) {
    sock.write_all(data).expect("write");
}

/// The length of the first message in `buf` (head, and a Content-Length body), once all there.
pub fn message_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().expect("a length"));
    (buf.len() >= end + length).then_some(end + length)
}

/// The kinds of `events`, in order.
pub fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            Event::Handoff { .. } => "handoff",
            Event::Done { .. } => "done",
            Event::Resume { .. } => "resume",
            Event::Failed { .. } => "failed",
            Event::Abandon { .. } => "abandon",
            Event::Sampled { .. } => "sampled",
            Event::Access { .. } => "access",
        })
        .collect()
}

/// The bytes a handoff gave back (panics on another event).
pub fn handed_over(event: &Event) -> &[u8] {
    match event {
        Event::Handoff { received, .. } => received,
        other => panic!("not a handoff: {other:?}"),
    }
}

/// `(branch, status, count)` of a done event.
pub fn done(event: &Event) -> (BranchId, u16, u64) {
    match event {
        Event::Done { branch, status, count, .. } => (*branch, *status, *count),
        other => panic!("not a done: {other:?}"),
    }
}

pub const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: web\r\n\r\n";
pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// The response the client gets for [`OK`].
pub fn ok_relayed() -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nl5d-success-class: 1.0\r\nVia: 1.1 lane-test\r\nContent-Length: 2\r\n\r\nok".to_vec()
}
