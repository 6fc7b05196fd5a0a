//! Unit tests of the naming-syntax parser (values, exact messages, offsets, quirks).

use super::*;

fn p(labels: &[&str]) -> Path {
    labels.iter().map(|l| l.as_bytes().to_vec()).collect()
}

fn leaf(labels: &[&str]) -> Tree {
    Tree::Leaf(p(labels))
}

fn err<T: std::fmt::Debug>(r: Result<T, ParseError>) -> (String, usize, &'static str) {
    let e = r.expect_err("expected a parse error");
    assert_eq!(e.kind, ErrorKind::Syntax);
    (e.message, e.offset, e.expected)
}

fn msg<T: std::fmt::Debug>(r: Result<T, ParseError>) -> String {
    err(r).0
}

#[test]
fn paths() {
    assert_eq!(read_path("/").unwrap(), p(&[]));
    assert_eq!(read_path("  /foo/bar  ").unwrap(), p(&["foo", "bar"]));
    assert_eq!(read_path("/foo # comment").unwrap(), p(&["foo"]));
    assert_eq!(read_path("/_:.#$%-").unwrap(), p(&["_:.#$%-"]));
    assert_eq!(read_path("/\\xc3\\xa9").unwrap(), vec![vec![0xc3, 0xa9]]);
    assert_eq!(read_path("/a\\x2Db").unwrap(), p(&["a-b"]));
    assert_eq!(read_path("/a\\x2fb/c").unwrap(), p(&["a/b", "c"]));
    assert_eq!(read_path("\u{3000}/a\u{2029}").unwrap(), p(&["a"]));
}

#[test]
fn path_errors() {
    assert_eq!(
        err(read_path("")),
        (
            "'/' expected but end of input found at '[]'".into(),
            0,
            "'/'"
        )
    );
    assert_eq!(
        err(read_path("/foo/bar/")),
        (
            "label char expected but end of input found at '/foo/bar/[]'".into(),
            9,
            "label char"
        )
    );
    assert_eq!(
        msg(read_path("/\\?")),
        "'x' expected but '?' found at '/\\[?]'"
    );
    assert_eq!(
        msg(read_path("/\\x0?")),
        "hex char expected but '?' found at '/\\x0[?]'"
    );
    assert_eq!(
        msg(read_path("//")),
        "end of input expected but '/' found at '/[/]'"
    );
    assert_eq!(
        msg(read_path("/foo\n/bar")),
        "end of input expected but '/' found at '/foo\n[/]bar'"
    );
    assert_eq!(
        err(read_path("/é")),
        (
            "end of input expected but 'é' found at '/[é]'".into(),
            1,
            "end of input"
        )
    );
    // Offsets count code points; a whole multi-byte character is bracketed.
    assert_eq!(err(read_path("/abc/\u{1F600}x")).1, 5);
    assert_eq!(err(read_path("/ééé/\u{1F600}x")).1, 1);
    assert_eq!(
        msg(read_path("/a/\u{1F600}x")),
        "label char expected but '\u{1F600}' found at '/a/[\u{1F600}]x'"
    );
    // U+00A0 and U+0085 are not Java whitespace.
    assert_eq!(err(read_path("\u{a0}/a")).1, 0);
    assert_eq!(err(read_path("/a\u{85}")).1, 2);
}

#[test]
fn eoi_sentinel() {
    assert_eq!(
        err(read_path("/a\u{ffff}b")),
        (
            "end of input expected but end of input found at '/a[\u{ffff}]b'".into(),
            2,
            "end of input"
        )
    );
    assert_eq!(
        msg(read_tree("\u{ffff}")),
        "simple expected but end of input found at '[\u{ffff}]'"
    );
}

#[test]
fn trees() {
    assert_eq!(
        read_tree("/a | /b & /c").unwrap(),
        Tree::Alt(vec![
            leaf(&["a"]),
            Tree::Union(vec![(1.0, leaf(&["b"])), (1.0, leaf(&["c"]))])
        ])
    );
    assert_eq!(read_tree("2 * /a").unwrap(), leaf(&["a"]));
    assert_eq!(
        read_tree("(/a | /b) | /c").unwrap(),
        Tree::Alt(vec![
            Tree::Alt(vec![leaf(&["a"]), leaf(&["b"])]),
            leaf(&["c"])
        ])
    );
    assert_eq!(read_tree(" ! ").unwrap(), Tree::Fail);
    assert_eq!(read_tree("~").unwrap(), Tree::Neg);
    assert_eq!(read_tree("$").unwrap(), Tree::Empty);
    assert_eq!(
        read_tree("/a\n# c\n| /b").unwrap(),
        Tree::Alt(vec![leaf(&["a"]), leaf(&["b"])])
    );
}

