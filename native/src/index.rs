//! Dtab lookup through a prefix trie, in pure Rust: the native twin of `pyproxy/_pure/index.py`.
//!
//! Finagle's `Dtab.lookup` keeps *every* dentry whose prefix matches the path (`*` matches any one
//! element), latest first: none gives `Neg`, one gives its destination with the rest of the path
//! appended to every leaf, several give `Alt(latest, ..., earliest)`. [`PrefixTrie`] finds those
//! dentries by walking at most `path.len()` levels (branching only where a `*` edge exists), so the
//! cost of a lookup does not depend on how many dentries cannot match.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::parse::{Dentry, Path, Tree};

/// FxHash (rustc's hasher): a few cycles per word instead of SipHash's rounds. The tables are built
/// from configured prefixes, so request paths can only probe them, never fill them with collisions.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words, then the tail as one (overlapping) load: no byte copies through memory.
        // Overlaps are harmless because `[u8]`'s `Hash` writes the length first.
        let n = bytes.len();
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        let half = |at: usize| {
            u64::from(u32::from_le_bytes(
                bytes[at..at + 4].try_into().unwrap_or([0; 4]),
            ))
        };
        if n >= 8 {
            let mut at = 0;
            while at + 8 <= n {
                self.add(word(at));
                at += 8;
            }
            if at < n {
                self.add(word(n - 8));
            }
        } else if n >= 4 {
            self.add(half(0) | half(n - 4) << 32);
        } else if n > 0 {
            let (a, b, c) = (bytes[0], bytes[n / 2], bytes[n - 1]);
            self.add(u64::from(a) | u64::from(b) << 8 | u64::from(c) << 16);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A path as the trie reads it: its length and its elements by index.
pub trait Labels {
    /// Number of elements.
    fn count(&self) -> usize;
    /// Element `i` (`i < count()`).
    fn label(&self, i: usize) -> &[u8];
}

impl<K: AsRef<[u8]>> Labels for [K] {
    fn count(&self) -> usize {
        self.len()
    }

    fn label(&self, i: usize) -> &[u8] {
        self[i].as_ref()
    }
}

const NONE: u32 = u32::MAX;

#[derive(Default)]
struct Node {
    labels: HashMap<Box<[u8]>, u32, BuildHasherDefault<FxHasher>>,
    any: u32,
    ends: Vec<u32>,
}

/// The prefixes of a dtab's dentries, as a trie whose edges are labels or `*`.
pub struct PrefixTrie {
    nodes: Vec<Node>,
    wild: bool,
    len: usize,
}

impl Default for PrefixTrie {
    fn default() -> Self {
        Self::new()
    }
}

impl PrefixTrie {
    /// An empty trie.
    pub fn new() -> Self {
        PrefixTrie {
            nodes: vec![Node {
                any: NONE,
                ..Node::default()
            }],
            wild: false,
            len: 0,
        }
    }

    /// Number of prefixes inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no prefix was inserted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn new_node(&mut self) -> u32 {
        self.nodes.push(Node {
            any: NONE,
            ..Node::default()
        });
        // Each node holds at least one prefix element and Python sequences are < isize::MAX long.
        u32::try_from(self.nodes.len() - 1).unwrap_or(NONE - 1)
    }

    /// Adds the next dentry's prefix (`None` = `*`) and returns its index.
    pub fn push<'a>(&mut self, prefix: impl IntoIterator<Item = Option<&'a [u8]>>) -> usize {
        let mut node = 0u32;
        for elem in prefix {
            node = match elem {
                None => {
                    self.wild = true;
                    match self.nodes[node as usize].any {
                        NONE => {
                            let next = self.new_node();
                            self.nodes[node as usize].any = next;
                            next
                        }
                        next => next,
                    }
                }
                Some(label) => match self.nodes[node as usize].labels.get(label) {
                    Some(&next) => next,
                    None => {
                        let next = self.new_node();
                        self.nodes[node as usize].labels.insert(label.into(), next);
                        next
                    }
                },
            };
        }
        let index = self.len;
        self.nodes[node as usize]
            .ends
            .push(u32::try_from(index).unwrap_or(NONE));
        self.len += 1;
        index
    }

    /// Indices of every prefix that matches `path`, latest (highest) first.
    pub fn matches<L: Labels + ?Sized>(&self, path: &L) -> Vec<usize> {
        let mut found: Vec<usize> = Vec::new();
        let n = path.count();
        let ends = |found: &mut Vec<usize>, node: u32| {
            found.extend(self.nodes[node as usize].ends.iter().map(|&i| i as usize));
        };
        if !self.wild {
            // No '*' anywhere: a single walk down the labels.
            let mut node = 0u32;
            ends(&mut found, node);
            for depth in 0..n {
                match self.nodes[node as usize].labels.get(path.label(depth)) {
                    Some(&next) => node = next,
                    None => break,
                }
                ends(&mut found, node);
            }
        } else {
            let mut stack = Stack::<(u32, usize), 16>::new((0, 0));
            while let Some((node, depth)) = stack.pop() {
                ends(&mut found, node);
                if depth < n {
                    let here = &self.nodes[node as usize];
                    if let Some(&next) = here.labels.get(path.label(depth)) {
                        stack.push((next, depth + 1));
                    }
                    if here.any != NONE {
                        stack.push((here.any, depth + 1));
                    }
                }
            }
        }
        if found.len() > 1 {
            found.sort_unstable_by(|a, b| b.cmp(a));
        }
        found
    }
}

