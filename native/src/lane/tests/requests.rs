//! Requests through the lane: forwarded and answered, heads in pieces, pipelining, and what the
//! host is told (handoffs with the exact bytes, resumes, failures, samples, the access log).

use std::net::TcpListener;

use super::harness::*;
use crate::lane::Event;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_request_is_forwarded_and_its_response_relayed() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, GET_A);
    let mut up = lane.accept();
    let forwarded = lane.read_message(&mut up);
    assert!(forwarded.starts_with(b"GET /a HTTP/1.1\r\nHost: web\r\n"), "{}", String::from_utf8_lossy(&forwarded));
    for field in [&b"Via: 1.1 lane-test\r\n"[..], BLOCK, b"l5d-ctx-trace: ", b"l5d-reqid: "] {
        assert!(contains(&forwarded, field), "{} in {}", String::from_utf8_lossy(field), String::from_utf8_lossy(&forwarded));
    }
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
    let events = lane.wait_events("the result");
    assert_eq!(kinds(&events), ["done"]);
    assert_eq!(done(&events[0]), (BRANCH, 200, 1));
    assert_eq!(lane.host.ends, [(BRANCH, 0)], "the latency went to the balancer");
    assert_eq!(lane.connections(), 1, "the client connection is kept alive");
    assert_eq!(lane.core.pooled(), 1, "and so is the upstream one");
}

#[test]
fn a_head_in_several_pieces_is_forwarded_once_whole() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let pieces: Vec<&[u8]> = GET_A.chunks(7).collect();
    let (last, first) = pieces.split_last().expect("pieces");
    for piece in first {
        write(&mut client, piece);
        lane.settle();
        assert!(lane.upstream_pending().is_none(), "nothing forwarded before the head is whole");
    }
    write(&mut client, last);
    let mut up = lane.accept();
    assert!(lane.read_message(&mut up).starts_with(b"GET /a HTTP/1.1\r\n"));
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
}

#[test]
fn a_head_split_between_adoption_and_the_socket() {
    let mut lane = Lane::new();
    let (first, rest) = GET_A.split_at(10);
    let mut client = lane.client(first);
    lane.settle();
    assert!(lane.take_events().is_empty());
    write(&mut client, rest);
    let mut up = lane.accept();
    assert!(lane.read_message(&mut up).starts_with(b"GET /a HTTP/1.1\r\nHost: web\r\n"));
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
}

#[test]
fn a_small_body_is_waited_for_and_forwarded_with_the_head() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, b"POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nab");
    lane.settle();
    assert!(lane.upstream_pending().is_none(), "not sent before the whole body came");
    write(&mut client, b"cde");
    let mut up = lane.accept();
    let forwarded = lane.read_message(&mut up);
    assert!(forwarded.starts_with(b"POST /p HTTP/1.1\r\n") && forwarded.ends_with(b"\r\n\r\nabcde"));
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_upstream_connection() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, b"GET /1 HTTP/1.1\r\nHost: web\r\n\r\nGET /2 HTTP/1.1\r\nHost: web\r\n\r\nGET /3 HTTP/1.1\r\nHost: web\r\n\r\n");
    let mut up = lane.accept();
    let mut answers = Vec::new();
    for n in 1..=3 {
        let forwarded = lane.read_message(&mut up);
        assert!(forwarded.starts_with(format!("GET /{n} HTTP/1.1\r\n").as_bytes()), "request {n} in order");
        write(&mut up, format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr{n}").as_bytes());
        answers.push(lane.read_message(&mut client));
    }
    for (n, answer) in answers.iter().enumerate() {
        assert!(answer.ends_with(format!("\r\n\r\nr{}", n + 1).as_bytes()));
    }
    lane.settle();
    assert!(lane.upstream_pending().is_none());
    assert_eq!(lane.accepted, 1, "one upstream connection carried all three");
    let events = lane.take_events();
    let total: u64 = events.iter().map(|e| done(e).2).sum();
    assert_eq!(total, 3);
}

#[test]
fn a_declined_request_is_handed_over_with_the_exact_bytes() {
    let mut lane = Lane::new();
    let declined: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: elsewhere\r\n\r\nGET /next HTTP/1.1\r\nHost: web\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: web\r\nl5d-ctx-deadline: 1 2\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ];
    for bytes in declined {
        let mut client = lane.client(b"");
        write(&mut client, bytes);
        let events = lane.wait_events("a handoff");
        assert_eq!(kinds(&events), ["handoff"]);
        assert_eq!(handed_over(&events[0]), *bytes);
        assert_eq!(lane.connections(), 0);
    }
    assert!(lane.upstream_pending().is_none());
}

#[test]
fn after_a_forwarded_request_the_next_declined_one_is_handed_over_with_what_follows() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let rest: &[u8] = b"GET / HTTP/1.1\r\nHost: other\r\n\r\nGET /b HTTP/1.1\r\nHost: web\r\n\r\n";
    write(&mut client, &[GET_A, rest].concat());
    let mut up = lane.accept();
    lane.read_message(&mut up);
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
    let events = lane.wait_events("the handoff");
    assert_eq!(kinds(&events), ["handoff", "done"], "results come at the end of the call");
    assert_eq!(handed_over(&events[0]), rest);
}

