//! `Lane`: the lane's core ([`crate::lane::Core`]) for `pyproxy/lane.py`, and its events as Python
//! classes.
//!
//! trio waits on the lane's descriptor and calls [`Lane::poll`] with the loop's clock when it is
//! readable; each call does the I/O that is ready, without blocking, and returns a list of events,
//! one object per [`Event`], of the classes below (`LaneHandoff`, `LaneDone`, `LaneResume`,
//! `LaneFailed`, `LaneAbandon`, `LaneSampled`, `LaneAccess`), whose fields are named as the
//! event's. Python dispatches on their class.
//!
//! A route's branches are Python objects (each with its client's balancer): this wrapper keeps
//! them in a table and gives the core their index as [`BranchId`]; events carry the object back as
//! `branch`, and an index is reused only after the core released it (no route or exchange refers
//! to it, and the events naming it were made). Times are the caller's clock (`now` of the call
//! that saw the event).

use std::net::{IpAddr, SocketAddr};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::balance::Balancer;
use crate::h1;
use crate::lane::head::{self, Body, Carriers, ServerRules};
use crate::lane::results::Hist;
use crate::lane::{adopt_fd, release_fd, BranchId, BranchSpec, Core, Env, Event, ServerConfig};

/// A branch as `Lane.install` receives it: weight, Python object, balancer, `(slot, ip, port)`s,
/// field block, its client's `requestAttemptTimeoutMs` in seconds (or None).
type BranchArg = (f64, Py<PyAny>, Py<Balancer>, Vec<(i64, String, u16)>, Vec<u8>, Option<f64>);

fn os_err(e: std::io::Error) -> PyErr {
    PyOSError::new_err(e.to_string())
}

/// A route branch as Python installed it: its object (events carry it back) and its client's
/// balancer (the core's picks and ends go to it).
struct Branch {
    obj: Py<PyAny>,
    balancer: Py<Balancer>,
}

/// The branches the core knows, by id; an id is reused once the core released it.
#[derive(Default)]
struct Branches {
    by_id: Vec<Option<Branch>>,
    free: Vec<BranchId>,
}

impl Branches {
    fn add(&mut self, b: Branch) -> BranchId {
        match self.free.pop() {
            Some(id) => {
                self.by_id[id] = Some(b);
                id
            }
            None => {
                self.by_id.push(Some(b));
                self.by_id.len() - 1
            }
        }
    }

    fn forget(&mut self, id: BranchId) {
        if let Some(b) = self.by_id.get_mut(id) {
            if b.take().is_some() {
                self.free.push(id);
            }
        }
    }

    fn get(&self, id: BranchId) -> Option<&Branch> {
        self.by_id.get(id).and_then(Option::as_ref)
    }

    fn obj(&self, py: Python<'_>, id: BranchId) -> Py<PyAny> {
        self.get(id).map_or_else(|| py.None(), |b| b.obj.clone_ref(py))
    }
}

/// The core's host during one call: the branches' balancers, and the list the events go to.
struct PyEnv<'a, 'py> {
    py: Python<'py>,
    branches: &'a Branches,
    out: &'a mut Vec<Py<PyAny>>,
}

impl Env for PyEnv<'_, '_> {
    fn pick(&mut self, branch: BranchId, now: f64, draw: u64) -> Option<i64> {
        let mut bal = self.branches.get(branch)?.balancer.bind(self.py).try_borrow_mut().ok()?;
        bal.0.pick(now, draw).ok()
    }

    fn end(&mut self, branch: BranchId, slot: i64, now: f64, rtt: f64) {
        let Some(b) = self.branches.get(branch) else {
            return;
        };
        if let Ok(mut bal) = b.balancer.bind(self.py).try_borrow_mut() {
            let _ = bal.0.end(slot, now, rtt); // a slot removed meanwhile is ignored
        }
    }

    fn emit(&mut self, event: Event) {
        if let Ok(obj) = event_object(self.py, self.branches, event) {
            self.out.push(obj);
        }
    }
}

/// A request the lane declines: Python serves the connection `fd`, starting with `received`
/// (`eof`: the client closed its sending side after them).
#[pyclass(module = "pyproxy._native", frozen, get_all)]
pub struct LaneHandoff {
    server: usize,
    fd: i32,
    received: Py<PyBytes>,
    eof: bool,
}

