//! The results of the requests the lane completed, summed per route branch, listener and status
//! until Python takes them (once per `poll`), so that Python's bookkeeping (metrics, budgets,
//! failure accrual) costs per batch instead of per request.
//!
//! Latencies are summed the way `pyproxy.metrics.histogram.Histogram` keeps them: count, sum, min,
//! max and counts per bucket, with the same bucket key ([`bucket_key`], the twin of
//! `histogram.bucket_key`, compared by `tests/test_diff_lane.py`), so merging a batch into a Python
//! histogram gives the histogram that adding its samples one by one would have given.

/// Linear sub-buckets per power of two (`histogram._SUB`).
const SUB: i64 = 64;
/// The bucket of zero and of negative values (`histogram._ZERO`).
pub const ZERO: i64 = -(1 << 40);

/// `(m, e)` with `v = m * 2^e` and `0.5 <= m < 1`, for a finite `v > 0` (C's `frexp`).
fn frexp(v: f64) -> (f64, i64) {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    if exp == 0 {
        // subnormal: scale into the normal range first
        let (m, e) = frexp(v * f64::from_bits((1023u64 + 54) << 52));
        return (m, e - 54);
    }
    let m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (m, exp - 1022)
}

/// The histogram bucket of a finite value (None for NaN and infinities, which are not counted).
pub fn bucket_key(v: f64) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    if v > 0.0 {
        let (m, e) = frexp(v);
        Some(e * SUB + ((m - 0.5) * (2 * SUB) as f64) as i64)
    } else {
        Some(ZERO)
    }
}

/// Samples summed as a histogram keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// (bucket key, count), in order of first use.
    pub buckets: Vec<(i64, u64)>,
}

impl Default for Hist {
    fn default() -> Self {
        Hist { count: 0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY, buckets: Vec::new() }
    }
}

impl Hist {
    pub fn add(&mut self, v: f64) {
        let Some(key) = bucket_key(v) else {
            return;
        };
        let v = if v > 0.0 { v } else { 0.0 };
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        bump(&mut self.buckets, key, 1);
    }
}

/// Adds `n` to the count of `key` (a short list: a batch spans few buckets).
pub fn bump(list: &mut Vec<(i64, u64)>, key: i64, n: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, c)) => *c += n,
        None => list.push((key, n)),
    }
}

/// The summed results of one (branch, listener, status).
#[derive(Debug)]
pub struct Batch<C> {
    /// The branch (its Python object), the listener, the status.
    pub ctx: C,
    pub branch: usize,
    pub server: usize,
    pub status: u16,
    pub count: u64,
    /// Time to the response head, ms (the client scope and the balancer's RTT).
    pub head_ms: Hist,
    /// Time to the end of the response, ms (the server and service scopes).
    pub total_ms: Hist,
    /// Completed requests per endpoint slot (failure accrual).
    pub slots: Vec<(i64, u64)>,
    /// Requests per second they started in (retry and requeue budgets deposit per second).
    pub seconds: Vec<(i64, u64)>,
}

/// The batches of one `poll`, in order of first result.
#[derive(Debug)]
pub struct Results<C> {
    pub batches: Vec<Batch<C>>,
}

impl<C> Default for Results<C> {
    fn default() -> Self {
        Results { batches: Vec::new() }
    }
}

impl<C> Results<C> {
    /// One completed request: `branch` identifies its route branch (`ctx` is made only for a new batch).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        branch: usize,
        server: usize,
        status: u16,
        slot: i64,
        started: f64,
        head_at: f64,
        ended: f64,
        ctx: impl FnOnce() -> C,
    ) {
        let at = self.batches.iter().position(|b| b.branch == branch && b.server == server && b.status == status);
        let b = match at {
            Some(i) => &mut self.batches[i],
            None => {
                self.batches.push(Batch {
                    ctx: ctx(),
                    branch,
                    server,
                    status,
                    count: 0,
                    head_ms: Hist::default(),
                    total_ms: Hist::default(),
                    slots: Vec::new(),
                    seconds: Vec::new(),
                });
                self.batches.last_mut().expect("just pushed")
            }
        };
        b.count += 1;
        b.head_ms.add((head_at - started) * 1000.0);
        b.total_ms.add((ended - started) * 1000.0);
        bump(&mut b.slots, slot, 1);
        bump(&mut b.seconds, started.floor() as i64, 1);
    }

    pub fn take(&mut self) -> Vec<Batch<C>> {
        std::mem::take(&mut self.batches)
    }
}
