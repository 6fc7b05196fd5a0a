//! The HTTP/1.1 kernels for Python: buffers in, tuples of `bytes` out, `RemoteProtocolError` raised.
//!
//! Shapes and errors are those of `pyproxy/_pure/h1.py`. A `bytes` argument is read in place; any
//! other buffer (`bytearray`, `memoryview`) is copied once, only the window the parser may look at
//! (`memoryview(buf).cast("B")[pos:pos + limit]`, exactly as the pure twin does).
//!
//! Methods, common field names and Connection tokens come from [`Common`] (built once), and the
//! Host value is the Host field's value object: fewer allocations, which are most of the cost.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView, PySlice, PyTuple};

use super::common::Common;
use crate::h1::{self, Fail, Field};

pyo3::import_exception!(pyproxy.errors, RemoteProtocolError);

/// `RemoteProtocolError(f"{text} at offset {offset}", status, kind, offset)`, like the pure twin.
fn to_pyerr(f: Fail, shift: usize, response: bool) -> PyErr {
    let offset = f.offset + shift;
    let status = if response { 502 } else { f.why.status };
    RemoteProtocolError::new_err((
        format!("{} at offset {offset}", f.why.text),
        status,
        f.why.kind,
        offset,
    ))
}

fn non_negative(values: &[i64]) -> PyResult<()> {
    if values.iter().any(|&v| v < 0) {
        return Err(PyValueError::new_err("positions and limits must be >= 0"));
    }
    Ok(())
}

/// `(data, start, shift)`: bytes holding `buf[pos:pos+size]` at `start`, and `data`'s offset in `buf`.
fn view<'py>(
    buf: &Bound<'py, PyAny>,
    pos: usize,
    size: usize,
) -> PyResult<(Bound<'py, PyBytes>, usize, usize)> {
    if let Ok(bytes) = buf.cast::<PyBytes>() {
        if pos > bytes.as_bytes().len() {
            return Err(PyValueError::new_err("pos out of range"));
        }
        return Ok((bytes.clone(), pos, 0));
    }
    let py = buf.py();
    let flat = PyMemoryView::from(buf)?.call_method1(intern!(py, "cast"), (intern!(py, "B"),))?;
    if pos > flat.len()? {
        return Err(PyValueError::new_err("pos out of range"));
    }
    let hi = pos.saturating_add(size).min(isize::MAX as usize);
    let window = flat.get_item(PySlice::new(py, pos as isize, hi as isize, 1))?;
    Ok((
        window
            .call_method0(intern!(py, "tobytes"))?
            .cast_into::<PyBytes>()?,
        0,
        pos,
    ))
}

fn to_usize(v: i64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The fields as `tuple[tuple[bytes, bytes], ...]`, and the value object of the field whose value
/// is the slice `host` (the Host value is the same object), if any.
fn fields<'py>(
    py: Python<'py>,
    common: &Common,
    fields: &[Field<'_>],
    host: Option<&[u8]>,
) -> PyResult<(Bound<'py, PyTuple>, Option<Bound<'py, PyBytes>>)> {
    let mut found = None;
    let pairs = PyTuple::new(
        py,
        fields.iter().map(|f| {
            let value = PyBytes::new(py, f.value);
            if host.is_some_and(|h| std::ptr::eq(h, f.value)) {
                found = Some(value.clone());
            }
            (common.bytes(py, f.name), value)
        }),
    )?;
    Ok((pairs, found))
}

/// The Connection tokens, lower-cased, as `tuple[bytes, ...]`.
fn tokens<'py>(
    py: Python<'py>,
    common: &Common,
    tokens: &[&[u8]],
) -> PyResult<Bound<'py, PyTuple>> {
    let lowered = tokens
        .iter()
        .map(|t| common.lower(py, t))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, lowered)
}