#[test]
fn weights() {
    let w = |s: &str| match read_tree(&format!("{s} * /a & /b")).unwrap() {
        Tree::Union(ws) => ws[0].0,
        other => panic!("{other:?}"),
    };
    assert_eq!(w("5."), 5.0);
    assert_eq!(w(".5"), 0.5);
    assert_eq!(w("00.5"), 0.5);
    assert_eq!(w("0.1"), 0.1);
    assert_eq!(w("12345678901234567890"), 12345678901234567890.0);
    assert_eq!(w(&"9".repeat(400)), f64::INFINITY);
    assert_eq!(w(&format!("0.{}1", "0".repeat(400))), 0.0);
    assert_eq!(
        err(read_tree("/foo & . * /bar")),
        (
            "weight expected but '.' found at '/foo & .[ ]* /bar'".into(),
            8,
            "weight"
        )
    );
    assert_eq!(
        msg(read_tree("/a & .")),
        "weight expected but '.' found at '/a & .[]'"
    );
    assert_eq!(
        msg(read_tree("/foo & 0.1.2 * /bar")),
        "number char expected but '.' found at '/foo & 0.1[.]2 * /bar'"
    );
    assert_eq!(
        msg(read_tree("1e3 * /a & /b")),
        "'*' expected but 'e' found at '1[e]3 * /a & /b'"
    );
}

#[test]
fn tree_errors() {
    assert_eq!(
        msg(read_tree("")),
        "simple expected but end of input found at '[]'"
    );
    assert_eq!(
        msg(read_tree("#")),
        "simple expected but end of input found at '#[]'"
    );
    assert_eq!(
        msg(read_tree("(/a")),
        "')' expected but end of input found at '(/a[]'"
    );
    assert_eq!(
        msg(read_tree("/a)")),
        "end of input expected but ')' found at '/a[)]'"
    );
    assert_eq!(
        msg(read_tree("-1 * /a")),
        "simple expected but '-' found at '[-]1 * /a'"
    );
}

#[test]
fn nesting_limit() {
    let ok = format!("{}/a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(read_tree(&ok).unwrap(), leaf(&["a"]));
    let deep = format!(
        "{}/a{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    let e = read_tree(&deep).unwrap_err();
    assert_eq!((e.kind, e.offset), (ErrorKind::TooDeep, MAX_DEPTH));
}

#[test]
fn prefixes_and_dentries() {
    let a = Some(b"a".to_vec());
    assert_eq!(
        read_prefix("/a/*/a").unwrap(),
        vec![a.clone(), None, a.clone()]
    );
    assert_eq!(read_prefix("/\\x2a").unwrap(), vec![Some(b"*".to_vec())]);
    assert_eq!(
        msg(read_prefix("/**")),
        "end of input expected but '*' found at '/*[*]'"
    );
    assert_eq!(
        msg(read_dentry("/foo/*bar/baz => !")),
        "'=' expected but 'b' found at '/foo/*[b]ar/baz => !'"
    );
    assert_eq!(
        msg(read_dentry("/foo = > /bar")),
        "'>' expected but ' ' found at '/foo =[ ]> /bar'"
    );
    assert_eq!(
        read_dentry("  /a  =>  /b  ").unwrap(),
        (vec![a], leaf(&["b"]))
    );
}

#[test]
fn dtabs() {
    assert_eq!(read_dtab("").unwrap(), vec![]);
    assert_eq!(read_dtab(" # only a comment").unwrap(), vec![]);
    assert_eq!(read_dtab("/a => /b; /c => /d ;").unwrap().len(), 2);
    assert_eq!(read_dtab("/a=>/b;#/c=>/d").unwrap().len(), 1);
    assert_eq!(read_dtab("/a=>/b#x\n;/c=>/d").unwrap()[0].1, leaf(&["b#x"]));
    assert_eq!(read_dtab("/a=>/b #x\n;/c=>/d").unwrap().len(), 2);
    assert_eq!(
        msg(read_dtab("/a=>/b;;/c=>/d")),
        "'/' expected but ';' found at '/a=>/b;[;]/c=>/d'"
    );
    assert_eq!(
        msg(read_dtab(" ; ")),
        "'/' expected but ';' found at ' [;] '"
    );
    assert_eq!(
        msg(read_dtab("/a=>/b /c=>/d")),
        "end of input expected but '/' found at '/a=>/b [/]c=>/d'"
    );
}

#[test]
fn surrogates() {
    // "/a" + U+D800 as surrogatepass encodes it: the message keeps the same bytes.
    let e = parse_path(b"/a\xed\xa0\x80").unwrap_err();
    assert_eq!(e.offset, 2);
    assert_eq!(
        e.message,
        b"end of input expected but '\xed\xa0\x80' found at '/a[\xed\xa0\x80]'".to_vec()
    );
}