/// Requests the lane completed on one branch and listener with one status: their count, the
/// latency histograms in ms `(count, sum, min, max, [(bucket, n), ...])` to the response head and
/// to its end, and the counts per endpoint slot and per second started.
#[pyclass(module = "pyproxy._native", frozen, get_all)]
pub struct LaneDone {
    branch: Py<PyAny>,
    server: usize,
    status: u16,
    count: u64,
    head_ms: Py<PyAny>,
    total_ms: Py<PyAny>,
    slots: Py<PyAny>,
    seconds: Py<PyAny>,
}

/// A response the lane will not relay: Python continues the exchange with both connections.
/// `up_error`: the errno that ended the upstream's stream (0: none); `expired`: which deadline
/// passed before the response head (0: none, 1: the attempt's while connecting, 2: the attempt's,
/// 3: the request's; `pyproxy.datapath.attempt.EXPIRED_*`).
#[pyclass(module = "pyproxy._native", frozen, get_all)]
pub struct LaneResume {
    branch: Py<PyAny>,
    server: usize,
    slot: i64,
    started: f64,
    down_fd: i32,
    down_buf: Py<PyBytes>,
    head: Py<PyBytes>,
    up_fd: i32,
    up_buf: Py<PyBytes>,
    up_eof: bool,
    up_error: i32,
    expired: u8,
}

/// The upstream could not be reached; a `LaneHandoff` of the request follows.
#[pyclass(module = "pyproxy._native", frozen, get_all)]
pub struct LaneFailed {
    branch: Py<PyAny>,
    server: usize,
    slot: i64,
    started: f64,
    ended: f64,
}

/// An exchange abandoned before its response head: its pick ends.
#[pyclass(module = "pyproxy._native", frozen, get_all)]
pub struct LaneAbandon {
    branch: Py<PyAny>,
    server: usize,
    slot: i64,
    started: f64,
    ended: f64,
}

/// A completed request sampled for `io.l5d.recentRequests`: method, target, `(peer ip, port)`.
#[pyclass(module = "pyproxy._native", frozen, get_all)]
pub struct LaneSampled {
    branch: Py<PyAny>,
    server: usize,
    slot: i64,
    started: f64,
    ended: f64,
    status: u16,
    method: Py<PyBytes>,
    target: Py<PyBytes>,
    peer: (String, u16),
}

/// A request answered on a listener with an access log: its head as received, the client's IP
/// (`-` when unknown), the status and the Content-Length answered (-1: none, or chunked).
#[pyclass(module = "pyproxy._native", frozen, get_all)]
pub struct LaneAccess {
    server: usize,
    head: Py<PyBytes>,
    remote: String,
    status: u16,
    length: i64,
}

fn hist(py: Python<'_>, h: Hist) -> PyResult<Py<PyAny>> {
    Ok((h.count, h.sum, h.min, h.max, h.buckets).into_pyobject(py)?.into_any().unbind())
}

fn counts(py: Python<'_>, list: Vec<(i64, u64)>) -> PyResult<Py<PyAny>> {
    Ok(list.into_pyobject(py)?.into_any().unbind())
}

/// The Python object of one event (its sockets' descriptors released to Python).
fn event_object(py: Python<'_>, branches: &Branches, event: Event) -> PyResult<Py<PyAny>> {
    let bytes = |b: &[u8]| PyBytes::new(py, b).unbind();
    let obj = match event {
        Event::Handoff { server, sock, received, eof } => {
            Py::new(py, LaneHandoff { server, fd: release_fd(sock), received: bytes(&received), eof })?.into_any()
        }
        Event::Done { branch, server, status, count, head_ms, total_ms, slots, seconds } => {
            let done = LaneDone {
                branch: branches.obj(py, branch),
                server,
                status,
                count,
                head_ms: hist(py, head_ms)?,
                total_ms: hist(py, total_ms)?,
                slots: counts(py, slots)?,
                seconds: counts(py, seconds)?,
            };
            Py::new(py, done)?.into_any()
        }
        Event::Resume { branch, server, slot, started, down, down_buf, head, up, up_buf, up_eof, up_error, expired } => {
            let resume = LaneResume {
                branch: branches.obj(py, branch),
                server,
                slot,
                started,
                down_fd: release_fd(down),
                down_buf: bytes(&down_buf),
                head: bytes(&head),
                up_fd: release_fd(up),
                up_buf: bytes(&up_buf),
                up_eof,
                up_error,
                expired: expired as u8,
            };
            Py::new(py, resume)?.into_any()
        }
        Event::Failed { branch, server, slot, started, ended } => {
            Py::new(py, LaneFailed { branch: branches.obj(py, branch), server, slot, started, ended })?.into_any()
        }
        Event::Abandon { branch, server, slot, started, ended } => {
            Py::new(py, LaneAbandon { branch: branches.obj(py, branch), server, slot, started, ended })?.into_any()
        }
        Event::Sampled { branch, server, slot, started, ended, status, method, target, peer } => {
            let sampled = LaneSampled {
                branch: branches.obj(py, branch),
                server,
                slot,
                started,
                ended,
                status,
                method: bytes(&method),
                target: bytes(&target),
                peer: peer.map_or(("-".to_string(), 0), |a| (a.ip().to_string(), a.port())),
            };
            Py::new(py, sampled)?.into_any()
        }
        Event::Access { server, head, peer, status, length } => {
            let remote = peer.map_or_else(|| "-".to_string(), |ip| ip.to_string());
            Py::new(py, LaneAccess { server, head: bytes(&head), remote, status, length })?.into_any()
        }
    };
    Ok(obj)
}

