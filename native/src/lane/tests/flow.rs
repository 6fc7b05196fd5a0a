//! Backpressure, the upstream pools (reuse, stale connections, the one resend), timeouts by
//! sweep, drain and close.

use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use super::harness::*;
use crate::lane::relay::HIGH_WATER;
use crate::lane::Event;

/// Answers one request on `up` and checks the client got it.
fn answer(lane: &mut Lane, client: &mut std::net::TcpStream, up: &mut std::net::TcpStream) {
    lane.read_message(up);
    write(up, OK);
    assert_eq!(lane.read_message(client), ok_relayed());
}

/// Writes up to `size` bytes of body on `up` until it stalls (100 refusals in a row); returns
/// how many were written.
pub(super) fn write_until_stalled(lane: &mut Lane, up: &mut std::net::TcpStream, size: usize) -> usize {
    let chunk = vec![b'x'; 1 << 16];
    let (mut sent, mut stalled, deadline) = (0, 0, Instant::now() + Duration::from_secs(20));
    while stalled < 100 && sent < size && Instant::now() < deadline {
        lane.poll();
        match up.write(&chunk[..chunk.len().min(size - sent)]) {
            Ok(n) => {
                sent += n;
                stalled = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                stalled += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => panic!("upstream write: {e}"),
        }
    }
    sent
}

#[test]
fn a_client_that_does_not_read_holds_the_upstream_back_until_it_does() {
    const SIZE: usize = 64 << 20;
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n");
    write(&mut up, head.as_bytes());
    let chunk = vec![b'x'; 1 << 16];
    // The upstream writes until it cannot: the client reads nothing, the lane stops reading.
    let mut sent = write_until_stalled(&mut lane, &mut up, SIZE);
    assert!(sent < SIZE / 2, "the upstream is held back ({sent} bytes sent)");
    let (out, unrelayed) = lane.core.buffered();
    assert!((HIGH_WATER..HIGH_WATER + (1 << 18)).contains(&out), "{out} bytes wait for the client");
    assert_eq!(unrelayed, 0);
    lane.settle();
    let (later, unrelayed) = lane.core.buffered();
    assert!(later < HIGH_WATER + (1 << 18) && unrelayed == 0, "still held back: {later} bytes wait");
    // The client reads: the body moves on to its end.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let relayed_head = |got: &[u8]| got.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4);
    while relayed_head(&got).is_none_or(|h| got.len() < h + SIZE) {
        assert!(Instant::now() < deadline, "the body did not come through ({} bytes)", got.len());
        lane.poll();
        read_available(&mut client, &mut got);
        if sent < SIZE {
            if let Ok(n) = up.write(&chunk[..chunk.len().min(SIZE - sent)]) {
                sent += n;
            }
        }
    }
    let at = relayed_head(&got).expect("a head");
    assert_eq!(got.len(), at + SIZE);
    assert!(got[at..].iter().all(|&c| c == b'x'));
    assert_eq!(kinds(&lane.wait_events("the result")), ["done"]);
}

#[test]
fn the_next_request_reuses_the_pooled_upstream_connection() {
    let mut lane = Lane::new();
    let mut first = lane.client(b"");
    let mut up = lane.accept_after(&mut first, GET_A);
    answer(&mut lane, &mut first, &mut up);
    lane.settle();
    assert_eq!(lane.core.pooled(), 1);
    let mut second = lane.client(b"");
    write(&mut second, GET_A);
    answer(&mut lane, &mut second, &mut up);
    lane.now += 2.0; // idle long enough to be checked before reuse: still open, still used
    write(&mut first, GET_A);
    answer(&mut lane, &mut first, &mut up);
    lane.settle();
    assert!(lane.upstream_pending().is_none());
    assert_eq!(lane.accepted, 1, "one upstream connection for the three requests");
    let total: u64 = lane.take_events().iter().map(|e| done(e).2).sum();
    assert_eq!(total, 3);
}

#[test]
fn a_pooled_connection_the_upstream_closes_leaves_the_pool() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    answer(&mut lane, &mut client, &mut up);
    lane.wait("pooled", |l| l.core.pooled() == 1);
    drop(up);
    lane.wait("evicted", |l| l.core.pooled() == 0);
    let mut up = lane.accept_after(&mut client, GET_A);
    answer(&mut lane, &mut client, &mut up);
    assert_eq!(lane.accepted, 2);
}

#[test]
fn a_stale_pooled_connection_is_found_closed_before_reuse() {
    let mut lane = Lane::new();
    let mut first = lane.client(b"");
    let mut up = lane.accept_after(&mut first, GET_A);
    answer(&mut lane, &mut first, &mut up);
    lane.settle();
    drop(up);
    std::thread::sleep(Duration::from_millis(20)); // the FIN arrives; the lane does not poll
    lane.now += 2.0; // idle long enough to be checked: found closed, not used
    let mut second = lane.client(GET_A);
    let mut up = lane.accept();
    answer(&mut lane, &mut second, &mut up);
    assert_eq!(lane.accepted, 2);
    assert_eq!(kinds(&lane.take_events()), ["done", "done"]);
}