#[test]
fn a_5xx_resumes_on_the_host_with_both_connections() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let request: &[u8] = b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabcGET /after HTTP/1.1\r\nHost: web\r\n\r\n";
    write(&mut client, request);
    let mut up = lane.accept();
    lane.read_message(&mut up);
    let answer: &[u8] = b"HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy";
    write(&mut up, answer);
    let events = lane.wait_events("the resume");
    assert_eq!(kinds(&events), ["resume"]);
    let Event::Resume { branch, slot, down_buf, head, up_buf, up_eof, up: up_sock, down, .. } = &events[0] else {
        unreachable!()
    };
    assert_eq!((*branch, *slot), (BRANCH, 0));
    assert_eq!(head.as_slice(), b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(down_buf.as_slice(), b"abcGET /after HTTP/1.1\r\nHost: web\r\n\r\n", "the body back in front");
    assert_eq!(up_buf.as_slice(), answer);
    assert!(!up_eof);
    assert_eq!(up_sock.peer_addr().expect("connected"), lane.up_addr);
    assert!(down.peer_addr().is_ok());
    assert_eq!(lane.connections(), 0);
    assert!(lane.host.ends.is_empty(), "the host ends this pick");
    let mut nothing = Vec::new();
    assert!(!read_available(&mut client, &mut nothing) && nothing.is_empty(), "the lane wrote nothing");
}

#[test]
fn an_unreachable_upstream_fails_and_hands_the_request_back() {
    let mut lane = Lane::new();
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    lane.route(BRANCH, vec![(0, closed)]); // the listener is gone: connections are refused
    let mut client = lane.client(b"");
    write(&mut client, GET_A);
    let events = lane.wait_events("the failure");
    assert_eq!(kinds(&events), ["failed", "handoff"]);
    assert!(matches!(events[0], Event::Failed { branch: BRANCH, slot: 0, .. }));
    assert_eq!(handed_over(&events[1]), GET_A);
}

#[test]
fn a_pick_the_route_does_not_know_is_abandoned_and_handed_over() {
    let mut lane = Lane::new();
    lane.route(BRANCH, vec![(3, lane.up_addr)]); // the balancer has slot 0 only
    let mut client = lane.client(b"");
    write(&mut client, GET_A);
    let events = lane.wait_events("the handoff");
    assert_eq!(kinds(&events), ["abandon", "handoff"]);
    assert!(matches!(events[0], Event::Abandon { branch: BRANCH, slot: 0, .. }));
    assert_eq!(handed_over(&events[1]), GET_A);
}

#[test]
fn no_endpoint_hands_the_request_over() {
    let mut lane = Lane::new();
    lane.host.balancers.get_mut(&BRANCH).expect("branch").remove(0).expect("removed");
    let mut client = lane.client(b"");
    write(&mut client, GET_A);
    let events = lane.wait_events("the handoff");
    assert_eq!(kinds(&events), ["handoff"]);
    assert_eq!(handed_over(&events[0]), GET_A);
}

#[test]
fn sampled_and_logged_requests_come_back_one_by_one() {
    let mut cfg = config();
    cfg.access_log = true;
    let mut lane = Lane::with(cfg, 1.0);
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
    let events = lane.wait_events("the results");
    assert_eq!(kinds(&events), ["access", "sampled", "done"]);
    let Event::Access { head, peer, status, length, .. } = &events[0] else { unreachable!() };
    assert_eq!((head.as_slice(), *status, *length), (GET_A, 200, 2));
    assert_eq!(*peer, Some(client.local_addr().expect("address").ip()));
    let Event::Sampled { method, target, peer, status, branch, .. } = &events[1] else { unreachable!() };
    assert_eq!((method.as_slice(), target.as_slice(), *status, *branch), (&b"GET"[..], &b"/a"[..], 200, BRANCH));
    assert_eq!(*peer, Some(client.local_addr().expect("address")));
}

#[test]
fn a_branch_is_released_once_no_route_or_exchange_holds_it() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    lane.core.clear_routes();
    assert!(lane.core.released().is_empty(), "the exchange in flight still holds it");
    write(&mut up, OK);
    lane.read_message(&mut client);
    lane.settle();
    assert_eq!(lane.core.released(), [BRANCH]);
    assert!(lane.core.released().is_empty(), "once");
    let events = lane.take_events();
    assert_eq!(kinds(&events), ["done"], "its events came first");
}

impl Lane {
    /// The upstream connection the lane opened for `request`, written on `client`.
    pub fn accept_after(&mut self, client: &mut std::net::TcpStream, request: &[u8]) -> std::net::TcpStream {
        write(client, request);
        self.accept()
    }

}
