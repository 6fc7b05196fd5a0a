//! The lane's header rules against hand-written expectations (the black-box tests in
//! `tests/test_lane.py` compare the lane with the Python path on real sockets).

use crate::lane::head::{
    baggage_block, deadline_field, parse_deadline, request_head, response_head, rewrite, route_key, scan_request, trailer_block, Body, Carriers,
    ServerRules, TooLarge,
};
use crate::h1;

fn rules(edge: bool) -> ServerRules {
    ServerRules {
        edge,
        via: b"1.1 pyproxy-r".to_vec(),
        max_call_depth: 3,
        ident: b"host".to_vec(),
        max_line: 4096,
        max_head: 8192,
        max_headers: 100,
        stream_after: 5120,
        carriers: None,
        signed: false,
    }
}

fn req(text: &[u8]) -> h1::Request<'_> {
    h1::parse_request_head(text, 4096, 8192, 100).unwrap().unwrap()
}

#[test]
fn a_plain_request_is_rewritten_like_the_python_path() {
    let text = b"GET /a HTTP/1.1\r\nHost: web\r\nConnection: x-gone, keep-alive\r\nX-Gone: 1\r\nVia: 1.1 other\r\nl5d-reqid: 5\r\nAccept: */*\r\nContent-Length: 0\r\n\r\n";
    let r = req(text);
    let scan = scan_request(&r, 7, &rules(false)).unwrap();
    assert_eq!(scan.key, route_key(7, b"web", &[], &[], b""));
    let head = request_head(&r, &scan, &rules(false), b"l5d-dst-service: /svc/web\r\n", b"T", b"R", b"", b"", b"");
    assert_eq!(
        head,
        b"GET /a HTTP/1.1\r\nHost: web\r\nAccept: */*\r\nVia: 1.1 other, 1.1 pyproxy-r\r\nl5d-dst-service: /svc/web\r\nl5d-ctx-trace: T\r\nl5d-reqid: R\r\nContent-Length: 0\r\n\r\n".to_vec()
    );
}

#[test]
fn overrides_are_part_of_the_key_except_at_an_edge() {
    let text = b"GET / HTTP/1.1\r\nHost: web\r\nl5d-dtab: /a=>/b\r\nL5D-CTX-DTAB: /c=>/d\r\nl5d-dtab: /e=>/f\r\n\r\n";
    let r = req(text);
    let inner = scan_request(&r, 1, &rules(false)).unwrap();
    assert_eq!(inner.key, route_key(1, b"web", &[b"/c=>/d"], &[b"/a=>/b", b"/e=>/f"], b""));
    let edge = scan_request(&r, 1, &rules(true)).unwrap();
    assert_eq!(edge.key, route_key(1, b"web", &[], &[], b""));
    assert!(edge.kept.iter().all(|f| !f.name.starts_with(b"l5d") && !f.name.starts_with(b"L5D")));
}

#[test]
fn what_the_lane_declines() {
    for text in [
        &b"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 5121\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nl5d-ctx-deadline: 1 18446744073709551616\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nl5d-sample: 0.5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nVia: 1.1 pyproxy-r\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nVia: a, b\r\nVia: c, d\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nl5d-ctx-trace: not base64\r\n\r\n",
        b"GET http://web/ HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ] {
        assert!(scan_request(&req(text), 0, &rules(false)).is_none(), "{}", String::from_utf8_lossy(text));
    }
}

fn resp(text: &[u8]) -> h1::Response<'_> {
    h1::parse_response_head(text, 8192, 100).unwrap().unwrap()
}

