//! Load balancing over one client's endpoints, in pure Rust: the native twin of `pyproxy/_pure/balance.py`.
//!
//! The Python file is the specification (rules 1-7 in its docstring); this file follows it step by
//! step, in the same order of floating-point operations, so both twins return the same bits. In
//! short: slots are small caller-assigned ints; the eligible (not down) slots are kept in a vector
//! so a p2c pick is O(1) in the number of endpoints; with none eligible the pick is made among all
//! of them and counted (panic mode); `pick` also starts the request; Peak-EWMA cost is in seconds.
//!
//! No clock and no RNG here: the caller passes `now` (monotonic seconds) and a 64-bit `draw`.

#![forbid(unsafe_code)]

/// Slots are `0..MAX_SLOTS`; the endpoint table is indexed by slot.
pub const MAX_SLOTS: usize = 1 << 16;
/// Finagle `PeakEwma`'s `Penalty` (`Long.MaxValue >> 16` ns) in seconds: the load of an endpoint whose
/// cost decayed to exactly 0 while requests are in flight, and the cap on RTT samples.
pub const PENALTY_S: f64 = 140_737.488_355_327;
const NONE: u32 = u32::MAX;

/// Linkerd 1.x `loadBalancer.kind`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Ewma,
    P2c,
    RoundRobin,
    Heap,
}

impl Kind {
    /// The kind of a Linkerd config name (`ewma`, `p2c`, `roundRobin`, `heap`).
    pub fn from_name(name: &str) -> Option<Kind> {
        match name {
            "ewma" => Some(Kind::Ewma),
            "p2c" => Some(Kind::P2c),
            "roundRobin" => Some(Kind::RoundRobin),
            "heap" => Some(Kind::Heap),
            _ => None,
        }
    }
}

/// A rejected argument; the binding turns it into the pure twin's exception and message.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Error {
    Kind,
    DecayS(f64),
    DefaultRtt(f64),
    Slot(i64),
    Now(f64),
    Rtt(f64),
    /// A query (`load`, `pending`, `cost`) about a slot that holds no endpoint.
    Absent(i64),
}

struct Endpoint {
    /// Peak-EWMA RTT estimate, seconds (ewma only).
    cost: f64,
    /// Time of the last observation; only moves forward.
    stamp: f64,
    pending: u64,
    down: bool,
    /// Positions in `Balancer::live` (NONE while down), `all` and `heap` (heap only).
    live_at: u32,
    all_at: u32,
    heap_at: u32,
}

/// The endpoints of one client and their load.
pub struct Balancer {
    kind: Kind,
    tau: f64,
    seed: f64,
    table: Vec<Option<Endpoint>>,
    all: Vec<u32>,
    live: Vec<u32>,
    heap: Vec<u32>,
    rr_last: i64,
    panics: u64,
}

fn check_slot(slot: i64) -> Result<usize, Error> {
    match usize::try_from(slot) {
        Ok(s) if s < MAX_SLOTS => Ok(s),
        _ => Err(Error::Slot(slot)),
    }
}

fn check_now(now: f64) -> Result<(), Error> {
    if now.is_finite() {
        Ok(())
    } else {
        Err(Error::Now(now))
    }
}

/// Swap-removes `items[i]`; returns the slot moved into position `i`, if any.
fn unlist(items: &mut Vec<u32>, i: u32) -> Option<u32> {
    let i = i as usize;
    items.swap_remove(i);
    items.get(i).copied()
}

// === impl Balancer ===

impl Balancer {
    /// A balancer of `kind` with Peak-EWMA decay time `decay_s` and seed cost `default_rtt_s`.
    pub fn new(kind: &str, decay_s: f64, default_rtt_s: f64) -> Result<Balancer, Error> {
        let kind = Kind::from_name(kind).ok_or(Error::Kind)?;
        if !(decay_s.is_finite() && decay_s > 0.0) {
            return Err(Error::DecayS(decay_s));
        }
        if !(default_rtt_s > 0.0 && default_rtt_s <= PENALTY_S) {
            return Err(Error::DefaultRtt(default_rtt_s));
        }
        Ok(Balancer {
            kind,
            tau: decay_s,
            seed: default_rtt_s,
            table: Vec::new(),
            all: Vec::new(),
            live: Vec::new(),
            heap: Vec::new(),
            rr_last: -1,
            panics: 0,
        })
    }

    fn get(&self, s: usize) -> Option<&Endpoint> {
        self.table.get(s).and_then(Option::as_ref)
    }

    fn ep(&mut self, s: u32) -> &mut Endpoint {
        match self.table.get_mut(s as usize) {
            Some(Some(ep)) => ep,
            _ => unreachable!("slot {s} is listed but absent"),
        }
    }

