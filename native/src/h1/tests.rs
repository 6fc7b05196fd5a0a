//! Unit tests of the HTTP/1.1 kernels: values, (kind, status, offset) of rejections, prefixes.

use super::*;

const LINE: usize = 8192;
const HEAD: usize = 65536;

fn req(d: &[u8]) -> Request<'_> {
    parse_request_head(d, LINE, HEAD, 100)
        .expect("valid")
        .expect("complete")
}

/// `(kind, status, offset)` of a rejected request head.
fn req_err(d: &[u8]) -> (&'static str, u16, usize) {
    let f = parse_request_head(d, LINE, HEAD, 100).expect_err("rejected");
    (f.why.kind, f.why.status, f.offset)
}

fn resp_err(d: &[u8]) -> (&'static str, usize) {
    let f = parse_response_head(d, HEAD, 100).expect_err("rejected");
    (f.why.kind, f.offset)
}

fn chunk(d: &[u8]) -> Result<Option<(u64, usize)>, (&'static str, usize)> {
    parse_chunk_line(d, 0, 64).map_err(|f| (f.why.kind, f.offset))
}

#[test]
fn request_values() {
    let r = req(b"\r\nGET /a?b HTTP/1.1\r\nHost: h:80\r\nX-A:  v  w \t\r\nConnection: Keep-Alive, , Upgrade\r\nContent-Length: 5, 5\r\nExpect: 100-Continue\r\n\r\nbody");
    assert_eq!(
        (r.method, r.target, r.minor),
        (&b"GET"[..], &b"/a?b"[..], 1)
    );
    assert_eq!(
        r.fields[1],
        Field {
            name: b"X-A",
            value: b"v  w",
            at: 33
        }
    );
    assert_eq!(r.fields.len(), 5);
    assert_eq!(
        (r.content_length, r.chunked, r.expect_continue),
        (5, false, true)
    );
    assert_eq!(r.connection, vec![&b"Keep-Alive"[..], b"Upgrade"]);
    assert_eq!(r.host, Some(&b"h:80"[..]));
    let head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \tChunked \r\n\r\n";
    let r = req(head);
    assert_eq!(
        (r.head_len, r.chunked, r.content_length),
        (head.len(), true, -1)
    );
    let r = req(b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!((r.minor, r.host, r.expect_continue), (0, None, false));
    assert_eq!(req(b"GET / HTTP/1.0\r\nHost:\r\n\r\n").host, Some(&b""[..]));
}

#[test]
fn request_line_rejections() {
    assert_eq!(req_err(b"GET / HTTP/1.1\n"), ("bare-lf", 400, 14));
    assert_eq!(req_err(b"GET / HTTP/1.1\rX"), ("bare-cr", 400, 14));
    assert_eq!(
        req_err(b"GET  / HTTP/1.1\r\n"),
        ("bad-request-line", 400, 4)
    );
    assert_eq!(
        req_err(b"GET\t/ HTTP/1.1\r\n"),
        ("bad-request-line", 400, 3)
    );
    assert_eq!(req_err(b"GET /\r\n"), ("bad-request-line", 400, 5));
    assert_eq!(req_err(b"G@T / HTTP/1.1\r\n"), ("bad-method", 400, 1));
    assert_eq!(
        req_err(&[&[b'A'; 33][..], b" / HTTP/1.1\r\n"].concat()),
        ("bad-method", 501, 0)
    );
    assert_eq!(req_err(b"GET /a#b HTTP/1.1\r\n"), ("bad-target", 400, 6));
    assert_eq!(
        req_err(b"GET /\xc3\xa9 HTTP/1.1\r\n"),
        ("bad-target", 400, 5)
    );
    assert_eq!(req_err(b"GET * HTTP/1.1\r\n"), ("bad-target", 400, 4));
    assert_eq!(req_err(b"GET h:80 HTTP/1.1\r\n"), ("bad-target", 400, 4));
    assert_eq!(req_err(b"CONNECT /x HTTP/1.1\r\n"), ("bad-target", 400, 8));
    assert_eq!(
        req_err(b"GET http://u@h/ HTTP/1.1\r\n"),
        ("bad-target", 400, 4)
    );
    assert_eq!(
        req_err(b"GET http:/// HTTP/1.1\r\n"),
        ("bad-target", 400, 4)
    );
    assert_eq!(
        req_err(b"GET / HTTP/2.0\r\n"),
        ("http-version-not-supported", 505, 6)
    );
    assert_eq!(req_err(b"GET / HTTP/1.10\r\n"), ("bad-version", 400, 6));
    assert_eq!(req_err(b"GET / http/1.1\r\n"), ("bad-version", 400, 6));
    assert_eq!(
        req_err(b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n"),
        ("bad-request-line", 400, 8)
    );
    assert_eq!(
        req(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n").target,
        b"h:443"
    );
    assert_eq!(req(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").target, b"*");
    assert_eq!(
        req(b"GET HTTPS://[::1]:8443?q HTTP/1.1\r\nHost: h\r\n\r\n").minor,
        1
    );
}

#[test]
fn field_rejections() {
    let h = |line: &[u8]| req_err(&[&b"GET / HTTP/1.1\r\nHost: h\r\n"[..], line, b"\r\n"].concat());
    assert_eq!(h(b" X: y\r\n"), ("obs-fold", 400, 25));
    assert_eq!(h(b"X : y\r\n"), ("space-before-colon", 400, 26));
    assert_eq!(h(b"X y: z\r\n"), ("bad-header-name", 400, 26));
    assert_eq!(h(b": z\r\n"), ("bad-header-name", 400, 25));
    assert_eq!(h(b"X\r\n"), ("bad-header-name", 400, 26));
    assert_eq!(h(b"X: a\x00b\r\n"), ("bad-header-value", 400, 29));
    assert_eq!(h(b"X: a\x7fb\r\n"), ("bad-header-value", 400, 29));
    assert_eq!(h(b"X: a\rb\r\n"), ("bare-cr", 400, 29));
    assert_eq!(h(b"X: a\nb\r\n"), ("bare-lf", 400, 29));
}

#[test]
fn framing_rejections() {
    let h = |fields: &[u8]| req_err(&[&b"POST / HTTP/1.1\r\n"[..], fields, b"\r\n"].concat());
    assert_eq!(
        h(b"Host: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n"),
        ("cl-and-te", 400, 54)
    );
    assert_eq!(
        h(b"Host: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n"),
        ("cl-and-te", 400, 45)
    );
    for te in [
        &b"identity"[..],
        b"chunked, gzip",
        b"gzip, chunked",
        b"chunked, chunked",
        b"\"chunked\"",
        b"xchunked",
        b"",
    ] {
        let fields = [&b"Host: h\r\nTransfer-Encoding: "[..], te, b"\r\n"].concat();
        assert_eq!(
            h(&fields),
            ("unsupported-transfer-coding", 501, 26),
            "{te:?}"
        );
    }
    assert_eq!(
        h(b"Host: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
        ("unsupported-transfer-coding", 501, 54)
    );
    for cl in [
        &b"+5"[..],
        b"-1",
        b"0x5",
        b"5_0",
        b"1 2",
        b"",
        b"1234567890123456789",
        b"5,",
        b"\xd9\xa1",
    ] {
        let fields = [&b"Host: h\r\nContent-Length: "[..], cl, b"\r\n"].concat();
        assert_eq!(h(&fields), ("bad-content-length", 400, 26), "{cl:?}");
    }
    assert_eq!(
        h(b"Host: h\r\nContent-Length: 5, 6\r\n"),
        ("conflicting-content-length", 400, 26)
    );
    assert_eq!(
        h(b"Host: h\r\nContent-Length: 5\r\nContent-Length: 05\r\n"),
        ("conflicting-content-length", 400, 45)
    );
    assert_eq!(
        req(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 123456789012345678\r\n\r\n")
            .content_length,
        123456789012345678
    );
    assert_eq!(
        req_err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("te-in-http10", 400, 17)
    );
    assert_eq!(h(b""), ("missing-host", 400, 17));
    assert_eq!(h(b"Host: a\r\nhost: a\r\n"), ("duplicate-host", 400, 26));
    for host in [
        &b""[..],
        b"u@h",
        b"h/p",
        b"a,b",
        b"h:123456",
        b"[::1",
        b"h%zz",
        b"h:x",
    ] {
        let fields = [&b"Host: "[..], host, b"\r\n"].concat();
        assert_eq!(h(&fields), ("bad-host", 400, 17), "{host:?}");
    }
}

#[test]
fn limits() {
    let d = b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(
        parse_request_head(&d[..20], 20, 100, 10)
            .unwrap_err()
            .why
            .kind,
        "line-too-long"
    );
    assert_eq!(parse_request_head(&d[..19], 20, 100, 10), Ok(None));
    let f = parse_request_head(d, 200, 50, 10).unwrap_err();
    assert_eq!(
        (f.why.kind, f.why.status, f.offset),
        ("headers-too-large", 431, 50)
    );
    let f = parse_request_head(d, 200, 100, 2).unwrap_err();
    assert_eq!(
        (f.why.kind, f.why.status, f.offset),
        ("too-many-headers", 431, 57)
    );
    let line = d.iter().position(|&c| c == b'\n').unwrap() + 1; // the request line with its CRLF
    assert!(parse_request_head(d, line, d.len(), 3).unwrap().is_some());
    assert!(parse_request_head(d, line - 1, d.len(), 3).is_err());
    assert!(parse_request_head(d, line, d.len() - 1, 3).is_err());
}

#[test]
fn every_prefix_of_a_valid_head_is_incomplete() {
    let d = b"\r\nPUT http://h/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX: \"a b\"\r\n\r\n";
    for i in 0..d.len() {
        assert_eq!(
            parse_request_head(&d[..i], LINE, HEAD, 100),
            Ok(None),
            "prefix {i}"
        );
    }
    assert_eq!(req(d).head_len, d.len());
    let d = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
    for i in 0..d.len() {
        assert_eq!(
            parse_response_head(&d[..i], HEAD, 100),
            Ok(None),
            "prefix {i}"
        );
    }
}

#[test]
fn responses() {
    let r = parse_response_head(
        b"HTTP/1.0 404 Not  Found\xff\r\nContent-Length: 0\r\n\r\n",
        HEAD,
        100,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        (r.minor, r.status, r.reason, r.content_length),
        (0, 404, &b"Not  Found\xff"[..], 0)
    );
    let r = parse_response_head(b"HTTP/1.1 204\r\n\r\n", HEAD, 100)
        .unwrap()
        .unwrap();
    assert_eq!((r.status, r.reason, r.head_len), (204, &b""[..], 16));
    assert_eq!(resp_err(b"HTTP/2.0 200 OK\r\n\r\n"), ("bad-version", 0));
    assert_eq!(resp_err(b"\r\nHTTP/1.1 200 OK\r\n\r\n"), ("bad-version", 0));
    assert_eq!(
        resp_err(b"HTTP/1.1\t200 OK\r\n\r\n"),
        ("bad-status-line", 8)
    );
    assert_eq!(resp_err(b"HTTP/1.1 2 OK\r\n\r\n"), ("bad-status-line", 9));
    assert_eq!(resp_err(b"HTTP/1.1 600 OK\r\n\r\n"), ("bad-status-line", 9));
    assert_eq!(resp_err(b"HTTP/1.1 200OK\r\n\r\n"), ("bad-status-line", 12));
    assert_eq!(
        resp_err(b"HTTP/1.1 200 O\x00K\r\n\r\n"),
        ("bad-status-line", 14)
    );
    assert_eq!(
        resp_err(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
        ("unsupported-transfer-coding", 17)
    );
    assert_eq!(
        resp_err(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("cl-and-te", 36)
    );
}

#[test]
fn chunk_lines() {
    assert_eq!(chunk(b"a\r\n"), Ok(Some((10, 3))));
    assert_eq!(chunk(b"ffffffffffffffff\r\n"), Ok(Some((u64::MAX, 18))));
    assert_eq!(chunk(b"5 ; a = \"x\\\"y\" ;b=c\r\n"), Ok(Some((5, 21))));
    assert_eq!(chunk(b"5;a"), Ok(None));
    assert_eq!(chunk(b"5\r"), Ok(None));
    assert_eq!(chunk(b"0x5\r\n"), Err(("bad-chunk-size", 1)));
    assert_eq!(chunk(b"-5\r\n"), Err(("bad-chunk-size", 0)));
    assert_eq!(chunk(b" 5\r\n"), Err(("bad-chunk-size", 0)));
    assert_eq!(chunk(b"\r\n"), Err(("bad-chunk-size", 0)));
    assert_eq!(
        chunk(b"00000000000000000\r\n"),
        Err(("chunk-size-too-large", 0))
    );
    assert_eq!(chunk(b"5 \r\n"), Err(("bad-chunk-ext", 2)));
    assert_eq!(chunk(b"5;\r\n"), Err(("bad-chunk-ext", 2)));
    assert_eq!(chunk(b"5;a=\r\n"), Err(("bad-chunk-ext", 4)));
    assert_eq!(chunk(b"5;a=\"b\r\n"), Err(("bad-chunk-ext", 6)));
    assert_eq!(chunk(b"5;a=\"\\\x01\"\r\n"), Err(("bad-chunk-ext", 5)));
    assert_eq!(chunk(b"5\n"), Err(("bare-lf", 1)));
    assert_eq!(chunk(b"5\rx"), Err(("bare-cr", 1)));
    let f = parse_chunk_line(&[b'1'; 70], 0, 64).unwrap_err();
    assert_eq!(
        (f.why.kind, f.why.status, f.offset),
        ("line-too-long", 400, 64)
    );
    assert_eq!(parse_chunk_line(b"xx5\r\n", 2, 3), Ok(Some((5, 5))));
    assert_eq!(parse_chunk_line(b"xx5\r\n", 2, 2).unwrap_err().offset, 4);
}

#[test]
fn trailers() {
    let (f, next) = parse_trailers(b"0\r\nA: b\r\n\r\nX", 3, 100, 10)
        .unwrap()
        .unwrap();
    assert_eq!(
        (f.len(), f[0].name, f[0].value, next),
        (1, &b"A"[..], &b"b"[..], 11)
    );
    assert_eq!(
        parse_trailers(b"0\r\n\r\n", 3, 100, 10),
        Ok(Some((vec![], 5)))
    );
    assert_eq!(parse_trailers(b"0\r\nA: b\r\n", 3, 100, 10), Ok(None));
    let f = parse_trailers(b"0\r\nA: b\r\n\r\n", 3, 7, 10).unwrap_err();
    assert_eq!(
        (f.why.kind, f.why.text, f.offset),
        ("headers-too-large", "trailer section too large", 10)
    );
    assert_eq!(
        parse_trailers(b"0\r\nA: b\r\n\r\n", 3, 100, 0)
            .unwrap_err()
            .why
            .kind,
        "too-many-headers"
    );
}

#[test]
fn field_values_eight_bytes_at_a_time() {
    // Every byte value at every position of a long value: the word-at-a-time scan must agree with
    // a byte-by-byte reading of the grammar.
    for c in 0..=255u8 {
        for at in 0..20 {
            let mut value = vec![b'a'; 20];
            value[at] = c;
            let head = [
                &b"GET / HTTP/1.1\r\nHost: h\r\nX: "[..],
                &value,
                b"\r\n\r\n",
            ]
            .concat();
            let got = parse_request_head(&head, LINE, HEAD, 100)
                .map(|r| r.map(|r| r.fields[1].value.to_vec()));
            let want = match c {
                b'\r' => Err(("bare-cr", 28 + at)),
                b'\n' => Err(("bare-lf", 28 + at)),
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => Ok(Some(fields::trim(&value).to_vec())),
                _ => Err(("bad-header-value", 28 + at)),
            };
            assert_eq!(
                got.map_err(|f| (f.why.kind, f.offset)),
                want,
                "byte {c:#x} at {at}"
            );
        }
    }
}
