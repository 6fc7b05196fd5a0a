//! The `Balancer` class: [`crate::balance::Balancer`] for Python, raising the pure twin's exceptions.
//!
//! Each method is one call per request step (`pick` also starts the request, `end` finishes it), so
//! crossing into Rust costs one argument extraction and one borrow check; the state stays in Rust.
//! Error messages format floats with Python's `repr` so that both twins print the same text.

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyString};

use crate::balance::{self, Error, PENALTY_S};

fn repr_f64(py: Python<'_>, v: f64) -> String {
    match PyFloat::new(py, v).repr() {
        Ok(r) => r.to_string(),
        Err(_) => v.to_string(),
    }
}

fn to_py_err(py: Python<'_>, e: Error, kind: &str) -> PyErr {
    match e {
        Error::Kind => {
            let name = PyString::new(py, kind)
                .repr()
                .map_or_else(|_| format!("'{kind}'"), |r| r.to_string());
            PyValueError::new_err(format!(
                "unknown load balancer kind {name} (expected 'ewma', 'p2c', 'roundRobin' or 'heap')"
            ))
        }
        Error::DecayS(v) => PyValueError::new_err(format!(
            "decay_s must be finite and > 0, got {}",
            repr_f64(py, v)
        )),
        Error::DefaultRtt(v) => PyValueError::new_err(format!(
            "default_rtt_s must be in (0, {}], got {}",
            repr_f64(py, PENALTY_S),
            repr_f64(py, v)
        )),
        Error::Slot(s) => PyValueError::new_err(format!(
            "slot must be in range(0, {}), got {s}",
            balance::MAX_SLOTS
        )),
        Error::Now(v) => {
            PyValueError::new_err(format!("now must be finite, got {}", repr_f64(py, v)))
        }
        Error::Rtt(v) => PyValueError::new_err(format!(
            "rtt_s must be finite and >= 0, got {}",
            repr_f64(py, v)
        )),
        Error::Absent(s) => PyKeyError::new_err(s),
    }
}

/// The endpoints of one client and their load (the native twin of `pyproxy._pure.balance.Balancer`).
#[pyclass(module = "pyproxy._native")]
pub struct Balancer(pub(crate) balance::Balancer);

impl Balancer {
    fn ok<T>(py: Python<'_>, r: Result<T, Error>) -> PyResult<T> {
        r.map_err(|e| to_py_err(py, e, ""))
    }
}

#[pymethods]
impl Balancer {
    #[new]
    #[pyo3(signature = (kind, decay_s = 10.0, default_rtt_s = 0.030))]
    fn new(py: Python<'_>, kind: &str, decay_s: f64, default_rtt_s: f64) -> PyResult<Self> {
        balance::Balancer::new(kind, decay_s, default_rtt_s)
            .map(Balancer)
            .map_err(|e| to_py_err(py, e, kind))
    }

    /// Adds an endpoint (cost `default_rtt_s`, stamped `now`); a present slot keeps its state.
    fn add(&mut self, py: Python<'_>, slot: i64, now: f64) -> PyResult<()> {
        Self::ok(py, self.0.add(slot, now))
    }

    /// Removes an endpoint; an absent slot is ignored.
    fn remove(&mut self, py: Python<'_>, slot: i64) -> PyResult<()> {
        Self::ok(py, self.0.remove(slot))
    }

    /// Marks an endpoint down (not eligible) or up again; an absent slot is ignored.
    fn set_down(&mut self, py: Python<'_>, slot: i64, down: bool) -> PyResult<()> {
        Self::ok(py, self.0.set_down(slot, down))
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    /// Every slot, in ascending order.
    fn slots(&self) -> Vec<usize> {
        self.0.slots()
    }

    /// How many picks found no eligible endpoint and chose among all of them.
    fn panics(&self) -> u64 {
        self.0.panics()
    }

    /// Chooses an endpoint for one request and counts it as started there; -1 when there is none.
    fn pick(&mut self, py: Python<'_>, now: f64, draw: u64) -> PyResult<i64> {
        Self::ok(py, self.0.pick(now, draw))
    }

    /// Ends one request and, for ewma, observes its RTT; a slot removed since its pick is ignored.
    fn end(&mut self, py: Python<'_>, slot: i64, now: f64, rtt_s: f64) -> PyResult<()> {
        Self::ok(py, self.0.end(slot, now, rtt_s))
    }

    /// The load the pick compares (ewma: `cost * (pending + 1)` after decay; p2c, heap: pending).
    fn load(&mut self, py: Python<'_>, slot: i64, now: f64) -> PyResult<f64> {
        Self::ok(py, self.0.load(slot, now))
    }

    /// Requests picked and not yet ended on this endpoint.
    fn pending(&self, py: Python<'_>, slot: i64) -> PyResult<u64> {
        Self::ok(py, self.0.pending(slot))
    }

    /// The Peak-EWMA RTT estimate in seconds after decay (0.0 for the kinds that keep none).
    fn cost(&mut self, py: Python<'_>, slot: i64, now: f64) -> PyResult<f64> {
        Self::ok(py, self.0.cost(slot, now))
    }
}