/// A LIFO stack kept in an array while it is small (the common case: no allocation per lookup).
struct Stack<T: Copy, const N: usize> {
    inline: [T; N],
    len: usize,
    spill: Vec<T>,
}

impl<T: Copy, const N: usize> Stack<T, N> {
    fn new(first: T) -> Self {
        Stack {
            inline: [first; N],
            len: 1,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.len < N && self.spill.is_empty() {
            self.inline[self.len] = item;
            self.len += 1;
        } else {
            self.spill.push(item);
        }
    }

    fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        self.len = self.len.checked_sub(1)?;
        Some(self.inline[self.len])
    }
}

/// `tree` with `suffix` appended to every leaf path (weights, `~`, `!`, `$` kept).
pub fn rewrite(tree: &Tree, suffix: &[Vec<u8>]) -> Tree {
    match tree {
        Tree::Leaf(path) => Tree::Leaf(path.iter().chain(suffix).cloned().collect()),
        Tree::Alt(trees) => Tree::Alt(trees.iter().map(|t| rewrite(t, suffix)).collect()),
        Tree::Union(trees) => Tree::Union(
            trees
                .iter()
                .map(|(w, t)| (*w, rewrite(t, suffix)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An immutable prefix index over a dtab's dentries.
pub struct DtabIndex {
    trie: PrefixTrie,
    dentries: Vec<Dentry>,
}

impl DtabIndex {
    /// Indexes `dentries` (in dtab order).
    pub fn new(dentries: Vec<Dentry>) -> Self {
        let mut trie = PrefixTrie::new();
        for (prefix, _) in &dentries {
            trie.push(prefix.iter().map(|e| e.as_deref()));
        }
        DtabIndex { trie, dentries }
    }

    /// Number of dentries.
    pub fn len(&self) -> usize {
        self.dentries.len()
    }

    /// Whether the dtab is empty.
    pub fn is_empty(&self) -> bool {
        self.dentries.is_empty()
    }

    /// Indices of every dentry whose prefix matches `path`, latest first.
    pub fn matches(&self, path: &[Vec<u8>]) -> Vec<usize> {
        self.trie.matches(path)
    }

    /// One rewriting step of `path` through the dtab (Finagle's `Dtab.lookup`), unsimplified.
    pub fn lookup(&self, path: &Path) -> Tree {
        let mut trees: Vec<Tree> = self
            .matches(path)
            .into_iter()
            .map(|i| {
                let (prefix, dst) = &self.dentries[i];
                rewrite(dst, &path[prefix.len()..])
            })
            .collect();
        match trees.len() {
            0 => Tree::Neg,
            1 => trees.pop().unwrap_or(Tree::Neg),
            _ => Tree::Alt(trees),
        }
    }
}

#[cfg(test)]
mod tests;
