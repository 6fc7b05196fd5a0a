//! The end of a stream in every state: the client's (before any byte, mid-head, while a small
//! body is awaited, with the request, while the upstream responds, mid-body, gone with a reset)
//! and the upstream's (before the response, mid-head, mid-body of either framing).

use std::net::Shutdown;

use super::harness::*;
use crate::lane::Event;

const CHUNKED_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nl5d-success-class: 1.0\r\nVia: 1.1 lane-test\r\nTransfer-Encoding: chunked\r\n\r\n";

#[test]
fn client_eof_before_any_byte_closes_quietly() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    client.shutdown(Shutdown::Write).expect("shutdown");
    lane.wait("the close", |l| l.connections() == 0);
    assert_eq!(lane.read_to_eof(&mut client), b"");
    assert!(lane.take_events().is_empty());
}

#[test]
fn client_eof_mid_head_hands_over_what_came() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, b"GET /a HTT");
    lane.settle();
    assert!(lane.take_events().is_empty(), "a partial head waits");
    client.shutdown(Shutdown::Write).expect("shutdown");
    let events = lane.wait_events("the handoff");
    assert_eq!(kinds(&events), ["handoff"]);
    assert_eq!(handed_over(&events[0]), b"GET /a HTT");
}

#[test]
fn client_eof_while_a_small_body_is_awaited_hands_over_what_came() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let sent: &[u8] = b"POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nabc";
    write(&mut client, sent);
    lane.settle();
    assert!(lane.take_events().is_empty(), "the body is waited for");
    client.shutdown(Shutdown::Write).expect("shutdown");
    let events = lane.wait_events("the handoff");
    assert_eq!(kinds(&events), ["handoff"]);
    assert_eq!(handed_over(&events[0]), sent);
    assert!(lane.upstream_pending().is_none());
}

#[test]
fn client_eof_right_after_the_request_is_answered_then_closed() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, GET_A);
    lane.poll(); // the request is read, the upstream connection opened
    client.shutdown(Shutdown::Write).expect("shutdown");
    let mut up = lane.accept();
    lane.read_message(&mut up);
    write(&mut up, OK);
    assert_eq!(lane.read_to_eof(&mut client), ok_relayed());
    lane.wait("the close", |l| l.connections() == 0);
    let events = lane.take_events();
    assert_eq!(kinds(&events), ["done"]);
    assert_eq!(lane.core.pooled(), 1, "the upstream connection is still good");
}

/// A FIN that comes with the last bytes raises no edge of its own, and a read shorter than asked
/// is taken to have emptied the socket: the lane does not see this end of stream.
#[test]
fn client_eof_with_a_partial_head_hands_over_at_once() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, b"GET /a HTT");
    client.shutdown(Shutdown::Write).expect("shutdown");
    let events = lane.wait_events("the handoff");
    assert_eq!(kinds(&events), ["handoff"]);
    assert!(matches!(&events[0], Event::Handoff { received, eof: true, .. } if received == b"GET /a HTT"));
}

#[test]
fn client_eof_with_pipelined_requests_answers_them_all_then_closes() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, &[GET_A, GET_A].concat());
    client.shutdown(Shutdown::Write).expect("shutdown");
    let mut up = lane.accept();
    for _ in 0..2 {
        lane.read_message(&mut up);
        write(&mut up, OK);
    }
    assert_eq!(lane.read_to_eof(&mut client), [ok_relayed(), ok_relayed()].concat());
    lane.wait("the close", |l| l.connections() == 0);
}

#[test]
fn client_eof_mid_small_body_hands_over_at_once_with_eof() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let sent: &[u8] = b"POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 10\r\n\r\nabc";
    write(&mut client, sent);
    client.shutdown(Shutdown::Write).expect("shutdown");
    let events = lane.wait_events("the handoff");
    assert!(matches!(&events[0], Event::Handoff { received, eof: true, .. } if received == sent));
    assert!(lane.upstream_pending().is_none());
}

#[test]
fn client_eof_with_the_request_closes_after_the_response() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, GET_A);
    client.shutdown(Shutdown::Write).expect("shutdown");
    let mut up = lane.accept();
    lane.read_message(&mut up);
    write(&mut up, OK);
    assert_eq!(lane.read_to_eof(&mut client), ok_relayed());
}

#[test]
fn client_eof_while_the_upstream_responds_is_answered_then_closed() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    client.shutdown(Shutdown::Write).expect("shutdown");
    lane.settle();
    assert_eq!(lane.connections(), 1, "the response is still awaited");
    write(&mut up, OK);
    assert_eq!(lane.read_to_eof(&mut client), ok_relayed());
    assert_eq!(kinds(&lane.wait_events("the result")), ["done"]);
}

