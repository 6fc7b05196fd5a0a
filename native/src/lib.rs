//! `pyproxy._native`: the registration table of the native kernels, and nothing else.
//!
//! The kernels live in [`parse`] (naming syntax) and [`index`] (dtab lookup), in pure Rust; [`py`]
//! wraps them for Python. Each mirrors a pure-Python twin under `pyproxy/_pure/` that is its spec.

pub mod balance;
pub mod h1;
pub mod index;
pub mod lane;
pub mod parse;
mod py;

use pyo3::prelude::*;

/// The extension module: `__version__`, `__build__`, the `read_*` parsers, `DtabIndex`, the HTTP/1.1 head
/// parsers, `Balancer`, and `Lane` with the classes of its events.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // (target triple, Cargo profile, compiler), set by native/build.rs
    m.add(
        "__build__",
        (env!("PYPROXY_BUILD_TARGET"), env!("PYPROXY_BUILD_PROFILE"), env!("PYPROXY_BUILD_RUSTC")),
    )?;
    m.add_function(wrap_pyfunction!(py::read_path, m)?)?;
    m.add_function(wrap_pyfunction!(py::read_prefix, m)?)?;
    m.add_function(wrap_pyfunction!(py::read_tree, m)?)?;
    m.add_function(wrap_pyfunction!(py::read_dentry, m)?)?;
    m.add_function(wrap_pyfunction!(py::read_dtab, m)?)?;
    m.add_class::<py::DtabIndex>()?;
    m.add_function(wrap_pyfunction!(py::parse_request_head, m)?)?;
    m.add_function(wrap_pyfunction!(py::parse_response_head, m)?)?;
    m.add_function(wrap_pyfunction!(py::parse_chunk_line, m)?)?;
    m.add_function(wrap_pyfunction!(py::parse_trailers, m)?)?;
    m.add_class::<py::Balancer>()?;
    m.add_class::<py::Lane>()?;
    m.add_class::<py::LaneHandoff>()?;
    m.add_class::<py::LaneDone>()?;
    m.add_class::<py::LaneResume>()?;
    m.add_class::<py::LaneFailed>()?;
    m.add_class::<py::LaneAbandon>()?;
    m.add_class::<py::LaneSampled>()?;
    m.add_class::<py::LaneAccess>()?;
    Ok(())
}