#[test]
fn a_pooled_connection_closed_under_a_request_is_resent_on_a_new_one() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    answer(&mut lane, &mut client, &mut up);
    assert_eq!(kinds(&lane.wait_events("the first result")), ["done"]);
    write(&mut client, GET_A);
    let sent = lane.read_message(&mut up);
    drop(up); // the upstream closes it without answering
    let mut again = lane.accept();
    assert_eq!(lane.read_message(&mut again), sent, "the same request, resent");
    write(&mut again, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
    assert_eq!(kinds(&lane.wait_events("the second result")), ["done"]);
    assert_eq!(lane.accepted, 2);
}

#[test]
fn a_request_is_resent_once_only() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    answer(&mut lane, &mut client, &mut up);
    lane.wait_events("the first result");
    write(&mut client, GET_A);
    lane.read_message(&mut up);
    drop(up);
    let mut again = lane.accept();
    lane.read_message(&mut again);
    drop(again); // closed without an answer again: the host takes the exchange over
    let events = lane.wait_events("the resume");
    assert_eq!(kinds(&events), ["resume"]);
    assert!(matches!(&events[0], Event::Resume { up_eof: true, up_buf, .. } if up_buf.is_empty()));
    assert_eq!(lane.accepted, 2);
}

#[test]
fn a_pooled_connection_found_closed_on_reuse_is_resent_to() {
    let mut lane = Lane::new();
    let mut first = lane.client(b"");
    let mut up = lane.accept_after(&mut first, GET_A);
    answer(&mut lane, &mut first, &mut up);
    lane.settle();
    lane.take_events();
    drop(up);
    std::thread::sleep(Duration::from_millis(20)); // closed, and the lane has not seen it
    let mut second = lane.client(GET_A); // reused at once (idle for less than CHECK_AFTER)
    let mut up = lane.accept();
    answer(&mut lane, &mut second, &mut up);
    assert_eq!(kinds(&lane.wait_events("the result")), ["done"]);
    assert_eq!(lane.accepted, 2);
}

#[test]
fn a_slow_head_gets_the_timeout_response_then_the_connection_closes() {
    for partial in [&b"GET /a HTTP/1.1\r\nHo"[..], b"POST /p HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\n\r\nab"] {
        let mut lane = Lane::new();
        let mut client = lane.client(b"");
        write(&mut client, partial);
        lane.settle();
        lane.sweep(T0 + HEADER_TIMEOUT - 0.5);
        assert_eq!(lane.connections(), 1);
        lane.sweep(T0 + HEADER_TIMEOUT + 0.5); // the head was first seen at T0 (plus the time a poll takes)
        assert_eq!(lane.connections(), 0);
        assert_eq!(lane.read_to_eof(&mut client), TIMEOUT_RESPONSE);
        assert!(lane.take_events().is_empty());
    }
}

#[test]
fn an_idle_connection_closes_after_the_idle_timeout_from_its_last_response() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    lane.sweep(T0 + IDLE_TIMEOUT - 0.5);
    assert_eq!(lane.connections(), 1);
    lane.now = T0 + 5.0;
    let mut up = lane.accept_after(&mut client, GET_A);
    answer(&mut lane, &mut client, &mut up);
    lane.settle();
    lane.sweep(T0 + IDLE_TIMEOUT + 1.0);
    assert_eq!(lane.connections(), 1, "idle since its response");
    lane.sweep(T0 + 5.5 + IDLE_TIMEOUT); // its response went out at T0 + 5 (plus the time a poll takes)
    assert_eq!(lane.connections(), 0);
    assert_eq!(lane.read_to_eof(&mut client), b"");
}

#[test]
fn a_connection_waiting_on_its_upstream_is_not_swept() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    lane.sweep(T0 + 100.0);
    assert_eq!(lane.connections(), 1);
    write(&mut up, OK);
    assert_eq!(lane.read_message(&mut client), ok_relayed());
}

#[test]
fn drain_closes_idle_connections_now_and_busy_ones_after_their_response() {
    let mut lane = Lane::new();
    let mut idle = lane.client(b"");
    let mut busy = lane.client(b"");
    let mut up = lane.accept_after(&mut busy, GET_A);
    lane.read_message(&mut up);
    let server = lane.server;
    lane.core.drain(&mut lane.host, server);
    assert_eq!(lane.connections(), 1);
    assert_eq!(lane.read_to_eof(&mut idle), b"");
    write(&mut up, OK);
    assert_eq!(lane.read_to_eof(&mut busy), ok_relayed());
    assert_eq!(lane.connections(), 0);
    assert_eq!(kinds(&lane.take_events()), ["done"]);
}

#[test]
fn close_abandons_the_exchanges_in_flight() {
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    lane.core.close(&mut lane.host);
    assert_eq!(kinds(&lane.take_events()), ["abandon"]);
    assert_eq!(lane.read_to_eof(&mut client), b"");
    assert_eq!(lane.read_to_eof(&mut up), b"");
    assert_eq!(lane.core.released(), [BRANCH]);
}

#[test]
fn a_client_that_stops_reading_is_timed_out() {
    const SIZE: usize = 64 << 20;
    let mut lane = Lane::new();
    let mut client = lane.client(b"");
    let mut up = lane.accept_after(&mut client, GET_A);
    lane.read_message(&mut up);
    write(&mut up, format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes());
    write_until_stalled(&mut lane, &mut up, SIZE);
    lane.sweep(T0 + 1000.0);
    assert_eq!(lane.connections(), 0);
}