    /// Adds an endpoint (cost `default_rtt_s`, stamped `now`); a present slot keeps its state.
    pub fn add(&mut self, slot: i64, now: f64) -> Result<(), Error> {
        let s = check_slot(slot)?;
        check_now(now)?;
        if self.get(s).is_some() {
            return Ok(());
        }
        if s >= self.table.len() {
            self.table.resize_with(s + 1, || None);
        }
        let heap_at = if self.kind == Kind::Heap {
            self.heap.len() as u32
        } else {
            NONE
        };
        self.table[s] = Some(Endpoint {
            cost: self.seed,
            stamp: now,
            pending: 0,
            down: false,
            live_at: self.live.len() as u32,
            all_at: self.all.len() as u32,
            heap_at,
        });
        self.all.push(s as u32);
        self.live.push(s as u32);
        if self.kind == Kind::Heap {
            self.heap.push(s as u32);
            self.sift(heap_at as usize);
        }
        Ok(())
    }

    /// Removes an endpoint; an absent slot is ignored.
    pub fn remove(&mut self, slot: i64) -> Result<(), Error> {
        let s = check_slot(slot)?;
        let Some(ep) = self.table.get_mut(s).and_then(Option::take) else {
            return Ok(());
        };
        if !ep.down {
            if let Some(moved) = unlist(&mut self.live, ep.live_at) {
                self.ep(moved).live_at = ep.live_at;
            }
        }
        if let Some(moved) = unlist(&mut self.all, ep.all_at) {
            self.ep(moved).all_at = ep.all_at;
        }
        if self.kind == Kind::Heap {
            if let Some(moved) = unlist(&mut self.heap, ep.heap_at) {
                self.ep(moved).heap_at = ep.heap_at;
                self.sift(ep.heap_at as usize);
            }
        }
        while matches!(self.table.last(), Some(None)) {
            self.table.pop();
        }
        Ok(())
    }

    /// Marks an endpoint down (not eligible) or up again; an absent slot is ignored.
    pub fn set_down(&mut self, slot: i64, down: bool) -> Result<(), Error> {
        let s = check_slot(slot)?;
        let live_len = self.live.len() as u32;
        let Some(ep) = self.table.get_mut(s).and_then(Option::as_mut) else {
            return Ok(());
        };
        if ep.down == down {
            return Ok(());
        }
        ep.down = down;
        let (live_at, heap_at) = (ep.live_at, ep.heap_at);
        if down {
            ep.live_at = NONE;
            if let Some(moved) = unlist(&mut self.live, live_at) {
                self.ep(moved).live_at = live_at;
            }
        } else {
            ep.live_at = live_len;
            self.live.push(s as u32);
        }
        if self.kind == Kind::Heap {
            self.sift(heap_at as usize);
        }
        Ok(())
    }

    /// The number of endpoints (down ones included).
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there is no endpoint at all.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Every slot, ascending.
    pub fn slots(&self) -> Vec<usize> {
        (0..self.table.len())
            .filter(|&s| self.table[s].is_some())
            .collect()
    }

    /// How many picks found no eligible endpoint and chose among all of them.
    pub fn panics(&self) -> u64 {
        self.panics
    }

    /// Chooses an endpoint for one request and starts the request there; -1 when there is none.
    pub fn pick(&mut self, now: f64, draw: u64) -> Result<i64, Error> {
        check_now(now)?;
        if self.kind == Kind::Heap {
            let Some(&s) = self.heap.first() else {
                return Ok(-1);
            };
            let ep = self.ep(s);
            let down = ep.down;
            ep.pending += 1;
            if down {
                self.panics += 1;
            }
            self.sift(0);
            return Ok(i64::from(s));
        }
        let panic = self.live.is_empty();
        if panic {
            if self.all.is_empty() {
                return Ok(-1);
            }
            self.panics += 1;
        }
        let s = if self.kind == Kind::RoundRobin {
            self.next_round_robin(panic)
        } else {
            let cands = if panic { &self.all } else { &self.live };
            let n = cands.len() as u64;
            if n == 1 {
                cands[0]
            } else {
                let a = (draw & 0xFFFF_FFFF) % n;
                let mut b = (draw >> 32) % (n - 1);
                if b >= a {
                    b += 1;
                }
                let (sa, sb) = (cands[a as usize], cands[b as usize]);
                // `<=`: a tie goes to `a`, which is as random as `b`.
                let a_wins = if self.kind == Kind::Ewma {
                    self.load_of(sa, now) <= self.load_of(sb, now)
                } else {
                    self.ep(sa).pending <= self.ep(sb).pending
                };
                if a_wins {
                    sa
                } else {
                    sb
                }
            }
        };
        self.ep(s).pending += 1;
        Ok(i64::from(s))
    }

