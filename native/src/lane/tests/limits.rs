//! Limits: the write timeout, `maxConcurrentRequests` shared with the host, deadlines (the
//! attempt's, the request's, an incoming `l5d-ctx-deadline`), drain with pipelined requests, and
//! the slot tables giving memory back.

use std::net::Shutdown;

use super::flow::write_until_stalled;
use super::harness::*;
use crate::lane::{Event, Expired};

/// A response larger than every buffer between the lane and a client that reads nothing.
const LARGE: usize = 64 << 20;

#[test]
fn a_stalled_client_is_closed_with_its_exchange_and_upstream() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, format!("HTTP/1.1 200 OK\r\nContent-Length: {LARGE}\r\n\r\n").as_bytes());
    write_until_stalled(&mut lane, &mut up, LARGE);
    lane.sweep(T0 + WRITE_TIMEOUT / 2.0);
    assert_eq!(lane.connections(), 1, "not stalled for long enough yet");
    lane.sweep(T0 + WRITE_TIMEOUT + 0.5);
    assert_eq!(lane.connections(), 0);
    // the response had begun: the request counts as answered (as on the trio path), its pick ends
    let events = lane.take_events();
    assert_eq!(kinds(&events), ["done"]);
    assert_eq!(done(&events[0]), (BRANCH, 200, 1));
    assert_eq!(lane.host.ends, [(BRANCH, 0)]);
    let mut rest = Vec::new();
    lane.wait("the upstream closed", |_| read_available(&mut up, &mut rest));
    assert_eq!(lane.core.pooled(), 0);
}

#[test]
fn a_client_that_reads_slowly_is_not_timed_out() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, format!("HTTP/1.1 200 OK\r\nContent-Length: {LARGE}\r\n\r\n").as_bytes());
    write_until_stalled(&mut lane, &mut up, LARGE);
    let mut got = Vec::new();
    let chunk = vec![b'x'; 1 << 16];
    for k in 1..=4 {
        // some progress in every write timeout
        let before = got.len();
        lane.wait("progress", |l| {
            let _ = std::io::Write::write(&mut up, &chunk);
            read_available(&mut client, &mut got);
            l.poll();
            got.len() > before + (1 << 16)
        });
        lane.now = T0 + f64::from(k) * WRITE_TIMEOUT * 0.75;
        lane.poll();
        lane.sweep(lane.now);
        assert_eq!(lane.connections(), 1, "progress keeps it open");
    }
}

#[test]
fn max_concurrent_requests_counts_the_hosts_requests_with_the_lanes() {
    let mut cfg = config();
    cfg.max_concurrent = Some(2);
    let mut lane = Lane::with(cfg, 0.0);
    let server = lane.server;
    lane.core.set_active(server, 1);
    let mut first = lane.client(b"");
    let mut up = lane.accept_after(&mut first, GET_A);
    lane.read_message(&mut up);
    assert_eq!(lane.core.in_flight(server), 1);
    // 1 in the host and 1 in the lane: the next request is the host's to refuse
    let _second = lane.client(GET_A);
    let events = lane.take_events();
    assert_eq!(kinds(&events), ["handoff"]);
    assert_eq!(handed_over(&events[0]), GET_A);
    assert!(lane.upstream_pending().is_none());
    lane.core.set_active(server, 0);
    let mut third = lane.client(GET_A);
    let mut up3 = lane.accept();
    assert_eq!(lane.core.in_flight(server), 2);
    answer_on(&mut lane, &mut third, &mut up3);
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut first), ok_relayed());
    assert_eq!(lane.core.in_flight(server), 0);
}

fn answer_on(lane: &mut Lane, client: &mut std::net::TcpStream, up: &mut std::net::TcpStream) {
    lane.read_message(up);
    write(up, OK);
    assert_eq!(lane.read_message(client), ok_relayed());
}