#[test]
fn client_eof_mid_body_gets_the_rest_then_closes() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc");
    lane.settle();
    client.shutdown(Shutdown::Write).expect("shutdown");
    lane.settle();
    write(&mut up, b"def");
    let got = lane.read_to_eof(&mut client);
    assert!(got.ends_with(b"Content-Length: 6\r\n\r\nabcdef"), "{}", String::from_utf8_lossy(&got));
    assert_eq!(kinds(&lane.wait_events("the result")), ["done"]);
}

#[test]
fn a_client_gone_before_the_response_head_abandons_the_exchange() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, b"GET /1 HTTP/1.1\r\nHost: web\r\n\r\nGET /2 HTTP/1.1\r\nHost: web\r\n\r\n");
    let mut up = lane.accept();
    lane.read_message(&mut up);
    write(&mut up, OK);
    lane.read_message(&mut up); // the second request went out: the first response was relayed
    assert_eq!(kinds(&lane.take_events()), ["done"]);
    drop(client); // with the first response unread: a reset
    let events = lane.wait_events("the abandon");
    assert_eq!(kinds(&events), ["abandon"]);
    assert!(matches!(events[0], Event::Abandon { branch: BRANCH, slot: 0, .. }));
    assert_eq!(lane.connections(), 0);
    assert_eq!(lane.read_to_eof(&mut up), b"", "the upstream connection is closed");
    assert_eq!(lane.core.pooled(), 0);
}

#[test]
fn upstream_eof_before_the_response_resumes_on_the_host() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    drop(up);
    let events = lane.wait_events("the resume");
    assert_eq!(kinds(&events), ["resume"]);
    let Event::Resume { up_buf, up_eof, head, .. } = &events[0] else { unreachable!() };
    assert_eq!((up_buf.as_slice(), *up_eof, head.as_slice()), (&b""[..], true, GET_A));
    assert_eq!(lane.accepted, 1, "a new connection is not resent to");
}

#[test]
fn upstream_eof_mid_head_resumes_with_what_came() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, b"HTTP/1.1 200 OK\r\nContent-");
    lane.settle();
    assert!(lane.take_events().is_empty(), "a partial head waits");
    drop(up);
    let events = lane.wait_events("the resume");
    assert_eq!(kinds(&events), ["resume"]);
    let Event::Resume { up_buf, up_eof, .. } = &events[0] else { unreachable!() };
    assert_eq!((up_buf.as_slice(), *up_eof), (&b"HTTP/1.1 200 OK\r\nContent-"[..], true));
}

#[test]
fn upstream_eof_mid_content_length_body_cuts_the_response_short() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    lane.settle();
    drop(up);
    let got = lane.read_to_eof(&mut client);
    assert!(got.ends_with(b"Content-Length: 10\r\n\r\nabc"), "{}", String::from_utf8_lossy(&got));
    let events = lane.wait_events("the result");
    assert_eq!(kinds(&events), ["done"]);
    assert_eq!(done(&events[0]), (BRANCH, 200, 1));
    assert_eq!((lane.connections(), lane.core.pooled()), (0, 0));
}

#[test]
fn upstream_eof_mid_chunked_body_cuts_the_response_short() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n3\r\nab");
    lane.settle();
    drop(up);
    let got = lane.read_to_eof(&mut client);
    assert_eq!(got, [CHUNKED_HEAD, b"5\r\nhello\r\n3\r\nab"].concat());
    assert_eq!(kinds(&lane.wait_events("the result")), ["done"]);
    assert_eq!((lane.connections(), lane.core.pooled()), (0, 0));
}

#[test]
fn a_chunked_body_is_reframed_with_its_trailers_filtered() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    let body: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\nConnection: x\r\n\r\n";
    for piece in [&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..], &body[..12], &body[12..30], &body[30..]] {
        write(&mut up, piece);
        lane.settle();
    }
    let want = [CHUNKED_HEAD, b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n"].concat();
    assert_eq!(lane.read_n(&mut client, want.len()), want);
    assert_eq!(kinds(&lane.take_events()), ["done"]);
    assert_eq!((lane.connections(), lane.core.pooled()), (1, 1));
}

#[test]
fn a_bad_chunk_cuts_the_response_short() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY");
    let got = lane.read_to_eof(&mut client);
    assert_eq!(got, [CHUNKED_HEAD, b"2\r\nab\r\n"].concat());
    assert_eq!((lane.connections(), lane.core.pooled()), (0, 0));
}
