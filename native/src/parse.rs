//! Finagle's naming syntax (paths, prefixes, name trees, dentries, dtabs) in pure Rust.
//!
//! This is the native twin of `pyproxy/_pure/parse.py`, which is the specification: same grammar,
//! same values, same error messages and offsets, for every input. The parser scans bytes (all syntax
//! characters are ASCII) of UTF-8 text, or of the "generalized" UTF-8 that Python's
//! `str.encode("utf-8", "surrogatepass")` produces for strings holding lone surrogates; error offsets
//! count code points, like Python `str` indices.
//!
//! Quirks reproduced on purpose (spec `naming.md` §1.5-1.6): whitespace is Java's
//! `Character.isWhitespace` (including non-ASCII spaces), a `#` where whitespace is skipped starts a
//! comment up to the next `\n`, a literal U+FFFF reads as "end of input" in the FOUND part of a
//! message, and a weight that is a lone `.` is bracketed one position after the dot.

mod error;

use error::Fail;
pub use error::{ErrorKind, ParseError, RawResult};

/// A path: its elements, each a byte string.
pub type Path = Vec<Vec<u8>>;
/// A dentry prefix: its elements, `None` standing for the wildcard `*`.
pub type Prefix = Vec<Option<Vec<u8>>>;
/// A dentry: a prefix and the destination name tree.
pub type Dentry = (Prefix, Tree);
/// A dtab: its dentries in order.
pub type Dtab = Vec<Dentry>;

/// A name tree whose leaves are paths.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    /// A path (`/a/b`).
    Leaf(Path),
    /// Fail-over between the children (`t1 | t2`).
    Alt(Vec<Tree>),
    /// Weighted union of the children (`w1 * t1 & t2`).
    Union(Vec<(f64, Tree)>),
    /// `~`: nothing here.
    Neg,
    /// `!`: failure, no fallback.
    Fail,
    /// `$`: exists but empty.
    Empty,
}

/// Deepest nesting of parentheses the tree parser follows before giving up (it recurses per level).
pub const MAX_DEPTH: usize = 1000;

type Res<T> = Result<T, Fail>;

fn is_showable(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.' | b'#' | b'$' | b'%' | b'-')
}

fn is_label_start(c: u8) -> bool {
    is_showable(c) || c == b'\\'
}

fn is_number(c: u8) -> bool {
    c.is_ascii_digit() || c == b'.'
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether `s` starts with one of Java's non-ASCII whitespace characters (all three bytes long):
/// U+1680, U+2000-U+2006, U+2008-U+200A, U+2028, U+2029, U+205F, U+3000.
fn starts_with_unicode_ws(s: &[u8]) -> bool {
    match *s {
        [0xe1, 0x9a, 0x80, ..] => true,
        [0xe2, 0x80, c, ..] => matches!(c, 0x80..=0x86 | 0x88..=0x8a | 0xa8 | 0xa9),
        [0xe2, 0x81, 0x9f, ..] => true,
        [0xe3, 0x80, 0x80, ..] => true,
        _ => false,
    }
}

struct Parser<'s> {
    s: &'s [u8],
    i: usize,
    depth: usize,
}

