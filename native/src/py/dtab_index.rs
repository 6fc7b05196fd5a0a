//! The `DtabIndex` class: Finagle's `Dtab.lookup` over a [`PrefixTrie`], answering in Python tuples.
//!
//! The destination trees are kept as the caller's Python objects (validated once, on construction),
//! so a lookup only increments reference counts and allocates the new tuples of the rewritten
//! tree; the path suffix reuses the caller's `bytes` objects, and a single match with nothing left
//! to append returns the stored tree object itself.

use pyo3::exceptions::{PyRecursionError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyTuple};

use super::convert::{ALT, EMPTY, LEAF, NEG, UNION};
use crate::index::{Labels, PrefixTrie};
use crate::parse::MAX_DEPTH;

/// Deepest destination tree accepted (each parenthesis of the syntax adds at most a few levels).
const MAX_TREE_DEPTH: usize = 4 * MAX_DEPTH;

/// A destination tree: its Python object plus what rewriting it needs, already unpacked.
enum Dst {
    Leaf {
        obj: Py<PyTuple>,
        path: Vec<Py<PyBytes>>,
    },
    Alt {
        obj: Py<PyTuple>,
        trees: Vec<Dst>,
    },
    Union {
        obj: Py<PyTuple>,
        trees: Vec<(Py<PyAny>, Dst)>,
    },
    Atom {
        obj: Py<PyTuple>,
    },
}

impl Dst {
    fn obj(&self) -> &Py<PyTuple> {
        match self {
            Dst::Leaf { obj, .. }
            | Dst::Alt { obj, .. }
            | Dst::Union { obj, .. }
            | Dst::Atom { obj } => obj,
        }
    }

    /// Validates and unpacks a tree tuple (see `pyproxy/_pure/parse.py`).
    fn new(tree: &Bound<'_, PyAny>, depth: usize) -> PyResult<Dst> {
        if depth > MAX_TREE_DEPTH {
            return Err(PyRecursionError::new_err(
                "destination tree nested too deeply",
            ));
        }
        let t = tree
            .cast::<PyTuple>()
            .map_err(|_| type_error("a tree must be a tuple", tree))?;
        let tag = match t.len() {
            0 => None,
            _ => t
                .get_item(0)?
                .cast::<PyInt>()
                .ok()
                .and_then(|i| i.extract::<u8>().ok()),
        };
        let obj = t.clone().unbind();
        let body = || {
            t.get_item(1)?
                .cast_into::<PyTuple>()
                .map_err(|e| type_error("a tree body must be a tuple", e.into_inner().as_any()))
        };
        Ok(match (tag, t.len()) {
            (Some(LEAF), 2) => Dst::Leaf {
                path: bytes_items(&body()?, "a leaf path element must be bytes")?,
                obj,
            },
            (Some(ALT), 2) => {
                let trees = body()?
                    .iter()
                    .map(|k| Dst::new(&k, depth + 1))
                    .collect::<PyResult<_>>()?;
                Dst::Alt { obj, trees }
            }
            (Some(UNION), 2) => {
                let trees = body()?
                    .iter()
                    .map(|k| weighted(&k, depth + 1))
                    .collect::<PyResult<_>>()?;
                Dst::Union { obj, trees }
            }
            (Some(NEG..=EMPTY), 1) => Dst::Atom { obj },
            _ => {
                let repr = tree.repr()?;
                return Err(PyValueError::new_err(format!("not a name tree: {repr}")));
            }
        })
    }
}

fn type_error(what: &str, got: &Bound<'_, PyAny>) -> PyErr {
    match got.get_type().name() {
        Ok(name) => PyTypeError::new_err(format!("{what}, got {name}")),
        Err(e) => e,
    }
}

