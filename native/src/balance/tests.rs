//! Unit tests of the pure-Rust balancer (the Python tests in `tests/test_balance.py` cover both twins).

use super::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// tower `peak_ewma.rs` `compound_decay` (decay 1 s, seed 20 ms), times in seconds.
#[test]
fn tower_compound_decay() {
    let mut b = Balancer::new("ewma", 1.0, 0.020).unwrap();
    b.add(0, 0.0).unwrap();
    assert_eq!(b.pick(0.1, 0).unwrap(), 0);
    assert_eq!(b.pick(0.2, 0).unwrap(), 0);
    b.end(0, 0.3, 0.2).unwrap();
    assert!(close(b.load(0, 0.3).unwrap(), 0.4));
    b.end(0, 0.4, 0.2).unwrap();
    assert!(close(b.load(0, 0.4).unwrap(), 0.2));
    assert!(b.load(0, 1.4).unwrap() < 0.1);
    assert!(b.load(0, 11.4).unwrap() < 0.0001);
}

#[test]
fn p2c_pair_is_distinct_and_panic_counts() {
    let mut b = Balancer::new("p2c", 10.0, 0.03).unwrap();
    assert_eq!(b.pick(0.0, 7).unwrap(), -1);
    for s in 0..3 {
        b.add(s, 0.0).unwrap();
    }
    for s in 0..3 {
        b.set_down(s, true).unwrap();
    }
    assert!(b.pick(0.0, 5).unwrap() >= 0);
    assert_eq!(b.panics(), 1);
    assert_eq!(b.load(9, 0.0), Err(Error::Absent(9)));
    assert!(matches!(b.end(0, 0.0, f64::NAN), Err(Error::Rtt(x)) if x.is_nan()));
    assert_eq!(b.end(0, 0.0, -1.0), Err(Error::Rtt(-1.0)));
}