/// Parse the request head at the start of ``buf``; None while it is incomplete and within limits.
///
/// Returns ``(method, target, minor, headers, head_len, content_length, chunked, connection,
/// expect_continue, host)``; raises ``RemoteProtocolError``.
#[pyfunction]
pub fn parse_request_head<'py>(
    buf: &Bound<'py, PyAny>,
    max_line: i64,
    max_head: i64,
    max_headers: i64,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    non_negative(&[max_line, max_head, max_headers])?;
    let py = buf.py();
    let (data, _, _) = view(buf, 0, to_usize(max_head))?;
    let parsed = h1::parse_request_head(
        data.as_bytes(),
        to_usize(max_line),
        to_usize(max_head),
        to_usize(max_headers),
    );
    let Some(r) = parsed.map_err(|f| to_pyerr(f, 0, false))? else {
        return Ok(None);
    };
    let common = Common::get(py);
    let (headers, host) = fields(py, common, &r.fields, r.host)?;
    let value = (
        common.bytes(py, r.method),
        PyBytes::new(py, r.target),
        r.minor,
        headers,
        r.head_len,
        r.content_length,
        r.chunked,
        tokens(py, common, &r.connection)?,
        r.expect_continue,
        host,
    );
    Ok(Some(value.into_pyobject(py)?))
}

/// Parse the response head at the start of ``buf`` (no empty lines skipped); every error is a 502.
///
/// Returns ``(minor, status, reason, headers, head_len, content_length, chunked, connection)``.
#[pyfunction]
pub fn parse_response_head<'py>(
    buf: &Bound<'py, PyAny>,
    max_head: i64,
    max_headers: i64,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    non_negative(&[max_head, max_headers])?;
    let py = buf.py();
    let (data, _, _) = view(buf, 0, to_usize(max_head))?;
    let parsed =
        h1::parse_response_head(data.as_bytes(), to_usize(max_head), to_usize(max_headers));
    let Some(r) = parsed.map_err(|f| to_pyerr(f, 0, true))? else {
        return Ok(None);
    };
    let common = Common::get(py);
    let value = (
        r.minor,
        r.status,
        PyBytes::new(py, r.reason),
        fields(py, common, &r.fields, None)?.0,
        r.head_len,
        r.content_length,
        r.chunked,
        tokens(py, common, &r.connection)?,
    );
    Ok(Some(value.into_pyobject(py)?))
}

/// Parse the chunk-size line at ``buf[pos]``: ``(size, next_pos)`` (just past its CRLF) or None.
#[pyfunction]
pub fn parse_chunk_line(
    buf: &Bound<'_, PyAny>,
    pos: i64,
    max_line: i64,
) -> PyResult<Option<(u64, usize)>> {
    non_negative(&[pos, max_line])?;
    let (data, start, shift) = view(buf, to_usize(pos), to_usize(max_line))?;
    let parsed = h1::parse_chunk_line(data.as_bytes(), start, to_usize(max_line));
    Ok(parsed
        .map_err(|f| to_pyerr(f, shift, false))?
        .map(|(size, next)| (size, next + shift)))
}

/// Parse the trailer section at ``buf[pos]`` (after the last chunk): ``(fields, next_pos)`` or None.
#[pyfunction]
pub fn parse_trailers<'py>(
    buf: &Bound<'py, PyAny>,
    pos: i64,
    max_head: i64,
    max_headers: i64,
) -> PyResult<Option<(Bound<'py, PyTuple>, usize)>> {
    non_negative(&[pos, max_head, max_headers])?;
    let (data, start, shift) = view(buf, to_usize(pos), to_usize(max_head))?;
    let parsed = h1::parse_trailers(
        data.as_bytes(),
        start,
        to_usize(max_head),
        to_usize(max_headers),
    );
    match parsed.map_err(|f| to_pyerr(f, shift, false))? {
        Some((f, next)) => Ok(Some((
            fields(buf.py(), Common::get(buf.py()), &f, None)?.0,
            next + shift,
        ))),
        None => Ok(None),
    }
}