/// The `l5d-ctx-deadline` value of a forwarded head: `(timestamp, deadline)`.
fn forwarded_deadline(head: &[u8]) -> Option<(u64, u64)> {
    let text = String::from_utf8_lossy(head);
    let value = text.lines().find_map(|l| l.strip_prefix("l5d-ctx-deadline: "))?;
    let (a, b) = value.split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn expired_of(event: &Event) -> Expired {
    match event {
        Event::Resume { expired, .. } => *expired,
        other => panic!("not a resume: {other:?}"),
    }
}

#[test]
fn an_attempt_timeout_hands_the_exchange_over_saying_so() {
    let mut lane = Lane::new();
    let up_addr = lane.up_addr;
    lane.route_timed(BRANCH, vec![(0, up_addr)], None, Some(0.05));
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    let sent = lane.read_message(&mut up);
    assert_eq!(forwarded_deadline(&sent), None, "an attempt timeout alone sends no deadline");
    lane.settle();
    assert!(lane.take_events().is_empty(), "not yet, by the host's clock");
    lane.now = T0 + 0.06;
    let events = lane.wait_events("the resume");
    assert_eq!(kinds(&events), ["resume"]);
    assert_eq!(expired_of(&events[0]), Expired::Attempt);
    assert!(matches!(&events[0], Event::Resume { head, up_buf, .. } if head == GET_A && up_buf.is_empty()));
    assert_eq!((lane.connections(), lane.core.in_flight(lane.server)), (0, 0));
}

#[test]
fn a_total_timeout_sends_the_deadline_and_hands_over_when_it_passes() {
    let mut lane = Lane::new();
    let up_addr = lane.up_addr;
    lane.route_timed(BRANCH, vec![(0, up_addr)], Some(0.25), Some(10.0));
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    let sent = lane.read_message(&mut up);
    let (ts, dl) = forwarded_deadline(&sent).expect("a deadline field");
    assert_eq!(dl - ts, 250_000_000);
    let text = String::from_utf8_lossy(&sent);
    assert!(text.ends_with(&format!("l5d-reqid: {}\r\nl5d-ctx-deadline: {ts} {dl}\r\n\r\n", text.split("l5d-reqid: ").nth(1).unwrap().split("\r\n").next().unwrap())));
    lane.now = T0 + 0.3;
    let events = lane.wait_events("the resume");
    assert_eq!(expired_of(&events[0]), Expired::Request);
}

#[test]
fn an_incoming_deadline_is_kept_when_tighter() {
    let mut lane = Lane::new();
    let up_addr = lane.up_addr;
    lane.route_timed(BRANCH, vec![(0, up_addr)], Some(100.0), None);
    let far = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 + 50_000_000_000;
    let mut client = lane.client(b"");
    let request = format!("GET /a HTTP/1.1\r\nHost: web\r\nl5d-ctx-deadline: 3 {far}\r\n\r\n");
    let mut up = lane.accept_after(&mut client, request.as_bytes());
    let (_, dl) = forwarded_deadline(&lane.read_message(&mut up)).expect("a deadline field");
    assert_eq!(dl, far);
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
}

#[test]
fn a_request_whose_deadline_passed_is_handed_over_unsent() {
    let mut lane = Lane::new();
    let request: &[u8] = b"GET /a HTTP/1.1\r\nHost: web\r\nl5d-ctx-deadline: 1 2\r\n\r\n";
    let _client = lane.client(request);
    let events = lane.take_events();
    assert_eq!(kinds(&events), ["handoff"]);
    assert_eq!(handed_over(&events[0]), request);
    assert!(lane.upstream_pending().is_none());
    assert!(lane.host.ends.is_empty(), "nothing was picked");
}

#[test]
fn the_request_deadline_cuts_a_body_short_as_a_cancellation_would() {
    let mut lane = Lane::new();
    let up_addr = lane.up_addr;
    lane.route_timed(BRANCH, vec![(0, up_addr)], Some(0.05), None);
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    lane.settle();
    lane.now = T0 + 0.1;
    let got = lane.read_to_eof(&mut client);
    assert!(got.ends_with(b"Content-Length: 10\r\n\r\nabc"), "{}", String::from_utf8_lossy(&got));
    assert_eq!(kinds(&lane.wait_events("the result")), ["done"]);
    assert_eq!((lane.connections(), lane.core.pooled()), (0, 0));
}

#[test]
fn drain_answers_the_requests_already_received_then_closes() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, &[GET_A, GET_A, b"GET /partial HTTP/1.1\r\nHo"].concat());
    let mut up = lane.accept();
    lane.read_message(&mut up);
    let server = lane.server;
    lane.core.drain(&mut lane.host, server);
    write(&mut up, OK);
    lane.read_message(&mut up); // the second one, received whole before the drain, goes out too
    write(&mut up, OK);
    assert_eq!(lane.read_to_eof(&mut client), [ok_relayed(), ok_relayed()].concat(), "not the partial one");
    assert_eq!(lane.connections(), 0);
}

#[test]
fn drain_serves_a_head_that_was_arriving() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    write(&mut client, b"GET /a HTTP/1.1\r\n");
    lane.settle();
    let server = lane.server;
    lane.core.drain(&mut lane.host, server);
    assert_eq!(lane.connections(), 1);
    let mut up = lane.accept_after(&mut client, b"Host: web\r\n\r\n");
    lane.read_message(&mut up);
    write(&mut up, OK);
    assert_eq!(lane.read_to_eof(&mut client), ok_relayed());
}

#[test]
fn the_slot_tables_give_their_unused_tail_back() {
    let mut lane = Lane::new();
    let clients: Vec<_> = (0..300).map(|_| lane.client(b"")).collect();
    let mut busy = lane.client(b"");
    let mut up = lane.accept_after(&mut busy, GET_A);
    lane.read_message(&mut up);
    assert_eq!(lane.core.slots(), (301, 1));
    for c in &clients {
        c.shutdown(Shutdown::Write).expect("shutdown");
    }
    drop(clients);
    lane.wait("the closes", |l| l.connections() == 1);
    lane.sweep(T0);
    assert_eq!(lane.core.slots(), (301, 1), "the busy one holds the last slot");
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut busy), ok_relayed());
    drop(busy);
    lane.wait("the last close", |l| l.connections() == 0);
    lane.sweep(T0);
    assert_eq!(lane.core.slots(), (0, 1), "the pooled upstream keeps its slot");
    let mut again = lane.client(GET_A);
    lane.read_message(&mut up);
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut again), ok_relayed());
    assert_eq!(lane.core.slots(), (1, 1));
}
