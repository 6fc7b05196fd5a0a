//! HTTP/1.1 heads and chunk framing, strict (RFC 9112), in pure Rust.
//!
//! The native twin of `pyproxy/_pure/h1.py` and `h1_fields.py`, which are the specification: same
//! grammar, same values, same errors (kind, status, offset) for every input, including which
//! prefixes of a message are "incomplete" (`Ok(None)`). Each parser takes the whole buffer and
//! returns slices of it; [`crate::py`] turns them into Python objects once.
//!
//! - [`fields`]: errors, byte classes, line ends, field lines, framing fields (CL, TE, Host);
//! - [`request`] and [`response`]: the start lines and the heads;
//! - [`chunked`]: chunk-size lines and trailer sections.

pub mod chunked;
pub mod fields;
pub mod request;
pub mod response;

pub use chunked::{parse_chunk_line, parse_trailers};
pub use fields::{Fail, Field, Why};
pub use request::{parse_request_head, Request};
pub use response::{parse_response_head, Response};

#[cfg(test)]
mod tests;