/// The native data path's event loop (one per process; see the module documentation).
#[pyclass(module = "pyproxy._native", unsendable)]
pub struct Lane {
    core: Core,
    branches: Branches,
    /// Events made and not yet returned (a call that fails leaves them for the next).
    out: Vec<Py<PyAny>>,
}

impl Lane {
    /// Runs `f` on the core with this lane as its host.
    fn with_env<R>(&mut self, py: Python<'_>, f: impl FnOnce(&mut Core, &mut PyEnv<'_, '_>) -> R) -> R {
        let mut env = PyEnv { py, branches: &self.branches, out: &mut self.out };
        f(&mut self.core, &mut env)
    }

    /// The branches the core released are forgotten (their events were made).
    fn forget_released(&mut self) {
        for id in self.core.released() {
            self.branches.forget(id);
        }
    }

    /// The events of the call, for Python.
    fn take_out<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.forget_released();
        PyList::new(py, std::mem::take(&mut self.out))
    }
}

#[pymethods]
impl Lane {
    /// `seed`: the lane's draws; `recent`: `io.l5d.recentRequests`'s sample rate (0: none).
    #[new]
    #[pyo3(signature = (seed, recent = 0.0))]
    fn new(seed: u64, recent: f64) -> PyResult<Self> {
        Ok(Lane { core: Core::new(seed, recent).map_err(os_err)?, branches: Branches::default(), out: Vec::new() })
    }

