//! The pyo3 wrappers: the only place where Python objects meet the pure-Rust kernels.
//!
//! Values cross the seam as the plain tuples documented at the top of `pyproxy/_pure/parse.py`
//! (a path is `tuple[bytes, ...]`, a tree is `(tag, ...)`, ...), and errors are the classes of
//! `pyproxy/errors.py`, raised with the same arguments as the pure twin.

mod balance;
mod common;
mod convert;
mod dtab_index;
mod h1;
mod lane;
mod read;

pub use balance::Balancer;
pub use dtab_index::DtabIndex;
pub use lane::{Lane, LaneAbandon, LaneAccess, LaneDone, LaneFailed, LaneHandoff, LaneResume, LaneSampled};
pub use h1::{parse_chunk_line, parse_request_head, parse_response_head, parse_trailers};
pub use read::{read_dentry, read_dtab, read_path, read_prefix, read_tree};
