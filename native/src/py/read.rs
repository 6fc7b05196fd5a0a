//! The `read_*` functions: take a `str`, run the Rust parser, return tuples or raise `DtabError`.

use pyo3::exceptions::{PyRecursionError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use super::convert;
use crate::parse::{self, ErrorKind, ParseError, RawResult};

pyo3::import_exception!(pyproxy.errors, DtabError);

/// Runs `parse` over the text of `s` (any `str`, lone surrogates included) and converts its errors.
fn parse_str<T>(s: &Bound<'_, PyAny>, parse: fn(&[u8]) -> RawResult<T>) -> PyResult<T> {
    let py = s.py();
    let Ok(text) = s.cast::<PyString>() else {
        let name = s.get_type().name()?;
        return Err(PyTypeError::new_err(format!("expected str, got {name}")));
    };
    let bytes = match text.encode_utf8() {
        Ok(bytes) => bytes,
        // Lone surrogates: the parser also reads Python's surrogatepass encoding.
        Err(_) => text
            .call_method1(
                intern!(py, "encode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?
            .cast_into::<PyBytes>()?,
    };
    parse(bytes.as_bytes()).map_err(|e| to_pyerr(py, e))
}

/// The Python exception for a parse failure: `DtabError(message, offset, expected)` like the pure twin.
fn to_pyerr(py: Python<'_>, e: ParseError<Vec<u8>>) -> PyErr {
    let message: Py<PyAny> = match String::from_utf8(e.message) {
        Ok(text) => PyString::new(py, &text).into_any().unbind(),
        Err(bad) => {
            let raw = PyBytes::new(py, bad.as_bytes());
            match raw.call_method1(
                intern!(py, "decode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            ) {
                Ok(text) => text.unbind(),
                Err(err) => return err,
            }
        }
    };
    match e.kind {
        ErrorKind::Syntax => DtabError::new_err((message, e.offset, e.expected)),
        ErrorKind::TooDeep => PyRecursionError::new_err((message,)),
    }
}

/// Parse a whole path such as `/s/foo\x2fbar` into `tuple[bytes, ...]`.
#[pyfunction]
pub fn read_path<'py>(s: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    convert::path(s.py(), &parse_str(s, parse::parse_path)?)
}

/// Parse a whole dentry prefix; `*` elements come back as `None`.
#[pyfunction]
pub fn read_prefix<'py>(s: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    convert::prefix(s.py(), &parse_str(s, parse::parse_prefix)?)
}

/// Parse a whole name tree (`/a | 2 * /b & /c`) into the tuple form.
#[pyfunction]
pub fn read_tree<'py>(s: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    convert::tree(s.py(), &parse_str(s, parse::parse_tree)?)
}

/// Parse a whole dentry `prefix => tree` into `(prefix, tree)`.
#[pyfunction]
pub fn read_dentry<'py>(s: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    convert::dentry(s.py(), &parse_str(s, parse::parse_dentry)?)
}

/// Parse a whole dtab (`;`-separated dentries, one trailing `;` allowed) into a tuple of dentries.
#[pyfunction]
pub fn read_dtab<'py>(s: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    convert::dtab(s.py(), &parse_str(s, parse::parse_dtab)?)
}