    /// Ends one request (`pending -= 1`, saturating) and, for ewma, observes its RTT; a removed slot
    /// is ignored.
    pub fn end(&mut self, slot: i64, now: f64, rtt_s: f64) -> Result<(), Error> {
        let s = check_slot(slot)?;
        check_now(now)?;
        if !(rtt_s.is_finite() && rtt_s >= 0.0) {
            return Err(Error::Rtt(rtt_s));
        }
        let (kind, tau) = (self.kind, self.tau);
        let Some(ep) = self.table.get_mut(s).and_then(Option::as_mut) else {
            return Ok(());
        };
        ep.pending = ep.pending.saturating_sub(1);
        match kind {
            Kind::Ewma => observe(ep, tau, now, rtt_s.min(PENALTY_S)),
            Kind::Heap => {
                let at = ep.heap_at as usize;
                self.sift(at);
            }
            Kind::P2c | Kind::RoundRobin => {}
        }
        Ok(())
    }

    /// The load a pick compares: ewma `cost * (pending + 1)` after decay, p2c and heap `pending`,
    /// roundRobin 0.
    pub fn load(&mut self, slot: i64, now: f64) -> Result<f64, Error> {
        let s = check_slot(slot)?;
        check_now(now)?;
        let pending = self.get(s).ok_or(Error::Absent(slot))?.pending;
        Ok(match self.kind {
            Kind::Ewma => self.load_of(s as u32, now),
            Kind::RoundRobin => 0.0,
            Kind::P2c | Kind::Heap => pending as f64,
        })
    }

    /// Requests picked and not yet ended on this endpoint.
    pub fn pending(&self, slot: i64) -> Result<u64, Error> {
        let s = check_slot(slot)?;
        Ok(self.get(s).ok_or(Error::Absent(slot))?.pending)
    }

    /// The Peak-EWMA RTT estimate in seconds after decay (0 for the kinds that keep none).
    pub fn cost(&mut self, slot: i64, now: f64) -> Result<f64, Error> {
        let s = check_slot(slot)?;
        check_now(now)?;
        let (kind, tau) = (self.kind, self.tau);
        let ep = self
            .table
            .get_mut(s)
            .and_then(Option::as_mut)
            .ok_or(Error::Absent(slot))?;
        if kind != Kind::Ewma {
            return Ok(0.0);
        }
        observe(ep, tau, now, 0.0);
        Ok(ep.cost)
    }

    fn load_of(&mut self, s: u32, now: f64) -> f64 {
        let tau = self.tau;
        let ep = self.ep(s);
        observe(ep, tau, now, 0.0);
        if ep.cost == 0.0 && ep.pending != 0 {
            PENALTY_S + ep.pending as f64
        } else {
            ep.cost * (ep.pending + 1) as f64
        }
    }

    fn next_round_robin(&mut self, panic: bool) -> u32 {
        let n = self.table.len();
        let mut start = (self.rr_last + 1) as usize;
        if start >= n {
            start = 0;
        }
        for s in (start..n).chain(0..start) {
            if let Some(ep) = &self.table[s] {
                if panic || !ep.down {
                    self.rr_last = s as i64;
                    return s as u32;
                }
            }
        }
        unreachable!("no endpoint to pick")
    }

    /// Eligible first, then least pending, then lowest slot.
    fn hkey(&self, s: u32) -> (bool, u64, u32) {
        match self.get(s as usize) {
            Some(ep) => (ep.down, ep.pending, s),
            None => unreachable!("slot {s} is in the heap but absent"),
        }
    }

    /// Restores the heap order around position `i` (up, then down).
    fn sift(&mut self, mut i: usize) {
        let s = self.heap[i];
        let key = self.hkey(s);
        while i > 0 {
            let p = (i - 1) / 2;
            if self.hkey(self.heap[p]) <= key {
                break;
            }
            self.heap[i] = self.heap[p];
            let moved = self.heap[i];
            self.ep(moved).heap_at = i as u32;
            i = p;
        }
        let n = self.heap.len();
        while 2 * i + 1 < n {
            let mut c = 2 * i + 1;
            if c + 1 < n && self.hkey(self.heap[c + 1]) < self.hkey(self.heap[c]) {
                c += 1;
            }
            if key <= self.hkey(self.heap[c]) {
                break;
            }
            self.heap[i] = self.heap[c];
            let moved = self.heap[i];
            self.ep(moved).heap_at = i as u32;
            i = c;
        }
        self.heap[i] = s;
        self.ep(s).heap_at = i as u32;
    }
}

/// One Peak-EWMA observation (rule 5 of the spec); `rtt` 0 is the decay a load applies first.
fn observe(ep: &mut Endpoint, tau: f64, now: f64, rtt: f64) {
    debug_assert!(rtt >= 0.0 && now.is_finite());
    let dt = now - ep.stamp;
    let w = if dt > 0.0 {
        ep.stamp = now;
        (-dt / tau).exp()
    } else {
        1.0 // a clock that went back: no decay, and the stamp stays where it was
    };
    if rtt > ep.cost {
        ep.cost = rtt;
    } else {
        ep.cost = ep.cost * w + rtt * (1.0 - w);
    }
}

#[cfg(test)]
mod tests;