#[test]
fn responses_the_lane_relays_and_those_it_hands_over() {
    let r = resp(b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nContent-Length: 2\r\nl5d-success-class: 0.0\r\nVia: 1.0 a\r\n\r\nok");
    let (head, body) = response_head(&r, false, true, 1, &rules(true)).unwrap();
    assert_eq!(body, Body::Fixed(2));
    assert_eq!(head, b"HTTP/1.1 200 OK\r\nVia: 1.0 a, 1.1 pyproxy-r\r\nContent-Length: 2\r\n\r\n".to_vec());
    let (head, body) = response_head(&r, true, false, 0, &rules(false)).unwrap();
    assert_eq!(body, Body::None);
    assert_eq!(
        head,
        b"HTTP/1.0 200 OK\r\nl5d-success-class: 1.0\r\nVia: 1.0 a, 1.1 pyproxy-r\r\nContent-Length: 2\r\nConnection: close\r\n\r\n".to_vec()
    );
    for text in [
        &b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n"[..],
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
    ] {
        assert!(response_head(&resp(text), false, true, 1, &rules(false)).is_none());
    }
    let chunked = resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    let (head, body) = response_head(&chunked, false, true, 1, &rules(false)).unwrap();
    assert_eq!(body, Body::Chunked);
    assert_eq!(head, b"HTTP/1.1 200 OK\r\nl5d-success-class: 1.0\r\nVia: 1.1 pyproxy-r\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec());
    assert!(response_head(&chunked, false, false, 0, &rules(false)).is_none()); // HTTP/1.0 client: full relay
    let err = resp(b"HTTP/1.1 404 Not Found\r\nl5d-err: x\r\nContent-Length: 0\r\n\r\n");
    assert!(response_head(&err, false, true, 1, &rules(true)).is_none());
    assert!(response_head(&err, false, true, 1, &rules(false)).is_some());
}

#[test]
fn trailers_lose_hop_by_hop_framing_and_at_an_edge_l5d_fields() {
    let text = b"X-Sum: 1\r\nConnection: x\r\nContent-Length: 3\r\nHost: h\r\nl5d-secret: s\r\n\r\n";
    let (fields, _) = h1::parse_trailers(text, 0, 8192, 100).unwrap().unwrap();
    assert_eq!(trailer_block(&fields, false), b"X-Sum: 1\r\nl5d-secret: s\r\n".to_vec());
    assert_eq!(trailer_block(&fields, true), b"X-Sum: 1\r\n".to_vec());
}

#[test]
fn bucket_keys_match_the_python_histograms() {
    use crate::lane::results::{bucket_key, ZERO};
    // histogram.bucket_key: e * 64 + int((m - 0.5) * 128) with (m, e) = frexp(v)
    assert_eq!(bucket_key(1.0), Some(64)); // frexp(1.0) = (0.5, 1)
    assert_eq!(bucket_key(0.75), Some(32)); // (0.75, 0)
    assert_eq!(bucket_key(3.0), Some(2 * 64 + 32)); // (0.75, 2)
    assert_eq!(bucket_key(0.0), Some(ZERO));
    assert_eq!(bucket_key(-2.0), Some(ZERO));
    assert_eq!(bucket_key(f64::NAN), None);
    assert_eq!(bucket_key(f64::MIN_POSITIVE / 4.0), Some(-1023 * 64)); // subnormal 2^-1024 = 0.5 * 2^-1023
}

#[test]
fn results_are_summed_per_branch_listener_and_status() {
    use crate::lane::results::{bucket_key, Results};
    let mut r: Results<&str> = Results::default();
    r.add(7, 0, 200, 3, 10.25, 10.2505, 10.251, || "a");
    r.add(7, 0, 200, 4, 10.5, 10.501, 10.502, || "unused: the batch exists");
    r.add(7, 0, 404, 3, 11.0, 11.001, 11.0015, || "b");
    r.add(8, 0, 200, 3, 11.5, 11.502, 11.503, || "c");
    let batches = r.take();
    assert!(r.take().is_empty());
    assert_eq!(batches.iter().map(|b| (b.ctx, b.status, b.count)).collect::<Vec<_>>(), [("a", 200, 2), ("b", 404, 1), ("c", 200, 1)]);
    let a = &batches[0];
    assert_eq!(a.slots, [(3, 1), (4, 1)]);
    assert_eq!(a.seconds, [(10, 2)]);
    assert_eq!(a.head_ms.count, 2);
    let first = (10.2505 - 10.25) * 1000.0;
    let second = (10.501 - 10.5) * 1000.0;
    assert_eq!(a.head_ms.sum, first + second);
    assert_eq!((a.head_ms.min, a.head_ms.max), (first.min(second), first.max(second)));
    let want = if bucket_key(first) == bucket_key(second) {
        vec![(bucket_key(first).unwrap(), 2)]
    } else {
        vec![(bucket_key(first).unwrap(), 1), (bucket_key(second).unwrap(), 1)]
    };
    assert_eq!(a.head_ms.buckets, want);
    assert_eq!(a.total_ms.count, 2);
}

#[test]
fn x_forwarded_client_cert_is_never_forwarded() {
    let text = b"GET / HTTP/1.1\r\nHost: web\r\nX-Forwarded-Client-Cert: Hash=forged\r\nx-a: 1\r\nx-forwarded-client-cert: By=x\r\n\r\n";
    let r = req(text);
    for edge in [false, true] {
        let scan = scan_request(&r, 0, &rules(edge)).unwrap();
        let names: Vec<&[u8]> = scan.kept.iter().map(|f| f.name).collect();
        assert_eq!(names, [&b"Host"[..], b"x-a"]);
    }
}

#[test]
fn deadlines_are_read_as_the_python_path_reads_them() {
    // the strictest valid value; invalid ones ignored; a tighter deadline keeps the larger timestamp
    assert_eq!(parse_deadline(&[b"10 500", b"20 400", b"30 450"]), Ok(Some((20, 400))));
    assert_eq!(parse_deadline(&[b"30 400", b"20 300"]), Ok(Some((30, 300))));
    assert_eq!(parse_deadline(&[b"nope", b"1 2 3", b"-1 5", b"1", b"", b"1 +2"]), Ok(None));
    assert_eq!(parse_deadline(&[b" \t7\x0b  9\x0c"]), Ok(Some((7, 9))));
    assert_eq!(parse_deadline(&[b"007 0100"]), Ok(Some((7, 100))));
    assert_eq!(parse_deadline(&[b"1 18446744073709551615"]), Ok(Some((1, u64::MAX))));
    assert_eq!(parse_deadline(&[b"1 18446744073709551616"]), Err(TooLarge));
    assert_eq!(parse_deadline(&[]), Ok(None));
    assert_eq!(deadline_field(17, 42), b"l5d-ctx-deadline: 17 42\r\n".to_vec());
    let text = b"GET / HTTP/1.1\r\nHost: web\r\nl5d-ctx-deadline: 5 100\r\nL5D-CTX-DEADLINE: 6 90\r\n\r\n";
    let r = req(text);
    let inner = scan_request(&r, 0, &rules(false)).unwrap();
    assert_eq!(inner.deadline, Some((6, 90)));
    assert!(inner.kept.iter().all(|f| !f.name.eq_ignore_ascii_case(b"l5d-ctx-deadline")));
    assert_eq!(scan_request(&r, 0, &rules(true)).unwrap().deadline, None, "an edge ignores it");
}

fn with_carriers(edge: bool, signed: bool) -> ServerRules {
    ServerRules { carriers: Some(Carriers::new(b"l5d-dtab", if edge { b"" } else { b"\x00\x01" }, b"\x00\x01\x02")), signed, ..rules(edge) }
}

#[test]
fn a_baggage_member_keys_the_route_and_is_rewritten_first() {
    let text = b"GET / HTTP/1.1\r\nHost: web\r\nbaggage: a=1, l5d-dtab=/x=>/y;p\r\nX: 1\r\n\r\n";
    let r = req(text);
    let rules = with_carriers(false, false);
    let scan = scan_request(&r, 1, &rules).unwrap();
    assert_eq!(scan.key, route_key(1, b"web", &[], &[], b"b0l5d-dtab=/x=>/y;p"));
    assert!(scan.present && scan.kept.iter().all(|f| f.name != b"baggage"));
    let block = baggage_block(&scan, &rules, true, Some(b"l5d-dtab=/x=>/y")).unwrap();
    assert_eq!(block, b"baggage: l5d-dtab=/x=>/y,a=1\r\n".to_vec());
    // l5d-dtab wins: the member is not read, but replaced on the way out
    let r2 = req(b"GET / HTTP/1.1\r\nHost: web\r\nuberctx-l5d-dtab: /j\r\nl5d-dtab: /u=>/v\r\n\r\n");
    assert_eq!(scan_request(&r2, 1, &rules).unwrap().key, route_key(1, b"web", &[], &[b"/u=>/v"], b""));
}

#[test]
fn without_an_override_baggage_goes_on_as_it_came_and_over_the_limits_the_lane_declines() {
    let rules = with_carriers(false, false);
    let r = req(b"GET / HTTP/1.1\r\nHost: web\r\nbaggage: a=1 , b=2\r\n\r\n");
    let scan = scan_request(&r, 1, &rules).unwrap();
    assert_eq!(baggage_block(&scan, &rules, false, None).unwrap(), b"baggage: a=1 , b=2\r\n".to_vec());
    let many: Vec<u8> = (0..64).map(|i| format!("m{i}=1")).collect::<Vec<_>>().join(",").into_bytes();
    let text = [b"GET / HTTP/1.1\r\nHost: web\r\nbaggage: ".as_slice(), &many, b"\r\n\r\n"].concat();
    let r = req(&text);
    let scan = scan_request(&r, 1, &rules).unwrap();
    assert!(baggage_block(&scan, &rules, true, Some(b"l5d-dtab=/a")).is_none());
    assert_eq!(rewrite(&[&many], b"l5d-dtab", Some(b"l5d-dtab=/a")).1, 1);
}

#[test]
fn an_edge_hands_over_a_member_and_keys_signed_overrides() {
    let r = req(b"GET / HTTP/1.1\r\nHost: web\r\nbaggage: l5d-dtab=/x\r\n\r\n");
    assert!(scan_request(&r, 1, &with_carriers(true, false)).is_none());
    let r = req(b"GET / HTTP/1.1\r\nHost: web\r\nl5d-dtab: /a=>/b\r\nl5d-dtab-sig: kid=k; exp=1; sig=S\r\nbaggage: c=1\r\n\r\n");
    let signed = scan_request(&r, 1, &with_carriers(true, true)).unwrap();
    assert_eq!(signed.key, route_key(1, b"web", &[], &[b"/a=>/b"], b"skid=k; exp=1; sig=S"));
    let unsigned = scan_request(&r, 1, &with_carriers(true, false)).unwrap();
    assert_eq!(unsigned.key, route_key(1, b"web", &[], &[], b""));
}