impl<'s> Parser<'s> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn illegal(&self, expected: &'static str) -> Fail {
        Fail::Syntax {
            expected,
            pos: self.i,
            found_dot: false,
        }
    }

    fn eat(&mut self, c: u8, expected: &'static str) -> Res<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.illegal(expected))
        }
    }

    fn maybe_eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    fn skip_ws(&mut self) {
        let s = self.s;
        let mut i = self.i;
        while i < s.len() {
            match s[i] {
                b'#' => {
                    i = s[i..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(s.len(), |k| i + k + 1)
                }
                b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ' => i += 1,
                0xe1..=0xe3 if starts_with_unicode_ws(&s[i..]) => i += 3,
                _ => break,
            }
        }
        self.i = i;
    }

    fn ensure_end(&self) -> Res<()> {
        if self.i < self.s.len() {
            return Err(self.illegal("end of input"));
        }
        Ok(())
    }

    fn label(&mut self) -> Res<Vec<u8>> {
        let s = self.s;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(c) if is_showable(c) => {
                    let start = self.i;
                    while self.i < s.len() && is_showable(s[self.i]) {
                        self.i += 1;
                    }
                    out.extend_from_slice(&s[start..self.i]);
                }
                Some(b'\\') => {
                    self.i += 1;
                    self.eat(b'x', "'x'")?;
                    let hi = self.hex_char()?;
                    let lo = self.hex_char()?;
                    out.push(hi << 4 | lo);
                }
                _ => return Err(self.illegal("label char")),
            }
            if !self.peek().is_some_and(is_label_start) {
                return Ok(out);
            }
        }
    }

    fn hex_char(&mut self) -> Res<u8> {
        match self.peek().and_then(hex_value) {
            Some(v) => {
                self.i += 1;
                Ok(v)
            }
            None => Err(self.illegal("hex char")),
        }
    }

    fn path(&mut self) -> Res<Path> {
        self.skip_ws();
        self.eat(b'/', "'/'")?;
        let mut labels = Vec::new();
        if !self.peek().is_some_and(is_label_start) {
            return Ok(labels);
        }
        labels.push(self.label()?);
        while self.maybe_eat(b'/') {
            labels.push(self.label()?);
        }
        Ok(labels)
    }

    fn prefix(&mut self) -> Res<Prefix> {
        self.skip_ws();
        self.eat(b'/', "'/'")?;
        let mut elems = Vec::new();
        if !self.peek().is_some_and(|c| c == b'*' || is_label_start(c)) {
            return Ok(elems);
        }
        loop {
            if self.maybe_eat(b'*') {
                elems.push(None);
            } else {
                elems.push(Some(self.label()?));
            }
            if !self.maybe_eat(b'/') {
                return Ok(elems);
            }
        }
    }

    fn number(&mut self) -> Res<f64> {
        let start = self.i;
        let mut seen_dot = false;
        while let Some(c) = self.peek().filter(|&c| is_number(c)) {
            if c == b'.' {
                if seen_dot {
                    return Err(self.illegal("number char"));
                }
                seen_dot = true;
            }
            self.i += 1;
        }
        let text = &self.s[start..self.i];
        let weight_error = Fail::Syntax {
            expected: "weight",
            pos: self.i,
            found_dot: true,
        };
        if text == b"." {
            // Finagle reports this one position after the dot (spec §1.6, reproduced on purpose).
            return Err(weight_error);
        }
        // ASCII digits with at most one '.', not '.' alone: Rust's f64 grammar accepts all of these
        // ("5.", ".5", "00.5") and, like Python's float(), rounds correctly and overflows to inf.
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(weight_error)
    }

    fn tree(&mut self) -> Res<Tree> {
        let first = self.tree1()?;
        self.skip_ws();
        if self.peek() != Some(b'|') {
            return Ok(first);
        }
        let mut trees = vec![first];
        while self.maybe_eat(b'|') {
            trees.push(self.tree1()?);
            self.skip_ws();
        }
        Ok(Tree::Alt(trees))
    }

    fn tree1(&mut self) -> Res<Tree> {
        let first = self.weighted()?;
        self.skip_ws();
        if self.peek() != Some(b'&') {
            return Ok(first.1);
        }
        let mut weighted = vec![first];
        while self.maybe_eat(b'&') {
            weighted.push(self.weighted()?);
            self.skip_ws();
        }
        Ok(Tree::Union(weighted))
    }

    fn weighted(&mut self) -> Res<(f64, Tree)> {
        self.skip_ws();
        let mut weight = 1.0;
        if self.peek().is_some_and(is_number) {
            weight = self.number()?;
            self.skip_ws();
            self.eat(b'*', "'*'")?;
            self.skip_ws();
        }
        Ok((weight, self.simple()?))
    }

    fn simple(&mut self) -> Res<Tree> {
        self.skip_ws();
        let tree = match self.peek() {
            Some(b'(') => {
                if self.depth >= MAX_DEPTH {
                    return Err(Fail::TooDeep { pos: self.i });
                }
                self.i += 1;
                self.depth += 1;
                let t = self.tree()?;
                self.depth -= 1;
                self.skip_ws();
                self.eat(b')', "')'")?;
                return Ok(t);
            }
            Some(b'/') => return Ok(Tree::Leaf(self.path()?)),
            Some(b'!') => Tree::Fail,
            Some(b'~') => Tree::Neg,
            Some(b'$') => Tree::Empty,
            _ => return Err(self.illegal("simple")),
        };
        self.i += 1;
        Ok(tree)
    }

    fn dentry(&mut self) -> Res<Dentry> {
        let prefix = self.prefix()?;
        self.skip_ws();
        self.eat(b'=', "'='")?;
        self.eat(b'>', "'>'")?;
        Ok((prefix, self.tree()?))
    }

    fn dtab(&mut self) -> Res<Dtab> {
        let mut dentries = Vec::new();
        loop {
            self.skip_ws();
            if self.i < self.s.len() {
                dentries.push(self.dentry()?);
                self.skip_ws();
            }
            if !self.maybe_eat(b';') {
                return Ok(dentries);
            }
        }
    }
}

/// Runs one production over the whole of `s` (trailing whitespace allowed) and renders any failure.
fn run<T>(s: &[u8], production: impl FnOnce(&mut Parser<'_>) -> Res<T>) -> RawResult<T> {
    let mut p = Parser { s, i: 0, depth: 0 };
    let result = production(&mut p).and_then(|value| {
        p.skip_ws();
        p.ensure_end().map(|()| value)
    });
    result.map_err(|fail| fail.render(s))
}

macro_rules! entry_points {
    ($($(#[$doc:meta])* $read:ident / $parse:ident -> $ty:ty = $production:ident;)*) => {$(
        $(#[$doc])*
        pub fn $read(s: &str) -> Result<$ty, ParseError> {
            $parse(s.as_bytes()).map_err(ParseError::into_text)
        }

        $(#[$doc])*
        ///
        /// Input and message are generalized UTF-8 (lone surrogates allowed, as `surrogatepass` encodes them).
        pub fn $parse(s: &[u8]) -> RawResult<$ty> {
            run(s, |p| p.$production())
        }
    )*};
}

entry_points! {
    /// Parses a whole path such as `/s/foo\x2fbar`.
    read_path / parse_path -> Path = path;
    /// Parses a whole dentry prefix; `*` elements are `None`.
    read_prefix / parse_prefix -> Prefix = prefix;
    /// Parses a whole name tree (`/a | 2 * /b & /c`).
    read_tree / parse_tree -> Tree = tree;
    /// Parses a whole dentry `prefix => tree`.
    read_dentry / parse_dentry -> Dentry = dentry;
    /// Parses a whole dtab (`;`-separated dentries, one trailing `;` allowed).
    read_dtab / parse_dtab -> Dtab = dtab;
}

#[cfg(test)]
mod tests;