fn bytes_items(t: &Bound<'_, PyTuple>, what: &str) -> PyResult<Vec<Py<PyBytes>>> {
    t.iter()
        .map(|e| {
            e.cast_into::<PyBytes>()
                .map(Bound::unbind)
                .map_err(|e| type_error(what, e.into_inner().as_any()))
        })
        .collect()
}

/// A union member `(weight, tree)`; the weight (float or int) is kept as the caller's object.
fn weighted(item: &Bound<'_, PyAny>, depth: usize) -> PyResult<(Py<PyAny>, Dst)> {
    let pair = item
        .cast::<PyTuple>()
        .map_err(|_| type_error("a union member must be a (weight, tree) tuple", item))?;
    if pair.len() != 2 {
        return Err(PyValueError::new_err(
            "a union member must be a (weight, tree) tuple",
        ));
    }
    let weight = pair.get_item(0)?;
    if !(weight.is_instance_of::<PyFloat>() || weight.is_instance_of::<PyInt>()) {
        return Err(type_error("a weight must be a float", &weight));
    }
    Ok((weight.unbind(), Dst::new(&pair.get_item(1)?, depth)?))
}

/// Paths up to this long are borrowed into an array on the stack (no allocation per lookup).
const INLINE: usize = 12;

/// A lookup path, borrowed from the caller's tuple (no reference counting).
enum PathArg<'a, 'py> {
    Inline([Option<Borrowed<'a, 'py, PyBytes>>; INLINE], usize),
    Heap(Vec<Option<Borrowed<'a, 'py, PyBytes>>>),
}

impl<'a, 'py> PathArg<'a, 'py> {
    fn new(path: &'a Bound<'py, PyTuple>) -> PyResult<Self> {
        let item = |e: Borrowed<'a, 'py, PyAny>| match e.cast::<PyBytes>() {
            Ok(b) => Ok(Some(b)),
            Err(_) => Err(type_error("a path element must be bytes", &e)),
        };
        let n = path.len();
        if n > INLINE {
            return Ok(PathArg::Heap(
                path.iter_borrowed().map(item).collect::<PyResult<_>>()?,
            ));
        }
        let mut items = [None; INLINE];
        for (slot, e) in items.iter_mut().zip(path.iter_borrowed()) {
            *slot = item(e)?;
        }
        Ok(PathArg::Inline(items, n))
    }

    /// The elements (all `Some`).
    fn items(&self) -> &[Option<Borrowed<'a, 'py, PyBytes>>] {
        match self {
            PathArg::Inline(items, n) => &items[..*n],
            PathArg::Heap(items) => items,
        }
    }
}

impl Labels for PathArg<'_, '_> {
    fn count(&self) -> usize {
        self.items().len()
    }

    fn label(&self, i: usize) -> &[u8] {
        self.items()[i].as_ref().map_or(&[], |b| b.as_bytes())
    }
}

/// The elements of a stored leaf path followed by the caller's suffix, for `PyTuple::new`.
struct Concat<'a, 'b, 'py> {
    py: Python<'py>,
    head: std::slice::Iter<'a, Py<PyBytes>>,
    tail: std::slice::Iter<'a, Option<Borrowed<'b, 'py, PyBytes>>>,
}