    /// Registers a listener's rules; returns its index (the `server` of events and keys).
    /// `write_timeout`: seconds a client's pending response may make no progress;
    /// `max_concurrent`: the listener's `maxConcurrentRequests` (shared with Python's count, see
    /// `set_active`).
    #[allow(clippy::too_many_arguments)]
    /// `carriers`: `(key, carriers read, carriers captured)` of the listener's baggage rules
    /// (`pyproxy.http.baggage.BaggageRules`, carrier ids as bytes); `signed`: an edge with
    /// `signedOverrides`.
    #[pyo3(signature = (
        edge, via, max_call_depth, ident, max_line, max_head, max_headers, stream_after, idle_timeout,
        header_timeout, timeout_response, access_log, timestamp_header, write_timeout = 60.0, max_concurrent = None,
        carriers = None, signed = false
    ))]
    fn add_server(
        &mut self,
        edge: bool,
        via: Vec<u8>,
        max_call_depth: usize,
        ident: Vec<u8>,
        max_line: usize,
        max_head: usize,
        max_headers: usize,
        stream_after: usize,
        idle_timeout: f64,
        header_timeout: f64,
        timeout_response: Vec<u8>,
        access_log: bool,
        timestamp_header: Option<Vec<u8>>,
        write_timeout: f64,
        max_concurrent: Option<usize>,
        carriers: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
        signed: bool,
    ) -> usize {
        self.core.add_server(ServerConfig {
            rules: ServerRules {
                edge,
                via,
                max_call_depth,
                ident: ident.to_ascii_lowercase(),
                max_line,
                max_head,
                max_headers,
                stream_after,
                carriers: carriers.map(|(key, read, capture)| Carriers::new(&key, &read, &capture)),
                signed: edge && signed,
            },
            idle_timeout,
            header_timeout,
            timeout_response,
            access_log,
            timestamp_header,
            write_timeout: if write_timeout.is_nan() { 60.0 } else { write_timeout.max(0.0) },
            max_concurrent,
        })
    }

    /// Python's requests in flight on listener `server` (its half of `maxConcurrentRequests`).
    fn set_active(&mut self, server: usize, active: usize) {
        self.core.set_active(server, active);
    }

    /// The lane's exchanges in flight on listener `server`.
    fn in_flight(&self, server: usize) -> usize {
        self.core.in_flight(server)
    }

    /// The descriptor trio waits on (readable: something is ready).
    fn fileno(&self) -> i32 {
        self.core.fileno()
    }

    /// Installs a route: `branches` are `(weight, branch, balancer, endpoints, block,
    /// attempt_timeout)` with `endpoints` a list of `(slot, ip, port)`; `total_timeout`: the
    /// service's `totalTimeoutMs` in seconds; `ctx_block` the override's fixed fields, `member`
    /// its W3C baggage member, `until` a signed override's end (Unix seconds). False when an
    /// address is not an IP literal.
    #[pyo3(signature = (key, branches, ctx_block, total_timeout = None, member = None, until = None))]
    fn install(
        &mut self,
        key: Vec<u8>,
        branches: Vec<BranchArg>,
        ctx_block: Vec<u8>,
        total_timeout: Option<f64>,
        member: Option<Vec<u8>>,
        until: Option<f64>,
    ) -> bool {
        let mut parsed = Vec::with_capacity(branches.len());
        for (weight, obj, balancer, endpoints, block, attempt_timeout) in branches {
            let mut addrs = Vec::with_capacity(endpoints.len());
            for (slot, ip, port) in endpoints {
                let Ok(ip) = ip.parse::<IpAddr>() else {
                    return false;
                };
                addrs.push((slot, SocketAddr::new(ip, port)));
            }
            parsed.push((weight, Branch { obj, balancer }, addrs, block, attempt_timeout));
        }
        if parsed.is_empty() {
            return false;
        }
        let specs = parsed
            .into_iter()
            .map(|(weight, b, endpoints, block, attempt_timeout)| BranchSpec {
                id: self.branches.add(b),
                weight,
                endpoints,
                block,
                attempt_timeout,
            })
            .collect();
        let ok = self.core.install(key, specs, ctx_block, total_timeout, member, until);
        self.forget_released();
        ok
    }

    /// Forgets every route (a namer or an endpoint's health changed).
    fn clear_routes(&mut self) {
        self.core.clear_routes();
        self.forget_released();
    }

    /// Number of installed routes.
    fn routes(&self) -> usize {
        self.core.routes()
    }

    /// Takes a connection over (`fd` detached from its Python socket, `received` not yet parsed).
    fn adopt<'py>(&mut self, py: Python<'py>, fd: i32, received: &[u8], server: usize, now: f64) -> PyResult<Bound<'py, PyList>> {
        // The descriptor is the lane's from here, whatever happens: on an error it is closed.
        let sock = adopt_fd(fd).map_err(os_err)?;
        if self.with_env(py, |core, env| core.adopt(env, sock, received, server, now)).is_err() {
            return Err(PyValueError::new_err("unknown server index"));
        }
        self.take_out(py)
    }

    /// Does all the I/O that is ready (never blocks) and returns the events for Python.
    fn poll<'py>(&mut self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyList>> {
        self.with_env(py, |core, env| core.poll(env, now)).map_err(os_err)?;
        self.take_out(py)
    }

    /// Closes connections idle past their server's idle timeout, and answers 408 to those whose
    /// head has been arriving for longer than the header timeout.
    fn sweep<'py>(&mut self, py: Python<'py>, now: f64) -> PyResult<Bound<'py, PyList>> {
        self.with_env(py, |core, env| core.sweep(env, now));
        self.take_out(py)
    }

    /// Graceful stop of one listener: idle connections close now, busy ones after their response.
    fn drain<'py>(&mut self, py: Python<'py>, server: usize) -> PyResult<Bound<'py, PyList>> {
        self.with_env(py, |core, env| core.drain(env, server));
        self.take_out(py)
    }

    /// Idle upstream connections the lane keeps for reuse (``lane/pooled``).
    fn pooled(&self) -> usize {
        self.core.pooled()
    }

    /// The histogram bucket of `v` as the lane sums latencies (the twin of
    /// `pyproxy.metrics.histogram.bucket_key`, for the differential tests).
    #[staticmethod]
    fn bucket_key(v: f64) -> Option<i64> {
        crate::lane::results::bucket_key(v)
    }

    /// Connections of listener `server` the lane holds now.
    fn connections(&self, server: usize) -> usize {
        self.core.connections(server)
    }

    /// The lane's reading of `l5d-ctx-deadline` values (the twin of
    /// `pyproxy.http.context.parse_deadline`, for the differential tests): the strictest valid
    /// `(timestamp, deadline)`, None when there is none, and -1 when the lane declines the request
    /// (a valid value with a number past 64 bits).
    #[staticmethod]
    fn parse_deadline<'py>(py: Python<'py>, values: Vec<Vec<u8>>) -> PyResult<Bound<'py, PyAny>> {
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        Ok(match head::parse_deadline(&refs) {
            Ok(d) => d.into_pyobject(py)?.into_any(),
            Err(head::TooLarge) => (-1i64).into_pyobject(py)?.into_any(),
        })
    }

    /// The `l5d-ctx-deadline` field the lane writes (for the differential tests).
    #[staticmethod]
    fn deadline_field<'py>(py: Python<'py>, timestamp_ns: u64, deadline_ns: u64) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &head::deadline_field(timestamp_ns, deadline_ns))
    }

    /// The lane's request rules on one head, for the differential tests against the trio path:
    /// None when the lane declines it, else `(key, parent trace or None, deadline or None,
    /// forwarded head or None)` with the given route block, trace and request id values, and
    /// override block and W3C member (the head is None when the route's baggage could not be
    /// written without dropping members: the lane declines it then).
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (
        head, server, edge, via, max_call_depth, ident, route_block, trace, reqid, ctx_block, stream_after, stamp_block,
        carriers = None, signed = false, member = None
    ))]
    fn scan<'py>(
        py: Python<'py>,
        head: &[u8],
        server: u16,
        edge: bool,
        via: Vec<u8>,
        max_call_depth: usize,
        ident: Vec<u8>,
        route_block: &[u8],
        trace: &[u8],
        reqid: &[u8],
        ctx_block: &[u8],
        stream_after: usize,
        stamp_block: &[u8],
        carriers: Option<(Vec<u8>, Vec<u8>, Vec<u8>)>,
        signed: bool,
        member: Option<Vec<u8>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rules = ServerRules {
            edge,
            via,
            max_call_depth,
            ident: ident.to_ascii_lowercase(),
            max_line: 1 << 16,
            max_head: 1 << 20,
            max_headers: 1000,
            stream_after,
            carriers: carriers.map(|(key, read, capture)| Carriers::new(&key, &read, &capture)),
            signed: edge && signed,
        };
        let Ok(Some(req)) = h1::parse_request_head(head, rules.max_line, rules.max_head, rules.max_headers) else {
            return Err(PyValueError::new_err("not a complete, valid request head"));
        };
        let Some(scan) = head::scan_request(&req, server, &rules) else {
            return Ok(None);
        };
        let parent = scan.parent.map(|t| (t.span, t.parent, t.trace, t.flags));
        let Some(carried) = head::baggage_block(&scan, &rules, !ctx_block.is_empty(), member.as_deref()) else {
            let key = PyBytes::new(py, &scan.key);
            return Ok(Some((key, parent, scan.deadline, None::<Py<PyAny>>).into_pyobject(py)?.into_any()));
        };
        let fwd = head::request_head(&req, &scan, &rules, route_block, trace, reqid, ctx_block, &carried, stamp_block);
        let key = PyBytes::new(py, &scan.key);
        Ok(Some((key, parent, scan.deadline, PyBytes::new(py, &fwd)).into_pyobject(py)?.into_any()))
    }

    /// The lane's response rules on one head, for the differential tests: None when it hands the
    /// response over, else `(downstream head, body)` with body None (no body), a length, or -1
    /// (chunked).
    #[staticmethod]
    fn relay_head<'py>(
        py: Python<'py>,
        head: &[u8],
        head_request: bool,
        keep_down: bool,
        req_minor: u8,
        edge: bool,
        via: Vec<u8>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rules = ServerRules {
            edge,
            via,
            max_call_depth: 0,
            ident: Vec::new(),
            max_line: 1 << 16,
            max_head: 1 << 20,
            max_headers: 1000,
            stream_after: 0,
            carriers: None,
            signed: false,
        };
        let Ok(Some(resp)) = h1::parse_response_head(head, rules.max_head, rules.max_headers) else {
            return Err(PyValueError::new_err("not a complete, valid response head"));
        };
        let Some((bytes, body)) = head::response_head(&resp, head_request, keep_down, req_minor, &rules) else {
            return Ok(None);
        };
        let length: Option<i64> = match body {
            Body::None => None,
            Body::Fixed(n) => Some(n as i64),
            Body::Chunked => Some(-1),
        };
        Ok(Some((PyBytes::new(py, &bytes), length).into_pyobject(py)?.into_any()))
    }

    /// Closes everything (connections, pooled upstreams, routes); the events are dropped.
    fn close(&mut self, py: Python<'_>) {
        self.with_env(py, |core, env| core.close(env));
        self.out.clear();
        self.forget_released();
    }
}
