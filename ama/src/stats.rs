//! Space accounting: what was allocated from the pool, and per operation
//! type what reserves held, used and gave back.

use crate::aad::Aad;
use crate::pool::Pool;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Per operation type, summed over its requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpSpace {
    pub requests: u64,
    pub reserved_pages: u64,
    pub used_pages: u64,
    pub returned_pages: u64,
    /// Blocks found cached and pinned instead of reserved (cache peeking).
    pub pinned_pages: u64,
    pub max_reserved: u64,
    pub max_used: u64,
    pub under_allocations: u64,
}

/// The pool's accounting at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    pub page_size: usize,
    pub capacity_pages: usize,
    pub in_use_pages: usize,
    pub peak_pages: u64,
    /// Pages handed out since the pool was made (directly or to reserves).
    pub allocated_pages: u64,
    /// Object bytes accounted since the pool was made.
    pub allocated_object_bytes: u64,
    pub reservations: u64,
    pub reservation_failures: u64,
    pub under_allocations: u64,
    pub by_op: BTreeMap<&'static str, OpSpace>,
}

impl Space {
    /// Everything allocated, in bytes: the paper's Table 6 measure.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_pages * self.page_size as u64 + self.allocated_object_bytes
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    allocated_pages: AtomicU64,
    object_bytes: AtomicU64,
    peak: AtomicU64,
    reservations: AtomicU64,
    reservation_failures: AtomicU64,
    under: AtomicU64,
    by_op: Mutex<BTreeMap<&'static str, OpSpace>>,
}

impl Counters {
    pub(crate) fn allocated(&self, n: usize, in_use: usize) {
        self.allocated_pages.fetch_add(n as u64, Ordering::Relaxed);
        self.peak.fetch_max(in_use as u64, Ordering::Relaxed);
    }
    pub(crate) fn object_bytes(&self, n: usize) {
        self.object_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn reservation_attempt(&self) {
        self.reservations.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn reservation_failed(&self) {
        self.reservation_failures.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn under_allocation(&self) {
        self.under.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record(&self, op: &'static str, aad: Aad, used: u32, peeked: u32, under: u32) {
        let mut m = self.by_op.lock();
        let e = m.entry(op).or_default();
        e.requests += 1;
        e.reserved_pages += aad.pages as u64;
        e.used_pages += used as u64;
        e.returned_pages += aad.pages.saturating_sub(used) as u64;
        e.pinned_pages += peeked as u64;
        e.max_reserved = e.max_reserved.max(aad.pages as u64);
        e.max_used = e.max_used.max(used as u64);
        e.under_allocations += under as u64;
    }

    pub(crate) fn snapshot(&self, pool: &Pool) -> Space {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Space {
            page_size: pool.page_size(),
            capacity_pages: pool.capacity(),
            in_use_pages: pool.in_use(),
            peak_pages: l(&self.peak),
            allocated_pages: l(&self.allocated_pages),
            allocated_object_bytes: l(&self.object_bytes),
            reservations: l(&self.reservations),
            reservation_failures: l(&self.reservation_failures),
            under_allocations: l(&self.under),
            by_op: self.by_op.lock().clone(),
        }
    }
}