impl<'py> Iterator for Concat<'_, '_, 'py> {
    type Item = Bound<'py, PyBytes>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.head.next() {
            Some(label) => Some(label.bind(self.py).clone()),
            None => self
                .tail
                .next()
                .and_then(|label| label.map(Borrowed::to_owned)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.head.len() + self.tail.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Concat<'_, '_, '_> {}

/// The destination `dst` with `suffix` appended to every leaf path.
fn rewrite<'py>(
    py: Python<'py>,
    dst: &Dst,
    suffix: &[Option<Borrowed<'_, 'py, PyBytes>>],
) -> PyResult<Bound<'py, PyTuple>> {
    if suffix.is_empty() {
        return Ok(dst.obj().bind(py).clone());
    }
    match dst {
        Dst::Leaf { path, .. } => {
            let elems = PyTuple::new(
                py,
                Concat {
                    py,
                    head: path.iter(),
                    tail: suffix.iter(),
                },
            )?;
            (LEAF, elems).into_pyobject(py)
        }
        Dst::Alt { trees, .. } => {
            let kids = trees
                .iter()
                .map(|t| rewrite(py, t, suffix))
                .collect::<PyResult<Vec<_>>>()?;
            (ALT, PyTuple::new(py, kids)?).into_pyobject(py)
        }
        Dst::Union { trees, .. } => {
            let kids = trees
                .iter()
                .map(|(w, t)| (w.bind(py), rewrite(py, t, suffix)?).into_pyobject(py))
                .collect::<PyResult<Vec<_>>>()?;
            (UNION, PyTuple::new(py, kids)?).into_pyobject(py)
        }
        Dst::Atom { obj } => Ok(obj.bind(py).clone()),
    }
}

/// An immutable prefix index over a dtab's dentries (the native twin of `pyproxy._pure.index.DtabIndex`).
#[pyclass(frozen, module = "pyproxy._native")]
pub struct DtabIndex {
    trie: PrefixTrie,
    /// Per dentry: the prefix length and the destination.
    dentries: Vec<(usize, Dst)>,
    neg: Py<PyTuple>,
}

#[pymethods]
impl DtabIndex {
    /// Indexes `(prefix, tree)` pairs in dtab order, as `read_dtab` returns them.
    #[new]
    fn new(dentries: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = dentries.py();
        let mut trie = PrefixTrie::new();
        let mut dsts = Vec::new();
        for item in dentries.try_iter()? {
            let item = item?;
            let pair = item
                .cast::<PyTuple>()
                .map_err(|_| type_error("a dentry must be a (prefix, tree) tuple", &item))?;
            if pair.len() != 2 {
                return Err(PyValueError::new_err(
                    "a dentry must be a (prefix, tree) tuple",
                ));
            }
            let mut prefix: Vec<Option<Bound<'_, PyBytes>>> = Vec::new();
            for elem in pair.get_item(0)?.try_iter()? {
                let elem = elem?;
                if elem.is_none() {
                    prefix.push(None);
                } else {
                    let label = elem.cast_into::<PyBytes>();
                    prefix.push(Some(label.map_err(|e| {
                        type_error(
                            "a prefix element must be bytes or None",
                            e.into_inner().as_any(),
                        )
                    })?));
                }
            }
            let dst = Dst::new(&pair.get_item(1)?, 0)?;
            trie.push(prefix.iter().map(|e| e.as_ref().map(|b| b.as_bytes())));
            dsts.push((prefix.len(), dst));
        }
        let neg = (NEG,).into_pyobject(py)?.unbind();
        Ok(DtabIndex {
            trie,
            dentries: dsts,
            neg,
        })
    }

    fn __len__(&self) -> usize {
        self.dentries.len()
    }

    /// Indices of every dentry whose prefix matches `path`, latest first.
    fn matches(&self, path: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
        Ok(self.trie.matches(&PathArg::new(path)?))
    }

    /// One rewriting step of `path` through the dtab (Finagle's `Dtab.lookup`), unsimplified.
    fn lookup<'py>(&self, path: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyTuple>> {
        let py = path.py();
        let labels = PathArg::new(path)?;
        let found = self.trie.matches(&labels);
        let one = |i: usize| {
            let (prefix_len, dst) = &self.dentries[i];
            let items = labels.items();
            rewrite(py, dst, &items[(*prefix_len).min(items.len())..])
        };
        match found.as_slice() {
            [] => Ok(self.neg.bind(py).clone()),
            [i] => one(*i),
            many => {
                let trees = many.iter().map(|&i| one(i)).collect::<PyResult<Vec<_>>>()?;
                (ALT, PyTuple::new(py, trees)?).into_pyobject(py)
            }
        }
    }
}
