//! Conversion of parsed values (paths, prefixes, trees, dentries, dtabs) into Python tuples.
//!
//! Shapes (as in `pyproxy/_pure/parse.py`): path `tuple[bytes, ...]`; prefix `tuple[bytes | None, ...]`;
//! tree `(0, path)`, `(1, (tree, ...))`, `(2, ((weight, tree), ...))`, `(3,)`, `(4,)`, `(5,)`;
//! dentry `(prefix, tree)`; dtab `tuple[dentry, ...]`.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::parse::{Dentry, Prefix, Tree};

/// Tag of a leaf tree `(LEAF, path)`.
pub const LEAF: u8 = 0;
/// Tag of an alternation `(ALT, (tree, ...))`.
pub const ALT: u8 = 1;
/// Tag of a weighted union `(UNION, ((weight, tree), ...))`.
pub const UNION: u8 = 2;
/// Tag of the negative tree `(NEG,)`.
pub const NEG: u8 = 3;
/// Tag of the failing tree `(FAIL,)`.
pub const FAIL: u8 = 4;
/// Tag of the empty tree `(EMPTY,)`.
pub const EMPTY: u8 = 5;

/// A path as `tuple[bytes, ...]`.
pub fn path<'py>(py: Python<'py>, labels: &[Vec<u8>]) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, labels.iter().map(|l| PyBytes::new(py, l)))
}

/// A prefix as `tuple[bytes | None, ...]`.
pub fn prefix<'py>(py: Python<'py>, elems: &Prefix) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        elems
            .iter()
            .map(|e| e.as_ref().map(|l| PyBytes::new(py, l))),
    )
}

/// A name tree as its tagged tuple.
pub fn tree<'py>(py: Python<'py>, t: &Tree) -> PyResult<Bound<'py, PyTuple>> {
    match t {
        Tree::Leaf(p) => (LEAF, path(py, p)?).into_pyobject(py),
        Tree::Alt(trees) => {
            let kids = trees
                .iter()
                .map(|t| tree(py, t))
                .collect::<PyResult<Vec<_>>>()?;
            (ALT, PyTuple::new(py, kids)?).into_pyobject(py)
        }
        Tree::Union(weighted) => {
            let kids = weighted
                .iter()
                .map(|(w, t)| (*w, tree(py, t)?).into_pyobject(py))
                .collect::<PyResult<Vec<_>>>()?;
            (UNION, PyTuple::new(py, kids)?).into_pyobject(py)
        }
        Tree::Neg => (NEG,).into_pyobject(py),
        Tree::Fail => (FAIL,).into_pyobject(py),
        Tree::Empty => (EMPTY,).into_pyobject(py),
    }
}

/// A dentry as `(prefix, tree)`.
pub fn dentry<'py>(py: Python<'py>, d: &Dentry) -> PyResult<Bound<'py, PyTuple>> {
    (prefix(py, &d.0)?, tree(py, &d.1)?).into_pyobject(py)
}

/// A dtab as `tuple[dentry, ...]`.
pub fn dtab<'py>(py: Python<'py>, dentries: &[Dentry]) -> PyResult<Bound<'py, PyTuple>> {
    let items = dentries
        .iter()
        .map(|d| dentry(py, d))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
}
