//! Unit tests of the prefix trie and of `Dtab.lookup` (spec `naming.md` §3.4-3.5).

use super::*;
use crate::parse::{read_dtab, read_path, read_tree};

fn index(dtab: &str) -> DtabIndex {
    DtabIndex::new(read_dtab(dtab).unwrap())
}

fn lookup(dtab: &str, path: &str) -> Tree {
    index(dtab).lookup(&read_path(path).unwrap())
}

/// The reference: scan every dentry from last to first (Finagle's `Dtab.lookup`).
fn scan(dtab: &str, path: &Path) -> Vec<usize> {
    let dentries = read_dtab(dtab).unwrap();
    (0..dentries.len())
        .rev()
        .filter(|&i| {
            let prefix = &dentries[i].0;
            prefix.len() <= path.len()
                && prefix
                    .iter()
                    .zip(path)
                    .all(|(e, l)| e.as_ref().is_none_or(|e| e == l))
        })
        .collect()
}

#[test]
fn spec_examples() {
    assert_eq!(
        lookup("/foo=>/bar;/foo=>/baz", "/foo/x"),
        read_tree("/baz/x | /bar/x").unwrap()
    );
    assert_eq!(
        lookup("/a/*/c => /d", "/a/b/c/e/f"),
        read_tree("/d/e/f").unwrap()
    );
    assert_eq!(lookup("/=>/x", "/a/b"), read_tree("/x/a/b").unwrap());
    assert_eq!(lookup("/a=>/", "/a/b"), read_tree("/b").unwrap());
    assert_eq!(lookup("/foo=>/bar", "/food"), Tree::Neg);
    assert_eq!(
        lookup("/a=>/b;/a/b=>/c", "/a/b/d"),
        read_tree("/c/d | /b/b/d").unwrap()
    );
    assert_eq!(
        lookup("/a/b=>/c;/a=>/b", "/a/b/d"),
        read_tree("/b/b/d | /c/d").unwrap()
    );
    assert_eq!(lookup("/*=>/x", "/"), Tree::Neg);
}

#[test]
fn rewrite_keeps_structure() {
    assert_eq!(
        lookup("/s => 2 * /a & (/b | ~) & !", "/s/x/y"),
        read_tree("2 * /a/x/y & (/b/x/y | ~) & !").unwrap()
    );
    assert_eq!(lookup("/s => $", "/s/x"), Tree::Empty);
}

#[test]
fn matches_agree_with_a_scan() {
    let dtab =
        "/=>/r;/a=>/1;/*=>/2;/a/b=>/3;/*/b=>/4;/a/*=>/5;/*/*/c=>/6;/a=>/7;/b/*/c=>/8;/*/*=>/9";
    let ix = index(dtab);
    for path in [
        "/", "/a", "/b", "/a/b", "/a/b/c", "/b/b/c", "/a/x/c/d", "/z/b", "/z/z/z/z",
    ] {
        let path = read_path(path).unwrap();
        assert_eq!(ix.matches(&path), scan(dtab, &path), "{path:?}");
    }
}

#[test]
fn many_dentries() {
    let dtab: Vec<String> = (0..20_000)
        .map(|i| format!("/svc/s{i}=>/srv/s{i}"))
        .collect();
    let dtab = dtab.join(";") + ";/svc/*=>/fallback";
    let ix = index(&dtab);
    assert_eq!(ix.len(), 20_001);
    assert_eq!(
        ix.matches(&read_path("/svc/s123/x").unwrap()),
        vec![20_000, 123]
    );
    assert_eq!(
        ix.lookup(&read_path("/svc/s7").unwrap()),
        read_tree("/fallback | /srv/s7").unwrap()
    );
}

#[test]
fn hasher_is_deterministic_and_spreads() {
    use std::hash::BuildHasher;
    let build = BuildHasherDefault::<FxHasher>::default();
    let h = |b: &[u8]| build.hash_one(b);
    assert_eq!(h(b"svc"), h(b"svc"));
    assert_ne!(h(b"svc"), h(b"svd"));
    assert_ne!(h(b""), h(b"\0"));
    assert_ne!(h(b"abcdefgh"), h(b"abcdefgh\0"));
}

#[test]
fn deep_wildcards_spill_the_dfs_stack() {
    // Every level has both a label and a `*` edge: the walk's stack outgrows its inline array.
    let mut dentries = Vec::new();
    for depth in 1..=24 {
        dentries.push(format!("/{}", vec!["a"; depth].join("/")));
        dentries.push(format!("/{}", vec!["*"; depth].join("/")));
        dentries.push(format!("/{}/a", vec!["*"; depth - 1].join("/")).replace("//", "/"));
    }
    let dtab: Vec<String> = dentries.iter().enumerate().map(|(i, p)| format!("{p}=>/d{i}")).collect();
    let dtab = dtab.join(";");
    let ix = index(&dtab);
    for n in [0, 1, 5, 17, 24, 30] {
        let path: Path = vec![b"a".to_vec(); n];
        assert_eq!(ix.matches(&path), scan(&dtab, &path), "{n}");
    }
}

#[test]
fn hasher_separates_lengths_and_tails() {
    use std::collections::HashSet;
    use std::hash::BuildHasher;
    let build = BuildHasherDefault::<FxHasher>::default();
    let keys: Vec<Vec<u8>> = (0..40).flat_map(|n| [vec![b'a'; n], vec![0; n]]).collect();
    let hashes: HashSet<u64> = keys.iter().map(|k| build.hash_one(k.as_slice())).collect();
    assert_eq!(hashes.len(), keys.len() - 1); // only the two empty keys coincide
}
